//! JSON values as YAML text, through yaml-rust2's emitter (which quotes
//! every string that would otherwise read as another type: `"80"`,
//! `"true"`, `""`).

use yaml_rust2::YamlEmitter;
use yaml_rust2::yaml::{Hash, Yaml};

fn convert(value: &serde_json::Value) -> Yaml {
    match value {
        serde_json::Value::Null => Yaml::Null,
        serde_json::Value::Bool(b) => Yaml::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        serde_json::Value::String(s) => Yaml::String(s.clone()),
        serde_json::Value::Array(items) => Yaml::Array(items.iter().map(convert).collect()),
        serde_json::Value::Object(map) => {
            let mut hash = Hash::new();
            for (key, value) in map {
                hash.insert(Yaml::String(key.clone()), convert(value));
            }
            Yaml::Hash(hash)
        }
    }
}

/// `value` as one YAML document, without the `---` line, ending in a newline.
pub fn to_yaml(value: &serde_json::Value) -> String {
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    // Writing to a String cannot fail; a failure would leave `out` short,
    // which the schema tests would catch.
    let _ = emitter.dump(&convert(value));
    let body = out.strip_prefix("---\n").unwrap_or(&out);
    format!("{body}\n")
}
