//! The container passes never panic on broken input: every prefix of the
//! fixtures' Dockerfiles, compose files and manifests (cut mid-line, mid
//! continuation, mid heredoc), with lines swapped, assessed at once.

use std::fs;
use std::path::PathBuf;

use cutover_assess::{NoHooks, assess};

#[test]
fn truncated_and_shuffled_files_never_panic() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let sources = [
        ("node-compose/Dockerfile", "Dockerfile"),
        ("fastapi-celery/Dockerfile", "Dockerfile"),
        ("go-k8s/Dockerfile", "Dockerfile"),
        ("node-compose/docker-compose.yml", "docker-compose.yml"),
        ("fastapi-celery/docker-compose.yml", "docker-compose.yml"),
        ("go-k8s/k8s/deployment.yaml", "deployment.yaml"),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let mut n = 0;
    for (source, name) in sources {
        let text = fs::read_to_string(fixtures.join(source)).expect("fixture");
        let mut variants: Vec<String> = text
            .char_indices()
            .map(|(i, _)| i)
            .step_by(11)
            .map(|i| text[..i].to_string())
            .collect();
        let lines: Vec<&str> = text.lines().collect();
        for i in 1..lines.len() {
            let mut swapped = lines.clone();
            swapped.swap(i - 1, i);
            variants.push(swapped.join("\n"));
        }
        for v in variants {
            let d = dir.path().join(format!("v{n}"));
            fs::create_dir_all(&d).expect("mkdir");
            fs::write(d.join(name), v).expect("write");
            n += 1;
        }
    }
    let report = assess(dir.path(), &NoHooks).expect("assess");
    assert_eq!(report.files_scanned, n);
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.evidence.iter().all(|e| !e.path.is_empty()))
    );
}
