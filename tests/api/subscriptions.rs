//! Subscriptions: outside systems following the log (`ensemble subscriptions`,
//! `GET /subscriptions/<name>/events` as JSON and as Server-Sent Events, `POST .../ack`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::{ensemble, stderr, stdout};
use crate::helpers::{spawn_app, TestApp};

async fn create(app: &TestApp, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["subscriptions", "create", name];
    args.extend_from_slice(extra);
    let out = ensemble(&app.database_url, &args).await;
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().last().unwrap().trim().to_string()
}

fn get(app: &TestApp, name: &str, token: &str, query: &str) -> reqwest::RequestBuilder {
    app.http
        .get(format!(
            "{}/subscriptions/{name}/events{query}",
            app.address
        ))
        .header("Authorization", format!("Bearer {token}"))
}

/// A batch, once no other reader holds the subscription (a stream whose client hung up gives
/// its lease back when the server notices: at its next write, a keep-alive at the latest).
async fn batch(app: &TestApp, name: &str, token: &str, query: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let reply = get(app, name, token, query).send().await.unwrap();
        if reply.status() == 409 && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(reply.status(), 200);
        return reply.json().await.unwrap();
    }
}

/// The positions of `aggregate_type`'s events in log order.
async fn expected(app: &TestApp, aggregate_type: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT position FROM events WHERE aggregate_type = $1 ORDER BY transaction_id, position",
    )
    .bind(aggregate_type)
    .fetch_all(&app.app.rt.pool)
    .await
    .unwrap()
}

/// The positions of every event in log order.
async fn whole_log(app: &TestApp) -> Vec<i64> {
    sqlx::query_scalar("SELECT position FROM events ORDER BY transaction_id, position")
        .fetch_all(&app.app.rt.pool)
        .await
        .unwrap()
}

/// A Server-Sent Events connection, read frame by frame.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(app: &TestApp, name: &str, token: &str, query: &str) -> Result<Self, u16> {
        let response = get(app, name, token, query)
            .header("Accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        if response.status() != 200 {
            return Err(response.status().as_u16());
        }
        Ok(Self {
            response,
            buffer: String::new(),
        })
    }

    /// The next event: (id, type, data), skipping keep-alive comments.
    async fn next(&mut self) -> (i64, String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}:")))
                        .map(|v| v.trim().to_string())
                };
                match (field("id"), field("event"), field("data")) {
                    (Some(id), Some(kind), Some(data)) => {
                        return (
                            id.parse().unwrap(),
                            kind,
                            serde_json::from_str(&data).unwrap(),
                        )
                    }
                    // The stream's last word (why it ends): no id.
                    (None, Some(kind), Some(data)) => return (-1, kind, Value::String(data)),
                    _ => continue,
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.response.chunk())
                .await
                .expect("an event within 20 s")
                .unwrap()
                .expect("the stream goes on");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test]
