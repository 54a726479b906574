//! Reads from hot standbys (`ENSEMBLE_READ_DATABASE_URL`) on a real streaming-replication
//! cluster of this machine's PostgreSQL (`scripts/cluster databases`: a primary and standbys by
//! pg_basebackup, on ports of their own): read-your-writes across two server processes with a
//! standby held 400 ms behind (directly and through HAProxy), a paused, a killed and a lagging
//! standby taken out of rotation and back with no read failing, and a rebuild on the primary
//! while the standbys serve.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app_tweaked, FakeSmtp, FakeWechat, TestApp};

/// A primary and its standbys, stopped and deleted on drop.
struct Cluster {
    dir: String,
    port: u16,
    standbys: u16,
    /// Where HAProxy listens (`balance`).
    http_port: u16,
}

impl Cluster {
    fn start(standbys: u16) -> Self {
        let port = free_ports(standbys + 1);
        let cluster = Self {
            dir: format!("/tmp/ensemble-test-cluster-{}-{port}", std::process::id()),
            port,
            standbys,
            http_port: free_ports(1),
        };
        let out = cluster.script(&["databases"]);
        assert!(
            out.status.success(),
            "the cluster did not start: {}",
            text(&out)
        );
        cluster
    }

    fn script(&self, args: &[&str]) -> std::process::Output {
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster"))
            .args(args)
            .env("CLUSTER_DIR", &self.dir)
            .env("CLUSTER_PG_PORT", self.port.to_string())
            .env("CLUSTER_STANDBYS", self.standbys.to_string())
            .env("CLUSTER_HTTP_PORT", self.http_port.to_string())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("scripts/cluster runs")
    }

    fn run(&self, args: &[&str]) {
        let out = self.script(args);
        assert!(out.status.success(), "cluster {args:?}: {}", text(&out));
    }

    fn url(&self, n: u16, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port + n)
    }

    /// The name a server gives standby `n` in its metrics.
    fn name(&self, n: u16, database: &str) -> String {
        format!("127.0.0.1:{}/{database}", self.port + n)
    }

    /// A server on the cluster's primary reading from its standbys; `second`: another process
    /// on the same database.
    async fn server(&self, database: &str, smtp: u16) -> TestApp {
        let urls: Vec<String> = (1..=self.standbys).map(|n| self.url(n, database)).collect();
        spawn_app_tweaked(
            self.url(0, database),
            FakeWechat::start().await,
            smtp,
            Some(Arc::new(move |config: &mut ensemble::Config| {
                config.read_database_urls = urls.clone();
                config.read_max_lag = Duration::from_secs(3);
                config.read_wait = Duration::from_secs(2);
            })),
        )
        .await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.script(&["down"]);
    }
}

