//! What operators and monitoring see: health, readiness, metrics.

use std::time::Duration;

use crate::helpers::{eventually, spawn_app, spawn_app_with, TestApp};

/// `GET path` (no token): the status and the body's text.
async fn probe(app: &TestApp, path: &str) -> (u16, String) {
    let reply = app.anonymous_get(path).await;
    (reply.status().as_u16(), reply.text().await.unwrap())
}

/// Whether `/readyz` answers 200 again within 5 s.
async fn ready_again(app: &TestApp) -> bool {
    eventually(Duration::from_secs(5), || async {
        probe(app, "/readyz").await.0 == 200
    })
    .await
}

#[tokio::test]
async fn health_and_readiness_answer_and_readiness_reports_a_lagging_read_model() {
    let app = spawn_app_with(|c| {
        c.ready_max_lag = 0;
        c.waits.projection = Duration::from_millis(100);
    })
    .await;
    let t = app.with_roster().await;
    assert_eq!(probe(&app, "/healthz").await.0, 200);
    assert_eq!(probe(&app, "/readyz").await.0, 200);
    // Read models held back (a transaction holding a checkpoint row holds the horizon) with
    // an event waiting: not ready, and it says which read model is behind.
    let blocker = app.hold_absences_read_model().await;
    assert_eq!(
        app.apply(&t.david, "2026-03-12", "全体排练").await.status,
        201
    );
    let reason = || async {
        let (status, body) = probe(&app, "/readyz").await;
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        (
            status,
            body["reason"].as_str().unwrap_or_default().to_string(),
        )
    };
    assert!(
        eventually(Duration::from_secs(5), || async {
            let (status, reason) = reason().await;
            status == 503 && reason.contains("events behind the log")
        })
        .await,
        "{:?}",
        reason().await
    );
    blocker.rollback().await.unwrap();
    assert!(ready_again(&app).await);
}

#[tokio::test]
async fn metrics_count_requests_by_route_commands_by_outcome_and_show_the_read_models() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    assert_eq!(
        app.apply(&t.david, "2026-03-12", "全体排练").await.status,
        400
    );
    assert_eq!(app.process(id, &t.alice, "ok", true).await.status, 200);
    assert_eq!(app.get("/nowhere/at/all", &t.david).await.status, 404);
    // Invented methods are one label value, however many there are.
    for i in 0..5 {
        let method = axum::http::Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
        app.http
            .request(method, format!("{}/absence/", app.address))
            .send()
            .await
            .unwrap();
    }
    let (_, text) = probe(&app, "/metrics").await;
    let has = |needle: &str| {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    };
    // By route template, never by raw path.
    has("ensemble_http_requests_total{route=\"/manager/{key}\",method=\"PUT\",status=\"200\"}");
    has("ensemble_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}");
    assert!(!text.contains(&format!("/manager/{id}\"")), "{text}");
    has("ensemble_http_request_duration_seconds_bucket{le=\"+Inf\",route=\"/absence\"}");
    has("ensemble_commands_total{aggregate=\"MemberAbsences\",outcome=\"committed\"}");
    has("ensemble_commands_total{aggregate=\"MemberAbsences\",outcome=\"rejected\"}");
    has("ensemble_projection_lag_events{projection=\"orchestra_absences\"} 0");
    has("ensemble_projection_position{projection=\"event_chain\"}");
    has("ensemble_mail_outbox_pending ");
    has("ensemble_db_pool_connections{pool=\"statements\",state=\"in_use\"}");
    has("method=\"other\"");
    assert!(!text.contains("BREW"), "{text}");
}

/// Health checks and scrapes wait for the database on connections of their own, briefly: a
/// locked table and a crowd of probes never slow the requests down.
#[tokio::test]
async fn probes_on_a_locked_table_fail_fast_and_leave_requests_alone() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    let operator = app.lock_events("ACCESS EXCLUSIVE").await;
    let probes = futures::future::join_all((0..10).map(|i| {
        let app = &app;
        async move {
            let path = if i % 2 == 0 { "/readyz" } else { "/metrics" };
            let started = std::time::Instant::now();
            let (status, _) = probe(app, path).await;
            (path, status, started.elapsed())
        }
    }));
    let request = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        let reply = app.get("/absence/", &t.david).await;
        (reply.status, started.elapsed())
    };
    let (probes, (status, took)) = tokio::join!(probes, request);
    operator.rollback().await.unwrap();
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(2), "a request waited {took:?}");
    for (path, status, took) in probes {
        assert!(took < Duration::from_secs(5), "{path} took {took:?}");
        if path == "/readyz" {
            assert_eq!(status, 503);
        }
    }
}

/// A burst of probes on a locked table leaves the probes' own pool whole: once the lock is
/// gone, readiness is back.
#[tokio::test]
async fn probes_recover_after_a_locked_table_and_a_burst() {
    let app = spawn_app().await;
    let operator = app.lock_events("ACCESS EXCLUSIVE").await;
    let burst = futures::future::join_all((0..30).map(|_| {
        let app = &app;
        async move {
            let started = std::time::Instant::now();
            let (status, _) = probe(app, "/readyz").await;
            (status, started.elapsed())
        }
    }))
    .await;
    for (status, took) in burst {
        assert_eq!(status, 503);
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }
    operator.rollback().await.unwrap();
    assert!(ready_again(&app).await, "readiness did not come back");
}
