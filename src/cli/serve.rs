//! `ensemble serve`: the REST API, the workers and the admin listener, until a signal.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::App;

pub(super) async fn serve(app: Arc<App>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(app.rt.config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", app.rt.config.listen))?;
    if app.rt.config.jwt_secret.is_none() {
        tracing::warn!(
            "ENSEMBLE_JWT_SECRET is not set: using a random secret, so every token dies with \
             this process. Set it in production."
        );
    }
    tracing::info!(address = %listener.local_addr()?, "serving");
    let workers = app.spawn_workers();
    let admin = match app.rt.config.admin_listen {
        Some(address) => {
            let admin = TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (ENSEMBLE_ADMIN_LISTEN)"))?;
            tracing::info!(address = %admin.local_addr()?, "serving /metrics, /healthz, /readyz");
            let (router, _) = crate::http::health::routes(true).split_for_parts();
            let router = router.with_state(app.rt.clone());
            Some(tokio::spawn(async move {
                if let Err(e) = axum::serve(admin, router).await {
                    tracing::error!(error = %e, "admin listener failed");
                }
            }))
        }
        None => None,
    };
    crate::api::serve(app.clone(), listener, shutdown_signal()).await?;
    if let Some(admin) = admin {
        admin.abort();
    }
    workers.stop(&app.rt).await;
    tracing::info!("stopped");
    Ok(())
}

/// Start the in-process stand-in for WeChat's code2session (`serve --fake-wechat`) on a
/// loopback port; returns its base URL. Any code `X` is the account `fake-X`; `bad-code` gets
/// WeChat's errcode 40029. Refused unless the server itself listens on loopback only.
pub(super) async fn fake_wechat(config: &crate::Config) -> anyhow::Result<String> {
    if !config.listen.ip().is_loopback() {
        anyhow::bail!(
            "--fake-wechat (ENSEMBLE_FAKE_WECHAT) lets anyone log in as anyone: it is for trying \
             Ensemble on this machine, and refused with ENSEMBLE_LISTEN={} (not a loopback \
             address)",
            config.listen
        );
    }
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tracing::warn!(
        "FAKE WECHAT: logins are not checked with WeChat; login code X logs in as the WeChat \
         account fake-X. For trying Ensemble locally, never for production."
    );
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: hyper::Request<_>| async move {
                    let code = request
                        .uri()
                        .query()
                        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
                        .and_then(|pairs| {
                            pairs
                                .into_iter()
                                .find(|(k, _)| k == "js_code")
                                .map(|(_, v)| v)
                        })
                        .unwrap_or_default();
                    let answer = if code.is_empty() || code == "bad-code" {
                        serde_json::json!({"errcode": 40029, "errmsg": "invalid code"})
                    } else {
                        serde_json::json!({"openid": format!("fake-{code}"), "session_key": "fake"})
                    };
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(axum::body::Body::from(
                        answer.to_string(),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(base)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}
