use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn only_managers_reach_the_manager_endpoints() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    for path in [
        "/manager/",
        "/manager/next/",
        "/manager/future/",
        "/manager/history/",
        "/manager/2026-03-12/present/",
    ] {
        let member = app.get(path, &t.david).await;
        assert_eq!(member.status, 401, "{path}");
        assert_eq!(
            member.body,
            json!({"msg": "You are not a manager!"}),
            "{path}"
        );
        let anonymous = app.request(reqwest::Method::GET, path, None, None).await;
        assert_eq!(anonymous.status, 401, "{path}");
        assert_eq!(app.get(path, &t.alice).await.status, 200, "{path}");
    }
    let put = app
        .put(
            "/manager/1/",
            &t.david,
            json!({"result": "x", "permission": true}),
        )
        .await;
    assert_eq!(put.status, 401);
}

#[tokio::test]
async fn a_manager_sees_every_absence_by_date() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    app.apply(&t.david, "2026-03-20", "全体排练").await;
    app.apply(&t.wendy, "2026-03-12", "管乐分排").await;
    let all = app.get("/manager/", &t.alice).await.body;
    let appliers: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["applier"].clone())
        .collect();
    assert_eq!(appliers, vec![json!("Wendy"), json!("David")]);
}

#[tokio::test]
async fn processing_records_the_caller_as_processor_and_may_be_repeated() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let path = format!("/manager/{id}/");
    let reply = app
        .put(
            &path,
            &t.alice,
            json!({"processor": "David", "result": "Get well", "permission": false}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body["msg"].is_string());
    assert_eq!(reply.body["id"], id);
    assert_eq!(reply.body["processor"], "Alice");
    assert_eq!(reply.body["result"], "Get well");
    assert_eq!(reply.body["permission"], false);
    // Again, as a form, changing the decision.
    let again = app
        .authed(reqwest::Method::PUT, &path, &t.alice)
        .form(&[("result", "Approved after all"), ("permission", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let mine = app.get("/absence/", &t.david).await.body;
    assert_eq!(mine[0]["permission"], true);
    assert_eq!(mine[0]["result"], "Approved after all");
    // Each decision is an event.
    assert_eq!(
        app.scalar("SELECT count(*) FROM events WHERE event_type = 'AbsenceProcessed'")
            .await,
        2
    );
}

#[tokio::test]
async fn processing_needs_a_permission_and_an_existing_absence() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let missing = app
        .put(
            &format!("/manager/{id}/"),
            &t.alice,
            json!({"result": "ok"}),
        )
        .await;
    assert_eq!(missing.status, 400);
    let bad = app
        .put(
            &format!("/manager/{id}/"),
            &t.alice,
            json!({"result": "ok", "permission": "perhaps"}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let unknown = app
        .put(
            "/manager/999/",
            &t.alice,
            json!({"result": "ok", "permission": true}),
        )
        .await;
    assert_eq!(unknown.status, 404);
    let not_a_number = app
        .put(
            "/manager/abc/",
            &t.alice,
            json!({"result": "ok", "permission": true}),
        )
        .await;
    assert_eq!(not_a_number.status, 404);
}

#[tokio::test]
async fn present_lists_every_member_and_only_approved_absences_count() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let d = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let w = app.apply_id(&t.wendy, "2026-03-12", "全体排练").await;
    app.process(d, &t.alice, "ok", true).await;
    app.process(w, &t.alice, "no", false).await;
    let reply = app.get("/manager/2026-3-12/present/", &t.alice).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        json!({"time": "2026-03-12", "members": [
            {"name": "David", "state": "absent"},
            {"name": "Wendy", "state": "present"},
            {"name": "Percy", "state": "present"},
            {"name": "Alice", "state": "present"},
        ]})
    );
    let bad = app.get("/manager/2026-13-40/present/", &t.alice).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn next_is_the_nearest_date_anyone_applied_for_split_by_section() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    assert_eq!(app.get("/manager/next/", &t.alice).await.body, json!([]));
    app.apply(&t.david, "2026-03-20", "全体排练").await;
    app.apply(&t.wendy, "2026-03-13", "全体排练").await;
    app.apply(&t.percy, "2026-03-13", "全体排练").await;
    let next = app.get("/manager/next/", &t.alice).await.body;
    assert_eq!(next["time"], "2026-03-13");
    assert_eq!(next["stringed"], json!([]));
    assert_eq!(next["wind"][0]["applier"], "Wendy");
    assert_eq!(next["percussion"][0]["applier"], "Percy");
    assert_eq!(next["percussion"][0]["type"], "全体排练");
}

#[tokio::test]
async fn future_is_unprocessed_ahead_and_history_is_processed_behind() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let a = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let b = app.apply_id(&t.david, "2026-03-14", "全体排练").await;
    let c = app.apply_id(&t.wendy, "2026-03-20", "全体排练").await;
    app.process(a, &t.alice, "ok", true).await;
    let ids = |v: serde_json::Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(
        ids(app.get("/manager/future/", &t.alice).await.body),
        vec![b, c]
    );
    assert_eq!(
        ids(app.get("/manager/history/", &t.alice).await.body),
        Vec::<i64>::new()
    );
    // Time passes: on the 15th, a (processed, past) is history; b (unprocessed, past) is neither.
    let app = app.restart_on("2026-03-15").await;
    let alice = app.login("Alice").await;
    assert_eq!(
        ids(app.get("/manager/history/", &alice).await.body),
        vec![a]
    );
    assert_eq!(ids(app.get("/manager/future/", &alice).await.body), vec![c]);
}
