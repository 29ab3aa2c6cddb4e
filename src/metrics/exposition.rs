//! Prometheus' text exposition format (version 0.0.4), as aimem writes it and reads it back.
//!
//! Only what aimem itself writes is read back (`--metrics-file` keeps the series of other
//! operations and roots): a `# HELP` and a `# TYPE` line per metric, then its samples, one per
//! line, `name{label="value",...} value`. A line of any other shape is an error, so a file
//! that is not aimem's is never taken for one and overwritten.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One sample: a metric's name, its labels (sorted by name), and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// What a metric is, for its `# HELP` line (every aimem metric is a gauge).
pub type Help = fn(&str) -> Option<&'static str>;

/// The samples as text: grouped by metric (in the order each first appears), each group
/// under its `# HELP` (when `help` knows the name) and `# TYPE ... gauge` lines.
pub fn render(samples: &[Sample], help: Help) -> String {
    let mut names: Vec<&str> = Vec::new();
    for sample in samples {
        if !names.contains(&sample.name.as_str()) {
            names.push(&sample.name);
        }
    }
    let mut out = String::new();
    for name in names {
        if let Some(text) = help(name) {
            let _ = writeln!(out, "# HELP {name} {}", escape_help(text));
        }
        let _ = writeln!(out, "# TYPE {name} gauge");
        for sample in samples.iter().filter(|s| s.name == name) {
            out.push_str(name);
            if !sample.labels.is_empty() {
                out.push('{');
                let pairs: Vec<String> = sample
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_value(v)))
                    .collect();
                out.push_str(&pairs.join(","));
                out.push('}');
            }
            let _ = writeln!(out, " {}", number(sample.value));
        }
    }
    out
}

/// A value as the format writes numbers: integers without a fraction, `NaN` and infinities
/// by name.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A help text with `\` and newlines escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Whether `name` is a valid metric or label name: `[a-zA-Z_][a-zA-Z0-9_]*` (no colons:
/// aimem writes none).
pub fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads text [`render`] wrote back into samples; the line (1-based) and what is wrong with
/// it when a line is not of that shape, or names a metric `accept` refuses.
pub fn parse(text: &str, accept: impl Fn(&str) -> bool) -> Result<Vec<Sample>, (usize, String)> {
    let mut samples = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (kind, name) = (words.next(), words.next());
            let known = matches!(kind, Some("HELP" | "TYPE"));
            if !known || !name.is_some_and(|n| is_name(n) && accept(n)) {
                return Err((number, "not a HELP or TYPE line of an aimem metric".into()));
            }
            continue;
        }
        let sample = parse_sample(line).map_err(|why| (number, why))?;
        if !accept(&sample.name) {
            return Err((number, format!("`{}` is not an aimem metric", sample.name)));
        }
        samples.push(sample);
    }
    Ok(samples)
}

/// One sample line: `name`, optional `{label="value",...}`, a space, the value.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !is_name(name) {
        return Err("not a metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inside) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inside)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    // A timestamp after the value is allowed by the format; aimem writes none.
    let value = value.split(' ').next().unwrap_or_default();
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse::<f64>()
            .map_err(|_| "the value is not a number".to_string())?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `label="value",...}` and what follows the closing brace.
fn parse_labels(mut text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let equals = text.find('=').ok_or("a label without a value")?;
        let name = &text[..equals];
        if !is_name(name) {
            return Err("not a label name".into());
        }
        let quoted = text[equals + 1..]
            .strip_prefix('"')
            .ok_or("a label value without quotes")?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("a label value without its closing quote".into()),
                Some((at, '"')) => break at,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err("an unknown escape in a label value".into()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("the label `{name}` twice"));
        }
        text = &quoted[end + 1..];
        if let Some(after) = text.strip_prefix(',') {
            text = after;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    #[test]
    fn what_is_written_reads_back_the_same_hostile_label_values_included() {
        let samples = vec![
            sample(
                "aimemory_backup_bytes",
                &[("root", "/b\"ack\\ups\nx")],
                1234.0,
            ),
            sample("aimemory_backup_last_run_duration_seconds", &[], 1.25),
            sample(
                "aimemory_backup_bytes",
                &[("root", "s3://b/p"), ("operation", "backup")],
                0.0,
            ),
            sample(
                "aimemory_backup_last_run_timestamp_seconds",
                &[],
                1_765_000_000.5,
            ),
        ];
        let text = render(&samples, |name| match name {
            "aimemory_backup_bytes" => Some("Bytes.\nTwo lines"),
            _ => None,
        });
        assert!(text.starts_with("# HELP aimemory_backup_bytes Bytes.\\nTwo lines\n# TYPE aimemory_backup_bytes gauge\n"), "{text}");
        assert!(
            text.contains("aimemory_backup_bytes{root=\"/b\\\"ack\\\\ups\\nx\"} 1234\n"),
            "{text}"
        );
        let back = parse(&text, |n| n.starts_with("aimemory_backup_")).unwrap();
        // Grouped by metric, as written.
        let mut expected = samples.clone();
        expected.swap(1, 2);
        assert_eq!(back, expected);
    }

    #[test]
    fn a_line_aimem_does_not_write_is_refused_with_its_number() {
        let accept = |n: &str| n.starts_with("aimemory_backup_");
        for (text, line) in [
            ("aimemory_backup_bytes 1\nnode_load1 0.5\n", 2),
            ("# TYPE other_metric gauge\n", 1),
            ("# some comment\n", 1),
            ("aimemory_backup_bytes{root=\"x} 1\n", 1),
            ("aimemory_backup_bytes{root=\"x\",root=\"y\"} 1\n", 1),
            ("aimemory_backup_bytes{root=\"\\t\"} 1\n", 1),
            ("aimemory_backup_bytes one\n", 1),
            ("aimemory_backup_bytes\n", 1),
            ("{root=\"x\"} 1\n", 1),
        ] {
            assert_eq!(parse(text, accept).unwrap_err().0, line, "{text:?}");
        }
        assert!(parse("", accept).unwrap().is_empty());
    }

    #[test]
    fn numbers_are_written_as_the_format_reads_them() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(1e20), "100000000000000000000");
    }
}
