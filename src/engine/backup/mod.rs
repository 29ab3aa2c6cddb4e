//! The machinery of `aimem backup` (the subcommand is `cmd::backup`): snapshots of
//! the chosen collections, their schema fingerprints, config files and (optionally) logs, in a
//! new dated folder that is either complete or absent.
//!
//! Everything is written into a hidden staging folder in the backup root and renamed into
//! place only once complete and synced. Every step that creates something records how to
//! undo it in [`Undo`], so one cleanup path serves errors and signals alike.

pub(crate) mod cluster;
pub(crate) mod concurrent;
mod consistent;
pub(crate) mod dest;
pub(crate) mod disk;
pub(crate) mod files;
pub(crate) mod journal;
pub(crate) mod logical;
mod pipeline;
mod resume;
pub(crate) mod shards;
pub(crate) mod site;
pub(crate) mod snapshot;
pub(crate) mod take;
pub(crate) mod undo;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use camino::{Utf8Path, Utf8PathBuf};
use miette::Diagnostic;
use thiserror::Error;

use crate::engine::peers::{LockKeys, Topology};
use crate::engine::worker;
use crate::exit::Exit;
use crate::failure::ExitStatus;
use crate::fingerprint::Fingerprint;
use crate::manifest::checksums::{self, Entry};
use crate::manifest::layout::{self, LOGS_DIR, SNAPSHOT_DIR};
use crate::manifest::{CollectionEntry, MANIFEST_FILE, MAX_BACKUP_COLLECTIONS, Manifest};
use crate::names::SafeName;
use crate::qdrant::{Client, QdrantError, SnapshotDescription};
use crate::repo::{self, LocalRepo};
use crate::settings::Endpoint;
use crate::signals::StopFlag;
use crate::ui::{Ui, human_size};
use consistent::Consistent;
use dest::Dest;
use site::Site;
use take::SiteFailure;
use undo::Undo;

pub use files::{CONFIG_FILES, ai_memory_version, log_files, parse_dotenv};
pub use pipeline::DEFAULT_JOBS;

/// What the command line decides about how the backup is made.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Collections backed up at the same time (`--jobs`).
    pub jobs: u8,
    /// Re-attempts of a failed snapshot download (`--retry`).
    pub retry: u32,
    /// Also copy the log files (`--include-logs`).
    pub include_logs: bool,
    /// Stream each shard's snapshot where the server offers it (not `--no-stream`).
    pub stream: bool,
    /// Snapshots, or the points themselves (`--format`).
    pub format: Format,
}

/// What a backup holds of each collection (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Qdrant's own snapshots: restorable into the same version or the next minor one, in the
    /// same shard layout.
    #[default]
    Snapshot,
    /// The points in Parquet files and the collection's definition (docs/logical-format.md):
    /// restorable into any Qdrant from 1.16 on and any layout.
    Logical,
}

/// One collection backed up: what the subcommand reports about it.
#[derive(Debug, Clone)]
pub struct CollectionDone {
    pub name: String,
    pub records: u64,
    /// When writes kept moving the count: the snapshot holds between `records` and this.
    pub records_max: Option<u64>,
    /// Bytes of the snapshot file (a cluster's: of its shard files).
    pub size: u64,
    /// Empty for a cluster's collection (each shard file has its own).
    pub sha256: String,
    /// The snapshot's name on the server.
    pub snapshot: String,
    /// False when the server refused to delete it (it is then still on the server).
    pub server_snapshot_deleted: bool,
    /// How it was taken.
    pub method: take::Method,
    /// From the first schema read to the deleted server snapshot.
    pub seconds: f64,
}

/// Told what the backup made as it goes, so a failed run can still say how far it got.
pub trait Progress: Sync {
    /// A collection is backed up (in the planned order when several run at once).
    fn collection_done(&self, done: CollectionDone);
    /// The config files are copied.
    fn config_files_copied(&self, names: &[String]);
}

