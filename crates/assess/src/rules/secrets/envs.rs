//! Environment files and environments: committed `.env` files (templates
//! like `.env.example` are facts, real ones with secret values are
//! findings), whether `.gitignore` keeps `.env` out, and whether more than
//! one environment is described (env files, Rails' `config/environments`,
//! compose overrides, Kustomize overlays, Helm values per environment).

use ignore::gitignore::GitignoreBuilder;

use crate::finding::Evidence;
use crate::repo::RepoFile;
use crate::rules::Context;

use super::scan;

/// What an env file is.
#[derive(Debug, PartialEq, Eq)]
pub enum EnvFile {
    /// `.env.example`, `.env.sample`, `.env.template`, `.env.dist`, `.env.defaults`.
    Template,
    /// A real env file: `.env`, `.env.production`, `production.env`.
    Real,
}

const TEMPLATE_WORDS: [&str; 6] = ["example", "sample", "template", "dist", "defaults", "tpl"];

/// Whether `name` is an env file, and which kind.
pub fn env_file(name: &str) -> Option<EnvFile> {
    let lower = name.to_ascii_lowercase();
    let is_env = lower == ".env" || lower.starts_with(".env.") || lower.ends_with(".env");
    if !is_env || lower.ends_with(".py") || lower.ends_with(".sh") {
        return None;
    }
    if TEMPLATE_WORDS.iter().any(|w| lower.contains(w)) {
        Some(EnvFile::Template)
    } else {
        Some(EnvFile::Real)
    }
}

/// The environment an env file or config file names (`.env.production` →
/// `production`, `docker-compose.staging.yml` → `staging`), if any.
fn env_name(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let parts: Vec<&str> = lower
        .split(['.', '-', '_'])
        .filter(|p| !p.is_empty())
        .collect();
    parts
        .iter()
        .find(|p| is_production(p) || is_preproduction(p))
        .map(|p| canonical(p).to_string())
}

fn is_production(word: &str) -> bool {
    matches!(word, "production" | "prod" | "live")
}

fn is_preproduction(word: &str) -> bool {
    matches!(
        word,
        "staging" | "stage" | "stg" | "qa" | "uat" | "preprod" | "preview" | "sandbox"
    )
}

fn canonical(word: &str) -> &str {
    match word {
        "prod" | "live" => "production",
        "stage" | "stg" => "staging",
        w => w,
    }
}

/// Records env-file facts and findings; returns the (path, line) pairs it
/// reported, so the token scan does not report them again.
pub fn run(cx: &mut Context<'_>) -> Vec<(String, usize)> {
    let mut covered = Vec::new();
    let mut template_seen = false;
    let files: Vec<&RepoFile> = cx.repo.files().iter().collect();
    for file in &files {
        match env_file(&file.name) {
            Some(EnvFile::Template) if !template_seen => {
                template_seen = true;
                cx.fact(
                    "env.config-template",
                    format!("{} lists the settings the app reads", file.path),
                    Evidence::file(&file.path),
                );
                cx.fact(
                    "sec.secrets-from-env",
                    format!(
                        "settings come from the environment ({} is their template)",
                        file.path
                    ),
                    Evidence::file(&file.path),
                );
            }
            Some(EnvFile::Template) => {}
            Some(EnvFile::Real) => {
                if let Some(text) = cx.repo.text(file) {
                    covered.extend(real_env_file(cx, &file.path, text));
                }
            }
            None => {}
        }
    }
    gitignore(cx, &files);
    multiple(cx, &files);
    covered
}

/// A committed env file: one finding naming the keys with secret values,
/// each line as evidence with its value redacted.
fn real_env_file(cx: &mut Context<'_>, path: &str, text: &str) -> Vec<(String, usize)> {
    let mut evidence = Vec::new();
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        let assignment = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let Some((key, value)) = assignment.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        let token = !scan::tokens(value).is_empty();
        if (scan::secret_key_name(key) || token) && !scan::placeholder(value) {
            keys.push(key.to_string());
            evidence.push(Evidence {
                path: path.to_string(),
                line: i + 1,
                column: 0,
                snippet: scan::redact(line, value),
            });
        }
    }
    if evidence.is_empty() {
        return Vec::new();
    }
    let covered = evidence.iter().map(|e| (e.path.clone(), e.line)).collect();
    cx.find_with(
        &super::ENV_FILE,
        evidence,
        format!(
            "{path} is committed with values for {}: anyone who can read the repository has them.",
            keys.join(", ")
        ),
        format!(
            "Remove {path} from git (`git rm --cached {path}`), add `.env*` and `!.env.example` to .gitignore, rotate every value it held, and commit a .env.example with placeholders instead. {}",
            super::ENV_FILE.fix
        ),
    );
    covered
}

