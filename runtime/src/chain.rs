//! Tamper evidence: a hash chain over the whole log. The `event_chain` consumer follows the log
//! like any projection (checkpointed, in (transaction_id, position) order, below the horizon)
//! and writes one link per event: `link = SHA-256(previous link || content)`, where the content
//! is the event's position, transaction, aggregate, sequence, type, version, payload, metadata
//! and time, encoded as one JSON array. [`verify`] recomputes the chain from the log.
//!
//! What it catches: an event edited, deleted or inserted out of band below the chain's head,
//! also by a database superuser with triggers disabled. What it cannot catch: someone who
//! rewrites the whole chain from the point of their edit on; anchor the head elsewhere
//! (`ensemble events verify --print-head`) to catch that too.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, Row};

use crate::runner::{LogPosition, Projection, ProjectionError};
use crate::stored::StoredEvent;
use crate::stored::SELECT_EVENTS;

/// The link before the first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// The consumer; it remembers the last link it wrote (and the event it covers), so that a pass
/// that finds its checkpoint where its last pass left it need not read the link back.
#[derive(Default)]
pub struct EventChain {
    last: std::sync::Mutex<Option<(LogPosition, [u8; 32])>>,
}

impl EventChain {
    /// Its checkpoint's name.
    pub const NAME: &'static str = "event_chain";
}

#[async_trait]
impl Projection for EventChain {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// Never rebuilt.
    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    fn kept_tables(&self) -> &'static [&'static str] {
        &["event_links"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let link = head(tx).await?.map_or(GENESIS, |(_, link)| link);
        self.link(tx, link, events).await
    }

    async fn apply_from(
        &self,
        tx: &mut PgConnection,
        seen: LogPosition,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        // What the last pass here wrote, if the checkpoint is where it left it (that pass
        // committed, and nobody else has linked since); else the chain's head as stored.
        let remembered = *self.last.lock().unwrap();
        let link = match remembered {
            Some((at, link)) if at == seen => link,
            _ => head(tx).await?.map_or(GENESIS, |(_, link)| link),
        };
        self.link(tx, link, events).await
    }
}

impl EventChain {
    /// Write the links of `events` after `link`.
    async fn link(
        &self,
        tx: &mut PgConnection,
        mut link: [u8; 32],
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let mut transactions = Vec::with_capacity(events.len());
        let mut positions = Vec::with_capacity(events.len());
        let mut links = Vec::with_capacity(events.len());
        for event in events {
            link = next_link(&link, event);
            transactions.push(event.transaction_id);
            positions.push(event.position);
            links.push(link.to_vec());
        }
        sqlx::query(
            "INSERT INTO event_links (transaction_id, position, link) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[])",
        )
        .bind(&transactions)
        .bind(&positions)
        .bind(&links)
        .execute(&mut *tx)
        .await?;
        *self.last.lock().unwrap() = Some((last.log_position(), link));
        Ok(())
    }
}

/// The last link of the chain and the event it covers.
pub async fn head(conn: &mut PgConnection) -> Result<Option<(LogPosition, [u8; 32])>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT transaction_id, position, link FROM event_links \
         ORDER BY transaction_id DESC, position DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| {
        (
            LogPosition {
                transaction_id: r.get(0),
                position: r.get(1),
            },
            to_link(r.get::<Vec<u8>, _>(2)),
        )
    }))
}

fn to_link(bytes: Vec<u8>) -> [u8; 32] {
    let mut link = [0; 32];
    let n = bytes.len().min(32);
    link[..n].copy_from_slice(&bytes[..n]);
    link
}

