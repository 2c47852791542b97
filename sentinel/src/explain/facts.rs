//! Facts about host snapshots for the prompt: the snapshot itself as prioritised,
//! addressable facts (ids are JSON paths), and the structured diff of two snapshots.
//! Written against the C-Sentinel fingerprint schema (system, process_summary, config_files,
//! network, audit_summary) but generic over any JSON object.

use serde_json::{Map, Value, json};

use super::prompt::{Fact, redact_json};
use super::redact::{Counts, Redactor};

/// Fields that change on every probe and say nothing about the host.
const IGNORED: &[&str] = &["probe_time", "probe_duration_ms", "probe_errors"];
/// Fields that drift all the time: kept, but last in line for the budget.
const VOLATILE: &[&str] = &[
    "uptime_days",
    "load_average",
    "memory_free_gb",
    "memory_used_percent",
    "age_days",
    "cpu_percent",
    "memory_mb",
    "total_established",
    "connections",
];

fn priority(path: &str) -> u32 {
    let table: &[(&str, u32)] = &[
        ("findings", 950),
        ("audit_summary.risk_factors", 890),
        ("audit_summary.anomalies", 885),
        ("audit_summary", 700),
        ("network.listeners", 800),
        ("config_files", 780),
        ("system", 760),
        ("process_summary.notable_processes", 700),
        ("process_summary", 650),
        ("network.connections", 300),
        ("network", 640),
    ];
    let base = table
        .iter()
        .find(|(p, _)| path.starts_with(p))
        .map(|(_, w)| *w)
        .unwrap_or(500);
    let leaf = path.rsplit(['.', '[']).next().unwrap_or(path);
    if VOLATILE.iter().any(|v| leaf.starts_with(v)) {
        base.min(200)
    } else {
        base
    }
}

/// Items a probe already marked come first: security warnings far ahead of resource flags.
fn boost(v: &Value) -> u32 {
    let marked = |k: &str| match v.get(k) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Null) | None => false,
        Some(_) => true,
    };
    if marked("warning") || marked("suspicious") || marked("unusual") {
        300
    } else if marked("flag") {
        50
    } else {
        0
    }
}

