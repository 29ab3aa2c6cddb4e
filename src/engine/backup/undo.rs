//! What a backup removes when it does not complete: its staging folder and every snapshot it
//! created on the server. A snapshot whose creation did not answer in time (Qdrant goes on
//! building it) is looked for and reported, never deleted on a guess: the journal keeps its
//! record, so every later backup reports it until it is gone.

use camino::Utf8PathBuf;

use super::journal::{Journal, Record};
use super::site::Site;
use crate::engine::peers::Topology;
use crate::qdrant::{Client, QdrantError};
use crate::ui::Ui;

/// A snapshot creation whose outcome is unknown.
#[derive(Debug)]
pub struct Pending {
    pub site: Site,
    /// The site's snapshots before the creation: anything new is ours.
    pub existing: Vec<String>,
    /// True when an answer came that aimem could not use (nothing may have been made);
    /// otherwise none came, and the creation may still be under way.
    pub answered: bool,
    /// True when this run's cleanup looks for it. Otherwise (a shard's, on a peer the
    /// cleanup does not ask) only the journal's record leads to it, so the journal is kept.
    pub looked_for: bool,
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

/// A staging area that takes files by name, in the undo log.
pub struct Named(pub std::sync::Arc<dyn crate::repo::Staging>);

impl std::fmt::Debug for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Named({})", self.0.location())
    }
}

/// The undo log of one backup run.
#[derive(Debug, Default)]
pub struct Undo {
    /// The local staging folder: the backup's, or (for a backup written by name into object
    /// storage) the one holding only its journal.
    pub staging: Option<Utf8PathBuf>,
    /// A backup being written by name (object storage): its objects go if the run fails.
    pub named: Option<Named>,
    /// (site, snapshot name) still on the server.
    pub server_snapshots: Vec<(Site, String)>,
    pub pending: Vec<Pending>,
    /// What this run creates on the server, on disk, for the next run if this one is killed.
    pub journal: Option<Journal>,
}

impl Undo {
    /// The server named `snapshot` of `site` (a shard's peer shown as `peer_url`): it is to
    /// be deleted.
    pub fn created(&mut self, site: Site, peer_url: Option<String>, snapshot: String) {
        // Best effort: without it the `creating` record still leads the next run to it.
        self.journal_record(&Record::Created {
            site: site.clone(),
            peer_url,
            snapshot: snapshot.clone(),
        })
        .ok();
        self.server_snapshots.push((site, snapshot));
    }

    /// The snapshot is gone from the server: nothing to undo for it.
    pub fn forget_snapshot(&mut self, site: &Site, name: &str) {
        self.drop_snapshot(site, name);
        // Best effort: a deletion missing from the journal only costs the next run a 404.
        self.journal_record(&Record::Deleted {
            site: site.clone(),
            snapshot: name.to_string(),
        })
        .ok();
    }

    /// Drops the snapshot from the log, without a record: the caller has said it stays on the
    /// server.
    pub fn drop_snapshot(&mut self, site: &Site, name: &str) {
        self.server_snapshots
            .retain(|(s, n)| !(s == site && n == name));
    }

    /// Appends to the journal (synced). Without a journal there is nothing to record.
    pub fn journal_record(&mut self, record: &Record) -> std::io::Result<()> {
        match &mut self.journal {
            Some(journal) => journal.record(record),
            None => Ok(()),
        }
    }