/// What went wrong, worded for the person who has to fix it.
#[derive(Debug, Error, Diagnostic)]
pub enum BackupError {
    #[error("the server has no collection named {}", names.join(", "))]
    #[diagnostic(
        code(aimem::backup::no_such_collection),
        help("The server has: {available}. Check the --collection names.")
    )]
    UnknownCollections {
        names: Vec<String>,
        available: String,
    },

    #[error("none of the collections to back up exists on the server")]
    #[diagnostic(
        code(aimem::backup::nothing_to_back_up),
        help(
            "Looked for: {wanted}. The server has: {available}. Name one with --collection, or use --all."
        )
    )]
    NothingToBackUp { wanted: String, available: String },

    /// The server did not answer, or refused the key, before any collection was read (exit 1).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Connect(QdrantError),

    /// The cluster's peers could not be read (exit 1).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Peers(crate::engine::peers::PeerError),

    /// Exit 1 for a connection problem, 3 for a full disk, else 2 (see [`CollectionCause`]).
    #[error("could not back up collection `{collection}`")]
    #[diagnostic(code(aimem::backup::collection))]
    Collection {
        collection: String,
        #[source]
        #[diagnostic_source]
        source: CollectionCause,
    },

    #[error("not enough free space in {root}: {needed} needed, {available} available")]
    #[diagnostic(
        code(aimem::backup::disk_space),
        help(
            "{why} Free up space, or back up to a larger volume with --output DIR or AI_MEMORY_BACKUP_DIR."
        )
    )]
    DiskSpace {
        root: Utf8PathBuf,
        needed: String,
        available: String,
        why: String,
    },

    #[error("cannot prepare the backup folder {path}: {source}")]
    #[diagnostic(
        code(aimem::backup::folder),
        help("Check that the folder is writable, or choose another with --output DIR.")
    )]
    Folder {
        path: Utf8PathBuf,
        source: std::io::Error,
    },

    /// As [`BackupError::Folder`], but exit 2 whatever the cause, a full disk included: the
    /// backup root, a cluster collection's folder and the run's journal have always failed so
    /// (only the files of the backup itself count a full disk).
    #[error("cannot prepare the backup folder {path}: {source}")]
    #[diagnostic(
        code(aimem::backup::folder),
        help(
            "Check that the folder is writable (for an s3:// root: the bucket, the credentials and the endpoint, as the message says), or choose another with --output DIR."
        )
    )]
    Preparing {
        path: Utf8PathBuf,
        source: std::io::Error,
    },

    #[error("could not back up config file `{file}`: {source}")]
    #[diagnostic(
        code(aimem::backup::config),
        help("Check the file's permissions under {install}.")
    )]
    Config {
        file: String,
        install: Utf8PathBuf,
        source: std::io::Error,
    },

    #[error(
        "`{collection}` is distributed: shards {shards} live only on other peers of the cluster"
    )]
    #[diagnostic(
        code(aimem::backup::distributed),
        help(
            "A Qdrant snapshot holds only the shards of the peer that takes it, so this backup would miss \
             points. aimem backs up single-node collections; for a cluster, snapshot the collection on every \
             peer (POST /collections/NAME/snapshots on each peer's REST address) until every shard is covered."
        )
    )]
    Distributed { collection: String, shards: String },

    #[error("the server at {server} lists a collection named {}: {}", crate::names::shown(&.name.name), .name.problem)]
    #[diagnostic(
        code(aimem::backup::unsafe_name),
        help(
            "aimem names each snapshot file after its collection, and this name cannot be a file name. Qdrant \
             itself does not create such names: check that the URL points at the real Qdrant. Back up the \
             other collections with --collection NAME."
        )
    )]
    UnsafeServerName {
        server: String,
        name: crate::names::UnsafeName,
    },

    #[error(
        "the schema of `{collection}` changed during each of {attempts} snapshots: no snapshot is known to match a schema"
    )]
    #[diagnostic(
        code(aimem::backup::schema_changing),
        help(
            "Something keeps changing the collection's payload indexes or configuration. Run the backup \
             again once it is done."
        )
    )]
    SchemaKeptChanging { collection: String, attempts: u32 },

    #[error("{count} collections are more than one backup holds: {reason}")]
    #[diagnostic(
        code(aimem::backup::too_many_collections),
        help(
            "aimem writes a backup only when it can read its manifest back, and one manifest holds about \
             {limit} collections. Back up in several runs, each naming some with --collection NAME (and \
             its own --output DIR if you prune)."
        )
    )]
    TooManyCollections {
        count: usize,
        reason: String,
        limit: usize,
    },

    /// Only while a single node's collection is taken: the server does not stream shard
    /// snapshots, and the collection is taken again the stored way ([`take::Streaming`]).
    #[error("the server does not stream shard snapshots (it answered 404 for a shard it lists)")]
    #[diagnostic(
        code(aimem::backup::not_streamed),
        help(
            "Run the backup again with --no-stream: Qdrant then builds each snapshot on its disk first."
        )
    )]
    NotStreamed,

    /// A signal stopped the run: `by` is its status (130 or 143).
    #[error("stopped by a signal; the partial backup was removed")]
    #[diagnostic(
        code(aimem::interrupted),
        help("Nothing was kept: run the backup again when convenient.")
    )]
    Interrupted { by: Exit },

    /// Every job ran to success, yet a collection is missing: a bug; the backup is not published.
    #[error("not every collection was backed up")]
    #[diagnostic(help("Run the backup again."))]
    Incomplete,

    /// A collection's job panicked (a bug in aimem).
    #[error("backing up `{collection}` failed: aimem hit an internal error (above)")]
    #[diagnostic(help("Run the backup again; if it happens again, report the message above."))]
    Panicked { collection: String },
}

