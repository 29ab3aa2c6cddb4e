//! What a backup removes when it does not complete: its staging folder, every snapshot it
//! created on the server, and one whose creation did not answer in time (Qdrant goes on
//! building it, api.md §0.3; left alone, a nightly timeout would leave a full-size snapshot on
//! the server every night).

use std::time::{Duration, Instant};

use camino::Utf8PathBuf;

use super::journal::{Journal, Record};
use crate::qdrant::{Client, QdrantError};
use crate::ui::Ui;

/// A snapshot creation whose outcome is unknown.
#[derive(Debug)]
pub struct Pending {
    pub collection: String,
    /// The collection's snapshots before the creation: anything new is ours.
    pub existing: Vec<String>,
    /// How long to wait for it to appear.
    pub wait: Duration,
    /// UTC `YYYY-MM-DD-HH-MM-SS` when it was asked for: Qdrant names a snapshot
    /// `{collection}-{peer id}-{UTC time}.snapshot` from the moment it starts it.
    pub asked_at: String,
    /// This run's snapshot turn in the backup root, held until the pending snapshot is dealt
    /// with, so no other run's snapshot is created (and taken for it) meanwhile.
    pub turn: Option<super::concurrent::Turn>,
}

/// The UTC time as Qdrant writes it into snapshot names.
pub fn snapshot_time(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]-[hour]-[minute]-[second]");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// True for a name Qdrant gives a snapshot of `collection` started at or after `asked_at`.
pub(super) fn is_ours(name: &str, collection: &str, asked_at: &str) -> bool {
    let Some(rest) = name
        .strip_prefix(collection)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_suffix(".snapshot"))
    else {
        return false;
    };
    let Some((peer, stamp)) = rest.split_once('-') else {
        return false;
    };
    let shaped = stamp.len() == 19 && stamp.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    !peer.is_empty() && peer.bytes().all(|b| b.is_ascii_digit()) && shaped && stamp >= asked_at
}

/// The undo log of one backup run.
#[derive(Debug, Default)]
pub struct Undo {
    pub staging: Option<Utf8PathBuf>,
    /// (collection, snapshot name) still on the server.
    pub server_snapshots: Vec<(String, String)>,
    pub pending: Vec<Pending>,
    /// What this run creates on the server, on disk, for the next run if this one is killed.
    pub journal: Option<Journal>,
    /// Shard snapshot creations whose outcome is unknown (no answer, or one aimem cannot
    /// use): only the journal's records of them lead to those snapshots, so it is kept.
    pub unanswered_shard_creations: usize,
}

/// How often the server's snapshot list is read while waiting for a pending snapshot.
const PENDING_POLL: Duration = Duration::from_secs(1);

/// Reads of the snapshot list in a row that get no answer at all (refused, or timed out)
/// before the server counts as gone. A refused connection right after a broken one is a
/// stopped or restarting server, and a second one a poll later confirms it: waiting the whole
/// creation timeout for it helps nobody. Any answer (even an error) starts the count again.
const GONE_AFTER: u32 = 2;

impl Undo {
    /// The snapshot is gone from the server: nothing to undo for it.
    pub fn forget_snapshot(&mut self, collection: &str, name: &str) {
        self.server_snapshots
            .retain(|(c, s)| !(c == collection && s == name));
        // Best effort: a deletion missing from the journal only costs the next run a 404.
        self.journal_record(&Record::Deleted {
            collection: collection.to_string(),
            snapshot: name.to_string(),
        })
        .ok();
    }

    /// Appends to the journal (synced). Without a journal there is nothing to record.
    pub fn journal_record(&mut self, record: &Record) -> std::io::Result<()> {
        match &mut self.journal {
            Some(journal) => journal.record(record),
            None => Ok(()),
        }
    }

