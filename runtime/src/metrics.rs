//! Prometheus metrics of a process, in one registry (prometheus-client): counters of requests
//! (by route template, method and status) and of command outcomes, a latency histogram by
//! route, and gauges read at scrape time (projection positions and lag, the mail outbox, the
//! database pools, the bounded caches). The HTTP layer records requests and serves
//! [`render`]; the command bus records commands.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::process::Runtime;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    aggregate: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProjectionLabels {
    projection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StandbyLabels {
    standby: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadLabels {
    /// `primary`, or the standby's `host:port/database`.
    served_by: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubscriptionLabels {
    subscription: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: String,
}

type Histograms = Family<RouteLabels, Histogram, fn() -> Histogram>;

struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histograms,
    commands: Family<CommandLabels, Counter>,
    pool_connections: Family<PoolLabels, Gauge>,
    projection_position: Family<ProjectionLabels, Gauge>,
    projection_lag: Family<ProjectionLabels, Gauge>,
    outbox_pending: Gauge,
    outbox_oldest: Gauge<f64, AtomicU64>,
    cache_entries: Family<CacheLabels, Gauge>,
    cache_bytes: Family<CacheLabels, Gauge>,
    reads: Family<ReadLabels, Counter>,
    answers: Family<OutcomeLabels, Counter>,
    standby_in_rotation: Family<StandbyLabels, Gauge>,
    standby_lag: Family<StandbyLabels, Gauge<f64, AtomicU64>>,
    standby_behind: Family<StandbyLabels, Gauge>,
    standby_position: Family<StandbyLabels, Gauge>,
    subscription_acked: Family<SubscriptionLabels, Gauge>,
    subscription_behind: Family<SubscriptionLabels, Gauge>,
    webhook_failures: Family<SubscriptionLabels, Gauge>,
    webhook_dead: Family<SubscriptionLabels, Gauge>,
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

static METRICS: LazyLock<Mutex<Metrics>> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let requests = Family::<RequestLabels, Counter>::default();
    registry.register(
        "ensemble_http_requests",
        "Requests answered, by route template, method and status",
        requests.clone(),
    );
    let latency: Histograms = Family::new_with_constructor(histogram);
    registry.register_with_unit(
        "ensemble_http_request_duration",
        "Time to answer, by route template",
        Unit::Seconds,
        latency.clone(),
    );
    let commands = Family::<CommandLabels, Counter>::default();
    registry.register(
        "ensemble_commands",
        "Commands by aggregate type and outcome",
        commands.clone(),
    );
    let pool_connections = Family::<PoolLabels, Gauge>::default();
    registry.register(
        "ensemble_db_pool_connections",
        "Database connections by pool and state",
        pool_connections.clone(),
    );
    let projection_position = Family::<ProjectionLabels, Gauge>::default();
    registry.register(
        "ensemble_projection_position",
        "The last log position a read model has applied",
        projection_position.clone(),
    );
    let projection_lag = Family::<ProjectionLabels, Gauge>::default();
    registry.register(
        "ensemble_projection_lag_events",
        "Events committed past a read model's checkpoint (counted up to 1e6)",
        projection_lag.clone(),
    );
    let outbox_pending = Gauge::default();
    registry.register(
        "ensemble_mail_outbox_pending",
        "Mails not sent yet (not counting those set aside as failed)",
        outbox_pending.clone(),
    );
    let outbox_oldest = Gauge::<f64, AtomicU64>::default();
    registry.register_with_unit(
        "ensemble_mail_outbox_oldest_pending",
        "Age of the oldest mail not sent yet",
        Unit::Seconds,
        outbox_oldest.clone(),
    );
    let cache_entries = Family::<CacheLabels, Gauge>::default();
    registry.register(
        "ensemble_cache_entries",
        "Entries held by each bounded in-process cache",
        cache_entries.clone(),
    );
    let cache_bytes = Family::<CacheLabels, Gauge>::default();
    registry.register(
        "ensemble_cache_bytes",
        "Bytes held by each in-process cache bounded in bytes (the answers kept for reads)",
        cache_bytes.clone(),
    );
    let reads = Family::<ReadLabels, Counter>::default();
    registry.register(
        "ensemble_reads",
        "Reads of the services (GET), by who answered: the primary or a standby",
        reads.clone(),
    );
    let answers = Family::<OutcomeLabels, Counter>::default();
    registry.register(
        "ensemble_answers",
        "Reads answered with an answer kept from an earlier read on the same read models (kept), or built",
        answers.clone(),
    );
    let standby_in_rotation = Family::<StandbyLabels, Gauge>::default();
    registry.register(
        "ensemble_standby_in_rotation",
        "1 when a standby serves reads, 0 when it is out (down, paused, lagging)",
        standby_in_rotation.clone(),
    );
    let standby_lag = Family::<StandbyLabels, Gauge<f64, AtomicU64>>::default();
    registry.register_with_unit(
        "ensemble_standby_lag",
        "How long ago the primary was where a standby is now (-1: unknown)",
        Unit::Seconds,
        standby_lag.clone(),
    );
    let standby_behind = Family::<StandbyLabels, Gauge>::default();
    registry.register_with_unit(
        "ensemble_standby_behind",
        "WAL the primary has flushed past what a standby has replayed",
        Unit::Bytes,
        standby_behind.clone(),
    );
    let standby_position = Family::<StandbyLabels, Gauge>::default();
    registry.register(
        "ensemble_standby_position",
        "The log position every read model on a standby holds",
        standby_position.clone(),
    );
    let subscription_acked = Family::<SubscriptionLabels, Gauge>::default();
    registry.register(
        "ensemble_subscription_acked_position",
        "The last event a subscription acknowledged",
        subscription_acked.clone(),
    );
    let subscription_behind = Family::<SubscriptionLabels, Gauge>::default();
    registry.register(
        "ensemble_subscription_behind_positions",
        "The log's last position less the one a subscription acknowledged (an upper bound of the events it has yet to handle)",
        subscription_behind.clone(),
    );
    let webhook_failures = Family::<SubscriptionLabels, Gauge>::default();
    registry.register(
        "ensemble_webhook_failures",
        "Failed webhook deliveries in a row, by subscription",
        webhook_failures.clone(),
    );
    let webhook_dead = Family::<SubscriptionLabels, Gauge>::default();
    registry.register(
        "ensemble_webhook_dead",
        "1 when a subscription's webhook was set aside after failing (ensemble subscriptions retry)",
        webhook_dead.clone(),
    );
    Mutex::new(Metrics {
        subscription_acked,
        subscription_behind,
        webhook_failures,
        webhook_dead,
        reads,
        answers,
        standby_in_rotation,
        standby_lag,
        standby_behind,
        standby_position,
        registry,
        requests,
        latency,
        commands,
        pool_connections,
        projection_position,
        projection_lag,
        outbox_pending,
        outbox_oldest,
        cache_entries,
        cache_bytes,
    })
});