    /// Removes the staging folder and every server snapshot this run created (on `client`'s
    /// server or its cluster's peers); says what it could not remove.
    pub fn run(&mut self, client: &Client, topology: &Topology, ui: &Ui) {
        // The server first: while the staging folder (and its journal) exists, a run killed
        // during this cleanup still leaves the next one a record of what to delete.
        let mut all_gone = true;
        for (site, name) in std::mem::take(&mut self.server_snapshots) {
            if delete(client, topology, ui, &site, &name) {
                self.journal_record(&Record::Deleted {
                    site,
                    snapshot: name,
                })
                .ok();
            } else {
                all_gone = false;
            }
        }
        for mut pending in self.pending.drain(..) {
            all_gone &= pending.looked_for
                && pending
                    .site
                    .client(client, topology)
                    .is_ok_and(|on| report_pending(on, ui, &pending));
            // Found or given up on: other runs may create snapshots again.
            if let Some(turn) = pending.turn.take() {
                turn.release_after_answer();
            }
        }
        if let Some(Named(stage)) = self.named.take() {
            if let Err(e) = stage.discard() {
                ui.warn(&format!(
                    "could not remove the partial backup {}: {e}; `aimem prune` removes it later",
                    stage.location()
                ));
            }
        }
        if !all_gone && self.journal.is_some() {
            // The journal stays in its staging folder (the data goes): the next backup into
            // this root deletes what is provably this run's and reports the rest.
            if let Some(staging) = self.staging.take() {
                remove_all_but_journal(&staging, ui);
                ui.warn(&format!(
                    "kept {staging}: its journal lists what is left on the server; the next backup into this folder deletes what is provably this run's and reports the rest"
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
        topology: &Topology,
        ui: &Ui,
        root: &camino::Utf8Path,
        server: (&str, &str),
        final_name: &str,
    ) {
        let (server, identity) = server;
        self.server_snapshots
            .retain(|(site, name)| !delete(client, topology, ui, site, name));
        if self.server_snapshots.is_empty() {
            return;
        }
        let recorded = (|| -> std::io::Result<camino::Utf8PathBuf> {
            let folder = crate::workspace::journal_folder(root, final_name)?;
            let mut journal = Journal::create(&folder, server, identity)?;
            for (site, snapshot) in &self.server_snapshots {
                // A shard's record names its peer's URL, as the run's own record did.
                let peer_url = match site {
                    Site::Shard { peer, .. } => topology
                        .peer(*peer)
                        .map(|p| p.client.display_url().to_string()),
                    Site::Collection(_) => None,
                };
                journal.record(&Record::Created {
                    site: site.clone(),
                    peer_url,
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
fn delete(client: &Client, topology: &Topology, ui: &Ui, site: &Site, name: &str) -> bool {
    let deleted = site
        .client(client, topology)
        .and_then(|on| match site.delete(on, name) {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.to_string()),
        });
    match deleted {
        Ok(()) => true,
        Err(e) => {
            ui.warn(&format!(
                "could not delete snapshot {name} of {site} from the server: {e}"
            ));
            false
        }
    }
}

/// Looks for the snapshot a creation without a usable answer may have made, and says what it
/// finds; never deletes it. Whatever is named from the request's time on may be this run's
/// snapshot or another client's taken meanwhile (aimem's own runs wait for this run's turn,
/// other clients do not), so, as for a killed run's, it is kept and reported, and the journal
/// keeps the record so the next backup reports it too. True when there is nothing to look for:
/// an answer aimem could not use stood for no snapshot.
fn report_pending(client: &Client, ui: &Ui, pending: &Pending) -> bool {
    let site = &pending.site;
    let listed = match site.list(client) {
        Ok(listed) => listed,
        Err(e) => {
            ui.warn(&gone(client, pending, &e));
            return false;
        }
    };
    let candidates: Vec<String> = listed
        .into_iter()
        .filter(|s| !pending.existing.contains(&s.name))
        .filter(|s| site.names_snapshot(&s.name, &pending.asked_at))
        .map(|s| s.name)
        .collect();
    if candidates.is_empty() {
        // An unusable answer with nothing new: it stood for no snapshot.
        if pending.answered {
            return true;
        }
        ui.warn(&format!(
            "Qdrant may still be building a snapshot of {site} that this run asked for and \
             never heard named; the next backup into this folder reports it once it appears (aimem \
             deletes only what it can prove is its own)"
        ));
        return false;
    }
    ui.warn(&format!(
        "{} of {site} may be the snapshot this run asked for and never heard named, or \
         someone else's taken meanwhile: aimem deletes only what it can prove is its own, so it is \
         kept. Delete it by hand if it is not yours; the next backup into this folder reports it \
         until it is gone",
        candidates.join(", ")
    ));
    false
}

/// What to say when the snapshot list could not be read to look for a pending snapshot.
fn gone(client: &Client, pending: &Pending, error: &QdrantError) -> String {
    format!(
        "could not look for the snapshot of {} this run asked for on {} ({error}); \
         the next backup into this folder looks again and reports what it finds",
        pending.site,
        client.display_url()
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
