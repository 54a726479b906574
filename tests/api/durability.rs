//! The log is the truth: restarts keep everything, a crash after a commit loses nothing, a
//! rebuild gives the same rows, and global positions are gap-safe.

use std::sync::Arc;
use std::time::Duration;

use aggregates::orchestra::absences::{AbsenceCommand, AbsenceRequest};
use aggregates::orchestra::{AbsenceType, Section};
use futures::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

/// Every read-model row, in a stable order.
pub(crate) async fn read_models(app: &TestApp) -> Value {
    let mut all = serde_json::Map::new();
    for (table, order) in [
        ("orchestra_members", "id"),
        ("orchestra_notify_addresses", "email"),
        ("orchestra_season", "season"),
        ("orchestra_absences", "id"),
    ] {
        let rows: Vec<Value> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(t) FROM {table} t ORDER BY {order}"
        ))
        .fetch_all(&app.app.rt.pool)
        .await
        .unwrap();
        all.insert(table.into(), Value::Array(rows));
    }
    Value::Object(all)
}

/// A bit of everything: enrolment, bindings, notify, absences, changes, decisions, a cancel.
async fn activity(app: &TestApp) -> crate::helpers::Tokens {
    let t = app.with_roster().await;
    app.import_roster("name,section,role\nDavid,wind,member\n")
        .await;
    let a = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let b = app.apply_id(&t.wendy, "2026-03-13", "管乐分排").await;
    let c = app.apply_id(&t.percy, "2026-03-14", "全体排练").await;
    app.process(a, &t.alice, "ok", true).await;
    app.change(&t.wendy, b, json!({"time_absence": "2026-03-15"}))
        .await;
    app.delete(&format!("/absence/{c}/"), &t.percy).await;
    t
}

#[tokio::test]
async fn a_restart_keeps_every_state() {
    let app = spawn_app().await;
    let t = activity(&app).await;
    let before = read_models(&app).await;
    let mine_before = app.get("/absence/", &t.david).await.body;
    let app = app.restart().await;
    assert_eq!(read_models(&app).await, before);
    // Tokens signed with the configured secret survive; the binding holds.
    assert_eq!(app.get("/absence/", &t.david).await.body, mine_before);
    let impostor = app
        .try_login(json!({"name": "David", "code": "code-Someone"}))
        .await;
    assert_eq!(impostor.status, 403);
    // And the quota remembers: Percy cancelled, so one chance is there; then none.
    assert_eq!(
        app.apply(&t.percy, "2026-03-20", "全体排练").await.status,
        201
    );
    assert_eq!(
        app.apply(&t.percy, "2026-03-21", "全体排练").await.status,
        403
    );
}

/// Commit through a bus that projects nothing, on its own connections: another process that
/// died right after its commit.
async fn commit_without_projecting(database_url: &str, member: u64, section: Section, date: &str) {
    let mut config = crate::helpers::test_config(database_url, "http://127.0.0.1:1", 1);
    config.pool_size = 2;
    let rt = runtime::Runtime::start(config, vec![]).await.unwrap();
    let orphan = ensemble::orchestra::Orchestra::new(rt.clone());
    let keys = &rt.keys;
    let subject = aggregates::orchestra::roster::member_subject(member);
    let command = AbsenceCommand::Apply {
        applier: member,
        section,
        season: 0,
        request: AbsenceRequest {
            date: date.parse().unwrap(),
            kind: AbsenceType::Tutti,
            reason: keys
                .seal(&subject, "committed, never projected")
                .await
                .unwrap(),
        },
    };
    orphan
        .absences
        .execute(
            &member.to_string(),
            command,
            &runtime::bus::Actor::operator(),
        )
        .await
        .unwrap();
    rt.pool.close().await;
}

