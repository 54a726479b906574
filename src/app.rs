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
        let rt = Runtime::start(config, projections::all()).await?;
        Ok(Arc::new(Self {
            orchestra: Orchestra::new(rt.clone()),
            campus: Campus::new(rt.clone()),
            rt,
        }))
    }

    /// The background tasks of a server process: the runtime's, and each context's.
    pub fn spawn_workers(&self) -> runtime::worker::Workers {
        runtime::worker::spawn(
            self.rt.clone(),
            vec![crate::campus::sweeper(self.campus.clone())],
        )
    }
}
