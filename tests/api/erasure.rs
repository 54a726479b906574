//! The right to be forgotten (README "Personal data"): `ensemble roster forget NAME` leaves
//! nothing readable of the member anywhere in the database, while the log stays append-only
//! and intact; and a store written before personal data was sealed is rewritten on start.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::{ensemble, stderr, stdout, verify};
use crate::durability::read_models;
use crate::helpers::{eventually, spawn_app_on, FakeSmtp, FakeWechat, TestApp};

/// A plain-text dump of every table of the app's database.
pub fn dump(app: &TestApp) -> String {
    let out = Command::new("pg_dump")
        .args(["--data-only", "--no-owner", &app.database_url])
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What the dump must not contain: each value, and its JSON-escaped form.
pub fn assert_absent(dump: &str, values: &[&str]) {
    for value in values {
        let escaped = serde_json::to_string(value).unwrap();
        for form in [value.to_string(), escaped[1..escaped.len() - 1].to_string()] {
            assert!(
                !dump.contains(&form),
                "the dump still holds {form:?}: {}",
                dump.lines().find(|l| l.contains(&form)).unwrap_or_default()
            );
        }
    }
}

async fn login(app: &TestApp, name: &str) -> String {
    app.login(name).await
}

async fn apply(app: &TestApp, token: &str, date: &str, reason: &str) -> i64 {
    let reply = app
        .post(
            "/absence/",
            Some(token),
            json!({ "reason": reason, "time_absence": date, "type": "全体排练" }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body["id"].as_i64().unwrap()
}

async fn forget(app: &TestApp, name: &str) -> String {
    let out = ensemble(&app.database_url, &["roster", "forget", name]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

const ROSTER: &str = "name,section,role\n\
    David Cellist,stringed,member\n\
    Wendy Flute,wind,member\n\
    Alice Boss,wind,manager\n";

#[tokio::test]
async fn a_forgotten_member_leaves_nothing_readable_in_the_database_and_others_keep_theirs() {
    let app = crate::helpers::spawn_app().await;
    app.operator(
        aggregates::orchestra::roster::RosterCommand::AddNotifyAddress {
            email: aggregates::orchestra::EmailAddress::parse("office@orchestra.test").unwrap(),
        },
    )
    .await;
    app.import_roster(ROSTER).await;
    let david = login(&app, "David Cellist").await;
    let wendy = login(&app, "Wendy Flute").await;
    let alice = login(&app, "Alice Boss").await;
    let d1 = apply(
        &app,
        &david,
        "2026-03-12",
        "David Cellist's dentist on Elm Street",
    )
    .await;
    let d2 = apply(
        &app,
        &david,
        "2026-03-20",
        "grandmother in St Mary's hospital",
    )
    .await;
    let w1 = apply(&app, &wendy, "2026-03-12", "Wendy's flute exam").await;
    assert_eq!(
        app.process(d1, &alice, "Get well soon, Cellist", true)
            .await
            .status,
        200
    );
    assert_eq!(
        app.process(w1, &alice, "Wendy must attend", false)
            .await
            .status,
        200
    );
    // A retry-safe write by David: its answer (with his name and reason) is kept for 24 h.
    let kept = app
        .http
        .put(format!("{}/absence/{d2}/", app.address))
        .header("Authorization", format!("JWT {david}"))
        .header("Idempotency-Key", "k-1")
        .json(&json!({ "reason": "grandmother moved to Rosewood care home" }))
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), 200);
    // The outbox wrote (and the mailer may have sent) a mail per application.
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.scalar("SELECT count(*) FROM mail_outbox WHERE subject LIKE 'New absence%'")
                .await
                == 3
        })
        .await
    );
    let before = dump(&app);
    assert!(
        before.contains("David Cellist"),
        "the read models hold the name before"
    );
    let david_id = app.member_id("David Cellist").await;

    let said = forget(&app, "David Cellist").await;
    assert!(
        said.contains(&format!("former member #{david_id}")),
        "{said}"
    );

    let secrets = [
        "David Cellist",
        "openid-David Cellist",
        "David Cellist's dentist on Elm Street",
        "grandmother in St Mary's hospital",
        "Rosewood care home",
        "Get well soon, Cellist",
    ];
    assert_absent(&dump(&app), &secrets);
    // Everyone else's data is untouched.
    let after = dump(&app);
    for kept in [
        "Wendy Flute",
        "Alice Boss",
        "Wendy must attend",
        "office@orchestra.test",
    ] {
        assert!(after.contains(kept), "{kept} went missing");
    }

    // Through the API: the placeholder, in counts and histories alike.
    let all = app.get("/manager/", &alice).await.body;
    let rows = all.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{all}");
    let former = format!("former member #{david_id}");
    let of = |id: i64| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(of(d1)["applier"], former.as_str());
    assert_eq!(of(d1)["reason"], "(erased)");
    assert_eq!(of(d1)["result"], "(erased)");
    assert_eq!(of(d1)["permission"], true);
    assert_eq!(of(d2)["result"], "Not processed yet!");
    assert_eq!(of(w1)["applier"], "Wendy Flute");
    assert_eq!(of(w1)["reason"], "Wendy's flute exam");
    assert_eq!(of(w1)["processor"], "Alice Boss");
    let present = app.get("/manager/2026-03-12/present/", &alice).await.body;
    assert!(!present.to_string().contains(&former), "{present}");
    // Their token and their name no longer work; the log stays intact.
    assert_eq!(app.get("/absence/", &david).await.status, 401);
    let again = app
        .try_login(json!({"name": "David Cellist", "code": "code-David Cellist"}))
        .await;
    assert_eq!(again.status, 401);
    verify(&app).await.expect("the chain is intact");
    // The audit views show the placeholder where the key is gone.
    let listed = ensemble(&app.database_url, &["events", "list", "--format", "json"]).await;
    let listed = stdout(&listed);
    assert!(listed.contains("(erased)") && listed.contains("Wendy's flute exam"));
    assert_absent(&listed, &secrets);

    // A rebuild from the log gives the same rows: the placeholders, not the old text.
    let live = read_models(&app).await;
    let rebuildable = app.rebuildable();
    runtime::runner::rebuild(&app.app.rt.tx_pool, &rebuildable, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(read_models(&app).await, live);
    assert_absent(&dump(&app), &secrets);

    // They may join again: a new member, who starts afresh.
    app.import_roster("name,section,role\nDavid Cellist,stringed,member\n")
        .await;
    let back = login(&app, "David Cellist").await;
    assert_ne!(app.member_id("David Cellist").await, david_id);
    assert_eq!(app.get("/absence/", &back).await.body, json!([]));
    apply(&app, &back, "2026-03-12", "back again").await;
    let rows = app.get("/manager/", &alice).await.body;
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["applier"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"David Cellist") && names.contains(&former.as_str()),
        "{rows}"
    );
}