#[tokio::test]
async fn events_committed_before_a_crash_are_projected_on_the_next_start() {
    let mut app = spawn_app().await;
    let t = app.with_roster().await;
    let david = app.member_id("David").await;
    app.stop().await;
    // Nothing is running when a process commits and dies before projecting.
    commit_without_projecting(&app.database_url, david, Section::Stringed, "2026-03-12").await;
    let app = app.restart().await;
    let mine = app.get("/absence/", &t.david).await.body;
    assert_eq!(mine[0]["reason"], "committed, never projected");
}

#[tokio::test]
async fn a_running_server_picks_up_what_another_process_committed() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let wendy = app.member_id("Wendy").await;
    commit_without_projecting(&app.database_url, wendy, Section::Wind, "2026-03-12").await;
    let seen = crate::helpers::eventually(Duration::from_secs(10), || async {
        app.get("/absence/", &t.wendy).await.rows() == 1
    })
    .await;
    assert!(
        seen,
        "the background catch-up did not project the foreign commit"
    );
}

#[tokio::test]
async fn a_rebuild_gives_the_same_rows() {
    let app = spawn_app().await;
    activity(&app).await;
    let live = read_models(&app).await;
    // Scribble over the read models, then rebuild them from the log.
    app.sql("UPDATE orchestra_absences SET reason = 'scribbled'")
        .await;
    app.sql("DELETE FROM orchestra_members WHERE name = 'Percy'")
        .await;
    for p in app
        .app
        .rt
        .projections
        .iter()
        .filter(|p| !p.tables().is_empty())
    {
        runtime::runner::rebuild(&app.app.rt.tx_pool, &[p.as_ref()], &|_, _| {})
            .await
            .unwrap();
    }
    assert_eq!(read_models(&app).await, live);
    // The mail outbox is never rebuilt: that would mail again.
    let outbox = app
        .app
        .rt
        .projections
        .iter()
        .find(|p| p.name() == "mail_outbox")
        .unwrap();
    assert!(
        runtime::runner::rebuild(&app.app.rt.tx_pool, &[outbox.as_ref()], &|_, _| {})
            .await
            .is_err()
    );
}

#[tokio::test]
async fn every_event_names_its_actor_and_request() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let reply = app
        .authed(reqwest::Method::POST, "/absence/", &t.david)
        .json(&json!({"reason": "r", "time_absence": "2026-03-12", "type": "全体排练"}))
        .send()
        .await
        .unwrap();
    let request_id = reply.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(reply.status(), 201);
    let (metadata, recorded): (Value, bool) = sqlx::query_as(
        "SELECT metadata::jsonb, recorded_at IS NOT NULL FROM events WHERE event_type = 'AbsenceApplied'",
    )
    .fetch_one(&app.app.rt.pool)
    .await
    .unwrap();
    assert!(recorded);
    assert_eq!(metadata["actor_kind"], "member");
    // The member's opaque subject, never their name.
    let david = app.member_id("David").await;
    assert_eq!(metadata["actor"], format!("orchestra-member:{david}"));
    assert_eq!(metadata["channel"], "http");
    assert_eq!(metadata["request_id"], request_id.as_str());
    let operator: Value = sqlx::query_scalar(
        "SELECT metadata::jsonb FROM events WHERE event_type = 'MemberEnrolled' LIMIT 1",
    )
    .fetch_one(&app.app.rt.pool)
    .await
    .unwrap();
    assert_eq!(operator["actor_kind"], "operator");
    // No secret reaches the log: the session key WeChat returned is nowhere.
    let leaked = app.scalar("SELECT count(*) FROM events WHERE payload::text LIKE '%secret-session-key%' OR metadata::text LIKE '%secret%'").await;
    assert_eq!(leaked, 0);
}

