//! Deploy tooling recognised by file name, recorded as the `deploy.script`
//! fact (run by the `kubernetes` pass, which owns deployment manifests):
//! Kamal (`config/deploy.yml`), Helm (`Chart.yaml`), Skaffold, Kustomize,
//! Fly.io (`fly.toml`), Render (`render.yaml`), Capistrano
//! (`config/deploy.rb`), Ansible playbooks with `hosts:`, a `deploy:` target
//! in a Makefile, and shell deploy scripts (`deploy*.sh`, `bin/deploy`,
//! `scripts/deploy`). A `Procfile` is not a deploy: it lists processes, not
//! how a release reaches a server.

use super::Context;
use crate::finding::Evidence;
use crate::repo::RepoFile;
use crate::yaml;

/// The 1-based line of the first line of `text` starting with `prefix`.
fn line_starting(text: &str, prefix: &str) -> Option<usize> {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .map(|i| i + 1)
}

/// What tool a file belongs to, and the line that shows it (0: the file).
fn recognise(cx: &Context<'_>, file: &RepoFile) -> Option<(String, usize)> {
    let name = file.name.as_str();
    let lower = name.to_ascii_lowercase();
    let ext = file.ext();
    let text = || cx.repo.text(file);
    match lower.as_str() {
        "chart.yaml" => {
            let t = text()?;
            let line = line_starting(t, "name:")?;
            return Some(("Helm chart".into(), line));
        }
        "skaffold.yaml" | "skaffold.yml" => return Some(("Skaffold".into(), 0)),
        "kustomization.yaml" | "kustomization.yml" => return Some(("Kustomize".into(), 0)),
        "fly.toml" => {
            let line = text().and_then(|t| line_starting(t, "app")).unwrap_or(0);
            return Some(("Fly.io".into(), line));
        }
        "render.yaml" => {
            let line = text().and_then(|t| line_starting(t, "services:"))?;
            return Some(("Render blueprint".into(), line));
        }
        "makefile" | "gnumakefile" => {
            let line = text().and_then(|t| {
                t.lines()
                    .position(|l| l.starts_with("deploy:") || l.starts_with("deploy "))
                    .map(|i| i + 1)
            })?;
            return Some(("a `deploy` target in the Makefile".into(), line));
        }
        _ => {}
    }
    if file.dir() == "config" || file.dir().ends_with("/config") {
        if (lower.starts_with("deploy.") || lower == "deploy.yml")
            && matches!(ext.as_str(), "yml" | "yaml")
        {
            let t = text()?;
            if t.contains("service:") && t.contains("image:") {
                let line = line_starting(t, "service:").unwrap_or(0);
                return Some(("Kamal".into(), line));
            }
        }
        if lower == "deploy.rb" {
            return Some(("Capistrano".into(), 0));
        }
    }
    if matches!(ext.as_str(), "yml" | "yaml")
        && (lower.starts_with("playbook") || lower.starts_with("deploy") || lower == "site.yml")
    {
        let t = text()?;
        let doc = yaml::parse_one(t)?;
        let play = doc.items().iter().find(|p| p.get("hosts").is_some())?;
        let line = play.entry("hosts").map(|(k, _)| k.line).unwrap_or(0);
        return Some(("Ansible playbook".into(), line));
    }
    let shell = matches!(ext.as_str(), "sh" | "bash");
    let bare = ext.is_empty() && (file.in_dir("bin") || file.in_dir("scripts"));
    if lower.starts_with("deploy") && (shell || bare) {
        return Some(("shell deploy script".into(), 0));
    }
    None
}

/// Records `deploy.script` for each recognised file.
pub fn run(cx: &mut Context<'_>) {
    let found: Vec<(String, String, usize)> = cx
        .repo
        .files()
        .iter()
        .filter(|f| !super::dockerfile::in_test_folder(f))
        .filter_map(|f| recognise(cx, f).map(|(what, line)| (f.path.clone(), what, line)))
        .collect();
    for (path, what, line) in found {
        let evidence = match (line, cx.repo.text_of(&path)) {
            (0, _) | (_, None) => Evidence::file(&path),
            (line, Some(text)) => Evidence::at(&path, text, line),
        };
        cx.fact("deploy.script", what, evidence);
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::dockerfile::tests::scan;

    #[test]
    fn deploy_tools_by_file_name() {
        let (_, facts) = scan(
            &[
                (
                    "config/deploy.yml",
                    "service: shop\nimage: acme/shop\nservers: [1.2.3.4]\n",
                ),
                ("charts/shop/Chart.yaml", "apiVersion: v2\nname: shop\n"),
                ("deploy.sh", "#!/bin/sh\nscp app server:\n"),
                ("bin/deploy", "#!/bin/sh\n"),
                (
                    "Makefile",
                    "test:\n\tgo test\ndeploy: build\n\tkamal deploy\n",
                ),
                ("ansible/site.yml", "- hosts: web\n  roles: [app]\n"),
                ("fly.toml", "# fly\napp = \"shop\"\n"),
                ("Procfile", "web: node server.js\n"),
                ("docs/deploy.md", "how we deploy\n"),
                ("config/deploy.example.yml", "just: notes\n"),
            ],
            "none",
        );
        let mut got: Vec<String> = facts
            .iter()
            .filter(|f| f.id == "deploy.script")
            .map(|f| format!("{} {}", f.evidence.location(), f.detail))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "Makefile:3 a `deploy` target in the Makefile",
                "ansible/site.yml:1 Ansible playbook",
                "bin/deploy shell deploy script",
                "charts/shop/Chart.yaml:2 Helm chart",
                "config/deploy.yml:1 Kamal",
                "deploy.sh shell deploy script",
                "fly.toml:2 Fly.io",
            ]
        );
    }
}
