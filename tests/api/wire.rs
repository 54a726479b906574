//! The wire conventions of API-NOTES: trailing slashes, JSON everywhere, never a 500.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn paths_work_with_and_without_the_trailing_slash() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    assert_eq!(app.get("/absence/", &t.david).await.status, 200);
    assert_eq!(app.get("/absence", &t.david).await.status, 200);
    assert_eq!(app.get("/manager/next", &t.alice).await.status, 200);
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let missing = app.get("/nowhere/", &t.david).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body["msg"].is_string());
    let method = app
        .request(reqwest::Method::PATCH, "/absence/", Some(&t.david), None)
        .await;
    assert_eq!(method.status, 405);
    assert!(method.body["msg"].is_string());
}

#[tokio::test]
async fn ids_that_are_not_positive_integers_are_not_found() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    for id in [
        "abc",
        "0",
        "-1",
        "1.5",
        "99999999999999999999999",
        "%F0%9F%8E%BB",
        "%FF",
    ] {
        let reply = app.delete(&format!("/absence/{id}/"), &t.david).await;
        assert_eq!(reply.status, 404, "{id}");
    }
}

#[tokio::test]
async fn malformed_bodies_get_a_4xx_that_says_why() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let send = |body: &'static str, content_type: &'static str| {
        let req = app
            .authed(reqwest::Method::POST, "/absence/", &t.david)
            .header("Content-Type", content_type)
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.expect("a JSON body");
            (status, body)
        }
    };
    for (body, ct) in [
        ("{", "application/json"),
        ("[1, 2]", "application/json"),
        ("\"text\"", "application/json"),
        (
            "{\"time_absence\": 20260312, \"type\": \"全体排练\", \"reason\": \"x\"}",
            "application/json",
        ),
        (
            "{\"time_absence\": \"2026-03-12\", \"type\": null, \"reason\": \"x\"}",
            "application/json",
        ),
        (
            "{\"time_absence\": \"2026-03-12\", \"type\": {\"a\": 1}, \"reason\": \"x\"}",
            "application/json",
        ),
        ("%%%=&&", "application/x-www-form-urlencoded"),
        (
            "time_absence=2026-03-12&type=nope&reason=x",
            "application/x-www-form-urlencoded",
        ),
        ("", "text/plain"),
    ] {
        let (status, reply) = send(body, ct).await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(reply["msg"].is_string(), "{body}: {reply}");
    }
    let big = "x".repeat(ensemble::http::MAX_BODY_BYTES + 1);
    let reply = app
        .authed(reqwest::Method::POST, "/absence/", &t.david)
        .json(&json!({"reason": big, "time_absence": "2026-03-12", "type": "全体排练"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 413);
    assert!(reply.json::<serde_json::Value>().await.unwrap()["msg"].is_string());
    assert_eq!(
        app.scalar("SELECT count(*) FROM orchestra_absences").await,
        0
    );
}

#[tokio::test]
async fn odd_input_on_every_write_never_yields_a_500() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let bodies = [
        json!({}),
        json!({"name": null, "code": 1}),
        json!({"name": "David\u{0000}", "code": "code-David"}),
        json!({"name": "x".repeat(500), "code": "c"}),
        json!({"reason": "", "time_absence": "", "type": ""}),
        json!({"reason": "r", "time_absence": "9999-12-31", "type": "全体排练"}),
        json!({"reason": "r", "time_absence": "0000-01-01", "type": "全体排练"}),
        json!({"result": [], "permission": {}}),
        json!({"result": "ok", "permission": 7}),
        json!({"reason": "nul\u{0000}byte", "time_absence": "2026-03-20", "type": "全体排练"}),
        json!({"result": "nul\u{0000}byte", "permission": true}),
    ];
    for body in bodies {
        // `request` itself fails the test on any 500.
        app.post("/account/login/", None, body.clone()).await;
        app.post("/absence/", Some(&t.david), body.clone()).await;
        app.put(&format!("/absence/{id}/"), &t.david, body.clone())
            .await;
        app.put(&format!("/manager/{id}/"), &t.alice, body.clone())
            .await;
    }
    // Nothing that was accepted stalled the read models: they are level with the log.
    let behind = app
        .scalar(
            "SELECT count(*) FROM projection_checkpoints \
             WHERE position < (SELECT max(position) FROM events) AND name <> 'mail_outbox'",
        )
        .await;
    assert_eq!(behind, 0);
    assert_eq!(app.get("/absence/", &t.david).await.status, 200);
}
