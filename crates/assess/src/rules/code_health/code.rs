//! Reading application code line by line: health routes declared with the
//! common frameworks, a `/metrics` route, SIGTERM handling, JSON logging set
//! up in code, and where the server starts listening.

use std::sync::LazyLock;

use regex::Regex;

use crate::repo::RepoFile;

/// What a line holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A health route, its path as declared (with a leading `/`).
    Health(String),
    /// A readiness route.
    Ready(String),
    Metrics,
    /// SIGTERM handled (what handles it).
    Sigterm(String),
    StructuredLogs(String),
    /// The server starts listening here.
    Listen,
}

fn re(s: &str) -> Regex {
    Regex::new(s).expect("regex")
}

static ROUTE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r#"(?i)(?:\.|\b|@|#\[)(?:get|head|all|route|handle|handlefunc|any|at|use|mapget|maphealthchecks|getmapping|requestmapping|path|re_path|resource)"#,
        r#"\s*(?:\(|\s)\s*r?["'`](?:(?:GET|HEAD)\s+)?\^?"#,
        r#"(/?(?:api/|v\d+/|_?internal/|-/|_/)*(?:health(?:z|check|-check|_check)?|_health|livez|live|liveness|readyz|ready|readiness|up|ping)(?:/(?:live|liveness|ready|readiness|startup))?/?)\$?["'`]"#
    ))
});
static METRICS_ROUTE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)(?:\.|\b)(?:get|route|handle|handlefunc|use|mapget|path|mount)\s*\(\s*["'`]/?metrics/?["'`]"#,
    )
});
static NODE_SIGTERM: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"process\.(?:on|once|addListener)\(\s*['"`]SIGTERM|enableShutdownHooks\(|createTerminus\(|createHttpTerminator\(|closeWithGrace\("#,
    )
});
static PY_SIGTERM: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:signal\.signal|add_signal_handler)\(\s*(?:signal\.)?SIGTERM"));
static RS_SIGTERM: LazyLock<Regex> =
    LazyLock::new(|| re(r"SignalKind::terminate|tokio::signal|with_graceful_shutdown"));
static RB_SIGTERM: LazyLock<Regex> = LazyLock::new(|| re(r#"trap\(\s*['"](?:SIG)?TERM"#));
static JSON_LOGS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"slog\.NewJSONHandler|format\.json\(|JSONFormatter|serialize\s*=\s*True|JsonFormatter|\.json\(\)\s*\.init\(\)|fmt::layer\(\)\s*\.json\(\)|fmt\(\)\s*\.json\(\)",
    )
});
static NODE_LISTEN: LazyLock<Regex> = LazyLock::new(|| re(r"\.listen\s*\("));
static GO_LISTEN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"ListenAndServe(?:TLS)?\s*\(|\.Run\s*\(\s*["':]|\.Start\s*\(\s*["':]|\.Listen\s*\(\s*["':]"#,
    )
});

/// The language of a code file, by extension.
pub fn lang(ext: &str) -> Option<super::deps::Lang> {
    use super::deps::Lang;
    Some(match ext {
        "js" | "mjs" | "cjs" | "ts" => Lang::Node,
        "py" => Lang::Python,
        "go" => Lang::Go,
        "rb" => Lang::Ruby,
        "java" | "kt" => Lang::Java,
        "rs" => Lang::Rust,
        "cs" => Lang::Dotnet,
        _ => return None,
    })
}

/// Whether `file` is a test (its routes and handlers do not serve anything).
pub fn is_test(file: &RepoFile) -> bool {
    let n = file.name.as_str();
    [
        "test",
        "tests",
        "__tests__",
        "spec",
        "testdata",
        "e2e",
        "fixtures",
    ]
    .iter()
    .any(|d| file.in_dir(d))
        || n.ends_with("_test.go")
        || n.contains(".test.")
        || n.contains(".spec.")
        || n.starts_with("test_")
        || n.ends_with("_test.py")
}

fn readiness(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    p.ends_with("readyz") || p.ends_with("ready") || p.ends_with("readiness")
}

/// Everything in one code file, with 1-based lines.
pub fn scan(ext: &str, text: &str) -> Vec<(usize, Seen)> {
    use super::deps::Lang;
    let Some(lang) = lang(ext) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if lang == Lang::Go && text.contains("signal.Notify") && text.contains("SIGTERM") {
        let line = text
            .lines()
            .position(|l| l.contains("signal.Notify"))
            .map_or(1, |i| i + 1);
        out.push((
            line,
            Seen::Sigterm("signal.Notify(…, syscall.SIGTERM)".into()),
        ));
    }
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.len() > 2000 {
            continue;
        }
        let t = line.trim_start();
        if t.starts_with("//") || t.starts_with('#') && !t.starts_with("#[") {
            continue;
        }
        if let Some(m) = ROUTE.captures(line).and_then(|c| c.get(1)) {
            let declared = m.as_str();
            let path = if declared.starts_with('/') {
                declared.to_string()
            } else {
                format!("/{declared}")
            };
            out.push((
                n,
                if readiness(&path) {
                    Seen::Ready(path)
                } else {
                    Seen::Health(path)
                },
            ));
        }
        if METRICS_ROUTE.is_match(line) {
            out.push((n, Seen::Metrics));
        }
        let sig = match lang {
            Lang::Node => NODE_SIGTERM.find(line),
            Lang::Python => PY_SIGTERM.find(line),
            Lang::Rust => RS_SIGTERM.find(line),
            Lang::Ruby => RB_SIGTERM.find(line),
            _ => None,
        };
        if let Some(m) = sig {
            let what = m.as_str().trim_end_matches('(');
            let what = if what.starts_with("process.") {
                format!("{what}')")
            } else {
                what.to_string()
            };
            out.push((n, Seen::Sigterm(what)));
        }
        if let Some(m) = JSON_LOGS.find(line) {
            out.push((n, Seen::StructuredLogs(m.as_str().to_string())));
        }
        let listens = match lang {
            Lang::Node => NODE_LISTEN.is_match(line),
            Lang::Go => GO_LISTEN.is_match(line),
            _ => false,
        };
        if listens {
            out.push((n, Seen::Listen));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(ext: &str, line: &str) -> Vec<Seen> {
        scan(ext, line)
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| matches!(s, Seen::Health(_) | Seen::Ready(_)))
            .collect()
    }

    #[test]
    fn health_routes_of_common_frameworks() {
        let h = |p: &str| vec![Seen::Health(p.to_string())];
        let r = |p: &str| vec![Seen::Ready(p.to_string())];
        assert_eq!(
            routes("js", "app.get('/health', (req, res) => res.send('ok'))"),
            h("/health")
        );
        assert_eq!(routes("py", "@app.get(\"/healthz\")"), h("/healthz"));
        assert_eq!(routes("py", "@app.route('/health')"), h("/health"));
        assert_eq!(
            routes("py", "    path(\"health/\", views.health),"),
            h("/health/")
        );
        assert_eq!(
            routes("go", "\thttp.HandleFunc(\"/healthz\", healthz)"),
            h("/healthz")
        );
        assert_eq!(
            routes("go", "\tmux.HandleFunc(\"GET /readyz\", ready)"),
            r("/readyz")
        );
        assert_eq!(routes("go", "\tr.GET(\"/health\", h)"), h("/health"));
        assert_eq!(
            routes(
                "rb",
                "  get \"up\" => \"rails/health#show\", as: :rails_health_check"
            ),
            h("/up")
        );
        assert_eq!(
            routes("cs", "app.MapHealthChecks(\"/healthz\");"),
            h("/healthz")
        );
        assert_eq!(
            routes("rs", "        .route(\"/health\", get(health))"),
            h("/health")
        );
        assert_eq!(
            routes("java", "    @GetMapping(\"/health/ready\")"),
            r("/health/ready")
        );
        assert!(routes("js", "app.get('/users', list)").is_empty());
        assert!(routes("js", "// app.get('/health')").is_empty());
    }

    #[test]
    fn sigterm_handlers_per_language() {
        let sig = |ext: &str, text: &str| {
            scan(ext, text)
                .iter()
                .any(|(_, s)| matches!(s, Seen::Sigterm(_)))
        };
        assert!(sig("js", "process.on('SIGTERM', () => server.close())"));
        assert!(sig(
            "go",
            "signal.Notify(stop,\n\tsyscall.SIGINT,\n\tsyscall.SIGTERM)"
        ));
        assert!(!sig("go", "signal.Notify(stop, os.Interrupt)"));
        assert!(sig("py", "signal.signal(signal.SIGTERM, handler)"));
        assert!(sig(
            "rs",
            "let mut term = signal(SignalKind::terminate())?;"
        ));
        assert!(!sig("js", "process.on('SIGINT', stop)"));
    }
}
