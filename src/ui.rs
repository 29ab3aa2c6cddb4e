//! What people see on stderr: headings, step lines, warnings and progress bars.
//!
//! Data for programs goes to stdout elsewhere; everything here is for a person and goes to
//! stderr, so `aimem backup > path.txt` captures only the backup's path.
//!
//! Every method escapes the control characters in its text ([`crate::terminal::escape`]):
//! what it prints is built from names, manifest fields and the server's words.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use console::{Term, style};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{Events, Transfer};
use crate::manifest::checksums::HashProgress;
use crate::terminal::{escape, escape_line};
pub use crate::units::{human_duration, human_size};

/// Every bar and spinner is drawn through this, so a line printed meanwhile (a step, a `-v`
/// log record) can hide them for a moment instead of being garbled by a redraw.
static PROGRESS: LazyLock<MultiProgress> =
    LazyLock::new(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));

thread_local! {
    /// Set while this thread is inside [`suspend_progress`]: a nested call (a log record
    /// written while a step line is) must not take the bars' lock a second time.
    static SUSPENDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `print` with the progress bars hidden (a no-op when none is drawn).
pub fn suspend_progress<R>(print: impl FnOnce() -> R) -> R {
    if SUSPENDED.with(|s| s.replace(true)) {
        return print();
    }
    let result = PROGRESS.suspend(print);
    SUSPENDED.with(|s| s.set(false));
    result
}

/// Width of the `====` rules, as in the Python scripts' output.
const RULE_WIDTH: usize = 60;

/// The person-facing printer, or (`--progress json`) the event stream in its place.
#[derive(Debug, Clone)]
pub struct Ui {
    quiet: bool,
    progress: bool,
    term: Term,
    /// `--progress json`: events instead of lines and bars.
    events: Option<Arc<Events>>,
}

impl Ui {
    /// `quiet` prints only warnings and errors; `progress` allows bars (only on a terminal).
    pub fn new(quiet: bool, progress: bool) -> Ui {
        let term = Term::stderr();
        let progress = progress && !quiet && term.is_term();
        Ui {
            quiet,
            progress,
            term,
            events: None,
        }
    }

    /// `--progress json`: no lines or bars for a person, JSON events on stderr instead
    /// ([`crate::events`]).
    pub fn events() -> Ui {
        Ui {
            quiet: true,
            progress: false,
            term: Term::stderr(),
            events: Some(Events::new()),
        }
    }

    /// Writes an event of `kind` (an object of `fields`) when events are on.
    pub fn event(&self, kind: &str, fields: serde_json::Value) {
        if let Some(events) = &self.events {
            events.emit(kind, fields);
        }
    }

    /// Whether this run writes events instead of lines (`--progress json`).
    pub fn writes_events(&self) -> bool {
        self.events.is_some()
    }

    /// A phase begins: one collection's (`collection`) or the run's.
    pub fn phase_started(&self, phase: &str, collection: Option<&str>) {
        self.event(
            "phase_started",
            serde_json::json!({ "phase": phase, "collection": collection }),
        );
    }

    /// A phase ends, `ok` or not; `made` (an object) adds what it made.
    pub fn phase_finished(
        &self,
        phase: &str,
        collection: Option<&str>,
        ok: bool,
        made: serde_json::Value,
    ) {
        let mut fields = serde_json::json!({ "phase": phase, "collection": collection, "ok": ok });
        if let (Some(fields), serde_json::Value::Object(made)) = (fields.as_object_mut(), made) {
            fields.extend(made);
        }
        self.event("phase_finished", fields);
    }

    fn print(&self, line: &str) {
        if !self.quiet {
            self.write(line);
        }
    }

    /// Writes a line; off a terminal aimem's own symbols become ASCII words.
    fn write(&self, line: &str) {
        let line = match self.term.is_term() {
            true => std::borrow::Cow::Borrowed(line),
            false => crate::terminal::ascii_symbols(line),
        };
        let _ = suspend_progress(|| self.term.write_line(&line));
    }

    /// A boxed title: rule, title, rule.
    pub fn header(&self, title: &str) {
        self.rule();
        self.print(&format!("  {}", style(escape(title)).bold()));
        self.rule();
        self.print("");
    }

    pub fn rule(&self) {
        self.print(&"=".repeat(RULE_WIDTH));
    }

    pub fn blank(&self) {
        self.print("");
    }

    /// `  key: value` facts under a heading.
    pub fn fact(&self, key: &str, value: &str) {
        self.print(&format!("  {}: {}", escape(key), escape(value)));
    }

    /// A step in progress: `  Backing up discussions...`.
    pub fn step(&self, text: &str) {
        self.print(&format!("  {}", escape(text)));
    }

    /// A finished sub-step: `    ✓ …`.
    pub fn ok(&self, text: &str) {
        self.print(&format!("    {} {}", style("✓").green(), escape(text)));
    }

    /// A neutral remark: `    - …`.
    pub fn note(&self, text: &str) {
        self.print(&format!("    {} {}", style("-").dim(), escape(text)));
    }

    /// Printed even with `--quiet`: something the user should know (an event of its own with
    /// `--progress json`).
    pub fn warn(&self, text: &str) {
        if self.events.is_some() {
            self.event("warning", serde_json::json!({ "message": text }));
            return;
        }
        self.write(&format!(
            "    {} {}",
            style("⚠").yellow(),
            style(escape(text)).yellow()
        ));
    }

    /// A closing line with a check mark: `  ✓ Backup complete: …`.
    pub fn success(&self, text: &str) {
        self.print(&format!(
            "  {} {}",
            style("✓").green().bold(),
            style(escape(text)).bold()
        ));
    }

    /// A byte-count bar labelled with what it counts (`upload github`, `hashing …`), with
    /// rate and ETA; hidden when not on a terminal (or with `--quiet`/`--no-progress`).
    /// `collection` is the one it is for, if any (named in `--progress json`'s events).
    pub fn transfer_bar(&self, label: &str, collection: Option<&str>, total: Option<u64>) -> Meter {
        let json = self
            .events
            .as_ref()
            .map(|events| events.transfer(label, collection, total));
        Meter {
            bar: self.bar(label, total),
            json,
        }
    }

    fn bar(&self, label: &str, total: Option<u64>) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = PROGRESS.add(ProgressBar::with_draw_target(
            total,
            ProgressDrawTarget::hidden(),
        ));
        let template = match total {
            Some(_) => {
                "    {msg} {bar:30.cyan/blue} {binary_bytes}/{binary_total_bytes} \
                 {binary_bytes_per_sec} eta {eta}"
            }
            None => "    {msg} {spinner} {binary_bytes} {binary_bytes_per_sec} {elapsed}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(escape_line(label).into_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        draw_now(&bar);
        bar
    }

    /// A spinner with the elapsed time, for a wait whose length nobody knows (Qdrant building
    /// a snapshot or recovering a collection); hidden when bars are. Clear it with
    /// `finish_and_clear` when the wait is over.
    pub fn spinner(&self, label: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let spinner = PROGRESS.add(ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template(SPINNER_TEMPLATE) {
            spinner.set_style(style);
        }
        spinner.set_message(escape_line(label).into_owned());
        spinner.enable_steady_tick(Duration::from_millis(120));
        draw_now(&spinner);
        spinner
    }
}

/// A transfer's progress: a bar for a person, events for a program (`--progress json`), or
/// neither. Clones count into the same one.
#[derive(Debug, Clone)]
pub struct Meter {
    bar: ProgressBar,
    json: Option<Arc<Transfer>>,
}

impl Meter {
    pub fn inc(&self, bytes: u64) {
        self.bar.inc(bytes);
        if let Some(json) = &self.json {
            json.inc(bytes);
        }
    }

    pub fn set_position(&self, bytes: u64) {
        self.bar.set_position(bytes);
        if let Some(json) = &self.json {
            json.set_position(bytes);
        }
    }

    pub fn set_length(&self, bytes: u64) {
        self.bar.set_length(bytes);
        if let Some(json) = &self.json {
            json.set_length(bytes);
        }
    }

    /// The transfer is over: the bar goes, the last event says the final count.
    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
        if let Some(json) = &self.json {
            json.end();
        }
    }
}

/// Counts the bytes [`crate::manifest::checksums::check_all`] hashes, on a bar labelled
/// with what is being hashed, and keeps the total for the closing line.
pub struct HashMeter {
    bar: Meter,
    bytes: AtomicU64,
    started: Instant,
}

impl HashMeter {
    /// Bytes hashed so far, and the time since the meter was made.
    pub fn done(&self) -> (u64, Duration) {
        self.bar.finish_and_clear();
        (self.bytes.load(Ordering::Relaxed), self.started.elapsed())
    }
}

impl HashProgress for HashMeter {
    fn start(&self, total_bytes: u64) {
        self.bar.set_length(total_bytes);
    }

    fn hashed(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.bar.inc(bytes);
    }
}

impl Ui {
    /// A [`HashMeter`] whose bar is labelled `label` (drawn only where bars are).
    pub fn hash_meter(&self, label: &str) -> Arc<HashMeter> {
        Arc::new(HashMeter {
            bar: self.transfer_bar(label, None, Some(0)),
            bytes: AtomicU64::new(0),
            started: Instant::now(),
        })
    }
}

const SPINNER_TEMPLATE: &str = "    {spinner} {msg} ({elapsed})";

/// Turns a transfer's bar into a spinner with the elapsed time (the bytes are sent; now the
/// server works on them; the transfer's last event is written); nothing happens to a hidden
/// bar.
pub fn into_spinner(meter: &Meter, label: &str) {
    if let Some(json) = &meter.json {
        json.end();
    }
    let bar = &meter.bar;
    if bar.is_hidden() {
        return;
    }
    if let Ok(style) = ProgressStyle::with_template(SPINNER_TEMPLATE) {
        bar.set_style(style);
    }
    bar.set_message(escape_line(label).into_owned());
    bar.reset_elapsed();
    draw_now(bar);
}

/// Draws `bar` at once, past the redraw rate limit, so even a phase of a few milliseconds
/// shows what it was.
fn draw_now(bar: &ProgressBar) {
    bar.tick();
    // A suspension ends with a forced redraw of every bar.
    suspend_progress(|| ());
}

/// `1.2 GiB in 12.3 s (102.4 MiB/s)`: the closing line's amount, duration and throughput.
pub fn throughput(bytes: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = match seconds > 0.0 {
        true => format!("{}/s", human_size((bytes as f64 / seconds) as u64)),
        false => "-".to_string(),
    };
    format!(
        "{} in {} ({rate})",
        human_size(bytes),
        human_duration(elapsed)
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::throughput;

    #[test]
    fn closing_lines_give_duration_and_rate() {
        assert_eq!(
            throughput(20 * 1024 * 1024, Duration::from_secs(2)),
            "20.0 MiB in 2.0 s (10.0 MiB/s)"
        );
        assert_eq!(throughput(0, Duration::ZERO), "0 B in 0 ms (-)");
    }
}
