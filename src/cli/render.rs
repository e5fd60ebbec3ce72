//! `cutover render kubernetes`: prints (or writes into a folder, one file
//! per object) the Kubernetes objects of one environment of the config
//! (src/render/kubernetes, docs/kubernetes.md). Reads the config only, and
//! no environment variable: `${VAR}` stays a reference
//! ([`crate::config::parse_unexpanded`]).

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::output;
use crate::exit::{self, CliError};
use crate::render::kubernetes::{self, Options, RenderError};

/// What to render.
#[derive(Debug, Subcommand)]
pub enum RenderCommand {
    /// The Kubernetes objects of one environment, as multi-document YAML:
    /// the ServiceAccount, Role and RoleBinding of cutover's in-cluster
    /// driver; per http service a Deployment of VERSION, Services
    /// NAME-stable and NAME-canary and a Gateway API HTTPRoute (weights
    /// stable 100, canary 0); per worker a Deployment. Values that may be
    /// secret (`${VAR}`, secret-looking names, URLs with a password) are
    /// read from a Secret that is not rendered; the output lists its keys.
    /// Only services with `driver = "docker"` (an image) can render; the
    /// others exit 2 naming what to add. Talks to no cluster
    /// (docs/kubernetes.md).
    #[command(disable_version_flag = true)]
    Kubernetes {
        /// Environment (may be omitted when the config has only one).
        #[arg(long = "env", short = 'e')]
        environment: Option<String>,
        /// The release to render: the image's {version} and the
        /// `cutover.release` label.
        #[arg(long = "version", value_name = "VERSION")]
        version: String,
        /// Write one file per object into DIR (created if missing),
        /// numbered in the order to apply them, instead of printing.
        #[arg(long = "out", visible_alias = "output", value_name = "DIR")]
        out: Option<PathBuf>,
        /// The objects' namespace (default: APP-ENV).
        #[arg(long, value_name = "NAME")]
        namespace: Option<String>,
        /// Also render the Namespace object.
        #[arg(long)]
        create_namespace: bool,
        /// The Gateway the HTTPRoutes attach to: NAME or NAMESPACE/NAME.
        #[arg(long, value_name = "GATEWAY", default_value = "cutover")]
        gateway: String,
        /// The Secret the values not written are read from (default: APP-ENV).
        #[arg(long, value_name = "NAME")]
        secret: Option<String>,
    },
}

fn usage(err: RenderError) -> CliError {
    let code = match err {
        RenderError::Serialize { .. } => exit::FAILURE,
        _ => exit::USAGE,
    };
    CliError::new(code, format!("cannot render: {err}"))
}

/// Runs `cutover render …`.
pub fn run(path: &Path, command: RenderCommand, json: bool) -> Result<(), CliError> {
    let RenderCommand::Kubernetes {
        environment,
        version,
        out,
        namespace,
        create_namespace,
        gateway,
        secret,
    } = command;
    let config_error = |e| CliError::new(exit::USAGE, output::render_config_error(e));
    let source = crate::config::read_source(path).map_err(config_error)?;
    let config = crate::config::parse_unexpanded(&source, path).map_err(config_error)?;
    let references = kubernetes::References::parse(&source);
    let options = Options {
        environment,
        version,
        namespace,
        create_namespace,
        gateway,
        secret,
    };
    let rendered = kubernetes::render(&config, &references, &options).map_err(usage)?;
    match out {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| {
                CliError::new(
                    exit::FAILURE,
                    format!(
                        "cannot create {}: {e}; check that its parent is writable",
                        dir.display()
                    ),
                )
            })?;
            let mut written = Vec::new();
            for (i, manifest) in rendered.manifests.iter().enumerate() {
                let target = dir.join(kubernetes::file_name(i, manifest));
                std::fs::write(&target, kubernetes::document(manifest)).map_err(|e| {
                    CliError::new(
                        exit::FAILURE,
                        format!(
                            "cannot write {}: {e}; check that {} is writable",
                            target.display(),
                            dir.display()
                        ),
                    )
                })?;
                written.push(target);
            }
            if json {
                return output::print_json(&serde_json::json!({
                    "environment": rendered.environment,
                    "namespace": rendered.namespace,
                    "written": written,
                    "secrets": rendered.secrets,
                }));
            }
            for file in &written {
                println!("wrote {}", file.display());
            }
            for (secret, keys) in &rendered.secrets {
                let list: Vec<&str> = keys.iter().map(String::as_str).collect();
                println!(
                    "Secret {secret} is not rendered and must exist in namespace {} first, with keys: {}",
                    rendered.namespace,
                    list.join(", ")
                );
            }
            Ok(())
        }
        None if json => output::print_json(&rendered),
        None => {
            print!("{}", kubernetes::to_yaml(&rendered));
            Ok(())
        }
    }
}
