//! What operators and monitoring see: health, readiness, metrics.

use std::time::Duration;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn health_and_readiness_answer_and_readiness_reports_a_lagging_read_model() {
    let app = spawn_app_with(|c| {
        c.ready_max_lag = 0;
        c.waits.projection = Duration::from_millis(100);
    })
    .await;
    let t = app.with_roster().await;
    let health = app
        .http
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // Read models held back (a transaction holding a checkpoint row holds the horizon) with
    // an event waiting: not ready, and it says which read model is behind.
    let mut blocker = app.app.pool.begin().await.unwrap();
    sqlx::query(
        "SELECT 1 FROM projection_checkpoints WHERE name = 'orchestra_absences' FOR UPDATE",
    )
    .execute(&mut *blocker)
    .await
    .unwrap();
    assert_eq!(
        app.apply(&t.david, "2026-03-12", "全体排练").await.status,
        201
    );
    let reason = || async {
        let ready = app
            .http
            .get(format!("{}/readyz", app.address))
            .send()
            .await
            .unwrap();
        let status = ready.status();
        let body: serde_json::Value = ready.json().await.unwrap();
        (
            status,
            body["reason"].as_str().unwrap_or_default().to_string(),
        )
    };
    assert!(
        crate::helpers::eventually(Duration::from_secs(5), || async {
            let (status, reason) = reason().await;
            status == 503 && reason.contains("events behind the log")
        })
        .await,
        "{:?}",
        reason().await
    );
    blocker.rollback().await.unwrap();
    assert!(
        crate::helpers::eventually(Duration::from_secs(5), || async {
            app.http
                .get(format!("{}/readyz", app.address))
                .send()
                .await
                .unwrap()
                .status()
                == 200
        })
        .await
    );
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
    let text = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let has = |needle: &str| {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    };
    // By route template, never by raw path.
    has("ensemble_http_requests_total{route=\"/manager/{key}\",method=\"PUT\",status=\"200\"}");
    has("ensemble_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}");
    assert!(!text.contains(&format!("/manager/{id}\"")), "{text}");
    has("ensemble_http_request_duration_seconds_bucket{route=\"/absence\",le=\"+Inf\"}");
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
    let mut operator = app.app.tx_pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *operator)
        .await
        .unwrap();
    let probes = futures::future::join_all((0..10).map(|i| {
        let app = &app;
        async move {
            let path = if i % 2 == 0 { "readyz" } else { "metrics" };
            let started = std::time::Instant::now();
            let status = app
                .http
                .get(format!("{}/{path}", app.address))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
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
        assert!(took < Duration::from_secs(5), "/{path} took {took:?}");
        if path == "readyz" {
            assert_eq!(status, 503);
        }
    }
}

/// A burst of probes on a locked table leaves the probes' own pool whole: once the lock is
/// gone, readiness is back.
#[tokio::test]
async fn probes_recover_after_a_locked_table_and_a_burst() {
    let app = spawn_app().await;
    let mut operator = app.app.tx_pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *operator)
        .await
        .unwrap();
    let burst = futures::future::join_all((0..30).map(|_| {
        let app = &app;
        async move {
            let started = std::time::Instant::now();
            let status = app
                .http
                .get(format!("{}/readyz", app.address))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            (status, started.elapsed())
        }
    }))
    .await;
    for (status, took) in burst {
        assert_eq!(status, 503);
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }
    operator.rollback().await.unwrap();
    assert!(
        crate::helpers::eventually(Duration::from_secs(5), || async {
            app.http
                .get(format!("{}/readyz", app.address))
                .send()
                .await
                .unwrap()
                .status()
                == 200
        })
        .await,
        "readiness did not come back"
    );
}
