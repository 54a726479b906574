//! Campus superusers (CLI, `adminLogIn/`, `register/`) and the audit endpoints they may read.

use serde_json::{json, Value};

use crate::cli::{ensemble, stderr, stdout};
use crate::helpers::{spawn_app, TestApp};

async fn create(app: &TestApp, username: &str, password: &str) {
    let out = ensemble(
        &app.database_url,
        &[
            "admin",
            "create",
            username,
            "--password",
            password,
            "--email",
            "boss@campus.edu",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
}

async fn admin_login(app: &TestApp, body: Value) -> (u16, Value) {
    let reply = app.post("/adminLogIn/", None, body).await;
    (reply.status, reply.body)
}

async fn superuser_token(app: &TestApp) -> String {
    create(app, "Jessica", "s3cret-pass").await;
    let (status, body) = admin_login(
        app,
        json!({"username": "Jessica", "password": "s3cret-pass"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_superuser_made_on_the_cli_logs_in_and_is_disabled_at_once() {
    let app = spawn_app().await;
    create(&app, "Jessica", "s3cret-pass").await;
    let (status, body) = admin_login(
        &app,
        json!({"username": "Jessica", "password": "s3cret-pass"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["success"], "true");
    assert_eq!(body["user"], json!({"username": "Jessica"}));
    let token = body["token"].as_str().unwrap().to_string();
    // Form bodies too.
    let form = app
        .http
        .post(format!("{}/adminLogIn/", app.address))
        .form(&[("username", "Jessica"), ("password", "s3cret-pass")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let invalid = json!({"success": "false", "mess": "Invalid User"});
    for body in [
        json!({"username": "Jessica", "password": "wrong-pass"}),
        json!({"username": "Nobody", "password": "s3cret-pass"}),
        json!({}),
    ] {
        assert_eq!(admin_login(&app, body).await, (401, invalid.clone()));
    }
    // The password is nowhere in the log or the read models; its hash only in `credentials`.
    assert_eq!(
        app.scalar("SELECT count(*) FROM events WHERE payload::text ~ '(s3cret|argon2)'")
            .await,
        0
    );
    assert_eq!(
        app.scalar("SELECT count(*) FROM credentials WHERE hash LIKE '$argon2id$%'")
            .await,
        1
    );
    let listed = stdout(&ensemble(&app.database_url, &["admin", "list"]).await);
    assert!(
        listed.contains("Jessica") && listed.contains("active"),
        "{listed}"
    );
    // A second one with the same name is refused.
    let again = ensemble(
        &app.database_url,
        &[
            "admin",
            "create",
            " Jessica ",
            "--password",
            "other-pass",
            "--email",
            "j@campus.edu",
        ],
    )
    .await;
    assert!(!again.status.success());
    // Disabled: the token and the password stop working once the command returns.
    let audit = |token: String| {
        let app = &app;
        async move {
            app.request(reqwest::Method::GET, "/audit/events/", Some(&token), None)
                .await
        }
    };
    assert_eq!(audit(token.clone()).await.status, 200);
    let out = ensemble(&app.database_url, &["admin", "disable", "Jessica"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let refused = audit(token).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body, json!({"detail": "认证令牌无效。"}));
    assert_eq!(
        admin_login(
            &app,
            json!({"username": "Jessica", "password": "s3cret-pass"})
        )
        .await,
        (401, invalid)
    );
}

#[tokio::test]
async fn only_superusers_register_superusers_and_read_the_audit_views() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let token = superuser_token(&app).await;
    let body = json!({"username": "Mia", "password": "another-pass", "email": "mia@campus.edu"});
    // Nobody, a member and a manager of the orchestra are refused, in DRF's shapes.
    let none = app.post("/register/", None, body.clone()).await;
    assert_eq!(
        (none.status, none.body),
        (401, json!({"detail": "身份认证信息未提供。"}))
    );
    for other in [&t.david, &t.alice] {
        let reply = app.post("/register/", Some(other), body.clone()).await;
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert_eq!(app.get("/audit/events/", other).await.status, 401);
    }
    // And campus tokens are refused by the orchestra.
    assert_eq!(app.get("/absence/", &token).await.status, 401);
    let made = app.post("/register/", Some(&token), body.clone()).await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(made.body["user"]["username"], "Mia");
    let twice = app.post("/register/", Some(&token), body).await;
    assert_eq!(
        (twice.status, twice.body),
        (400, json!({"username": ["已存在一位使用该名字的用户。"]}))
    );
    let missing = app
        .post("/register/", Some(&token), json!({"username": "Zoe"}))
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["password"], json!(["该字段是必填项。"]));
    assert_eq!(missing.body["email"], json!(["该字段是必填项。"]));
    let (status, _) =
        admin_login(&app, json!({"username": "Mia", "password": "another-pass"})).await;
    assert_eq!(status, 200);
    // A login's answer (a token) is never kept for retries, even when asked.
    let login = app
        .http
        .post(format!("{}/adminLogIn/", app.address))
        .header("Authorization", format!("JWT {token}"))
        .header("Idempotency-Key", "login-1")
        .json(&json!({"username": "Mia", "password": "another-pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert_eq!(
        app.scalar("SELECT count(*) FROM idempotency_keys WHERE key = 'login-1'")
            .await,
        0
    );
}

#[tokio::test]
async fn the_audit_views_page_the_log_and_show_records_then_and_now() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let token = superuser_token(&app).await;
    let get = |path: String| {
        let (app, token) = (&app, token.clone());
        async move { app.get(&path, &token).await }
    };
    // Pages of the whole log, in order, with the CLI's fields.
    let total = app.scalar("SELECT count(*) FROM events").await;
    let mut seen = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        let path = match after {
            Some(a) => format!("/audit/events/?limit=3&after={a}"),
            None => "/audit/events/?limit=3".into(),
        };
        let page = get(path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for e in page.body["events"].as_array().unwrap() {
            for field in [
                "position",
                "aggregate_type",
                "aggregate_id",
                "sequence",
                "event_type",
                "event_version",
                "payload",
                "metadata",
                "recorded_at",
            ] {
                assert!(e.get(field).is_some(), "{field} missing in {e}");
            }
            seen.push(e["position"].as_i64().unwrap());
        }
        match page.body["next"].as_i64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len() as i64, total);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    // Filtered, with personal values opened.
    let david = app.member_id("David").await.to_string();
    let mine = get(format!(
        "/audit/events/?aggregate_type=MemberAbsences&aggregate_id={david}"
    ))
    .await;
    let events = mine.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["payload"]["AbsenceApplied"]["reason"], "exam");
    assert_eq!(
        events[0]["metadata"]["actor"],
        format!("orchestra-member:{david}")
    );
    // A record now, before, and its history with the state after each event.
    let before = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(app.process(id, &t.alice, "ok", true).await.status, 200);
    let now = get(format!("/audit/MemberAbsences/{david}/")).await;
    assert_eq!(now.status, 200);
    assert_eq!(now.body["sequence"], 2);
    assert_eq!(
        now.body["state"]["active"][id.to_string()]["decision"]["result"],
        "ok"
    );
    let then = get(format!(
        "/audit/MemberAbsences/{david}/?as_of={}",
        urlencode(&before)
    ))
    .await;
    assert_eq!(then.status, 200, "{}", then.body);
    assert_eq!(then.body["sequence"], 1);
    assert!(then.body["state"]["active"][id.to_string()]["decision"].is_null());
    let history = get(format!("/audit/MemberAbsences/{david}/history/")).await;
    let steps = history.body["history"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(history.body["count"], 2);
    assert!(history.body["next"].is_null());
    // Paged: one event at a time.
    let first = get(format!("/audit/MemberAbsences/{david}/history/?limit=1")).await;
    assert_eq!(first.body["history"].as_array().unwrap().len(), 1);
    assert_eq!(first.body["next"], 1);
    let second = get(format!(
        "/audit/MemberAbsences/{david}/history/?limit=1&offset=1"
    ))
    .await;
    assert_eq!(
        second.body["history"][0]["event"]["event_type"],
        "AbsenceProcessed"
    );
    assert_eq!(steps[0]["event"]["event_type"], "AbsenceApplied");
    assert!(steps[0]["state"]["active"][id.to_string()]["decision"].is_null());
    assert_eq!(
        steps[1]["state"]["active"][id.to_string()]["decision"]["result"],
        "ok"
    );
    // Bad parameters and unknown records.
    for (path, status) in [
        ("/audit/events/?limit=0".to_string(), 400),
        ("/audit/events/?limit=1001".to_string(), 400),
        ("/audit/events/?limit=ten".to_string(), 400),
        ("/audit/events/?after=-4".to_string(), 400),
        ("/audit/Nothing/1/".to_string(), 400),
        (
            format!("/audit/MemberAbsences/{david}/?as_of=yesterday"),
            400,
        ),
        ("/audit/MemberAbsences/999999/".to_string(), 404),
        ("/audit/events/?aggregate_id=%00".to_string(), 400),
        ("/audit/events/?aggregate_type=%00".to_string(), 400),
        ("/audit/MemberAbsences/%00/".to_string(), 404),
        ("/audit/MemberAbsences/%00/history/".to_string(), 404),
        (
            format!("/audit/MemberAbsences/{david}/?as_of=-4714-01-01"),
            400,
        ),
        (
            format!("/audit/MemberAbsences/{david}/history/?limit=101"),
            400,
        ),
        ("/audit/MemberAbsences/999999/history/".to_string(), 404),
    ] {
        let reply = get(path.clone()).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        assert!(reply.body["detail"].is_string(), "{path}: {}", reply.body);
    }
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}
