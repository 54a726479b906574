use serde_json::json;

use crate::helpers::{spawn_app, ROSTER};

#[tokio::test]
async fn a_member_on_the_roster_logs_in_and_gets_a_token() {
    let app = spawn_app().await;
    app.import_roster(ROSTER).await;
    let token = app.login("David").await;
    // The token works...
    assert_eq!(app.get("/absence/", &token).await.status, 200);
    // ...with the Bearer scheme too.
    let reply = app
        .http
        .get(format!("{}/absence/", app.address))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
}

#[tokio::test]
async fn the_servers_own_wechat_credentials_win_over_the_clients() {
    let app = spawn_app().await;
    app.import_roster(ROSTER).await;
    let reply = app
        .try_login(
            json!({"name": "David", "code": "code-David", "app_id": "evil", "app_secret": "evil"}),
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = app.wechat.seen.lock().unwrap().clone();
    assert_eq!(seen[0]["appid"], "orchestra-appid");
    assert_eq!(seen[0]["secret"], "orchestra-secret");
    assert_eq!(seen[0]["grant_type"], "authorization_code");
}

#[tokio::test]
async fn a_name_not_on_the_roster_is_told_so() {
    let app = spawn_app().await;
    app.import_roster(ROSTER).await;
    let reply = app
        .try_login(json!({"name": "Mallory", "code": "code-Mallory"}))
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.body,
        json!({"msg": "You are not in the member list!"})
    );
}

#[tokio::test]
async fn a_name_bound_to_another_wechat_account_is_refused() {
    let app = spawn_app().await;
    app.import_roster(ROSTER).await;
    app.login("David").await;
    let reply = app
        .try_login(json!({"name": "David", "code": "code-Impostor"}))
        .await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.body,
        json!({"msg": "Name and wechat id doesn't match!"})
    );
    // One WeChat account cannot speak for a second name either.
    let reply = app
        .try_login(json!({"name": "Wendy", "code": "code-David"}))
        .await;
    assert_eq!(reply.status, 403);
}

#[tokio::test]
async fn a_wechat_error_or_outage_is_a_bad_gateway() {
    let app = spawn_app().await;
    app.import_roster(ROSTER).await;
    let reply = app
        .try_login(json!({"name": "David", "code": "bad-code"}))
        .await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.body, json!({"msg": "wx server request failed"}));
    // Nothing was bound by the failed attempt.
    assert_eq!(
        app.scalar("SELECT count(*) FROM orchestra_members WHERE binding IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn wechat_being_unreachable_is_a_bad_gateway() {
    let mut wechat = crate::helpers::FakeWechat::start().await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    wechat.base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = crate::helpers::spawn_app_on(crate::helpers::fresh_database_url(), wechat, 1).await;
    app.import_roster(ROSTER).await;
    let reply = app
        .try_login(json!({"name": "David", "code": "code-David"}))
        .await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.body["msg"], "wx server request failed");
}

#[tokio::test]
async fn a_login_without_name_or_code_is_a_bad_request() {
    let app = spawn_app().await;
    let reply = app.try_login(json!({"name": "David"})).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["msg"], "code is required.");
}

#[tokio::test]
async fn missing_forged_or_foreign_tokens_are_refused() {
    let app = spawn_app().await;
    app.import_roster(ROSTER).await;
    let token = app.login("David").await;
    let no_token = app
        .request(reqwest::Method::GET, "/absence/", None, None)
        .await;
    assert_eq!(no_token.status, 401);
    assert!(no_token.body["msg"].is_string());
    let forged = runtime::jwt::Jwt::new(b"another-secret-entirely")
        .issue("orchestra", json!({"sub": "1", "bnd": 1}));
    assert_eq!(app.get("/absence/", &forged).await.status, 401);
    assert_eq!(app.get("/absence/", "not.a.token").await.status, 401);
    let tampered = format!("{token}x");
    assert_eq!(app.get("/absence/", &tampered).await.status, 401);
}
