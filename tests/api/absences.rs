use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn applying_answers_201_with_the_absence() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let reply = app.apply(&t.david, "2026-03-12", "全体排练").await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({
            "id": 1, "applier": "David", "processor": null, "reason": "exam",
            "time_absence": "2026-03-12", "time_apply": "2026-03-10",
            "result": "Not processed yet!", "permission": false, "type": "全体排练"
        })
    );
    let second = app.apply(&t.david, "2026-03-13", "弦乐分排").await;
    assert_eq!(second.body["id"], 2);
}

#[tokio::test]
async fn a_form_body_is_accepted_like_json() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let reply = app
        .authed(reqwest::Method::POST, "/absence/", &t.david)
        .form(&[
            ("reason", "concert"),
            ("time_absence", "2026-3-20"),
            ("type", "弦乐重奏"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(body["time_absence"], "2026-03-20");
    assert_eq!(body["type"], "弦乐重奏");
}

#[tokio::test]
async fn get_absence_lists_only_the_callers_own_by_date() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    app.apply(&t.david, "2026-03-20", "全体排练").await;
    app.apply(&t.david, "2026-03-12", "全体排练").await;
    app.apply(&t.wendy, "2026-03-15", "全体排练").await;
    let reply = app.get("/absence/", &t.david).await;
    let dates: Vec<_> = reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["time_absence"].clone())
        .collect();
    assert_eq!(dates, vec![json!("2026-03-12"), json!("2026-03-20")]);
}

#[tokio::test]
async fn the_quota_says_no_when_used_up() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    // Stringed: 3. A combined rehearsal costs 2.
    assert_eq!(
        app.apply(&t.david, "2026-03-11", "全体排练+弦乐分排")
            .await
            .status,
        201
    );
    assert_eq!(
        app.apply(&t.david, "2026-03-12", "全体排练").await.status,
        201
    );
    let refused = app.apply(&t.david, "2026-03-13", "全体排练").await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.body,
        json!({"msg": "You have used up all of your chances."})
    );
    // Percussion: 1, and a combined one costs 2.
    let combined = app.apply(&t.percy, "2026-03-13", "全体排练+管乐分排").await;
    assert_eq!(combined.status, 403);
    assert_eq!(
        app.apply(&t.percy, "2026-03-13", "全体排练").await.status,
        201
    );
    assert_eq!(
        app.apply(&t.percy, "2026-03-14", "全体排练").await.status,
        403
    );
    // Wind: 2.
    assert_eq!(
        app.apply(&t.wendy, "2026-03-13", "全体排练+管乐分排")
            .await
            .status,
        201
    );
    assert_eq!(
        app.apply(&t.wendy, "2026-03-14", "管乐分排").await.status,
        403
    );
}

#[tokio::test]
async fn cancelling_gives_the_chance_back() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let first = app.apply(&t.percy, "2026-03-13", "全体排练").await;
    assert_eq!(
        app.apply(&t.percy, "2026-03-14", "全体排练").await.status,
        403
    );
    let id = first.body["id"].as_i64().unwrap();
    let deleted = app.delete(&format!("/absence/{id}/"), &t.percy).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(app.get("/absence/", &t.percy).await.body, json!([]));
    assert_eq!(
        app.apply(&t.percy, "2026-03-14", "全体排练").await.status,
        201
    );
}

#[tokio::test]
async fn one_absence_per_date_and_only_after_today() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    app.apply(&t.david, "2026-03-12", "全体排练").await;
    let twice = app.apply(&t.david, "2026-03-12", "弦乐分排").await;
    assert_eq!(twice.status, 400);
    assert!(twice.body["msg"].is_string());
    for date in ["2026-03-10", "2026-03-01"] {
        let past = app.apply(&t.david, date, "全体排练").await;
        assert_eq!(past.status, 400, "{date}");
        assert_eq!(past.body["msg"], "The date of absence must be after today.");
    }
}