/// Why a collection could not be backed up: the diagnostic is the source's own.
#[derive(Debug, Error, Diagnostic)]
pub enum CollectionCause {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Qdrant(QdrantError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Download(snapshot::DownloadError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Schema(crate::fingerprint::FingerprintError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Shards(shards::ShardError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Points(logical::ExportError),
}

impl From<logical::ExportError> for CollectionCause {
    fn from(e: logical::ExportError) -> CollectionCause {
        CollectionCause::Points(e)
    }
}

impl ExitStatus for BackupError {
    fn exit_status(&self) -> Exit {
        match self {
            // A refused key or a server gone away is a connection failure, as the guide says
            // for backup, even in the middle of a collection.
            BackupError::Connect(_) | BackupError::Peers(_) => Exit::BackupConnectionFailed,
            BackupError::Collection {
                source: CollectionCause::Qdrant(e),
                ..
            } if e.is_connection_problem() => Exit::BackupConnectionFailed,
            // A full disk is the disk-space status, whichever layer noticed it: the download
            // itself, or the client writing the body it streams.
            BackupError::Collection {
                source: CollectionCause::Download(e),
                ..
            } if e.is_out_of_space() => Exit::InsufficientSpace,
            BackupError::Collection {
                source: CollectionCause::Qdrant(QdrantError::LocalWrite(e)),
                ..
            } if disk::is_out_of_space(e) => Exit::InsufficientSpace,
            BackupError::Collection {
                source: CollectionCause::Points(e),
                ..
            } if e.is_out_of_space() => Exit::InsufficientSpace,
            BackupError::Collection {
                source: CollectionCause::Points(logical::ExportError::Qdrant(e)),
                ..
            } if e.is_connection_problem() => Exit::BackupConnectionFailed,
            BackupError::DiskSpace { .. } => Exit::InsufficientSpace,
            // A full disk while writing the backup's files is the disk-space status.
            BackupError::Folder { source, .. } | BackupError::Config { source, .. }
                if disk::is_out_of_space(source) =>
            {
                Exit::InsufficientSpace
            }
            BackupError::Config { .. } => Exit::ConfigOrRestoreFailed,
            BackupError::Interrupted { by } => *by,
            BackupError::UnknownCollections { .. }
            | BackupError::NothingToBackUp { .. }
            | BackupError::Collection { .. }
            | BackupError::Folder { .. }
            | BackupError::Preparing { .. }
            | BackupError::Distributed { .. }
            | BackupError::UnsafeServerName { .. }
            | BackupError::SchemaKeptChanging { .. }
            | BackupError::TooManyCollections { .. }
            | BackupError::Incomplete
            | BackupError::NotStreamed
            | BackupError::Panicked { .. } => Exit::Failed,
        }
    }
}

/// What the backup's steps return: the error decides the exit status ([`ExitStatus`]).
pub type Backed<T = ()> = Result<T, BackupError>;

/// A failure of backing up `collection`, the status decided by its cause.
fn collection_error(collection: &str, source: impl Into<CollectionCause>) -> BackupError {
    BackupError::Collection {
        collection: collection.to_string(),
        source: source.into(),
    }
}

impl From<QdrantError> for CollectionCause {
    fn from(e: QdrantError) -> CollectionCause {
        CollectionCause::Qdrant(e)
    }
}

impl From<snapshot::DownloadError> for CollectionCause {
    fn from(e: snapshot::DownloadError) -> CollectionCause {
        CollectionCause::Download(e)
    }
}

impl From<crate::fingerprint::FingerprintError> for CollectionCause {
    fn from(e: crate::fingerprint::FingerprintError) -> CollectionCause {
        CollectionCause::Schema(e)
    }
}

impl From<shards::ShardError> for CollectionCause {
    fn from(e: shards::ShardError) -> CollectionCause {
        CollectionCause::Shards(e)
    }
}

/// A collection chosen for backup, with what was learnt about it before starting.
pub struct Planned {
    name: SafeName,
    /// The schema as planned: what the manifest will hold, give or take a change meanwhile.
    fingerprint: Fingerprint,
    /// The snapshot's size as estimated from the schema and point count (the schema itself is
    /// read again around the snapshot, see [`consistent`]).
    estimate: u64,
}

/// What a backup run works with, once the collections are planned and the root prepared.
pub struct Run<'a> {
    pub client: &'a Client,
    pub endpoint: &'a Endpoint,
    pub ui: &'a Ui,
    pub stop: &'a StopFlag,
    /// The backup root, absolute ([`prepare_root`]).
    pub root: &'a Utf8Path,
    /// The server as journals name it (no credentials).
    pub server: String,
    /// The server whatever URL reached it, for journals (`Topology::identity`).
    pub identity: String,
    /// The names the server goes by in snapshot turns.
    pub lock_keys: LockKeys,
    pub install: &'a Utf8Path,
    /// The AI Memory version the manifest records.
    pub ai_memory_version: String,
    /// The Qdrant version the manifest records, when the server told it.
    pub qdrant_version: Option<String>,
    /// A single node, or the cluster's peers.
    pub topology: &'a Topology,
    pub options: Options,
    /// The key to encrypt every file to (`--encrypt`), if any.
    pub sealing: Option<Arc<crate::crypt::Sealing>>,
    pub progress: &'a dyn Progress,
}

/// What every step needs.
struct Context<'a> {
    client: &'a Client,
    endpoint: &'a Endpoint,
    ui: &'a Ui,
    stop: &'a StopFlag,
    root: &'a Utf8Path,
    /// Where the journals of backups into `root` live (the root itself, for a local one).
    journal_root: Utf8PathBuf,
    /// The server as journals name it (no credentials).
    server: String,
    /// The server whatever URL reached it, for journals (`Topology::identity`).
    identity: String,
    /// The names the server goes by in snapshot turns.
    lock_keys: LockKeys,
    install: &'a Utf8Path,
    ai_memory_version: String,
    /// Whether shard snapshots are streamed, until the server says it cannot.
    streaming: take::Streaming,
    /// Told what is made, for the subcommand's report.
    progress: &'a dyn Progress,
    /// A single node, or the cluster's peers.
    topology: &'a Topology,
    options: Options,
    /// The id ranges of logical backups read at once, across the collections of the run.
    range_slots: logical::RangeSlots,
    /// The key every file is encrypted to (`--encrypt`), if any.
    sealing: Option<Arc<crate::crypt::Sealing>>,
}

/// A published backup.
pub struct Written {
    pub manifest: Manifest,
    /// Bytes written into the backup folder (snapshots, config files, logs, manifest).
    pub total_size: u64,
    /// The backup folder.
    pub folder: Utf8PathBuf,
}

/// Writes the backup of `planned` (and `logs`) into `final_dir`, or leaves nothing: from the
/// first thing made, a signal asks the run to stop and every failure undoes what was made.
pub fn write(
    run: Run,
    planned: &[Planned],
    logs: &[(Utf8PathBuf, String)],
    final_dir: &Utf8Path,
) -> Backed<Written> {
    // From here on the run makes things (a staging folder, server snapshots) that a signal
    // must not leave behind: the first signal asks, the undo log cleans up. Before here a
    // signal ends aimem at once, even while it waits on a server that does not answer.
    let _cleanup = run.stop.cleanup_scope();
    stopped(run.stop)?;
    let undo = Mutex::new(Undo::default());
    let journal_root =
        crate::workspace::journal_root(run.root, crate::workspace::runs::Missing::Create, run.ui)
            .map_err(|source| BackupError::Preparing {
            path: run.root.to_owned(),
            source,
        })?;
    let context = Context {
        client: run.client,
        endpoint: run.endpoint,
        ui: run.ui,
        stop: run.stop,
        root: run.root,
        journal_root,
        server: run.server,
        identity: run.identity,
        lock_keys: run.lock_keys,
        install: run.install,
        ai_memory_version: run.ai_memory_version,
        streaming: take::Streaming::new(run.options.stream),
        progress: run.progress,
        topology: run.topology,
        range_slots: logical::RangeSlots::new(logical::RANGES.max(usize::from(run.options.jobs))),
        options: run.options,
        sealing: run.sealing,
    };
    write_backup(
        &context,
        planned,
        logs,
        final_dir,
        run.qdrant_version,
        &undo,
    )
    .inspect_err(|_| {
        lock(&undo).run(run.client, run.topology, run.ui);
    })
}

/// Deletes what killed runs (backups and restores) left on this server: nothing else ever
/// deletes it, so it goes first.
pub fn clear_leftovers(
    root: &Utf8Path,
    client: &Client,
    server: (&str, &str),
    topology: &Topology,
    ui: &Ui,
) {
    let journals = crate::workspace::journal_root(root, crate::workspace::runs::Missing::Skip, ui);
    for leftover in journals
        .iter()
        .flat_map(|journals| journal::dead_runs(journals))
    {
        journal::clear(&leftover, client, server, topology, ui);
    }
    crate::engine::restore::clear_dead_restores(root, client, server, topology, ui);
}

/// How long a backup in a bucket written by another machine may go without a change before
/// the next backup counts it as abandoned (its writer cannot be looked at from here).
const REMOTE_STAGING_GRACE: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// Removes from a root in object storage what killed backups left there: every incomplete
/// backup whose writer was a process of this machine that has ended, or whose objects have
/// not changed for a day, its multipart uploads aborted; and removals that stopped half way.
/// A local root's leftovers are its staging folders, which the journals above account for.
pub fn sweep_remote_leftovers(root: &Utf8Path, ui: &Ui) {
    if !repo::is_remote(root) {
        return;
    }
    let Ok(remote) = repo::at(root) else { return };
    for (location, e) in remote.finish_removals() {
        ui.warn(&format!("could not finish removing {location}: {e}"));
    }
    let Ok(found) = remote.list() else { return };
    let now = std::time::SystemTime::now();
    for staging in found.iter().filter(|f| f.kind == repo::Kind::Staging) {
        let stale = || {
            remote
                .last_change(staging)
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > REMOTE_STAGING_GRACE)
        };
        // A run of this machine whose process has ended left it; any other (another
        // machine's, or a process id used again) once untouched for a day: a live run
        // rewrites its record every ten minutes.
        let abandoned = match remote.writer_alive(staging) {
            Some(false) => true,
            _ => stale(),
        };
        if !abandoned {
            continue;
        }
        match remote.remove(staging) {
            Ok(_) => ui.note(&format!(
                "removed {}, left by a backup that did not finish",
                staging.location
            )),
            Err(e) => ui.warn(&format!(
                "could not remove {}, left by a backup that did not finish: {e}",
                staging.location
            )),
        }
    }
}

/// The data behind a lock even if a thread panicked while holding it: the undo log must still
/// be usable for the cleanup.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The chosen names, each checked as a file name: they come from the server.
fn safe_names(names: &[String], server: &str) -> Backed<Vec<SafeName>> {
    names
        .iter()
        .map(|name| {
            SafeName::new(name).map_err(|name| BackupError::UnsafeServerName {
                server: server.to_string(),
                name,
            })
        })
        .collect()
}

/// Plans the backup of the collections `names` (from the server `client` talks to): each
/// name checked as a file name, its schema read and its snapshot size estimated, and the
/// whole selection checked to fit one manifest. `cluster`: shard by shard from every peer.
pub fn plan(client: &Client, names: &[String], cluster: bool) -> Backed<Vec<Planned>> {
    let names = safe_names(names, client.display_url())?;
    let planned = plan_each(client, &names, cluster)?;
    fits_one_manifest(&planned)?;
    Ok(planned)
}

/// Reads each collection's schema and estimates its snapshot size.
fn plan_each(client: &Client, names: &[SafeName], cluster: bool) -> Backed<Vec<Planned>> {
    names
        .iter()
        .map(|name| {
            let info = client
                .collection_info(name)
                .map_err(|e| collection_error(name, e))?;
            let fingerprint =
                Fingerprint::from_collection_info(&info).map_err(|e| collection_error(name, e))?;
            // Older servers or restricted keys may not answer this: then there is nothing to check.
            // A cluster's collections are backed up shard by shard from every peer.
            if !cluster && let Ok(placement) = client.collection_cluster(name) {
                let missing = cluster::shards_missing_locally(&placement);
                if !missing.is_empty() {
                    let shards = missing
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(BackupError::Distributed {
                        collection: name.to_string(),
                        shards,
                    });
                }
            }
            // `points_count` is approximate: fine for an estimate, not for the manifest.
            let points = info
                .get("points_count")
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            let estimate = disk::estimate_snapshot_size(&fingerprint, points);
            Ok(Planned {
                name: name.clone(),
                fingerprint,
                estimate,
            })
        })
        .collect()
}

/// Refuses, before any snapshot is taken, a selection whose manifest aimem could not read
/// back: more than [`MAX_BACKUP_COLLECTIONS`], or schemas that together exceed what a manifest
/// may hold. The written manifest is checked again (see [`write_backup`]).
fn fits_one_manifest(planned: &[Planned]) -> Backed {
    let too_many = |reason: String| {
        Err(BackupError::TooManyCollections {
            count: planned.len(),
            reason,
            limit: MAX_BACKUP_COLLECTIONS,
        })
    };
    if planned.len() > MAX_BACKUP_COLLECTIONS {
        return too_many(format!("one backup takes at most {MAX_BACKUP_COLLECTIONS}"));
    }
    // The manifest as it will be, the figures not yet known written as zeros.
    let collections = planned
        .iter()
        .map(|p| {
            let entry = CollectionEntry {
                name: p.name.to_string(),
                records: 0,
                records_max: None,
                backup: crate::manifest::CollectionBackup::Snapshot {
                    file: p.name.snapshot_file(),
                },
                size_bytes: 0,
                schema: Some(p.fingerprint.as_value().clone()),
                sha256: Some("0".repeat(64)),
                schema_digest: Some(p.fingerprint.digest()),
            };
            (p.name.to_string(), entry)
        })
        .collect();
    let draft = Manifest {
        backup_date: layout::timestamp(crate::localtime::now()),
        ai_memory_version: String::new(),
        qdrant_host: String::new(),
        qdrant_port: 0,
        collections,
        config_files: Vec::new(),
        includes_logs: false,
        runtime_flags: BTreeMap::new(),
        aimem_version: None,
        qdrant_version: None,
        cluster: None,
        encryption: None,
    };
    match draft.checked_json() {
        Ok(_) => Ok(()),
        Err(unreadable) => too_many(unreadable.reason),
    }
}

/// Creates the backup root if needed and returns it absolute. A root in object storage is
/// listed once instead, so that bad credentials or a missing bucket stop the run before any
/// snapshot is taken.
pub fn prepare_root(output: &Utf8Path) -> Result<Utf8PathBuf, BackupError> {
    if repo::is_remote(output) {
        repo::at(output)
            .and_then(|remote| remote.list())
            .map_err(|source| BackupError::Preparing {
                path: output.to_owned(),
                source,
            })?;
        return Ok(output.to_owned());
    }
    let repo = LocalRepo::prepare(output).map_err(|source| BackupError::Preparing {
        path: output.to_owned(),
        source,
    })?;
    Ok(repo.path().to_owned())
}

/// Fails with exit 3 unless `root`'s filesystem has twice the estimated size of `planned` and
/// `logs` free. Returns the free bytes.
pub fn check_estimate(
    root: &Utf8Path,
    planned: &[Planned],
    logs: &[(Utf8PathBuf, String)],
) -> Backed<u64> {
    let log_bytes: u64 = logs
        .iter()
        .filter_map(|(path, _)| path.metadata().ok())
        .map(|m| m.len())
        .sum();
    let estimate = planned.iter().map(|p| p.estimate).sum::<u64>() + log_bytes;
    check_space(
        root,
        estimate,
        "The backup is estimated from each collection's vectors and points; aimem wants twice that free.",
    )
}

/// Fails with exit 3 unless `root`'s filesystem has twice `needed` free. Returns the free bytes.
fn check_space(root: &Utf8Path, needed: u64, why: &str) -> Backed<u64> {
    let free = disk::free_space(root).map_err(|source| BackupError::Preparing {
        path: root.to_owned(),
        source,
    })?;
    let wanted = needed.saturating_mul(2);
    if free < wanted {
        return Err(BackupError::DiskSpace {
            root: root.to_owned(),
            needed: human_size(wanted),
            available: human_size(free),
            why: why.to_string(),
        });
    }
    Ok(free)
}

/// The failure for a stop requested while a worker ran.
fn interrupted<T>(by: Exit) -> Backed<T> {
    Err(BackupError::Interrupted { by })
}

/// Fails with the signal's status once a signal asked the run to stop.
pub fn stopped(stop: &StopFlag) -> Backed {
    match stop.requested() {
        Some(by) => Err(BackupError::Interrupted { by }),
        None => Ok(()),
    }
}

/// What has gone into the staging folder so far: each file's checksum line and their sizes.
#[derive(Default)]
struct Files {
    checksums: Vec<Entry>,
    total_size: u64,
}

/// Builds the whole backup in staging and renames it into place. Returns the manifest and the
/// total size of the files written.
fn write_backup(
    cx: &Context,
    planned: &[Planned],
    logs: &[(Utf8PathBuf, String)],
    final_dir: &Utf8Path,
    qdrant_version: Option<String>,
    undo: &Mutex<Undo>,
) -> Backed<Written> {
    let final_name = final_dir.file_name().unwrap_or("backup");
    let stage = begin_staging(cx, final_name, undo)?;
    let staging = stage.location().to_owned();
    let mut files = Files::default();
    let snapshot_dir = Dest::of(&stage, SNAPSHOT_DIR);
    let collections = collections_into(cx, planned, &snapshot_dir, undo, &mut files)?;

    stopped(cx.stop)?;
    cx.ui.blank();
    let config_files = config_files_into(cx, &*stage, &mut files)?;
    if cx.options.include_logs {
        stopped(cx.stop)?;
        logs_into(cx, &*stage, logs, &mut files)?;
    }

    let mut manifest = Manifest {
        backup_date: layout::timestamp(crate::localtime::now()),
        ai_memory_version: cx.ai_memory_version.clone(),
        qdrant_host: cx.endpoint.host.clone(),
        qdrant_port: cx.endpoint.port,
        collections,
        config_files,
        includes_logs: cx.options.include_logs,
        runtime_flags: files::runtime_flags(cx.install),
        aimem_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        qdrant_version,
        cluster: None,
        encryption: cx.sealing.as_ref().map(|sealing| sealing.record()),
    };
    if let Some(cluster) = shards::cluster_record(cx.topology) {
        manifest.set_cluster(&cluster);
    }
    manifest_into(&manifest, &*stage, &mut files)?;

    stopped(cx.stop)?;
    lock(undo).hand_on_leftover_snapshots(
        cx.client,
        cx.topology,
        cx.ui,
        &cx.journal_root,
        (&cx.server, &cx.identity),
        final_name,
    );
    let journal = lock(undo).journal.take();
    if let Some(journal) = journal {
        journal.finish().map_err(|source| BackupError::Preparing {
            path: staging.clone(),
            source,
        })?;
    }
    let final_dir = stage.commit().map_err(|source| BackupError::Folder {
        path: staging.clone(),
        source,
    })?;
    lock(undo).named = None;
    if let Some(journal_only) = lock(undo)
        .staging
        .take()
        .filter(|_| stage.local_folder().is_none())
    {
        // A backup written by name kept only its (finished) journal's folder here.
        std::fs::remove_dir_all(&journal_only).ok();
    }
    lock(undo).staging = None;
    Ok(Written {
        manifest,
        total_size: files.total_size,
        folder: final_dir,
    })
}

/// Creates the staging folder for `final_name` in the root, its journal and its snapshot
/// folder, each recorded in `undo`.
fn begin_staging(
    cx: &Context,
    final_name: &str,
    undo: &Mutex<Undo>,
) -> Backed<Arc<dyn repo::Staging>> {
    let stage = SafeName::new(final_name)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))
        .and_then(|name| repo::at(cx.root)?.begin(&name))
        .map_err(|source| BackupError::Folder {
            path: cx.root.to_owned(),
            source,
        })?;
    let stage: Arc<dyn repo::Staging> = match &cx.sealing {
        // Encrypted: every file is streamed through the encryption by name, even into a
        // local folder (a partial download cannot be resumed inside an age file).
        Some(sealing) => Arc::new(crate::crypt::staging::SealedStaging::new(
            Arc::from(stage),
            Arc::clone(sealing),
        )),
        None => Arc::from(stage),
    };
    let staging = match stage.local_folder() {
        Some(folder) => folder.to_owned(),
        None => {
            // Written by name (object storage): its objects go if the run fails, and its
            // journal is kept on this machine, in a staging folder of its own under the
            // root's journal folder (see `workspace::journal_root`).
            lock(undo).named = Some(undo::Named(Arc::clone(&stage)));
            crate::workspace::journal_folder(&cx.journal_root, final_name).map_err(|source| {
                BackupError::Preparing {
                    path: cx.journal_root.clone(),
                    source,
                }
            })?
        }
    };
    lock(undo).staging = Some(staging.clone());
    lock(undo).journal = Some(
        journal::Journal::create(&staging, &cx.server, &cx.identity).map_err(|source| {
            BackupError::Preparing {
                path: staging.clone(),
                source,
            }
        })?,
    );
    let snapshot_dir = Dest::of(&stage, SNAPSHOT_DIR);
    snapshot_dir
        .create_dir()
        .map_err(|source| BackupError::Folder {
            path: snapshot_dir.shown().into(),
            source,
        })?;
    Ok(stage)
}

