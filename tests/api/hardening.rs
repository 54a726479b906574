//! The confirmed defects of the hardening review, each reproduced: slow clients, stalled SMTP,
//! resent mail, writes answered wrongly while the read models lag, one member's burst, write
//! floods, forged request ids, undeliverable addresses, and clients that hang up mid-write.

use std::time::{Duration, Instant};

use aggregates::orchestra::roster::RosterCommand;
use aggregates::orchestra::EmailAddress;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{captured_logs, eventually, spawn_app_with, SmtpMode, TestApp};

async fn notify(app: &TestApp, email: &str) {
    app.operator(RosterCommand::AddNotifyAddress {
        email: EmailAddress::parse(email).unwrap(),
    })
    .await;
}

/// Read until the server closes the connection (true) or `within` passes (false).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

fn host(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_string()
}

/// Short bounds for the tests of held-up writes: a command waits 1 s for its turn and its
/// statements, the read models 1 s, the request 4 s; no write limit.
fn tight_deadlines(c: &mut ensemble::Config) {
    c.write_limit = 0;
    c.waits.turn = Duration::from_secs(1);
    c.waits.projection = Duration::from_secs(1);
    c.http.request_timeout = Duration::from_secs(4);
}

/// `GET path` with `Connection: close` on a connection of its own; the whole answer, read
/// until the server closes the connection. Panics with `expectation` after `within`.
async fn get_once(app: &TestApp, path: &str, within: Duration, expectation: &str) -> String {
    let mut client = TcpStream::connect(host(app)).await.unwrap();
    client
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(within, client.read_to_end(&mut reply))
        .await
        .expect(expectation)
        .unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test]
