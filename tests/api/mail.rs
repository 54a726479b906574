use std::time::{Duration, Instant};

use aggregates::orchestra::roster::RosterCommand;

use crate::helpers::{eventually, spawn_app, spawn_app_with_smtp_port, FakeSmtp};

async fn notify(app: &crate::helpers::TestApp, email: &str) {
    app.operator(RosterCommand::AddNotifyAddress {
        email: aggregates::orchestra::EmailAddress::parse(email).unwrap(),
    })
    .await;
}

#[tokio::test]
async fn each_new_absence_is_mailed_once_to_every_notification_address() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    notify(&app, "boss@orchestra.org").await;
    notify(&app, "deputy@orchestra.org").await;
    app.apply(&t.david, "2026-03-12", "全体排练").await;
    let smtp = app.smtp.as_ref().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async { smtp.count() == 2 }).await,
        "mails: {}",
        smtp.count()
    );
    let messages = smtp.messages.lock().unwrap().clone();
    assert!(messages
        .iter()
        .any(|m| m.contains("To: boss@orchestra.org")));
    assert!(messages
        .iter()
        .any(|m| m.contains("To: deputy@orchestra.org")));
    assert!(messages[0].contains("David"));
    // Changes and decisions are not mailed; nothing is sent twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.count(), 2);
}

#[tokio::test]
async fn mail_waits_for_smtp_and_is_sent_once_it_is_back_even_across_a_restart() {
    // A port where no SMTP server listens yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app_with_smtp_port(port).await;
    let t = app.with_roster().await;
    notify(&app, "boss@orchestra.org").await;
    let started = Instant::now();
    let reply = app.apply(&t.david, "2026-03-12", "全体排练").await;
    assert_eq!(reply.status, 201);
    // The outage neither failed nor noticeably slowed the request.
    assert!(started.elapsed() < Duration::from_secs(5));
    // Delivery was tried and is scheduled again.
    let pool = app.app.rt.pool.clone();
    let mut tried = false;
    for _ in 0..100 {
        let attempts: i32 =
            sqlx::query_scalar("SELECT coalesce(max(attempts), 0) FROM mail_outbox")
                .fetch_one(&pool)
                .await
                .unwrap();
        if attempts >= 2 {
            tried = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(tried, "delivery was not retried");
    // The server restarts, then SMTP comes back.
    let app = app.restart().await;
    let smtp = FakeSmtp::start(port).await;
    assert!(app.delivered(&smtp, 1, 1).await);
    // Another restart sends nothing again.
    let app = app.restart().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(smtp.count(), 1);
    let unsent = app
        .scalar("SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL")
        .await;
    assert_eq!(unsent, 0);
}
