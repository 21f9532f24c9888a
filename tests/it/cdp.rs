//! A small Chrome DevTools Protocol client for the browser tests: headless Chromium with remote debugging on a free
//! port, one page, and the commands the tests need (navigate, evaluate, screenshot) over the page's WebSocket.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How every test runs Chromium: headless, quiet, nothing fetched from the network on its own.
pub const HEADLESS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
];

/// A running headless Chromium; killed when dropped.
pub struct Browser {
    _child: tokio::process::Child,
    port: u16,
    _profile: tempfile::TempDir,
}

/// One tab.
pub struct Page {
    ws: Socket,
    next_id: u64,
}

impl Browser {
    pub async fn launch(chromium: &Path) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = tokio::process::Command::new(chromium)
            .args(HEADLESS)
            .args(["--window-size=1280,1100", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/…"
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("chromium's stderr") {
                if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                    return rest.split('/').next().and_then(|p| p.parse::<u16>().ok());
                }
            }
            None
        })
        .await
        .expect("chromium announced its DevTools port in time")
        .expect("a DevTools port");
        // Keep reading its stderr so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Browser { _child: child, port, _profile: profile }
    }

    pub async fn page(&self) -> Page {
        let target: Value = reqwest::Client::new()
            .put(format!("http://127.0.0.1:{}/json/new?about:blank", self.port))
            .send()
            .await
            .expect("DevTools answers")
            .json()
            .await
            .expect("a target");
        let url = target["webSocketDebuggerUrl"].as_str().expect("the page's WebSocket").to_owned();
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("WebSocket to the page");
        Page { ws, next_id: 0 }
    }
}

impl Page {
    /// Sends a command and returns its result (events in between are skipped).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(Message::text(msg)).await.expect("sent to Chromium");
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(msg) = self.ws.next().await {
                let Ok(Message::Text(text)) = msg else { continue };
                let v: Value = serde_json::from_str(text.as_str()).expect("JSON from Chromium");
                if v["id"] == json!(id) {
                    return v;
                }
            }
            panic!("Chromium closed the page");
        })
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} in 30 s"));
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// The value of a JavaScript expression in the page.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }))
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits (up to 20 s) until `expression` is true in the page.
    pub async fn wait_for(&mut self, expression: &str) {
        for _ in 0..200 {
            if self.eval(expression).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("still not true after 20 s: {expression}");
    }

    /// Opens `url` and waits until it has loaded.
    pub async fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
        self.wait_for(&format!("location.href === {} && document.readyState === 'complete'", json!(url))).await;
    }

    /// Runs `action` (a click that submits a form) and waits until the page it leads to has loaded.
    pub async fn submit(&mut self, action: &str) {
        self.eval("window.__shipwatch_before = true").await;
        self.eval(action).await;
        self.wait_for("window.__shipwatch_before === undefined && document.readyState === 'complete'").await;
    }

    /// A PNG of the page as shown.
    pub async fn screenshot(&mut self, file: &Path) {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" })).await;
        let png = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, r["data"].as_str().expect("data"))
            .expect("base64");
        std::fs::write(file, png).expect("screenshot written");
    }
}
