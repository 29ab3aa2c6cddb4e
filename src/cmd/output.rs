//! Data on stdout: a JSON document for `--json`, or report lines for a person.
//!
//! A closed pipe (`aimem list | head`) is not an error: the reader has what it wanted, so
//! write failures are ignored here rather than turned into a panic by `println!`.

use std::io::Write;

use serde::Serialize;

/// One report line on stdout.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// Raw bytes on stdout (a generated script), write errors ignored as for [`line`].
pub fn bytes(data: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(data);
    let _ = out.flush();
}

/// The `--json` document: pretty, one per run, followed by a newline.
pub fn json(value: &impl Serialize) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    line(&text);
}
