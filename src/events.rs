//! `--progress json`: the run's progress as JSON lines on stderr, for a wrapper or a GUI.
//!
//! One object a line, each with `"type"` and `"time"` (RFC 3339, UTC):
//! - `start`: the command (`backup`, `verify`, `restore`, `prune`, ...) and aimem's version;
//! - `phase_started` / `phase_finished`: a phase (`collection`, `verify`...) and, where it is
//!   one collection's, its `collection`; a finished phase says whether it went `ok` and may
//!   add what it made (`records`, `bytes`);
//! - `progress`: a transfer's `task` (as the progress bar would label it), its `collection`
//!   when it is one collection's, `bytes_done` and `bytes_total` (null when unknown); at
//!   most one a second per transfer, and one when it ends;
//! - `warning` and `error`: a `message` (and the `exit_code`, for the error that ends the run);
//! - `problem`: a `file` of the backup and what is wrong with it (`verify`: a manifest that
//!   does not parse);
//! - `summary`, last: the command, `ok`, `exit_code`, `seconds`, `bytes`, and `collections`
//!   (`name`, `records`) as far as the run got. A run that a signal ends at once (before it
//!   changed anything) ends with an `error` event instead.
//!
//! `--json` on stdout is unchanged: one document at the end. The person's lines (steps, check
//! marks, bars) are not written in this mode; `-v`'s request log still is, as plain lines.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

/// The stream: every line is written whole, under one lock, so lines from several threads
/// never mix.
#[derive(Debug)]
pub struct Events {
    lock: Mutex<()>,
}

/// Set once a run writes events: what is said outside the [`crate::ui::Ui`] (the signal
/// thread's last words) is then an event too.
static ACTIVE: std::sync::OnceLock<Arc<Events>> = std::sync::OnceLock::new();

impl Events {
    pub fn new() -> Arc<Events> {
        let events = Arc::new(Events {
            lock: Mutex::new(()),
        });
        let _ = ACTIVE.set(Arc::clone(&events));
        events
    }

    /// Writes one event of `kind` with `fields` (an object), plus its type and time.
    pub fn emit(&self, kind: &str, fields: Value) {
        let mut event = Map::new();
        event.insert("type".into(), json!(kind));
        event.insert("time".into(), json!(now()));
        if let Value::Object(fields) = fields {
            event.extend(fields);
        }
        let mut line = Value::Object(event).to_string();
        line.push('\n');
        let _held = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        // A closed or full stderr is no reason to stop a backup.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    /// A transfer's progress, reported through `emit`.
    pub fn transfer(
        self: &Arc<Events>,
        task: &str,
        collection: Option<&str>,
        total: Option<u64>,
    ) -> Arc<Transfer> {
        Arc::new(Transfer {
            events: Arc::clone(self),
            task: task.to_string(),
            collection: collection.map(str::to_string),
            total: AtomicU64::new(total.unwrap_or(UNKNOWN)),
            done: AtomicU64::new(0),
            last: Mutex::new(None),
            ended: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

/// Says on stderr that a signal ends the run at once with `exit`: an `error` event when the
/// run writes events, else a line for a person.
pub fn stopped_by_signal(exit: crate::exit::Exit) {
    match ACTIVE.get() {
        Some(events) => events.emit(
            "error",
            json!({ "message": "stopped by a signal", "help": null, "exit_code": exit.code() }),
        ),
        None => eprintln!("\naimem: stopped by a signal"),
    }
}

/// `total` when the size is not known.
const UNKNOWN: u64 = u64::MAX;
/// The least time between two progress events of one transfer.
const EVERY: Duration = Duration::from_secs(1);

/// One transfer's counts, reported at most once every [`EVERY`] and once at its end.
#[derive(Debug)]
pub struct Transfer {
    events: Arc<Events>,
    task: String,
    collection: Option<String>,
    total: AtomicU64,
    done: AtomicU64,
    last: Mutex<Option<Instant>>,
    ended: std::sync::atomic::AtomicBool,
}

impl Transfer {
    pub fn inc(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
        self.maybe_emit();
    }

    pub fn set_position(&self, bytes: u64) {
        self.done.store(bytes, Ordering::Relaxed);
        self.maybe_emit();
    }

    pub fn set_length(&self, bytes: u64) {
        self.total.store(bytes, Ordering::Relaxed);
    }

    /// The last event, once, with the final count.
    pub fn end(&self) {
        if !self.ended.swap(true, Ordering::Relaxed) {
            self.emit();
        }
    }

    fn maybe_emit(&self) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < EVERY) {
            return;
        }
        *last = Some(Instant::now());
        drop(last);
        self.emit();
    }

    fn emit(&self) {
        let total = self.total.load(Ordering::Relaxed);
        self.events.emit(
            "progress",
            json!({
                "task": self.task,
                "collection": self.collection,
                "bytes_done": self.done.load(Ordering::Relaxed),
                "bytes_total": (total != UNKNOWN).then_some(total),
            }),
        );
    }
}

/// Now, in RFC 3339 (UTC, to the millisecond).
fn now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&format).unwrap_or_default()
}
