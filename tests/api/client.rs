//! What a client developer found trying the API (issue 17): each service answers in its own
//! shapes, detail routes answer GET, an approved application's reason becomes its
//! organisation's description, and every request body is described field by field.

use serde_json::{json, Value};

use crate::helpers::spawn_app;
use crate::platform::{block, organisation, spawn, superuser, user};

#[tokio::test]
async fn each_service_answers_not_found_and_malformed_bodies_in_its_own_shape() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    // The orchestra's {"msg"}.
    let missing = app.delete("/absence/999/", &t.david).await;
    assert_eq!(
        (missing.status, &missing.body),
        (404, &json!({"msg": "Not found."}))
    );
    let unknown = app.get("/manager/nowhere/at/all/", &t.alice).await;
    assert_eq!(unknown.body, json!({"msg": "Not found."}));
    // The campus's DRF {"detail"}, exactly.
    let u = user(&app, "wzk").await;
    for path in [
        "/users/999/",
        "/organizations/999/",
        "/blocks/999/",
        "/users/nowhere/at/all/",
    ] {
        let reply = app.get(path, &u.token).await;
        assert_eq!(
            (reply.status, &reply.body),
            (404, &json!({"detail": "未找到。"})),
            "{path}"
        );
    }
    // Malformed JSON.
    let send = |path: &str, token: &str, body: &'static str| {
        app.http
            .post(format!("{}{path}", app.address))
            .header("Authorization", format!("JWT {token}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let campus: Value = send("/feedbacks/", &u.token, "{\"feedback\": ")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        campus["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error - "),
        "{campus}"
    );
    assert!(campus.get("msg").is_none(), "{campus}");
    let orchestra: Value = send("/absence/", &t.david, "[1, 2]")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        orchestra["msg"].is_string() && orchestra.get("detail").is_none(),
        "{orchestra}"
    );
    // A method a path does not take.
    let patched = app
        .authed(reqwest::Method::PATCH, "/blocks/1/", &u.token)
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 405);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched, json!({"detail": "方法 “PATCH” 不被允许。"}));
    let patched: Value = app
        .authed(reqwest::Method::PATCH, "/absence/", &t.david)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched, json!({"msg": "Method not allowed."}));
    // A field that cannot be text, and a form that is not UTF-8, in the campus's shape.
    let nul = app
        .post(
            "/adminLogIn/",
            None,
            json!({"username": "a\0b", "password": "x"}),
        )
        .await;
    assert_eq!(nul.status, 400);
    assert!(nul.body["detail"].is_string(), "{}", nul.body);
    let form = app
        .authed(reqwest::Method::POST, "/feedbacks/", &u.token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("feedback=%FF%FE&contact=x")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 400);
    let form: Value = form.json().await.unwrap();
    assert!(form["detail"].is_string(), "{form}");
}

