//! `-v`/`--verbose`: a small `log` logger that writes to stderr, never to stdout.
//!
//! `-v` shows aimem's own `info` records (one line per HTTP exchange, see
//! [`crate::qdrant`]); `-vv` adds its `debug` records (the headers of each exchange);
//! `-vvv` adds ureq's own `debug` records. Nothing is ever logged at `trace`: at that level
//! ureq prints full paths and `Location` headers unredacted and ureq-proto dumps the raw bytes
//! of each request, `api-key` header included. The maximum level is therefore capped at
//! `debug`, which also keeps ureq's own redaction (it checks `log_enabled!(Trace)`) in force.
//!
//! As a second guard every record's text has the registered secrets (the API key, URL
//! passwords, see [`crate::secrets::add_secret`]) replaced before it is printed, and its
//! control characters escaped.

use std::io::Write;
use std::sync::OnceLock;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Where aimem's own records come from (the crate's module paths).
const OWN_TARGET: &str = "aimem";
/// ureq's crates: allowed at `-vvv`, at `debug` at most.
const HTTP_LIBRARY_TARGETS: [&str; 2] = ["ureq", "ureq_proto"];

static LOGGER: OnceLock<StderrLogger> = OnceLock::new();

/// Installs the logger for `verbosity` (the number of `-v`); with 0 nothing is logged.
pub fn init(verbosity: u8) {
    let logger = LOGGER.get_or_init(|| StderrLogger { verbosity });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(max_level(verbosity));
    }
}

fn max_level(verbosity: u8) -> LevelFilter {
    match verbosity {
        0 => LevelFilter::Off,
        1 => LevelFilter::Info,
        // Never Trace, see the module's documentation.
        _ => LevelFilter::Debug,
    }
}

/// Whether a record of `level` from `target` is shown at `verbosity`.
fn shown(verbosity: u8, target: &str, level: Level) -> bool {
    if level > Level::Debug || level > max_level(verbosity) {
        return false;
    }
    if is_under(target, OWN_TARGET) {
        return true;
    }
    // Other crates (rustls…) are never shown; ureq's only at -vvv.
    verbosity >= 3 && HTTP_LIBRARY_TARGETS.iter().any(|t| is_under(target, t))
}

/// `target` is `root` or a module inside it.
fn is_under(target: &str, root: &str) -> bool {
    target
        .strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// `text` with every registered secret ([`crate::secrets::add_secret`]) replaced by `***` and
/// control characters escaped.
fn scrub(text: &str) -> String {
    crate::terminal::escape_line(&crate::secrets::hide_secrets(text)).into_owned()
}

struct StderrLogger {
    verbosity: u8,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        shown(self.verbosity, metadata.target(), metadata.level())
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let prefix = if is_under(record.target(), OWN_TARGET) {
            "aimem"
        } else {
            record.target()
        };
        let line = format!("[{prefix}] {}", scrub(&record.args().to_string()));
        // Progress bars are hidden while the line is written, so neither garbles the other.
        crate::ui::suspend_progress(|| {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        });
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_is_never_shown_and_ureq_only_at_three() {
        for verbosity in 0..=5 {
            assert!(!shown(verbosity, "ureq_proto::util", Level::Trace));
            assert!(!shown(verbosity, "aimem::qdrant", Level::Trace));
        }
        assert!(max_level(9) <= LevelFilter::Debug);
        assert!(!shown(0, "aimem::qdrant", Level::Info));
        assert!(shown(1, "aimem::qdrant", Level::Info));
        assert!(!shown(1, "aimem::qdrant", Level::Debug));
        assert!(shown(2, "aimem::qdrant", Level::Debug));
        assert!(!shown(2, "ureq::run", Level::Debug));
        assert!(shown(3, "ureq::run", Level::Debug));
        assert!(!shown(3, "rustls::client", Level::Debug));
        assert!(!shown(3, "ureqx", Level::Debug));
        assert!(!shown(3, "aimemx::y", Level::Info));
    }

    #[test]
    fn secrets_and_controls_are_scrubbed() {
        use crate::secrets::add_secret;

        add_secret("s3cret-key-value");
        add_secret("ab");
        let text = scrub("api-key: s3cret-key-value\u{1b}[2J ab");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.ends_with(" ab"), "{text}");
    }
}
