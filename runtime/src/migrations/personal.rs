//! One rewrite of a store written before personal data was sealed (event version 1.0 of the
//! orchestra events, up to commit e9d2c5f), run once at start after the SQL migrations:
//!
//! - members get a key each (`personal_keys`) and their names and openids are sealed with it;
//!   names and bound openids are reserved by keyed hash (`reservations`);
//! - absence streams, keyed by the member's name, are re-keyed by member id, and their reasons
//!   and results sealed with the applier's key; appliers and processors become member ids;
//! - the `actor` of every event by a member becomes the member's subject;
//! - snapshots are dropped (states are replayed), the orchestra read models and the hash chain
//!   are rebuilt from the rewritten log by the projector, the retry cache is emptied (it held
//!   answers in clear), and mails are tagged with the member they are about.
//!
//! This is the one time events are edited: leaving the clear values in the log would make
//! every later erasure of these members a lie. The chain is recomputed over the rewritten log;
//! an operator who published a head before must publish the new one (README "Auditors").
//! Everything happens in one transaction under an advisory lock: a crash leaves the old store,
//! and two processes starting at once rewrite it once.

use std::collections::HashMap;

use crate::personal as crypto;
use aggregates::orchestra::roster::{member_subject, NAME_SCOPE, OPENID_SCOPE};
use anyhow::{anyhow, Context};
use serde_json::{json, Map, Value};
use sqlx::PgConnection;

use crate::personal::{blind_index_secret, key_of};

const NAME: &str = "personal-data-v2";
const BATCH: i64 = 5_000;