    /// Removes the staging folder and every server snapshot this run created; says what it
    /// could not remove.
    pub fn run(&mut self, client: &Client, ui: &Ui) {
        // The server first: while the staging folder (and its journal) exists, a run killed
        // during this cleanup still leaves the next one a record of what to delete.
        let mut all_gone = self.unanswered_shard_creations == 0;
        for (collection, name) in std::mem::take(&mut self.server_snapshots) {
            if delete(client, ui, &collection, &name) {
                self.journal_record(&Record::Deleted {
                    collection,
                    snapshot: name,
                })
                .ok();
            } else {
                all_gone = false;
            }
        }
        for mut pending in self.pending.drain(..) {
            all_gone &= remove_pending(client, ui, &pending);
            // Found or given up on: other runs may create snapshots again.
            if let Some(turn) = pending.turn.take() {
                turn.release_after_answer();
            }
        }
        if !all_gone && self.journal.is_some() {
            // The journal stays in its staging folder (the data goes): the next backup into
            // this root deletes what could not be deleted now.
            if let Some(staging) = self.staging.take() {
                remove_all_but_journal(&staging, ui);
                ui.warn(&format!(
                    "kept {staging}: its journal lists what is left on the server, and the next backup into this folder deletes it"
                ));
            }
            return;
        }
        self.journal = None;
        if let Some(staging) = self.staging.take() {
            if let Err(e) = std::fs::remove_dir_all(&staging) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    ui.warn(&format!(
                        "could not remove the partial backup {staging}: {e}; delete it by hand"
                    ));
                }
            }
        }
    }
}

impl Undo {
    /// For a backup that is complete: deletes once more the server snapshots that would not go
    /// during the run, and hands those still there on to the next backup into `root`, in a
    /// journal of their own (its own staging folder, left unlocked, so the next run takes it
    /// for a dead run's and deletes them), so none stays on the server unrecorded.
    pub fn hand_on_leftover_snapshots(
        &mut self,
        client: &Client,
        ui: &Ui,
        root: &camino::Utf8Path,
        server: (&str, &str),
        final_name: &str,
    ) {
        let (server, identity) = server;
        self.server_snapshots
            .retain(|(collection, name)| !delete(client, ui, collection, name));
        if self.server_snapshots.is_empty() {
            return;
        }
        let recorded = (|| -> std::io::Result<camino::Utf8PathBuf> {
            let folder = crate::manifest::layout::create_staging_folder(root, final_name)?;
            let mut journal = Journal::create(&folder, server, identity)?;
            for (collection, snapshot) in &self.server_snapshots {
                journal.record(&Record::Created {
                    collection: collection.clone(),
                    snapshot: snapshot.clone(),
                })?;
            }
            Ok(folder)
        })();
        let names: Vec<&str> = self
            .server_snapshots
            .iter()
            .map(|(_, n)| n.as_str())
            .collect();
        match recorded {
            Ok(folder) => ui.warn(&format!(
                "{} stayed on the server; recorded in {folder}, so the next backup into this folder deletes them",
                names.join(", ")
            )),
            Err(e) => ui.warn(&format!(
                "{} stayed on the server and could not be recorded ({e}): delete them by hand (DELETE /collections/NAME/snapshots/SNAPSHOT)",
                names.join(", ")
            )),
        }
        self.server_snapshots.clear();
    }
}

/// Empties a staging folder except for its journal.
fn remove_all_but_journal(staging: &camino::Utf8Path, ui: &Ui) {
    let Ok(entries) = staging.read_dir_utf8() else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name() == super::journal::JOURNAL_FILE {
            continue;
        }
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(entry.path()),
            _ => std::fs::remove_file(entry.path()),
        };
        if let Err(e) = removed {
            ui.warn(&format!("could not remove {}: {e}", entry.path()));
        }
    }
}

/// Deletes one snapshot; true when it is gone.
fn delete(client: &Client, ui: &Ui, collection: &str, name: &str) -> bool {
    match client.delete_snapshot(collection, name) {
        Ok(()) => true,
        Err(e) if e.is_not_found() => true,
        Err(e) => {
            ui.warn(&format!(
                "could not delete snapshot {name} of `{collection}` from the server: {e}"
            ));
            false
        }
    }
}