#[tokio::test]
async fn a_reader_following_the_log_sees_every_event_once_and_in_order() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let start = runtime::runner::LogPosition {
        transaction_id: 0,
        position: 0,
    };
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pool = app.app.rt.pool.clone();
    let reader = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut last = start;
            let mut seen = Vec::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let batch = runtime::runner::events_after(&pool, last).await.unwrap();
                for event in &batch {
                    assert!(event.log_position() > last, "out of order: {last:?}");
                    last = event.log_position();
                    seen.push(event.position);
                }
                if finished && batch.is_empty() {
                    return seen;
                }
            }
        })
    };
    // Many writers on different aggregates at once.
    let tokens = [&t.david, &t.wendy, &t.percy, &t.alice];
    join_all((0..40).map(|i| {
        let token = tokens[i % 4].clone();
        let app = &app;
        async move {
            let date = format!("2026-05-{:02}", i / 4 + 1);
            app.apply(&token, &date, "全体排练").await
        }
    }))
    .await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut seen = reader.await.unwrap();
    // Every committed event, each once: none skipped, however the commits interleaved.
    let all: Vec<i64> = sqlx::query_scalar("SELECT position FROM events ORDER BY position")
        .fetch_all(&app.app.rt.pool)
        .await
        .unwrap();
    seen.sort();
    assert_eq!(seen, all);
}

#[tokio::test]
async fn a_writer_in_flight_holds_back_later_commits_from_every_reader() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.waits.projection = Duration::from_millis(300);
    })
    .await;
    let t = app.with_roster().await;
    let start = app.app.rt.projector.pass().await.unwrap();
    assert!(!start.skipped);
    let before: Vec<i64> = sqlx::query_scalar("SELECT position FROM events")
        .fetch_all(&app.app.rt.pool)
        .await
        .unwrap();
    let last_seen = runtime::runner::applied_position(
        &mut app.app.rt.pool.acquire().await.unwrap(),
        &app.app.rt.projections,
    )
    .await
    .unwrap();
    // A writer that has inserted its event but not committed yet.
    let mut in_flight = app.app.rt.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Probe', 'probe', 1, 'Probed', '1.0', '{}', '{}')",
    )
    .execute(&mut *in_flight)
    .await
    .unwrap();
    // Another writer commits meanwhile (through the API): committed, answered...
    let reply = app.apply(&t.david, "2026-03-12", "全体排练").await;
    assert_eq!(reply.status, 201);
    // ...but no reader may see it yet: the earlier writer could still commit below it.
    assert!(runtime::runner::events_after(&app.app.rt.pool, last_seen)
        .await
        .unwrap()
        .is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.get("/absence/", &t.david).await.body,
        serde_json::json!([])
    );
    in_flight.commit().await.unwrap();
    // Now both, the late commit first, and the read models take them.
    let after: Vec<i64> = runtime::runner::events_after(&app.app.rt.pool, last_seen)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(!before.contains(&after[0]) && !before.contains(&after[1]));
    let probe: i64 = app
        .scalar("SELECT position FROM events WHERE aggregate_type = 'Probe'")
        .await;
    assert_eq!(after[0], probe);
    assert!(
        crate::helpers::eventually(Duration::from_secs(5), || async {
            app.get("/absence/", &t.david).await.rows() == 1
        })
        .await
    );
}

#[tokio::test]
async fn a_long_stream_loads_from_its_snapshot_and_the_snapshot_equals_a_full_replay() {
    use aggregates::orchestra::absences::MemberAbsences;
    let app = crate::helpers::spawn_app_with(|c| c.write_limit = 0).await;
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    for i in 0..45 {
        assert_eq!(
            app.process(id, &t.alice, &format!("decision {i}"), i % 2 == 0)
                .await
                .status,
            200
        );
    }
    let pool = &app.app.rt.pool;
    let david = app.member_id("David").await.to_string();
    let loaded = runtime::store::load::<MemberAbsences>(pool, &david, 1)
        .await
        .unwrap();
    assert_eq!(loaded.sequence, 46);
    // Loading read the snapshot and at most SNAPSHOT_EVERY events after it.
    assert!(loaded.snapshot_sequence > 0);
    assert!(loaded.sequence - loaded.snapshot_sequence < runtime::store::SNAPSHOT_EVERY);
    // A state version nobody wrote forces a full replay: the same state.
    let replayed = runtime::store::load::<MemberAbsences>(pool, &david, 999)
        .await
        .unwrap();
    assert_eq!(replayed.snapshot_sequence, 0);
    assert_eq!(
        serde_json::to_value(&loaded.state).unwrap(),
        serde_json::to_value(&replayed.state).unwrap()
    );
    let last = &loaded.state.absence(id as u64).unwrap().decision;
    let result = app
        .app
        .rt
        .keys
        .open(&last.as_ref().unwrap().result)
        .await
        .unwrap();
    assert_eq!(result.as_deref(), Some("decision 44"));
}

