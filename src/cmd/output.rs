//! Data on stdout: a JSON document for `--json`, or report lines for a person.
//!
//! A closed pipe (`aimem list | head`) is not an error: the reader has what it wanted, so
//! write failures are ignored here rather than turned into a panic by `println!`.

use std::io::Write;

use serde::Serialize;

/// One report line on stdout, its control characters escaped ([`crate::terminal::escape`]:
/// report lines quote names and manifest fields). A closed pipe is fine; any other failure (a full disk behind
/// `> file`) is said on stderr, so a script does not silently get nothing.
pub fn line(text: &str) {
    use std::io::IsTerminal;
    let text = match std::io::stdout().is_terminal() {
        true => std::borrow::Cow::Borrowed(text),
        // Off a terminal aimem's own symbols (`✓`, `✗`) are written as ASCII words.
        false => crate::terminal::ascii_symbols(text),
    };
    write_line(&text);
}

fn write_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let text = crate::terminal::escape(text);
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("aimem: could not write to stdout: {e}");
        }
    }
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
    write_line(&text);
}
