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
async fn a_mail_the_smtp_server_took_while_the_database_was_away_is_not_sent_again() {
    // Statements give up after 300 ms; a claim holds its rows for 2 x 1 s + 5 s.
    let app = crate::helpers::spawn_app_with(|c| {
        c.smtp_timeout = Duration::from_secs(1);
        c.waits.turn = Duration::from_millis(300);
    })
    .await;
    let t = app.with_roster().await;
    notify(&app, "boss@orchestra.org").await;
    let smtp = app.smtp.as_ref().unwrap();
    smtp.set_mode(crate::helpers::SmtpMode::AcceptAfter(
        Duration::from_millis(400),
    ));
    assert_eq!(
        app.apply(&t.david, "2026-03-12", "全体排练").await.status,
        201
    );
    assert!(eventually(Duration::from_secs(10), || async { smtp.count() == 1 }).await);
    // The SMTP server has the message; before the mailer can record it, the outbox is out of
    // reach for longer than a statement may wait (as during a PostgreSQL restart).
    let mut lock = app.app.rt.tx_pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE mail_outbox IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    lock.commit().await.unwrap();
    smtp.set_mode(crate::helpers::SmtpMode::Accept);
    // Recorded once the outbox is back: past the claim's lease, nothing is sent again.
    assert!(app.delivered(smtp, 1, 1).await);
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(smtp.count(), 1, "sent again after its lease ran out");
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
