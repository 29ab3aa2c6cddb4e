//! Waiting out a recovery Qdrant may still be running after an upload whose answer was lost.
//!
//! Qdrant runs an upload's recovery in a task that outlives the request (docs/qdrant.md,
//! "Uploads and recovery"): a timeout, a lost connection or a proxy's 502/503/504 says nothing
//! about whether it happened.
//! Rolling back before it ends would be undone by it, so the rollback first watches the
//! `snapshot_recovery_running{id="<collection>"}` gauge of `GET /metrics` until it reads 0.

use std::time::{Duration, Instant};

use super::rollback::Unclear;
use crate::engine::worker;
use crate::qdrant::{Client, QdrantError};
use crate::signals::StopFlag;
use crate::ui::Ui;

/// How often the gauge is read.
const POLL: Duration = Duration::from_millis(500);
/// How long the gauge must stay at 0 when the uploaded file is not (yet) in the collection's
/// snapshot folder: Qdrant hashes a received upload (and checks its checksum) before it moves
/// it there and starts recovering, so a 0 alone could come just before. At least this long…
const SETTLE: Duration = Duration::from_secs(5);
/// …and long enough to hash the file at a slow disk's pace.
const SLOW_HASH_BYTES_PER_SEC: u64 = 50 * 1024 * 1024;

/// How long a 0 must last before an upload of `size` bytes counts as not recovering.
fn settle_time(size: u64) -> Duration {
    SETTLE.max(Duration::from_secs(size / SLOW_HASH_BYTES_PER_SEC))
}
/// How often a long wait says it is still waiting.
const REPORT_EVERY: Duration = Duration::from_secs(30);
/// Failed reads of the metrics in a row before giving up.
const FAILURES_ALLOWED: u32 = 3;

/// What the wait needs.
pub struct Watch<'a> {
    pub client: &'a Client,
    pub ui: &'a Ui,
    pub stop: &'a StopFlag,
    /// The longest the wait may take (`--recovery-timeout`).
    pub limit: Duration,
}

/// Returns once Qdrant no longer recovers `unclear.collection`, or why that cannot be said.
pub fn wait_until_recovered(watch: &Watch, unclear: &Unclear) -> Result<(), String> {
    let collection = &unclear.collection;
    // A second Ctrl-C now gives up the wait (and says what is left to do) instead of ending
    // aimem on the spot.
    let _hold = watch.stop.hold();
    watch.ui.step(&format!(
        "Waiting for Qdrant to finish recovering `{collection}` before rolling it back: the upload's \
         outcome is unknown and Qdrant goes on after a client is gone \
         (snapshot_recovery_running{{id=\"{collection}\"}} in GET /metrics; Ctrl-C again gives up)..."
    ));
    let started = Instant::now();
    let mut last_report = started;
    let mut zero_since: Option<Instant> = None;
    let mut failures = 0;
    let abandoned = || "the wait was abandoned (Ctrl-C again)".to_string();
    loop {
        let reading = {
            let client = watch.client.clone();
            let name = collection.clone();
            worker::until(
                || watch.stop.abandoned(),
                move || client.snapshot_recoveries_running(&name),
            )
        };
        match reading {
            None => return Err(abandoned()),
            Some(Ok(0)) => {
                failures = 0;
                let since = *zero_since.get_or_insert_with(Instant::now);
                let settled = since.elapsed() >= settle_time(unclear.size)
                    || (since.elapsed() >= POLL && upload_is_in_place(watch, unclear)?);
                if settled {
                    watch.ui.ok(&format!(
                        "Qdrant is not recovering `{collection}` any more ({}s)",
                        started.elapsed().as_secs()
                    ));
                    return Ok(());
                }
            }
            Some(Ok(_)) => {
                failures = 0;
                zero_since = None;
            }
            Some(Err(e)) => {
                zero_since = None;
                failures += 1;
                let hopeless = matches!(
                    e,
                    QdrantError::InvalidResponse { .. } | QdrantError::AnswerTooLong { .. }
                ) || e.status().is_some_and(|s| (400..500).contains(&s));
                if hopeless || failures >= FAILURES_ALLOWED {
                    return Err(format!(
                        "cannot tell whether Qdrant is still recovering it: {e}"
                    ));
                }
            }
        }
        if started.elapsed() >= watch.limit {
            return Err(format!(
                "Qdrant was still recovering it after {}s (--recovery-timeout / SNAPSHOT_RECOVERY_TIMEOUT)",
                watch.limit.as_secs()
            ));
        }
        if last_report.elapsed() >= REPORT_EVERY {
            last_report = Instant::now();
            watch.ui.note(&format!(
                "still waiting for Qdrant to finish recovering `{collection}` ({}s so far)",
                started.elapsed().as_secs()
            ));
        }
        let nap = Instant::now();
        while nap.elapsed() < POLL {
            if watch.stop.abandoned() {
                return Err(abandoned());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// True once the uploaded file sits in the collection's snapshot folder, where Qdrant moves
/// it right before recovering from it.
fn upload_is_in_place(watch: &Watch, unclear: &Unclear) -> Result<bool, String> {
    let client = watch.client.clone();
    let name = unclear.collection.clone();
    let listed = worker::until(
        || watch.stop.abandoned(),
        move || client.list_snapshots(&name),
    )
    .ok_or_else(|| "the wait was abandoned (Ctrl-C again)".to_string())?;
    Ok(listed.is_ok_and(|list| list.iter().any(|s| s.name == unclear.upload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_uploads_settle_for_as_long_as_hashing_them_may_take() {
        assert_eq!(settle_time(10 * 1024 * 1024), SETTLE);
        assert_eq!(
            settle_time(10 * 1024 * 1024 * 1024),
            Duration::from_secs(204)
        );
    }
}