async fn a_subscription_follows_the_log_in_order_and_resumes_where_it_stopped() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    for date in ["2026-03-12", "2026-03-13", "2026-03-14"] {
        app.apply_id(&t.david, date, "全体排练").await;
    }
    let token = create(&app, "absences-feed", &["--types", "MemberAbsences"]).await;
    // Only with its own token.
    for (name, token) in [
        ("absences-feed", "ens_sub_nope"),
        ("nobody", token.as_str()),
    ] {
        let reply = get(&app, name, token, "").send().await.unwrap();
        assert_eq!(reply.status(), 401, "{name}");
    }
    let bare = app
        .http
        .get(format!(
            "{}/subscriptions/absences-feed/events",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 401);
    // A batch: its record types only, in log order, personal values sealed.
    let all = batch(&app, "absences-feed", &token, "?limit=1000").await;
    let positions: Vec<i64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    let absences = expected(&app, "MemberAbsences").await;
    assert_eq!(positions, absences);
    assert_eq!(all["events"][0]["event_type"], "AbsenceApplied");
    assert!(!all.to_string().contains("exam"), "a reason in clear");
    assert!(all["next"].as_i64().unwrap() >= *absences.last().unwrap());
    // Granted personal data, a subscription reads the reasons.
    let open = create(
        &app,
        "open-feed",
        &["--types", "MemberAbsences,Roster", "--personal"],
    )
    .await;
    let opened = batch(&app, "open-feed", &open, "?limit=1000").await;
    assert!(opened.to_string().contains("exam"));
    assert!(opened.to_string().contains("MemberEnrolled"));
    // Paged by `next`: the same events, none twice.
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = batch(
            &app,
            "absences-feed",
            &token,
            &format!("?limit=2&after={after}"),
        )
        .await;
        let next = page["next"].as_i64().unwrap();
        paged.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["position"].as_i64().unwrap()),
        );
        if next == after {
            break;
        }
        after = next;
    }
    assert_eq!(paged, absences);

    // A stream: two events, then the client hangs up having acknowledged the second.
    let mut stream = Stream::open(&app, "absences-feed", &token, "")
        .await
        .unwrap();
    let (first, kind, data) = stream.next().await;
    assert_eq!((first, kind.as_str()), (absences[0], "AbsenceApplied"));
    assert_eq!(data["position"], absences[0]);
    let (second, _, _) = stream.next().await;
    assert_eq!(second, absences[1]);
    // One reader at a time: another stream is refused while this one reads.
    assert_eq!(
        Stream::open(&app, "absences-feed", &token, "").await.err(),
        Some(409)
    );
    drop(stream);
    let acked = app
        .http
        .post(format!("{}/subscriptions/absences-feed/ack", app.address))
        .header("Authorization", format!("Bearer {token}"))
        .json(&json!({ "position": second }))
        .send()
        .await
        .unwrap();
    assert_eq!(acked.status(), 200);
    // An acknowledgement never moves back.
    let back = app
        .http
        .post(format!("{}/subscriptions/absences-feed/ack", app.address))
        .header("Authorization", format!("Bearer {token}"))
        .json(&json!({ "position": first }))
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 200);
    // Meanwhile, more happens.
    let fourth = app.apply_id(&t.wendy, "2026-03-15", "全体排练").await;
    assert_eq!(app.process(fourth, &t.alice, "ok", true).await.status, 200);
    let absences = expected(&app, "MemberAbsences").await;
    // The next reader (the first one's lease went back when it hung up) starts after the
    // acknowledged event: everything else, in order, nothing skipped, the new events live.
    let started = std::time::Instant::now();
    let resumed = loop {
        match Stream::open(&app, "absences-feed", &token, "").await {
            Ok(stream) => break stream,
            Err(409) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(status) => panic!("the next reader was refused: {status}"),
        }
    };
    let mut resumed = resumed;
    let mut seen = vec![first, second];
    while seen.len() < absences.len() {
        seen.push(resumed.next().await.0);
    }
    assert_eq!(seen, absences);
    // And what commits now arrives on the open stream.
    let fifth = app.apply_id(&t.percy, "2026-03-16", "全体排练").await;
    let (live, kind, data) = resumed.next().await;
    assert_eq!(kind, "AbsenceApplied");
    assert_eq!(data["payload"]["AbsenceApplied"]["absence_id"], fifth);
    assert!(live > *absences.last().unwrap());
    drop(resumed);
    // A long-poll at the head waits for the next event.
    let head = batch(&app, "absences-feed", &token, &format!("?after={live}")).await;
    assert_eq!(head["events"], json!([]));
    let waiting = tokio::spawn({
        let request = get(
            &app,
            "absences-feed",
            &token,
            &format!("?after={live}&wait=20"),
        );
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.apply_id(&t.wendy, "2026-03-17", "全体排练").await;
    let woke = waiting.await.unwrap();
    assert_eq!(woke["events"][0]["event_type"], "AbsenceApplied");
    // Bad questions are 400s; the operator's list shows where it stands.
    for query in [
        "?limit=0",
        "?limit=x",
        "?after=-1",
        "?wait=31",
        "?reader=a%20b",
    ] {
        let reply = get(&app, "absences-feed", &token, query)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 400, "{query}");
    }
    let listed = ensemble(&app.database_url, &["subscriptions", "list"]).await;
    let listed = stdout(&listed);
    assert!(
        listed.contains("absences-feed") && listed.contains(&second.to_string()),
        "{listed}"
    );
    // Deleted: its token stops working.
    let out = ensemble(
        &app.database_url,
        &["subscriptions", "delete", "absences-feed"],
    )
    .await;
    assert!(out.status.success());
    assert_eq!(
        get(&app, "absences-feed", &token, "")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn an_erased_persons_data_never_leaves_through_a_subscription() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let open = create(&app, "open-feed", &["--types", "*", "--personal"]).await;
    let sealed = create(&app, "sealed-feed", &["--types", "*"]).await;
    let before = batch(&app, "open-feed", &open, "?limit=1000")
        .await
        .to_string();
    assert!(before.contains("David") && before.contains("exam"));
    let out = ensemble(&app.database_url, &["roster", "forget", "David"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    for (name, token) in [("open-feed", &open), ("sealed-feed", &sealed)] {
        let text = batch(&app, name, token, "?limit=1000").await.to_string();
        assert!(
            !text.contains("David") && !text.contains("exam"),
            "{name}: {text}"
        );
    }
    let after = batch(&app, "open-feed", &open, "?limit=1000")
        .await
        .to_string();
    assert!(after.contains("(erased)") && after.contains("MemberForgotten"));
    // A name that is not a subscription's, or a token for another one, reads nothing.
    let crossed = get(&app, "sealed-feed", &open, "").send().await.unwrap();
    assert_eq!(crossed.status(), 401);
}

#[tokio::test]
async fn a_stream_ends_when_its_subscription_is_deleted_or_the_server_stops_and_readers_take_turns()
{
    let mut app = spawn_app().await;
    let t = app.with_roster().await;
    app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let token = create(&app, "feed", &["--types", "*", "--personal"]).await;
    // Deleted, then created anew under the same name: the old stream ends, and reads nothing
    // of what the new subscription may read.
    let mut stream = Stream::open(&app, "feed", &token, "").await.unwrap();
    let (first, _, _) = stream.next().await;
    assert!(first > 0);
    let out = ensemble(&app.database_url, &["subscriptions", "delete", "feed"]).await;
    assert!(out.status.success());
    let renewed = create(&app, "feed", &["--types", "Feedback"]).await;
    crate::platform::wx_login(&app, "SecretNick").await;
    loop {
        let (_, kind, data) = stream.next().await;
        assert_ne!(kind, "UserRegistered", "{data}");
        assert!(!data.to_string().contains("SecretNick"));
        if kind == "lease-lost" {
            break;
        }
    }
    // The new subscription's reader is not kept out by the old stream.
    let fresh = batch(&app, "feed", &renewed, "?limit=1000").await;
    assert!(fresh["events"].as_array().unwrap().is_empty(), "{fresh}");
    // Anonymous JSON readers are readers of their own: one at a time, and the next one finds
    // the subscription free as soon as an answer has come.
    let waiting = tokio::spawn({
        let request = get(
            &app,
            "feed",
            &renewed,
            &format!("?after={}&wait=3", fresh["next"]),
        );
        async move { request.send().await.unwrap().status().as_u16() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = get(&app, "feed", &renewed, "").send().await.unwrap();
    assert_eq!(second.status(), 409);
    assert_eq!(waiting.await.unwrap(), 200);
    let mut stream = Stream::open(&app, "feed", &renewed, "").await.unwrap();
    // The server stops: the stream says so and ends, and the lease is free at once.
    let stopping = tokio::spawn(async move {
        let (_, kind, _) = stream.next().await;
        kind
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let database = app.database_url.clone();
    app.stop().await;
    assert_eq!(stopping.await.unwrap(), "server-stopping");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let pool = sqlx::PgPool::connect(&database).await.unwrap();
    let reader: Option<String> = sqlx::query_scalar("SELECT reader FROM subscriptions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(reader, None);
    pool.close().await;
}

/// A webhook receiver on a real local socket: it refuses the first `refuse` requests (or all,
/// with `u32::MAX`) with 503, keeps what it accepted, and notes how many requests were in
/// flight at once.
#[derive(Clone, Default)]
struct Receiver {
    inner: std::sync::Arc<std::sync::Mutex<Received>>,
}

#[derive(Default)]
struct Received {
    refuse: u32,
    /// The attempt (1, 2, ...) that hangs for 6 s before it is refused.
    hang: Option<u32>,
    attempts: u32,
    in_flight: u32,
    most_in_flight: u32,
    /// (signature header, body) of each accepted batch.
    accepted: Vec<(String, String)>,
}

impl Receiver {
    async fn start(refuse: u32) -> (Self, String) {
        use axum::http::{HeaderMap, StatusCode};
        let receiver = Self::default();
        receiver.inner.lock().unwrap().refuse = refuse;
        let state = receiver.clone();
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let hangs = {
                        let mut r = state.inner.lock().unwrap();
                        r.attempts += 1;
                        r.in_flight += 1;
                        r.most_in_flight = r.most_in_flight.max(r.in_flight);
                        r.hang == Some(r.attempts)
                    };
                    if hangs {
                        tokio::time::sleep(Duration::from_secs(6)).await;
                        state.inner.lock().unwrap().in_flight -= 1;
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    // Long enough for a second delivery to overlap, were there one.
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    let mut r = state.inner.lock().unwrap();
                    r.in_flight -= 1;
                    if r.refuse > 0 {
                        if r.refuse != u32::MAX {
                            r.refuse -= 1;
                        }
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let signature = headers
                        .get("x-ensemble-signature")
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default();
                    r.accepted.push((signature, body));
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (receiver, url)
    }

    /// Whether the accepted batches come to exactly `wanted`, in order, within 20 s.
    async fn gets(&self, wanted: &[i64]) -> bool {
        crate::helpers::eventually(Duration::from_secs(20), || async {
            self.positions() == wanted
        })
        .await
    }

    /// The positions of the accepted batches' events, in the order they came.
    fn positions(&self) -> Vec<i64> {
        self.inner
            .lock()
            .unwrap()
            .accepted
            .iter()
            .flat_map(|(_, body)| {
                let body: Value = serde_json::from_str(body).unwrap();
                body["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["position"].as_i64().unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

async fn webhook_servers() -> (TestApp, TestApp) {
    let fast = |config: &mut ensemble::Config| {
        config.webhook_retry_base = Duration::from_millis(50);
        config.webhook_retry_max = Duration::from_millis(200);
        config.webhook_max_attempts = 3;
    };
    let first = crate::helpers::spawn_app_with(fast).await;
    let second = crate::helpers::spawn_app_tweaked(
        first.database_url.clone(),
        crate::helpers::FakeWechat::start().await,
        first.smtp_port,
        Some(std::sync::Arc::new(fast)),
    )
    .await;
    (first, second)
}

async fn set_webhook(app: &TestApp, name: &str, url: &str) -> String {
    let out = ensemble(&app.database_url, &["subscriptions", "webhook", name, url]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().last().unwrap().trim().to_string()
}

async fn listed(app: &TestApp, name: &str) -> String {
    let out = ensemble(&app.database_url, &["subscriptions", "list"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_webhook_gets_every_event_once_in_order_signed_and_one_batch_at_a_time() {
    let (a, b) = webhook_servers().await;
    let t = a.with_roster().await;
    create(&a, "archive", &["--types", "MemberAbsences"]).await;
    // The first two deliveries are refused: retried, with backoff.
    let (receiver, url) = Receiver::start(2).await;
    let secret = set_webhook(&a, "archive", &url).await;
    assert!(secret.starts_with("ens_whsec_"), "{secret}");
    // Writes through both processes (both deliver: one at a time).
    for (i, date) in ["2026-04-01", "2026-04-02", "2026-04-03"]
        .iter()
        .enumerate()
    {
        let server = if i % 2 == 0 { &a } else { &b };
        let id = server.apply_id(&t.david, date, "全体排练").await;
        assert_eq!(server.process(id, &t.alice, "ok", true).await.status, 200);
    }
    let wanted = expected(&a, "MemberAbsences").await;
    assert!(wanted.len() >= 6);
    assert!(
        crate::helpers::eventually(Duration::from_secs(20), || async {
            receiver.positions().len() >= wanted.len()
        })
        .await,
        "not delivered: {:?} of {wanted:?}",
        receiver.positions()
    );
    // Exactly the log, in its order, each event once (nothing was accepted twice).
    assert_eq!(receiver.positions(), wanted);
    let (most_in_flight, attempts, accepted) = {
        let r = receiver.inner.lock().unwrap();
        (r.most_in_flight, r.attempts, r.accepted.clone())
    };
    assert_eq!(most_in_flight, 1, "two batches were in flight at once");
    assert!(
        attempts as usize >= accepted.len() + 2,
        "the refusals were retried"
    );
    // Every batch is signed: HMAC-SHA256 under the secret over "<t>.<body>".
    for (signature, body) in &accepted {
        let t: i64 = signature
            .strip_prefix("t=")
            .and_then(|s| s.split(',').next())
            .and_then(|t| t.parse().ok())
            .expect("t=<unix seconds>");
        assert!((chrono::Utc::now().timestamp() - t).abs() < 120);
        assert_eq!(
            signature,
            &runtime::webhooks::signature(secret.as_bytes(), t, body)
        );
        assert_ne!(
            signature,
            &runtime::webhooks::signature(b"another secret", t, body)
        );
    }
    assert!(
        listed(&a, "archive").await.contains("ok ("),
        "{}",
        listed(&a, "archive").await
    );
}

#[tokio::test]
async fn a_webhook_that_keeps_failing_is_set_aside_loses_nothing_and_is_taken_up_again() {
    let (a, _b) = webhook_servers().await;
    let t = a.with_roster().await;
    create(&a, "office", &["--types", "*"]).await;
    let (receiver, url) = Receiver::start(u32::MAX).await;
    set_webhook(&a, "office", &url).await;
    a.apply_id(&t.david, "2026-04-01", "全体排练").await;
    // Three failures in a row (ENSEMBLE_WEBHOOK_MAX_ATTEMPTS here): dead, and shown so.
    assert!(
        crate::helpers::eventually(Duration::from_secs(20), || async {
            listed(&a, "office").await.contains("DEAD")
        })
        .await,
        "{}",
        listed(&a, "office").await
    );
    let line = listed(&a, "office").await;
    assert!(line.contains("after 3 failures: answered 503"), "{line}");
    let metrics = a
        .http
        .get(format!("{}/metrics", a.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ensemble_webhook_dead{subscription=\"office\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ensemble_subscription_acked_position{subscription=\"office\"} 0"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        receiver.inner.lock().unwrap().attempts,
        3,
        "a dead webhook was tried again"
    );
    // The receiver is fixed; the operator takes it up again: everything arrives.
    receiver.inner.lock().unwrap().refuse = 0;
    let out = ensemble(&a.database_url, &["subscriptions", "retry", "office"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let wanted = whole_log(&a).await;
    assert!(
        receiver.gets(&wanted).await,
        "{:?} != {wanted:?}",
        receiver.positions()
    );
    // Bad input: a URL that is not http(s), a subscription that does not exist.
    let out = ensemble(
        &a.database_url,
        &["subscriptions", "webhook", "office", "ftp://x/"],
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("http(s) URL"), "{}", stderr(&out));
    let out = ensemble(&a.database_url, &["subscriptions", "retry", "nobody"]).await;
    assert!(!out.status.success());
}

#[tokio::test]
async fn a_new_webhook_url_is_not_charged_with_the_old_ones_failure_in_flight() {
    let (a, _b) = webhook_servers().await;
    let t = a.with_roster().await;
    create(&a, "moving", &["--types", "*"]).await;
    // The old receiver refuses twice, then hangs on the third (last allowed) attempt.
    let (old, old_url) = Receiver::start(u32::MAX).await;
    old.inner.lock().unwrap().hang = Some(3);
    set_webhook(&a, "moving", &old_url).await;
    a.apply_id(&t.david, "2026-04-01", "全体排练").await;
    assert!(
        crate::helpers::eventually(Duration::from_secs(20), || async {
            old.inner.lock().unwrap().attempts >= 3
        })
        .await
    );
    // While that attempt hangs, the operator moves the webhook to a receiver that works.
    let (new, new_url) = Receiver::start(0).await;
    set_webhook(&a, "moving", &new_url).await;
    let wanted = whole_log(&a).await;
    assert!(
        new.gets(&wanted).await,
        "the new URL got {:?} of {wanted:?}: {}",
        new.positions(),
        listed(&a, "moving").await
    );
    // Once the old attempt has failed too:
    assert!(
        crate::helpers::eventually(Duration::from_secs(20), || async {
            old.inner.lock().unwrap().in_flight == 0
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let line = listed(&a, "moving").await;
    assert!(
        line.contains("ok ("),
        "the old URL's failure landed on the new one: {line}"
    );
}
