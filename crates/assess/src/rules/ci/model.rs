//! CI files read into one shape: pipelines (a GitHub workflow, a GitLab CI
//! file with its local `include:`s, or a CircleCI/Jenkins file read as
//! plain lines), their jobs, the shell lines each job runs and the actions
//! it uses, every one with its 1-based line.

use crate::repo::Repo;
use crate::yaml::{self, Node, Value};

/// Which CI system a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    GitHub,
    GitLab,
    /// CircleCI or Jenkins: read as plain lines, for facts only.
    Other,
}

/// One CI file.
#[derive(Debug)]
pub struct Pipeline {
    pub path: String,
    pub kind: Kind,
    /// Events it runs on (`push`, `pull_request`, …); GitLab pipelines run
    /// on pushes and merge requests unless `workflow:` says otherwise.
    pub triggers: Vec<String>,
    /// The line of `on:` (GitHub), else 0.
    pub trigger_line: usize,
    /// Workflow-level `permissions:` (its value as text, its line).
    pub permissions: Option<(String, usize)>,
    /// GitLab `include: template:` names, with their lines.
    pub templates: Vec<(String, usize)>,
    pub jobs: Vec<Job>,
}

/// One job.
#[derive(Debug, Default)]
pub struct Job {
    pub name: String,
    /// The line of the job's key.
    pub line: usize,
    /// `environment:` name and line.
    pub environment: Option<(String, usize)>,
    /// The line of a `when: manual` (GitLab) gate.
    pub manual: Option<usize>,
    pub needs: Vec<String>,
    pub stage: Option<String>,
    /// Job-level `permissions:`.
    pub permissions: Option<(String, usize)>,
    /// Every line of shell the job runs.
    pub commands: Vec<Cmd>,
    /// Every `uses:` (GitHub steps, or the job itself for a reusable workflow).
    pub uses: Vec<Uses>,
}

/// One line of shell.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub text: String,
    pub line: usize,
}

/// One `uses:` of an action, with its `with:` inputs.
#[derive(Debug, Clone)]
pub struct Uses {
    pub action: String,
    pub line: usize,
    pub with: Vec<(String, String, usize)>,
}

impl Uses {
    /// The input `key` of `with:`, with its line.
    pub fn input(&self, key: &str) -> Option<(&str, usize)> {
        self.with
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, l)| (v.as_str(), *l))
    }

    /// The action without its `@ref`, lowercased.
    pub fn name(&self) -> String {
        self.action
            .split('@')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    }
}

/// Whether `path` is a GitHub Actions workflow.
pub fn is_github_workflow(path: &str) -> bool {
    path.strip_prefix(".github/workflows/").is_some_and(|rest| {
        !rest.contains('/') && (rest.ends_with(".yml") || rest.ends_with(".yaml"))
    })
}

/// Every CI file of the repository, read.
pub fn load(repo: &Repo) -> Vec<Pipeline> {
    let mut out = Vec::new();
    for file in repo.files() {
        if is_github_workflow(&file.path)
            && let Some(text) = repo.text(file)
        {
            out.push(github(&file.path, text));
        }
    }
    let mut gitlab_files = vec![".gitlab-ci.yml".to_string()];
    let mut i = 0;
    while i < gitlab_files.len() && i < 50 {
        let path = gitlab_files[i].clone();
        i += 1;
        let Some(text) = repo.text_of(&path) else {
            continue;
        };
        let (pipeline, includes) = gitlab(&path, text);
        for inc in includes {
            if !gitlab_files.contains(&inc) {
                gitlab_files.push(inc);
            }
        }
        out.push(pipeline);
    }
    for path in [
        ".circleci/config.yml",
        "Jenkinsfile",
        "bitbucket-pipelines.yml",
        ".drone.yml",
    ] {
        if let Some(text) = repo.text_of(path) {
            out.push(plain(path, text));
        }
    }
    out
}