#[tokio::test]
async fn detail_routes_that_change_a_record_also_read_it() {
    let app = spawn().await;
    let admin = superuser(&app).await;
    let owner = user(&app, "owner").await;
    let b = block(&app, &admin, "社团").await;
    let org = organisation(&app, &admin, &owner, "Choir", b).await;
    let category = app
        .post(
            "/activities/categories/",
            Some(&admin),
            json!({"name": "晚会"}),
        )
        .await;
    let address = app
        .post(
            "/activities/addresses/",
            Some(&owner.token),
            json!({"name": "图书馆", "longitude": "121.5", "latitude": "31.2"}),
        )
        .await;
    let pending = app
        .post(
            "/organizations/applications/",
            Some(&owner.token),
            json!({"name": "Band", "description": "we play", "user": owner.id, "block": b}),
        )
        .await;
    assert_eq!(pending.status, 202);
    // As the lists they belong to show them, to whoever may read those lists.
    let got = app.get(&format!("/blocks/{b}/"), &owner.token).await;
    assert_eq!(got.body, json!({"id": b, "name": "社团"}));
    let got = app
        .get(
            &format!("/activities/categories/{}/", category.body["id"]),
            &owner.token,
        )
        .await;
    assert_eq!(got.body, category.body);
    let got = app
        .get(
            &format!("/activities/addresses/{}/", address.body["id"]),
            &owner.token,
        )
        .await;
    assert_eq!(got.body, address.body);
    let got = app
        .get(&format!("/organizations/{org}/"), &owner.token)
        .await;
    assert_eq!(got.body["name"], "Choir");
    assert_eq!(got.body["owner"]["id"], owner.id);
    let listed = app.get("/organizations/applications/", &admin).await.body;
    let application = pending.body["id"].as_i64().unwrap();
    let got = app
        .get(
            &format!("/organizations/applications/{application}/"),
            &admin,
        )
        .await;
    let in_list = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == application)
        .unwrap();
    assert_eq!(&got.body, in_list);
    // Applications are the superusers' to read, one as all.
    let refused = app
        .get(
            &format!("/organizations/applications/{application}/"),
            &owner.token,
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        app.get("/organizations/applications/999/", &admin)
            .await
            .status,
        404
    );
    // Nobody without a token.
    let anonymous = app.anonymous_get(&format!("/blocks/{b}/")).await;
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn an_approved_application_founds_its_organisation_with_its_reason_as_description() {
    let app = spawn().await;
    let admin = superuser(&app).await;
    let owner = user(&app, "owner").await;
    let b = block(&app, &admin, "社团").await;
    let submitted = app
        .post(
            "/organizations/applications/",
            Some(&owner.token),
            json!({"name": "Singers", "description": "we sing", "user": owner.id, "block": b}),
        )
        .await;
    let id = submitted.body["id"].as_i64().unwrap();
    let approved = app
        .put(
            &format!("/organizations/applications/verifications/{id}/"),
            &admin,
            json!({"status": 1}),
        )
        .await;
    assert_eq!(approved.status, 200);
    let org = app.get("/organizations/?org=Singers", &owner.token).await;
    assert_eq!(
        org.body["results"]["description"], "we sing",
        "{}",
        org.body
    );
    // The first edit that leaves the description out keeps it.
    let org_id = org.body["results"]["id"].as_i64().unwrap();
    let edited = app
        .put(
            &format!("/organizations/{org_id}/"),
            &owner.token,
            json!({"name": "Singers", "avatar": "https://img.example/s.png"}),
        )
        .await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    assert_eq!(edited.body["description"], "we sing", "{}", edited.body);
}

#[tokio::test]
async fn every_request_body_is_described_field_by_field_with_an_example() {
    let app = spawn_app().await;
    let document = app.document().await;
    let resolve = |schema: &Value| -> Value {
        let schema = schema
            .get("oneOf")
            .map(|one| one[0].clone())
            .unwrap_or(schema.clone());
        match schema["$ref"].as_str() {
            Some(r) => document["components"]["schemas"]
                [r.trim_start_matches("#/components/schemas/")]
            .clone(),
            None => schema.clone(),
        }
    };
    let mut bodies = 0;
    let mut not_founds = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            // A 404 is described in the dialect it is answered in.
            if let Some(missing) = operation["responses"].get("404") {
                not_founds += 1;
                let schema = resolve(&missing["content"]["application/json"]["schema"]);
                let keys: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
                let campus = ["campus", "audit"].contains(&operation["tags"][0].as_str().unwrap());
                let expected = if campus { "detail" } else { "msg" };
                assert_eq!(
                    keys,
                    [expected],
                    "{method} {path}: 404 described as {schema}"
                );
            }
            let Some(content) = operation["requestBody"]["content"].as_object() else {
                continue;
            };
            for (media, body) in content {
                bodies += 1;
                let schema = resolve(&body["schema"]);
                let properties = schema["properties"].as_object();
                assert!(
                    properties.is_some_and(|p| !p.is_empty()),
                    "{method} {path} ({media}): the body is not described: {schema}"
                );
                assert!(
                    schema.get("example").is_some() || body.get("example").is_some(),
                    "{method} {path} ({media}): no example"
                );
            }
            // Writes name the retry header and the answers every write may give.
            for status in ["413", "503"] {
                assert!(
                    operation["responses"].get(status).is_some(),
                    "{method} {path}: {status} is not described"
                );
            }
        }
    }
    assert!(bodies >= 40, "{bodies} bodies");
    assert!(not_founds >= 20, "{not_founds} 404s described");
    // The seven rehearsals are the domain's.
    let kinds = &document["components"]["schemas"]["AbsenceBody"]["properties"]["type"];
    let kinds = resolve(kinds);
    let names: Vec<&str> = kinds["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let domain: Vec<&str> = aggregates::orchestra::AbsenceType::ALL
        .map(|t| t.as_str())
        .to_vec();
    assert_eq!(names, domain);
    // The texts are current.
    let text = document.to_string();
    assert!(
        !text.contains("to come"),
        "the document still promises the campus"
    );
}