#[tokio::test]
async fn forgetting_someone_not_on_the_roster_is_an_error_and_changes_nothing() {
    let app = crate::helpers::spawn_app().await;
    app.import_roster(ROSTER).await;
    let events = app.scalar("SELECT count(*) FROM events").await;
    let out = ensemble(&app.database_url, &["roster", "forget", "Nobody Here"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not on the roster"),
        "{}",
        stderr(&out)
    );
    assert_eq!(app.scalar("SELECT count(*) FROM events").await, events);
}

/// A database as the code of e9d2c5f left it (tests/fixtures/store-v1.sql): names, openids,
/// reasons and results in clear, absence streams keyed by name.
async fn v1_store() -> String {
    let url = crate::helpers::fresh_database_url();
    runtime::db::create_database(&url).await.unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v1.sql");
    let out = Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-f", fixture, &url])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    url
}

#[tokio::test]
async fn a_store_written_in_clear_is_sealed_on_start_and_its_members_carry_on() {
    let url = v1_store().await;
    let smtp = FakeSmtp::start(0).await;
    let mut app = spawn_app_on(url, FakeWechat::start().await, smtp.port).await;
    app.smtp = Some(smtp);
    // Nothing of the clear values is left in the log or its snapshots.
    let clear: i64 = app
        .scalar(
            "SELECT count(*) FROM events WHERE payload::text ~ '(Cellist|Flute|张伟|openid-|dentist|grandmother|好的)' \
             OR metadata::text ~ '(Cellist|Flute|Boss|张伟)' OR aggregate_id ~ '[^0-9]' AND aggregate_type = 'MemberAbsences'",
        )
        .await;
    assert_eq!(clear, 0);
    assert_eq!(
        app.scalar("SELECT count(*) FROM events WHERE event_version <> '2.0'")
            .await,
        0
    );
    // The read models were rebuilt from the rewritten log, and the chain over it.
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.scalar("SELECT count(*) FROM orchestra_absences").await == 4
        })
        .await
    );
    verify(&app).await.expect("the rewritten log is chained");
    // Bound members log in with their WeChat account as before; the unbound one binds anew.
    let david = app.login("David Cellist").await;
    let mine = app.get("/absence/", &david).await.body;
    let reasons: Vec<&str> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "David's dentist appointment",
            "David visits grandmother in hospital"
        ]
    );
    assert_eq!(mine[0]["processor"], "Alice Boss");
    assert_eq!(mine[0]["result"], "Get well soon, David");
    let zhang = app.login("张伟").await;
    assert_eq!(
        app.get("/absence/", &zhang).await.body[0]["result"],
        "好的张伟"
    );
    app.login("Percy Drums").await;
    let stolen = app
        .try_login(json!({"name": "Wendy Flute", "code": "code-David Cellist"}))
        .await;
    assert_eq!(
        stolen.status, 403,
        "one account, one member: {}",
        stolen.body
    );
    // New ids continue after the old ones.
    app.import_roster("name,section,role\nNew Person,wind,member\n")
        .await;
    assert_eq!(app.member_id("New Person").await, 6);
    let alice = app.login("Alice Boss").await;
    let id = apply(&app, &app.login("New Person").await, "2026-03-28", "new").await;
    assert_eq!(app.process(id, &alice, "ok", true).await.status, 200);

    // The mails sent before the rewrite named David; his erasure reaches them too.
    forget(&app, "David Cellist").await;
    assert_absent(
        &dump(&app),
        &[
            "David Cellist",
            "openid-David Cellist",
            "David's dentist appointment",
            "David visits grandmother in hospital",
            "Get well soon, David",
        ],
    );
    let all: Value = app.get("/manager/", &alice).await.body;
    assert_eq!(all.as_array().unwrap().len(), 5);
    verify(&app).await.expect("still intact after the erasure");
}

