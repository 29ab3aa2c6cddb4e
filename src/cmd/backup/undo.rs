//! What a backup removes when it does not complete: its staging folder, every snapshot it
//! created on the server, and one whose creation did not answer in time (Qdrant goes on
//! building it, api.md §0.3; left alone, a nightly timeout would leave a full-size snapshot on
//! the server every night).

use std::time::{Duration, Instant};

use camino::Utf8PathBuf;

use crate::qdrant::Client;
use crate::ui::Ui;

/// A snapshot creation whose outcome is unknown.
#[derive(Debug)]
pub struct Pending {
    pub collection: String,
    /// The collection's snapshots before the creation: anything new is ours.
    pub existing: Vec<String>,
    /// How long to wait for it to appear.
    pub wait: Duration,
}

/// The undo log of one backup run.
#[derive(Debug, Default)]
pub struct Undo {
    pub staging: Option<Utf8PathBuf>,
    /// (collection, snapshot name) still on the server.
    pub server_snapshots: Vec<(String, String)>,
    pub pending: Vec<Pending>,
}

/// How often the server's snapshot list is read while waiting for a pending snapshot.
const PENDING_POLL: Duration = Duration::from_secs(1);

impl Undo {
    /// The snapshot is gone from the server: nothing to undo for it.
    pub fn forget_snapshot(&mut self, collection: &str, name: &str) {
        self.server_snapshots
            .retain(|(c, s)| !(c == collection && s == name));
    }

    /// Removes the staging folder and every server snapshot this run created; says what it
    /// could not remove.
    pub fn run(&mut self, client: &Client, ui: &Ui) {
        if let Some(staging) = self.staging.take() {
            if let Err(e) = std::fs::remove_dir_all(&staging) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    ui.warn(&format!(
                        "could not remove the partial backup {staging}: {e}; delete it by hand"
                    ));
                }
            }
        }
        for (collection, name) in self.server_snapshots.drain(..) {
            delete(client, ui, &collection, &name);
        }
        for pending in self.pending.drain(..) {
            remove_pending(client, ui, &pending);
        }
    }
}

fn delete(client: &Client, ui: &Ui, collection: &str, name: &str) {
    if let Err(e) = client.delete_snapshot(collection, name) {
        if !e.is_not_found() {
            ui.warn(&format!(
                "could not delete snapshot {name} of `{collection}` from the server: {e}"
            ));
        }
    }
}

/// Waits (up to `pending.wait`) for the snapshot Qdrant is still building, then deletes it.
/// A finished snapshot has its checksum; one without may still be written.
fn remove_pending(client: &Client, ui: &Ui, pending: &Pending) {
    let collection = &pending.collection;
    let prefix = format!("{collection}-");
    ui.note(&format!(
        "waiting up to {}s for Qdrant to finish the snapshot of `{collection}` so it can be deleted",
        pending.wait.as_secs()
    ));
    let deadline = Instant::now() + pending.wait;
    loop {
        let fresh: Vec<_> = client
            .list_snapshots(collection)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.name.starts_with(&prefix) && !pending.existing.contains(&s.name))
            .collect();
        if !fresh.is_empty() && fresh.iter().all(|s| s.checksum.is_some()) {
            for snapshot in fresh {
                delete(client, ui, collection, &snapshot.name);
            }
            return;
        }
        if Instant::now() >= deadline {
            ui.warn(&format!(
                "Qdrant may still be building a snapshot of `{collection}`; once it appears in \
                 GET /collections/{collection}/snapshots, delete it (DELETE …/snapshots/NAME)"
            ));
            return;
        }
        std::thread::sleep(PENDING_POLL);
    }
}
