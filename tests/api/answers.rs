//! Answers kept between reads (`runtime::answers`): the same read again is not built again,
//! and every write (acknowledged by this process or another) and every erasure is in the next
//! read's answer.

use aggregates::orchestra::roster::RosterCommand;
use serde_json::json;

use crate::helpers::TestApp;
use crate::races::two_servers;

/// (kept, built) answers of `app` since `since`.
fn answered(app: &TestApp, since: (u64, u64)) -> (u64, u64) {
    let (kept, built) = app.app.rt.answers.counts();
    (kept - since.0, built - since.1)
}

fn ids(body: &serde_json::Value) -> Vec<i64> {
    body.as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|row| row["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn kept_answers_follow_every_write_of_either_process_and_every_erasure() {
    let (a, b) = two_servers().await;
    let t = a.with_roster().await;
    let first = a.get("/manager/future/", &t.alice).await;
    assert_eq!(first.status, 200);
    let since = a.app.rt.answers.counts();
    for _ in 0..3 {
        assert_eq!(a.get("/manager/future/", &t.alice).await.body, first.body);
    }
    assert_eq!(
        answered(&a, since),
        (3, 0),
        "asked again, nothing was built"
    );

    // Every write, whichever process acknowledged it, is in the next read of either.
    let mut applied = Vec::new();
    for (i, (server, token)) in [(&b, &t.percy), (&a, &t.wendy), (&b, &t.david)]
        .into_iter()
        .enumerate()
    {
        let reply = server
            .post(
                "/absence/",
                Some(token),
                json!({"reason": format!("drum exam {i}"), "time_absence": format!("2026-04-0{}", i + 1), "type": "全体排练"}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        applied.push(reply.body["id"].as_i64().unwrap());
        for reader in [&a, &b] {
            assert_eq!(
                ids(&reader.get("/manager/future/", &t.alice).await.body),
                applied
            );
        }
        let mine = a.get("/absence/", token).await;
        assert_eq!(ids(&mine.body), [applied[i]]);
        let next = a.get("/manager/next/", &t.alice).await.body;
        assert_eq!(next["time"], "2026-04-01", "{next}");
    }
    let since = a.app.rt.answers.counts();
    a.get("/manager/future/", &t.alice).await;
    assert_eq!(answered(&a, since), (1, 0));

    // A decision by the other process takes the absence out of the future at once.
    let decided = b.process(applied[1], &t.alice, "ok", true).await;
    assert_eq!(decided.status, 200, "{}", decided.body);
    let future = a.get("/manager/future/", &t.alice).await;
    assert_eq!(ids(&future.body), [applied[0], applied[2]]);

    // An erasure committed by the other process: no answer of this one names Percy again.
    assert!(future.body.to_string().contains("Percy"), "{}", future.body);
    let all = a.get("/manager/", &t.alice).await;
    assert!(all.body.to_string().contains("drum exam 0"), "{}", all.body);
    let percy = a.member_id("Percy").await;
    b.operator(RosterCommand::Forget { member_id: percy }).await;
    for path in ["/manager/future/", "/manager/", "/manager/next/"] {
        let answer = a.get(path, &t.alice).await;
        assert_eq!(answer.status, 200);
        for secret in ["Percy", "drum exam 0"] {
            assert!(
                !answer.body.to_string().contains(secret),
                "{path}: {}",
                answer.body
            );
        }
    }
    // And the erased member's own token reads nothing, kept or not.
    assert_eq!(a.get("/absence/", &t.percy).await.status, 401);

    // What the cache holds and does is in the metrics.
    let metrics = a.anonymous_get("/metrics").await.text().await.unwrap();
    let (kept, built) = a.app.rt.answers.counts();
    assert!(kept > 0 && built > 0);
    for line in [
        format!("ensemble_answers_total{{outcome=\"kept\"}} {kept}"),
        format!("ensemble_answers_total{{outcome=\"built\"}} {built}"),
    ] {
        assert!(metrics.contains(&line), "{line} not in {metrics}");
    }
    assert!(metrics.contains("ensemble_cache_bytes{cache=\"answers\"} "));
}

#[tokio::test]
async fn the_campus_organisation_list_is_kept_per_question_and_caller_and_follows_writes() {
    use crate::platform::{block, organisation, spawn, superuser, user};
    let app = spawn().await;
    let admin = superuser(&app).await;
    let owner = user(&app, "owner").await;
    let reader = user(&app, "reader").await;
    let blk = block(&app, &admin, "东区").await;
    let first = organisation(&app, &admin, &owner, "Chess", blk).await;
    let names = |body: &serde_json::Value| -> Vec<String> {
        body["results"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_string())
            .collect()
    };
    let page = "/organizations/?limit=20";
    let listed = app.get(page, &reader.token).await;
    assert_eq!(names(&listed.body), ["Chess"], "{}", listed.body);
    let since = app.app.rt.answers.counts();
    assert_eq!(app.get(page, &reader.token).await.body, listed.body);
    assert_eq!(answered(&app, since), (1, 0));
    // Another question, another caller (who may see other account ids): built for each.
    let since = app.app.rt.answers.counts();
    let one = app
        .get("/organizations/?limit=1&offset=0", &reader.token)
        .await;
    assert_eq!(one.body["results"]["count"], 1, "{}", one.body);
    let by_name = app.get("/organizations/?org=Chess", &reader.token).await;
    assert_eq!(by_name.body["results"]["id"], first, "{}", by_name.body);
    let as_admin = app.get(page, &admin).await;
    assert_eq!(names(&as_admin.body), ["Chess"]);
    assert_eq!(answered(&app, since), (0, 3));
    // A new organisation is in the next answer.
    organisation(&app, &admin, &owner, "Go", blk).await;
    assert_eq!(
        names(&app.get(page, &reader.token).await.body),
        ["Chess", "Go"]
    );
    assert_eq!(names(&app.get(page, &admin).await.body), ["Chess", "Go"]);
}

/// A rebuild that catches up to the head leaves every checkpoint where it was, but may change
/// the rows (that is what it is for): answers kept before its swap are not given after it.
#[tokio::test]
async fn answers_kept_before_a_rebuild_are_not_given_after_its_swap() {
    let app = crate::helpers::spawn_app().await;
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-04-01", "全体排练").await;
    // A read model gone wrong by hand (what a rebuild exists to repair), then read and kept.
    app.sql(&format!(
        "UPDATE orchestra_absences SET reason = 'drifted' WHERE id = {id}"
    ))
    .await;
    let reasons = |body: serde_json::Value| {
        body.as_array()
            .unwrap()
            .iter()
            .map(|row| row["reason"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    for _ in 0..2 {
        let all = app.get("/manager/", &t.alice).await;
        assert_eq!(reasons(all.body), ["drifted"]);
    }
    runtime::runner::rebuild(&app.app.rt.tx_pool, &app.rebuildable(), &|_, _| {})
        .await
        .unwrap();
    let all = app.get("/manager/", &t.alice).await;
    assert_eq!(
        reasons(all.body),
        ["exam"],
        "the rebuilt rows, not the kept answer"
    );
}
