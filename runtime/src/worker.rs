//! Background tasks: the projector (read models and the mail outbox, for this process's
//! commands and everyone else's) and mail delivery. Each runs under a supervisor that restarts
//! it, with a log line, when it ends, panics or stops beating its heartbeat.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::mailer::{Mailer, Policy};
use crate::process::Runtime;
pub use crate::signals::Heartbeat;

/// Work a bounded context needs done in the background, every `every` (a sweeper, say):
/// registered with [`spawn`] by the context, supervised like the rest.
pub struct Periodic {
    pub name: &'static str,
    pub every: Duration,
    /// One round of the work.
    pub round: Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>,
}

/// Run `make()` on a task, again and again: when it ends or panics, or when its heartbeat has
/// been silent for `stall`, it is logged, aborted if need be, and started afresh.
pub fn supervise<F, Fut>(name: &'static str, stall: Duration, make: F) -> JoinHandle<()>
where
    F: Fn(Heartbeat) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let check = (stall / 4).max(Duration::from_millis(50));
        loop {
            let heartbeat = Heartbeat::new();
            heartbeat.beat();
            // Aborting the supervisor aborts its task too.
            let mut task = AbortOnDrop(tokio::spawn(make(heartbeat.clone())));
            let outcome = loop {
                tokio::select! {
                    ended = &mut task.0 => break match ended {
                        Ok(()) => "ended".to_string(),
                        Err(e) if e.is_panic() => "panicked".to_string(),
                        Err(e) => format!("failed ({e})"),
                    },
                    _ = tokio::time::sleep(check) => {
                        if heartbeat.silent_for() > stall {
                            task.0.abort();
                            let _ = (&mut task.0).await;
                            break format!("stalled (no heartbeat for {:?})", heartbeat.silent_for());
                        }
                    }
                }
            };
            tracing::error!(task = name, "background task {outcome}; restarting it");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Start the background tasks; abort the handles to stop them.
/// The background tasks of a server process.
pub struct Workers {
    tasks: Vec<JoinHandle<()>>,
    mailer: Option<Arc<Mailer>>,
}

impl Workers {
    /// Stop gracefully: one last projector pass (what was committed reaches the read models and
    /// the outbox now, not at the next start), and the mailer finishes the message it is
    /// sending (bounded by the SMTP timeout) before the tasks are stopped.
    pub async fn stop(self, app: &Runtime) {
        if let Err(e) = tokio::time::timeout(Duration::from_secs(10), app.projector.pass())
            .await
            .unwrap_or(Ok(Default::default()))
        {
            tracing::warn!(error = %e, "last projector pass failed; the next start catches up");
        }
        let quiet = match &self.mailer {
            Some(mailer) => tokio::time::timeout(
                app.config.smtp_timeout + Duration::from_secs(5),
                mailer.quiesce(),
            )
            .await
            .ok(),
            None => None,
        };
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        drop(quiet);
    }

    /// The tasks themselves (to abort them at once, as a crash would).
    pub fn into_tasks(self) -> Vec<JoinHandle<()>> {
        self.tasks
    }
}

/// Start the projector, the mail delivery (when SMTP is configured), the subscriptions'
/// webhooks, the standbys' monitor (when there are standbys) and every `periodic` task of the
/// contexts, each supervised.
pub fn spawn(app: Arc<Runtime>, periodic: Vec<Periodic>) -> Workers {
    let poll = app.config.poll_interval;
    // A pass that takes longer than this is stuck (a pass is bounded by the pool's timeouts).
    let stall = (poll * 4).max(Duration::from_secs(60));
    let projector = app.projector.clone();
    let mut tasks = vec![supervise("projector", stall, move |heartbeat| {
        projector.clone().run(poll, heartbeat)
    })];
    if !app.replicas.is_empty() {
        let replicas = app.replicas.clone();
        tasks.push(supervise(
            "standby-monitor",
            Duration::from_secs(30),
            move |heartbeat| replicas.clone().monitor(heartbeat),
        ));
    }
    let deliverer = Arc::new(crate::webhooks::Deliverer::new(
        app.pool.clone(),
        crate::webhooks::Policy {
            max_attempts: app.config.webhook_max_attempts,
            retry_base: app.config.webhook_retry_base,
            retry_max: app.config.webhook_retry_max,
        },
    ));
    let webhooks_app = app.clone();
    // Each POST is bounded; a round delivers at most a few batches per subscription.
    let webhook_stall = crate::webhooks::TIMEOUT * 30 + poll;
    tasks.push(supervise("webhooks", webhook_stall, move |heartbeat| {
        deliver_webhooks(webhooks_app.clone(), deliverer.clone(), heartbeat)
    }));
    for task in periodic {
        let stall = (task.every * 2).max(stall);
        tasks.push(supervise(task.name, stall, move |heartbeat| {
            let round = task.round.clone();
            let every = task.every;
            async move {
                loop {
                    heartbeat.beat();
                    round().await;
                    heartbeat.beat();
                    tokio::time::sleep(every).await;
                }
            }
        }));
    }
    let mut mail = None;
    match (&app.config.smtp_url, app.config.mail_from.parse()) {
        (Some(url), Ok(from)) => match crate::mailer::transport(url, app.config.smtp_timeout) {
            Ok(transport) => {
                let policy = Policy {
                    timeout: app.config.smtp_timeout,
                    retry_base: app.config.mail_retry_base,
                    retry_max: app.config.mail_retry_max,
                    max_attempts: app.config.mail_max_attempts,
                    interval: app.config.mail_interval,
                };
                let mailer = Arc::new(Mailer::new(app.pool.clone(), transport, from, policy));
                mail = Some(mailer.clone());
                // Each SMTP exchange is bounded; a round that outlives several is stuck.
                let stall = app.config.smtp_timeout * 3 + poll + Duration::from_secs(10);
                tasks.push(supervise("mailer", stall, move |heartbeat| {
                    deliver_mail(app.clone(), mailer.clone(), heartbeat)
                }));
            }
            Err(e) => tracing::error!("mail disabled: ENSEMBLE_SMTP_URL: {e}"),
        },
        _ => {
            tracing::warn!("ENSEMBLE_SMTP_URL is not set: notification mail is queued but not sent")
        }
    }
    Workers {
        tasks,
        mailer: mail,
    }
}

async fn deliver_webhooks(
    app: Arc<Runtime>,
    deliverer: Arc<crate::webhooks::Deliverer>,
    heartbeat: Heartbeat,
) {
    after_each_pass(&app, &heartbeat, || async {
        if let Err(e) = deliverer.deliver_due(|| heartbeat.beat()).await {
            tracing::warn!(error = %e, "webhooks: the subscriptions are unavailable");
        }
    })
    .await
}

async fn deliver_mail(app: Arc<Runtime>, mailer: Arc<Mailer>, heartbeat: Heartbeat) {
    after_each_pass(&app, &heartbeat, || async {
        if let Err(e) = mailer.deliver_due(|| heartbeat.beat()).await {
            tracing::error!(error = %e, "mail outbox unavailable");
        }
    })
    .await
}

/// Run `round` for ever: after every projector pass that applied something, and every poll
/// interval besides.
async fn after_each_pass<F, Fut>(app: &Runtime, heartbeat: &Heartbeat, round: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let poll = app.config.poll_interval;
    loop {
        heartbeat.beat();
        round().await;
        heartbeat.beat();
        tokio::select! {
            _ = app.projector.applied_something.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_task_that_stalls_or_ends_is_started_again() {
        let starts = Arc::new(AtomicUsize::new(0));
        let counted = starts.clone();
        // Beats once, then hangs forever without a heartbeat.
        let stalled = supervise("stalls", Duration::from_millis(100), move |heartbeat| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                heartbeat.beat();
                std::future::pending::<()>().await;
            }
        });
        let ends = Arc::new(AtomicUsize::new(0));
        let counted = ends.clone();
        let ending = supervise("ends", Duration::from_secs(60), move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        stalled.abort();
        ending.abort();
        assert!(
            starts.load(Ordering::SeqCst) >= 2,
            "a stalled task was not restarted"
        );
        assert!(
            ends.load(Ordering::SeqCst) >= 2,
            "an ended task was not restarted"
        );
    }

    #[tokio::test]
    async fn a_task_that_keeps_beating_is_left_alone() {
        let starts = Arc::new(AtomicUsize::new(0));
        let counted = starts.clone();
        let busy = supervise("beats", Duration::from_millis(200), move |heartbeat| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                loop {
                    heartbeat.beat();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        busy.abort();
        assert_eq!(starts.load(Ordering::SeqCst), 1);
    }
}