/// Waits (up to `pending.wait`) for the snapshot Qdrant is still building, then deletes it.
/// A finished snapshot has its checksum; one without may still be written. True when it is
/// gone.
fn remove_pending(client: &Client, ui: &Ui, pending: &Pending) -> bool {
    let collection = &pending.collection;
    if pending.wait.is_zero() {
        ui.note(&format!(
            "looking for a snapshot of `{collection}` that the unusable answer may stand for"
        ));
    } else {
        ui.note(&format!(
            "waiting up to {}s for Qdrant to finish the snapshot of `{collection}` so it can be deleted",
            pending.wait.as_secs()
        ));
    }
    let deadline = Instant::now() + pending.wait;
    let mut no_answer_in_a_row = 0;
    loop {
        let listed = match client.list_snapshots(collection) {
            Ok(listed) => {
                no_answer_in_a_row = 0;
                listed
            }
            Err(e) if e.is_no_answer() => {
                no_answer_in_a_row += 1;
                if no_answer_in_a_row >= GONE_AFTER {
                    ui.warn(&gone(client, pending, &e));
                    return false;
                }
                Vec::new()
            }
            Err(_) => {
                no_answer_in_a_row = 0;
                Vec::new()
            }
        };
        // The earliest new snapshot named from the moment it was asked for is the one: others
        // (another tool's, an upload) are not ours to delete.
        let ours = listed
            .into_iter()
            .filter(|s| !pending.existing.contains(&s.name))
            .filter(|s| is_ours(&s.name, collection, &pending.asked_at))
            .min_by(|a, b| a.name.cmp(&b.name));
        // A finished snapshot has its checksum; one without may still be written.
        if let Some(snapshot) = ours.filter(|s| s.checksum.is_some()) {
            return delete(client, ui, collection, &snapshot.name);
        }
        // One look found nothing: the unusable answer stood for no snapshot of ours.
        if pending.wait.is_zero() {
            return true;
        }
        if Instant::now() >= deadline {
            ui.warn(&format!(
                "Qdrant may still be building a snapshot of `{collection}`; once it appears in \
                 GET /collections/{collection}/snapshots, delete it (DELETE …/snapshots/NAME)"
            ));
            return false;
        }
        std::thread::sleep(PENDING_POLL);
    }
}

/// What to say when the server went away while a snapshot may still be in the making.
fn gone(client: &Client, pending: &Pending, error: &QdrantError) -> String {
    let how = match error {
        QdrantError::Timeout { .. } => "does not answer any more",
        _ => "refuses connections",
    };
    let collection = &pending.collection;
    format!(
        "Qdrant at {} {how}: the server is gone (stopped or restarting), so aimem stops waiting \
         for the snapshot of `{collection}`. Once it is back, delete any snapshot of `{collection}` \
         named from {} (UTC) on that GET /collections/{collection}/snapshots lists \
         (DELETE …/snapshots/NAME)",
        client.display_url(),
        pending.asked_at
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_snapshot_named_from_the_request_time_on_is_ours() {
        let at = "2026-11-26-16-00-01";
        assert!(is_ours(
            "conventions-2743143085275039-2026-11-26-16-00-01.snapshot",
            "conventions",
            at
        ));
        assert!(is_ours(
            "conventions-1-2026-11-26-16-05-00.snapshot",
            "conventions",
            at
        ));
        assert!(!is_ours(
            "conventions-1-2026-11-26-15-59-59.snapshot",
            "conventions",
            at
        ));
        assert!(!is_ours(
            "aimem-restore-conventions-x.snapshot",
            "conventions",
            at
        ));
        assert!(!is_ours(
            "conventions-extra-1-2026-11-26-16-05-00.snapshot",
            "conventions",
            at
        ));
        assert!(!is_ours(
            "code-patterns-1-2026-11-26-16-05-00.snapshot",
            "code",
            at
        ));
        let stamp = snapshot_time(time::macros::datetime!(2026-11-26 17:00:01 +01:00));
        assert_eq!(stamp, at);
    }
}
