//! The console (`/console/`): what a superuser does in a real browser (headless Chromium), and
//! what nobody else can: sessions, CSRF, escaping, the security headers, the login limits.

use std::time::Duration;

use aggregates::orchestra::roster::RosterCommand;
use serde_json::json;

use crate::browser::Browser;
use crate::helpers::{eventually, spawn_app, SmtpMode, TestApp};

const WAIT: Duration = Duration::from_secs(20);

async fn superuser(app: &TestApp, name: &str, password: &str) -> String {
    ensemble::campus::register(
        &app.app.campus,
        name,
        "boss@campus.edu",
        password,
        &runtime::bus::Actor::operator(),
    )
    .await
    .unwrap()
}

/// A client that does not follow redirects (to see them) and keeps no cookies.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Log in over HTTP; the session cookie (`name=value`).
async fn session(app: &TestApp, name: &str, password: &str) -> String {
    let reply = client()
        .post(format!("{}/console/login", app.address))
        .form(&[("username", name), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 303);
    let cookie = reply.headers()["set-cookie"].to_str().unwrap().to_string();
    cookie.split(';').next().unwrap().to_string()
}

async fn page(app: &TestApp, cookie: Option<&str>, path: &str) -> (u16, String) {
    let mut request = client().get(format!("{}{path}", app.address));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let reply = request.send().await.unwrap();
    (reply.status().as_u16(), reply.text().await.unwrap())
}

/// The CSRF token in a page's forms.
fn csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[at..at + 32].to_string()
}

