//! Safe retries with `Idempotency-Key`.

use serde_json::json;

use crate::helpers::{spawn_app_with, TestApp};

async fn post_with_key(
    app: &TestApp,
    token: &str,
    key: &str,
    date: &str,
) -> (u16, Option<String>, serde_json::Value) {
    let reply = app
        .http
        .post(format!("{}/absence/", app.address))
        .header("Authorization", format!("JWT {token}"))
        .header("Idempotency-Key", key)
        .json(&json!({ "reason": "retry", "time_absence": date, "type": "全体排练" }))
        .send()
        .await
        .unwrap();
    let status = reply.status().as_u16();
    let replayed = reply
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_string());
    (status, replayed, reply.json().await.unwrap_or_default())
}

async fn applied(app: &TestApp) -> i64 {
    app.scalar("SELECT count(*) FROM events WHERE event_type = 'AbsenceApplied'")
        .await
}

#[tokio::test]
async fn a_resent_write_with_its_key_is_answered_again_without_running_again() {
    let app = spawn_app_with(|c| c.write_limit = 0).await;
    let t = app.with_roster().await;
    let (status, replayed, first) = post_with_key(&app, &t.david, "k-1", "2026-03-12").await;
    assert_eq!((status, replayed), (201, None), "{first}");
    let (status, replayed, again) = post_with_key(&app, &t.david, "k-1", "2026-03-12").await;
    assert_eq!((status, replayed.as_deref()), (201, Some("true")));
    assert_eq!(again, first);
    assert_eq!(applied(&app).await, 1);
    // The same key with another body: 422, nothing run.
    let (status, _, body) = post_with_key(&app, &t.david, "k-1", "2026-03-13").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(applied(&app).await, 1);
    // Another caller's key of the same name is theirs.
    let (status, replayed, _) = post_with_key(&app, &t.wendy, "k-1", "2026-03-12").await;
    assert_eq!((status, replayed), (201, None));
    // A refusal is an answer too: kept and replayed.
    let (status, _, refused) = post_with_key(&app, &t.david, "k-2", "2026-03-12").await;
    assert_eq!(status, 400, "{refused}");
    let (status, replayed, again) = post_with_key(&app, &t.david, "k-2", "2026-03-12").await;
    assert_eq!((status, replayed.as_deref()), (400, Some("true")));
    assert_eq!(again, refused);
    // Kept across a restart.
    let app = app.restart().await;
    let (status, replayed, after) = post_with_key(&app, &t.david, "k-1", "2026-03-12").await;
    assert_eq!((status, replayed.as_deref()), (201, Some("true")));
    assert_eq!(after, first);
    // A bad key is a 400.
    let (status, _, _) = post_with_key(&app, &t.david, "bad key with spaces", "2026-03-20").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn requests_racing_with_one_key_run_once() {
    let app = spawn_app_with(|c| c.write_limit = 0).await;
    let t = app.with_roster().await;
    let replies = futures::future::join_all(
        (0..12).map(|_| post_with_key(&app, &t.david, "race", "2026-03-12")),
    )
    .await;
    assert_eq!(applied(&app).await, 1);
    let first = &replies[0].2;
    for (status, _, body) in &replies {
        assert_eq!(*status, 201, "{body}");
        assert_eq!(body, first);
    }
    assert_eq!(
        replies.iter().filter(|r| r.1.is_none()).count(),
        1,
        "exactly one ran"
    );
}

#[tokio::test]
async fn a_login_is_never_kept_under_a_key() {
    let app = spawn_app_with(|c| c.write_limit = 0).await;
    app.with_roster().await;
    for authorization in ["", "", "JWT garbage", "JWT garbage"] {
        let mut request = app
            .http
            .post(format!("{}/account/login/", app.address))
            .header("Idempotency-Key", "login-1");
        if !authorization.is_empty() {
            request = request.header("Authorization", authorization);
        }
        let reply = request
            .json(&json!({ "name": "David", "code": "code-David" }))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        assert!(reply.headers().get("idempotent-replayed").is_none());
    }
    assert_eq!(app.scalar("SELECT count(*) FROM idempotency_keys").await, 0);
}