async fn slow_and_silent_clients_are_cut_off_and_connections_are_capped() {
    let app = spawn_app_with(|c| {
        c.http.header_timeout = Duration::from_millis(700);
        c.http.body_timeout = Duration::from_millis(700);
        c.http.max_connections = 4;
    })
    .await;
    let t = app.with_roster().await;
    // Nothing at all, half the headers, and headers with half the body.
    let mut silent = TcpStream::connect(host(&app)).await.unwrap();
    let mut half_headers = TcpStream::connect(host(&app)).await.unwrap();
    half_headers
        .write_all(b"GET /absence/ HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut half_body = TcpStream::connect(host(&app)).await.unwrap();
    half_body
        .write_all(
            format!(
                "POST /absence/ HTTP/1.1\r\nHost: x\r\nAuthorization: JWT {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"reason\":",
                t.david
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // The body that never completes is answered 408 and the connection closed.
    let mut answer = String::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), half_body.read(&mut buf))
        .await
        .expect("the half-sent body is answered in time")
        .unwrap();
    answer.push_str(&String::from_utf8_lossy(&buf[..read]));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    for (what, stream) in [("silent", &mut silent), ("half headers", &mut half_headers)] {
        assert!(
            closed_within(stream, Duration::from_secs(10)).await,
            "the {what} connection stayed open"
        );
    }
    // With the cap at 4, four silent clients hold every slot: a fifth client is not served
    // until the header timeout has freed one, and then it is.
    let mut hogs = Vec::new();
    for _ in 0..4 {
        hogs.push(TcpStream::connect(host(&app)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fifth = TcpStream::connect(host(&app)).await.unwrap();
    fifth
        .write_all(b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let early =
        tokio::time::timeout(Duration::from_millis(300), fifth.read_to_end(&mut reply)).await;
    assert!(
        early.is_err(),
        "served beyond the cap: {:?}",
        String::from_utf8_lossy(&reply)
    );
    tokio::time::timeout(Duration::from_secs(10), fifth.read_to_end(&mut reply))
        .await
        .expect("served once a slot was free")
        .unwrap();
    assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 404"));
    // And the service works as before.
    assert_eq!(app.get("/absence/", &t.david).await.status, 200);
}

/// A client that pipelines requests and never reads the answers fills its receive window and
/// the server's send buffer; the server's writes then make no progress. That connection is cut
/// off after the write timeout, and its slot goes to the next client.
#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_frees_its_slot() {
    let app = spawn_app_with(|c| {
        c.http.write_timeout = Duration::from_millis(500);
        c.http.max_connections = 1;
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let hog = socket.connect(host(&app).parse().unwrap()).await.unwrap();
    let (never_read, mut writer) = hog.into_split();
    // 50,000 small requests: some 10 MB of answers, more than any socket buffer holds.
    let requests = "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n".repeat(50_000);
    let sender = tokio::spawn(async move {
        let _ = writer.write_all(requests.as_bytes()).await;
        writer
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The only slot is the hog's: the next client is served once the hog is cut off.
    let reply = get_once(
        &app,
        "/nowhere",
        Duration::from_secs(10),
        "served once the client that stopped reading was cut off",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 404"));
    drop(never_read);
    sender.abort();
}

/// Connections of the test database that have sat inside a transaction, doing nothing, for
/// more than a second (between the statements of a short transaction, a moment is normal).
async fn idle_in_transaction(app: &TestApp) -> i64 {
    app.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND state LIKE 'idle in transaction%' AND state_change < now() - interval '1 second'",
    )
    .await
}

#[tokio::test]
async fn a_silent_smtp_server_costs_one_bounded_attempt_and_holds_no_transaction() {
    let app = spawn_app_with(|c| c.smtp_timeout = Duration::from_millis(500)).await;
    let smtp = app.smtp.as_ref().unwrap();
    smtp.set_mode(SmtpMode::Silent);
    let t = app.with_roster().await;
    notify(&app, "boss@orchestra.org").await;
    assert_eq!(
        app.apply(&t.david, "2026-03-12", "全体排练").await.status,
        201
    );
    // The attempt times out, is recorded, and is scheduled again.
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.scalar("SELECT count(*) FROM mail_outbox WHERE attempts >= 1 AND last_error LIKE '%longer than%'")
                .await
                == 1
        })
        .await,
        "the stalled exchange was never given up"
    );
    // While the server hangs, no database transaction waits on it.
    for _ in 0..10 {
        assert_eq!(idle_in_transaction(&app).await, 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once the server answers, the mail goes out.
    smtp.set_mode(SmtpMode::Accept);
    assert!(eventually(Duration::from_secs(10), || async { smtp.count() == 1 }).await);
}

#[tokio::test]
async fn mails_accepted_before_a_stall_and_a_restart_are_not_sent_again() {
    let app = spawn_app_with(|c| {
        c.smtp_timeout = Duration::from_millis(500);
        c.mail_retry_base = Duration::from_millis(100);
    })
    .await;
    let t = app.with_roster().await;
    for i in 1..=7 {
        notify(&app, &format!("boss{i}@orchestra.org")).await;
    }
    // The server accepts three messages, then stalls on the fourth.
    app.smtp
        .as_ref()
        .unwrap()
        .set_mode(SmtpMode::AcceptThenHang(3));
    assert_eq!(
        app.apply(&t.david, "2026-03-12", "全体排练").await.status,
        201
    );
    let smtp = app.smtp.as_ref().unwrap();
    assert!(eventually(Duration::from_secs(10), || async { smtp.count() == 3 }).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A restart mid-stall; then the server recovers.
    let app = app.restart().await;
    let smtp = app.smtp.as_ref().unwrap();
    smtp.set_mode(SmtpMode::Accept);
    assert!(
        eventually(Duration::from_secs(15), || async { smtp.count() >= 7 }).await,
        "only {} mails",
        smtp.count()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages = smtp.messages.lock().unwrap().clone();
    assert_eq!(messages.len(), 7, "some mail went out twice");
    for i in 1..=7 {
        let to = format!("To: boss{i}@orchestra.org");
        assert_eq!(
            messages.iter().filter(|m| m.contains(&to)).count(),
            1,
            "{to}"
        );
    }
}

#[tokio::test]
async fn writes_answer_what_they_committed_while_the_read_models_are_held_up() {
    let app = spawn_app_with(|c| c.waits.projection = Duration::from_millis(300)).await;
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    // A rebuild (or anything else) holds the absences' checkpoint.
    let blocker = app.hold_absences_read_model().await;
    let applied = app.apply(&t.david, "2026-03-13", "弦乐分排").await;
    assert_eq!(applied.status, 201, "{}", applied.body);
    assert_eq!(applied.body["time_absence"], "2026-03-13");
    assert_eq!(applied.body["type"], "弦乐分排");
    assert_eq!(applied.body["result"], "Not processed yet!");
    let changed = app
        .change(&t.david, id, json!({ "reason": "a concert" }))
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["reason"], "a concert");
    let processed = app.process(id, &t.alice, "fine", true).await;
    assert_eq!(processed.status, 200, "{}", processed.body);
    assert_eq!(processed.body["permission"], true);
    assert_eq!(processed.body["processor"], "Alice");
    assert_eq!(processed.body["reason"], "a concert");
    // Reads go on meanwhile.
    assert_eq!(app.get("/manager/", &t.alice).await.status, 200);
    blocker.rollback().await.unwrap();
    // And the read models catch up with all of it.
    assert!(
        eventually(Duration::from_secs(5), || async {
            let mine = app.get("/absence/", &t.david).await.body;
            mine.as_array().unwrap().len() == 2 && mine[0]["processor"] == "Alice"
        })
        .await
    );
}

#[tokio::test]
async fn one_members_burst_on_a_long_stream_does_not_starve_other_members() {
    // Few connections, so that a burst that took one each would exhaust them.
    let app = spawn_app_with(|c| {
        c.pool_size = 4;
        c.write_limit = 0;
    })
    .await;
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    // David's stream grows long: 20,000 decisions (copies of a real one).
    assert_eq!(app.process(id, &t.alice, "ok", true).await.status, 200);
    let david = app.member_id("David").await;
    app.scalar(&format!(
        "WITH head AS (SELECT max(sequence) AS s FROM events WHERE aggregate_id = '{david}'), \
         decision AS (SELECT payload, event_version FROM events \
                      WHERE aggregate_id = '{david}' AND event_type = 'AbsenceProcessed'), \
         added AS (INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'MemberAbsences', '{david}', head.s + g, 'AbsenceProcessed', decision.event_version, \
           decision.payload, '{{}}'::json FROM head, decision, generate_series(1, 20000) g RETURNING 1) \
         SELECT count(*) FROM added"
    ))
    .await;
    // Thirty decisions on David's stream at once, and Wendy applies meanwhile.
    let burst: Vec<_> = (0..30)
        .map(|_| app.process(id, &t.alice, "fine", true))
        .collect();
    let (burst, wendy) = tokio::join!(futures::future::join_all(burst), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.apply(&t.wendy, "2026-03-12", "全体排练").await
    });
    assert_eq!(wendy.status, 201, "{}", wendy.body);
    for reply in burst {
        // Each decision either went through or was told to come back; never a 500.
        assert!(
            matches!(reply.status, 200 | 503),
            "{} {}",
            reply.status,
            reply.body
        );
    }
}

#[tokio::test]
async fn a_member_writing_too_fast_is_told_to_slow_down_and_managers_get_one_digest() {
    let app = spawn_app_with(|c| {
        c.write_limit = 6;
        c.mail_interval = Duration::from_secs(2);
    })
    .await;
    let t = app.with_roster().await;
    notify(&app, "boss@orchestra.org").await;
    // Apply and cancel in a loop: 6 writes pass, the 7th is refused.
    let mut statuses = Vec::new();
    for day in 12..=15 {
        let reply = app
            .apply(&t.david, &format!("2026-03-{day}"), "全体排练")
            .await;
        statuses.push(reply.status);
        if let Some(id) = reply.body["id"].as_i64() {
            let cancel = app
                .authed(
                    reqwest::Method::DELETE,
                    &format!("/absence/{id}/"),
                    &t.david,
                )
                .send()
                .await
                .unwrap();
            statuses.push(cancel.status().as_u16());
        }
    }
    assert_eq!(
        statuses,
        [201, 204, 201, 204, 201, 204, 429],
        "six writes pass, the seventh is refused"
    );
    let limited = app
        .authed(reqwest::Method::POST, "/absence/", &t.david)
        .json(&json!({ "reason": "exam", "time_absence": "2026-03-20", "type": "全体排练" }))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert!(
        body["msg"].as_str().unwrap().contains("at most 6"),
        "{body}"
    );
    // Other members are not affected.
    assert_eq!(
        app.apply(&t.wendy, "2026-03-12", "全体排练").await.status,
        201
    );
    // Four applications to one address within the interval: a first mail at once, the rest
    // in one digest.
    let smtp = app.smtp.as_ref().unwrap();
    assert!(eventually(Duration::from_secs(10), || async { smtp.count() == 2 }).await);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let messages = smtp.messages.lock().unwrap().clone();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let mentioned: usize = messages
        .iter()
        .map(|m| m.matches("Absence id:").count())
        .sum();
    assert_eq!(mentioned, 4, "{messages:#?}");
    assert!(
        messages[1].contains("new absence requests"),
        "{}",
        messages[1]
    );
}

#[tokio::test]
async fn a_forged_request_id_never_reaches_the_log_and_a_good_one_is_kept_beside_ours() {
    let app = spawn_app_with(|_| {}).await;
    let t = app.with_roster().await;
    let forged = "x".repeat(60_000);
    let reply = app
        .authed(reqwest::Method::POST, "/absence/", &t.david)
        .header("x-request-id", &forged)
        .json(&json!({ "reason": "exam", "time_absence": "2026-03-12", "type": "全体排练" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
    let ours = reply.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(uuid::Uuid::parse_str(&ours).is_ok(), "{ours}");
    let reply = app
        .authed(reqwest::Method::POST, "/absence/", &t.david)
        .header("x-request-id", "mp-2026.03.10:42")
        .header("x-ensemble-client-request-id", "smuggled")
        .json(&json!({ "reason": "exam", "time_absence": "2026-03-13", "type": "全体排练" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
    let second = reply.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(second, "mp-2026.03.10:42");
    let rows: Vec<(String, Option<String>, i32)> = sqlx::query_as(
        "SELECT metadata->>'request_id', metadata->>'client_request_id', length(metadata::text) \
         FROM events WHERE event_type = 'AbsenceApplied' ORDER BY position",
    )
    .fetch_all(&app.app.rt.pool)
    .await
    .unwrap();
    assert_eq!(rows[0].0, ours);
    assert_eq!(rows[0].1, None);
    assert!(rows[0].2 < 500, "metadata of {} bytes", rows[0].2);
    assert_eq!(rows[1].0, second);
    assert_eq!(rows[1].1.as_deref(), Some("mp-2026.03.10:42"));
}

#[tokio::test]
async fn a_mail_that_keeps_failing_is_set_aside_and_can_be_retried() {
    let app = spawn_app_with(|c| {
        c.mail_max_attempts = 3;
        c.mail_retry_base = Duration::from_millis(50);
        c.mail_retry_max = Duration::from_millis(100);
    })
    .await;
    let smtp = app.smtp.as_ref().unwrap();
    let t = app.with_roster().await;
    notify(&app, "boss@orchestra.org").await;
    // A permanent refusal sets the mail aside at once.
    smtp.set_mode(SmtpMode::RejectRecipients);
    app.apply(&t.david, "2026-03-12", "全体排练").await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.scalar(
                "SELECT count(*) FROM mail_outbox WHERE failed_at IS NOT NULL AND attempts = 1",
            )
            .await
                == 1
        })
        .await
    );
    // Transient failures: set aside after three attempts.
    smtp.set_mode(SmtpMode::Accept);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut app = app;
    app.stop().await;
    let down = crate::helpers::spawn_app_tweaked(
        app.database_url.clone(),
        app.wechat.clone(),
        port,
        // The same settings, on an SMTP port where nobody listens.
        app.tweak.clone(),
    )
    .await;
    down.apply(&t.david, "2026-03-13", "全体排练").await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            down.scalar(
                "SELECT count(*) FROM mail_outbox WHERE failed_at IS NOT NULL AND attempts = 3",
            )
            .await
                == 1
        })
        .await
    );
    let pending = down
        .scalar("SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL")
        .await;
    assert_eq!(pending, 0);
}

#[tokio::test]
async fn clients_that_hang_up_mid_write_leave_no_connection_inside_a_transaction() {
    let app = spawn_app_with(|c| c.write_limit = 0).await;
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let impatient = reqwest::Client::new();
    let mut hangups = Vec::new();
    for i in 0..300u64 {
        let request = if i % 2 == 0 {
            impatient
                .put(format!("{}/manager/{id}/", app.address))
                .header("Authorization", format!("JWT {}", t.alice))
                .json(&json!({ "result": format!("r{i}"), "permission": i % 4 == 0 }))
        } else {
            impatient
                .put(format!("{}/absence/{id}/", app.address))
                .header("Authorization", format!("JWT {}", t.david))
                .json(&json!({ "reason": format!("reason {i}") }))
        };
        // Hang up after 0 to 9 ms, mid-request.
        hangups.push(request.timeout(Duration::from_millis(i % 10)).send());
    }
    futures::future::join_all(hangups).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(idle_in_transaction(&app).await, 0);
    // Every later request works, on every pooled connection.
    for i in 0..40 {
        let reply = app.process(id, &t.alice, &format!("after {i}"), true).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(app.get("/absence/", &t.david).await.status, 200);
    }
    let logs = captured_logs();
    assert!(!logs.contains("transaction in progress"), "{logs}");
    assert!(!logs.contains("came back inside a transaction"), "{logs}");
}

#[tokio::test]
async fn a_partial_change_never_undoes_an_earlier_one_while_the_read_models_lag() {
    let app = spawn_app_with(|c| c.waits.projection = Duration::from_millis(200)).await;
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    // The absences' read model is held back (as by a rebuild).
    let blocker = app.hold_absences_read_model().await;
    let moved = app
        .change(&t.david, id, json!({ "time_absence": "2026-03-20" }))
        .await;
    assert_eq!(moved.body["time_absence"], "2026-03-20");
    let reason = app
        .change(&t.david, id, json!({ "reason": "only the reason" }))
        .await;
    assert_eq!(reason.status, 200, "{}", reason.body);
    assert_eq!(
        reason.body["time_absence"], "2026-03-20",
        "the earlier change was undone"
    );
    assert_eq!(reason.body["reason"], "only the reason");
    // A new absence can be cancelled at once, read model or not.
    let fresh = app.apply_id(&t.david, "2026-03-14", "全体排练").await;
    assert_eq!(
        app.delete(&format!("/absence/{fresh}/"), &t.david)
            .await
            .status,
        204
    );
    blocker.rollback().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            let mine = app.get("/absence/", &t.david).await.body;
            mine.as_array().unwrap().len() == 1 && mine[0]["time_absence"] == "2026-03-20"
        })
        .await
    );
}

/// Events that pile up while a read model is held are applied together, consecutive events of
/// one kind as one statement: the rows must come out as if applied one by one, and as a
/// rebuild gives them.
#[tokio::test]
async fn events_applied_in_one_batch_give_the_rows_one_by_one_would() {
    let app = spawn_app_with(|c| {
        c.write_limit = 0;
        c.waits.projection = Duration::from_millis(100);
    })
    .await;
    let t = app.with_roster().await;
    let first = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let second = app.apply_id(&t.david, "2026-03-13", "全体排练").await;
    let blocker = app.hold_absences_read_model().await;
    // Decisions on both, twice on the first; then a change, a decision, a change; a new
    // absence applied and cancelled; another applied.
    for (id, result) in [(first, "a"), (second, "b"), (first, "c")] {
        assert_eq!(app.process(id, &t.alice, result, true).await.status, 200);
    }
    let change = |date: &'static str| {
        let app = &app;
        let token = t.david.clone();
        async move {
            app.change(&token, second, json!({ "time_absence": date }))
                .await
                .status
        }
    };
    assert_eq!(change("2026-03-20").await, 200);
    assert_eq!(app.process(second, &t.alice, "d", false).await.status, 200);
    assert_eq!(change("2026-03-21").await, 200);
    let gone = app.apply_id(&t.david, "2026-03-14", "全体排练").await;
    assert_eq!(
        app.delete(&format!("/absence/{gone}/"), &t.david)
            .await
            .status,
        204
    );
    let last = app.apply_id(&t.david, "2026-03-15", "全体排练").await;
    blocker.rollback().await.unwrap();
    let rows = || async {
        let mine = app.get("/absence/", &t.david).await.body;
        mine.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_i64().unwrap(),
                    r["time_absence"].as_str().unwrap().to_string(),
                    r["result"].as_str().unwrap().to_string(),
                    r["permission"].as_bool().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let expected = vec![
        (first, "2026-03-12".to_string(), "c".to_string(), true),
        (
            last,
            "2026-03-15".to_string(),
            "Not processed yet!".to_string(),
            false,
        ),
        (
            second,
            "2026-03-21".to_string(),
            "Not processed yet!".to_string(),
            false,
        ),
    ];
    assert!(
        eventually(Duration::from_secs(5), || async {
            rows().await == expected
        })
        .await,
        "{:?}",
        rows().await
    );
    // A rebuild gives the same rows.
    let absences = app
        .app
        .rt
        .projections
        .iter()
        .find(|p| p.name() == "orchestra_absences")
        .unwrap();
    runtime::runner::rebuild(&app.app.rt.tx_pool, &[absences.as_ref()], &|_, _| {})
        .await
        .unwrap();
    assert_eq!(rows().await, expected);
}

/// An append held up in the database (here an operator's lock on the event table) fails after
/// the command wait and is rolled back: the 503 it gets is the truth, and no commit comes after
/// it when the lock goes.
#[tokio::test]
async fn a_write_held_up_in_the_database_is_refused_and_never_commits_later() {
    let app = spawn_app_with(|c| {
        tight_deadlines(c);
    })
    .await;
    let t = app.with_roster().await;
    let before = app.scalar("SELECT count(*) FROM events").await;
    let operator = app.lock_events("EXCLUSIVE").await;
    let started = Instant::now();
    let reply = app.apply(&t.david, "2026-03-12", "全体排练").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "refused by the request deadline, not the statement's"
    );
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(started.elapsed())).await;
    operator.rollback().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.scalar("SELECT count(*) FROM events").await, before);
    // The record is not stuck: the same application now goes through.
    assert_eq!(
        app.apply(&t.david, "2026-03-12", "全体排练").await.status,
        201
    );
}

/// A request whose body arrives slowly has used much of its time before its command starts:
/// the command must not start an append that could commit after the request has been
/// answered 503 (its deadline counts from the request's start, not the command's).
#[tokio::test]
async fn a_slow_upload_never_leaves_a_commit_behind_its_503() {
    let app = spawn_app_with(|c| {
        tight_deadlines(c);
        c.http.body_timeout = Duration::from_secs(10);
    })
    .await;
    let t = app.with_roster().await;
    let before = app.scalar("SELECT count(*) FROM events").await;
    let operator = app.lock_events("EXCLUSIVE").await;
    let started = Instant::now();
    let body = r#"{"reason": "slow", "time_absence": "2026-03-12", "type": "全体排练"}"#;
    let (head, tail) = body.split_at(10);
    let mut client = TcpStream::connect(host(&app)).await.unwrap();
    client
        .write_all(
            format!(
                "POST /absence/ HTTP/1.1\r\nHost: x\r\nAuthorization: JWT {}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
                t.david,
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    client.write_all(tail.as_bytes()).await.unwrap();
    // The operator lets go after the request's deadline, before the statement's would pass.
    let release = async {
        tokio::time::sleep(Duration::from_millis(4_200).saturating_sub(started.elapsed())).await;
        operator.rollback().await.unwrap();
    };
    let answer = async {
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut reply))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&reply).into_owned()
    };
    let ((), reply) = tokio::join!(release, answer);
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(app.scalar("SELECT count(*) FROM events").await, before);
}