/// Backs up every planned collection into the staging folder's snapshot folder; returns their
/// manifest entries.
fn collections_into(
    cx: &Context,
    planned: &[Planned],
    snapshot_dir: &Dest,
    undo: &Mutex<Undo>,
    files: &mut Files,
) -> Backed<BTreeMap<String, CollectionEntry>> {
    let mut collections = BTreeMap::new();
    // In the order planned, whatever order they finished in: the checksums file lists them so.
    for (name, entry) in pipeline::back_up_collections(cx, planned, snapshot_dir, undo)? {
        files.total_size += entry.size_bytes;
        match &entry.backup {
            crate::manifest::CollectionBackup::Shards(cluster) => {
                files.checksums.extend(cluster.shards.iter().map(|s| Entry {
                    sha256: s.sha256.clone(),
                    path: s.file.clone(),
                }))
            }
            crate::manifest::CollectionBackup::Snapshot { file } => files.checksums.push(Entry {
                sha256: entry.sha256.clone().unwrap_or_default(),
                path: format!("{SNAPSHOT_DIR}/{file}"),
            }),
            crate::manifest::CollectionBackup::Points(points) => {
                files.checksums.extend(points.files.iter().map(|f| Entry {
                    sha256: f.sha256.clone(),
                    path: f.file.clone(),
                }))
            }
        }
        collections.insert(name, entry);
    }
    Ok(collections)
}

