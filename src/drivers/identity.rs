//! What a release of one service is, as the driver that runs it sees it:
//! for a local process the sha256 of the program the process driver would
//! start (the command's first word, `{version}` filled in, resolved against
//! the working directory or looked up on `PATH`), for a container the
//! engine's id of the release's image. `runtime::identity` adds the
//! service's artifacts and combines the services into a release digest.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::DriverError;
use super::driver::Drivers;
use crate::config::DockerConfig;

/// One service whose release is identified ([`Drivers::identify`]).
#[derive(Debug, Clone, Copy)]
pub struct ServiceToIdentify<'a> {
    /// The service's name.
    pub service: &'a str,
    /// The release's version label.
    pub version: &'a str,
    /// The service's command (process driver).
    pub command: &'a [String],
    /// Its container settings; `None` when it runs as a local process.
    pub docker: Option<&'a DockerConfig>,
    /// Where relative program paths start (the config's directory).
    pub workdir: &'a Path,
}

/// One thing a release is made of, and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityPart {
    /// `executable`, `image` (or `artifact`, added by the runtime).
    pub kind: &'static str,
    /// What it is: the program or file as written (`{version}` filled
    /// in), or the image reference.
    pub name: String,
    /// Hex sha256 (for an image: the hex of its id); `None` when the
    /// program cannot be read now (the start will say why).
    pub sha256: Option<String>,
}

impl Drivers {
    /// What the release of `service` is; see the module doc. A program that
    /// cannot be read is not an error here (the deploy fails when it starts
    /// it, saying why); an image the engine cannot inspect is.
    pub async fn identify(
        &self,
        service: &ServiceToIdentify<'_>,
    ) -> Result<IdentityPart, DriverError> {
        match service.docker {
            Some(docker) => {
                let image = docker.image_for(service.version);
                let id = self.docker.image_id(&image).await?;
                let hex = id.strip_prefix("sha256:").unwrap_or(&id).to_owned();
                Ok(IdentityPart {
                    kind: "image",
                    name: image,
                    sha256: Some(hex),
                })
            }
            None => {
                let written = service
                    .command
                    .first()
                    .map(|w| w.replace("{version}", service.version))
                    .unwrap_or_default();
                let program = locate(&written, service.workdir);
                let sha256 = match program {
                    Some(path) => tokio::task::spawn_blocking(move || sha256_file(&path))
                        .await
                        .ok()
                        .and_then(Result::ok),
                    None => None,
                };
                Ok(IdentityPart {
                    kind: "executable",
                    name: written,
                    sha256,
                })
            }
        }
    }
}

/// The file the process driver would run for `written`: a path with a `/`
/// (relative ones from `workdir`), else the first match on `PATH`.
fn locate(written: &str, workdir: &Path) -> Option<PathBuf> {
    if written.is_empty() {
        return None;
    }
    let path = super::process::resolve_program(written, workdir);
    if written.contains('/') {
        return Some(path);
    }
    let search = std::env::var_os("PATH")?;
    std::env::split_paths(&search)
        .map(|dir| dir.join(written))
        .find(|candidate| candidate.is_file())
}

/// The hex sha256 of the file at `path`, read in pieces.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(buffer.get(..n).unwrap_or_default());
    }
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_a_file_and_finds_programs_as_the_process_driver_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("app");
        std::fs::write(&file, b"abc").expect("write");
        assert_eq!(
            sha256_file(&file).expect("hash"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(locate("./app", dir.path()), Some(dir.path().join("./app")));
        assert!(locate("sh", dir.path()).is_some_and(|p| p.ends_with("sh")));
        assert_eq!(locate("", dir.path()), None);
    }
}