/// A database session terminated mid-command (a restart, an operator's pg_terminate_backend)
/// is the database's trouble, not a server error: 503 with Retry-After, not 500.
#[tokio::test]
async fn a_terminated_database_session_is_answered_503_not_500() {
    let app = spawn_app_with(|c| c.write_limit = 0).await;
    let t = app.with_roster().await;
    let before = app.scalar("SELECT count(*) FROM events").await;
    let operator = app.lock_events("EXCLUSIVE").await;
    let apply = app.apply(&t.david, "2026-03-12", "全体排练");
    let terminate = async {
        // The append waits on the lock: terminate its session.
        assert!(
            eventually(Duration::from_secs(5), || async {
                sqlx::query_scalar::<_, bool>(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND query LIKE 'WITH %INSERT INTO events%' \
                       AND wait_event_type = 'Lock'",
                )
                .fetch_optional(&app.app.rt.pool)
                .await
                .unwrap()
                .unwrap_or(false)
            })
            .await
        );
    };
    let (reply, ()) = tokio::join!(apply, terminate);
    assert_eq!(reply.status, 503, "{}", reply.body);
    operator.rollback().await.unwrap();
    assert_eq!(app.scalar("SELECT count(*) FROM events").await, before);
    assert_eq!(
        app.apply(&t.david, "2026-03-12", "全体排练").await.status,
        201
    );
}

