//! The time machine (issue 19): any GET answered as it stood at a past moment, for the caller
//! it was. Each test records the live answers at moments of a scripted history, then asks the
//! time machine about each moment: status and body must be what the endpoint answered then.

use aggregates::orchestra::roster::{former_member, RosterCommand};
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app_with, Reply, TestApp};
use crate::platform::{block, organisation, superuser, user, User};

/// The database's clock now, as the time machine reads times (after every answer so far).
async fn now(app: &TestApp) -> String {
    sqlx::query_scalar(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    )
    .fetch_one(&app.app.rt.pool)
    .await
    .unwrap()
}

/// `GET /audit/views/` as `admin`.
async fn view(app: &TestApp, admin: &str, path: &str, as_of: &str, subject: Option<&str>) -> Reply {
    let mut query = vec![("path", path), ("as_of", as_of)];
    if let Some(subject) = subject {
        query.push(("as", subject));
    }
    let query = serde_urlencoded::to_string(&query).unwrap();
    app.get(&format!("/audit/views/?{query}"), admin).await
}

/// What callers saw at a moment: (path, subject, status, body as written).
struct Seen {
    moment: String,
    answers: Vec<(String, Option<String>, u16, String)>,
}

/// Record the live answers of `asks` (path, token, subject) now, then the moment.
async fn record(app: &TestApp, asks: Vec<(String, String, Option<String>)>) -> Seen {
    let mut answers = Vec::new();
    for (path, token, subject) in asks {
        let reply = app
            .authed(reqwest::Method::GET, &path, &token)
            .send()
            .await
            .unwrap();
        let status = reply.status().as_u16();
        answers.push((path, subject, status, reply.text().await.unwrap()));
    }
    Seen {
        moment: now(app).await,
        answers,
    }
}

/// The time machine's answer, its body as written.
#[derive(serde::Deserialize)]
struct Then {
    status: u16,
    body: Box<serde_json::value::RawValue>,
}

/// The time machine gives, for every moment, what was recorded then: the same status, and
/// the same body to the byte (fields in their order).
async fn replayed_as_seen(app: &TestApp, admin: &str, seen: &[Seen]) {
    for (i, moment) in seen.iter().enumerate() {
        for (path, subject, status, body) in &moment.answers {
            let mut query = vec![("path", path.as_str()), ("as_of", moment.moment.as_str())];
            if let Some(subject) = subject {
                query.push(("as", subject.as_str()));
            }
            let query = serde_urlencoded::to_string(&query).unwrap();
            let reply = app
                .authed(
                    reqwest::Method::GET,
                    &format!("/audit/views/?{query}"),
                    admin,
                )
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 200, "moment {i}, {path}");
            let then: Then = reply.json().await.unwrap();
            assert_eq!(
                (then.status, then.body.get()),
                (*status, body.as_str()),
                "moment {i} ({}), {path} as {subject:?}",
                moment.moment
            );
        }
    }
}