pub async fn run(conn: &mut PgConnection) -> anyhow::Result<()> {
    let Some(mut tx) = super::begin_once(conn, NAME).await? else {
        return Ok(());
    };
    let secret = blind_index_secret(&mut tx).await?;
    let mut rewrite = Rewrite {
        secret,
        keys: HashMap::new(),
        members: HashMap::new(),
    };
    let roster = rewrite.roster(&mut tx).await?;
    let absences = rewrite.absences(&mut tx).await?;
    if roster + absences > 0 {
        sqlx::query(
            "DELETE FROM aggregate_snapshots WHERE aggregate_type IN ('Roster', 'MemberAbsences')",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "TRUNCATE event_links, orchestra_members, orchestra_absences, \
                      orchestra_notify_addresses, orchestra_season",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE projection_checkpoints SET position = 0, transaction_id = 0 \
             WHERE name IN ('event_chain', 'orchestra_roster', 'orchestra_absences')",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE mail_outbox o SET person = 'orchestra-member:' || \
                    (e.payload -> 'AbsenceApplied' ->> 'applier') \
             FROM events e \
             WHERE e.position = o.event_position AND e.aggregate_type = 'MemberAbsences' \
               AND o.person IS NULL",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM idempotency_keys")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "SELECT setval('member_id_seq', m, true) FROM \
             (SELECT max((payload -> 'MemberEnrolled' ->> 'member_id')::bigint) AS m \
              FROM events WHERE aggregate_type = 'Roster' AND event_type = 'MemberEnrolled') x \
             WHERE m IS NOT NULL",
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("INSERT INTO data_migrations (name, detail) VALUES ($1, $2)")
        .bind(NAME)
        .bind(format!(
            "sealed and re-keyed {roster} roster events and {absences} absence events"
        ))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if roster + absences > 0 {
        tracing::info!(
            roster,
            absences,
            "personal data of the existing log sealed; read models and hash chain will be rebuilt"
        );
    }
    Ok(())
}

struct Rewrite {
    secret: Vec<u8>,
    keys: HashMap<String, crypto::Key>,
    /// Roster name → member id.
    members: HashMap<String, u64>,
}

type Row = (String, i64, String, Value, Value);

impl Rewrite {
    async fn seal(
        &mut self,
        conn: &mut PgConnection,
        id: u64,
        clear: &str,
    ) -> anyhow::Result<Value> {
        let subject = member_subject(id);
        if !self.keys.contains_key(&subject) {
            let key = key_of(conn, &subject)
                .await
                .with_context(|| format!("key of {subject}"))?;
            self.keys.insert(subject.clone(), key);
        }
        Ok(serde_json::to_value(crypto::seal(
            &subject,
            &self.keys[&subject],
            clear,
        ))?)
    }

    async fn reserve(
        &self,
        conn: &mut PgConnection,
        scope: &str,
        clear: &str,
        id: u64,
    ) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO reservations (scope, blind, owner) VALUES ($1, $2, $3)")
            .bind(scope)
            .bind(crypto::blind(&self.secret, scope, clear).0.as_slice())
            .bind(member_subject(id))
            .execute(conn)
            .await?;
        Ok(())
    }

    fn member(&self, name: &Value) -> anyhow::Result<u64> {
        let name = name
            .as_str()
            .ok_or_else(|| anyhow!("a name that is not a string"))?;
        self.members
            .get(name)
            .copied()
            .ok_or_else(|| anyhow!("an event names someone who was never enrolled"))
    }

    /// The actor of a member's event becomes their subject (an operator's stays as it was,
    /// even if a member has the same name).
    fn metadata(&self, mut metadata: Value) -> Value {
        let by_member = matches!(
            metadata.get("actor_kind").and_then(Value::as_str),
            Some("member" | "manager")
        );
        if !by_member {
            return metadata;
        }
        if let Some(actor) = metadata.get_mut("actor") {
            if let Some(id) = actor.as_str().and_then(|a| self.members.get(a)) {
                *actor = Value::String(member_subject(*id));
            }
        }
        metadata
    }

    async fn roster(&mut self, conn: &mut PgConnection) -> anyhow::Result<usize> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT aggregate_id, sequence, event_type, payload::jsonb, metadata::jsonb \
             FROM events WHERE aggregate_type = 'Roster' AND event_version = '1.0' \
             ORDER BY aggregate_id, sequence",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut bindings = 0u64;
        let mut bound: HashMap<u64, String> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for (stream, sequence, event_type, payload, metadata) in rows {
            let fields = payload
                .get(&event_type)
                .cloned()
                .ok_or_else(|| anyhow!("roster event {sequence} has no {event_type}"))?;
            let new = match event_type.as_str() {
                "MemberEnrolled" => {
                    let id = fields["member_id"]
                        .as_u64()
                        .ok_or_else(|| anyhow!("roster event {sequence}: no member id"))?;
                    let name = fields["name"].as_str().unwrap_or_default().to_string();
                    self.members.insert(name.clone(), id);
                    self.reserve(conn, NAME_SCOPE, &name, id).await?;
                    json!({ "member_id": id, "name": self.seal(conn, id, &name).await?,
                            "section": fields["section"], "role": fields["role"] })
                }
                "MemberReassigned" => json!({ "member_id": self.member(&fields["name"])?,
                    "section": fields["section"], "role": fields["role"] }),
                "WechatBound" => {
                    let id = self.member(&fields["name"])?;
                    let openid = fields["openid"].as_str().unwrap_or_default().to_string();
                    bindings += 1;
                    bound.insert(id, openid.clone());
                    json!({ "member_id": id, "openid": self.seal(conn, id, &openid).await?,
                            "binding": bindings })
                }
                "WechatUnbound" => {
                    let id = self.member(&fields["name"])?;
                    bound.remove(&id);
                    json!({ "member_id": id })
                }
                _ => fields,
            };
            out.push((
                stream,
                sequence,
                wrap(&event_type, new),
                self.metadata(metadata),
            ));
        }
        for (id, openid) in &bound {
            self.reserve(conn, OPENID_SCOPE, openid, *id).await?;
        }
        let count = out.len();
        update(conn, "Roster", out).await?;
        Ok(count)
    }

    async fn absences(&mut self, conn: &mut PgConnection) -> anyhow::Result<usize> {
        // A stream named by a number could collide with a member id: move those aside first.
        sqlx::query(
            "UPDATE events SET aggregate_id = 'v1:' || aggregate_id \
             WHERE aggregate_type = 'MemberAbsences' AND event_version = '1.0' \
               AND aggregate_id ~ '^[0-9]+$'",
        )
        .execute(&mut *conn)
        .await?;
        let mut count = 0;
        let mut after = (String::new(), 0i64);
        loop {
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT aggregate_id, sequence, event_type, payload::jsonb, metadata::jsonb \
                 FROM events WHERE aggregate_type = 'MemberAbsences' AND event_version = '1.0' \
                   AND (aggregate_id, sequence) > ($1, $2) \
                 ORDER BY aggregate_id, sequence LIMIT $3",
            )
            .bind(&after.0)
            .bind(after.1)
            .bind(BATCH)
            .fetch_all(&mut *conn)
            .await?;
            let Some((last_stream, last_sequence, ..)) = rows.last() else {
                break;
            };
            after = (last_stream.clone(), *last_sequence);
            let mut out = Vec::with_capacity(rows.len());
            for (stream, sequence, event_type, payload, metadata) in rows {
                let name = stream.strip_prefix("v1:").unwrap_or(&stream);
                let applier = self.member(&Value::String(name.to_string()))?;
                let mut fields = payload
                    .get(&event_type)
                    .cloned()
                    .ok_or_else(|| anyhow!("absence event has no {event_type}"))?;
                let object = fields
                    .as_object_mut()
                    .ok_or_else(|| anyhow!("absence event is not an object"))?;
                if object.contains_key("applier") {
                    object.insert("applier".into(), json!(applier));
                }
                if let Some(processor) = object.get("processor").cloned() {
                    object.insert("processor".into(), json!(self.member(&processor)?));
                }
                for field in ["reason", "result"] {
                    if let Some(text) = object.get(field).and_then(Value::as_str) {
                        let text = text.to_string();
                        object.insert(field.into(), self.seal(conn, applier, &text).await?);
                    }
                }
                out.push((
                    format!("{stream}\u{0}{applier}"),
                    sequence,
                    wrap(&event_type, fields),
                    self.metadata(metadata),
                ));
            }
            count += out.len();
            update(conn, "MemberAbsences", out).await?;
        }
        Ok(count)
    }
}

