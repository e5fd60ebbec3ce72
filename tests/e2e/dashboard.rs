//! The web dashboard in a real browser (headless chromium over WebDriver):
//! signing in, a canary advancing on the page without a reload, aborting it
//! from the page, a viewer without buttons whose forged POST is refused, a
//! POST without the CSRF token refused, an approver approving a waiting
//! production deployment; and every page's headers and links.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use fantoccini::Locator;

use crate::browser::{Browser, request};
use crate::common::{Release, TestApp, ok, stdout};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Many short canary steps: the page sees several before the end.
const CANARY: &str = r#"
[service.web.rollout]
strategy = "canary"
steps = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
step_duration = "STEP"
check_interval = "250ms"
analysis = { max_error_rate = 0.05, max_p95 = "500ms", min_requests = 5 }
"#;

fn canary_app(step: &str) -> TestApp {
    let app = TestApp::new("10m");
    app.append_config(&CANARY.replace("STEP", step));
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.serve_and_deploy(&["v1"]);
    app
}

fn base(app: &TestApp) -> String {
    format!("http://127.0.0.1:{}", app.api_port)
}

fn last_id(app: &TestApp) -> i64 {
    app.last_deployment()["id"].as_i64().expect("deployment id")
}

/// The audit log's rows, as the admin reads them.
fn audit(app: &TestApp) -> Vec<serde_json::Value> {
    let out = app.cli(&["audit", "--json"]);
    ok(app, &out);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("audit --json: {e}: {}", stdout(&out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_advances_on_the_page_without_a_reload_and_is_aborted_from_it() {
    let app = canary_app("3s");
    let deployer = app.token("dana", "deployer");
    let load = app.load(4);
    let deploy = app.cli_background(&["deploy", "v2"]);
    app.wait_for_event("v2", "step");
    let id = last_id(&app);

    let browser = Browser::start().await;
    browser.sign_in(&base(&app), &deployer).await;
    assert!(browser.text("#who").await.contains("dana"));
    browser.screenshot("dashboard-overview.png").await;
    assert!(
        browser.count(".in-progress").await >= 1,
        "the overview links the deployment in progress"
    );
    browser
        .client
        .goto(&format!("{}/ui/deployments/{id}", base(&app)))
        .await
        .expect("deployment page");
    browser
        .wait_for_css(".service[data-service=web] .step", Duration::from_secs(30))
        .await;
    let first_step = browser.text(".service .step").await;
    let first_share = browser.text(".canary-share").await;
    let first_width = browser
        .client
        .find(Locator::Css("rect.canary"))
        .await
        .expect("bar")
        .attr("width")
        .await
        .expect("width");
    // A mark on the page: a reload would lose it.
    browser
        .client
        .execute("window.cutoverMark = 'same page'; return true;", vec![])
        .await
        .expect("mark the page");
    let later_step = browser
        .wait_text(".service .step", Duration::from_secs(30), |t| {
            t != first_step && t.starts_with("step ")
        })
        .await;
    let later_share = browser.text(".canary-share").await;
    // The bar is redrawn from the same update as the text, a moment later on
    // a loaded machine: wait for it rather than read it once.
    let mut later_width = first_width.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while later_width == first_width && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        later_width = browser
            .client
            .find(Locator::Css("rect.canary"))
            .await
            .expect("bar")
            .attr("width")
            .await
            .expect("width");
    }
    let mark = browser
        .client
        .execute("return window.cutoverMark || null;", vec![])
        .await
        .expect("read the mark");
    assert_eq!(
        mark,
        serde_json::json!("same page"),
        "the page was reloaded"
    );
    assert_ne!(first_share, later_share, "{first_step} -> {later_step}");
    assert_ne!(first_width, later_width, "the traffic bar did not move");
    assert_ne!(
        browser.text("[data-f=canary-rps]").await,
        "",
        "no canary figures"
    );
    // The chart of the canary's request rate has drawn a line.
    let points = browser
        .client
        .find(Locator::Css("svg[data-chart=rps] polyline.canary"))
        .await
        .expect("rps chart")
        .attr("points")
        .await
        .expect("points")
        .unwrap_or_default();
    assert!(points.split(' ').count() >= 2, "no line drawn: {points:?}");
    browser.screenshot("dashboard-rollout.png").await;

    // Abort from the page: the rollout rolls back.
    browser
        .client
        .find(Locator::Id("btn-abort"))
        .await
        .expect("abort button")
        .click()
        .await
        .expect("click abort");
    browser
        .wait_text("#state", Duration::from_secs(20), |t| t == "rolled_back")
        .await;
    let out = deploy.join().expect("deploy");
    assert_eq!(
        out.status.code(),
        Some(3),
        "the CLI's deploy ends rolled back"
    );
    assert_eq!(app.last_deployment()["state"], "rolled_back");
    let failed = load.stop().await.expect("stop the load").failed();
    assert_eq!(failed, 0, "requests failed during the canary and its abort");
    assert!(
        browser.text("#events").await.contains("abort"),
        "the timeline shows the abort"
    );
    // The verdicts of the steps that passed, with the figures they judged.
    let verdicts = browser.text(".verdicts").await;
    assert!(
        verdicts.contains("passed its analysis") && verdicts.contains("canary: "),
        "{verdicts}"
    );
    // Recorded under the session's token.
    let rows = audit(&app);
    assert!(
        rows.iter()
            .any(|r| r["action"] == "abort" && r["who"] == "dana" && r["deployment_id"] == id),
        "{rows:#?}"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_buttons_and_forged_or_csrf_less_posts_are_refused() {
    // Long steps: the deployment stays under way.
    let app = canary_app("60s");
    let viewer = app.token("vic", "viewer");
    let deployer = app.token("dana", "deployer");
    let load = app.load(2);
    let deploy = app.cli_background(&["deploy", "v2"]);
    app.wait_for_event("v2", "step");
    let id = last_id(&app);
    let page = format!("{}/ui/deployments/{id}", base(&app));

    let browser = Browser::start().await;
    browser.sign_in(&base(&app), &viewer).await;
    browser.client.goto(&page).await.expect("deployment page");
    browser
        .wait_for_css(".service .step", Duration::from_secs(30))
        .await;
    assert_eq!(
        browser.count("form[data-button]").await,
        0,
        "a viewer sees no action"
    );
    assert_eq!(browser.count("#actions").await, 0);
    // The only form is sign-out.
    assert_eq!(browser.count("main form").await, 0);

    // A forged POST with the viewer's own session and CSRF token: the role
    // decides, whatever the form says.
    let session = browser.cookie("cutover_session").await;
    let csrf = browser
        .client
        .find(Locator::Css("input[name=_csrf]"))
        .await
        .expect("csrf field")
        .attr("value")
        .await
        .expect("value")
        .expect("a csrf value");
    for action in ["abort", "pause", "promote", "approve"] {
        let answer = request(
            app.api_port,
            "POST",
            &format!("/ui/deployments/{id}/{action}"),
            Some(&session),
            &format!("_csrf={csrf}"),
        );
        assert_eq!(answer.status, 403, "{action}: {}", answer.body);
        assert!(answer.body.contains("viewer"), "{}", answer.body);
    }
    // Revoking the token ends its sessions at once.
    assert_eq!(
        request(app.api_port, "GET", "/ui/", Some(&session), "").status,
        200
    );
    ok(&app, &app.cli(&["token", "revoke", "vic"]));
    let after = request(app.api_port, "GET", "/ui/", Some(&session), "");
    assert_eq!(after.status, 401, "{}", after.body);
    assert!(after.body.contains("revoked"), "{}", after.body);
    let again = request(app.api_port, "GET", "/ui/", Some(&session), "");
    assert_eq!(again.status, 303, "the session is gone: back to sign-in");
    browser.close().await;

    // A deployer's POST without (or with a wrong) CSRF token.
    let browser = Browser::start().await;
    browser.sign_in(&base(&app), &deployer).await;
    browser.client.goto(&page).await.expect("deployment page");
    browser
        .wait_for_css("#btn-abort", Duration::from_secs(30))
        .await;
    let session = browser.cookie("cutover_session").await;
    for body in ["", "reason=x", "_csrf=0000"] {
        let answer = request(
            app.api_port,
            "POST",
            &format!("/ui/deployments/{id}/abort"),
            Some(&session),
            body,
        );
        assert_eq!(answer.status, 403, "{body:?}: {}", answer.body);
        assert!(answer.body.contains("CSRF"), "{}", answer.body);
    }
    // Nor does sign-in take a form without its token.
    let answer = request(
        app.api_port,
        "POST",
        "/ui/login",
        None,
        &format!("token={deployer}"),
    );
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(
        app.last_deployment()["state"],
        "running",
        "nothing was aborted"
    );
    assert!(
        !audit(&app).iter().any(|r| r["action"] == "abort"),
        "a refused POST wrote to the audit log"
    );
    // The real button still works for the deployer.
    browser
        .client
        .find(Locator::Id("btn-abort"))
        .await
        .expect("abort")
        .click()
        .await
        .expect("click");
    browser
        .wait_text("#state", Duration::from_secs(20), |t| t == "rolled_back")
        .await;
    let _ = deploy.join();
    let _ = load.stop().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_approves_a_waiting_production_deployment_from_the_page() {
    let app = TestApp::new("10m");
    app.append_config("approvals = { required = 1, expires = \"1h\" }\n");
    app.release("v1", Release::Good);
    app.serve();
    let out = app.cli_as("alice", &["deploy", "v1", "--no-wait", "--json"]);
    ok(&app, &out);
    let id = last_id(&app);
    assert_eq!(app.last_deployment()["state"], "awaiting_approval");
    let approver = app.token("bob", "approver");

    let browser = Browser::start().await;
    browser.sign_in(&base(&app), &approver).await;
    assert!(
        browser.text("main").await.contains("awaits approval"),
        "the overview shows the wait"
    );
    browser
        .client
        .goto(&format!("{}/ui/deployments/{id}", base(&app)))
        .await
        .expect("deployment page");
    browser
        .wait_for_css("#btn-approve", Duration::from_secs(30))
        .await;
    assert_eq!(
        browser.count("#btn-abort").await,
        0,
        "an approver does not steer"
    );
    browser
        .client
        .find(Locator::Id("btn-approve"))
        .await
        .expect("approve")
        .click()
        .await
        .expect("click approve");
    browser
        .wait_text("#state", Duration::from_secs(30), |t| t == "succeeded")
        .await;
    app.wait_for_state("succeeded");
    let rows = audit(&app);
    assert!(
        rows.iter()
            .any(|r| r["action"] == "approve" && r["who"] == "bob" && r["deployment_id"] == id),
        "{rows:#?}"
    );
    browser.close().await;
}

/// Every `href` and `src` of `html` that stays on the dashboard.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\"", "action=\""] {
        for piece in html.split(attr).skip(1) {
            if let Some(end) = piece.find('"') {
                let link = piece[..end].replace("&amp;", "&");
                if link.starts_with('/') {
                    out.push(link);
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_sends_the_csp_and_every_link_resolves() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.serve_and_deploy(&["v1", "v2"]);
    let admin = app.token("ada", "admin");
    let browser = Browser::start().await;
    browser.sign_in(&base(&app), &admin).await;
    let session = browser.cookie("cutover_session").await;
    // At phone width nothing runs off the side of the page.
    browser
        .client
        .set_window_size(390, 844)
        .await
        .expect("phone width");
    for page in ["/ui/", "/ui/deployments/2", "/ui/history", "/ui/audit"] {
        browser
            .client
            .goto(&format!("{}{page}", base(&app)))
            .await
            .expect("page");
        let fits = browser
            .client
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth;",
                vec![],
            )
            .await
            .expect("measure");
        assert_eq!(
            fits,
            serde_json::json!(true),
            "{page} is wider than a phone"
        );
    }
    browser.close().await;

    // Signed out: the sign-in page, with the headers; pages send you there.
    let login = request(app.api_port, "GET", "/ui/login", None, "");
    assert_eq!(login.status, 200);
    assert_eq!(login.header("content-security-policy"), Some(CSP));
    let away = request(app.api_port, "GET", "/ui/history", None, "");
    assert_eq!(away.status, 303, "{}", away.body);
    assert_eq!(away.header("location"), Some("/ui/login"));

    // Signed in: crawl from the overview.
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from(["/ui/".to_owned()]);
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) || path == "/ui/logout" {
            continue;
        }
        let answer = request(app.api_port, "GET", &path, Some(&session), "");
        assert!(
            answer.status < 400,
            "{path}: {} {}",
            answer.status,
            answer.body
        );
        assert_eq!(
            answer.header("content-security-policy"),
            Some(CSP),
            "{path}"
        );
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            answer.header("referrer-policy"),
            Some("same-origin"),
            "{path}"
        );
        let html = answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html"));
        if html {
            assert!(
                !answer.body.contains("<script>"),
                "{path}: an inline script"
            );
            assert!(!answer.body.contains("style=\""), "{path}: an inline style");
            assert!(!answer.body.contains("<style"), "{path}: an inline style");
            queue.extend(links(&answer.body));
        } else {
            assert!(
                answer
                    .header("cache-control")
                    .is_some_and(|c| c.contains("immutable")),
                "{path}: an asset without a long cache"
            );
        }
    }
    for page in [
        "/ui/",
        "/ui/history",
        "/ui/dora",
        "/ui/audit",
        "/ui/backups",
        "/ui/releases",
        "/ui/deployments/2",
    ] {
        assert!(seen.contains(page), "{page} is not linked: {seen:?}");
    }
    assert!(seen.iter().any(|p| p.ends_with(".css")) && seen.iter().any(|p| p.ends_with(".js")));
    // A page that is not there is a 404 with the headers too.
    let missing = request(app.api_port, "GET", "/ui/nothing", Some(&session), "");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("content-security-policy"), Some(CSP));
    // The DORA chart counts today's two deploys.
    let dora = request(app.api_port, "GET", "/ui/dora", Some(&session), "");
    assert!(
        dora.body.contains(": 2 succeeded, 0 failed or rolled back"),
        "{}",
        dora.body
    );
    // The releases page lists both versions and where each ran.
    let releases = request(app.api_port, "GET", "/ui/releases", Some(&session), "");
    for text in ["<td>v1</td>", "<td>v2</td>", "production #2 succeeded"] {
        assert!(releases.body.contains(text), "{text}: {}", releases.body);
    }
    // The audit page says what `audit verify` says.
    let audit = request(app.api_port, "GET", "/ui/audit", Some(&session), "");
    assert!(audit.body.contains("audit log intact"), "{}", audit.body);
}

/// Adds `lines` to the app's `[server]` table.
fn server_keys(app: &TestApp, lines: &str) {
    let path = app.config();
    let text = std::fs::read_to_string(&path).expect("config");
    let text = text.replacen("[server]\n", &format!("[server]\n{lines}\n"), 1);
    std::fs::write(&path, text).expect("write config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_moves_to_its_own_listener_or_is_turned_off() {
    let app = TestApp::new("10m");
    let port = cutover_kit::ports::free_port().expect("free port");
    server_keys(&app, &format!("dashboard_listen = \"127.0.0.1:{port}\""));
    app.release("v1", Release::Good);
    app.serve();
    crate::common::wait_until(Duration::from_secs(20), "the dashboard's listener", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let own = request(port, "GET", "/ui/login", None, "");
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.header("content-security-policy"), Some(CSP));
    assert!(own.body.contains("API token"));
    // Only the dashboard there; no /ui on the API's listener.
    assert_eq!(request(port, "GET", "/v1/status", None, "").status, 404);
    assert_eq!(
        request(app.api_port, "GET", "/ui/login", None, "").status,
        404
    );
    let said = format!("dashboard on http://127.0.0.1:{port}/ui/");
    crate::common::wait_until(Duration::from_secs(20), "the daemon says where", || {
        app.daemon_log().contains(&said)
    });
    app.stop_daemon();

    let off = TestApp::new("10m");
    server_keys(&off, "dashboard = false");
    off.release("v1", Release::Good);
    off.serve();
    assert_eq!(
        request(off.api_port, "GET", "/ui/login", None, "").status,
        404
    );
    assert_eq!(request(off.api_port, "GET", "/ui/", None, "").status, 404);
    // The lines it prints end with the environments'; none is the dashboard.
    crate::common::wait_until(Duration::from_secs(20), "the daemon says where", || {
        off.daemon_log().contains("environment production on")
    });
    assert!(
        !off.daemon_log().contains("dashboard on"),
        "{}",
        off.daemon_log()
    );
}

#[test]
fn over_tls_the_session_cookie_is_secure() {
    let app = TestApp::new("10m");
    crate::api_edge::self_signed(&app);
    server_keys(&app, "tls = { cert = \"api.pem\", key = \"api.key\" }");
    app.serve();
    let base = format!("https://127.0.0.1:{}", app.api_port);
    crate::common::wait_until(Duration::from_secs(20), "the daemon says where", || {
        app.daemon_log().contains(&format!(
            "dashboard on https://127.0.0.1:{}/ui/",
            app.api_port
        ))
    });
    let cacert = app.path().join("api.pem").display().to_string();
    let jar = app.path().join("cookies").display().to_string();
    let form =
        crate::api_edge::curl(&["--cacert", &cacert, "-c", &jar, &format!("{base}/ui/login")]);
    let html = stdout(&form);
    let csrf = html
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF field in {html}"));
    let token = std::fs::read_to_string(app.path().join(".cutover/api.token")).expect("token");
    let signed = crate::api_edge::curl(&[
        "--cacert",
        &cacert,
        "-b",
        &jar,
        "-D",
        "-",
        "-o",
        "/dev/null",
        "--data-urlencode",
        &format!("token={}", token.trim()),
        "--data-urlencode",
        &format!("_csrf={csrf}"),
        &format!("{base}/ui/login"),
    ]);
    let head = stdout(&signed);
    assert!(
        head.starts_with("HTTP/2 303") || head.starts_with("HTTP/1.1 303"),
        "{head}"
    );
    let cookie = head
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: cutover_session=")
        })
        .unwrap_or_else(|| panic!("no session cookie in {head}"));
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/ui",
        "Secure",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
}

/// Signs in over plain HTTP as a browser would (the sign-in form's cookie
/// and token, then the form); returns the session id.
fn sign_in_http(port: u16, token: &str) -> String {
    let form = crate::browser::request_with(port, "GET", "/ui/login", "", "");
    let login_cookie = form
        .headers
        .iter()
        .find_map(|(k, v)| {
            (k.eq_ignore_ascii_case("set-cookie") && v.starts_with("cutover_login="))
                .then(|| v.split(';').next().unwrap_or_default().to_owned())
        })
        .unwrap_or_else(|| panic!("no sign-in cookie: {:?}", form.headers));
    let csrf = form
        .body
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF field in {}", form.body));
    let signed = crate::browser::request_with(
        port,
        "POST",
        "/ui/login",
        &login_cookie,
        &format!("token={token}&_csrf={csrf}"),
    );
    assert_eq!(signed.status, 303, "{}", signed.body);
    signed
        .headers
        .iter()
        .find_map(|(k, v)| {
            (k.eq_ignore_ascii_case("set-cookie") && v.starts_with("cutover_session=")).then(|| {
                v["cutover_session=".len()..]
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
        })
        .unwrap_or_else(|| panic!("no session cookie: {:?}", signed.headers))
}

#[test]
fn the_backups_page_lists_a_verified_backup() {
    let app = crate::backup::app::BackupApp::new("sqlite://data/app.db", "");
    app.sh("mkdir data && sqlite3 data/app.db 'CREATE TABLE t (x); INSERT INTO t VALUES (1);'");
    let id = app.create();
    let verified = app.cli(&["backup", "verify", &id]);
    assert!(
        verified.status.success(),
        "{}",
        crate::common::stderr(&verified)
    );
    // Serve the project on ports of its own.
    let ports = cutover_kit::ports::free_ports(2).expect("free ports");
    let path = app.path().join("cutover.toml");
    let config = std::fs::read_to_string(&path).expect("config").replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{}\"", ports[1]),
    );
    std::fs::write(
        &path,
        format!("[server]\nlisten = \"127.0.0.1:{}\"\n\n{config}", ports[0]),
    )
    .expect("write config");
    let log = std::fs::File::create(app.path().join("daemon.log")).expect("log");
    let mut daemon = app
        .command(&["serve"], None)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("serve");
    crate::common::wait_until(Duration::from_secs(20), "the API answers", || {
        std::net::TcpStream::connect(("127.0.0.1", ports[0])).is_ok()
    });
    let token = std::fs::read_to_string(app.path().join(".cutover/api.token")).expect("token");
    let session = sign_in_http(ports[0], token.trim());
    let page = request(ports[0], "GET", "/ui/backups", Some(&session), "");
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(page.status, 200, "{}", page.body);
    for text in [id.as_str(), "<td>main</td>", "<td>manual</td>", "ok at "] {
        assert!(page.body.contains(text), "{text}: {}", page.body);
    }
}