#[tokio::test]
async fn the_orchestra_as_each_caller_saw_it_at_each_moment() {
    let app = spawn_app_with(|c| c.write_limit = 0).await;
    let admin = superuser(&app).await;
    let t = app.with_roster().await;
    let david = app.member_id("David").await;
    let wendy = app.member_id("Wendy").await;
    let asks = |t: &crate::helpers::Tokens| -> Vec<(String, String, Option<String>)> {
        vec![
            (
                "/absence/".into(),
                t.david.clone(),
                Some(format!("orchestra-member:{david}")),
            ),
            (
                "/absence/".into(),
                t.wendy.clone(),
                Some(format!("orchestra-member:{wendy}")),
            ),
            ("/manager/".into(), t.alice.clone(), None),
            ("/manager/next/".into(), t.alice.clone(), None),
            ("/manager/future/".into(), t.alice.clone(), None),
            ("/manager/history/".into(), t.alice.clone(), None),
        ]
    };
    let mut seen = vec![record(&app, asks(&t)).await];
    // Applications.
    let d1 = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    app.apply_id(&t.wendy, "2026-03-13", "管乐分排").await;
    seen.push(record(&app, asks(&t)).await);
    // A decision, a change, a cancellation.
    assert_eq!(app.process(d1, &t.alice, "ok", true).await.status, 200);
    let w2 = app.apply_id(&t.wendy, "2026-03-19", "全体排练").await;
    assert_eq!(
        app.change(&t.wendy, w2, json!({"reason": "a concert"}))
            .await
            .status,
        200
    );
    seen.push(record(&app, asks(&t)).await);
    // A new season, and a member enrolled later (who did not exist before).
    app.operator(RosterCommand::StartSeason).await;
    app.import_roster("name,section,role\nNora,stringed,member\n")
        .await;
    let nora_token = app.login("Nora").await;
    let nora = app.member_id("Nora").await;
    app.apply_id(&nora_token, "2026-03-14", "全体排练").await;
    let mut last = record(&app, asks(&t)).await;
    let nora_now = record(
        &app,
        vec![(
            "/absence/".into(),
            nora_token.clone(),
            Some(format!("orchestra-member:{nora}")),
        )],
    )
    .await;
    last.answers.extend(nora_now.answers);
    seen.push(last);
    replayed_as_seen(&app, &admin, &seen).await;
    // Before Nora was enrolled she could not have called: a 401, as it was then.
    let before = view(
        &app,
        &admin,
        "/absence/",
        &seen[1].moment,
        Some(&format!("orchestra-member:{nora}")),
    )
    .await;
    assert_eq!(before.body["status"], 401, "{}", before.body);
    assert_eq!(
        before.body["body"],
        json!({"msg": "Authentication credentials were not provided."})
    );
}

