//! Data on stdout: a JSON document for `--json`, or report lines for a person.
//!
//! A closed pipe (`aimem list | head`) is not an error: the reader has what it wanted. Any
//! other failure to write (a full disk behind `> file`, `/dev/full`) is: the first one is kept,
//! nothing more is written after it, and the run ends with [`Exit::OutputFailed`], the error
//! said once ([`write_failure`]).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use miette::Diagnostic;
use serde::Serialize;

use crate::exit::Exit;

/// The first failure to write to stdout (a closed pipe is none); set once, read by `main`.
static WRITE_FAILURE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Writes `data` and flushes stdout, unless an earlier write failed. A closed pipe is fine;
/// any other failure is kept for [`write_failure`] and stops later writes.
fn write_out(data: &[u8]) {
    if WRITE_FAILURE.get().is_some() {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(data).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = WRITE_FAILURE.set(e.to_string());
        }
    }
}

/// Why writing to stdout failed, if it did: the run's data did not all reach its reader.
pub fn write_failure() -> Option<&'static str> {
    WRITE_FAILURE.get().map(String::as_str)
}

/// One report line on stdout, its control characters escaped ([`crate::terminal::escape`]:
/// report lines quote names and manifest fields). See [`write_out`] for failures.
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
    let text = crate::terminal::escape(text);
    write_out(format!("{text}\n").as_bytes());
}

/// Raw bytes on stdout (a generated script), failures as for [`line`].
pub fn bytes(data: &[u8]) {
    write_out(data);
}

/// The version of every `--json` document's shape (README, "JSON output"). Raised when a field
/// changes meaning or goes away; new fields do not raise it.
pub const JSON_VERSION: u32 = 1;

/// Whether this run was asked for `--json` (set once by `main`).
static JSON_MODE: AtomicBool = AtomicBool::new(false);

/// The run's document, held until the run's outcome is known so a failure can be added to it,
/// and whether the one document has been written (by `main`, or by the signal thread).
static DOCUMENT: Mutex<Document> = Mutex::new(Document {
    body: None,
    written: false,
});

struct Document {
    /// The command's document, pretty-printed, `version` first.
    body: Option<String>,
    written: bool,
}

/// `{"version": …, <the command's fields>}`.
#[derive(Serialize)]
struct Versioned<'a, T: Serialize> {
    version: u32,
    #[serde(flatten)]
    body: &'a T,
}

/// Says whether stdout carries one JSON document for this run (`--json`).
pub fn set_json_mode(on: bool) {
    JSON_MODE.store(on, Ordering::SeqCst);
}

pub fn json_mode() -> bool {
    JSON_MODE.load(Ordering::SeqCst)
}

/// The `--json` document of the run. It is written once the run ends ([`finish`]), with the
/// error beside the command's fields when the run fails; a later call replaces an earlier one.
pub fn json(value: &impl Serialize) {
    let text = serde_json::to_string_pretty(&Versioned {
        version: JSON_VERSION,
        body: value,
    })
    .unwrap_or_else(|_| format!("{{\n  \"version\": {JSON_VERSION}\n}}"));
    document().body = Some(text);
}

/// Writes the run's one document in `--json` mode: the command's, with `error` added when the
/// run failed, or `{"version", "error"}` when the command had none yet. Later calls write
/// nothing.
pub fn finish(error: Option<&ErrorDocument>) {
    if !json_mode() {
        return;
    }
    write_document(&mut document(), error);
}

