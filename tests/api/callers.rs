//! A write starts from what its process remembers of the caller (their binding, role, section,
//! the season) and the append's own statement checks it again: a change made meanwhile by
//! another process stops the write (or runs it again on what the roster says now).

use serde_json::Value;
use sqlx::Connection;

use crate::cli::{ensemble, stderr};
use crate::helpers::ROSTER;
use crate::races::two_servers;

const KIND: &str = "全体排练";

async fn member_id(app: &crate::helpers::TestApp, name: &str) -> i64 {
    app.scalar(&format!(
        "SELECT id FROM orchestra_members WHERE name = '{name}'"
    ))
    .await
}

#[tokio::test]
async fn a_manager_demoted_by_another_process_while_deciding_decides_nothing() {
    let (a, b) = two_servers().await;
    let t = a.with_roster().await;
    let absence = a.apply_id(&t.david, "2026-04-01", KIND).await;
    // The first decision: `a` now remembers Alice as a manager.
    assert_eq!(a.process(absence, &t.alice, "ok", true).await.status, 200);
    let processed = "SELECT count(*) FROM events WHERE event_type = 'AbsenceProcessed'";
    assert_eq!(a.scalar(processed).await, 1);

    // Hold the decision's append after its caller was checked: it takes the applier's lock
    // (the decision needs the applier alive), which this session holds.
    let david = member_id(&a, "David").await;
    let mut holder = sqlx::PgConnection::connect(&a.database_url).await.unwrap();
    let subject = format!("orchestra-member:{david}");
    sqlx::query("SELECT pg_advisory_lock(7011, hashtext($1))")
        .bind(&subject)
        .execute(&mut holder)
        .await
        .unwrap();
    let waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted";
    let meanwhile = async {
        for _ in 0..200 {
            if a.scalar(waiting).await > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(
            a.scalar(waiting).await,
            1,
            "the decision waits at its append"
        );
        // Meanwhile the other process makes Alice a member.
        b.import_roster(&ROSTER.replace("Alice,wind,manager", "Alice,wind,member"))
            .await;
        sqlx::query("SELECT pg_advisory_unlock(7011, hashtext($1))")
            .bind(&subject)
            .execute(&mut holder)
            .await
            .unwrap();
    };
    let (reply, ()) = tokio::join!(a.process(absence, &t.alice, "no", false), meanwhile);
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.body["msg"], "You are not a manager!");
    assert_eq!(a.scalar(processed).await, 1, "nothing more was decided");
    // And her next decision through either process is refused the same way.
    for server in [&a, &b] {
        assert_eq!(
            server.process(absence, &t.alice, "no", false).await.status,
            401
        );
    }
}

#[tokio::test]
async fn a_remembered_caller_gives_way_to_what_another_process_changed() {
    let (a, b) = two_servers().await;
    let t = a.with_roster().await;
    // `a` remembers David (season 0) from his first application.
    a.apply_id(&t.david, "2026-04-01", KIND).await;

    // A season begun elsewhere: his next application through `a` is charged to it.
    let out = ensemble(&a.database_url, &["season", "start"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let season = a.scalar("SELECT season FROM orchestra_season").await;
    assert!(season > 0);
    a.apply_id(&t.david, "2026-04-02", KIND).await;
    let charged: Value = sqlx::query_scalar(
        "SELECT payload::jsonb -> 'AbsenceApplied' -> 'season' FROM events \
         WHERE event_type = 'AbsenceApplied' ORDER BY position DESC LIMIT 1",
    )
    .fetch_one(&a.app.rt.pool)
    .await
    .unwrap();
    assert_eq!(charged, season);

    // Moved to another section elsewhere: the absence is in the new section.
    b.import_roster(&ROSTER.replace("David,stringed,member", "David,wind,member"))
        .await;
    let reply = a.apply(&t.david, "2026-04-03", KIND).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let section: String =
        sqlx::query_scalar("SELECT section FROM orchestra_absences WHERE id = $1")
            .bind(reply.body["id"].as_i64().unwrap())
            .fetch_one(&a.app.rt.pool)
            .await
            .unwrap();
    assert_eq!(section, "wind");

    // Unbound elsewhere: his next write through `a` is refused as his token's, whether it
    // would have been appended or refused by the rules (no such absence), and nothing is
    // written.
    let events = a.scalar("SELECT count(*) FROM events").await;
    let out = ensemble(&a.database_url, &["roster", "unbind", "David"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let events = events + 1;
    assert_eq!(a.scalar("SELECT count(*) FROM events").await, events);
    assert_eq!(a.apply(&t.david, "2026-04-04", KIND).await.status, 401);
    assert_eq!(a.delete("/absence/999999/", &t.david).await.status, 401);
    let change = a
        .put(
            "/absence/999999/",
            &t.david,
            serde_json::json!({"reason": "x"}),
        )
        .await;
    assert_eq!(change.status, 401);
    // So is a request that would be refused for its id or body before any command ran.
    a.apply_id(&t.wendy, "2026-04-05", KIND).await;
    let out = ensemble(&a.database_url, &["roster", "unbind", "Wendy"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let events = events + 2;
    assert_eq!(a.delete("/absence/abc/", &t.wendy).await.status, 401);
    let bad = a
        .post(
            "/absence/",
            Some(&t.wendy),
            serde_json::json!({"reason": "x"}),
        )
        .await;
    assert_eq!(bad.status, 401, "{}", bad.body);
    assert_eq!(a.apply(&t.wendy, "2026-04-06", KIND).await.status, 401);
    assert_eq!(a.scalar("SELECT count(*) FROM events").await, events);
}

#[tokio::test]
async fn a_member_made_a_manager_by_another_process_decides_at_once() {
    let (a, b) = two_servers().await;
    let t = a.with_roster().await;
    let absence = a.apply_id(&t.david, "2026-04-01", KIND).await;
    // `a` remembers Percy as a member.
    assert_eq!(a.delete("/absence/999999/", &t.percy).await.status, 404);
    b.import_roster(&ROSTER.replace("Percy,percussion,member", "Percy,percussion,manager"))
        .await;
    let reply = a.process(absence, &t.percy, "ok", true).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["processor"], "Percy");
}

#[tokio::test]
async fn a_revoked_token_never_spends_the_members_writes() {
    let app = crate::helpers::spawn_app_with(|c| c.write_limit = 3).await;
    let t = app.with_roster().await;
    // One write: the process remembers David, and his budget has one count in it.
    app.apply_id(&t.david, "2026-04-01", KIND).await;
    let out = ensemble(&app.database_url, &["roster", "unbind", "David"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    // The old token's writes are refused, and count for nothing.
    for date in ["2026-04-02", "2026-04-03"] {
        assert_eq!(app.apply(&t.david, date, KIND).await.status, 401);
    }
    let login = app
        .try_login(serde_json::json!({"name": "David", "code": "code-NewPhone"}))
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let token = login.body["token"].as_str().unwrap().to_string();
    // Two more writes fit in his three a minute.
    app.apply_id(&token, "2026-04-04", KIND).await;
    app.apply_id(&token, "2026-04-05", KIND).await;
    assert_eq!(app.apply(&token, "2026-04-06", KIND).await.status, 429);
}
