//! `ensemble serve`: the REST API, the workers and the admin listener, until a signal.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::App;

pub(super) async fn serve(app: Arc<App>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(app.config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", app.config.listen))?;
    if app.config.jwt_secret.is_none() {
        tracing::warn!(
            "ENSEMBLE_JWT_SECRET is not set: using a random secret, so every token dies with \
             this process. Set it in production."
        );
    }
    tracing::info!(address = %listener.local_addr()?, "serving");
    let workers = crate::worker::spawn(app.clone());
    let admin = match app.config.admin_listen {
        Some(address) => {
            let admin = TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (ENSEMBLE_ADMIN_LISTEN)"))?;
            tracing::info!(address = %admin.local_addr()?, "serving /metrics, /healthz, /readyz");
            let (router, _) = crate::metrics::routes(true).split_for_parts();
            let router = router.with_state(app.clone());
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
    workers.stop(&app).await;
    tracing::info!("stopped");
    Ok(())
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
