//! The composition root: a process's [`Runtime`] and the two bounded contexts built on it.
//! Only the top floor (the API's assembly, the CLI) sees all three.

use std::sync::Arc;

use runtime::{Config, Runtime};

use crate::campus::Campus;
use crate::orchestra::Orchestra;

pub struct App {
    pub rt: Arc<Runtime>,
    pub orchestra: Arc<Orchestra>,
    pub campus: Arc<Campus>,
}

impl App {
    /// Connect (creating the database if missing), migrate, catch the read models up, and
    /// build both contexts.
    pub async fn start(config: Config) -> anyhow::Result<Arc<Self>> {
        Ok(Self::on(Runtime::start(config, projections::all()).await?))
    }

    /// Both contexts on `rt` (a process's runtime, or one reading a replay or a standby).
    pub fn on(rt: Arc<Runtime>) -> Arc<Self> {
        Arc::new(Self {
            orchestra: Orchestra::new(rt.clone()),
            campus: Campus::new(rt.clone()),
            rt,
        })
    }

    /// The background tasks of a server process: the runtime's, and each context's.
    pub fn spawn_workers(&self) -> runtime::worker::Workers {
        let mut periodic = vec![
            crate::campus::sweeper(self.campus.clone()),
            stale_replays(self.rt.clone()),
        ];
        periodic.extend(memory_trim());
        runtime::worker::spawn(self.rt.clone(), periodic)
    }
}

/// Drop the time machine's replays that an erasure made stale (they may hold what was
/// erased), within seconds of it, whether or not anyone asks about their moments again.
fn stale_replays(rt: Arc<Runtime>) -> runtime::worker::Periodic {
    runtime::worker::Periodic {
        name: "stale-replays",
        every: std::time::Duration::from_secs(10),
        round: Arc::new(move || {
            let rt = rt.clone();
            Box::pin(async move {
                if let Err(e) = rt.views.drop_stale().await {
                    tracing::warn!(error = %e, "could not drop the replays an erasure made stale");
                }
            })
        }),
    }
}

/// Give freed memory back to the system every few seconds. glibc's allocator keeps what a
/// burst of requests freed (requests piled up behind a held transaction, a lock, a restart of
/// PostgreSQL), so a server's RSS stayed at each burst's high-water mark although its heap did
/// not grow (the chaos soak, docs/resilience.md); `malloc_trim` hands those pages back.
fn memory_trim() -> Option<runtime::worker::Periodic> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    return Some(runtime::worker::Periodic {
        name: "memory-trim",
        every: std::time::Duration::from_secs(10),
        round: std::sync::Arc::new(|| {
            Box::pin(async {
                // SAFETY: malloc_trim only walks the allocator's own arenas.
                unsafe { libc::malloc_trim(0) };
            })
        }),
    });
    #[allow(unreachable_code)]
    None
}