#[tokio::test]
async fn postgres_es_still_reads_the_streams_our_store_writes() {
    use aggregates::orchestra::absences::{AbsenceEvent, MemberAbsences};
    use cqrs_es::persist::PersistedEventRepository;
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    app.process(id, &t.alice, "fine", true).await;
    let repo = postgres_es::PostgresEventRepository::new(app.app.rt.pool.clone());
    let david = app.member_id("David").await.to_string();
    let events = repo.get_events::<MemberAbsences>(&david).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].sequence, 2);
    let first: AbsenceEvent = serde_json::from_value(events[0].payload.clone()).unwrap();
    assert!(
        matches!(first, AbsenceEvent::AbsenceApplied { absence_id, .. } if absence_id == id as u64)
    );
    let alice = app.member_id("Alice").await;
    assert_eq!(
        events[1].metadata["actor"],
        format!("orchestra-member:{alice}")
    );
}

/// Index names of the read-model tables, as the migrations made them.
async fn index_names(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() \
         AND tablename LIKE 'orchestra_%' ORDER BY 1",
    )
    .fetch_all(&app.app.rt.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_rebuild_is_built_beside_the_live_tables_while_requests_go_on_and_swapped_in() {
    let app = spawn_app().await;
    let t = activity(&app).await;
    // An earlier rebuild that died left its shadow tables behind.
    sqlx::Executor::execute(
        &app.app.rt.pool,
        "CREATE SCHEMA ensemble_rebuild; CREATE TABLE ensemble_rebuild.leftover (x int)",
    )
    .await
    .unwrap();
    let indexes = index_names(&app).await;
    let mine = app.get("/absence/", &t.david).await.rows();
    let rebuildable = app.rebuildable();
    let done = std::sync::atomic::AtomicBool::new(false);
    let rebuild = async {
        let n = runtime::runner::rebuild(&app.app.rt.tx_pool, &rebuildable, &|_, _| {})
            .await
            .unwrap();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        n
    };
    // Reads and writes all along: never an error, never an empty or partial view.
    let traffic = async {
        let mut i = 0;
        let mut failures = Vec::new();
        while !done.load(std::sync::atomic::Ordering::SeqCst) || i < 30 {
            let read = app.get("/absence/", &t.david).await;
            if read.status != 200 || read.body.as_array().map_or(0, Vec::len) < mine {
                failures.push(format!("GET: {} {}", read.status, read.body));
            }
            let next = app.get("/manager/", &t.alice).await;
            if next.status != 200 {
                failures.push(format!("GET /manager/: {}", next.status));
            }
            if i % 3 == 0 {
                let reply = app
                    .post(
                        "/absence/",
                        Some(&t.alice),
                        json!({"reason": "r", "time_absence": format!("2026-04-{:02}", 1 + i / 3), "type": "全体排练"}),
                    )
                    .await;
                if reply.status != 201 && reply.status != 403 {
                    failures.push(format!("POST: {} {}", reply.status, reply.body));
                }
            }
            i += 1;
        }
        failures
    };
    let (replayed, failures) = tokio::join!(rebuild, traffic);
    assert!(failures.is_empty(), "{failures:?}");
    assert!(replayed > 0);
    // The shadow schema is gone, the index names are the migrations' own, and the swapped-in
    // tables hold what a rebuild gives, including what was written during the rebuild.
    assert_eq!(
        app.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'ensemble_rebuild'")
            .await,
        0
    );
    assert_eq!(index_names(&app).await, indexes);
    let live = read_models(&app).await;
    runtime::runner::rebuild(&app.app.rt.tx_pool, &rebuildable, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(read_models(&app).await, live);
    let alice = app.member_id("Alice").await;
    let alices: i64 = app
        .scalar(&format!("SELECT count(*) FROM events WHERE event_type = 'AbsenceApplied' AND aggregate_id = '{alice}'"))
        .await;
    assert_eq!(
        live["orchestra_absences"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["applier_id"] == alice)
            .count() as i64,
        alices
    );
}

/// Event versioning: decisions were written as version 2.0 (`permission: bool`); 2.1 names the
/// verdict. A store holding 2.0 decisions loads its aggregates, replays and rebuilds through
/// the upcaster, and new decisions are written as 2.1.
#[tokio::test]
async fn decisions_stored_as_version_2_0_are_read_through_the_upcaster_everywhere() {
    use aggregates::orchestra::absences::MemberAbsences;
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let approved = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let refused = app.apply_id(&t.david, "2026-03-13", "全体排练").await;
    assert_eq!(
        app.process(approved, &t.alice, "fine", true).await.status,
        200
    );
    assert_eq!(
        app.process(refused, &t.alice, "no", false).await.status,
        200
    );
    let live = read_models(&app).await;
    // The decisions as version 2.0 wrote them.
    let rewritten = sqlx::query(
        "UPDATE events SET event_version = '2.0', payload = jsonb_build_object('AbsenceProcessed', \
             ((payload::jsonb -> 'AbsenceProcessed') - 'verdict') \
             || jsonb_build_object('permission', payload::jsonb #>> '{AbsenceProcessed,verdict}' = 'approved'))::json \
         WHERE event_type = 'AbsenceProcessed'",
    )
    .execute(&app.app.rt.pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(rewritten, 2);
    app.sql("DELETE FROM aggregate_snapshots").await;
    let app = app.restart().await;
    // Aggregates load.
    let david = app.member_id("David").await.to_string();
    let loaded = runtime::store::load::<MemberAbsences>(&app.app.rt.pool, &david, 1)
        .await
        .unwrap();
    let permits = |id: i64| {
        loaded
            .state
            .absence(id as u64)
            .unwrap()
            .decision
            .as_ref()
            .unwrap()
            .permission
    };
    assert!(permits(approved) && !permits(refused));
    // Replays (the auditors' fold) read them.
    let (state, history) = runtime::audit::record(&app.app.rt.pool, "MemberAbsences", &david, None)
        .await
        .unwrap();
    assert_eq!(history.len(), 4);
    let text = state.to_string();
    assert!(
        text.contains("\"permission\":true") && text.contains("\"permission\":false"),
        "{text}"
    );
    // Rebuilds give the same rows.
    runtime::runner::rebuild(&app.app.rt.tx_pool, &app.rebuildable(), &|_, _| {})
        .await
        .unwrap();
    assert_eq!(read_models(&app).await, live);
    // A new decision on a 2.0 history is written as 2.1.
    assert_eq!(
        app.process(refused, &t.alice, "fine after all", true)
            .await
            .status,
        200
    );
    let versions: Vec<String> = sqlx::query_scalar(
        "SELECT event_version FROM events WHERE event_type = 'AbsenceProcessed' ORDER BY position",
    )
    .fetch_all(&app.app.rt.pool)
    .await
    .unwrap();
    assert_eq!(versions, ["2.0", "2.0", "2.1"]);
    let all = app.get("/manager/", &t.alice).await.body;
    assert_eq!(all[1]["permission"], true);
}
