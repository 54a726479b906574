//! The described API (`/openapi.json`, `/docs`) and the login limits.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, ROSTER};

/// A value for each path parameter that names something that exists (absence `id`).
fn fill(path: &str, id: i64) -> String {
    path.replace("{id}", &id.to_string())
        .replace("{key}", "1")
        .replace("{file}", "swagger-ui.css")
        .replace("{asset}", "console.css")
        .replace("{aggregate_type}", "Roster")
        .replace("{aggregate_id}", "orchestra")
}

#[tokio::test]
async fn every_documented_operation_is_served_and_nothing_else_is_routed() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    // One absence for each way of calling DELETE (with and without the slash).
    let ids = [
        app.apply_id(&t.david, "2026-03-12", "全体排练").await,
        app.apply_id(&t.david, "2026-03-13", "全体排练").await,
    ];
    let doc = app.document().await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = Vec::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                operations.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations.sort();
    let expected: Vec<(String, String)> = [
        ("DELETE", "/absence/{id}"),
        ("DELETE", "/activities/addresses/{id}"),
        ("DELETE", "/activities/categories/{id}"),
        ("DELETE", "/blocks/{id}"),
        ("DELETE", "/organizations/applications/{id}"),
        ("DELETE", "/organizations/managers"),
        ("DELETE", "/organizations/{id}"),
        ("DELETE", "/users/followed_organizations"),
        ("DELETE", "/users/{id}"),
        ("GET", "/activities/addresses"),
        ("GET", "/activities/categories"),
        ("GET", "/blocks"),
        ("GET", "/blocks/orgs"),
        ("GET", "/feedbacks"),
        ("GET", "/organizations"),
        ("GET", "/organizations/{id}"),
        ("GET", "/organizations/applications"),
        ("GET", "/organizations/applications/{id}"),
        ("GET", "/blocks/{id}"),
        ("GET", "/activities/categories/{id}"),
        ("GET", "/activities/addresses/{id}"),
        ("GET", "/organizations/managers"),
        ("GET", "/organizations/managers/{id}"),
        ("GET", "/users"),
        ("GET", "/users/followed_organizations/{id}"),
        ("GET", "/users/managed_organizations/{id}"),
        ("GET", "/users/organizations"),
        ("GET", "/users/organizations/applications/{id}"),
        ("GET", "/users/{id}"),
        ("POST", "/activities/addresses"),
        ("POST", "/activities/categories"),
        ("POST", "/blocks"),
        ("POST", "/feedbacks"),
        ("POST", "/login"),
        ("POST", "/organizations/applications"),
        ("POST", "/organizations/managers"),
        ("POST", "/organizations/owner/{id}"),
        ("POST", "/sendVerify"),
        ("POST", "/userLogin"),
        ("POST", "/users/followed_organizations"),
        ("POST", "/verify"),
        ("PUT", "/activities/categories/{id}"),
        ("PUT", "/blocks/{id}"),
        ("PUT", "/organizations/applications/verifications/{id}"),
        ("PUT", "/organizations/{id}"),
        ("PUT", "/users/{id}"),
        ("GET", "/absence"),
        ("GET", "/console"),
        ("GET", "/console/assets/{asset}"),
        ("GET", "/console/history"),
        ("GET", "/console/integrity"),
        ("GET", "/console/integrity/progress"),
        ("GET", "/console/operations"),
        ("GET", "/console/operations/lag"),
        ("GET", "/console/operations/progress"),
        ("GET", "/console/record"),
        ("GET", "/console/saw"),
        ("POST", "/console/integrity/verify"),
        ("POST", "/console/login"),
        ("POST", "/console/logout"),
        ("POST", "/console/mail/retry"),
        ("POST", "/console/operations/rebuild"),
        ("GET", "/audit/events"),
        ("GET", "/audit/views"),
        ("GET", "/audit/{aggregate_type}/{aggregate_id}"),
        ("GET", "/audit/{aggregate_type}/{aggregate_id}/history"),
        ("GET", "/docs"),
        ("GET", "/docs/{file}"),
        ("GET", "/healthz"),
        ("GET", "/manager"),
        ("GET", "/manager/future"),
        ("GET", "/manager/history"),
        ("GET", "/manager/next"),
        ("GET", "/manager/{key}/present"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/readyz"),
        ("GET", "/subscriptions/{name}/events"),
        ("POST", "/subscriptions/{name}/ack"),
        ("POST", "/absence"),
        ("POST", "/account/login"),
        ("POST", "/adminLogIn"),
        ("POST", "/register"),
        ("PUT", "/absence/{id}"),
        ("PUT", "/manager/{key}"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(operations, expected);
    // Each one is served (with and without the trailing slash): nothing answers "no such
    // route" (404) or "method not allowed" (405).
    let mut calls = operations.clone();
    calls.sort_by_key(|(method, _)| method == "DELETE"); // deletes last
    for (method, path) in &calls {
        for path in [fill(path, ids[0]), format!("{}/", fill(path, ids[1]))] {
            let token = if path.starts_with("/manager") {
                &t.alice
            } else {
                &t.david
            };
            let reply = app
                .http
                .request(method.parse().unwrap(), format!("{}{path}", app.address))
                .header("Authorization", format!("JWT {token}"))
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = reply.status().as_u16();
            assert!(
                status != 404 && status != 405,
                "{method} {path}: {status} {}",
                reply.text().await.unwrap_or_default()
            );
        }
    }
    // Each documented operation has its responses, and each authenticated one says how.
    for (method, path) in &operations {
        let op = &paths[path][method.to_lowercase()];
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path}"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["jwt"]["name"],
        "Authorization"
    );
    assert!(paths["/absence"]["post"]["security"].is_array());
    let bodies = paths["/absence"]["post"]["requestBody"]["content"]
        .as_object()
        .unwrap();
    assert!(bodies.contains_key("application/json"));
    assert!(bodies.contains_key("application/x-www-form-urlencoded"));
}

/// What keeps the document whole: the router is built only from utoipa-axum's `routes!`
/// registrations, which describe each route they serve. A route added with plain axum
/// (`.route(...)`, `Router::new()`, a nested service) would be served undescribed; this
/// fails when one appears anywhere in `src/`.
#[test]
fn routes_are_registered_only_where_they_are_described() {
    let mut offenders = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                let plain_router = code
                    .match_indices("Router::new()")
                    .any(|(at, _)| !code[..at].ends_with(|c: char| c.is_alphanumeric()));
                if plain_router {
                    offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
                for pattern in [
                    ".route(",
                    ".route_service(",
                    ".nest(",
                    ".nest_service(",
                    ".fallback_service(",
                ] {
                    if code.contains(pattern) {
                        offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "routes outside the document:\n{}",
        offenders.join("\n")
    );
}

#[tokio::test]
async fn the_docs_page_and_its_assets_come_from_the_binary() {
    let app = spawn_app().await;
    for path in ["/docs", "/docs/"] {
        let page = app.anonymous_get(path).await;
        assert_eq!(page.status(), 200);
        assert!(page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let html = page.text().await.unwrap();
        assert!(
            html.contains("swagger-ui") && html.contains("<base href=\"/docs/\">"),
            "{html}"
        );
    }
    let init = app
        .anonymous_get("/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
    let css = app.anonymous_get("/docs/swagger-ui.css").await;
    assert_eq!(css.status(), 200);
    assert!(css.bytes().await.unwrap().len() > 10_000);
    let missing = app.anonymous_get("/docs/nothing-here.js").await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn logins_are_limited_per_name_and_per_address_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.login_limit_address = 5;
        c.login_limit_name_address = 2;
    })
    .await;
    app.import_roster(ROSTER).await;
    let attempt = |name: &'static str, account: &'static str| {
        let app = &app;
        async move {
            app.http
                .post(format!("{}/account/login/", app.address))
                .json(&json!({ "name": name, "code": format!("code-{account}") }))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(attempt("David", "David").await.status(), 200);
    // Failures for a name from one address: two, then refused before anything is checked.
    assert_eq!(attempt("David", "Mallory").await.status(), 403);
    assert_eq!(attempt("David", "Mallory").await.status(), 403);
    let refused = attempt("David", "Mallory").await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = refused.json().await.unwrap();
    assert!(body["msg"]
        .as_str()
        .unwrap()
        .contains("Too many failed login attempts"));
    // Another name from the same address: allowed until the address's own limit (5 a minute,
    // the refused attempt included).
    assert_eq!(attempt("Wendy", "Wendy").await.status(), 200);
    let refused = attempt("Alice", "Alice").await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert!(body["msg"]
        .as_str()
        .unwrap()
        .contains("Too many login attempts"));
    let limits = app
        .scalar("SELECT count(*) FROM write_limits WHERE key LIKE 'login-%'")
        .await;
    assert!(limits >= 2);
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM write_limits")
        .fetch_all(&app.app.rt.pool)
        .await
        .unwrap();
    assert!(
        keys.iter()
            .all(|k| !k.contains("David") && !k.contains("127.0.0.1")),
        "{keys:?}"
    );
}