/// A cluster of one standby and a server reading from it: the cluster, the server, the
/// standby's name in its metrics, the SMTP fake.
async fn one_standby() -> (Cluster, TestApp, String, FakeSmtp) {
    let cluster = Cluster::start(1);
    let db = database();
    let smtp = FakeSmtp::start(0).await;
    let app = cluster.server(&db, smtp.port).await;
    let standby = cluster.name(1, &db);
    (cluster, app, standby, smtp)
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `n` consecutive free ports.
fn free_ports(n: u16) -> u16 {
    loop {
        let base = 30_000 + (rand_u16() % 3_000) * 10;
        let free = (0..n).all(|k| std::net::TcpListener::bind(("127.0.0.1", base + k)).is_ok());
        if free {
            return base;
        }
    }
}

fn rand_u16() -> u16 {
    (uuid::Uuid::new_v4().as_u128() % 65_536) as u16
}

fn database() -> String {
    format!(
        "ensemble_test_{}_{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A metric of `app` with these labels (None: not there).
async fn metric(app: &TestApp, name: &str, labels: &str) -> Option<f64> {
    let text = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

async fn in_rotation(app: &TestApp, standby: &str) -> bool {
    metric(
        app,
        "ensemble_standby_in_rotation",
        &format!("standby=\"{standby}\""),
    )
    .await
        == Some(1.0)
}

async fn served_by(app: &TestApp, server: &str) -> f64 {
    metric(
        app,
        "ensemble_reads_total",
        &format!("served_by=\"{server}\""),
    )
    .await
    .unwrap_or(0.0)
}

/// A GET with an optional position header: status, body, the answer's position.
async fn read(
    app: &TestApp,
    path: &str,
    token: &str,
    at: Option<&str>,
) -> (u16, Value, Option<String>) {
    let mut request = app
        .http
        .get(format!("{}{path}", app.address))
        .header("Authorization", format!("JWT {token}"));
    if let Some(at) = at {
        request = request.header("X-Ensemble-Position", at);
    }
    let response = request.send().await.expect("server answers");
    let status = response.status().as_u16();
    let position = response
        .headers()
        .get("x-ensemble-position")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, position)
}

/// Change absence `id`'s reason through `base` (a server or the balancer): the answer's
/// position.
async fn change_reason(app: &TestApp, base: &str, id: i64, token: &str, reason: &str) -> String {
    let response = app
        .http
        .put(format!("{base}/absence/{id}/"))
        .header("Authorization", format!("JWT {token}"))
        .json(&json!({ "reason": reason }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
        .headers()
        .get("x-ensemble-position")
        .expect("a command's answer carries its position")
        .to_str()
        .unwrap()
        .to_string()
}

/// Read `path` as `token` again and again until `stop`, each answer 200 (and equal to
/// `expected` when given); the number of reads.
fn reader(
    app: &TestApp,
    path: &'static str,
    token: &str,
    stop: &Arc<AtomicBool>,
    expected: Option<Value>,
) -> tokio::task::JoinHandle<usize> {
    let (http, address, token, stop) = (
        app.http.clone(),
        app.address.clone(),
        token.to_string(),
        stop.clone(),
    );
    tokio::spawn(async move {
        let mut reads = 0;
        while !stop.load(Ordering::SeqCst) {
            let response = http
                .get(format!("{address}{path}"))
                .header("Authorization", format!("JWT {token}"))
                .send()
                .await
                .expect("the server answers");
            assert_eq!(response.status(), 200, "a read failed");
            if let Some(expected) = &expected {
                let body: Value = response.json().await.unwrap();
                assert_eq!(&body, expected, "a read saw other rows");
            }
            reads += 1;
        }
        reads
    })
}

#[tokio::test]
async fn a_client_reads_its_own_writes_across_processes_and_a_lagging_standby() {
    let cluster = Cluster::start(2);
    // Standby 2 applies every commit 400 ms after the primary: reads that do not name a
    // position can be stale there, reads that do must wait for it or go elsewhere.
    cluster.run(&["delay", "2", "400ms"]);
    let db = database();
    let smtp = FakeSmtp::start(0).await;
    let a = cluster.server(&db, smtp.port).await;
    let b = cluster.server(&db, smtp.port).await;
    let (s1, s2) = (cluster.name(1, &db), cluster.name(2, &db));
    for app in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(20), || async {
                in_rotation(app, &s1).await && in_rotation(app, &s2).await
            })
            .await,
            "the standbys never came into rotation"
        );
    }
    let t = a.with_roster().await;
    let id = a.apply_id(&t.david, "2026-04-01", "全体排练").await;
    let mut stale_without_position = 0;
    // (The logins reach the delayed standby too: a refusal there would go to the primary.)
    tokio::time::sleep(Duration::from_millis(800)).await;
    for round in 1..=15 {
        let reason = format!("reason {round}");
        // Written through one process ...
        let position = change_reason(&a, &a.address, id, &t.david, &reason).await;
        // ... read at once through the other, which reads from the standbys.
        let (status, body, answered_at) = read(&b, "/absence/", &t.david, Some(&position)).await;
        assert_eq!(status, 200, "{body} {answered_at:?} {position}");
        assert_eq!(
            body[0]["reason"], reason,
            "read-your-writes broken after position {position}: {body}"
        );
        assert!(
            answered_at.is_some(),
            "a read's answer carries its position"
        );
        // Without a position, the same read may be answered as the lagging standby stands.
        // (Twice: the standbys take turns.)
        for _ in 0..2 {
            let (status, body, _) = read(&b, "/absence/", &t.david, None).await;
            assert_eq!(status, 200, "{body}");
            if body[0]["reason"] != reason {
                stale_without_position += 1;
            }
        }
    }
    // The standbys did answer (the test is about them), and the lag was real.
    assert!(served_by(&b, &s1).await + served_by(&b, &s2).await >= 15.0);
    assert!(
        stale_without_position > 0,
        "no read without a position was ever stale: the delayed standby did not lag"
    );
    // The same through HAProxy in front of both processes (round robin: each read is
    // likely answered by the other process than the write).
    let servers: Vec<String> = [&a, &b]
        .iter()
        .map(|s| s.address.trim_start_matches("http://").to_string())
        .collect();
    let mut args = vec!["balance"];
    args.extend(servers.iter().map(String::as_str));
    cluster.run(&args);
    let balancer = format!("http://127.0.0.1:{}", cluster.http_port);
    let id = a.apply_id(&t.wendy, "2026-04-01", "全体排练").await;
    for round in 1..=8 {
        let reason = format!("through the balancer {round}");
        let position = change_reason(&a, &balancer, id, &t.wendy, &reason).await;
        let response = a
            .http
            .get(format!("{balancer}/absence/"))
            .header("Authorization", format!("JWT {}", t.wendy))
            .header("X-Ensemble-Position", &position)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body[0]["reason"], reason,
            "stale through the balancer: {body}"
        );
    }
    // An erasure reaches what the standbys serve before it returns, without any position:
    // the erased member's token is refused, their name and reason are gone (the standby held
    // 400 ms behind is waited for by the erasure itself).
    assert_eq!(
        a.post(
            "/absence/",
            Some(&t.percy),
            json!({"reason": "Percy's private reason", "time_absence": "2026-04-20", "type": "弦乐分排"})
        )
        .await
        .status,
        201
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, before, _) = read(&b, "/manager/future/", &t.alice, None).await;
    assert!(before.to_string().contains("Percy's private reason"));
    let out = crate::cli::ensemble(&a.database_url, &["roster", "forget", "Percy"]).await;
    assert!(out.status.success(), "{}", crate::cli::stderr(&out));
    for _ in 0..6 {
        let (status, _, _) = read(&b, "/absence/", &t.percy, None).await;
        assert_eq!(status, 401, "an erased member's token still reads");
        let (status, body, _) = read(&b, "/manager/future/", &t.alice, None).await;
        assert_eq!(status, 200);
        let text = body.to_string();
        assert!(
            !text.contains("Percy"),
            "a standby served an erased name: {text}"
        );
    }
    // Bad positions are the client's mistake, in its service's shape.
    let (status, body, _) = read(&b, "/absence/", &t.david, Some("yesterday")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["msg"]
        .as_str()
        .unwrap()
        .contains("x-ensemble-position"));
    // A position past anything committed is answered by the primary after the wait.
    let started = std::time::Instant::now();
    let (status, _, _) = read(&b, "/absence/", &t.david, Some("999999999.999999999")).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_paused_or_killed_standby_leaves_rotation_and_comes_back_with_no_read_failing() {
    let (cluster, app, standby, _smtp) = one_standby().await;
    let t = app.with_roster().await;
    assert!(eventually(Duration::from_secs(20), || in_rotation(&app, &standby)).await);
    // Readers all along: every read must succeed, whatever happens to the standby.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| reader(&app, "/manager/next/", &t.alice, &stop, None))
        .collect();

    // Paused: out of rotation; the primary answers, also with the newest writes.
    cluster.run(&["pause", "1"]);
    assert!(
        eventually(Duration::from_secs(10), || async {
            !in_rotation(&app, &standby).await
        })
        .await,
        "a paused standby stayed in rotation"
    );
    let before = served_by(&app, &standby).await;
    assert_eq!(
        app.apply(&t.david, "2026-04-02", "全体排练").await.status,
        201
    );
    let (_, body, _) = read(&app, "/absence/", &t.david, None).await;
    assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        served_by(&app, &standby).await,
        before,
        "a paused standby served"
    );
    cluster.run(&["resume", "1"]);
    assert!(
        eventually(Duration::from_secs(10), || in_rotation(&app, &standby)).await,
        "a resumed standby did not come back"
    );

    // Killed: out; started again: back, by itself.
    cluster.run(&["stop", "1"]);
    assert!(
        eventually(Duration::from_secs(10), || async {
            !in_rotation(&app, &standby).await
        })
        .await
    );
    assert_eq!(
        app.apply(&t.david, "2026-04-03", "全体排练").await.status,
        201
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.run(&["start", "1"]);
    assert!(
        eventually(Duration::from_secs(20), || in_rotation(&app, &standby)).await,
        "a restarted standby did not come back"
    );
    let after = served_by(&app, &standby).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            served_by(&app, &standby).await > after
        })
        .await,
        "the standby serves again"
    );
    let (_, body, _) = read(&app, "/absence/", &t.david, None).await;
    assert_eq!(body.as_array().unwrap().len(), 2, "{body}");

    // Lagging past ENSEMBLE_READ_MAX_LAG (3 s here) while writes go on: out; caught up: back.
    cluster.run(&["delay", "1", "5s"]);
    let id = app.apply_id(&t.wendy, "2026-04-04", "全体排练").await;
    let mut out = false;
    for round in 0..16 {
        let reason = format!("lagging {round}");
        assert_eq!(
            app.change(&t.wendy, id, json!({ "reason": reason }))
                .await
                .status,
            200
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !in_rotation(&app, &standby).await {
            out = true;
            break;
        }
    }
    assert!(out, "a standby 5 s behind stayed in rotation");
    cluster.run(&["delay", "1", "0"]);
    assert!(
        eventually(Duration::from_secs(20), || in_rotation(&app, &standby)).await,
        "a standby that caught up did not come back"
    );

    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for reader in readers {
        total += reader.await.expect("no read failed");
    }
    assert!(total > 50, "{total} reads");
}

