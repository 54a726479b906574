//! Background consumers of the log: projections catch-up (for events committed by other
//! processes or left behind by a crash) and mail delivery.

use std::sync::Arc;

use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::mailer::Mailer;
use crate::App;

/// Start the background tasks; abort the handles to stop them.
pub fn spawn(app: Arc<App>) -> Vec<JoinHandle<()>> {
    let wake_mailer = Arc::new(Notify::new());
    let mut tasks = vec![tokio::spawn(follow_log(app.clone(), wake_mailer.clone()))];
    match (&app.config.smtp_url, app.config.mail_from.parse()) {
        (Some(url), Ok(from)) => match crate::mailer::transport(url) {
            Ok(transport) => {
                let mailer = Mailer::new(
                    app.pool.clone(),
                    transport,
                    from,
                    app.config.mail_retry_base,
                    app.config.mail_retry_max,
                );
                tasks.push(tokio::spawn(deliver_mail(app, mailer, wake_mailer)));
            }
            Err(e) => tracing::error!("mail disabled: ENSEMBLE_SMTP_URL: {e}"),
        },
        _ => {
            tracing::warn!("ENSEMBLE_SMTP_URL is not set: notification mail is queued but not sent")
        }
    }
    tasks
}

async fn follow_log(app: Arc<App>, wake_mailer: Arc<Notify>) {
    let mut listener = match PgListener::connect_with(&app.pool).await {
        Ok(mut l) => match l.listen("ensemble_events").await {
            Ok(()) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN failed; polling only");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "LISTEN connection failed; polling only");
            None
        }
    };
    loop {
        match app.catch_up().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(events = n, "read models caught up"),
            Err(e) => tracing::error!(error = %e, "read models could not catch up"),
        }
        wake_mailer.notify_one();
        let poll = app.config.poll_interval;
        match listener.as_mut() {
            Some(l) => {
                tokio::select! {
                    r = l.recv() => if let Err(e) = r {
                        tracing::warn!(error = %e, "LISTEN connection lost; it reconnects");
                        tokio::time::sleep(poll).await;
                    },
                    _ = tokio::time::sleep(poll) => {}
                }
            }
            None => tokio::time::sleep(poll).await,
        }
    }
}

async fn deliver_mail(app: Arc<App>, mailer: Mailer, wake: Arc<Notify>) {
    loop {
        if let Err(e) = mailer.deliver_due().await {
            tracing::error!(error = %e, "mail outbox unavailable");
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(app.config.poll_interval) => {}
        }
    }
}
