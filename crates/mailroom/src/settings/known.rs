//! Refusing configuration Mailroom does not know: a mistyped key in the file or in a
//! `MAILROOM_` variable is an error naming the key and the nearest valid one, so an operator
//! never believes a setting took effect that did not.

use std::path::Path;

use figment::{
    Figment,
    providers::{Format, Toml},
};
use serde_json::Value;

use super::{Settings, SettingsError};

/// `MAILROOM_CONFIG` names the file itself (a command-line flag's variable), not a setting.
pub(super) const CONFIG_VAR: &str = "config";

/// The tree of every valid key, from the defaults (an absent optional value is still a key).
fn known_tree() -> Value {
    serde_json::to_value(Settings::default()).expect("the settings serialize")
}

/// Every valid dotted key that holds a value (not a table).
fn leaves(tree: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Object(map) = tree {
        for (k, v) in map {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            if v.is_object() {
                leaves(v, &key, out);
            } else {
                out.push(key);
            }
        }
    }
}

/// The first key of `given` (dotted) that the tree of known keys lacks.
fn first_unknown(given: &Value, known: &Value, prefix: &str) -> Option<String> {
    let (Value::Object(given), Value::Object(known)) = (given, known) else { return None };
    for (k, v) in given {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match known.get(k) {
            None => return Some(key),
            Some(kv) if kv.is_object() => {
                if let Some(found) = first_unknown(v, kv, &key) {
                    return Some(found);
                }
            }
            Some(_) => {}
        }
    }
    None
}

/// The valid key nearest to `key`, if one is near enough to be what was meant.
fn nearest(key: &str) -> Option<String> {
    let mut all = vec![];
    leaves(&known_tree(), "", &mut all);
    all.into_iter()
        .map(|k| (strsim::normalized_damerau_levenshtein(key, &k), k))
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Refuses a key in the TOML file that is not a setting.
pub(super) fn refuse_unknown_in_file(file: &Path) -> Result<(), SettingsError> {
    let given: Value = Figment::from(Toml::file_exact(file)).extract().map_err(Box::new)?;
    match first_unknown(&given, &known_tree(), "") {
        Some(key) => {
            Err(SettingsError::Unknown { suggestion: nearest(&key), key, origin: format!("in {}", file.display()) })
        }
        None => Ok(()),
    }
}

/// Refuses a `MAILROOM_...` variable that names no setting (`__` separates the levels).
pub(super) fn refuse_unknown_in_env<V>(vars: impl Iterator<Item = (String, V)>) -> Result<(), SettingsError> {
    let known = known_tree();
    for (name, _) in vars {
        // figment matches the prefix in any case, so this check does too.
        let Some(rest) = name.get(..9).filter(|p| p.eq_ignore_ascii_case("MAILROOM_")).map(|_| &name[9..]) else {
            continue;
        };
        let dotted = rest.to_lowercase().replace("__", ".");
        if dotted == CONFIG_VAR {
            continue;
        }
        let mut node = &known;
        let found = dotted.split('.').all(|part| match node.get(part) {
            Some(next) => {
                node = next;
                true
            }
            None => false,
        });
        // A table is not a value: `MAILROOM_VAULT=x` is as wrong as a misspelling.
        if !found || node.is_object() {
            let suggestion = nearest(&dotted).map(|k| format!("MAILROOM_{}", k.to_uppercase().replace('.', "__")));
            return Err(SettingsError::Unknown { key: name, origin: "in the environment".into(), suggestion });
        }
    }
    Ok(())
}
