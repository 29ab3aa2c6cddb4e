//! How a site's snapshot is obtained, in three steps that a single node's backup and a
//! cluster's shard workers alike take through here: capture (inside the consistency window,
//! see `consistent`), fetch (the bytes into the backup folder: at once on a cluster peer,
//! after the window for a single node) and release (what the server keeps of it goes).
//!
//! [`Method`] is the seam: today a site's snapshot is always one Qdrant builds and keeps until
//! it is deleted. Another way of obtaining it (a snapshot streamed with no server copy, a
//! logical export) is another variant there, with its own three steps.

use super::concurrent::Turn;
use super::journal::{self, Record};
use super::site::Site;
use super::snapshot::{self, Download, DownloadError, Downloaded, Durability};
use super::undo::{self, Pending};
use crate::qdrant::{Client, QdrantError, SnapshotDescription};

/// How a site's snapshot is obtained.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Method {
    /// Qdrant builds it and keeps it until it is deleted: created (journaled first, in the
    /// site's turn), downloaded, deleted (journaled).
    #[default]
    ServerSnapshot,
}

/// What a capture holds on to until its snapshot is fetched and released.
pub type Captured = SnapshotDescription;

/// Why a site's snapshot could not be obtained.
#[derive(Debug)]
pub enum SiteFailure {
    Qdrant(QdrantError),
    Download(DownloadError),
    /// The journal record could not be written before a creation.
    Journal(std::io::Error),
}

/// What a site's snapshot work tells as it goes: it journals and keeps track of what is made
/// on the server, and waits for the server's answer to a creation. A single node's backup
/// does so itself; a cluster's peer workers tell the thread that waits for them.
pub trait Tracker {
    /// Appends `record` to the journal, synced (done before the server is asked).
    fn record(&self, record: &Record) -> Result<(), SiteFailure>;
    /// Asks `client` for a snapshot of `site` and waits for the answer.
    fn ask(&self, client: &Client, site: Site<&str>) -> Result<SnapshotDescription, QdrantError>;
    /// The server named `snapshot` (a shard's peer shown as `peer_url`): to be deleted.
    fn created(&self, site: Site<&str>, peer_url: Option<String>, snapshot: &str);
    /// A creation without a usable answer: its snapshot may exist, or appear.
    fn unanswered(&self, pending: Pending);
    /// The snapshot is gone from the server.
    fn deleted(&self, site: Site<&str>, snapshot: &str);
}

impl Method {
    /// Makes the site's snapshot, in this run's `turn` (see `concurrent`).
    pub fn capture(
        self,
        client: &Client,
        site: Site<&str>,
        turn: Turn,
        tracker: &impl Tracker,
    ) -> Result<Captured, SiteFailure> {
        match self {
            Method::ServerSnapshot => create(client, site, turn, tracker),
        }
    }

    /// Brings a captured snapshot into the download's target, verified.
    pub fn fetch(
        self,
        download: &Download,
        retries: u32,
        durability: Durability,
    ) -> Result<Downloaded, DownloadError> {
        match self {
            Method::ServerSnapshot => {
                snapshot::download_with_retries(download, retries, durability)
            }
        }
    }

    /// Drops what the server keeps of a captured snapshot.
    pub fn release(
        self,
        client: &Client,
        site: Site<&str>,
        captured: &Captured,
        tracker: &impl Tracker,
    ) -> Result<(), QdrantError> {
        match self {
            Method::ServerSnapshot => {
                site.delete(client, &captured.name)?;
                tracker.deleted(site, &captured.name);
                Ok(())
            }
        }
    }
}

/// Asks `client` for a snapshot of `site`, with a `creating` record on disk before the request
/// goes out (a run killed while Qdrant builds it leaves the next run a way to find it), then
/// the answer: its name (`created`), a refusal (`refused`: nothing to look for), or none
/// (pending: Qdrant may still be building it).
fn create(
    client: &Client,
    site: Site<&str>,
    turn: Turn,
    tracker: &impl Tracker,
) -> Result<SnapshotDescription, SiteFailure> {
    // A minute of slack for a server clock behind ours: snapshots that existed before the
    // request are ruled out by name anyway.
    let asked_at =
        undo::snapshot_time(time::OffsetDateTime::now_utc() - time::Duration::minutes(1));
    let existing = site.existing(client, &asked_at);
    let peer_url = journal::peer_url(site, client);
    tracker.record(&Record::Creating {
        site: site.owned(),
        peer_url: peer_url.clone(),
        asked_at: asked_at.clone(),
        asked_before: journal::asked_before(),
        existing: existing.clone(),
    })?;
    match tracker.ask(client, site) {
        Ok(description) => {
            turn.release_after_answer();
            tracker.created(site, peer_url, &description.name);
            Ok(description)
        }
        Err(e) => {
            // No answer (the wait timed out, the connection broke): Qdrant may still be
            // building it. An answer aimem cannot use (a nameless or unsafe name) may still
            // stand for a snapshot that was made. A refusal or a refused connection made
            // nothing.
            let answered = match e {
                QdrantError::Timeout { .. } | QdrantError::Transport { .. } => Some(false),
                QdrantError::InvalidResponse { .. } => Some(true),
                _ => None,
            };
            match answered {
                Some(answered) => tracker.unanswered(Pending {
                    site: site.owned(),
                    existing,
                    answered,
                    looked_for: true,
                    asked_at,
                    turn: Some(turn),
                }),
                None => {
                    turn.release_after_answer();
                    // Best effort: without it the next run only looks for a snapshot in vain.
                    tracker.record(&Record::Refused { site: site.owned() }).ok();
                }
            }
            Err(SiteFailure::Qdrant(e))
        }
    }
}