/// Copies the install's config files into the staging folder; returns their names.
fn config_files_into(
    cx: &Context,
    stage: &dyn repo::Staging,
    files: &mut Files,
) -> Backed<Vec<String>> {
    cx.ui.step("Backing up config files...");
    let copied = files::copy_config_files(cx.install, stage).map_err(|(file, source)| {
        BackupError::Config {
            file,
            install: cx.install.to_owned(),
            source,
        }
    })?;
    if copied.is_empty() {
        cx.ui
            .note(&format!("no config files found under {}", cx.install));
    }
    let mut config_files = Vec::new();
    for (name, copy) in copied {
        cx.ui.ok(&name);
        files.total_size += copy.size;
        files.checksums.push(copy.checksum);
        config_files.push(name);
    }
    cx.progress.config_files_copied(&config_files);
    Ok(config_files)
}

/// Copies the log files into the staging folder's logs folder (one whose name the checksums
/// file cannot list is skipped with a warning).
fn logs_into(
    cx: &Context,
    stage: &dyn repo::Staging,
    logs: &[(Utf8PathBuf, String)],
    files: &mut Files,
) -> Backed {
    cx.ui.step("Backing up logs...");
    for (source, relative) in logs {
        let relative = format!("{LOGS_DIR}/{relative}");
        if checksums::check_relative(&relative).is_err() {
            cx.ui.warn(&format!(
                "skipped {source}: its name cannot be listed in CHECKSUMS.sha256"
            ));
            continue;
        }
        let copy = files::copy_private(source, stage, &relative).map_err(|source| {
            BackupError::Config {
                file: relative.clone(),
                install: cx.install.to_owned(),
                source,
            }
        })?;
        files.total_size += copy.size;
        files.checksums.push(copy.checksum);
    }
    cx.ui.ok(&format!("{} log files", logs.len()));
    Ok(())
}