/// Count a command's outcome (`committed`, `rejected`, `busy`, ...) for `aggregate`.
pub fn command(aggregate: &'static str, outcome: &'static str) {
    METRICS
        .lock()
        .unwrap()
        .commands
        .get_or_create(&CommandLabels {
            aggregate: aggregate.into(),
            outcome: outcome.into(),
        })
        .inc();
}

/// Count a read of the services, answered by the primary or a standby.
pub fn read(served_by: &str) {
    METRICS
        .lock()
        .unwrap()
        .reads
        .get_or_create(&ReadLabels {
            served_by: served_by.into(),
        })
        .inc();
}

/// Count a request answered on `route` (a template, or `unmatched`) with `method` (one of the
/// standard seven, or `other`) and `status`, and how long it took.
pub fn request(route: &str, method: &str, status: u16, took: Duration) {
    let metrics = METRICS.lock().unwrap();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.into(),
            method: method.into(),
            status,
        })
        .inc();
    metrics
        .latency
        .get_or_create(&RouteLabels {
            route: route.into(),
        })
        .observe(took.as_secs_f64());
}

/// A bounded cache's size, for [`render`]: registered by whoever owns the cache; None once
/// the cache is gone (it is then forgotten).
pub type CacheSize = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

static CACHES: LazyLock<Mutex<Vec<(&'static str, CacheSize)>>> = LazyLock::new(Default::default);

/// Show the size of `cache` in the metrics as `name` (summed with others of that name) for as
/// long as it lives.
pub fn register_cache<K, V>(name: &'static str, cache: &Arc<quick_cache::sync::Cache<K, V>>)
where
    K: Eq + std::hash::Hash + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let cache = Arc::downgrade(cache);
    let size: CacheSize = Arc::new(move || cache.upgrade().map(|c| c.len() as u64));
    CACHES.lock().unwrap().push((name, size));
}

/// Events past a checkpoint, counted up to `cap` (an index range scan, never the whole log).
const LAG: &str = "SELECT c.name, c.transaction_id, c.position, \
     (SELECT count(*) FROM (SELECT 1 FROM events e \
        WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position) LIMIT $2) l) \
     FROM projection_checkpoints c WHERE c.name = ANY($1) ORDER BY c.name";

/// Each read model: name, checkpoint (transaction, position) and how many events lie past it
/// (counted up to `cap`). Health and metrics use a pool of their own (`db::probe_pool`: two
/// connections, a wait for one cut off after 0.5 s, each statement after 0.7 s), so a locked
/// table or a crowd of scrapes never takes the connections requests need, and every probe ends
/// within about a second and a half. The queries run on tasks of their own and are never
/// cancelled half-way (a client that hangs up, a timeout): a pool this small must get every
/// connection back.
pub async fn lags(
    rt: &Arc<Runtime>,
    cap: i64,
) -> Result<Vec<(String, i64, i64, i64)>, sqlx::Error> {
    let rt = rt.clone();
    tokio::spawn(async move {
        let names: Vec<&str> = rt.projections.iter().map(|p| p.name()).collect();
        sqlx::query_as(LAG)
            .bind(&names)
            .bind(cap)
            .fetch_all(&rt.probe_pool)
            .await
    })
    .await
    .unwrap_or(Err(sqlx::Error::PoolClosed))
}

/// Each subscription: name, acknowledged position, the log's last position, webhook failures
/// in a row, whether its webhook is dead.
async fn subscriptions(
    rt: &Arc<Runtime>,
) -> Result<Vec<(String, i64, i64, i32, bool)>, sqlx::Error> {
    let rt = rt.clone();
    tokio::spawn(async move {
        sqlx::query_as(
            "SELECT name, acked_position, (SELECT coalesce(max(position), 0) FROM events), \
                    webhook_failures, webhook_dead_at IS NOT NULL \
             FROM subscriptions ORDER BY name LIMIT 1000",
        )
        .fetch_all(&rt.probe_pool)
        .await
    })
    .await
    .unwrap_or(Err(sqlx::Error::PoolClosed))
}

/// Mails not sent yet, and the age of the oldest, in seconds.
pub async fn outbox(rt: &Arc<Runtime>) -> Result<(i64, Option<f64>), sqlx::Error> {
    let rt = rt.clone();
    tokio::spawn(async move {
        sqlx::query_as(
            "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 \
             FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&rt.probe_pool)
        .await
    })
    .await
    .unwrap_or(Err(sqlx::Error::PoolClosed))
}

/// Everything, in the Prometheus text format; the gauges read now (a database that does not
/// answer leaves its gauges as they were last read, and says so in the log).
pub async fn render(rt: &Arc<Runtime>) -> String {
    let (lag_rows, outbox_row, subscription_rows) =
        tokio::join!(lags(rt, 1_000_000), outbox(rt), subscriptions(rt));
    let mut caches: std::collections::BTreeMap<&'static str, u64> = Default::default();
    CACHES.lock().unwrap().retain(|(name, size)| match size() {
        Some(n) => {
            *caches.entry(name).or_default() += n;
            true
        }
        None => false,
    });
    let metrics = METRICS.lock().unwrap();
    for (name, pool) in [
        ("statements", &rt.pool),
        ("transactions", &rt.tx_pool),
        ("probes", &rt.probe_pool),
    ] {
        let idle = pool.num_idle() as i64;
        let size = i64::from(pool.size());
        for (state, n) in [("idle", idle), ("in_use", (size - idle).max(0))] {
            metrics
                .pool_connections
                .get_or_create(&PoolLabels {
                    pool: name.into(),
                    state: state.into(),
                })
                .set(n);
        }
    }
    match lag_rows {
        Ok(rows) => {
            for (name, _, position, lag) in rows {
                let labels = ProjectionLabels { projection: name };
                metrics
                    .projection_position
                    .get_or_create(&labels)
                    .set(position);
                metrics.projection_lag.get_or_create(&labels).set(lag);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: projections unavailable"),
    }
    match outbox_row {
        Ok((pending, oldest)) => {
            metrics.outbox_pending.set(pending);
            metrics.outbox_oldest.set(oldest.unwrap_or(0.0));
        }
        Err(e) => tracing::warn!(error = %e, "metrics: mail outbox unavailable"),
    }
    match subscription_rows {
        Ok(rows) => {
            for (name, acked, head, failures, dead) in rows {
                let labels = SubscriptionLabels { subscription: name };
                metrics.subscription_acked.get_or_create(&labels).set(acked);
                metrics
                    .subscription_behind
                    .get_or_create(&labels)
                    .set((head - acked).max(0));
                metrics
                    .webhook_failures
                    .get_or_create(&labels)
                    .set(i64::from(failures));
                metrics
                    .webhook_dead
                    .get_or_create(&labels)
                    .set(i64::from(dead));
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: subscriptions unavailable"),
    }
    for standby in rt.replicas.standings() {
        let labels = StandbyLabels {
            standby: standby.name,
        };
        metrics
            .standby_in_rotation
            .get_or_create(&labels)
            .set(i64::from(standby.in_rotation));
        metrics
            .standby_lag
            .get_or_create(&labels)
            .set(standby.lag.map_or(-1.0, |l| l.as_secs_f64()));
        metrics
            .standby_behind
            .get_or_create(&labels)
            .set(standby.behind_bytes.min(i64::MAX as u64) as i64);
        metrics
            .standby_position
            .get_or_create(&labels)
            .set(standby.applied.position);
    }
    for (name, size) in caches {
        metrics
            .cache_entries
            .get_or_create(&CacheLabels { cache: name.into() })
            .set(size as i64);
    }
    // The answers kept between reads (the standbys' share the primary's cache and counts).
    if let Some((entries, bytes)) = rt.answers.usage() {
        let labels = CacheLabels {
            cache: "answers".into(),
        };
        metrics
            .cache_entries
            .get_or_create(&labels)
            .set(entries as i64);
        metrics.cache_bytes.get_or_create(&labels).set(bytes as i64);
    }
    let (kept, built) = rt.answers.counts();
    for (outcome, now) in [("kept", kept), ("built", built)] {
        let counter = metrics.answers.get_or_create(&OutcomeLabels {
            outcome: outcome.into(),
        });
        counter.inc_by(now.saturating_sub(counter.get()));
    }
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &metrics.registry) {
        tracing::warn!(error = %e, "metrics could not be written");
    }
    out
}
