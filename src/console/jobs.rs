//! The console's background work: `events verify` and blue/green rebuilds started from a page
//! run on tasks of their own (a browser that goes away cuts nothing short) with their progress
//! kept here for the page to poll; and the projections' lag, sampled every 30 seconds for an
//! hour's chart. Kept in this process's memory: another process shows its own.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use runtime::Runtime;

/// One job's progress, as the page shows it.
#[derive(Debug, Clone)]
pub struct Progress {
    /// What runs (`events verify`, `rebuild orchestra_absences`).
    pub what: String,
    pub by: String,
    pub started: DateTime<Utc>,
    pub done: u64,
    pub total: u64,
    /// When it ended, and how: Ok(what it found) or Err(why it failed).
    pub ended: Option<(DateTime<Utc>, Result<String, String>)>,
}

impl Progress {
    pub fn running(&self) -> bool {
        self.ended.is_none()
    }
}

/// The latest job of one kind.
#[derive(Default)]
pub struct Job(Mutex<Option<Progress>>);

impl Job {
    pub fn snapshot(&self) -> Option<Progress> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut Progress)) {
        if let Some(p) = self.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            f(p);
        }
    }

    /// Run `work` on a task of its own unless a job of this kind is running here; false if
    /// one is. `work` reports `(done, total)` through the closure it is given.
    pub fn start<F, Fut>(self: &Arc<Self>, what: String, by: String, work: F) -> bool
    where
        F: FnOnce(Box<dyn Fn(u64, u64) + Send + Sync>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<String, String>> + Send + 'static,
    {
        {
            let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if slot.as_ref().is_some_and(Progress::running) {
                return false;
            }
            *slot = Some(Progress {
                what,
                by,
                started: Utc::now(),
                done: 0,
                total: 0,
                ended: None,
            });
        }
        let job = self.clone();
        let report = {
            let job = Arc::downgrade(&job);
            Box::new(move |done, total| {
                if let Some(job) = job.upgrade() {
                    job.update(|p| {
                        p.done = done;
                        p.total = total;
                    });
                }
            })
        };
        tokio::spawn(async move {
            // A panic in the work still ends the job, as a failure.
            let outcome = tokio::spawn(work(report))
                .await
                .unwrap_or_else(|e| Err(format!("the job stopped: {e}")));
            job.update(|p| p.ended = Some((Utc::now(), outcome)));
        });
        true
    }
}

#[derive(Default)]
pub struct Jobs {
    pub verify: Arc<Job>,
    pub rebuild: Arc<Job>,
}

/// Each projection's lag at a moment.
pub type Sample = (DateTime<Utc>, Vec<(String, i64)>);

/// The last hour of lag samples.
#[derive(Default)]
pub struct LagSamples(Mutex<VecDeque<Sample>>);

pub const SAMPLE_EVERY: Duration = Duration::from_secs(30);
const KEPT: usize = 120;
/// Lags are counted up to this (an index range scan, never the whole log).
const LAG_CAP: i64 = 1_000_000;

impl LagSamples {
    pub fn snapshot(&self) -> Vec<Sample> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn push(&self, sample: Sample) {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(sample);
    }

    /// Sample `rt`'s lags now and every [`SAMPLE_EVERY`] while `owner` lives (the console's
    /// state: a router dropped stops its sampler).
    pub fn follow<T: Send + Sync + 'static>(
        owner: Weak<T>,
        samples: impl Fn(&T) -> &LagSamples + Send + 'static,
        rt: Arc<Runtime>,
    ) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let lags = runtime::metrics::lags(&rt, LAG_CAP).await;
                let Some(owner) = owner.upgrade() else {
                    return;
                };
                // A database that does not answer leaves a gap in the chart.
                if let Ok(rows) = lags {
                    let lags = rows.into_iter().map(|(name, _, _, lag)| (name, lag));
                    samples(&owner).push((Utc::now(), lags.collect()));
                }
            }
        });
    }
}