#[tokio::test]
async fn an_auditor_and_an_operator_work_through_the_console_in_a_browser() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    app.operator(RosterCommand::AddNotifyAddress {
        email: aggregates::orchestra::EmailAddress::parse("boss@orchestra.org").unwrap(),
    })
    .await;
    // The mail of this absence is refused for good: it will wait in the outbox as failed.
    let smtp = app.smtp.as_ref().unwrap();
    smtp.set_mode(SmtpMode::RejectRecipients);
    let id = app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let changed = app
        .change(
            &t.david,
            id,
            json!({"reason": "乐团巡演 tour", "time_absence": "2026-03-12", "type": "全体排练"}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    // The moment the manager looked, before deciding; then the decision.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before_decision = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.process(id, &t.alice, "ok", true).await.status, 200);
    assert!(
        eventually(WAIT, || async {
            app.scalar("SELECT count(*) FROM mail_outbox WHERE failed_at IS NOT NULL")
                .await
                == 1
        })
        .await
    );
    // A campus user whose nickname is markup.
    crate::platform::wx_login(&app, "<script>window.pwned=1</script>").await;
    superuser(&app, "Jessica", "s3cret-pass").await;

    let browser = Browser::start().await;
    // Anyone sees the login form, and nothing else.
    browser
        .goto(&format!("{}/console/history", app.address))
        .await;
    browser.find("form[action='/console/login']").await;
    assert!(browser.all("article.event").await.is_empty());
    // Logging in (at /console, without the slash too).
    browser.goto(&format!("{}/console", app.address)).await;
    browser.shot("login").await;
    let name = browser.find("input[name=username]").await;
    browser.type_into(&name, "Jessica").await;
    let password = browser.find("input[name=password]").await;
    browser.type_into(&password, "s3cret-pass").await;
    browser
        .click_to_page(&browser.find("form[action='/console/login'] button").await)
        .await;
    browser.find("nav a.active[href='/console/history']").await;
    assert!(browser.url().await.ends_with("/console/history"));
    // The session cookie is out of the page's reach.
    assert_eq!(browser.script("return document.cookie").await, json!(""));

    // A nickname `<script>` is text, never run.
    browser.find("article.event").await;
    assert_eq!(
        browser.script("return typeof window.pwned").await,
        json!("undefined")
    );
    assert!(browser
        .text_of("section.events")
        .await
        .contains("<script>window.pwned=1</script>"));

    // History: the absences' records, newest first; the change leads to the record.
    let kind = browser
        .find("select[name=type] option[value=MemberAbsences]")
        .await;
    browser.click(&kind).await;
    browser
        .click_to_page(&browser.find("form.filters button").await)
        .await;
    let changed = browser
        .find("article.event[data-type=AbsenceChanged] a.record")
        .await;
    let types: Vec<String> = serde_json::from_value(
        browser
            .script(
                "return [...document.querySelectorAll('article.event')].map(e => e.dataset.type)",
            )
            .await,
    )
    .unwrap();
    assert_eq!(
        types,
        ["AbsenceProcessed", "AbsenceChanged", "AbsenceApplied"],
        "newest first"
    );
    assert!(browser
        .text_of("article.event[data-type=AbsenceChanged] dd.actor")
        .await
        .contains("David"));
    browser.shot("history").await;
    browser.resize(390, 844).await;
    browser.shot("history-phone").await;
    browser.resize(1280, 1000).await;
    browser.click_to_page(&changed).await;
    // The record's timeline: the diff of the change names the reason, before and after.
    let row = browser
        .find(
            ".step:has(article[data-type=AbsenceChanged]) table.changes tr[data-field$='/reason']",
        )
        .await;
    let text = browser.text(&row).await;
    assert!(
        text.contains("exam") && text.contains("乐团巡演 tour"),
        "{text}"
    );
    let decided = browser
        .text_of(".step:has(article[data-type=AbsenceProcessed]) table.changes")
        .await;
    assert!(decided.contains("ok"), "{decided}");
    browser.shot("record").await;
    // The record as of the moment before the decision: not decided yet.
    let as_of = browser.find("form.filters input[name=as_of]").await;
    browser.type_into(&as_of, &before_decision).await;
    browser
        .click_to_page(&browser.find("form.filters button").await)
        .await;
    let then = browser.text_of("section.asof").await;
    assert!(then.contains("After its first 2 events"), "{then}");

    // What the manager saw before deciding, beside what they see now.
    browser.goto(&format!("{}/console/saw", app.address)).await;
    browser
        .type_into(&browser.find("input[name=path]").await, "/manager/")
        .await;
    browser
        .type_into(&browser.find("input[name=as_of]").await, &before_decision)
        .await;
    browser
        .click_to_page(&browser.find("form.filters button").await)
        .await;
    let then_status = browser.wait_for(".then strong.status", WAIT).await;
    assert_eq!(browser.text(&then_status).await, "200");
    let differences = browser
        .all("section.differences table.changes tbody tr")
        .await;
    assert!(!differences.is_empty());
    assert!(!browser.all(".then pre.json .changed").await.is_empty());
    assert!(!browser.all(".now pre.json .changed").await.is_empty());
    browser.shot("saw").await;

    // Operations: the failed mail, retried once the SMTP server takes it.
    smtp.set_mode(SmtpMode::Accept);
    browser
        .goto(&format!("{}/console/operations", app.address))
        .await;
    browser.find("table.standings td.lag").await;
    assert!(
        browser
            .text_of(".lag-chart .samples")
            .await
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    let retry = browser.find("tr.failed button.retry").await;
    browser.click_to_page(&retry).await;
    browser.find("p.notice").await;
    assert!(eventually(WAIT, || async { smtp.count() == 1 }).await);
    browser.shot("operations").await;
    // A rebuild from the page, followed live to its end.
    browser
        .click_to_page(&browser.find("#run-rebuild").await)
        .await;
    let done = browser
        .wait_for("#rebuild-progress[data-running=false] .outcome", WAIT)
        .await;
    assert!(
        browser.text(&done).await.contains("rebuilt from"),
        "{}",
        browser.text(&done).await
    );

    // Integrity: intact; then a copy of the log tampered with fails at the edited event.
    browser
        .goto(&format!("{}/console/integrity", app.address))
        .await;
    browser
        .click_to_page(&browser.find("#run-verify").await)
        .await;
    let verdict = browser
        .wait_for("#verify-progress[data-running=false] .outcome", WAIT)
        .await;
    assert!(
        browser.text(&verdict).await.starts_with("intact"),
        "{}",
        browser.text(&verdict).await
    );
    let edited = app
        .scalar("SELECT position FROM events WHERE event_type = 'AbsenceApplied'")
        .await;
    app.sql(&format!(
        "UPDATE events SET payload = replace(payload::text, '2026-03-12', '2026-03-19')::json WHERE position = {edited}"
    ))
    .await;
    browser
        .click_to_page(&browser.find("#run-verify").await)
        .await;
    let verdict = browser
        .wait_for("#verify-progress[data-running=false] .outcome.error", WAIT)
        .await;
    assert!(
        browser
            .text(&verdict)
            .await
            .contains(&format!("position {edited}")),
        "{}",
        browser.text(&verdict).await
    );
    browser
        .goto(&format!("{}/console/integrity", app.address))
        .await;
    assert_eq!(browser.text_of(".bad-position").await, edited.to_string());
    browser.shot("integrity").await;

    // Logging out ends the session.
    browser
        .click_to_page(&browser.find("form.logout button").await)
        .await;
    browser.find("form[action='/console/login']").await;
    browser
        .goto(&format!("{}/console/operations", app.address))
        .await;
    browser.find("form[action='/console/login']").await;
    assert!(browser.all("table.standings").await.is_empty());
    browser.quit().await;
}

#[tokio::test]
async fn the_console_is_for_live_superuser_sessions_with_csrf_tokens_only() {
    let app = spawn_app().await;
    let t = app.with_roster().await;
    app.apply_id(&t.david, "2026-03-12", "全体排练").await;
    let jessica = superuser(&app, "Jessica", "s3cret-pass").await;
    let pages = [
        "/console/history",
        "/console/record?type=Roster&id=orchestra",
        "/console/saw?path=/manager/&as_of=2026-03-01",
        "/console/integrity",
        "/console/integrity/progress",
        "/console/operations",
        "/console/operations/progress",
        "/console/operations/lag",
    ];
    // Nobody: the login form (401), no data; a REST token does not open the console.
    let rest = app
        .post(
            "/adminLogIn/",
            None,
            json!({"username": "Jessica", "password": "s3cret-pass"}),
        )
        .await;
    let rest = rest.body["token"].as_str().unwrap().to_string();
    for path in pages {
        for cookie in [
            None,
            Some(format!("ensemble_console={rest}")),
            Some("ensemble_console=x".into()),
        ] {
            let (status, body) = page(&app, cookie.as_deref(), path).await;
            assert_eq!(status, 401, "{path}");
            assert!(body.contains("action=\"/console/login\""), "{path}");
            assert!(
                !body.contains("David") && !body.contains("AbsenceApplied"),
                "{path}"
            );
        }
    }
    let (status, body) = page(&app, None, "/console/").await;
    assert_eq!(status, 200);
    assert!(body.contains("action=\"/console/login\""));

    // A login posted from another site's page is refused.
    let cross = client()
        .post(format!("{}/console/login", app.address))
        .header("origin", "http://evil.example")
        .form(&[("username", "Jessica"), ("password", "s3cret-pass")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert!(cross.headers().get("set-cookie").is_none());
    // A session: the cookie is HttpOnly, SameSite=Strict, on /console, and expires.
    let reply = client()
        .post(format!("{}/console/login", app.address))
        .form(&[("username", "Jessica"), ("password", "s3cret-pass")])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 303);
    let set = reply.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(set.contains(part), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    for path in pages {
        let (status, _) = page(&app, Some(&cookie), path).await;
        assert_eq!(status, 200, "{path}");
    }
    // Its token is the console's alone: the REST API refuses it.
    let token = cookie.trim_start_matches("ensemble_console=");
    assert_eq!(app.get("/audit/events/", token).await.status, 401);
    // Every page: no inline script, nothing from elsewhere, no framing.
    let reply = client()
        .get(format!("{}/console/history", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let csp = reply.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(reply.headers()["x-frame-options"], "DENY");
    assert_eq!(reply.headers()["cache-control"], "no-store");
    let html = reply.text().await.unwrap();
    assert!(!html.contains("<script>") && !html.contains(" style="));
    for (asset, kind) in [
        ("console.css", "text/css"),
        ("console.js", "text/javascript"),
    ] {
        let reply = client()
            .get(format!("{}/console/assets/{asset}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        assert!(reply.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
    }
    assert_eq!(page(&app, None, "/console/assets/secret.txt").await.0, 404);
    // Unknown paths under /console carry the same headers.
    for path in ["/console/nope", "/console//history", "/console/assets/"] {
        let reply = client()
            .get(format!("{}{path}", app.address))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 404, "{path}");
        assert!(
            reply.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'"),
            "{path}"
        );
        assert_eq!(reply.headers()["x-frame-options"], "DENY", "{path}");
    }
    // The notice after a retry names a mail by number, nothing else.
    let (_, ops) = page(&app, Some(&cookie), "/console/operations?retried=%3Cb%3Ehi").await;
    assert!(!ops.contains("queued again"));

    // A state-changing form without this session's CSRF token changes nothing.
    let verify = |token: Option<String>| {
        let mut form = vec![];
        if let Some(token) = token {
            form.push(("csrf", token));
        }
        client()
            .post(format!("{}/console/integrity/verify", app.address))
            .header("cookie", &cookie)
            .form(&form)
            .send()
    };
    assert_eq!(verify(None).await.unwrap().status(), 403);
    assert_eq!(verify(Some("0".repeat(32))).await.unwrap().status(), 403);
    // Another session's token is not this one's.
    let other = session(&app, "Jessica", "s3cret-pass").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let other = if other == cookie {
        session(&app, "Jessica", "s3cret-pass").await
    } else {
        other
    };
    let (_, theirs) = page(&app, Some(&other), "/console/integrity").await;
    let (_, mine) = page(&app, Some(&cookie), "/console/integrity").await;
    assert_ne!(csrf(&theirs), csrf(&mine));
    assert_eq!(verify(Some(csrf(&theirs))).await.unwrap().status(), 403);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.scalar("SELECT count(*) FROM chain_verifications").await,
        0
    );
    let started = verify(Some(csrf(&mine))).await.unwrap();
    assert_eq!(started.status(), 303);
    assert!(
        eventually(WAIT, || async {
            app.scalar("SELECT count(*) FROM chain_verifications WHERE intact")
                .await
                == 1
        })
        .await
    );
    // A retry of a mail that is not failed, and a rebuild of no such projection: refused.
    let post = |path: &'static str, form: Vec<(&'static str, String)>| {
        client()
            .post(format!("{}{path}", app.address))
            .header("cookie", &cookie)
            .form(&form)
            .send()
    };
    let token = csrf(&mine);
    for (path, field, value) in [
        ("/console/mail/retry", "id", "1"),
        ("/console/mail/retry", "id", "x"),
        ("/console/operations/rebuild", "projection", "events"),
    ] {
        let form = vec![("csrf", token.clone()), (field, value.to_string())];
        let status = post(path, form).await.unwrap().status();
        assert_eq!(status, 400, "{path} {field}={value}");
    }
    // Bad filters are a 400 with the reason, never a 500.
    for path in [
        "/console/history?from=yesterday",
        "/console/history?before=x",
        "/console/record?type=Nothing&id=1",
        "/console/record?type=Roster&id=orchestra&page=99",
        "/console/saw?path=/console/history&as_of=2026-03-01",
        "/console/saw?path=/manager/&as_of=never",
        "/console/history?type=%00",
    ] {
        let (status, body) = page(&app, Some(&cookie), path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("role=\"alert\""), "{path}");
    }
    // An erased member's events name them `(erased)`.
    let (_, before) = page(&app, Some(&cookie), "/console/history?type=MemberAbsences").await;
    assert!(before.contains("David") && !before.contains("(erased)"));
    let out = crate::cli::ensemble(&app.database_url, &["roster", "forget", "David"]).await;
    assert!(out.status.success(), "{}", crate::cli::stderr(&out));
    let (_, after) = page(&app, Some(&cookie), "/console/history?type=MemberAbsences").await;
    assert!(
        after.contains("(erased)") && !after.contains("David"),
        "{after}"
    );
    // A disabled superuser's sessions end at once.
    ensemble::campus::disable(&app.app.campus, &jessica, &runtime::bus::Actor::operator())
        .await
        .unwrap();
    assert_eq!(page(&app, Some(&cookie), "/console/history").await.0, 401);
}

#[tokio::test]
async fn a_large_record_opens_its_states_one_at_a_time_and_a_rebuild_reports_from_the_start() {
    let app = spawn_app().await;
    let mut csv = String::from("name,section,role\n");
    for i in 0..600 {
        csv.push_str(&format!("Member {i:04},stringed,member\n"));
    }
    app.import_roster(&csv).await;
    superuser(&app, "Jessica", "s3cret-pass").await;
    let cookie = session(&app, "Jessica", "s3cret-pass").await;
    let (status, timeline) = page(
        &app,
        Some(&cookie),
        "/console/record?type=Roster&id=orchestra",
    )
    .await;
    assert_eq!(status, 200);
    // The roster's state (600 members) is not inlined twenty times: each step links to it.
    assert!(
        timeline.contains("on a page of its own"),
        "{}",
        timeline.len()
    );
    assert!(!timeline.contains("class=\"state\"><summary>"));
    assert!(timeline.len() < 1_000_000, "{} bytes", timeline.len());
    let steps = app
        .scalar("SELECT count(*) FROM events WHERE aggregate_type = 'Roster'")
        .await;
    let (status, alone) = page(
        &app,
        Some(&cookie),
        &format!("/console/record?type=Roster&id=orchestra&step={steps}"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        alone.contains(&format!("State after step {steps}"))
            && alone.contains("&quot;600&quot;: {"),
        "{}",
        &alone[alone.len().saturating_sub(3000)..]
    );
    let (status, _) = page(
        &app,
        Some(&cookie),
        &format!(
            "/console/record?type=Roster&id=orchestra&step={}",
            steps + 1
        ),
    )
    .await;
    assert_eq!(status, 400);
    // A rebuild says how far it has to go before its first batch is done.
    let reports = std::sync::Mutex::new(Vec::new());
    runtime::runner::rebuild(&app.app.rt.tx_pool, &app.rebuildable(), &|done, total| {
        reports.lock().unwrap().push((done, total))
    })
    .await
    .unwrap();
    let reports = reports.into_inner().unwrap();
    let total = app.scalar("SELECT count(*) FROM events").await as u64;
    assert_eq!(reports.first(), Some(&(0, total)), "{reports:?}");
    assert_eq!(reports.last().map(|r| r.0), Some(total), "{reports:?}");
}

#[tokio::test]
async fn console_logins_are_limited_with_adminlogin_and_say_when_to_try_again() {
    let app = crate::helpers::spawn_app_with(|c| c.login_limit_name_address = 3).await;
    superuser(&app, "Jessica", "s3cret-pass").await;
    let attempt = |password: &'static str| {
        client()
            .post(format!("{}/console/login", app.address))
            .form(&[("username", "Jessica"), ("password", password)])
            .send()
    };
    for _ in 0..2 {
        let reply = attempt("wrong").await.unwrap();
        assert_eq!(reply.status(), 401);
        assert!(reply.text().await.unwrap().contains("wrong password"));
    }
    // adminLogIn/ counts against the same name.
    let rest = app
        .post(
            "/adminLogIn/",
            None,
            json!({"username": "Jessica", "password": "wrong"}),
        )
        .await;
    assert_eq!(rest.status, 401);
    let refused = attempt("s3cret-pass").await.unwrap();
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait));
    assert!(refused.text().await.unwrap().contains("Too many"));
}
