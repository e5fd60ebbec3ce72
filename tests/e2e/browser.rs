//! A real browser for the dashboard's tests: Debian's `chromium`, headless,
//! driven over WebDriver (`fantoccini`) through a `chromedriver` this
//! helper starts on a free port and kills when dropped; and plain HTTP with
//! a session cookie, for what a browser would not send (forged forms) and
//! for reading headers.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cutover_kit::ports;
use cutover_kit::wait::Wait;
use fantoccini::{Client, ClientBuilder, Locator};

/// A headless chromium behind its chromedriver.
pub struct Browser {
    driver: Child,
    pub client: Client,
}

impl Browser {
    /// Starts chromedriver and a headless chromium session.
    pub async fn start() -> Browser {
        let port = ports::free_port().expect("free port");
        // Its own process group: killing the group takes chromium with it
        // when a test fails before it closes the session.
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "cannot start chromedriver: install Debian's chromium and chromium-driver \
                 (scripts/test installs them)",
            );
        Wait::up_to(Duration::from_secs(20))
            .until(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
            .expect("chromedriver did not listen");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a chromium session through chromedriver");
        Browser { driver, client }
    }

    /// Signs in at `base` with `token`; returns once the overview shows.
    pub async fn sign_in(&self, base: &str, token: &str) {
        let c = &self.client;
        c.goto(&format!("{base}/ui/login"))
            .await
            .expect("login page");
        c.find(Locator::Id("token"))
            .await
            .expect("token field")
            .send_keys(token)
            .await
            .expect("type the token");
        c.find(Locator::Id("sign-in"))
            .await
            .expect("sign-in button")
            .click()
            .await
            .expect("sign in");
        self.wait_for_css("#who", Duration::from_secs(30)).await;
    }

    /// Waits until an element matches `css`.
    pub async fn wait_for_css(&self, css: &str, limit: Duration) {
        if let Err(e) = self
            .client
            .wait()
            .at_most(limit)
            .for_element(Locator::Css(css))
            .await
        {
            panic!(
                "no {css} within {limit:?} ({e}) at {:?}; page:\n{}",
                self.client.current_url().await.map(|u| u.to_string()),
                self.client.source().await.unwrap_or_default()
            );
        }
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .text()
            .await
            .expect("text")
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("find_all")
            .len()
    }

    /// Polls until the text of `css` satisfies `pred`; returns it.
    pub async fn wait_text(
        &self,
        css: &str,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let started = std::time::Instant::now();
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = el.text().await
                && pred(&text)
            {
                return text;
            }
            assert!(
                started.elapsed() < limit,
                "{css} did not change as expected within {limit:?}; page:\n{}",
                self.client.source().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The value of cookie `name`, as the browser keeps it.
    pub async fn cookie(&self, name: &str) -> String {
        self.client
            .get_named_cookie(name)
            .await
            .unwrap_or_else(|e| panic!("no cookie {name}: {e}"))
            .value()
            .to_owned()
    }

    /// A PNG of the page, written to `name` in `$CUTOVER_SCREENSHOTS` (the
    /// repository's docs/img when refreshing the README's pictures), else
    /// in the target directory.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let dir = std::env::var_os("CUTOVER_SCREENSHOTS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::env::var_os("CARGO_TARGET_DIR")
                    .map(std::path::PathBuf::from)
                    .unwrap_or_else(|| {
                        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target")
                    })
                    .join("dashboard-screenshots")
            });
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(name), png).expect("write screenshot");
    }

    /// Closes the browser and its driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        // Drop kills what is left.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver, chromium and its helpers: the whole process group.
        if let Ok(pid) = i32::try_from(self.driver.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.driver.wait();
    }
}

/// One answer to [`request`].
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The first header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to `127.0.0.1:port` with the session `cookie`
/// (none: no `Cookie`) and, for a POST, a form `body`.
pub fn request(port: u16, method: &str, path: &str, cookie: Option<&str>, body: &str) -> Answer {
    let cookies = cookie
        .map(|c| format!("cutover_session={c}"))
        .unwrap_or_default();
    request_with(port, method, path, &cookies, body)
}

/// [`request`] with a whole `Cookie` header value (empty: none).
pub fn request_with(port: u16, method: &str, path: &str, cookies: &str, body: &str) -> Answer {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let cookie = if cookies.is_empty() {
        String::new()
    } else {
        format!("Cookie: {cookies}\r\n")
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{cookie}Content-Type: \
         application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).expect("send");
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}