/// When nearly every connection slot is taken, connections get a second (not the full header
/// timeout) to complete their first request's headers: a crowd of silent connections, or of
/// connections that send one byte, cannot keep real clients waiting for long.
#[tokio::test]
async fn under_pressure_silent_connections_are_shed_quickly() {
    let app = spawn_app_with(|c| {
        c.http.header_timeout = Duration::from_secs(10);
        c.http.max_connections = 10;
    })
    .await;
    // Half the crowd sends nothing, the other half one byte and then nothing.
    let mut silent = Vec::new();
    for i in 0..30 {
        let mut stream = TcpStream::connect(host(&app)).await.unwrap();
        if i % 2 == 1 {
            stream.write_all(b"G").await.unwrap();
        }
        silent.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let reply = get_once(&app, "/nowhere", Duration::from_secs(30), "served").await;
    assert!(reply.starts_with("HTTP/1.1 404"));
    // 9 slots hold silent clients for the full 10 s; the rest of the crowd and the real
    // client share the last one, a second each.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "waited {:?}",
        started.elapsed()
    );
    drop(silent);
}

/// With few connections and a held-up append, commands queue for a connection. A command
/// that gets one only after its request's deadline must not append any more: whatever is
/// answered 503 is never committed later, whatever is answered 2xx is.
#[tokio::test]
async fn a_wait_for_a_connection_never_carries_an_append_past_its_request() {
    let app = spawn_app_with(|c| {
        tight_deadlines(c);
        c.pool_size = 1;
    })
    .await;
    // Eight members with an absence each: the manager's decisions on them go to eight
    // streams whose states are in memory, so they go straight to their appends, all at once,
    // on one connection.
    let mut roster = String::from("name,section,role\nBoss,wind,manager\n");
    for i in 0..8 {
        roster.push_str(&format!("M{i},stringed,member\n"));
    }
    app.import_roster(&roster).await;
    let boss = app.login("Boss").await;
    let mut ids = Vec::new();
    for i in 0..8 {
        let token = app.login(&format!("M{i}")).await;
        ids.push(app.apply_id(&token, "2026-03-12", "全体排练").await);
    }
    let operator = app.lock_events("EXCLUSIVE").await;
    let started = Instant::now();
    let requests = ids.iter().map(|id| {
        let app = &app;
        let boss = boss.clone();
        async move {
            let reply = app
                .http
                .put(format!("{}/manager/{id}/", app.address))
                .header("Authorization", format!("JWT {boss}"))
                .json(&json!({"result": "ok", "permission": true}))
                .send()
                .await
                .unwrap();
            let id = reply.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_string();
            (reply.status().as_u16(), id)
        }
    });
    let release = async {
        tokio::time::sleep(Duration::from_millis(4_500).saturating_sub(started.elapsed())).await;
        operator.rollback().await.unwrap();
    };
    let (answers, ()) = tokio::join!(futures::future::join_all(requests), release);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let committed: Vec<String> = sqlx::query_scalar(
        "SELECT metadata->>'request_id' FROM events WHERE event_type = 'AbsenceProcessed'",
    )
    .fetch_all(&app.app.rt.pool)
    .await
    .unwrap();
    for (status, id) in &answers {
        if (200..300).contains(status) {
            assert!(
                committed.contains(id),
                "{id} answered {status}, not committed"
            );
        } else {
            assert!(!committed.contains(id), "{id} answered {status}, committed");
        }
    }
}