/// Writes the manifest (refused unless aimem can read it back) and the checksums file, which
/// lists every file written, the manifest last. An encrypted backup's checksums file lists
/// its files as stored, and `CONTENTS.sha256` (encrypted itself) what is inside them.
fn manifest_into(manifest: &Manifest, stage: &dyn repo::Staging, files: &mut Files) -> Backed {
    let staging = stage.location();
    let write_error = |source| BackupError::Folder {
        path: staging.to_owned(),
        source,
    };
    let checked =
        manifest
            .checked_json()
            .map_err(|unreadable| BackupError::TooManyCollections {
                count: manifest.collections.len(),
                reason: unreadable.reason,
                limit: MAX_BACKUP_COLLECTIONS,
            })?;
    repo::write_file(stage, MANIFEST_FILE, checked.as_str().as_bytes()).map_err(write_error)?;
    let (manifest_sha, manifest_size) = checksums::hash_reader(checked.as_str().as_bytes())
        .map_err(|source| BackupError::Preparing {
            path: staging.to_owned(),
            source,
        })?;
    let manifest_entry = Entry {
        sha256: manifest_sha,
        path: MANIFEST_FILE.to_string(),
    };
    let mut listed = match stage.stored_digests() {
        None => std::mem::take(&mut files.checksums),
        Some(_) => {
            // The manifest stays readable, so it is vouched for inside: a changed one is
            // refused when the backup is opened with its key.
            let mut inside = files.checksums.clone();
            inside.push(manifest_entry.clone());
            let contents = checksums::render(&inside);
            repo::write_file(stage, crate::crypt::CONTENTS_FILE, contents.as_bytes())
                .map_err(write_error)?;
            files.total_size += contents.len() as u64;
            let stored = stage.stored_digests().unwrap_or_default();
            let mut as_stored = Vec::with_capacity(files.checksums.len() + 2);
            for entry in files
                .checksums
                .iter()
                .map(|e| e.path.as_str())
                .chain([crate::crypt::CONTENTS_FILE])
            {
                let sha256 = stored.get(entry).cloned().ok_or_else(|| {
                    write_error(std::io::Error::other(format!(
                        "{entry} was not stored encrypted"
                    )))
                })?;
                as_stored.push(Entry {
                    sha256,
                    path: entry.to_string(),
                });
            }
            as_stored
        }
    };
    listed.push(manifest_entry);
    repo::write_file(
        stage,
        checksums::CHECKSUMS_FILE,
        checksums::render(&listed).as_bytes(),
    )
    .map_err(write_error)?;
    files.total_size += manifest_size;
    Ok(())
}

