//! The README's first command.

#[test]
fn the_demo_deploys_v1_v2_and_rolls_back_a_bad_v3_with_no_other_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["demo", "--no-wait", "--dir"])
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("run demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("v2 serves all traffic"), "{text}");
    assert!(text.contains("v3 was rolled back automatically"), "{text}");
    assert!(text.contains("0 failed;"), "{text}");
    assert!(text.contains("0 failed elsewhere"), "{text}");
}
