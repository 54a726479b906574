//! What an attacker found on the public endpoints, each closed (issue 16): storage through the
//! retry cache, lockouts through the login limits, names claimed by a first login, links and
//! names that a page would render, links built from `Host`, secrets in the audit views,
//! `/metrics` to strangers, and heads that end in a bare LF.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use aggregates::orchestra::roster::RosterCommand;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{spawn_app, spawn_app_with, FakeSmtp, TestApp, ROSTER};
use crate::platform::{block, organisation, superuser, user, wx_login};

async fn kept_answers(app: &TestApp) -> i64 {
    app.scalar("SELECT count(*) FROM idempotency_keys").await
}

/// A write with an `Idempotency-Key`; its status.
async fn keyed(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    authorization: &str,
    key: &str,
    body: Value,
) -> u16 {
    app.http
        .request(method, format!("{}{path}", app.address))
        .header("Authorization", authorization)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_retry_cache_keeps_nothing_for_strangers_unknown_routes_or_refused_access() {
    let app = spawn_app_with(|c| c.write_limit = 0).await;
    let t = app.with_roster().await;
    let post = reqwest::Method::POST;
    // A token that does not verify: nobody to keep an answer for.
    for i in 0..30 {
        let status = keyed(
            &app,
            post.clone(),
            "/feedbacks/",
            "JWT not-a-token",
            &format!("k-{i}"),
            json!({"feedback": "x"}),
        )
        .await;
        assert_eq!(status, 401);
    }
    assert_eq!(kept_answers(&app).await, 0);
    // A route that does not exist, with a good token, or with any header at all.
    for authorization in [format!("JWT {}", t.david), "x".to_string()] {
        let status = keyed(
            &app,
            post.clone(),
            "/no/such/route",
            &authorization,
            "k",
            json!({}),
        )
        .await;
        assert_eq!(status, 404);
    }
    assert_eq!(kept_answers(&app).await, 0);
    // A token that verifies but names nobody (a campus user who never was): 401, not kept.
    let ghost = app
        .app
        .rt
        .jwt
        .issue("campus", json!({"sub": "999", "kind": "user"}));
    let status = keyed(
        &app,
        post.clone(),
        "/feedbacks/",
        &format!("JWT {ghost}"),
        "g",
        json!({"feedback": "x"}),
    )
    .await;
    assert_eq!(status, 401);
    // A member at a manager's route (401, as the document has it), a campus user at another's
    // profile (403): not kept.
    let status = keyed(
        &app,
        reqwest::Method::PUT,
        "/manager/1/",
        &format!("JWT {}", t.david),
        "m",
        json!({"result": "ok", "permission": true}),
    )
    .await;
    assert_eq!(status, 401);
    let (one, other) = (user(&app, "one").await, user(&app, "other").await);
    let status = keyed(
        &app,
        reqwest::Method::PUT,
        &format!("/users/{}/", other.id),
        &format!("JWT {}", one.token),
        "p",
        json!({"name": "taken over"}),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(kept_answers(&app).await, 0);
    // What a caller decided is kept, as before.
    let status = keyed(
        &app,
        post,
        "/absence/",
        &format!("JWT {}", t.david),
        "real",
        json!({"reason": "exam", "time_absence": "2026-03-12", "type": "全体排练"}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(kept_answers(&app).await, 1);
}

#[tokio::test]
async fn one_caller_keeps_a_bounded_number_of_answers_and_the_newest_still_replay() {
    let app = spawn_app_with(|c| {
        c.write_limit = 0;
        c.retry_keys_per_caller = 3;
    })
    .await;
    let t = app.with_roster().await;
    for i in 0..8 {
        let status = keyed(
            &app,
            reqwest::Method::POST,
            "/absence/",
            &format!("JWT {}", t.david),
            &format!("key-{i}"),
            json!({"reason": "x", "time_absence": "not a date", "type": "全体排练"}),
        )
        .await;
        assert_eq!(status, 400);
    }
    assert_eq!(kept_answers(&app).await, 3);
    // Another caller has their own allowance.
    let status = keyed(
        &app,
        reqwest::Method::POST,
        "/absence/",
        &format!("JWT {}", t.wendy),
        "key-0",
        json!({"reason": "x", "time_absence": "not a date", "type": "全体排练"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(kept_answers(&app).await, 4);
    // The newest answer replays.
    let again = app
        .authed(reqwest::Method::POST, "/absence/", &t.david)
        .header("Idempotency-Key", "key-7")
        .json(&json!({"reason": "x", "time_absence": "not a date", "type": "全体排练"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
}

/// A client whose requests come from `address` (any of 127.0.0.0/8 reaches the server).
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .unwrap()
}

async fn post_from(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let reply = client
        .post(format!("{}{path}", app.address))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = reply.status().as_u16();
    (status, reply.json().await.unwrap_or(Value::Null))
}

/// A platform whose login limits allow 3 failures per name and address, `name_ceiling` per
/// name, and 100 attempts per address; the superuser Jessica (password `s3cret-pass`) exists.
async fn guarded(name_ceiling: u32) -> TestApp {
    let app = spawn_app_with(move |c| {
        c.campus_write_limit = 0;
        c.login_limit_address = 100;
        c.login_limit_name_address = 3;
        c.login_limit_name = name_ceiling;
    })
    .await;
    superuser(&app).await;
    app
}

/// Jessica's superuser login with `password`, from 127.0.0.`last`: the status.
async fn admin_login(app: &TestApp, last: u8, password: &str) -> u16 {
    let body = json!({"username": "Jessica", "password": password});
    post_from(app, &client_from(last), "/adminLogIn/", body)
        .await
        .0
}

const RIGHT: &str = "s3cret-pass";

#[tokio::test]
async fn strangers_failures_never_lock_the_rightful_superuser_out() {
    let app = guarded(5).await;
    // One address guessing: three failures, then it is refused before anything is checked.
    for _ in 0..3 {
        assert_eq!(admin_login(&app, 2, "guess").await, 401);
    }
    assert_eq!(admin_login(&app, 2, "guess").await, 429);
    // The rightful superuser, from their own address, is heard.
    assert_eq!(admin_login(&app, 3, RIGHT).await, 200);
    // Many addresses, one failure each: the name passes its ceiling of failures.
    for last in 4..8 {
        assert_eq!(admin_login(&app, last, "guess").await, 401);
    }
    // Past it, an address that has failed for the name is refused for the minute...
    assert_eq!(admin_login(&app, 4, RIGHT).await, 429);
    // ...a fresh one gets one try, and after a failure none...
    assert_eq!(admin_login(&app, 9, "guess").await, 401);
    assert_eq!(admin_login(&app, 9, "guess").await, 429);
    // ...a burst of simultaneous guesses from a fresh address is counted in full: one is
    // heard...
    let statuses = futures::future::join_all((0..8).map(|_| admin_login(&app, 11, "guess"))).await;
    let heard = statuses.iter().filter(|status| **status == 401).count();
    assert_eq!(heard, 1, "{statuses:?}");
    // ...and the rightful superuser's correct password from a fresh address still works.
    assert_eq!(admin_login(&app, 10, RIGHT).await, 200);
}

#[tokio::test]
async fn a_burst_of_simultaneous_guesses_from_one_address_is_counted_in_full() {
    let app = guarded(1000).await;
    let statuses = futures::future::join_all((0..20).map(|_| admin_login(&app, 2, "guess"))).await;
    let heard = statuses.iter().filter(|status| **status == 401).count();
    assert_eq!(heard, 3, "{statuses:?}");
    assert!(statuses.iter().all(|status| matches!(status, 401 | 429)));
    // Right credentials take their count back: the owner logs in again and again.
    for _ in 0..5 {
        assert_eq!(admin_login(&app, 3, RIGHT).await, 200);
    }
}

#[tokio::test]
async fn refused_orchestra_logins_for_a_name_do_not_lock_its_member_out() {
    let app = spawn_app_with(|c| {
        c.login_limit_address = 100;
        c.login_limit_name_address = 3;
        c.login_limit_name = 100;
    })
    .await;
    app.import_roster(ROSTER).await;
    app.login("Alice").await;
    // Someone with a WeChat account of their own keeps trying Alice's name.
    let attacker = client_from(2);
    let mallory = json!({"name": "Alice", "code": "code-Mallory"});
    for _ in 0..3 {
        assert_eq!(
            post_from(&app, &attacker, "/account/login/", mallory.clone())
                .await
                .0,
            403
        );
    }
    assert_eq!(
        post_from(&app, &attacker, "/account/login/", mallory)
            .await
            .0,
        429
    );
    let (status, body) = post_from(
        &app,
        &client_from(3),
        "/account/login/",
        json!({"name": "Alice", "code": "code-Alice"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn without_a_valid_code_the_login_says_nothing_about_the_roster() {
    let app = spawn_app().await;
    app.import_roster(ROSTER).await;
    let known = app
        .try_login(json!({"name": "David", "code": "bad-code"}))
        .await;
    let unknown = app
        .try_login(json!({"name": "Nobody", "code": "bad-code"}))
        .await;
    assert_eq!((known.status, unknown.status), (502, 502));
    assert_eq!(known.body, unknown.body);
    // With a valid code, the documented answers.
    let unknown = app
        .try_login(json!({"name": "Nobody", "code": "code-X"}))
        .await;
    assert_eq!(unknown.status, 401);
}

async fn mails(smtp: &FakeSmtp, containing: &str) -> Vec<String> {
    smtp.messages
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.contains(containing))
        .cloned()
        .collect()
}

#[tokio::test]
async fn every_first_binding_is_mailed_to_the_office_and_shown_to_operators() {
    let app = spawn_app().await;
    let smtp = app.smtp.as_ref().unwrap();
    app.import_roster(ROSTER).await;
    app.operator(RosterCommand::AddNotifyAddress {
        email: aggregates::orchestra::EmailAddress::parse("office@example.org").unwrap(),
    })
    .await;
    let reply = app
        .http
        .post(format!("{}/account/login/", app.address))
        .json(&json!({"name": "David", "code": "code-David"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let request = reply.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let arrived = crate::helpers::eventually(Duration::from_secs(10), || async {
        !mails(smtp, "David was bound to a WeChat account")
            .await
            .is_empty()
    })
    .await;
    assert!(arrived, "no binding mail");
    let mail = mails(smtp, "David was bound").await.remove(0);
    assert!(mail.contains(&request), "{mail}");
    assert!(mail.contains("office@example.org"), "{mail}");
    // A second login of the same account binds nothing new and mails nothing.
    app.login("David").await;
    // Operators see when and through which request.
    let roster = projections::orchestra::roster::members(&app.app.rt.pool)
        .await
        .unwrap();
    let david = roster.iter().find(|m| m.name == "David").unwrap();
    assert!(david.bound_at.is_some());
    assert_eq!(david.bound_request.as_deref(), Some(request.as_str()));
    let out = crate::cli::ensemble(&app.database_url, &["roster", "list"]).await;
    let listed = String::from_utf8_lossy(&out.stdout);
    let line = listed.lines().find(|l| l.contains("David")).unwrap();
    assert!(
        line.contains("bound 20") && line.contains(&request),
        "{listed}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mails(smtp, "David was bound").await.len(), 1);
}

#[tokio::test]
async fn where_managers_wait_a_managers_first_login_waits_for_an_operators_approval() {
    let app =
        spawn_app_with(|c| c.manager_binding = runtime::config::ManagerBinding::Approve).await;
    let smtp = app.smtp.as_ref().unwrap();
    app.import_roster(ROSTER).await;
    app.operator(RosterCommand::AddNotifyAddress {
        email: aggregates::orchestra::EmailAddress::parse("office@example.org").unwrap(),
    })
    .await;
    // Members are bound at once; a manager's first login asks.
    app.login("David").await;
    let login_as = |code: &'static str| {
        let app = &app;
        async move {
            let reply = app
                .http
                .post(format!("{}/account/login/", app.address))
                .json(&json!({"name": "Alice", "code": code}))
                .send()
                .await
                .unwrap();
            let request = reply.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_string();
            let status = reply.status().as_u16();
            (status, reply.json::<Value>().await.unwrap(), request)
        }
    };
    // A stranger tries the name first, then Alice: both wait, with the same answer, and both
    // are recorded and mailed, so the operator sees every account that tried.
    let (status, squatter_body, squatter) = login_as("code-Mallory").await;
    assert_eq!(status, 403, "{squatter_body}");
    assert!(squatter_body["msg"].as_str().unwrap().contains("approval"));
    let (status, body, alice) = login_as("code-Alice").await;
    assert_eq!((status, &body), (403, &squatter_body));
    let (status, again, _) = login_as("code-Alice").await;
    assert_eq!((status, &again), (403, &squatter_body));
    // (Mails to one address close together go out as one digest.)
    assert!(
        crate::helpers::eventually(Duration::from_secs(10), || async {
            let said = mails(smtp, "Alice asks to be bound").await.join("\n");
            said.contains(&alice) && said.contains(&squatter)
        })
        .await
    );
    let listed = crate::cli::ensemble(&app.database_url, &["roster", "list"]).await;
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.contains("WAITING FOR APPROVAL")
            && listed.contains(&alice)
            && listed.contains(&squatter),
        "{listed}"
    );
    // Two wait: the operator must say which.
    let out = crate::cli::ensemble(&app.database_url, &["roster", "approve", "Alice"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--request"));
    let out = crate::cli::ensemble(
        &app.database_url,
        &["roster", "approve", "Alice", "--request", &alice],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = app.login("Alice").await;
    assert_eq!(app.get("/manager/", &token).await.status, 200);
    let (status, other, _) = login_as("code-Mallory").await;
    assert_eq!(status, 403);
    assert!(other["msg"].as_str().unwrap().contains("doesn't match"));
    // Nothing waits any more.
    let out = crate::cli::ensemble(&app.database_url, &["roster", "approve", "Alice"]).await;
    assert!(!out.status.success());
}

#[tokio::test]
async fn avatars_are_web_links_only() {
    let app = crate::platform::spawn().await;
    for avatar in [
        "javascript:alert(1)",
        "data:text/html,<script>x</script>",
        "//evil/x.png",
        "https://",
    ] {
        let reply = app
            .post(
                "/login/",
                None,
                json!({"code": "code-eve", "userInfo": {"nickName": "Eve", "avatarUrl": avatar}}),
            )
            .await;
        assert_eq!(reply.status, 400, "{avatar}: {}", reply.body);
        assert!(reply.body["avatarUrl"].is_array(), "{}", reply.body);
    }
    let admin = superuser(&app).await;
    let owner = user(&app, "owner").await;
    let b = block(&app, &admin, "社团").await;
    let org = organisation(&app, &admin, &owner, "Choir", b).await;
    for avatar in [
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "ftp://x/y.png",
    ] {
        let reply = app
            .put(
                &format!("/organizations/{org}/"),
                &owner.token,
                json!({"name": "Choir", "avatar": avatar}),
            )
            .await;
        assert_eq!(reply.status, 400, "{avatar}: {}", reply.body);
        assert!(reply.body["avatar"].is_array());
    }
    let fine = app
        .put(
            &format!("/organizations/{org}/"),
            &owner.token,
            json!({"name": "Choir", "avatar": "https://img.example/c.png"}),
        )
        .await;
    assert_eq!(fine.status, 200, "{}", fine.body);
    // One stored before the check is never served.
    sqlx::query("UPDATE campus_organizations SET avatar = 'javascript:alert(1)' WHERE id = $1")
        .bind(org)
        .execute(&app.app.rt.pool)
        .await
        .unwrap();
    let found = app.get("/organizations/?org=Choir", &owner.token).await;
    assert_eq!(
        found.body["results"]["avatar"],
        Value::Null,
        "{}",
        found.body
    );
}

#[tokio::test]
async fn names_hide_nothing_and_spellings_of_one_name_are_one_name() {
    let app = crate::platform::spawn().await;
    let admin = superuser(&app).await;
    let owner = user(&app, "owner").await;
    let b = block(&app, &admin, "社团").await;
    for name in ["Org\u{202E}A", "Org\u{200B}A", "\u{2066}OrgA"] {
        let reply = app
            .post(
                "/organizations/applications/",
                Some(&owner.token),
                json!({"name": name, "description": "d", "user": owner.id, "block": b}),
            )
            .await;
        assert_eq!(reply.status, 400, "{name:?}: {}", reply.body);
        assert!(reply.body["name"].is_array());
        let reply = app
            .post("/blocks/", Some(&admin), json!({"name": name}))
            .await;
        assert_eq!(reply.status, 400, "{name:?}");
        let reply = app
            .put(
                &format!("/users/{}/", owner.id),
                &owner.token,
                json!({"name": name}),
            )
            .await;
        assert_eq!(reply.status, 400, "{name:?}");
    }
    // Emoji sequences are names too.
    let emoji = app
        .post(
            "/blocks/",
            Some(&admin),
            json!({"name": "👩\u{200D}💻 coders"}),
        )
        .await;
    assert_eq!(emoji.status, 201, "{}", emoji.body);
    // A roster file with such a name is refused whole.
    assert!(
        ensemble::cli::parse_roster_csv("name,section,role\nAl\u{202E}ice,wind,member\n").is_err()
    );

    organisation(&app, &admin, &owner, "OrgA", b).await;
    for spelling in ["orga", "ＯｒｇＡ", "ORGA"] {
        let reply = app
            .post(
                "/organizations/applications/",
                Some(&owner.token),
                json!({"name": spelling, "description": "d", "user": owner.id, "block": b}),
            )
            .await;
        assert_eq!(reply.status, 400, "{spelling}: {}", reply.body);
    }
    let music = app
        .post("/blocks/", Some(&admin), json!({"name": "Music"}))
        .await;
    assert_eq!(music.status, 201);
    let again = app
        .post("/blocks/", Some(&admin), json!({"name": "ｍｕｓｉｃ"}))
        .await;
    assert_eq!(again.status, 400, "{}", again.body);
    // Its owner may respell it; what they typed is what is shown, and it stays theirs.
    let org = app.get("/organizations/?org=OrgA", &owner.token).await.body["results"]["id"]
        .as_i64()
        .unwrap();
    let respelt = app
        .put(
            &format!("/organizations/{org}/"),
            &owner.token,
            json!({"name": "orgA"}),
        )
        .await;
    assert_eq!(respelt.status, 200, "{}", respelt.body);
    assert_eq!(
        app.get("/organizations/?org=orgA", &owner.token).await.body["results"]["name"],
        "orgA"
    );
    let other = user(&app, "other").await;
    let taken = app
        .post(
            "/organizations/applications/",
            Some(&other.token),
            json!({"name": "ORGa", "description": "d", "user": other.id, "block": b}),
        )
        .await;
    assert_eq!(taken.status, 400, "{}", taken.body);
    let renamed = app
        .put(
            &format!("/blocks/{}/", music.body["id"]),
            &admin,
            json!({"name": "MUSIC"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(
        app.post("/blocks/", Some(&admin), json!({"name": "music"}))
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn name_reservations_made_before_are_re_keyed_once() {
    let app = crate::platform::spawn().await;
    let admin = superuser(&app).await;
    let owner = user(&app, "owner").await;
    let b = block(&app, &admin, "社团").await;
    organisation(&app, &admin, &owner, "OrgA", b).await;
    // As an older version reserved it: by the name as typed.
    let keys = &app.app.rt.keys;
    let scope = aggregates::campus::organizations::ORG_NAME_SCOPE;
    sqlx::query("UPDATE reservations SET blind = $3 WHERE scope = $1 AND blind = $2")
        .bind(scope)
        .bind(keys.blind_name(scope, "OrgA").0.as_slice())
        .bind(keys.blind(scope, "OrgA").0.as_slice())
        .execute(&app.app.rt.pool)
        .await
        .unwrap();
    app.sql("DELETE FROM data_migrations WHERE name = 'name-keys-v1'")
        .await;
    let apply = |name: &'static str| {
        app.post(
            "/organizations/applications/",
            Some(&owner.token),
            json!({"name": name, "description": "d", "user": owner.id, "block": b}),
        )
    };
    runtime::db::migrate(&app.database_url).await.unwrap();
    assert_eq!(apply("orga").await.status, 400);
    assert_eq!(apply("OrgA").await.status, 400);
}

#[tokio::test]
async fn an_over_long_or_hidden_wechat_nickname_is_kept_readable_and_cut_as_documented() {
    let app = crate::platform::spawn().await;
    let long = "长".repeat(12_000);
    let reply = app
        .post(
            "/login/",
            None,
            json!({"code": "code-long", "userInfo": {"nickName": long}}),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["name"].as_str().unwrap().chars().count(), 100);
    let reply = app
        .post(
            "/login/",
            None,
            json!({"code": "code-bidi", "userInfo": {"nickName": "A\u{202E}li\u{200B}ce"}}),
        )
        .await;
    assert_eq!(reply.body["name"], "Alice");
    let documented = app
        .anonymous_get("/openapi.json")
        .await
        .text()
        .await
        .unwrap();
    assert!(documented.contains("cut to its first 100 characters"));
}

#[tokio::test]
async fn page_links_never_come_from_the_host_header_and_keep_the_query() {
    let app = crate::platform::spawn().await;
    let admin = superuser(&app).await;
    for name in ["a", "b", "c"] {
        block(&app, &admin, name).await;
    }
    let reply: Value = app
        .http
        .get(format!("{}/blocks/?limit=1", app.address))
        .header("Authorization", format!("JWT {admin}"))
        .header("Host", "evil.example")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["next"], "/blocks?limit=1&offset=1", "{reply}");
    let configured = spawn_app_with(|c| {
        c.campus_write_limit = 0;
        c.public_url = Some("https://api.example.org".into());
    })
    .await;
    let admin = superuser(&configured).await;
    let b = block(&configured, &admin, "a").await;
    for who in ["u1", "u2"] {
        let u = user(&configured, who).await;
        organisation(&configured, &admin, &u, who, b).await;
    }
    let page = configured
        .get(&format!("/blocks/orgs/?block={b}&limit=1"), &admin)
        .await;
    assert_eq!(
        page.body["results"]["next"],
        format!("https://api.example.org/blocks/orgs?block={b}&limit=1&offset=1"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn the_audit_views_never_show_a_live_verification_code() {
    let app = crate::platform::spawn().await;
    let admin = superuser(&app).await;
    let body = wx_login(&app, "wzk").await;
    let token = body["token"].as_str().unwrap();
    let sent = app
        .post(
            "/sendVerify/",
            Some(token),
            json!({"email": "wzk@campus.edu"}),
        )
        .await;
    assert_eq!(sent.status, 200);
    let events = app
        .get("/audit/events/?aggregate_type=CampusUser", &admin)
        .await
        .body;
    let issued = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "VerificationCodeIssued")
        .unwrap()
        .clone();
    let payload = &issued["payload"]["VerificationCodeIssued"];
    assert_eq!(payload["code"], "(redacted)", "{issued}");
    assert_eq!(payload["email"], "wzk@campus.edu");
    let listed = crate::cli::ensemble(
        &app.database_url,
        &[
            "events",
            "list",
            "--aggregate-type",
            "CampusUser",
            "--format",
            "json",
        ],
    )
    .await;
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("(redacted)") && listed.contains("wzk@campus.edu"),
        "{listed}"
    );
}

/// This machine's address on another interface than loopback, if it has one.
fn outside_address() -> Option<IpAddr> {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    probe.connect("192.0.2.1:9").ok()?;
    let ip = probe.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn metrics_are_served_to_this_machine_only_unless_an_admin_listener_is_set() {
    let app = spawn_app().await;
    let get = |headers: &[(&str, &str)]| {
        let mut request = app.http.get(format!("{}/metrics", app.address));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send()
    };
    assert_eq!(get(&[]).await.unwrap().status(), 200);
    for header in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        assert_eq!(
            get(&[(header, "203.0.113.9")]).await.unwrap().status(),
            404,
            "{header}"
        );
    }
    // From another machine (this one's outside address, to a listener on every interface).
    if let Some(ip) = outside_address() {
        let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(ensemble::api::serve(app.app.clone(), listener, async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder()
            .local_address(ip)
            .build()
            .unwrap();
        let far = client
            .get(format!("http://{ip}:{port}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(far.status(), 404);
        let healthz = client
            .get(format!("http://{ip}:{port}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(healthz.status(), 200);
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_head_whose_lines_end_in_a_bare_lf_is_answered_at_once() {
    let app = spawn_app().await;
    let address = app.address.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer within 3 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
}

#[tokio::test]
async fn erasing_an_account_of_ones_own_leaves_others_retries_alone() {
    let app = spawn_app_with(|c| c.campus_write_limit = 0).await;
    let u = user(&app, "u1").await;
    let feedback = |key: &'static str| {
        let app = &app;
        let token = u.token.clone();
        async move {
            app.http
                .post(format!("{}/feedbacks/", app.address))
                .header("Authorization", format!("JWT {token}"))
                .header("Idempotency-Key", key)
                .json(&json!({"feedback": "the app is slow", "contact": "me"}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(feedback("k").await.status(), 201);
    // A stranger logs in and deletes their own account (an erasure).
    let stranger = user(&app, "stranger").await;
    let gone = app
        .delete(&format!("/users/{}/", stranger.id), &stranger.token)
        .await;
    assert_eq!(gone.status, 204);
    // The first user's retry is still answered from the cache: nothing runs twice.
    let again = feedback("k").await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        app.scalar("SELECT count(*) FROM events WHERE event_type = 'FeedbackSubmitted'")
            .await,
        1
    );
    // An answer that names someone else (a manager's decision names the applier) goes with
    // anyone's erasure; the member's own answers go with theirs.
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let decision = keyed(
        &app,
        reqwest::Method::PUT,
        &format!("/manager/{id}/"),
        &format!("JWT {}", t.alice),
        "decide",
        json!({"result": "ok", "permission": true}),
    )
    .await;
    assert_eq!(decision, 200);
    let names_others = || app.scalar("SELECT count(*) FROM idempotency_keys WHERE names_others");
    assert_eq!(names_others().await, 1);
    let other = user(&app, "other").await;
    app.delete(&format!("/users/{}/", other.id), &other.token)
        .await;
    assert_eq!(names_others().await, 0);
    assert_eq!(kept_answers(&app).await, 1, "the feedback's answer stays");
    // A superuser's application on a user's behalf names that user (and its free text).
    let admin = superuser(&app).await;
    let b = block(&app, &admin, "社团").await;
    let member = user(&app, "member").await;
    let applied = keyed(
        &app,
        reqwest::Method::POST,
        "/organizations/applications/",
        &format!("JWT {admin}"),
        "on-behalf",
        json!({"name": "Club", "description": "their private reason", "user": member.id, "block": b}),
    )
    .await;
    assert_eq!(applied, 202);
    assert_eq!(names_others().await, 1);
    app.delete(&format!("/users/{}/", member.id), &admin).await;
    assert_eq!(names_others().await, 0);
}

#[tokio::test]
async fn a_client_that_hangs_up_while_its_key_is_claimed_leaves_the_request_whole() {
    let app = spawn_app_with(|c| c.campus_write_limit = 0).await;
    let u = user(&app, "u1").await;
    // The retry cache is held up (an operator's lock), and the client gives up meanwhile.
    let mut operator = app.app.rt.tx_pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE idempotency_keys IN EXCLUSIVE MODE")
        .execute(&mut *operator)
        .await
        .unwrap();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let send = |client: &reqwest::Client| {
        client
            .post(format!("{}/feedbacks/", app.address))
            .header("Authorization", format!("JWT {}", u.token))
            .header("Idempotency-Key", "hang")
            .json(&json!({"feedback": "hello", "contact": "me"}))
            .send()
    };
    assert!(send(&impatient).await.is_err(), "the client hung up");
    tokio::time::sleep(Duration::from_millis(300)).await;
    operator.rollback().await.unwrap();
    // The request ran to its end and its answer waits for the retry.
    assert!(
        crate::helpers::eventually(Duration::from_secs(10), || async {
            app.scalar("SELECT count(*) FROM idempotency_keys WHERE status IS NOT NULL")
                .await
                == 1
        })
        .await
    );
    let retry = send(&app.http).await.unwrap();
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(
        app.scalar("SELECT count(*) FROM events WHERE event_type = 'FeedbackSubmitted'")
            .await,
        1
    );
}

#[tokio::test]
async fn avatars_that_only_parse_as_links_are_refused_and_a_known_user_logs_in_whatever_their_client_sends(
) {
    let app = crate::platform::spawn().await;
    let admin = superuser(&app).await;
    let owner = user(&app, "owner").await;
    let b = block(&app, &admin, "社团").await;
    let org = organisation(&app, &admin, &owner, "Choir", b).await;
    for avatar in [
        "https:evil.example/x.png",
        "http:\\\\evil.example\\x.png",
        "https:/evil.example",
        "http:///x",
        "http://@x.example/",
        "http://u:p@x.example/",
    ] {
        let reply = app
            .put(
                &format!("/organizations/{org}/"),
                &owner.token,
                json!({"name": "Choir", "avatar": avatar}),
            )
            .await;
        assert_eq!(reply.status, 400, "{avatar}: {}", reply.body);
    }
    // What is stored is what every page is shown.
    let reply = app
        .put(
            &format!("/organizations/{org}/"),
            &owner.token,
            json!({"name": "Choir", "avatar": "HTTPS://Img.Example/c.png"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let found = app.get("/organizations/?org=Choir", &owner.token).await;
    assert_eq!(found.body["results"]["avatar"], "https://img.example/c.png");
    // A user who exists logs in whatever profile their client sends (it is not read).
    let again = app
        .post("/login/", None, json!({"code": "code-owner", "userInfo": {"nickName": "x", "avatarUrl": "wxfile://tmp_abc.jpg"}}))
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    // Names that only look different are one, or no name at all.
    for name in ["社团\u{FE0F}", "社\u{034F}团", "\u{3164}", "\u{2800}"] {
        let reply = app
            .post("/blocks/", Some(&admin), json!({"name": name}))
            .await;
        assert_eq!(reply.status, 400, "{name:?}: {}", reply.body);
    }
}

#[tokio::test]
async fn a_token_revoked_since_gets_the_routes_refusal_not_the_kept_answer() {
    let app = spawn_app_with(|c| {
        c.write_limit = 0;
        c.campus_write_limit = 0;
    })
    .await;
    let t = app.with_roster().await;
    let david = app.member_id("David").await;
    let body = json!({"reason": "x", "time_absence": "2026-03-12", "type": "全体排练"});
    let authorization = format!("JWT {}", t.david);
    let send = || {
        keyed(
            &app,
            reqwest::Method::POST,
            "/absence/",
            &authorization,
            "k1",
            body.clone(),
        )
    };
    assert_eq!(send().await, 201);
    assert_eq!(send().await, 201, "replayed while the token holds");
    app.operator(RosterCommand::UnbindWechat {
        member_id: david as u64,
    })
    .await;
    let replayed = app
        .authed(reqwest::Method::POST, "/absence/", &t.david)
        .header("Idempotency-Key", "k1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 401);
    assert!(replayed.headers().get("idempotent-replayed").is_none());
    let refused: Value = replayed.json().await.unwrap();
    assert_eq!(refused, json!({"msg": "Invalid or expired token."}));
    // The campus likewise: a user deleted since.
    let u = user(&app, "u").await;
    let feedback = |token: String| {
        let app = &app;
        async move {
            app.authed(reqwest::Method::POST, "/feedbacks/", &token)
                .header("Idempotency-Key", "f1")
                .json(&json!({"feedback": "slow", "contact": "me"}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(feedback(u.token.clone()).await.status(), 201);
    assert_eq!(
        feedback(u.token.clone()).await.headers()["idempotent-replayed"],
        "true"
    );
    let admin = superuser(&app).await;
    app.delete(&format!("/users/{}/", u.id), &admin).await;
    let after = feedback(u.token.clone()).await;
    assert_eq!(after.status(), 401);
    let refused: Value = after.json().await.unwrap();
    assert_eq!(refused, json!({"detail": "认证令牌无效。"}));
}

#[tokio::test]
async fn duplicates_waiting_on_an_answer_that_is_not_kept_run_themselves() {
    let app = spawn_app_with(|c| c.campus_write_limit = 0).await;
    let u = user(&app, "u").await;
    // Not a superuser: 403, an answer that is not kept. The duplicates that waited on it run
    // themselves and hear the same, never a 503.
    let statuses = futures::future::join_all((0..10).map(|_| {
        app.authed(reqwest::Method::POST, "/activities/categories/", &u.token)
            .header("Idempotency-Key", "same")
            .json(&json!({"name": "晚会"}))
            .send()
    }))
    .await;
    let statuses: Vec<u16> = statuses
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert!(statuses.iter().all(|s| *s == 403), "{statuses:?}");
}