fn scalar_text(node: &Node) -> String {
    match &node.value {
        Value::Scalar(s) => s.clone(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| format!("{}: {}", k.text, scalar_text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Seq(items) => items.iter().map(scalar_text).collect::<Vec<_>>().join(", "),
        Value::Null => String::new(),
    }
}

/// The physical lines of a (possibly multi-line) script scalar at `node`:
/// each non-empty line of its text, found in the file at or after the
/// scalar's own line (block scalars start a line below their indicator).
fn script_lines(file_lines: &[&str], node: &Node, out: &mut Vec<Cmd>) {
    let Some(text) = node.str() else { return };
    let mut cursor = node.line.saturating_sub(1);
    for part in text.lines() {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let found = file_lines
            .iter()
            .enumerate()
            .skip(cursor)
            .take(400)
            .find(|(_, l)| l.contains(part))
            .map(|(i, _)| i);
        let line = match found {
            Some(i) => {
                cursor = i;
                i + 1
            }
            None => node.line,
        };
        out.push(Cmd {
            text: part.to_string(),
            line,
        });
    }
}

fn environment(node: &Node) -> Option<(String, usize)> {
    match &node.value {
        Value::Scalar(s) => Some((s.clone(), node.line)),
        Value::Map(_) => node
            .get("name")
            .and_then(|n| n.str().map(|s| (s.to_string(), n.line))),
        _ => None,
    }
}

fn names(node: &Node) -> Vec<String> {
    match &node.value {
        Value::Scalar(s) => vec![s.clone()],
        Value::Seq(items) => items
            .iter()
            .filter_map(|i| match &i.value {
                Value::Scalar(s) => Some(s.clone()),
                Value::Map(_) => i.get("job").and_then(Node::str).map(str::to_string),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn github(path: &str, text: &str) -> Pipeline {
    let lines: Vec<&str> = text.lines().collect();
    let mut p = Pipeline {
        path: path.to_string(),
        kind: Kind::GitHub,
        triggers: Vec::new(),
        trigger_line: 0,
        permissions: None,
        templates: Vec::new(),
        jobs: Vec::new(),
    };
    let Some(doc) = yaml::parse_one(text) else {
        return p;
    };
    if let Some((key, on)) = doc.entry("on").or_else(|| doc.entry("true")) {
        p.trigger_line = key.line;
        p.triggers = match &on.value {
            Value::Scalar(s) => vec![s.clone()],
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| i.str().map(str::to_string))
                .collect(),
            Value::Map(entries) => entries.iter().map(|(k, _)| k.text.clone()).collect(),
            Value::Null => Vec::new(),
        };
    }
    if let Some((key, perms)) = doc.entry("permissions") {
        p.permissions = Some((scalar_text(perms), key.line));
    }
    for (key, body) in doc.get("jobs").map(Node::entries).unwrap_or_default() {
        let mut job = Job {
            name: key.text.clone(),
            line: key.line,
            ..Job::default()
        };
        job.environment = body.get("environment").and_then(environment);
        job.needs = body.get("needs").map(names).unwrap_or_default();
        if let Some((k, perms)) = body.entry("permissions") {
            job.permissions = Some((scalar_text(perms), k.line));
        }
        if let Some(u) = body.get("uses")
            && let Some(action) = u.str()
        {
            job.uses.push(Uses {
                action: action.to_string(),
                line: u.line,
                with: Vec::new(),
            });
        }
        for step in body.get("steps").map(Node::items).unwrap_or_default() {
            if let Some(run) = step.get("run") {
                script_lines(&lines, run, &mut job.commands);
            }
            if let Some(u) = step.get("uses")
                && let Some(action) = u.str()
            {
                let with = step
                    .get("with")
                    .map(Node::entries)
                    .unwrap_or_default()
                    .iter()
                    .map(|(k, v)| (k.text.clone(), scalar_text(v), k.line))
                    .collect();
                job.uses.push(Uses {
                    action: action.to_string(),
                    line: u.line,
                    with,
                });
            }
        }
        p.jobs.push(job);
    }
    p
}

/// GitLab's top-level keys that are not jobs.
const GITLAB_KEYWORDS: [&str; 11] = [
    "stages",
    "variables",
    "include",
    "default",
    "workflow",
    "image",
    "services",
    "before_script",
    "after_script",
    "cache",
    "pages:deploy",
];

fn gitlab(path: &str, text: &str) -> (Pipeline, Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut p = Pipeline {
        path: path.to_string(),
        kind: Kind::GitLab,
        triggers: vec!["push".to_string(), "merge_request".to_string()],
        trigger_line: 0,
        permissions: None,
        templates: Vec::new(),
        jobs: Vec::new(),
    };
    let mut includes = Vec::new();
    let Some(doc) = yaml::parse_one(text) else {
        return (p, includes);
    };
    if let Some(inc) = doc.get("include") {
        let items: Vec<&Node> = match &inc.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![inc],
        };
        for item in items {
            if let Some(s) = item.str()
                && !s.starts_with("http")
            {
                includes.push(s.trim_start_matches('/').to_string());
            }
            if let Some(local) = item.get("local").and_then(Node::str) {
                includes.push(local.trim_start_matches('/').to_string());
            }
            if let Some(t) = item.get("template")
                && let Some(name) = t.str()
            {
                p.templates.push((name.to_string(), t.line));
            }
        }
    }
    for (key, body) in doc.entries() {
        if GITLAB_KEYWORDS.contains(&key.text.as_str()) || !matches!(body.value, Value::Map(_)) {
            continue;
        }
        let mut job = Job {
            name: key.text.clone(),
            line: key.line,
            ..Job::default()
        };
        job.environment = body.get("environment").and_then(environment);
        job.needs = body.get("needs").map(names).unwrap_or_default();
        job.stage = body.get("stage").and_then(Node::str).map(str::to_string);
        if let Some(w) = body.get("when")
            && w.str() == Some("manual")
        {
            job.manual = Some(w.line);
        }
        for rule in body.get("rules").map(Node::items).unwrap_or_default() {
            if let Some(w) = rule.get("when")
                && w.str() == Some("manual")
                && job.manual.is_none()
            {
                job.manual = Some(w.line);
            }
        }
        for section in ["before_script", "script", "after_script"] {
            if let Some(s) = body.get(section) {
                match &s.value {
                    Value::Seq(items) => {
                        for item in items {
                            script_lines(&lines, item, &mut job.commands);
                        }
                    }
                    _ => script_lines(&lines, s, &mut job.commands),
                }
            }
        }
        p.jobs.push(job);
    }
    (p, includes)
}

/// CircleCI, Jenkins and others: one job holding every line of the file.
fn plain(path: &str, text: &str) -> Pipeline {
    let commands = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Cmd {
            text: l.trim().to_string(),
            line: i + 1,
        })
        .collect();
    Pipeline {
        path: path.to_string(),
        kind: Kind::Other,
        triggers: vec!["push".to_string()],
        trigger_line: 0,
        permissions: None,
        templates: Vec::new(),
        jobs: vec![Job {
            name: path.to_string(),
            line: 0,
            commands,
            ..Job::default()
        }],
    }
}