/// Snapshot, download, verify and clean up one collection; returns its manifest entry and
/// what `--json` says about it. With [`snapshot::Durability::CallerSyncs`] the snapshot file
/// is not synced yet: the caller must sync it before the backup is published.
fn backup_collection(
    cx: &Context,
    collection: &Planned,
    snapshot_dir: &Dest,
    undo: &Mutex<Undo>,
    durability: snapshot::Durability,
) -> Backed<(CollectionEntry, CollectionDone)> {
    // A single node's collection too is streamed shard by shard where the server offers it;
    // one that does not is taken as one stored snapshot. So is one with custom sharding,
    // whose shards a single node's restore has not been checked to lay out again.
    if cx.options.format == Format::Logical {
        return logical::backup_collection(cx, collection, snapshot_dir);
    }
    let custom_sharding = collection
        .fingerprint
        .as_value()
        .pointer("/params/sharding_method")
        .and_then(serde_json::Value::as_str)
        == Some("custom");
    // A cluster's peers are judged one by one (in `shards`). A single node's method is read
    // once: another collection may find meanwhile that the server does not stream.
    if cx.topology.is_cluster() {
        let asked = cx.streaming.asked();
        return shards::backup_collection(cx, collection, snapshot_dir, undo, asked);
    }
    let method = cx.streaming.method();
    if method == take::Method::Streamed && !custom_sharding {
        match shards::backup_collection(cx, collection, snapshot_dir, undo, method) {
            Err(BackupError::NotStreamed) => {}
            done => return done,
        }
    }
    let name = &collection.name;
    let site = Site::Collection(name.as_str());
    let started = Instant::now();
    let tracker = Here { cx, undo };
    let Consistent {
        taken: description,
        records,
        records_max,
        schema: fingerprint,
        ..
    } = consistent::consistent(
        cx,
        name,
        &[],
        consistent::Scope::Collection,
        || capture(cx, site, &tracker),
        |description| {
            take::Stored
                .release(cx.client, site, &description, &tracker)
                .ok();
        },
    )?;
    if let (Some(size), Some(_)) = (description.size, snapshot_dir.local_folder()) {
        check_space(
            cx.root,
            size,
            &format!(
                "Qdrant reports the snapshot of `{name}` is {}; aimem wants twice that free.",
                human_size(size)
            ),
        )?;
    }
    let file_name = name.snapshot_file();
    let target = snapshot_dir.join(&name.snapshot_file());
    let downloaded = {
        let (client, name, description, target) = (
            cx.client.clone(),
            name.to_string(),
            description.clone(),
            target.clone(),
        );
        let (retry, ui, stop) = (cx.options.retry, cx.ui.clone(), cx.stop.clone());
        worker::interruptible(cx.stop, move || {
            let site = Site::Collection(name.as_str());
            let download = snapshot::Download {
                client: &client,
                site,
                snapshot: &description,
                target: &target,
                label: &site.download_label(),
                ui: &ui,
                stop: &stop,
            };
            take::Stored.fetch(&download, retry, durability)
        })
    };
    let downloaded = downloaded
        .or_else(interrupted)?
        .map_err(|e| site_failure(cx, name, SiteFailure::Download(e), cx.root))?;
    // The server keeps every snapshot until deleted: do not let backups fill its disk.
    let deleted = match take::Stored.release(cx.client, site, &description, &tracker) {
        Ok(()) => true,
        Err(e) => {
            cx.ui.warn(&format!(
                "could not delete snapshot {} from the server: {e}",
                description.name
            ));
            false
        }
    };
    let report = CollectionDone {
        name: name.to_string(),
        records,
        records_max,
        size: downloaded.size,
        sha256: downloaded.sha256.clone(),
        snapshot: description.name.clone(),
        server_snapshot_deleted: deleted,
        method: take::Method::Stored,
        seconds: started.elapsed().as_secs_f64(),
    };
    let entry = CollectionEntry {
        name: name.to_string(),
        records,
        records_max,
        backup: crate::manifest::CollectionBackup::Snapshot { file: file_name },
        size_bytes: downloaded.size,
        schema: Some(fingerprint.as_value().clone()),
        sha256: Some(downloaded.sha256),
        schema_digest: Some(fingerprint.digest()),
    };
    Ok((entry, report))
}

/// The collection's schema fingerprint as the server reports it now.
fn live_fingerprint(cx: &Context, name: &str) -> Backed<Fingerprint> {
    let info = cx
        .client
        .collection_info(name)
        .map_err(|e| collection_error(name, e))?;
    Fingerprint::from_collection_info(&info).map_err(|e| collection_error(name, e))
}

/// Captures `site`'s snapshot on the server this run talks to, in its turn. A stop requested
/// meanwhile ends the run once Qdrant has answered (the cleanup deletes what it made).
fn capture(cx: &Context, site: Site<&str>, tracker: &Here) -> Backed<take::Captured> {
    let turn = concurrent::take_turn(&cx.lock_keys, site, cx.stop, cx.ui).or_else(interrupted)?;
    let captured = take::Stored
        .capture(cx.client, site, turn, tracker)
        .map_err(|e| site_failure(cx, site.collection(), e, cx.root))?;
    stopped(cx.stop)?;
    Ok(captured)
}

