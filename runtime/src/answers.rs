//! Answers kept between reads: a read's serialised answer, kept under everything it depends on
//! (the question, the caller as far as the answer depends on them, "today", and the state of
//! the read models it was built from), so that the same read is not built again until the log
//! moves. Bounded in bytes (`ENSEMBLE_ANSWER_CACHE_MB`), the least useful going first
//! (quick_cache's S3-FIFO); entries and bytes are in `/metrics`.
//!
//! The read models' state ([`ReadModels`]) is read in the same statement as the caller's own
//! check, so a kept answer costs one statement: it is the sums of every projection's
//! checkpoint, which grow whenever any read model moves (each checkpoint only moves forward, by
//! its transaction id first), the count of rebuilds swapped in (a rebuild may change rows and
//! leave its checkpoint where it was), and the count of erasures, which grows in the very
//! statement that commits an erasure. An answer is thus never older than what the read models
//! held when the caller was checked: a write this process (or any other) acknowledged after
//! its read models caught up is in every later answer, an erased person leaves every kept
//! answer at the erasure's commit, and nothing is kept that the read models did not commit.
//! Hand edits of read-model tables are not seen: after one, rebuild the read model (or
//! restart).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use chrono::NaiveDate;
use quick_cache::sync::Cache;

/// How far the read models have come, how many rebuilds were swapped in and how many erasures
/// have committed: an answer built on one state is the answer on any other read with the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReadModels {
    pub transactions: i64,
    pub positions: i64,
    pub rebuilds: i64,
    pub erasures: i64,
}

/// [`ReadModels`] as four more columns of a caller's check: `transactions`, `positions`,
/// `rebuilds`, `erasures` (bigints).
pub const READ_MODELS: &str =
    "(SELECT coalesce(sum(transaction_id), 0)::int8 FROM projection_checkpoints), \
     (SELECT coalesce(sum(position), 0)::int8 FROM projection_checkpoints), \
     (SELECT coalesce(sum(rebuilds), 0)::int8 FROM projection_checkpoints), \
     (SELECT generation FROM erasures)";

impl ReadModels {
    pub fn new((transactions, positions, rebuilds, erasures): (i64, i64, i64, i64)) -> Self {
        Self {
            transactions,
            positions,
            rebuilds,
            erasures,
        }
    }
}

/// A read, as far as its answer depends on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Question {
    /// Which database's read models (the primary's, or a standby's).
    source: u64,
    /// The route (its template).
    pub route: &'static str,
    /// The caller, where the answer depends on who asks ("" where it does not).
    pub caller: String,
    /// The rest of the question: path parameters and query string.
    pub asked: String,
    pub today: NaiveDate,
    pub at: ReadModels,
}

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<Question, Bytes> for Weight {
    fn weight(&self, question: &Question, answer: &Bytes) -> u64 {
        // The answer, the key's strings and about what the cache holds beside them.
        (answer.len() + question.caller.len() + question.asked.len() + 128) as u64
    }
}

type Kept = Cache<Question, Bytes, Weight>;

/// The answers of one runtime: kept in the process's cache under this runtime's source (the
/// primary and each standby apart), or not at all (the time machine's replays, a size of 0).
#[derive(Clone)]
pub struct Answers {
    kept: Option<Arc<Kept>>,
    source: u64,
    /// Answers given from the cache, and built, by this runtime and its standbys'.
    counts: Arc<[AtomicU64; 2]>,
}

impl Answers {
    /// A cache of at most `bytes` (0: answers are always built).
    pub fn new(bytes: u64) -> Self {
        if bytes == 0 {
            return Self::off();
        }
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(4096)
            .weight_capacity(bytes)
            // One shard: a shard holds only answers up to its share of the bytes, and the
            // biggest lists are a few megabytes.
            .shards(1)
            .build()
            .expect("valid cache options");
        let kept = Arc::new(Kept::with_options(
            options,
            Weight,
            Default::default(),
            Default::default(),
        ));
        Self {
            kept: Some(kept),
            source: 0,
            counts: Default::default(),
        }
    }

    /// Never keeps anything.
    pub fn off() -> Self {
        Self {
            kept: None,
            source: 0,
            counts: Default::default(),
        }
    }

    /// The same cache, for the read models of another database (standby `source - 1`).
    pub fn for_source(&self, source: u64) -> Self {
        Self {
            kept: self.kept.clone(),
            source,
            counts: self.counts.clone(),
        }
    }

    /// The question `route` asked by `caller` with `asked`, today, on read models at `at`.
    pub fn question(
        &self,
        route: &'static str,
        caller: impl Into<String>,
        asked: impl Into<String>,
        today: NaiveDate,
        at: ReadModels,
    ) -> Question {
        Question {
            source: self.source,
            route,
            caller: caller.into(),
            asked: asked.into(),
            today,
            at,
        }
    }

    /// The kept answer to `question`, or the one `build` makes (kept for the next asker).
    /// Concurrent askers of one question wait for one build. A build that fails keeps nothing.
    pub async fn get_or_build<E, F>(&self, question: Question, build: F) -> Result<Bytes, E>
    where
        F: Future<Output = Result<Bytes, E>>,
    {
        let Some(kept) = &self.kept else {
            return build.await;
        };
        let built = AtomicBool::new(false);
        let answer = kept
            .get_or_insert_async(&question, async {
                built.store(true, Ordering::Relaxed);
                build.await
            })
            .await;
        let i = usize::from(built.into_inner());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        answer
    }