/// Drawing an absence id is a database call too: held up past the statement timeout, it is a
/// 503 (nothing was written), not a 500.
#[tokio::test]
async fn a_held_up_absence_id_is_a_503() {
    let app = spawn_app_with(|c| {
        tight_deadlines(c);
    })
    .await;
    let t = app.with_roster().await;
    let mut operator = app.app.rt.tx_pool.begin().await.unwrap();
    sqlx::query("ALTER SEQUENCE absence_id_seq RESTART WITH 1000")
        .execute(&mut *operator)
        .await
        .unwrap();
    let reply = app.apply(&t.david, "2026-03-12", "全体排练").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    operator.rollback().await.unwrap();
    assert_eq!(
        app.apply(&t.david, "2026-03-12", "全体排练").await.status,
        201
    );
}

/// Clients that make one request per connection and then keep it open and idle cannot hold
/// the slots either: once the slots run short, idle keep-alive connections are closed.
#[tokio::test]
async fn under_pressure_idle_keep_alive_connections_give_their_slots_back() {
    let app = spawn_app_with(|c| {
        c.http.header_timeout = Duration::from_secs(10);
        c.http.max_connections = 10;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..10 {
        let mut stream = TcpStream::connect(host(&app)).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        idle.push(stream);
    }
    let started = Instant::now();
    let reply = get_once(&app, "/nowhere", Duration::from_secs(30), "served").await;
    assert!(reply.starts_with("HTTP/1.1 404"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        started.elapsed()
    );
    drop(idle);
}

/// Shedding idle connections under pressure never drops a request that has arrived: every
/// complete request sent while the slots run short is answered, also while other clients
/// keep connecting (each new connection near the cap sheds the idle ones).
#[tokio::test]
async fn under_pressure_every_complete_request_is_answered() {
    let app = spawn_app_with(|c| c.http.max_connections = 10).await;
    let address = host(&app);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // More clients than slots, each making one request and then keeping its connection open
    // and idle; shed, it connects again at once. So the slots stay full and every new
    // connection sheds the idle ones.
    let churners: Vec<_> = (0..15)
        .map(|_| {
            let address = address.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let Ok(mut stream) = TcpStream::connect(&address).await else {
                        continue;
                    };
                    let mut buf = [0u8; 1024];
                    if stream
                        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                        .await
                        .is_err()
                    {
                        continue;
                    }
                    // Read until the server closes it.
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut dropped = Vec::new();
    for i in 0..60 {
        let mut probe = TcpStream::connect(&address).await.unwrap();
        probe
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), probe.read_to_end(&mut reply)).await;
        if !String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 200") {
            dropped.push(i);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for churner in churners {
        churner.abort();
    }
    assert!(
        dropped.is_empty(),
        "requests dropped without an answer: {dropped:?}"
    );
}
