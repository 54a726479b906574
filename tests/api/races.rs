//! Rules that span requests hold when requests race, also across two server processes on one
//! database (two apps with their own pools and in-memory aggregate states).

use futures::future::join_all;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_on, FakeWechat, TestApp};

pub async fn two_servers() -> (TestApp, TestApp) {
    let first = spawn_app().await;
    let second = spawn_app_on(
        first.database_url.clone(),
        FakeWechat::start().await,
        first.smtp_port,
    )
    .await;
    (first, second)
}

fn statuses(replies: &[crate::helpers::Reply]) -> (usize, usize, usize) {
    for other in replies
        .iter()
        .filter(|r| ![201, 403, 400].contains(&r.status))
    {
        eprintln!("unexpected answer: {} {}", other.status, other.body);
    }
    let count = |s| replies.iter().filter(|r| r.status == s).count();
    (count(201), count(403), count(400))
}

#[tokio::test]
async fn racing_applications_never_exceed_the_quota() {
    let (a, b) = two_servers().await;
    let t = a.with_roster().await;
    let replies = join_all((0..20).map(|i| {
        let server = if i % 2 == 0 { &a } else { &b };
        let date = format!("2026-04-{:02}", i + 1);
        let token = t.david.clone();
        async move { server.apply(&token, &date, "全体排练").await }
    }))
    .await;
    // Stringed: 3 chances.
    assert_eq!(statuses(&replies), (3, 17, 0));
    assert_eq!(a.get("/absence/", &t.david).await.rows(), 3);
    assert_eq!(b.get("/absence/", &t.david).await.rows(), 3);
}

#[tokio::test]
async fn racing_applications_for_one_date_give_one_absence() {
    let (a, b) = two_servers().await;
    let t = a.with_roster().await;
    let replies = join_all((0..12).map(|i| {
        let server = if i % 2 == 0 { &a } else { &b };
        let token = t.david.clone();
        let kind = if i % 3 == 0 {
            "弦乐分排"
        } else {
            "全体排练"
        };
        async move { server.apply(&token, "2026-04-01", kind).await }
    }))
    .await;
    assert_eq!(statuses(&replies), (1, 0, 11));
    assert_eq!(a.scalar("SELECT count(*) FROM orchestra_absences").await, 1);
}

#[tokio::test]
async fn racing_first_logins_bind_a_name_to_one_account() {
    let (a, b) = two_servers().await;
    a.import_roster(crate::helpers::ROSTER).await;
    let replies = join_all((0..10).map(|i| {
        let server = if i % 2 == 0 { &a } else { &b };
        async move {
            server
                .post(
                    "/account/login/",
                    None,
                    json!({"name": "David", "code": format!("code-phone{i}")}),
                )
                .await
        }
    }))
    .await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let refused = replies.iter().filter(|r| r.status == 403).count();
    assert_eq!((ok, refused), (1, 9));
    assert_eq!(
        a.scalar("SELECT count(*) FROM events WHERE event_type = 'WechatBound'")
            .await,
        1
    );
}

#[tokio::test]
async fn ids_count_up_from_one_in_creation_order() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let replies = join_all(
        [&t.david, &t.wendy, &t.percy, &t.alice]
            .into_iter()
            .map(|token| {
                let token = token.clone();
                let app = &app;
                async move { app.apply(&token, "2026-04-01", "全体排练").await }
            }),
    )
    .await;
    let mut ids: Vec<i64> = replies
        .iter()
        .map(|r| r.body["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn a_unique_index_on_the_event_store_is_a_rejection_not_a_retried_conflict() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    // A rule spanning aggregates, as later contexts enforce them: one absence per date,
    // orchestra-wide. postgres-es reports its violation as an optimistic-lock conflict.
    sqlx::query(
        "CREATE UNIQUE INDEX probe_one_absence_per_date ON events \
         ((payload::jsonb #>> '{AbsenceApplied,date}')) WHERE event_type = 'AbsenceApplied'",
    )
    .execute(&app.app.rt.pool)
    .await
    .unwrap();
    assert_eq!(
        app.apply(&t.david, "2026-03-12", "全体排练").await.status,
        201
    );
    let taken = app.apply(&t.wendy, "2026-03-12", "全体排练").await;
    assert_eq!(taken.status, 400, "{}", taken.body);
    assert!(taken.body["msg"].is_string());
    // Nothing half-written, and Wendy's stream is usable as before.
    assert_eq!(app.get("/absence/", &t.wendy).await.body, json!([]));
    assert_eq!(
        app.apply(&t.wendy, "2026-03-13", "全体排练").await.status,
        201
    );
}

/// Each process keeps the states it last wrote in memory. When the other process has written
/// to the stream since, that state is stale: the append must notice (the stream's key) and the
/// command must be decided on the fresh stream, never on the remembered one.
#[tokio::test]
async fn a_state_remembered_by_one_process_never_outvotes_the_other_processes_writes() {
    let (a, b) = two_servers().await;
    let t = a.with_roster().await;
    // `a` writes (and so remembers) david's stream.
    let first = a.apply_id(&t.david, "2026-04-01", "全体排练").await;
    // `b` then writes twice to it: a second absence, and a change of the first one's date.
    assert_eq!(
        b.apply(&t.david, "2026-04-02", "全体排练").await.status,
        201
    );
    let moved = b
        .change(&t.david, first, json!({ "time_absence": "2026-04-03" }))
        .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    // On `a`'s remembered state, 04-02 would be free and 3 chances would remain.
    let same_date = a.apply(&t.david, "2026-04-02", "全体排练").await;
    assert_eq!(same_date.status, 400, "{}", same_date.body);
    // A partial change on `a` keeps what `b` changed.
    let reason = a
        .change(&t.david, first, json!({ "reason": "from a" }))
        .await;
    assert_eq!(reason.status, 200, "{}", reason.body);
    assert_eq!(reason.body["time_absence"], "2026-04-03");
    // Stringed: 3 chances; two are used, one is left, then none.
    assert_eq!(
        a.apply(&t.david, "2026-04-05", "全体排练").await.status,
        201
    );
    assert_eq!(
        a.apply(&t.david, "2026-04-06", "全体排练").await.status,
        403
    );
    let sequences: Vec<i64> = sqlx::query_scalar(
        "SELECT sequence FROM events WHERE aggregate_type = 'MemberAbsences' ORDER BY sequence",
    )
    .fetch_all(&a.app.rt.pool)
    .await
    .unwrap();
    assert_eq!(sequences, (1..=sequences.len() as i64).collect::<Vec<_>>());
}