/// Between the erasure's commit and the read models catching up (held here by a transaction
/// on the roster's checkpoint), the member's token still passes the read model's check; but
/// nothing of theirs can be sealed any more: their writes and a manager's decision on their
/// absence are refused, and the retry cache is emptied in the erasure's own statement.
#[tokio::test]
async fn nothing_is_sealed_for_a_member_after_the_erasure_commits_even_before_the_read_models_know()
{
    use aggregates::orchestra::roster::{RosterCommand, ROSTER_ID};
    let app = crate::helpers::spawn_app().await;
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let kept = app
        .authed(reqwest::Method::POST, "/absence/", &t.david)
        .header("Idempotency-Key", "before-erasure")
        .json(&json!({ "reason": "kept for a retry", "time_absence": "2026-03-14", "type": "全体排练" }))
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), 201);
    assert_eq!(app.scalar("SELECT count(*) FROM idempotency_keys").await, 1);
    let mut hold = app.app.rt.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM projection_checkpoints WHERE name = 'orchestra_roster' FOR UPDATE")
        .execute(&mut *hold)
        .await
        .unwrap();
    let david = app.member_id("David").await;
    app.app
        .orchestra
        .roster
        .execute(
            ROSTER_ID,
            RosterCommand::Forget { member_id: david },
            &runtime::bus::Actor::operator(),
        )
        .await
        .unwrap();
    assert_eq!(app.scalar("SELECT count(*) FROM idempotency_keys").await, 0);
    // The read model still says David is active...
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) FROM orchestra_members WHERE id = {david} AND active"
        ))
        .await,
        1
    );
    // ...yet his writes and decisions on his absences are refused, and nothing is appended.
    let events = app.scalar("SELECT count(*) FROM events").await;
    let write = app.apply(&t.david, "2026-03-20", "全体排练").await;
    assert_eq!(write.status, 401, "{}", write.body);
    let decision = app.process(id, &t.alice, "too late", true).await;
    assert_eq!(decision.status, 404, "{}", decision.body);
    let cancel = app.delete(&format!("/absence/{id}/"), &t.david).await;
    assert_eq!(cancel.status, 401, "{}", cancel.body);
    assert_eq!(app.scalar("SELECT count(*) FROM events").await, events);
    hold.rollback().await.unwrap();
}