#[tokio::test]
async fn a_rebuild_on_the_primary_while_standbys_serve() {
    let (_cluster, app, standby, _smtp) = one_standby().await;
    let t = app.with_roster().await;
    // Each member's whole quota (3, 2, 1).
    let members = [&t.david, &t.david, &t.david, &t.wendy, &t.wendy, &t.percy];
    for (day, token) in members.into_iter().enumerate() {
        let date = format!("2026-05-{:02}", day + 1);
        assert_eq!(app.apply(token, &date, "全体排练").await.status, 201);
    }
    assert!(eventually(Duration::from_secs(20), || in_rotation(&app, &standby)).await);
    let (_, future_before, at) = read(&app, "/manager/future/", &t.alice, None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = reader(
        &app,
        "/manager/future/",
        &t.alice,
        &stop,
        Some(future_before.clone()),
    );
    let rebuildable = app.rebuildable();
    runtime::runner::rebuild(&app.app.rt.tx_pool, &rebuildable, &|_, _| {})
        .await
        .expect("the rebuild succeeds");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    assert!(reader.await.expect("no read failed") > 5);
    // The standby serves the rebuilt read models, with the same rows.
    let served = served_by(&app, &standby).await;
    let (status, after, _) = read(&app, "/manager/future/", &t.alice, at.as_deref()).await;
    assert_eq!(status, 200);
    assert_eq!(after, future_before);
    assert!(
        served_by(&app, &standby).await > served,
        "the standby answered"
    );
}