/// The failure of a site's snapshot work for collection `name` (`journal`: the folder named
/// when its journal cannot be written). A stop ends the run with the signal's status.
fn site_failure(cx: &Context, name: &str, failure: SiteFailure, journal: &Utf8Path) -> BackupError {
    match failure {
        SiteFailure::Qdrant(QdrantError::Interrupted)
        | SiteFailure::Download(snapshot::DownloadError::Qdrant(QdrantError::Interrupted)) => {
            // The transfer ended because a signal arrived: stop with the signal's status.
            match stopped(cx.stop) {
                Err(stop) => stop,
                Ok(()) => BackupError::Interrupted {
                    by: Exit::Interrupted,
                },
            }
        }
        SiteFailure::Qdrant(e) | SiteFailure::Download(snapshot::DownloadError::Qdrant(e)) => {
            collection_error(name, e)
        }
        SiteFailure::Download(e) => collection_error(name, e),
        SiteFailure::Journal(source) => BackupError::Preparing {
            path: journal.to_owned(),
            source,
        },
        SiteFailure::NotStreamed => BackupError::NotStreamed,
    }
}

/// A single node's snapshot work, tracked in the undo log by the thread that does it.
struct Here<'a> {
    cx: &'a Context<'a>,
    undo: &'a Mutex<Undo>,
}

impl take::Tracker for Here<'_> {
    fn record(&self, record: &journal::Record) -> Result<(), SiteFailure> {
        lock(self.undo)
            .journal_record(record)
            .map_err(SiteFailure::Journal)
    }

    /// On a worker thread. It always waits for Qdrant's answer, even after Ctrl-C, so the
    /// snapshot can be deleted.
    fn ask(&self, client: &Client, site: Site<&str>) -> Result<SnapshotDescription, QdrantError> {
        let ui = self.cx.ui.clone();
        let waiting = format!(
            "waiting for Qdrant to finish the snapshot of {site} so it can be deleted (Ctrl-C again quits at once)"
        );
        let mut said = false;
        let spinner = self.cx.ui.spinner(&format!(
            "Qdrant building the snapshot of {}",
            site.collection()
        ));
        let (client, site) = (client.clone(), site.owned());
        let created = worker::wait_through(
            self.cx.stop,
            move || {
                if !std::mem::replace(&mut said, true) {
                    ui.warn(&waiting);
                }
            },
            move || site.create(&client),
        );
        spinner.finish_and_clear();
        created
    }

    fn created(&self, site: Site<&str>, peer_url: Option<String>, snapshot: &str) {
        lock(self.undo).created(site.owned(), peer_url, snapshot.to_string());
    }

    /// The cleanup looks for it, still in this run's turn: another run's creation meanwhile
    /// could be taken for it.
    fn unanswered(&self, pending: undo::Pending) {
        lock(self.undo).pending.push(pending);
    }

    fn deleted(&self, site: Site<&str>, snapshot: &str) {
        lock(self.undo).forget_snapshot(&site.owned(), snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::layout::CONFIG_DIR;

    /// However a site's download failed on a full disk (the download's own write, or the
    /// client's while it streamed the body), the run exits with the disk-space status.
    #[test]
    fn a_full_disk_during_a_snapshot_download_exits_with_the_disk_space_status() {
        let full = || std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let streamed = collection_error("c", QdrantError::LocalWrite(full()));
        assert_eq!(streamed.exit_status(), Exit::InsufficientSpace);
        let wrapped = collection_error(
            "c",
            snapshot::DownloadError::Qdrant(QdrantError::LocalWrite(full())),
        );
        assert_eq!(wrapped.exit_status(), Exit::InsufficientSpace);
        let denied = collection_error(
            "c",
            QdrantError::LocalWrite(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        );
        assert_eq!(denied.exit_status(), Exit::Failed);
    }

    #[test]
    fn a_full_disk_while_writing_the_backup_exits_with_the_disk_space_status() {
        let full = || std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let folder = BackupError::Folder {
            path: "x".into(),
            source: full(),
        };
        let config = BackupError::Config {
            file: ".env".into(),
            install: "i".into(),
            source: full(),
        };
        let denied = BackupError::Folder {
            path: "x".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        let config_denied = BackupError::Config {
            file: ".env".into(),
            install: "i".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(folder.exit_status(), Exit::InsufficientSpace);
        assert_eq!(config.exit_status(), Exit::InsufficientSpace);
        assert_eq!(denied.exit_status(), Exit::Failed);
        assert_eq!(config_denied.exit_status(), Exit::ConfigOrRestoreFailed);
    }

    #[test]
    fn the_journal_and_the_root_fail_with_status_2_even_on_a_full_disk() {
        let full = std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let preparing = BackupError::Preparing {
            path: "x".into(),
            source: full,
        };
        assert_eq!(preparing.exit_status(), Exit::Failed);
    }

    #[test]
    fn a_collection_fails_with_the_status_its_cause_means() {
        let unreachable = collection_error(
            "c",
            QdrantError::Unreachable {
                url: "http://localhost:6333".into(),
                detail: "refused".into(),
            },
        );
        assert_eq!(unreachable.exit_status(), Exit::BackupConnectionFailed);
        let mismatch = collection_error(
            "c",
            snapshot::DownloadError::Mismatch {
                detail: "size".into(),
            },
        );
        assert_eq!(mismatch.exit_status(), Exit::Failed);
        let stopped = BackupError::Interrupted {
            by: Exit::Terminated,
        };
        assert_eq!(stopped.exit_status(), Exit::Terminated);
    }

    #[test]
    fn the_backup_folder_layout_constants_match_the_guide() {
        assert_eq!(
            (SNAPSHOT_DIR, CONFIG_DIR, LOGS_DIR),
            ("qdrant", "config", "logs")
        );
    }
}