/// `sec.env-ignored`: a `.gitignore` whose patterns ignore `.env` in its folder.
fn gitignore(cx: &mut Context<'_>, files: &[&RepoFile]) {
    for file in files.iter().filter(|f| f.name == ".gitignore") {
        let Some(text) = cx.repo.text(file) else {
            continue;
        };
        let dir = cx.repo.root().join(file.dir());
        let mut builder = GitignoreBuilder::new(&dir);
        for line in text.lines() {
            // A bad pattern is skipped, as git does.
            let _ = builder.add_line(None, line);
        }
        let Ok(matcher) = builder.build() else {
            continue;
        };
        if matcher.matched(dir.join(".env"), false).is_ignore() {
            let line = text
                .lines()
                .position(|l| l.contains(".env"))
                .map(|i| i + 1)
                .unwrap_or(0);
            cx.fact(
                "sec.env-ignored",
                format!("{} ignores .env", file.path),
                if line > 0 {
                    Evidence::at(&file.path, text, line)
                } else {
                    Evidence::file(&file.path)
                },
            );
            return;
        }
    }
}

/// `env.multiple`: production and a pre-production environment described
/// side by side, by any one kind of file.
fn multiple(cx: &mut Context<'_>, files: &[&RepoFile]) {
    type Source = (&'static str, Vec<(String, String)>);
    let mut sources: Vec<Source> = vec![
        ("env files", Vec::new()),
        ("config/environments", Vec::new()),
        ("compose overrides", Vec::new()),
        ("Kustomize overlays", Vec::new()),
        ("Helm values", Vec::new()),
    ];
    for file in files {
        let lower = file.name.to_ascii_lowercase();
        let slot = if env_file(&file.name).is_some() {
            Some((0, env_name(&file.name)))
        } else if file.dir().ends_with("config/environments") {
            Some((1, env_name(&file.name)))
        } else if (lower.starts_with("docker-compose") || lower.starts_with("compose"))
            && (lower.ends_with(".yml") || lower.ends_with(".yaml"))
        {
            Some((2, env_name(&file.name)))
        } else if let Some(i) = file.path.find("overlays/") {
            let rest = &file.path[i + "overlays/".len()..];
            rest.split_once('/').map(|(env, _)| (3, env_name(env)))
        } else if lower.starts_with("values")
            && (lower.ends_with(".yml") || lower.ends_with(".yaml"))
        {
            Some((4, env_name(&file.name)))
        } else {
            None
        };
        if let Some((i, Some(env))) = slot
            && !sources[i].1.iter().any(|(e, _)| *e == env)
        {
            sources[i].1.push((env, file.path.clone()));
        }
    }
    for (what, envs) in sources {
        let prod = envs.iter().find(|(e, _)| is_production(e));
        let pre = envs.iter().find(|(e, _)| !is_production(e));
        if let (Some((p, ppath)), Some((s, spath))) = (prod, pre) {
            cx.fact(
                "env.multiple",
                format!("{what}: {s} ({spath}) and {p} ({ppath})"),
                Evidence::file(ppath),
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_kinds() {
        assert_eq!(env_file(".env"), Some(EnvFile::Real));
        assert_eq!(env_file(".env.production"), Some(EnvFile::Real));
        assert_eq!(env_file("staging.env"), Some(EnvFile::Real));
        assert_eq!(env_file(".env.example"), Some(EnvFile::Template));
        assert_eq!(env_file(".env.sample"), Some(EnvFile::Template));
        assert_eq!(
            env_file(".env.production.template"),
            Some(EnvFile::Template)
        );
        assert_eq!(env_file("env.py"), None);
        assert_eq!(env_file(".envrc"), None);
        assert_eq!(env_name(".env.production"), Some("production".into()));
        assert_eq!(env_name("docker-compose.stg.yml"), Some("staging".into()));
        assert_eq!(env_name("docker-compose.yml"), None);
    }
}
