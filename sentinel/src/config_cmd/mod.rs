//! `sentinel config default`: the whole default configuration as TOML, every key under its
//! doc comment. Generated from the configuration types themselves (their serde form for the
//! values, their doc comments through `schemars` for the words), so it cannot drift from what
//! the agent reads. `sentinel config check` is in check.rs.

pub mod check;

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigAction {
    /// Print the default configuration as TOML, every key commented.
    Default,
    /// Check a configuration file and show the line and column of each error (exit 3 when
    /// invalid). Default: --config, else /etc/sentinel/sentinel.toml.
    Check {
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

/// Runs `sentinel config ...`; `config` is the global `--config` flag.
pub fn run(args: ConfigArgs, config: Option<PathBuf>) -> anyhow::Result<i32> {
    match args.action {
        ConfigAction::Default => {
            print!("{}", default_toml());
            Ok(crate::exit::OK)
        }
        ConfigAction::Check { file } => Ok(check::run(file.or(config))),
    }
}

/// Comment lines are wrapped to this width.
const WIDTH: usize = 92;

/// The default configuration as commented TOML: parses back to `Config::default()`.
pub fn default_toml() -> String {
    let schema = serde_json::to_value(schemars::schema_for!(Config))
        .expect("a JSON schema always serialises");
    let values: toml_edit::DocumentMut = toml::to_string(&Config::default())
        .expect("the default configuration serialises to TOML")
        .parse()
        .expect("toml parses what it wrote");
    let mut out = String::from(
        "# Sentinel's configuration: every key with its default value (`sentinel config \
         default`).\n# Unset keys are shown commented out. Check a file with `sentinel config \
         check FILE`.\n",
    );
    render_table(
        &mut out,
        &[],
        &schema,
        &schema,
        Some(values.as_table()),
        false,
    );
    out
}

/// The schema a property points at: its `$ref` resolved, and of `Option<T>` the `T`.
pub(crate) fn resolve<'a>(s: &'a Value, root: &'a Value) -> &'a Value {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        if let Some(def) = root.get("$defs").and_then(|d| d.get(name)) {
            return resolve(def, root);
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let some: Vec<&Value> = alts
                .iter()
                .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if let [one] = some.as_slice() {
                return resolve(one, root);
            }
        }
    }
    s
}

/// A property's words: its own doc comment, else its type's.
pub(crate) fn description(prop: &Value, root: &Value) -> Option<String> {
    [prop, resolve(prop, root)]
        .iter()
        .find_map(|s| s.get("description").and_then(Value::as_str))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
}

/// The properties of an object schema (empty for anything else).
pub(crate) fn properties(s: &Value) -> Vec<(&String, &Value)> {
    s.get("properties")
        .and_then(Value::as_object)
        .map(|m| m.iter().collect())
        .unwrap_or_default()
}

pub(crate) fn is_table(s: &Value) -> bool {
    s.get("properties").is_some()
}

fn comment(out: &mut String, text: &str) {
    for para in text.split("\n\n") {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > WIDTH {
                let _ = writeln!(out, "# {line}");
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        let _ = writeln!(out, "# {line}");
    }
}

/// A value as TOML. An `f32` setting serializes through `f64` (0.2 becomes
/// 0.20000000298023224): a float that is exactly an `f32` is written as the `f32` reads.
fn value_text(v: &toml_edit::Value) -> String {
    if let Some(x) = v.as_float() {
        let short = x as f32;
        if f64::from(short) == x {
            return format!("{short:?}");
        }
    }
    v.clone().decorated("", "").to_string()
}

/// An example for a key that is unset by default: its default when the schema names one,
/// else an enum's first value, else by its type.
fn example(prop: &Value, target: &Value) -> String {
    let default = [prop, target]
        .iter()
        .find_map(|s| s.get("default"))
        .and_then(|d| toml::Value::try_from(d).ok());
    if let Some(d) = default {
        return d.to_string();
    }
    let first = target
        .get("enum")
        .and_then(|e| e.get(0))
        .or_else(|| {
            ["oneOf", "anyOf"]
                .iter()
                .find_map(|k| target.get(k).and_then(|alts| alts.get(0)))
                .and_then(|a| a.get("const"))
        })
        .and_then(Value::as_str);
    match first {
        Some(v) => format!("{v:?}"),
        None => unset_hint(target).to_string(),
    }
}

/// Whether a schema is an array of tables (`[[output]]`).
fn is_array_of_tables(s: &Value, root: &Value) -> bool {
    s.get("items").is_some_and(|i| is_table(resolve(i, root)))
}

/// An example for a key that is unset by default, by its type.
fn unset_hint(s: &Value) -> &'static str {
    // `Option<u64>` is `"type": ["integer", "null"]`.
    let ty = s.get("type").and_then(|t| match t {
        Value::Array(alts) => alts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        t => t.as_str(),
    });
    match ty {
        Some("integer") | Some("number") => "0",
        Some("boolean") => "false",
        Some("array") => "[]",
        _ => "\"\"",
    }
}

fn dotted(path: &[&str]) -> String {
    path.iter()
        .map(|p| toml_edit::Key::new(*p).display_repr().into_owned())
        .collect::<Vec<_>>()
        .join(".")
}

/// Writes one table's keys (with their comments) and then its sub-tables. `values` is the
/// serialized default (None: the whole table is unset and written commented out).
fn render_table(
    out: &mut String,
    path: &[&str],
    schema: &Value,
    root: &Value,
    values: Option<&toml_edit::Table>,
    commented: bool,
) {
    let mark = if commented { "# " } else { "" };
    let props = properties(schema);
    let mut tables = Vec::new();
    // Set keys in the order the type declares them (serde's order), then the unset ones.
    let mut order: Vec<&str> = values
        .map(|t| t.iter().map(|(k, _)| k).collect())
        .unwrap_or_default();
    for (k, _) in &props {
        if !order.contains(&k.as_str()) {
            order.push(k);
        }
    }
    for key in order {
        let Some(prop) = props.iter().find(|(k, _)| k.as_str() == key).map(|p| p.1) else {
            continue;
        };
        let target = resolve(prop, root);
        let item = values.and_then(|t| t.get(key));
        match item {
            Some(toml_edit::Item::Table(_)) | Some(toml_edit::Item::ArrayOfTables(_)) => {
                tables.push((key, prop, item));
                continue;
            }
            None if is_table(target) => {
                tables.push((key, prop, None));
                continue;
            }
            // An empty array of tables: an example entry, commented out, shows its keys.
            Some(toml_edit::Item::Value(toml_edit::Value::Array(a)))
                if a.is_empty() && is_array_of_tables(target, root) =>
            {
                tables.push((key, prop, None));
                continue;
            }
            _ => {}
        }
        out.push('\n');
        if let Some(d) = description(prop, root) {
            comment(out, &d);
        }
        let k = toml_edit::Key::new(key).display_repr().into_owned();
        match item.and_then(toml_edit::Item::as_value) {
            Some(v) => {
                let _ = writeln!(out, "{mark}{k} = {}", value_text(v));
            }
            // In a table that is unset as a whole, the table says so once.
            None if commented => {
                let _ = writeln!(out, "# {k} = {}", example(prop, target));
            }
            None => {
                let _ = writeln!(out, "# {k} = {}    (unset by default)", unset_hint(target));
            }
        }
    }
    for (key, prop, item) in tables {
        let mut sub: Vec<&str> = path.to_vec();
        sub.push(key);
        let target = resolve(prop, root);
        out.push('\n');
        if let Some(d) = description(prop, root) {
            comment(out, &d);
        }
        match item {
            Some(toml_edit::Item::Table(t)) => {
                let _ = writeln!(out, "{mark}[{}]", dotted(&sub));
                render_table(out, &sub, target, root, Some(t), commented);
            }
            Some(toml_edit::Item::ArrayOfTables(a)) => {
                let element = target.get("items").map(|i| resolve(i, root));
                for t in a.iter() {
                    let _ = writeln!(out, "{mark}[[{}]]", dotted(&sub));
                    render_table(
                        out,
                        &sub,
                        element.unwrap_or(target),
                        root,
                        Some(t),
                        commented,
                    );
                }
            }
            _ if is_array_of_tables(target, root) => {
                let element = target.get("items").map(|i| resolve(i, root));
                let _ = writeln!(
                    out,
                    "# [[{}]]    (none by default; each entry takes these keys)",
                    dotted(&sub)
                );
                render_table(out, &sub, element.unwrap_or(target), root, None, true);
            }
            _ => {
                let _ = writeln!(out, "# [{}]    (unset by default)", dotted(&sub));
                render_table(out, &sub, target, root, None, true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_default_parses_back_to_the_default() {
        let text = default_toml();
        let parsed = Config::parse(&text, std::path::Path::new("default.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(parsed, Config::default());
    }

    /// Every field of every section has a doc comment: a new key without one fails here.
    #[test]
    fn every_key_of_every_section_is_documented() {
        let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap();
        let mut missing = Vec::new();
        let mut seen = 0;
        fn walk(
            s: &Value,
            root: &Value,
            path: String,
            missing: &mut Vec<String>,
            seen: &mut usize,
        ) {
            for (k, prop) in properties(s) {
                *seen += 1;
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if description(prop, root).is_none() {
                    missing.push(p.clone());
                }
                let t = resolve(prop, root);
                let t = t.get("items").map(|i| resolve(i, root)).unwrap_or(t);
                walk(t, root, p, missing, seen);
            }
        }
        walk(&schema, &schema, String::new(), &mut missing, &mut seen);
        assert!(seen > 100, "only {seen} keys found: the walk is broken");
        assert!(
            missing.is_empty(),
            "keys without a doc comment: {missing:#?}"
        );
    }

    /// In the printed file itself, each key and table header follows a comment.
    #[test]
    fn every_printed_key_carries_a_comment() {
        let text = default_toml();
        let doc: toml_edit::DocumentMut = text.parse().unwrap();
        fn check(t: &toml_edit::Table, path: &str, keys: &mut usize) {
            for (k, item) in t.iter() {
                let p = format!("{path}{k}");
                match item {
                    toml_edit::Item::Table(sub) => {
                        let pre = sub.decor().prefix().and_then(|r| r.as_str()).unwrap_or("");
                        assert!(pre.contains("# "), "table [{p}] has no comment");
                        check(sub, &format!("{p}."), keys);
                    }
                    _ => {
                        *keys += 1;
                        let key = t.key(k).unwrap();
                        let pre = key
                            .leaf_decor()
                            .prefix()
                            .and_then(|r| r.as_str())
                            .unwrap_or("");
                        assert!(pre.contains("# "), "key {p} has no comment");
                    }
                }
            }
        }
        let mut keys = 0;
        check(doc.as_table(), "", &mut keys);
        assert!(keys > 100, "{keys} keys printed");
        // Unset keys are there too, commented out.
        assert!(text.contains("\n# host = "), "{text}");
        assert!(text.contains("# [server.alerts.email]"), "{text}");
    }
}
