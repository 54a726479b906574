//! A real browser for the console's tests: Debian's headless Chromium driven through
//! chromedriver's W3C WebDriver protocol (plain JSON over HTTP, spoken with the reqwest the
//! tests already use: no WebDriver crate and its dependency tree for a dozen commands).
//! `./scripts/test` installs `chromium` and `chromium-driver` when they are missing.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
}

#[derive(Clone)]
pub struct Element(String);

impl Browser {
    /// A fresh headless Chromium (its own profile: no cookies).
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver is not installed: run ./scripts/test, which installs Debian's \
                 chromium and chromium-driver",
            );
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(reply) = ready {
                let body: Value = reply.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|b| std::path::Path::new(b).exists())
            .unwrap_or("/usr/bin/chromium");
        let reply: Value = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": binary,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1280,1000",
                             "--lang=zh-CN"],
                },
            }}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = reply["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {reply}"))
            .to_string();
        Self {
            http,
            session: format!("{base}/session/{session}"),
            driver,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply: Value = request.send().await.unwrap().json().await.unwrap();
        reply["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        let v = self
            .call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
        assert!(v.is_null(), "navigate to {url}: {v}");
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn all(&self, css: &str) -> Vec<Element> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element `css` selects, waiting up to `within` for one to appear.
    pub async fn wait_for(&self, css: &str, within: Duration) -> Element {
        let started = Instant::now();
        loop {
            if let Some(e) = self.all(css).await.into_iter().next() {
                return e;
            }
            assert!(
                started.elapsed() < within,
                "nothing matches {css:?} at {} after {within:?}; the page: {}",
                self.url().await,
                self.call(reqwest::Method::GET, "/source", None).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn find(&self, css: &str) -> Element {
        self.wait_for(css, Duration::from_secs(5)).await
    }

    pub async fn text(&self, e: &Element) -> String {
        self.call(
            reqwest::Method::GET,
            &format!("/element/{}/text", e.0),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The rendered text of the first element `css` selects (empty if none).
    pub async fn text_of(&self, css: &str) -> String {
        match self.all(css).await.first() {
            Some(e) => self.text(e).await,
            None => String::new(),
        }
    }

    pub async fn click(&self, e: &Element) {
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/element/{}/click", e.0),
                Some(json!({})),
            )
            .await;
        assert!(v.is_null(), "click: {v}");
    }

    /// Click `e` and wait until the page it leads to has loaded (a form's submit button, a
    /// link): what follows reads the new page, never the old one.
    pub async fn click_to_page(&self, e: &Element) {
        self.script("window.__ensemble_old_page = true; return null")
            .await;
        self.click(e).await;
        let started = Instant::now();
        loop {
            let state = self
                .script(
                    "return window.__ensemble_old_page === undefined && document.readyState === 'complete'",
                )
                .await;
            if state == json!(true) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no new page after the click (at {})",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn type_into(&self, e: &Element, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/clear", e.0),
            Some(json!({})),
        )
        .await;
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/element/{}/value", e.0),
                Some(json!({ "text": text })),
            )
            .await;
        assert!(v.is_null(), "type: {v}");
    }

    /// Run `script` (a function body) in the page; its return value.
    pub async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// The page as a PNG.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Save the page as `NAME.png` in `$ENSEMBLE_CONSOLE_SCREENSHOTS`, when it is set (the
    /// docs' pictures: `./scripts/console-screenshots`).
    pub async fn shot(&self, name: &str) {
        if let Ok(dir) = std::env::var("ENSEMBLE_CONSOLE_SCREENSHOTS") {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(format!("{dir}/{name}.png"), self.screenshot().await).unwrap();
        }
    }

    /// The window's size (a phone's, a laptop's).
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    pub async fn quit(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