/// The link after `previous` for `event`.
pub fn next_link(previous: &[u8; 32], event: &StoredEvent) -> [u8; 32] {
    let content = serde_json::json!([
        event.position,
        event.transaction_id,
        event.aggregate_type,
        event.aggregate_id,
        event.sequence,
        event.event_type,
        event.event_version,
        event.payload,
        event.metadata,
        event.recorded_at.timestamp_micros(),
    ]);
    let mut hash = Sha256::new();
    hash.update(previous);
    hash.update(content.to_string().as_bytes());
    hash.finalize().into()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every event up to the head matches its link.
    Intact {
        /// Events covered by the chain.
        checked: u64,
        /// The last link, and the event it covers (None for an empty log).
        head: Option<(LogPosition, String)>,
        /// Events committed after the head, not chained yet (the consumer is behind).
        unchained: u64,
    },
    /// The first place where the log and the chain disagree.
    Broken { position: i64, reason: &'static str },
}

const PAGE: i64 = 10_000;

/// Recompute the chain from the log, in one consistent snapshot (a `REPEATABLE READ`
/// transaction on `conn`), page by page.
pub async fn verify(conn: &mut PgConnection) -> Result<Verdict, ProjectionError> {
    verify_with(conn, &|_, _| {}).await
}

/// [`verify`], calling `progress(read, total)` after each page (`total`: the events in the
/// snapshot).
pub async fn verify_with(
    conn: &mut PgConnection,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Verdict, ProjectionError> {
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *conn)
        .await?;
    let verdict = walk(conn, progress).await;
    sqlx::query("ROLLBACK").execute(&mut *conn).await?;
    verdict
}

async fn walk(
    conn: &mut PgConnection,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Verdict, ProjectionError> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut *conn)
        .await?;
    let total = total as u64;
    let mut read = 0u64;
    progress(0, total);
    let chain_head = head(conn).await?;
    // How far the chain says it has come: its own checkpoint, or its last link if that is
    // further. Every event up to there must have a link; deleting links (even all of them)
    // does not turn chained events into "not chained yet".
    let checkpoint: Option<LogPosition> = sqlx::query_as(
        "SELECT transaction_id, position FROM projection_checkpoints WHERE name = $1",
    )
    .bind(EventChain::NAME)
    .fetch_optional(&mut *conn)
    .await?;
    let chained_to = checkpoint
        .into_iter()
        .chain(chain_head.as_ref().map(|(h, _)| *h))
        .max();
    let below_head = |at: LogPosition| chained_to.is_some_and(|h| at <= h);
    let mut link = GENESIS;
    // From the very first row, whatever its position: a row slipped in below every real one
    // (a negative or zero position) is read too.
    let mut after = LogPosition {
        transaction_id: i64::MIN,
        position: i64::MIN,
    };
    let mut checked = 0;
    let mut unchained = 0;
    loop {
        let events: Vec<StoredEvent> = sqlx::query_as(&format!(
            "{SELECT_EVENTS} WHERE (transaction_id, position) > ($1, $2) \
             ORDER BY transaction_id, position LIMIT $3"
        ))
        .bind(after.transaction_id)
        .bind(after.position)
        .bind(PAGE)
        .fetch_all(&mut *conn)
        .await?;
        let end = match events.last() {
            Some(last) if events.len() as i64 == PAGE => last.log_position(),
            _ => LogPosition::END,
        };
        // The links of the same stretch of the log: a link on its own is an event deleted, an
        // event without a link below the head one inserted out of band.
        let links: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT transaction_id, position, link FROM event_links \
             WHERE (transaction_id, position) > ($1, $2) AND (transaction_id, position) <= ($3, $4) \
             ORDER BY transaction_id, position",
        )
        .bind(after.transaction_id)
        .bind(after.position)
        .bind(end.transaction_id)
        .bind(end.position)
        .fetch_all(&mut *conn)
        .await?;
        let mut links = links
            .into_iter()
            .map(|(t, p, l)| {
                (
                    LogPosition {
                        transaction_id: t,
                        position: p,
                    },
                    l,
                )
            })
            .peekable();
        for event in &events {
            let at = event.log_position();
            if let Some((orphan, _)) = links.next_if(|(l, _)| *l < at) {
                return Ok(Verdict::Broken {
                    position: orphan.position,
                    reason: "the event covered by this link is missing (deleted)",
                });
            }
            match links.next_if(|(l, _)| *l == at) {
                Some((_, stored)) => {
                    link = next_link(&link, event);
                    if stored != link {
                        return Ok(Verdict::Broken {
                            position: at.position,
                            reason: "the event does not match its link (edited, or an earlier event was removed)",
                        });
                    }
                    checked += 1;
                }
                None if below_head(at) => {
                    return Ok(Verdict::Broken {
                        position: at.position,
                        reason:
                            "this event has no link although the chain covers it (inserted out of band, or its link deleted)",
                    })
                }
                None => unchained += 1,
            }
        }
        if let Some((orphan, _)) = links.next() {
            return Ok(Verdict::Broken {
                position: orphan.position,
                reason: "the event covered by this link is missing (deleted)",
            });
        }
        read += events.len() as u64;
        progress(read, total);
        if end == LogPosition::END {
            break;
        }
        after = end;
    }
    // The chain commits its links and its checkpoint together: its last link covers the event
    // at its checkpoint. If that event and its link are both gone (the newest ones deleted),
    // the walk above cannot see it; this can.
    if let Some(cp) = checkpoint.filter(|cp| *cp > LogPosition::default()) {
        if chain_head.as_ref().map(|(h, _)| *h) != Some(cp) {
            return Ok(Verdict::Broken {
                position: cp.position,
                reason: "the chain's last event and its link are missing (deleted)",
            });
        }
    }
    Ok(Verdict::Intact {
        checked,
        head: chain_head.map(|(at, link)| (at, hex(&link))),
        unchained,
    })
}
