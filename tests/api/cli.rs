//! The real `ensemble` binary against a test database.

use std::process::{Command, Output};

use serde_json::json;

use crate::helpers::{spawn_app, ROSTER, TODAY};

/// Run the binary on a blocking thread: the test's runtime (and the server in it) keeps going,
/// as a separate server process would.
pub(crate) async fn ensemble(database_url: &str, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ensemble"));
    command
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("ENSEMBLE_TODAY", TODAY)
        .env("RUST_LOG", "warn")
        .env_remove("ENSEMBLE_SMTP_URL");
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .unwrap()
}

/// A server process of the binary under test, killed if the test ends before stopping it (a
/// failed assertion), so that no server outlives its test.
struct Server(Option<std::process::Child>);

impl Server {
    /// Spawn `command` and wait until `ready` (a URL) answers at all.
    async fn start(command: &mut Command, ready: &str) -> Self {
        let server = Server(Some(command.spawn().unwrap()));
        let http = reqwest::Client::new();
        for _ in 0..150 {
            if http.get(ready).send().await.is_ok() {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the server did not start");
    }

    /// SIGTERM, then how it exited and what it wrote.
    async fn stop(mut self) -> Output {
        let child = self.0.take().unwrap();
        // SAFETY: kill only sends a signal.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A loopback address nothing listens on (for a server to take).
fn free_address() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub(crate) async fn verify(app: &crate::helpers::TestApp) -> Result<String, String> {
    let out = ensemble(&app.database_url, &["events", "verify"]).await;
    if out.status.success() {
        Ok(stdout(&out))
    } else {
        Err(stderr(&out))
    }
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn roster_import_is_idempotent_and_list_shows_it() {
    let app = spawn_app().await;
    let dir = std::env::temp_dir().join(format!("ensemble-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("roster.csv");
    std::fs::write(&file, ROSTER).unwrap();
    let file = file.to_str().unwrap();

    let first = ensemble(&app.database_url, &["roster", "import", file]).await;
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("4 changes"), "{}", stdout(&first));
    let events = app.scalar("SELECT count(*) FROM events").await;
    let again = ensemble(&app.database_url, &["roster", "import", file]).await;
    assert!(again.status.success());
    assert!(stdout(&again).contains("0 changes"), "{}", stdout(&again));
    assert_eq!(app.scalar("SELECT count(*) FROM events").await, events);

    let list = stdout(&ensemble(&app.database_url, &["roster", "list"]).await);
    for name in ["David", "Wendy", "Percy", "Alice"] {
        assert!(list.contains(name), "{list}");
    }
    // The running server sees the import too.
    assert!(!app.login("Alice").await.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_bad_roster_file_is_reported_by_line_and_applies_nothing() {
    let app = spawn_app().await;
    let file = std::env::temp_dir().join(format!("ensemble-bad-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(
        &file,
        "name,section,role\nDavid,stringed,member\nEve,brass,member\n",
    )
    .unwrap();
    let out = ensemble(
        &app.database_url,
        &["roster", "import", file.to_str().unwrap()],
    )
    .await;
    std::fs::remove_file(&file).unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("David"),
        "a bad line is not echoed: {}",
        stderr(&out)
    );
    assert_eq!(app.scalar("SELECT count(*) FROM events").await, 0);
}

#[tokio::test]
async fn unbinding_lets_the_name_log_in_from_a_new_phone_and_kills_old_tokens() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let out = ensemble(&app.database_url, &["roster", "unbind", "David"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(app.get("/absence/", &t.david).await.status, 401);
    let reply = app
        .try_login(json!({"name": "David", "code": "code-NewPhone"}))
        .await;
    assert_eq!(reply.status, 200);
    let unknown = ensemble(&app.database_url, &["roster", "unbind", "Nobody"]).await;
    assert!(!unknown.status.success());
}

#[tokio::test]
async fn notification_addresses_and_seasons_are_managed_from_the_cli() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    assert!(ensemble(
        &app.database_url,
        &["roster", "notify", "add", "Boss@Orchestra.org"]
    )
    .await
    .status
    .success());
    assert_eq!(
        stdout(&ensemble(&app.database_url, &["roster", "notify", "list"]).await).trim(),
        "boss@orchestra.org"
    );
    assert!(ensemble(
        &app.database_url,
        &["roster", "notify", "remove", "boss@orchestra.org"]
    )
    .await
    .status
    .success());
    assert_eq!(
        stdout(&ensemble(&app.database_url, &["roster", "notify", "list"]).await).trim(),
        ""
    );
    // Nor anything the mailer could never deliver to.
    for bad in [
        "not an address",
        "a..b@example.org",
        ".x@example.org",
        "x.@example.org",
        "x@-bad-.org",
    ] {
        let refused = ensemble(&app.database_url, &["roster", "notify", "add", bad]).await;
        assert!(!refused.status.success(), "{bad} was accepted");
    }
    assert_eq!(
        stdout(&ensemble(&app.database_url, &["roster", "notify", "list"]).await).trim(),
        ""
    );

    app.apply(&t.percy, "2026-03-12", "全体排练").await;
    assert_eq!(
        app.apply(&t.percy, "2026-03-13", "全体排练").await.status,
        403
    );
    let season = ensemble(&app.database_url, &["season", "start"]).await;
    assert!(season.status.success(), "{}", stderr(&season));
    assert_eq!(
        app.apply(&t.percy, "2026-03-13", "全体排练").await.status,
        201
    );
    let operator: serde_json::Value =
        sqlx::query_scalar("SELECT metadata::jsonb FROM events WHERE event_type = 'SeasonStarted'")
            .fetch_one(&app.app.rt.pool)
            .await
            .unwrap();
    assert_eq!(operator["actor_kind"], "operator");
    assert_eq!(operator["channel"], "cli");
}

#[tokio::test]
async fn every_command_has_help_and_a_bad_setting_names_its_variable() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["roster", "import", "--help"],
        vec!["roster", "list", "--help"],
        vec!["roster", "unbind", "--help"],
        vec!["roster", "notify", "add", "--help"],
        vec!["season", "start", "--help"],
        vec!["projections", "rebuild", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ensemble"))
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(stdout(&out).contains("Usage"), "{args:?}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["migrate"])
        .env("ENSEMBLE_TZ", "Mars/Olympus")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("ENSEMBLE_TZ"), "{}", stderr(&out));
}

#[tokio::test]
async fn projections_rebuild_from_the_cli_keeps_the_rows() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    app.apply(&t.david, "2026-03-12", "全体排练").await;
    let before = app.get("/manager/", &t.alice).await.body;
    let out = ensemble(&app.database_url, &["projections", "rebuild"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(app.get("/manager/", &t.alice).await.body, before);
}

#[tokio::test]
async fn failed_mails_are_listed_and_can_be_queued_again() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    app.operator(
        aggregates::orchestra::roster::RosterCommand::AddNotifyAddress {
            email: aggregates::orchestra::EmailAddress::parse("boss@orchestra.org").unwrap(),
        },
    )
    .await;
    app.apply(&t.david, "2026-03-12", "全体排练").await;
    let smtp = app.smtp.as_ref().unwrap();
    assert!(app.delivered(smtp, 1, 1).await);
    // A mail that failed for good (as the worker leaves it).
    let id = app
        .scalar("UPDATE mail_outbox SET sent_at = NULL, failed_at = now(), last_error = '550 no such user' RETURNING id")
        .await;
    let listed = ensemble(&app.database_url, &["mail", "list", "--failed"]).await;
    assert!(listed.status.success(), "{}", stderr(&listed));
    let out = stdout(&listed);
    assert!(
        out.contains("failed") && out.contains("550 no such user"),
        "{out}"
    );
    assert!(out.contains(&format!("{id:>6}")), "{out}");
    let retried = ensemble(&app.database_url, &["mail", "retry", &id.to_string()]).await;
    assert!(retried.status.success(), "{}", stderr(&retried));
    // The server's worker sends it again, and records it.
    assert!(app.delivered(smtp, 2, 1).await);
    let again = ensemble(&app.database_url, &["mail", "retry", &id.to_string()]).await;
    assert!(
        !again.status.success(),
        "a mail that is not failed was queued again"
    );
    assert!(stdout(&ensemble(&app.database_url, &["mail", "list"]).await).contains("sent"));
}

/// The connection cap follows the open-files limit: with `ulimit -n 200`, 250 clients that
/// connect and say nothing wait in the listen backlog instead of taking the descriptors that
/// database connections need, and a real request is served once the header timeout has freed
/// a slot or two.
#[tokio::test]
async fn with_few_open_files_silent_clients_wait_in_the_backlog_and_requests_are_served() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let address = free_address();
    let mut server = Command::new("sh");
    server
        .arg("-c")
        .arg(format!(
            "ulimit -n 200 && exec {} serve",
            env!("CARGO_BIN_EXE_ensemble")
        ))
        .env("DATABASE_URL", &app.database_url)
        .env("ENSEMBLE_LISTEN", address.to_string())
        .env("ENSEMBLE_JWT_SECRET", "test-secret-test-secret")
        .env("ENSEMBLE_ORCHESTRA_APPID", "orchestra-appid")
        .env("ENSEMBLE_ORCHESTRA_SECRET", "orchestra-secret")
        .env("ENSEMBLE_TODAY", TODAY)
        .env("ENSEMBLE_HTTP_HEADER_TIMEOUT", "1")
        .env("RUST_LOG", "warn")
        .env_remove("ENSEMBLE_SMTP_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let base = format!("http://{address}");
    let server = Server::start(&mut server, &format!("{base}/")).await;
    let http = reqwest::Client::new();
    let mut silent = Vec::new();
    for _ in 0..250 {
        silent.push(tokio::net::TcpStream::connect(address).await.unwrap());
    }
    let reply = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        http.get(format!("{base}/absence/"))
            .header("Authorization", format!("JWT {}", t.david))
            .send(),
    )
    .await
    .expect("a request was served despite the silent clients")
    .unwrap();
    assert_eq!(reply.status(), 200);
    drop(silent);
    // SIGTERM, then what it logged.
    let log = stderr(&server.stop().await);
    assert!(log.contains("capped"), "{log}");
    assert!(!log.contains("Too many open files"), "{log}");
}

#[tokio::test]
async fn events_list_shows_the_history_in_log_order_with_who_and_through_which_request() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    assert_eq!(app.process(id, &t.alice, "ok", true).await.status, 200);
    let out = ensemble(
        &app.database_url,
        &[
            "events",
            "list",
            "--format",
            "json",
            "--aggregate-type",
            "MemberAbsences",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["event_type"], "AbsenceApplied");
    assert_eq!(lines[1]["event_type"], "AbsenceProcessed");
    assert_eq!(lines[1]["metadata"]["actor_kind"], "manager");
    assert_eq!(lines[1]["metadata"]["channel"], "http");
    assert!(lines[1]["metadata"]["request_id"].as_str().unwrap().len() >= 32);
    for field in [
        "position",
        "aggregate_id",
        "sequence",
        "event_version",
        "payload",
    ] {
        assert!(!lines[0][field].is_null(), "{field}");
    }
    assert!(
        chrono::DateTime::parse_from_rfc3339(lines[0]["recorded_at"].as_str().unwrap()).is_ok()
    );
    // --after the first: only the second; the table has a header and one row per event.
    let after = lines[0]["position"].as_i64().unwrap().to_string();
    let out = ensemble(
        &app.database_url,
        &[
            "events",
            "list",
            "--aggregate-type",
            "MemberAbsences",
            "--after",
            &after,
        ],
    )
    .await;
    let table = stdout(&out);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.lines().next().unwrap().starts_with("position"));
    assert!(table.contains("AbsenceProcessed") && !table.contains("AbsenceApplied"));
}

#[tokio::test]
async fn events_verify_passes_on_the_log_and_names_the_first_tampered_position() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let first = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    app.apply_id(&t.david, "2026-03-13", "全体排练").await;
    assert_eq!(app.process(first, &t.alice, "ok", true).await.status, 200);
    let out = ensemble(&app.database_url, &["events", "verify", "--print-head"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let total = app.scalar("SELECT count(*) FROM events").await;
    assert!(
        stdout(&out).contains(&format!("intact: {total} events chained")),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("head: position"));
    let position = |n: i64| {
        let app = &app;
        async move {
            app.scalar(&format!(
                "SELECT position FROM events WHERE event_type = 'AbsenceApplied' ORDER BY position OFFSET {n} LIMIT 1"
            ))
            .await
        }
    };
    let (edited, deleted) = (position(0).await, position(1).await);
    // An edit of one payload, as a superuser would make it with triggers off.
    app.sql(&format!(
        "UPDATE events SET payload = replace(payload::text, '2026-03-12', '2026-03-19')::json WHERE position = {edited}"
    )).await;
    let error = verify(&app).await.unwrap_err();
    assert!(
        error.contains(&format!("at position {edited}:")),
        "{}",
        error
    );
    // Undo it: intact again. Then delete another event, and with it its link: the chain breaks
    // at the event after it.
    app.sql(&format!(
        "UPDATE events SET payload = replace(payload::text, '2026-03-19', '2026-03-12')::json WHERE position = {edited}"
    )).await;
    assert!(verify(&app).await.is_ok());
    app.sql(&format!("DELETE FROM events WHERE position = {deleted}"))
        .await;
    let error = verify(&app).await.unwrap_err();
    assert!(
        error.contains("does not match") || error.contains("missing"),
        "{}",
        error
    );
    app.sql(&format!(
        "DELETE FROM event_links WHERE position = {deleted}"
    ))
    .await;
    let error = verify(&app).await.unwrap_err();
    assert!(error.contains("does not match"), "{}", error);
}

#[tokio::test]
async fn an_event_slipped_into_the_chained_past_is_found() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    assert!(verify(&app).await.is_ok());
    // Inserted by SQL with a transaction id below the chain's head.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, transaction_id) \
         VALUES ('MemberAbsences', 'Mallory', 1, 'AbsenceApplied', '1.0', '{}', '{}', 1)",
    )
    .execute(&app.app.rt.pool)
    .await
    .unwrap();
    let error = verify(&app).await.unwrap_err();
    assert!(error.contains("inserted out of band"), "{}", error);
}

#[tokio::test]
async fn projections_list_shows_each_projection_with_its_position_lag_and_rows() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let out = ensemble(&app.database_url, &["projections", "list"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let listing = stdout(&out);
    for name in [
        "orchestra_roster",
        "orchestra_absences",
        "mail_outbox",
        "event_chain",
    ] {
        let line = listing
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing: {listing}"));
        // Caught up: no lag.
        assert_eq!(line.split_whitespace().nth(2), Some("0"), "{line}");
    }
    assert!(listing.contains("orchestra_absences=1"), "{listing}");
    let events = app.scalar("SELECT count(*) FROM events").await;
    assert!(
        listing.contains(&format!("event_links={events}")),
        "{listing}"
    );
}

#[tokio::test]
async fn events_show_gives_a_record_now_and_as_it_stood_before_a_change() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = app
        .scalar("SELECT floor(extract(epoch FROM now()))::bigint")
        .await
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let moved = app
        .change(&t.david, id, json!({ "time_absence": "2026-03-20" }))
        .await;
    assert_eq!(moved.status, 200);
    let david = app.member_id("David").await.to_string();
    let now = ensemble(
        &app.database_url,
        &["events", "show", "MemberAbsences", &david],
    )
    .await;
    assert!(now.status.success(), "{}", stderr(&now));
    let text = stdout(&now);
    let (state, history) = text.split_once("history:").unwrap();
    assert!(
        state.contains("2026-03-20") && !state.contains("2026-03-12"),
        "{text}"
    );
    assert!(
        history.contains("AbsenceApplied") && history.contains("AbsenceChanged"),
        "{text}"
    );
    // Events name the actor by subject; the legend says who that is.
    assert!(
        history.contains(&format!("member orchestra-member:{david}")),
        "{text}"
    );
    assert!(
        history.contains(&format!("orchestra-member:{david} = David")),
        "{text}"
    );
    let as_of = chrono::DateTime::from_timestamp(before.parse().unwrap(), 0)
        .unwrap()
        .to_rfc3339();
    let then = ensemble(
        &app.database_url,
        &[
            "events",
            "show",
            "MemberAbsences",
            &david,
            "--as-of",
            &as_of,
        ],
    )
    .await;
    assert!(then.status.success(), "{}", stderr(&then));
    let text = stdout(&then);
    let (state, history) = text.split_once("history:").unwrap();
    assert!(
        state.contains("2026-03-12") && !state.contains("2026-03-20"),
        "{text}"
    );
    assert!(!history.contains("AbsenceChanged"), "{text}");
    // A bad time and an unknown type are clear errors.
    let bad = ensemble(
        &app.database_url,
        &[
            "events",
            "show",
            "MemberAbsences",
            &david,
            "--as-of",
            "yesterday",
        ],
    )
    .await;
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("is not a time"), "{}", stderr(&bad));
    let unknown = ensemble(&app.database_url, &["events", "show", "Nope", "x"]).await;
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("unknown aggregate type"));
}

#[tokio::test]
async fn projections_list_names_a_forgotten_transaction_that_holds_the_read_models_back() {
    let app = spawn_app().await;
    let mut forgotten = <sqlx::PgConnection as sqlx::Connection>::connect(&app.database_url)
        .await
        .unwrap();
    // A write (here to the catalog) gives the transaction an id.
    sqlx::Executor::execute(
        &mut forgotten,
        "BEGIN; CREATE TEMP TABLE forgotten (x int);",
    )
    .await
    .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut forgotten)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
    let out = ensemble(&app.database_url, &["projections", "list"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("held back by: pid {pid} ")),
        "{}",
        stdout(&out)
    );
    sqlx::Executor::execute(&mut forgotten, "ROLLBACK")
        .await
        .unwrap();
    let out = ensemble(&app.database_url, &["projections", "list"]).await;
    assert!(!stdout(&out).contains("held back by"), "{}", stdout(&out));
}

/// With ENSEMBLE_ADMIN_LISTEN, `/metrics` is served there and not on the public listener; and
/// SIGTERM stops the server cleanly (exit 0).
#[tokio::test]
async fn with_an_admin_listener_metrics_leave_the_public_one_and_sigterm_exits_0() {
    let app = spawn_app().await;
    let (public, admin) = (free_address(), free_address());
    let server = Server::start(
        Command::new(env!("CARGO_BIN_EXE_ensemble"))
            .arg("serve")
            .env("DATABASE_URL", &app.database_url)
            .env("ENSEMBLE_LISTEN", public.to_string())
            .env("ENSEMBLE_ADMIN_LISTEN", admin.to_string())
            .env("ENSEMBLE_TODAY", TODAY)
            .env("RUST_LOG", "warn")
            .env_remove("ENSEMBLE_SMTP_URL")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
        &format!("http://{public}/healthz"),
    )
    .await;
    let http = reqwest::Client::new();
    let status = |url: String| {
        let http = http.clone();
        async move { http.get(&url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(format!("http://{admin}/metrics")).await, 200);
    assert_eq!(status(format!("http://{admin}/readyz")).await, 200);
    assert_eq!(status(format!("http://{public}/metrics")).await, 404);
    assert_eq!(status(format!("http://{public}/healthz")).await, 200);
    let exit = server.stop().await.status;
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn events_verify_sees_rows_below_every_position_and_links_deleted_wholesale() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    assert!(verify(&app).await.is_ok());
    // A row below every real one (position and transaction -1).
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, transaction_id, position) \
         VALUES ('MemberAbsences', 'Mallory', 1, 'AbsenceApplied', '1.0', '{}', '{}', -1, -1)",
    )
    .execute(&app.app.rt.pool)
    .await
    .unwrap();
    let error = verify(&app).await.unwrap_err();
    assert!(error.contains("at position -1:"), "{}", error);
    let listed = ensemble(
        &app.database_url,
        &["events", "list", "--aggregate-id", "Mallory"],
    )
    .await;
    assert!(stdout(&listed).contains("Mallory"), "{}", stdout(&listed));
    app.sql("DELETE FROM events WHERE position = -1").await;
    // Every link deleted: the chain's checkpoint still says those events were chained.
    app.sql("DELETE FROM event_links").await;
    let error = verify(&app).await.unwrap_err();
    assert!(
        error.contains("inserted out of band") || error.contains("no link"),
        "{}",
        error
    );
}

#[tokio::test]
async fn events_verify_notices_the_newest_event_deleted_with_its_link() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    assert!(verify(&app).await.is_ok());
    let newest = app.scalar("SELECT max(position) FROM events").await;
    for table in ["events", "event_links"] {
        app.sql(&format!("DELETE FROM {table} WHERE position = {newest}"))
            .await;
    }
    let error = verify(&app).await.unwrap_err();
    assert!(
        error.contains(&format!("at position {newest}:")),
        "{}",
        error
    );
}

#[tokio::test]
async fn serve_with_a_fake_wechat_lets_a_newcomer_log_in_on_this_machine_only() {
    runtime::wechat::install_crypto_provider();
    let database_url = crate::helpers::fresh_database_url();
    let _database = crate::helpers::OwnedDatabase::hold(&database_url);
    let address = free_address();
    let base = format!("http://{address}");
    let server = Server::start(
        Command::new(env!("CARGO_BIN_EXE_ensemble"))
            .args(["serve", "--fake-wechat"])
            .env("DATABASE_URL", &database_url)
            .env("ENSEMBLE_LISTEN", address.to_string())
            .env("RUST_LOG", "warn")
            .env_remove("ENSEMBLE_SMTP_URL")
            .env_remove("ENSEMBLE_WECHAT_API")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
        &format!("{base}/healthz"),
    )
    .await;
    let http = reqwest::Client::new();
    let file = std::env::temp_dir().join(format!("roster-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(&file, "name,section,role\nDavid,stringed,member\n").unwrap();
    let out = ensemble(&database_url, &["roster", "import", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    // The README's first session: any code logs in.
    let login: serde_json::Value = http
        .post(format!("{base}/account/login/"))
        .json(&json!({"name": "David", "code": "my-phone"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().expect("a token");
    let mine = http
        .get(format!("{base}/absence/"))
        .header("Authorization", format!("JWT {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), 200);
    let campus = http
        .post(format!("{base}/login/"))
        .json(&json!({"code": "wzk", "userInfo": {"nickName": "wzk"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(campus.status(), 200);
    let out = server.stop().await;
    assert!(stderr(&out).contains("FAKE WECHAT"), "{}", stderr(&out));
    // Never where others could reach it.
    let refused = Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["serve", "--fake-wechat"])
        .env("DATABASE_URL", &database_url)
        .env("ENSEMBLE_LISTEN", "0.0.0.0:0")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("loopback"),
        "{}",
        stderr(&refused)
    );
    let _ = std::fs::remove_file(file);
}

/// `pg_dump -Fc` of `from` into a new database (dropped with the test): a restore.
async fn restore_copy(from: &str) -> (String, crate::helpers::OwnedDatabase) {
    let to = crate::helpers::fresh_database_url();
    let held = crate::helpers::OwnedDatabase::hold(&to);
    let dump = std::env::temp_dir().join(format!("ensemble-{}.dump", uuid::Uuid::new_v4()));
    let (from, to2, file) = (from.to_string(), to.clone(), dump.clone());
    tokio::task::spawn_blocking(move || {
        let run = |c: &mut Command| {
            let out = c.output().expect("PostgreSQL's client tools run");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(Command::new("pg_dump")
            .args(["-Fc", "-f"])
            .arg(&file)
            .arg(&from));
        let (admin, name) = to2.rsplit_once('/').unwrap();
        run(Command::new("psql")
            .arg(format!("{admin}/postgres"))
            .args(["-qc", &format!("CREATE DATABASE \"{name}\"")]));
        run(Command::new("pg_restore").args(["-d", &to2]).arg(&file));
        let _ = std::fs::remove_file(&file);
    })
    .await
    .unwrap();
    (to, held)
}

#[tokio::test]
async fn erasures_after_a_backup_are_erased_again_from_the_kept_list() {
    let app = spawn_app().await;
    app.with_roster().await;
    let user = crate::platform::user(&app, "Ursula").await;
    let david = app.member_id("David").await;
    // The backup, taken before the two erasures.
    let (restored, _held) = restore_copy(&app.database_url).await;
    let out = ensemble(&app.database_url, &["roster", "forget", "David"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let reply = app
        .delete(&format!("/users/{}/", user.id), &user.token)
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    // The list: subjects and times, no personal data.
    let listed = ensemble(&app.database_url, &["erasures", "list"]).await;
    assert!(listed.status.success(), "{}", stderr(&listed));
    let list = String::from_utf8(listed.stdout).unwrap();
    let subjects: Vec<&str> = list
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    let member = format!("orchestra-member:{david}");
    let campus = format!("campus-user:{}", user.id);
    assert_eq!(subjects, [member.as_str(), campus.as_str()], "{list}");
    assert!(
        !list.contains("David") && !list.contains("Ursula"),
        "{list}"
    );
    let file = std::env::temp_dir().join(format!("erasures-{}.tsv", uuid::Uuid::new_v4()));
    std::fs::write(&file, &list).unwrap();
    let path = file.to_str().unwrap();

    // The restored database has them back: their keys came with the backup.
    let q = |sql: &'static str, url: String| async move {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let v: Vec<String> = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        v
    };
    let names = "SELECT name FROM orchestra_members ORDER BY id";
    assert!(q(names, restored.clone())
        .await
        .contains(&"David".to_string()));
    // A list with a line that is not a subject is refused whole.
    let bad = std::env::temp_dir().join(format!("erasures-{}.tsv", uuid::Uuid::new_v4()));
    std::fs::write(&bad, format!("{list}David\t2026-01-01\n")).unwrap();
    let out = ensemble(&restored, &["erasures", "reapply", bad.to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("David"),
        "a bad line is not echoed: {}",
        stderr(&out)
    );
    assert!(q(names, restored.clone())
        .await
        .contains(&"David".to_string()));

    let out = ensemble(&restored, &["erasures", "reapply", path]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.contains("2 erased again, 0 already erased"), "{said}");
    assert!(!q(names, restored.clone())
        .await
        .contains(&"David".to_string()));
    assert!(q(names, restored.clone())
        .await
        .contains(&format!("former member #{david}")));
    let forgotten = q(
        "SELECT subject FROM personal_keys WHERE forgotten_at IS NOT NULL ORDER BY subject",
        restored.clone(),
    )
    .await;
    assert_eq!(forgotten, [campus.clone(), member.clone()]);
    let users = q(
        "SELECT name FROM campus_users WHERE deleted ORDER BY id",
        restored.clone(),
    )
    .await;
    assert_eq!(users.len(), 1, "{users:?}");
    assert!(!users[0].contains("Ursula"));

    // Again (with a byte-order mark): nothing left to do. A subject this database never had
    // (made after the backup, erased before the loss) is marked erased, and its id is never
    // given out again, so that a later run of the same list cannot erase a newcomer.
    let pool = sqlx::PgPool::connect(&restored).await.unwrap();
    std::fs::write(
        &file,
        format!("\u{feff}{list}campus-user:999\t2026-12-01T00:00:00+00:00\n"),
    )
    .unwrap();
    let reapply = |url: String, path: String| async move {
        let out = ensemble(&url, &["erasures", "reapply", &path]).await;
        let err = stderr(&out);
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            err,
        )
    };
    let (ok, said, err) = reapply(restored.clone(), path.to_string()).await;
    assert!(ok, "{err}");
    assert!(
        said.contains("0 erased again, 2 already erased, 1 not in this database, 0 keys"),
        "{said}"
    );
    let tombstone: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM personal_keys WHERE subject = 'campus-user:999' AND key IS NULL AND forgotten_at IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tombstone, 1);
    let next: i64 = sqlx::query_scalar("SELECT nextval('campus_user_id_seq')")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(next > 999, "{next}");
    let (ok, said, err) = reapply(restored.clone(), path.to_string()).await;
    assert!(ok, "{err}");
    assert!(
        said.contains("0 erased again, 3 already erased, 0 not in this database"),
        "{said}"
    );

    // A key with no record behind it (a backup taken between a key's commit and its record's
    // first event) is destroyed, and the run goes on.
    sqlx::query(
        "INSERT INTO personal_keys (subject, key) VALUES ('orchestra-member:77', '\\x0102')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    std::fs::write(&file, format!("orchestra-member:77\t{later}\n")).unwrap();
    let (ok, said, err) = reapply(restored.clone(), path.to_string()).await;
    assert!(ok, "{err}");
    assert!(said.contains("1 keys without a record destroyed"), "{said}");
    let wiped: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT key FROM personal_keys WHERE subject = 'orchestra-member:77'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(wiped, None);

    // A live key made after the erasure the list records belongs to someone given that id
    // since: refused, nothing erased.
    let (ok, _, err) = reapply(restored.clone(), path.replace(".tsv", "-x.tsv")).await;
    assert!(!ok, "a missing file is an error");
    assert!(err.contains("cannot read"), "{err}");
    let newcomer = app.member_id("Wendy").await;
    std::fs::write(
        &file,
        format!("orchestra-member:{newcomer}\t2001-01-01T00:00:00+00:00\n"),
    )
    .unwrap();
    let (ok, _, err) = reapply(restored.clone(), path.to_string()).await;
    assert!(!ok);
    assert!(err.contains("given the same id"), "{err}");
    assert!(q(names, restored.clone())
        .await
        .contains(&"Wendy".to_string()));
    // Only the forms `erasures list` writes.
    for bad in ["orchestra-member:+3", "orchestra-member:03", "campus-user:"] {
        std::fs::write(&file, format!("{bad}\n")).unwrap();
        let (ok, _, err) = reapply(restored.clone(), path.to_string()).await;
        assert!(!ok && err.contains("line 1"), "{bad}: {err}");
    }
    pool.close().await;

    // A database that is not there: nothing listed, and no empty database made in its place.
    let lost = crate::helpers::fresh_database_url();
    let out = ensemble(&lost, &["erasures", "list"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let name = lost.rsplit_once('/').unwrap().1;
    let made: i64 = app
        .scalar(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
        ))
        .await;
    assert_eq!(made, 0);
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&bad);
}