#[tokio::test]
async fn bad_fields_are_bad_requests_that_say_what_is_wrong() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let unknown = app.apply(&t.david, "2026-03-12", "全体").await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.body["msg"]
        .as_str()
        .unwrap()
        .contains("unknown absence type"));
    let bad_date = app.apply(&t.david, "2026-02-30", "全体排练").await;
    assert_eq!(bad_date.status, 400);
    assert!(bad_date.body["msg"]
        .as_str()
        .unwrap()
        .contains("time_absence"));
    let missing = app
        .post("/absence/", Some(&t.david), json!({"type": "全体排练"}))
        .await;
    assert_eq!(missing.status, 400);
    let wrong_type = app
        .post(
            "/absence/",
            Some(&t.david),
            json!({"reason": 5, "time_absence": ["x"], "type": "全体排练"}),
        )
        .await;
    assert_eq!(wrong_type.status, 400);
    // Nothing was written by any of them.
    assert_eq!(
        app.scalar("SELECT count(*) FROM events WHERE aggregate_type = 'MemberAbsences'")
            .await,
        0
    );
}

#[tokio::test]
async fn changing_an_absence_adjusts_the_quota_and_resets_the_decision() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let a = app.apply_id(&t.wendy, "2026-03-12", "全体排练").await;
    app.process(a, &t.alice, "ok", true).await;
    // Wind has 2: turning the one absence into a combined one fits.
    let changed = app
        .change(
            &t.wendy,
            a,
            json!({"reason": "moved", "time_absence": "2026-03-19", "type": "全体排练+管乐分排"}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["time_absence"], "2026-03-19");
    assert_eq!(changed.body["type"], "全体排练+管乐分排");
    assert_eq!(changed.body["reason"], "moved");
    assert_eq!(changed.body["processor"], json!(null));
    assert_eq!(changed.body["result"], "Not processed yet!");
    assert_eq!(changed.body["permission"], false);
    // ...and now nothing is left.
    assert_eq!(
        app.apply(&t.wendy, "2026-03-20", "管乐分排").await.status,
        403
    );
    // A partial body keeps the other fields.
    let partial = app.change(&t.wendy, a, json!({"type": "管乐分排"})).await;
    assert_eq!(partial.status, 200);
    assert_eq!(partial.body["time_absence"], "2026-03-19");
    assert_eq!(
        app.apply(&t.wendy, "2026-03-20", "管乐分排").await.status,
        201
    );
}

#[tokio::test]
async fn a_member_cannot_see_change_or_delete_another_members_absence() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let path = format!("/absence/{id}/");
    assert_eq!(
        app.put(&path, &t.wendy, json!({"reason": "mine now"}))
            .await
            .status,
        404
    );
    assert_eq!(app.delete(&path, &t.wendy).await.status, 404);
    assert_eq!(app.get("/absence/", &t.wendy).await.body, json!([]));
    assert_eq!(
        app.get("/absence/", &t.david).await.body[0]["reason"],
        "exam"
    );
}

#[tokio::test]
async fn a_new_season_fills_every_quota_again() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    app.apply(&t.percy, "2026-03-12", "全体排练").await;
    assert_eq!(
        app.apply(&t.percy, "2026-03-13", "全体排练").await.status,
        403
    );
    app.operator(aggregates::orchestra::roster::RosterCommand::StartSeason)
        .await;
    assert_eq!(
        app.apply(&t.percy, "2026-03-13", "全体排练").await.status,
        201
    );
}

#[tokio::test]
async fn editing_an_earlier_seasons_absence_does_not_charge_the_new_season() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    // Percussion has one chance per season.
    let id = app.apply_id(&t.percy, "2026-03-12", "全体排练").await;
    app.operator(aggregates::orchestra::roster::RosterCommand::StartSeason)
        .await;
    let changed = app
        .change(&t.percy, id, json!({ "reason": "concert" }))
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["reason"], "concert");
    // The new season's chance is still there.
    assert_eq!(
        app.apply(&t.percy, "2026-03-14", "全体排练").await.status,
        201
    );
    // A costlier change must fit in the old season, which has nothing left.
    let dearer = app
        .change(&t.percy, id, json!({ "type": "全体排练+弦乐分排" }))
        .await;
    assert_eq!(dearer.status, 403, "{}", dearer.body);
}