/// [`finish`] for the signal thread, just before it ends the process: the document with an
/// `interrupted` error. It waits a bounded time for the main thread if that is writing the
/// document right now (then the document is out and nothing more is written), so a signal
/// always ends aimem.
pub fn finish_on_signal(exit: Exit) {
    if !json_mode() {
        return;
    }
    let error = ErrorDocument::plain(
        exit,
        "stopped by a signal".to_string(),
        Some(
            "Nothing was left half made outside a cleanup; run the command again when convenient."
                .to_string(),
        ),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match DOCUMENT.try_lock() {
            Ok(mut document) => return write_document(&mut document, Some(&error)),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                return write_document(&mut poisoned.into_inner(), Some(&error));
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                if std::time::Instant::now() > deadline {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

fn write_document(document: &mut Document, error: Option<&ErrorDocument>) {
    if std::mem::replace(&mut document.written, true) {
        return;
    }
    let body = document
        .body
        .take()
        .unwrap_or_else(|| format!("{{\n  \"version\": {JSON_VERSION}\n}}"));
    let text = match error {
        None => body,
        Some(error) => with_field(&body, "error", error),
    };
    write_json(&text);
}

/// `document` (a pretty JSON object) with `"key": value` added as its last field.
fn with_field(document: &str, key: &str, value: &impl Serialize) -> String {
    let value = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    // Pretty JSON breaks lines only between tokens (strings escape theirs), so indenting
    // every line nests the value one level down.
    let value = value.replace('\n', "\n  ");
    let head = document.trim_end();
    let head = head.strip_suffix('}').unwrap_or(head).trim_end();
    let separator = if head.ends_with('{') { "" } else { "," };
    format!("{head}{separator}\n  \"{key}\": {value}\n}}")
}

/// Writes a JSON text on stdout, made [`terminal_safe`].
fn write_json(text: &str) {
    write_out(format!("{}\n", terminal_safe(text)).as_bytes());
}

/// A JSON text with every character a terminal would act on written as a JSON `\uXXXX`
/// escape (serde_json already escapes the C0 controls inside strings; this covers DEL, C1 and
/// the bidirectional controls): the text stays valid JSON and means the same. Only strings can
/// hold such characters, so the escapes always land inside one.
fn terminal_safe(text: &str) -> String {
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        if c != '\n' && crate::terminal::is_unsafe(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                safe.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            safe.push(c);
        }
    }
    safe
}

fn document() -> MutexGuard<'static, Document> {
    DOCUMENT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A failure as `--json` shows it: `{"code", "message", "help", "exit", "causes", "related"}`.
#[derive(Debug, Serialize)]
pub struct ErrorDocument {
    /// The diagnostic's code (`aimem::restore::refused`), or one named after the exit status.
    pub code: String,
    pub message: String,
    pub help: Option<String>,
    pub exit: u8,
    /// The chain of underlying causes, outermost first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<String>,
    /// Each related diagnostic (the reasons a restore was refused, each schema difference).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
}

#[derive(Debug, Serialize)]
pub struct Related {
    pub code: Option<String>,
    pub message: String,
    pub help: Option<String>,
}

impl ErrorDocument {
    /// From a failure's diagnostic and the exit status it means.
    pub fn new(exit: Exit, report: &dyn Diagnostic) -> ErrorDocument {
        let mut causes = Vec::new();
        let mut source = report.source();
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        let related = report
            .related()
            .map(|all| {
                all.map(|d| Related {
                    code: d.code().map(|c| c.to_string()),
                    message: d.to_string(),
                    help: d.help().map(|h| h.to_string()),
                })
                .collect()
            })
            .unwrap_or_default();
        // A run a signal stopped is `aimem::interrupted`, whatever it was doing (a rollback's
        // report is in the message): the documented contract for scripts, in one place.
        let code = match exit {
            Exit::Interrupted | Exit::Terminated => exit_code_name(exit),
            _ => report
                .code()
                .map_or_else(|| exit_code_name(exit), |c| c.to_string()),
        };
        ErrorDocument {
            code,
            message: report.to_string(),
            help: report.help().map(|h| h.to_string()),
            exit: exit.code(),
            causes,
            related,
        }
    }

    /// A plain message (clap's argument errors, a signal).
    pub fn plain(exit: Exit, message: String, help: Option<String>) -> ErrorDocument {
        ErrorDocument {
            code: exit_code_name(exit),
            message,
            help,
            exit: exit.code(),
            causes: Vec::new(),
            related: Vec::new(),
        }
    }
}

/// The code of a failure whose diagnostic has none: the exit status's meaning.
fn exit_code_name(exit: Exit) -> String {
    let name = match exit {
        Exit::Success => "success",
        Exit::InvalidArguments => "invalid_arguments",
        Exit::BackupConnectionFailed | Exit::ConnectionFailed => "connection_failed",
        Exit::Failed => "failed",
        Exit::InsufficientSpace => "insufficient_space",
        Exit::ConfigOrRestoreFailed => "config_or_restore_failed",
        Exit::RollbackFailed => "rollback_failed",
        Exit::OutputFailed => "output",
        Exit::Interrupted | Exit::Terminated => "interrupted",
    };
    format!("aimem::{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Body {
        name: &'static str,
        list: Vec<u32>,
    }

    #[test]
    fn the_version_comes_first_and_the_error_last() {
        let body = serde_json::to_string_pretty(&Versioned {
            version: JSON_VERSION,
            body: &Body {
                name: "a",
                list: vec![1, 2],
            },
        })
        .unwrap();
        let error = ErrorDocument::plain(Exit::Failed, "broken\nline".into(), None);
        let text = with_field(&body, "error", &error);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["version"], 1);
        assert_eq!(value["list"], serde_json::json!([1, 2]));
        assert_eq!(value["error"]["code"], "aimem::failed");
        assert_eq!(value["error"]["message"], "broken\nline");
        assert_eq!(value["error"]["exit"], 2);
        let version = text.find("\"version\"").unwrap();
        assert!(version < text.find("\"name\"").unwrap());
        assert!(text.find("\"list\"").unwrap() < text.find("\"error\"").unwrap());
        // An object without fields takes the error too.
        let alone: serde_json::Value =
            serde_json::from_str(&with_field("{}", "error", &error)).unwrap();
        assert_eq!(alone["error"]["exit"], 2);
    }

    #[test]
    fn characters_a_terminal_acts_on_become_json_escapes() {
        let original = "a\u{1b}[2J\u{7f}\u{85}\u{202e}\u{2066}b";
        let text = serde_json::to_string_pretty(&serde_json::json!({ "s": original })).unwrap();
        let safe = terminal_safe(&text);
        assert!(
            !safe
                .chars()
                .any(|c| c != '\n' && crate::terminal::is_unsafe(c)),
            "{safe:?}"
        );
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["s"], original);
    }
}
