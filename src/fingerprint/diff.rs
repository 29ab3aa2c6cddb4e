//! Field-by-field differences between two fingerprints, and whether each blocks a restore.

use serde_json::Value;

use super::Fingerprint;

/// Whether a difference makes a restore unsafe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The structure differs: restoring would give a broken or different collection.
    Blocking,
    /// Operational settings only (replication, write consistency, on-disk payload): reported, not refused.
    Warning,
}

/// One differing leaf, as a dotted path with both sides (`None` means absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub path: String,
    pub left: Option<Value>,
    pub right: Option<Value>,
    pub severity: Severity,
}

impl Difference {
    /// `params.vectors.size: 768 (backup) vs 1024 (live)`.
    pub fn describe(&self, left_label: &str, right_label: &str) -> String {
        let index = self.path.starts_with("payload_schema.");
        format!(
            "{}: {} ({left_label}) vs {} ({right_label})",
            self.path,
            show(self.left.as_ref(), index),
            show(self.right.as_ref(), index)
        )
    }
}

fn show(value: Option<&Value>, payload_index: bool) -> String {
    match value {
        None => "absent".to_string(),
        Some(index) if payload_index && index.get("data_type").is_some() => {
            let kind = show(index.get("data_type"), false);
            match index.get("params") {
                Some(params) => format!("{kind} index {params}"),
                None => format!("{kind} index"),
            }
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Paths under `params` that a restore may differ in with only a warning.
const WARNING_PARAMS: [&str; 5] = [
    "replication_factor",
    "write_consistency_factor",
    "on_disk_payload",
    "read_fan_out_factor",
    "read_fan_out_delay_ms",
];

fn severity(path: &[&str]) -> Severity {
    match path {
        ["params", key, ..] if WARNING_PARAMS.contains(key) => Severity::Warning,
        _ => Severity::Blocking,
    }
}

/// Every difference between `left` and `right`, blocking ones first, then by path.
pub fn diff(left: &Fingerprint, right: &Fingerprint) -> Vec<Difference> {
    let mut out = Vec::new();
    walk(
        &mut Vec::new(),
        Some(left.as_value()),
        Some(right.as_value()),
        &mut out,
    );
    out.sort_by(|a, b| (a.severity, &a.path).cmp(&(b.severity, &b.path)));
    out
}

fn walk<'a>(
    path: &mut Vec<&'a str>,
    left: Option<&'a Value>,
    right: Option<&'a Value>,
    out: &mut Vec<Difference>,
) {
    match (left, right) {
        (Some(Value::Object(l)), Some(Value::Object(r))) if !is_payload_index(path) => {
            let mut keys: Vec<&String> = l.keys().chain(r.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                path.push(key);
                walk(path, l.get(key.as_str()), r.get(key.as_str()), out);
                path.pop();
            }
        }
        (l, r) if l == r => {}
        (l, r) => out.push(Difference {
            path: path.join("."),
            left: l.cloned(),
            right: r.cloned(),
            severity: severity(path),
        }),
    }
}

/// A payload index is compared whole: "`tag`: keyword vs absent" reads better than its parts.
fn is_payload_index(path: &[&str]) -> bool {
    path.len() == 2 && path[0] == "payload_schema"
}
