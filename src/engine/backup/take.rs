//! How a site's snapshot is obtained. [`Method`] is the seam: a shard snapshot Qdrant streams
//! as it builds it ([`stream`]: one step, inside the consistency window, see `consistent`,
//! with nothing kept on the server), or a snapshot Qdrant builds and keeps until it is
//! deleted ([`Stored`]: three steps that a single node's backup and a cluster's shard workers
//! alike take through here: capture inside the window, fetch the bytes into the backup folder
//! (at once on a cluster peer, after the window for a single node), release what the server
//! keeps). Another way of obtaining it (a logical export) is another variant there.

use super::concurrent::Turn;
use super::journal::{self, Record};
use super::site::Site;
use super::snapshot::{self, Download, DownloadError, Downloaded, Durability, Stream};
use super::undo::{self, Pending};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use crate::qdrant::{Client, QdrantError, SnapshotDescription};
use crate::ui::Ui;

/// How a site's snapshot is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Each shard's snapshot streamed by Qdrant as it builds it ([`stream`]): nothing is made
    /// on the server, so nothing is journaled or deleted, and a broken stream starts again.
    Streamed,
    /// Qdrant builds it and keeps it until it is deleted ([`Stored`]): created (journaled
    /// first, in the site's turn), downloaded (resumable), deleted (journaled).
    Stored,
    /// No snapshot: the points are read by scroll into Parquet files (`--format logical`,
    /// see `super::logical`); nothing is made on the server.
    Exported,
}

/// Whether this run streams shard snapshots: asked for (not `--no-stream`) and not refused.
/// A server without the endpoint answers 404 to a stream of a shard it reports
/// ([`DownloadError::NotStreamed`]); from then on its sites are taken the stored way (said
/// once per server). A cluster's peers are judged one by one: in a rolling upgrade one may
/// stream and another not. Shared by the threads of a run.
#[derive(Debug, Clone)]
pub struct Streaming {
    wanted: bool,
    /// The peers that refused (a single node: its own peer id).
    refused: Arc<Mutex<BTreeSet<u64>>>,
}

impl Streaming {
    pub fn new(wanted: bool) -> Streaming {
        Streaming {
            wanted,
            refused: Arc::default(),
        }
    }

    /// How the run was asked to take snapshots (before any server refused).
    pub fn asked(&self) -> Method {
        match self.wanted {
            true => Method::Streamed,
            false => Method::Stored,
        }
    }

    /// How this run takes a single node's site's snapshot now.
    pub fn method(&self) -> Method {
        self.choose(|refused| refused.is_empty())
    }

    /// How this run takes a site on cluster peer `peer` now.
    pub fn method_on(&self, peer: u64) -> Method {
        self.choose(|refused| !refused.contains(&peer))
    }

    fn choose(&self, streams: impl FnOnce(&BTreeSet<u64>) -> bool) -> Method {
        let refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        match self.wanted && streams(&refused) {
            true => Method::Streamed,
            false => Method::Stored,
        }
    }

    /// `peer` (`shown` as messages name the server) does not stream: the stored way there
    /// from now on, said once.
    pub fn refuse(&self, peer: u64, shown: &str, ui: &Ui) {
        let first = self
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer);
        if first {
            ui.note(&format!(
                "{shown} does not stream shard snapshots: Qdrant builds each snapshot on its disk first \
                 (as with --no-stream)"
            ));
        }
    }
}

/// The stored method's three steps.
#[derive(Debug, Clone, Copy)]
pub struct Stored;

/// What a capture holds on to until its snapshot is fetched and released.
pub type Captured = SnapshotDescription;

/// Why a site's snapshot could not be obtained.
#[derive(Debug)]
pub enum SiteFailure {
    Qdrant(QdrantError),
    Download(DownloadError),
    /// The journal record could not be written before a creation.
    Journal(std::io::Error),
    /// The server answered 404 for a shard snapshot stream of a shard it reports: it does not
    /// stream shard snapshots (releases before they were added).
    NotStreamed,
}

/// Streams `stream`'s shard snapshot into its target ([`snapshot::stream_with_retries`]).
pub fn stream(
    stream: &Stream,
    retries: u32,
    durability: Durability,
) -> Result<Downloaded, SiteFailure> {
    snapshot::stream_with_retries(stream, retries, durability).map_err(|e| match e {
        DownloadError::NotStreamed => SiteFailure::NotStreamed,
        e => SiteFailure::Download(e),
    })
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
    /// As `--json` and the progress lines name it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Streamed => "streamed",
            Method::Stored => "stored",
            Method::Exported => "exported",
        }
    }

    /// What the progress line says was done.
    pub fn done(self) -> &'static str {
        match self {
            Method::Streamed => "snapshot streamed",
            Method::Stored => "snapshot created",
            Method::Exported => "points exported",
        }
    }
}

impl Stored {
    /// Makes the site's snapshot, in this run's `turn` (see `concurrent`).
    pub fn capture(
        self,
        client: &Client,
        site: Site<&str>,
        turn: Turn,
        tracker: &impl Tracker,
    ) -> Result<Captured, SiteFailure> {
        create(client, site, turn, tracker)
    }

    /// Brings a captured snapshot into the download's target, verified.
    pub fn fetch(
        self,
        download: &Download,
        retries: u32,
        durability: Durability,
    ) -> Result<Downloaded, DownloadError> {
        snapshot::download_with_retries(download, retries, durability)
    }

    /// Drops what the server keeps of a captured snapshot.
    pub fn release(
        self,
        client: &Client,
        site: Site<&str>,
        captured: &Captured,
        tracker: &impl Tracker,
    ) -> Result<(), QdrantError> {
        site.delete(client, &captured.name)?;
        tracker.deleted(site, &captured.name);
        Ok(())
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
                QdrantError::InvalidResponse { .. } | QdrantError::AnswerTooLong { .. } => {
                    Some(true)
                }
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