/// An answer kept for retries may name the person being erased: one that names others than
/// its caller (a manager's decision names the applier), stored while an erasure was
/// committing (its statement's own sweep cannot see it), is swept after the commit. An answer
/// about its caller alone stays: the erasure of someone else takes nothing of theirs (a
/// reason that mentions Percy is its author's text, in the log as here).
#[tokio::test]
async fn an_answer_stored_while_an_erasure_commits_is_not_kept() {
    use aggregates::orchestra::roster::{RosterCommand, ROSTER_ID};
    let app = crate::helpers::spawn_app().await;
    let t = app.with_roster().await;
    let percy = app.member_id("Percy").await;
    let davids = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let mut hold = app.app.rt.tx_pool.begin().await.unwrap();
    sqlx::query(&format!(
        "SELECT 1 FROM personal_keys WHERE subject = 'orchestra-member:{percy}' FOR UPDATE"
    ))
    .execute(&mut *hold)
    .await
    .unwrap();
    let app_ = app.app.clone();
    let erasure = tokio::spawn(async move {
        app_.orchestra
            .roster
            .execute(
                ROSTER_ID,
                RosterCommand::Forget { member_id: percy },
                &runtime::bus::Actor::operator(),
            )
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let keyed = |token: &str, key: &str, method: reqwest::Method, path: String, body| {
        app.http
            .request(method, format!("{}{path}", app.address))
            .header("Authorization", format!("JWT {token}"))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    // (Both at once: each waits for the read models, which wait for the erasure.)
    let (decided, own) = tokio::join!(
        keyed(
            &t.alice,
            "in-window",
            reqwest::Method::PUT,
            format!("/manager/{davids}/"),
            json!({ "result": "fine", "permission": true }),
        ),
        keyed(
            &t.david,
            "own",
            reqwest::Method::POST,
            "/absence/".into(),
            json!({ "reason": "Percy is my stand-in", "time_absence": "2026-03-14", "type": "全体排练" }),
        )
    );
    assert_eq!(decided.unwrap().status(), 200);
    assert_eq!(own.unwrap().status(), 201);
    hold.rollback().await.unwrap();
    erasure.await.unwrap().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.scalar("SELECT count(*) FROM idempotency_keys WHERE key = 'in-window'")
                .await
                == 0
        })
        .await,
        "an answer naming others stored during the erasure survived it"
    );
    assert_eq!(
        app.scalar(
            "SELECT count(*) FROM idempotency_keys WHERE key = 'own' AND status IS NOT NULL"
        )
        .await,
        1
    );
}