fn wrap(event_type: &str, fields: Value) -> Value {
    let mut map = Map::new();
    map.insert(event_type.to_string(), fields);
    Value::Object(map)
}

/// Write rewritten events back: `stream` is the old id, or `old\0new` to re-key the stream.
async fn update(
    conn: &mut PgConnection,
    aggregate_type: &str,
    rows: Vec<(String, i64, Value, Value)>,
) -> sqlx::Result<()> {
    let mut old = Vec::with_capacity(rows.len());
    let mut new = Vec::with_capacity(rows.len());
    let mut sequences = Vec::with_capacity(rows.len());
    let mut payloads = Vec::with_capacity(rows.len());
    let mut metadata = Vec::with_capacity(rows.len());
    for (stream, sequence, payload, meta) in rows {
        let (from, to) = match stream.split_once('\u{0}') {
            Some((from, to)) => (from.to_string(), to.to_string()),
            None => (stream.clone(), stream),
        };
        old.push(from);
        new.push(to);
        sequences.push(sequence);
        payloads.push(payload);
        metadata.push(meta);
    }
    sqlx::query(
        "UPDATE events e SET aggregate_id = u.new, payload = u.p::json, metadata = u.m::json, \
                event_version = '2.0' \
         FROM unnest($2::text[], $3::text[], $4::bigint[], $5::jsonb[], $6::jsonb[]) \
              AS u(old, new, seq, p, m) \
         WHERE e.aggregate_type = $1 AND e.aggregate_id = u.old AND e.sequence = u.seq",
    )
    .bind(aggregate_type)
    .bind(&old)
    .bind(&new)
    .bind(&sequences)
    .bind(&payloads)
    .bind(&metadata)
    .execute(conn)
    .await?;
    Ok(())
}