    /// Entries and bytes kept (of every source sharing the cache); None without a cache.
    pub fn usage(&self) -> Option<(u64, u64)> {
        let kept = self.kept.as_ref()?;
        Some((kept.len() as u64, kept.weight()))
    }

    /// Answers given from the cache so far, and answers built (with a cache; none without),
    /// by this runtime and every one sharing its cache (`/metrics` shows them).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts[0].load(Ordering::Relaxed),
            self.counts[1].load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(positions: i64, erasures: i64) -> ReadModels {
        ReadModels {
            transactions: 1,
            positions,
            rebuilds: 0,
            erasures,
        }
    }

    #[tokio::test]
    async fn an_answer_is_kept_until_the_read_models_move() {
        let answers = Answers::new(1 << 20);
        let day = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let built = std::sync::atomic::AtomicU32::new(0);
        let ask = |at: ReadModels, caller: &'static str| {
            let question = answers.question("/absence/", caller, "", day, at);
            let built = &built;
            answers.get_or_build(question, async move {
                let n = built.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, ()>(Bytes::from(format!("answer {n}")))
            })
        };
        assert_eq!(ask(at(5, 0), "1").await.unwrap(), "answer 0");
        assert_eq!(ask(at(5, 0), "1").await.unwrap(), "answer 0");
        // Another caller, moved read models, an erasure: each built anew.
        assert_eq!(ask(at(5, 0), "2").await.unwrap(), "answer 1");
        assert_eq!(ask(at(6, 0), "1").await.unwrap(), "answer 2");
        assert_eq!(ask(at(6, 1), "1").await.unwrap(), "answer 3");
        // A standby's read models are another source.
        let standby = answers.for_source(1);
        let question = standby.question("/absence/", "1", "", day, at(6, 1));
        let answer = standby
            .get_or_build(question, async { Ok::<_, ()>(Bytes::from("standby")) })
            .await;
        assert_eq!(answer.unwrap(), "standby");
        // One answer came from the cache; five were built (the standby's counted with them).
        assert_eq!(answers.counts(), (1, 5));
        // Off: always built.
        let off = Answers::off();
        for n in 0..2 {
            let question = off.question("/absence/", "1", "", day, at(6, 1));
            let answer = off
                .get_or_build(
                    question,
                    async move { Ok::<_, ()>(Bytes::from(format!("{n}"))) },
                )
                .await;
            assert_eq!(answer.unwrap(), format!("{n}"));
        }
    }

    /// A caller that hangs up while its build runs (its future dropped) leaves the question to
    /// the next asker, who was waiting on that build: nobody waits for it forever.
    #[tokio::test]
    async fn a_build_dropped_half_way_holds_nobody_up() {
        let answers = Answers::new(1 << 20);
        let day = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let question = answers.question("/manager/", "", "", day, at(1, 0));
        let hung = answers.get_or_build(question.clone(), async {
            std::future::pending::<Result<Bytes, ()>>().await
        });
        let waiter = answers.get_or_build(question.clone(), async {
            Ok::<_, ()>(Bytes::from("built"))
        });
        // Boxed, so that dropping `hung` drops the future itself.
        let mut hung = Box::pin(hung);
        let mut waiter = Box::pin(waiter);
        // The first asker holds the build; the second waits on it.
        assert!(futures_poll(&mut hung).await.is_none());
        assert!(futures_poll(&mut waiter).await.is_none());
        // The first hangs up: the second builds the answer itself.
        drop(hung);
        let answer = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert_eq!(
            answer.expect("the waiter was not held up").unwrap(),
            "built"
        );
    }

    /// Poll once: Some(output) if ready.
    async fn futures_poll<F: Future + Unpin>(f: &mut F) -> Option<F::Output> {
        use std::task::Poll;
        std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *f).poll(cx) {
            Poll::Ready(out) => Poll::Ready(Some(out)),
            Poll::Pending => Poll::Ready(None),
        })
        .await
    }

    #[tokio::test]
    async fn a_failed_build_keeps_nothing_and_the_bytes_are_bounded() {
        let answers = Answers::new(64 * 1024);
        let day = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let question = answers.question("/manager/", "", "", day, at(1, 0));
        let failed = answers
            .get_or_build(question.clone(), async { Err::<Bytes, _>("down") })
            .await;
        assert_eq!(failed, Err("down"));
        let again = answers
            .get_or_build(question, async { Ok::<_, &str>(Bytes::from("up")) })
            .await;
        assert_eq!(again, Ok(Bytes::from("up")));
        for n in 0..1000 {
            let question = answers.question("/manager/", "", "", day, at(n, 0));
            let _ = answers
                .get_or_build(question, async {
                    Ok::<_, ()>(Bytes::from(vec![b'x'; 1000]))
                })
                .await;
        }
        let kept = answers.kept.as_ref().unwrap();
        assert!(kept.weight() <= 64 * 1024, "{} bytes kept", kept.weight());
        assert!(kept.len() < 100);
    }
}
