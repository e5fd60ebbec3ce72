//! [`json_schema`]: the JSON Schema of `cutover.toml`, for editors (e.g.
//! Taplo / Even Better TOML) and tools that write the file.

use serde_json::{Map, Value};

use super::raw::RawConfig;

/// The JSON Schema (draft 2020-12) of the config file, derived from the same
/// structs the file is read into.
pub fn json_schema() -> Value {
    let mut schema = schemars::schema_for!(RawConfig).to_value();
    remove_null(&mut schema);
    add_environment_database(&mut schema);
    schema
}

/// `[environment.NAME.database.DB]` has the keys of `[database.DB]`, none
/// required (they are merged over a top-level `[database.DB]`; a database of
/// the environment alone needs `url`, which `cutover check` says).
fn add_environment_database(schema: &mut Value) {
    let Some(defs) = schema.get_mut("$defs").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(Value::Object(database)) = defs.get("Database") else {
        return;
    };
    let mut database = database.clone();
    database.remove("required");
    database.insert(
        "description".to_owned(),
        Value::String(
            "`[environment.NAME.database.DB]`: this environment's version of database DB: keys \
             merged over a top-level `[database.DB]` (typically `url` and `backup.dir`), or a whole \
             database of this environment (then `url` is required)."
                .to_owned(),
        ),
    );
    defs.insert("EnvironmentDatabase".to_owned(), Value::Object(database));
}

/// TOML has no null: an omitted key is how a value is left out. schemars
/// describes `Option<T>` as "T or null"; this makes it plain "T".
fn remove_null(value: &mut Value) {
    match value {
        Value::Object(object) => {
            strip_null_type(object);
            unwrap_null_any_of(object);
            object.values_mut().for_each(remove_null);
        }
        Value::Array(items) => items.iter_mut().for_each(remove_null),
        _ => {}
    }
}

/// `"type": ["string", "null"]` → `"type": "string"`.
fn strip_null_type(object: &mut Map<String, Value>) {
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            object.insert("type".to_owned(), only);
        }
    }
}

/// `"anyOf": [{"$ref": …}, {"type": "null"}]` → `"$ref": …`.
fn unwrap_null_any_of(object: &mut Map<String, Value>) {
    let is_null = |v: &Value| v.get("type").is_some_and(|t| t == "null");
    let Some(Value::Array(options)) = object.get("anyOf") else {
        return;
    };
    if !options.iter().any(is_null) {
        return;
    }
    let rest: Vec<Value> = options.iter().filter(|v| !is_null(v)).cloned().collect();
    object.remove("anyOf");
    match <[Value; 1]>::try_from(rest) {
        Ok([Value::Object(only)]) => {
            for (key, value) in only {
                object.entry(key).or_insert(value);
            }
        }
        Ok([other]) => {
            object.insert("anyOf".to_owned(), Value::Array(vec![other]));
        }
        Err(rest) => {
            object.insert("anyOf".to_owned(), Value::Array(rest));
        }
    }
}
