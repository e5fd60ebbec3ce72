//! `cutover init [PATH]`: writes a starting `cutover.toml` from the
//! repository's own files (`cutover_assess::init`), refusing to overwrite one
//! unless `--force`.

use std::io::Write;
use std::path::Path;

use super::assess::CutoverHooks;
use crate::exit::{self, CliError};

/// Detects, renders and writes (or prints) the file.
pub fn init(path: &Path, stdout: bool, force: bool, json: bool) -> Result<(), CliError> {
    let usage = |e: cutover_assess::Error| CliError::new(exit::USAGE, e.to_string());
    let report = cutover_assess::assess(path, &CutoverHooks).map_err(usage)?;
    let repo = cutover_assess::repo::Repo::open(path).map_err(usage)?;
    let plan = cutover_assess::init::plan(&repo, &report.facts);
    let text = plan.render();
    if stdout {
        print!("{text}");
        return Ok(());
    }
    let target = path.join("cutover.toml");
    if target.exists() && !force {
        return Err(CliError::new(
            exit::USAGE,
            format!(
                "{} exists; pass --force to overwrite it, or --stdout to print the new one",
                target.display()
            ),
        ));
    }
    let mut file = std::fs::File::create(&target)
        .and_then(|mut f| f.write_all(text.as_bytes()).map(|()| f))
        .map_err(|e| {
            CliError::new(
                exit::FAILURE,
                format!("cannot write {}: {e}", target.display()),
            )
        })?;
    file.flush().map_err(|e| {
        CliError::new(
            exit::FAILURE,
            format!("cannot write {}: {e}", target.display()),
        )
    })?;
    if json {
        let services: Vec<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
        let out = serde_json::json!({
            "written": target.display().to_string(),
            "app": plan.app,
            "services": services,
            "environments": plan.environments,
            "todo": plan.todo,
        });
        println!("{out}");
    } else {
        println!("Wrote {}.", target.display());
        for s in &plan.services {
            let from = if s.source.path.is_empty() {
                String::new()
            } else {
                format!(" (from {})", s.source.location())
            };
            let kind = if s.http { "http" } else { "worker" };
            println!("  service {} ({kind}){from}", s.name);
        }
        if !plan.todo.is_empty() {
            println!("\nBefore the first deploy:");
            for t in &plan.todo {
                println!("  - {t}");
            }
        }
        println!("\nThen: `cutover check`, `cutover serve`, `cutover deploy VERSION`.");
    }
    Ok(())
}
