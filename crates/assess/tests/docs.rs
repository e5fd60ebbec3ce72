//! docs/assess.md explains every rule and every fact: a rule or fact added
//! without a word in the docs fails here.

use std::path::Path;

fn docs() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/assess.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn every_rule_has_a_section_in_the_docs() {
    let docs = docs();
    let missing: Vec<&str> = cutover_assess::rules::catalogue()
        .map(|r| r.id)
        .filter(|id| !docs.contains(&format!("`{id}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "rules not in docs/assess.md: {missing:?}"
    );
}

#[test]
fn every_fact_is_named_in_the_docs() {
    let docs = docs();
    let missing: Vec<&str> = cutover_assess::areas::facts()
        .map(|f| f.id)
        .filter(|id| !docs.contains(&format!("`{id}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "facts not in docs/assess.md: {missing:?}"
    );
}