/// A stable name for an array element, so ids and diffs survive reordering.
pub fn identity(v: &Value) -> Option<String> {
    let s = |k: &str| {
        v.get(k).and_then(|x| match x {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    if let Some(p) = s("path") {
        return Some(p);
    }
    if let Some(lp) = s("local_port") {
        return Some(format!(
            "{}/{}:{lp}->{}:{}",
            s("protocol").unwrap_or_default(),
            s("local_addr").unwrap_or_default(),
            s("remote_addr").unwrap_or_default(),
            s("remote_port").unwrap_or_default()
        ));
    }
    if let Some(port) = s("port") {
        return Some(format!(
            "{}/{}:{port}",
            s("protocol").unwrap_or_default(),
            s("address").unwrap_or_default()
        ));
    }
    if let Some(pid) = s("pid") {
        return Some(format!("{pid}/{}", s("name").unwrap_or_default()));
    }
    ["name", "id", "type", "detection"]
        .iter()
        .find_map(|k| s(k))
}

fn compact(v: &Value, r: &Redactor, c: &mut Counts) -> String {
    redact_json(v, r, c).to_string()
}

/// A unique id for an array element: its identity, or its index when the identity is
/// missing or already taken by an earlier element.
fn element_id(
    base: &str,
    i: usize,
    item: &Value,
    r: &Redactor,
    c: &mut Counts,
    seen: &mut std::collections::HashSet<String>,
) -> String {
    let id = match identity(item) {
        Some(id) => format!("{base}[{}]", r.text_counted(&id, c)),
        None => format!("{base}[{i}]"),
    };
    if seen.insert(id.clone()) {
        id
    } else {
        let id = format!("{base}[{i}]");
        seen.insert(id.clone());
        id
    }
}

/// Long arrays should not crowd out other sections: after the first five elements, each
/// further one ranks well below the section's other facts.
fn position_penalty(i: usize) -> u32 {
    if i < 5 {
        i as u32 * 5
    } else {
        300 + i.min(500) as u32
    }
}

pub fn snapshot_facts(v: &Value, r: &Redactor, c: &mut Counts) -> Vec<Fact> {
    let mut facts = Vec::new();
    let Some(top) = v.as_object() else {
        let mut f = Fact::new("Snapshot", None, compact(v, r, c), 1000);
        f.required = true;
        return vec![f];
    };
    let scalars: Map<String, Value> = top
        .iter()
        .filter(|(k, v)| !v.is_object() && !v.is_array() && !IGNORED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut head = Fact::new(
        "Snapshot",
        None,
        compact(&Value::Object(scalars), r, c),
        1000,
    );
    head.required = true;
    facts.push(head);
    for (k, val) in top {
        let section: &'static str = section_name(k);
        match val {
            Value::Object(m) => {
                let own: Map<String, Value> = m
                    .iter()
                    .filter(|(_, v)| !v.is_object() && !v.is_array())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !own.is_empty() {
                    let text = compact(&Value::Object(own), r, c);
                    // A section's own scalars are small and give the context for the rest.
                    let p = if k == "system" {
                        920
                    } else {
                        (priority(k) + 10).max(800)
                    };
                    facts.push(Fact::new(section, Some(k.clone()), text, p));
                }
                for (ck, cv) in m {
                    if empty(cv) {
                        continue;
                    }
                    let path = format!("{k}.{ck}");
                    match cv {
                        Value::Array(items) if items.iter().any(Value::is_object) => {
                            let mut seen = std::collections::HashSet::new();
                            for (i, item) in items.iter().enumerate() {
                                let id = element_id(&path, i, item, r, c, &mut seen);
                                let text = compact(item, r, c);
                                let p = (priority(&path) + boost(item))
                                    .saturating_sub(position_penalty(i));
                                facts.push(Fact::new(section, Some(id), text, p));
                            }
                        }
                        Value::Array(_) | Value::Object(_) => {
                            let text = compact(cv, r, c);
                            facts.push(Fact::new(
                                section,
                                Some(path.clone()),
                                text,
                                priority(&path),
                            ));
                        }
                        _ => {}
                    }
                }
            }
            Value::Array(items) => {
                let mut seen = std::collections::HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    let id = element_id(k, i, item, r, c, &mut seen);
                    let text = compact(item, r, c);
                    let p = (priority(k) + boost(item)).saturating_sub(position_penalty(i));
                    facts.push(Fact::new(section, Some(id), text, p));
                }
            }
            _ => {}
        }
    }
    facts
}

fn empty(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

fn section_name(k: &str) -> &'static str {
    match k {
        "system" => "System",
        "process_summary" => "Processes",
        "config_files" => "Configuration files",
        "network" => "Network",
        "audit_summary" => "Audit summary",
        "findings" => "Findings (Sentinel's snapshot rules, most severe first)",
        _ => "Other",
    }
}

/// The structured difference of two snapshots: `{before, after, changes: [{path, change,
/// before?, after?}]}`; arrays of records are matched by `identity`, not by position.
pub fn diff(a: &Value, b: &Value) -> Value {
    let mut changes = Vec::new();
    walk("", a, b, &mut changes);
    let meta = |v: &Value| {
        json!({
            "probe_time": v.get("probe_time").cloned().unwrap_or(Value::Null),
            "hostname": v.pointer("/system/hostname").cloned().unwrap_or(Value::Null),
        })
    };
    json!({"before": meta(a), "after": meta(b), "changes": changes})
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn change(path: String, kind: &str, before: Option<&Value>, after: Option<&Value>) -> Value {
    let mut m = Map::new();
    m.insert("path".into(), Value::String(path));
    m.insert("change".into(), Value::String(kind.into()));
    if let Some(b) = before {
        m.insert("before".into(), b.clone());
    }
    if let Some(a) = after {
        m.insert("after".into(), a.clone());
    }
    Value::Object(m)
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<Value>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                if IGNORED.contains(&k.as_str()) {
                    continue;
                }
                let p = join(path, k);
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => walk(&p, va, vb, out),
                    (None, Some(vb)) => out.push(change(p, "added", None, Some(vb))),
                    (Some(va), None) => out.push(change(p, "removed", Some(va), None)),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if a != b => {
            let keyed = |items: &Vec<Value>| -> Option<Vec<(String, Value)>> {
                items
                    .iter()
                    .map(|i| identity(i).map(|id| (id, i.clone())))
                    .collect()
            };
            match (keyed(x), keyed(y)) {
                (Some(kx), Some(ky)) if !kx.is_empty() || !ky.is_empty() => {
                    for (id, va) in &kx {
                        let p = format!("{path}[{id}]");
                        match ky.iter().find(|(j, _)| j == id) {
                            Some((_, vb)) => walk(&p, va, vb, out),
                            None => out.push(change(p, "removed", Some(va), None)),
                        }
                    }
                    for (id, vb) in &ky {
                        if !kx.iter().any(|(j, _)| j == id) {
                            out.push(change(format!("{path}[{id}]"), "added", None, Some(vb)));
                        }
                    }
                }
                _ if x.iter().all(|v| !v.is_object()) && y.iter().all(|v| !v.is_object()) => {
                    if path
                        .rsplit('.')
                        .next()
                        .is_some_and(|l| VOLATILE.contains(&l))
                    {
                        out.push(change(path.to_string(), "changed", Some(a), Some(b)));
                        return;
                    }
                    for v in x.iter().filter(|v| !y.contains(v)) {
                        out.push(change(format!("{path}[]"), "removed", Some(v), None));
                    }
                    for v in y.iter().filter(|v| !x.contains(v)) {
                        out.push(change(format!("{path}[]"), "added", None, Some(v)));
                    }
                }
                _ => out.push(change(path.to_string(), "changed", Some(a), Some(b))),
            }
        }
        _ if a != b => out.push(change(path.to_string(), "changed", Some(a), Some(b))),
        _ => {}
    }
}

/// How much one diff change matters: by section, additions and removals over edits, and
/// items a probe flagged (a new `warning`, a world-writable file) first.
pub fn change_priority(ch: &Value) -> u32 {
    let path = ch.get("path").and_then(Value::as_str).unwrap_or("");
    let kind = ch
        .get("change")
        .and_then(Value::as_str)
        .unwrap_or("changed");
    let bonus = if kind == "changed" { 0 } else { 50 };
    let flagged = if path.ends_with(".warning") || path.ends_with(".suspicious") {
        300
    } else {
        ch.get("after")
            .or_else(|| ch.get("before"))
            .map(boost)
            .unwrap_or(0)
    };
    priority(path) + bonus + flagged
}

pub fn diff_facts(d: &Value, r: &Redactor, c: &mut Counts) -> Vec<Fact> {
    let changes = d
        .get("changes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let when = |k: &str| {
        d.pointer(&format!("/{k}/probe_time"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                d.pointer(&format!("/{k}/probe_time"))
                    .and_then(Value::as_i64)
                    .map(crate::timefmt::rfc3339_secs)
            })
            .unwrap_or_else(|| "unknown time".into())
    };
    let mut head = Fact::new(
        "Diff",
        None,
        format!(
            "{} changes between the snapshot of {} (before) and {} (after)",
            changes.len(),
            when("before"),
            when("after")
        ),
        1000,
    );
    head.required = true;
    let mut facts = vec![head];
    for ch in &changes {
        let path = ch.get("path").and_then(Value::as_str).unwrap_or("");
        let kind = ch
            .get("change")
            .and_then(Value::as_str)
            .unwrap_or("changed");
        let show = |k: &str, c: &mut Counts| {
            ch.get(k)
                .map(|v| compact(v, r, c))
                .unwrap_or_else(|| "-".into())
        };
        let text = match kind {
            "added" => format!("added {}", show("after", c)),
            "removed" => format!("removed {}", show("before", c)),
            _ => format!("changed {} -> {}", show("before", c), show("after", c)),
        };
        facts.push(Fact::new(
            "Changes",
            Some(r.text_counted(path, c)),
            text,
            change_priority(ch),
        ));
    }
    facts
}