#[tokio::test]
async fn the_campus_as_each_caller_saw_it_at_each_moment() {
    let app = spawn_app_with(|c| c.campus_write_limit = 0).await;
    let admin = superuser(&app).await;
    let owner = user(&app, "owner").await;
    let fan = user(&app, "fan").await;
    let b = block(&app, &admin, "社团").await;
    let asks = |owner: &User, fan: &User, admin: &str| -> Vec<(String, String, Option<String>)> {
        vec![
            ("/organizations/".into(), admin.to_string(), None),
            (format!("/blocks/orgs/?block={b}"), admin.to_string(), None),
            (
                "/organizations/applications/".into(),
                admin.to_string(),
                None,
            ),
            ("/blocks/".into(), admin.to_string(), None),
            (
                format!("/users/organizations/?id={}&user_view=True", fan.id),
                fan.token.clone(),
                Some(format!("campus-user:{}", fan.id)),
            ),
            (
                format!("/users/followed_organizations/{}/", fan.id),
                fan.token.clone(),
                Some(format!("campus-user:{}", fan.id)),
            ),
            (
                format!("/users/{}/", owner.id),
                owner.token.clone(),
                Some(format!("campus-user:{}", owner.id)),
            ),
        ]
    };
    let mut seen = vec![record(&app, asks(&owner, &fan, &admin)).await];
    // An application approved, another waiting.
    let org = organisation(&app, &admin, &owner, "Choir", b).await;
    let waiting = app
        .post(
            "/organizations/applications/",
            Some(&fan.token),
            json!({"name": "Chess", "description": "we play", "user": fan.id, "block": b}),
        )
        .await;
    assert_eq!(waiting.status, 202, "{}", waiting.body);
    seen.push(record(&app, asks(&owner, &fan, &admin)).await);
    // A follow, an appointment, a rename.
    let followed = app
        .post(
            "/users/followed_organizations/",
            Some(&fan.token),
            json!({"org": org, "person": fan.id}),
        )
        .await;
    assert_eq!(followed.status, 201, "{}", followed.body);
    let appointed = app
        .post(
            "/organizations/managers/",
            Some(&owner.token),
            json!({"org": org, "person": fan.id}),
        )
        .await;
    assert_eq!(appointed.status, 201, "{}", appointed.body);
    let renamed = app
        .put(
            &format!("/organizations/{org}/"),
            &owner.token,
            json!({"name": "Chorus"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    seen.push(record(&app, asks(&owner, &fan, &admin)).await);
    // A deletion.
    assert_eq!(
        app.delete(&format!("/organizations/{org}/"), &owner.token)
            .await
            .status,
        204
    );
    seen.push(record(&app, asks(&owner, &fan, &admin)).await);
    replayed_as_seen(&app, &admin, &seen).await;
}

#[tokio::test]
async fn a_person_erased_since_shows_as_the_read_models_show_them_today() {
    let app = spawn_app_with(|c| c.write_limit = 0).await;
    let admin = superuser(&app).await;
    let t = app.with_roster().await;
    let david = app.member_id("David").await;
    app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let then = now(&app).await;
    let before = app.get("/manager/", &t.alice).await;
    assert_eq!(before.body[0]["applier"], "David");
    app.operator(RosterCommand::Forget {
        member_id: david as u64,
    })
    .await;
    let today = app.get("/manager/", &t.alice).await;
    let seen = view(&app, &admin, "/manager/", &then, None).await;
    assert_eq!(seen.body["status"], 200, "{}", seen.body);
    let row = &seen.body["body"][0];
    assert_eq!(row["applier"], former_member(david as u64));
    assert_eq!(row["applier"], today.body[0]["applier"]);
    assert_eq!(row["reason"], today.body[0]["reason"]);
    assert_ne!(row["reason"], before.body[0]["reason"]);
    // Nothing of theirs anywhere in the answer.
    let text = seen.body.to_string();
    assert!(!text.contains("David") && !text.contains("exam"), "{text}");
}

#[tokio::test]
async fn a_moment_replayed_before_an_erasure_is_replayed_again_without_the_erased() {
    let app = spawn_app_with(|c| c.write_limit = 0).await;
    let admin = superuser(&app).await;
    let t = app.with_roster().await;
    let david = app.member_id("David").await;
    app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let then = now(&app).await;
    // Asked before the erasure: the replay holds David's name and reason, opened.
    let seen = view(&app, &admin, "/manager/", &then, None).await;
    assert_eq!(seen.body["body"][0]["applier"], "David", "{}", seen.body);
    let replays =
        || app.scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ensemble\\_view\\_%'");
    assert_eq!(replays().await, 1);
    app.operator(RosterCommand::Forget {
        member_id: david as u64,
    })
    .await;
    // The same moment again: replayed anew, nothing of theirs.
    let seen = view(&app, &admin, "/manager/", &then, None).await;
    assert_eq!(seen.body["status"], 200, "{}", seen.body);
    assert_eq!(seen.body["body"][0]["applier"], former_member(david as u64));
    let text = seen.body.to_string();
    assert!(!text.contains("David") && !text.contains("exam"), "{text}");
    assert_eq!(app.app.rt.views.built(), 2);
    // And a replay nobody asks about again is dropped on the housekeeping clock, as is what
    // a build that died half-way left (its tables hold what it had opened).
    let second_moment = now(&app).await;
    view(&app, &admin, "/manager/", &second_moment, None).await;
    assert_eq!(replays().await, 2);
    let generation = app.scalar("SELECT generation FROM erasures").await;
    let left = format!(
        "ensemble_view_1_1_building_{}_7_g{generation}",
        chrono::Utc::now().timestamp()
    );
    app.sql(&format!("CREATE SCHEMA {left}")).await;
    app.sql(&format!(
        "CREATE TABLE {left}.orchestra_members (name text)"
    ))
    .await;
    app.sql(&format!(
        "INSERT INTO {left}.orchestra_members VALUES ('Wendy')"
    ))
    .await;
    assert_eq!(replays().await, 3);
    app.operator(RosterCommand::Forget {
        member_id: app.member_id("Wendy").await as u64,
    })
    .await;
    assert!(
        eventually(std::time::Duration::from_secs(20), || async {
            replays().await == 0
        })
        .await,
        "stale replays left: {}",
        replays().await
    );
}

#[tokio::test]
async fn moments_are_replayed_once_and_only_so_many_are_kept() {
    let app = spawn_app_with(|c| {
        c.write_limit = 0;
        c.view_replays = 2;
    })
    .await;
    let admin = superuser(&app).await;
    let t = app.with_roster().await;
    let mut moments = Vec::new();
    for date in ["2026-03-12", "2026-03-13", "2026-03-14"] {
        app.apply_id(&t.david, date, "全体排练").await;
        moments.push(now(&app).await);
    }
    let built = || app.app.rt.views.built();
    // Ten questions about one moment: one replay.
    for path in [
        "/manager/",
        "/manager/next/",
        "/manager/future/",
        "/manager/history/",
        "/absence/",
    ] {
        for _ in 0..2 {
            assert_eq!(
                view(&app, &admin, path, &moments[0], None).await.status,
                200
            );
        }
    }
    assert_eq!(built(), 1);
    // position:N names the same cut as the moment after its event.
    let position = app.scalar("SELECT max(position) FROM events").await;
    let by_position = view(
        &app,
        &admin,
        "/manager/",
        &format!("position:{position}"),
        None,
    )
    .await;
    assert_eq!(by_position.body["as_of"]["position"], position);
    let latest = view(&app, &admin, "/manager/", &moments[2], None).await;
    assert_eq!(latest.body["body"], by_position.body["body"]);
    assert_eq!(latest.body["body"].as_array().unwrap().len(), 3);
    assert_eq!(built(), 2);
    // A third moment: the least recently used replay goes (once it has not been used for a
    // while: a question may still be reading it).
    app.sql("UPDATE view_replays SET used_at = used_at - interval '1 hour'")
        .await;
    let middle = view(&app, &admin, "/manager/", &moments[1], None).await;
    assert_eq!(middle.body["body"].as_array().unwrap().len(), 2);
    assert_eq!(built(), 3);
    let kept = app
        .scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ensemble_view_%'")
        .await;
    assert_eq!(kept, 2);
    assert_eq!(app.scalar("SELECT count(*) FROM view_replays").await, 2);
    // The live read models were never touched: the answers now are what they were.
    assert_eq!(
        app.get("/manager/", &t.alice)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn only_superusers_ask_and_bad_questions_are_told_why() {
    let app = spawn_app_with(|c| c.campus_write_limit = 0).await;
    let admin = superuser(&app).await;
    let u = user(&app, "u").await;
    let at = now(&app).await;
    let anonymous = app
        .anonymous_get(&format!("/audit/views/?path=/blocks/&as_of={at}"))
        .await;
    assert_eq!(anonymous.status(), 401);
    let as_user = app
        .get(&format!("/audit/views/?path=/blocks/&as_of={at}"), &u.token)
        .await;
    assert_eq!(as_user.status, 403);
    for (query, why) in [
        ("as_of=2026-03-10".to_string(), "path is required"),
        ("path=/blocks/".to_string(), "as_of is required"),
        ("path=/blocks/&as_of=yesterday".to_string(), "not a time"),
        (format!("path=/audit/events/&as_of={at}"), "not an endpoint"),
        (format!("path=/metrics&as_of={at}"), "not an endpoint"),
        (
            format!("path=http://x/blocks/&as_of={at}"),
            "path must be a path",
        ),
        (
            format!("path=/absence/&as_of={at}&as=campus-user:1"),
            "orchestra-member",
        ),
        (
            format!("path=/blocks/&as_of={at}&as=orchestra-member:1"),
            "campus-user",
        ),
        ("path=/blocks/&as_of=position:0".to_string(), "positive"),
        (
            "path=/blocks/&as_of=position:999999".to_string(),
            "no event",
        ),
        (
            format!("path=/blocks/&as_of={at}&today=tomorrow"),
            "not a date",
        ),
    ] {
        let reply = app.get(&format!("/audit/views/?{query}"), &admin).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert!(
            reply.body["detail"].as_str().unwrap().contains(why),
            "{query}: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn the_command_line_prints_the_same_answer() {
    let app = spawn_app_with(|c| c.write_limit = 0).await;
    let admin = superuser(&app).await;
    let t = app.with_roster().await;
    app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let at = now(&app).await;
    let http = view(&app, &admin, "/manager/next/", &at, None).await;
    let out =
        crate::cli::ensemble(&app.database_url, &["views", "at", &at, "/manager/next/"]).await;
    assert!(out.status.success(), "{}", crate::cli::stderr(&out));
    let printed: Value = serde_json::from_str(&crate::cli::stdout(&out)).unwrap();
    assert_eq!(printed, http.body);
}

#[tokio::test]
async fn a_moment_holds_what_took_its_id_before_it_even_after_a_quiet_while() {
    // A statement's longest run: 2 x 1 s + 5 s.
    let app = spawn_app_with(|c| {
        c.write_limit = 0;
        c.waits.turn = std::time::Duration::from_secs(1);
        c.http.request_timeout = std::time::Duration::from_secs(10);
    })
    .await;
    let admin = superuser(&app).await;
    let t = app.with_roster().await;
    app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let moment = now(&app).await;
    let before = view(&app, &admin, "/manager/", &moment, None).await;
    let last = before.body["as_of"]["position"].as_i64().unwrap();
    // A quiet while longer than a statement's longest run, then two transactions: A begins
    // first but takes its id after B, which begins later.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    let insert = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                  event_version, payload, metadata) VALUES ('Test', $1, 1, 'Tested', '1.0', '{}', '{}')";
    use sqlx::Connection;
    let url = app.database_url.clone();
    let a = tokio::spawn(async move {
        // A connection of its own: the app's cut statements off after a second.
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("SELECT now(), pg_sleep(1.5)")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(insert)
            .bind("a")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    sqlx::query(insert)
        .bind("b")
        .execute(&app.app.rt.pool)
        .await
        .unwrap();
    a.await.unwrap();
    let (a_id, b_id): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT transaction_id FROM events WHERE aggregate_id = 'a'), \
                (SELECT transaction_id FROM events WHERE aggregate_id = 'b')",
    )
    .fetch_one(&app.app.rt.pool)
    .await
    .unwrap();
    assert!(b_id < a_id, "B took its id first");
    // The moment before them holds neither.
    let after = view(&app, &admin, "/manager/", &moment, None).await;
    assert_eq!(after.body["as_of"]["position"], last, "{}", after.body);
    // A moment in the future is refused: its answer could still change.
    let future = view(&app, &admin, "/manager/", "2999-01-01", None).await;
    assert_eq!(future.status, 400, "{}", future.body);
}

#[tokio::test]
async fn a_position_stands_for_the_whole_transaction_that_wrote_it() {
    let app = spawn_app_with(|c| c.write_limit = 0).await;
    let admin = superuser(&app).await;
    // The roster import is one transaction of four events.
    app.import_roster(crate::helpers::ROSTER).await;
    let (first, last): (i64, i64) = sqlx::query_as(
        "SELECT min(position), max(position) FROM events WHERE aggregate_type = 'Roster'",
    )
    .fetch_one(&app.app.rt.pool)
    .await
    .unwrap();
    assert_eq!(last - first, 3);
    let alice = app.login("Alice").await;
    let whole = app.get("/manager/next/", &alice).await;
    let then = view(
        &app,
        &admin,
        "/absence/",
        &format!("position:{first}"),
        None,
    )
    .await;
    assert_eq!(then.body["as_of"]["position"], last, "{}", then.body);
    assert_eq!(whole.status, 200);
    // Someone who did not exist yet could not have asked: no token, as live.
    let u = user(&app, "later").await;
    let nobody = view(
        &app,
        &admin,
        "/blocks/",
        &format!("position:{last}"),
        Some(&format!("campus-user:{}", u.id)),
    )
    .await;
    assert_eq!(nobody.body["status"], 401);
    assert_eq!(
        nobody.body["body"],
        json!({"detail": "身份认证信息未提供。"})
    );
}

#[tokio::test]
async fn no_more_replays_are_kept_than_allowed_however_fast_they_are_asked_for() {
    let app = spawn_app_with(|c| {
        c.write_limit = 0;
        c.view_replays = 2;
    })
    .await;
    let admin = superuser(&app).await;
    let t = app.with_roster().await;
    for (token, date) in [
        (&t.david, "2026-03-12"),
        (&t.david, "2026-03-13"),
        (&t.wendy, "2026-03-12"),
        (&t.percy, "2026-03-12"),
    ] {
        app.apply_id(token, date, "全体排练").await;
    }
    let last = app.scalar("SELECT max(position) FROM events").await;
    let mut statuses = Vec::new();
    for n in (last - 5)..=last {
        statuses.push(
            view(&app, &admin, "/manager/", &format!("position:{n}"), None)
                .await
                .status,
        );
    }
    // Two moments answered; the others wait their turn (503 with Retry-After) while both
    // replays were used a moment ago.
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    let kept = app
        .scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ensemble_view_%'")
        .await;
    assert_eq!(kept, 2);
}
