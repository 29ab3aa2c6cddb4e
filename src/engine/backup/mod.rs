//! `aimem backup`: snapshots of the chosen collections, their schema fingerprints, config
//! files and (optionally) logs, in a new dated folder that is either complete or absent.
//!
//! Everything is written into a hidden staging folder in the backup root and renamed into
//! place only once complete and synced. Every step that creates something records how to
//! undo it in [`Undo`], so one cleanup path serves errors and signals alike.

pub(crate) mod cluster;
pub(crate) mod concurrent;
mod consistent;
pub(crate) mod disk;
pub(crate) mod files;
pub(crate) mod journal;
mod pipeline;
mod resume;
pub(crate) mod shards;
pub(crate) mod site;
pub(crate) mod snapshot;
mod take;
pub(crate) mod undo;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use camino::{Utf8Path, Utf8PathBuf};
use clap::Args;
use miette::Diagnostic;
use serde::Serialize;
use thiserror::Error;

use crate::engine::worker;
use crate::exit::Exit;
use crate::failure::{ExitStatus, Outcome};
use crate::fingerprint::Fingerprint;
use crate::manifest::checksums::{self, Entry};
use crate::manifest::layout::{self, LOGS_DIR, SNAPSHOT_DIR};
use crate::manifest::{CollectionEntry, MANIFEST_FILE, MAX_BACKUP_COLLECTIONS, Manifest};
use crate::names::SafeName;
use crate::output;
use crate::qdrant::{Client, QdrantError, SnapshotDescription, Timeouts};
use crate::repo::{self, LocalRepo, Repo};
use crate::settings::{ConnectionArgs, Endpoint, InstallArgs, seconds};
use crate::signals::StopFlag;
use crate::ui::{Ui, human_size, throughput};
use crate::workspace::runs;
use consistent::Consistent;
use site::Site;
use take::SiteFailure;
use undo::Undo;

pub use files::{CONFIG_FILES, parse_dotenv};

/// The AI Memory collections backed up by default.
pub const AI_MEMORY_COLLECTIONS: [&str; 5] = [
    "discussions",
    "conventions",
    "code-patterns",
    "github",
    "jira-data",
];

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Folder that holds the backups; each backup is a dated folder inside it.
    #[arg(
        long,
        short,
        env = "AI_MEMORY_BACKUP_DIR",
        hide_env_values = true,
        default_value = "./backups",
        value_name = "DIR",
        value_hint = clap::ValueHint::DirPath
    )]
    pub output: Utf8PathBuf,

    /// Back up only this collection (repeatable). It must exist on the server.
    #[arg(long = "collection", value_name = "NAME", value_parser = crate::names::parse_collection_arg, value_hint = clap::ValueHint::Other, add = crate::complete::collection_on_server())]
    pub collections: Vec<String>,

    /// Back up every collection on the server, not only AI Memory's five.
    #[arg(long, conflicts_with = "collections")]
    pub all: bool,

    /// Also copy the log files from <install>/logs.
    #[arg(long)]
    pub include_logs: bool,

    /// Re-attempt a failed snapshot download N times; partial data is discarded first.
    #[arg(long, default_value_t = 0, value_name = "N", value_hint = clap::ValueHint::Other)]
    pub retry: u32,

    /// The AI Memory version to record [default: <install>/version.txt, else "unknown"].
    #[arg(long = "version", value_name = "V", value_hint = clap::ValueHint::Other)]
    pub ai_memory_version: Option<String>,

    #[command(flatten)]
    pub install: InstallArgs,

    #[command(flatten)]
    pub peers: crate::engine::peers::PeerArgs,

    /// Seconds to wait for Qdrant to build a snapshot.
    #[arg(
        long,
        env = "BACKUP_SNAPSHOT_CREATE_TIMEOUT",
        hide_env_values = true,
        default_value_t = 300,
        value_name = "SECONDS",
        value_hint = clap::ValueHint::Other
    )]
    pub create_timeout: u64,

    /// Seconds a snapshot download may stall; one that keeps moving is never cut off.
    #[arg(
        long,
        env = "BACKUP_SNAPSHOT_DOWNLOAD_TIMEOUT",
        hide_env_values = true,
        default_value_t = 300,
        value_name = "SECONDS",
        value_hint = clap::ValueHint::Other
    )]
    pub download_timeout: u64,

    /// Print one JSON document on stdout instead of the folder's path (shape in the README, "JSON output").
    #[arg(long)]
    pub json: bool,

    /// Collections backed up at the same time (while Qdrant builds one snapshot, another is
    /// downloaded); 1 backs them up one after another.
    #[arg(
        long,
        env = "BACKUP_JOBS",
        hide_env_values = true,
        default_value_t = pipeline::DEFAULT_JOBS,
        value_parser = clap::value_parser!(u8).range(1..=16),
        value_name = "N",
        value_hint = clap::ValueHint::Other
    )]
    pub jobs: u8,
}

/// `--json`: what the run made, filled in as it goes (a failed run shows how far it got).
#[derive(Debug, Default, Serialize)]
struct BackupReport {
    /// The new backup folder; null when the run failed (nothing is kept then).
    folder: Option<String>,
    /// True once the backup folder is published.
    complete: bool,
    collections: Vec<CollectionReport>,
    config_files: Vec<String>,
    includes_logs: bool,
    /// Bytes written into the backup folder (snapshots, config files, logs, manifest).
    total_size: u64,
    records: u64,
    seconds: f64,
}

/// One collection of `--json`.
#[derive(Debug, Serialize)]
struct CollectionReport {
    name: String,
    records: u64,
    /// When writes kept moving the count: the snapshot holds between `records` and this.
    records_max: Option<u64>,
    /// Bytes of the snapshot file.
    size: u64,
    sha256: String,
    /// The snapshot's name on the server.
    snapshot: String,
    /// False when the server refused to delete it (it is then still on the server).
    server_snapshot_deleted: bool,
    /// From the first schema read to the deleted server snapshot.
    seconds: f64,
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
        help("Check that the folder is writable, or choose another with --output DIR.")
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
            BackupError::Collection {
                source: CollectionCause::Download(e),
                ..
            } if e.is_out_of_space() => Exit::InsufficientSpace,
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
struct Planned {
    name: SafeName,
    /// The schema as planned: what the manifest will hold, give or take a change meanwhile.
    fingerprint: Fingerprint,
    /// The snapshot's size as estimated from the schema and point count (the schema itself is
    /// read again around the snapshot, see [`consistent`]).
    estimate: u64,
}

pub fn run(args: &BackupArgs, ui: &Ui, stop: &StopFlag) -> Outcome {
    let started = Instant::now();
    let report = Mutex::new(BackupReport {
        includes_logs: args.include_logs,
        ..BackupReport::default()
    });
    let outcome = back_up(args, ui, stop, &report, started);
    if args.json {
        let mut report = report
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        report.seconds = started.elapsed().as_secs_f64();
        output::json(&report);
    }
    outcome
}

/// The backup itself; `started` is the run's start, for its closing line.
fn back_up(
    args: &BackupArgs,
    ui: &Ui,
    stop: &StopFlag,
    report: &Mutex<BackupReport>,
    started: Instant,
) -> Outcome {
    let endpoint = args
        .connection
        .endpoint()
        .map_err(crate::settings::BadEndpoint::failure)?;
    let timeouts = Timeouts {
        request: args.connection.request_timeout(),
        snapshot_create: seconds(args.create_timeout),
        transfer_stall: seconds(args.download_timeout),
        ..Timeouts::default()
    };
    let client = ConnectionArgs::client(&endpoint, timeouts);
    let install = args.install.resolve();

    ui.header("AI Memory Backup");
    // The version is only recorded, so a server that cannot tell it is fine; one that does
    // not answer at all is not, and asking it again (list_collections) would only wait as long.
    let server_version = match client.server_info() {
        Ok(info) => info.version,
        Err(e @ (QdrantError::Timeout { .. } | QdrantError::Unreachable { .. })) => {
            return Err(BackupError::Connect(e).into());
        }
        Err(_) => None,
    };
    let topology =
        crate::engine::peers::discover(&client, &args.peers).map_err(BackupError::Peers)?;
    let on_server = client.list_collections().map_err(BackupError::Connect)?;
    let names = choose_collections(args, &on_server, ui)?;
    let names = safe_names(&names, client.display_url())?;
    let planned = plan(&client, &names, topology.is_cluster())?;
    fits_one_manifest(&planned)?;
    stopped(stop)?;

    let root = prepare_root(&args.output)?;
    let server = runs::server_key(&endpoint);
    let identity = topology.identity(&client, &server);
    let lock_keys =
        crate::engine::peers::LockKeys::new(&identity, &server, &endpoint.host, endpoint.port);
    // What killed runs left on this server goes first: nothing else ever deletes it.
    for leftover in journal::dead_runs(&root) {
        journal::clear(&leftover, &client, (&server, &identity), &topology, ui);
    }
    crate::engine::restore::clear_dead_restores(
        &root,
        &client,
        (&server, &identity),
        &topology,
        ui,
    );
    let final_dir = LocalRepo::new(&root).free_name(crate::localtime::now());
    ui.fact("Backup directory", final_dir.as_str());
    ui.fact("Qdrant", &format!("{}:{}", endpoint.host, endpoint.port));
    if let crate::engine::peers::Topology::Cluster { peers } = &topology {
        // Where the shard snapshots come from: every address aimem will send requests to.
        let listed: Vec<String> = peers
            .iter()
            .map(|p| format!("{} ({})", p.peer_id, p.client.display_url()))
            .collect();
        ui.fact(
            "Cluster",
            &format!("{} peers: {}", peers.len(), listed.join(", ")),
        );
    }
    ui.blank();

    let logs = if args.include_logs {
        files::log_files(&install).unwrap_or_default()
    } else {
        Vec::new()
    };
    let ai_memory_version = files::ai_memory_version(args.ai_memory_version.as_deref(), &install)
        .unwrap_or_else(|| {
            ui.warn(&format!(
                "no AI Memory version found ({install}/version.txt is missing): recording \"unknown\"; pass --version V"
            ));
            "unknown".to_string()
        });
    ui.step("Checking disk space...");
    let log_bytes: u64 = logs
        .iter()
        .filter_map(|(path, _)| path.metadata().ok())
        .map(|m| m.len())
        .sum();
    let estimate = planned.iter().map(|p| p.estimate).sum::<u64>() + log_bytes;
    let free = check_space(
        &root,
        estimate,
        "The backup is estimated from each collection's vectors and points; aimem wants twice that free.",
    )?;
    ui.ok(&format!("{} available", human_size(free)));

    // From here on the run makes things (a staging folder, server snapshots) that a signal
    // must not leave behind: the first signal asks, the undo log cleans up. Before here a
    // signal ends aimem at once, even while it waits on a server that does not answer.
    let _cleanup = stop.cleanup_scope();
    stopped(stop)?;
    let undo = Mutex::new(Undo::default());
    let context = Context {
        client: &client,
        endpoint: &endpoint,
        ui,
        stop,
        root: &root,
        server,
        identity,
        lock_keys,
        install: &install,
        ai_memory_version,
        method: take::Method::default(),
        report,
        topology: &topology,
    };
    let outcome = write_backup(
        &context,
        args,
        &planned,
        &logs,
        &final_dir,
        server_version,
        &undo,
    );
    let (manifest, total_size, final_dir) = match outcome {
        Ok(done) => done,
        Err(failure) => {
            lock(&undo).run(&client, &topology, ui);
            return Err(failure.into());
        }
    };

    ui.blank();
    ui.rule();
    ui.success(&format!("Backup complete: {final_dir}"));
    ui.blank();
    ui.fact("Total size", &human_size(total_size));
    ui.fact("Took", &throughput(total_size, started.elapsed()));
    ui.fact("Collections", &manifest.collections.len().to_string());
    ui.fact("Records", &manifest.total_records().to_string());
    ui.rule();
    {
        let mut report = lock(report);
        report.folder = Some(final_dir.to_string());
        report.complete = true;
        report.total_size = total_size;
        report.records = manifest.total_records();
    }
    // The one line on stdout, for scripts: `dir=$(aimem backup)`.
    if !args.json {
        output::line(final_dir.as_str());
    }
    Ok(())
}

/// What every step needs.
struct Context<'a> {
    client: &'a Client,
    endpoint: &'a Endpoint,
    ui: &'a Ui,
    stop: &'a StopFlag,
    root: &'a Utf8Path,
    /// The server as journals name it (no credentials).
    server: String,
    /// The server whatever URL reached it, for journals (`Topology::identity`).
    identity: String,
    /// The names the server goes by in snapshot turns.
    lock_keys: crate::engine::peers::LockKeys,
    install: &'a Utf8Path,
    ai_memory_version: String,
    /// How each site's snapshot is obtained.
    method: take::Method,
    /// What `--json` reports.
    report: &'a Mutex<BackupReport>,
    /// A single node, or the cluster's peers.
    topology: &'a crate::engine::peers::Topology,
}

/// The data behind a lock even if a thread panicked while holding it: the undo log and the
/// report must still be usable for the cleanup.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The collections to back up: `--all`, the named ones (all must exist), or AI Memory's five
/// (absent ones skipped with a note).
fn choose_collections(args: &BackupArgs, on_server: &[String], ui: &Ui) -> Backed<Vec<String>> {
    let available = || {
        if on_server.is_empty() {
            "no collections".to_string()
        } else {
            on_server.join(", ")
        }
    };
    if args.all {
        if on_server.is_empty() {
            return Err(BackupError::NothingToBackUp {
                wanted: "every collection (--all)".into(),
                available: available(),
            });
        }
        return Ok(on_server.to_vec());
    }
    if !args.collections.is_empty() {
        // Each name once, in the order given (a repeated name would be backed up twice).
        let mut names: Vec<String> = Vec::new();
        for name in &args.collections {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let missing: Vec<String> = names
            .iter()
            .filter(|n| !on_server.contains(n))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(BackupError::UnknownCollections {
                names: missing,
                available: available(),
            });
        }
        return Ok(names);
    }
    let (present, absent): (Vec<&str>, Vec<&str>) = AI_MEMORY_COLLECTIONS
        .iter()
        .partition(|n| on_server.iter().any(|s| s == *n));
    for name in &absent {
        ui.note(&format!("{name}: not on the server, skipped"));
    }
    if present.is_empty() {
        return Err(BackupError::NothingToBackUp {
            wanted: AI_MEMORY_COLLECTIONS.join(", "),
            available: available(),
        });
    }
    Ok(present.into_iter().map(str::to_string).collect())
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

/// Reads each collection's schema and estimates its snapshot size.
fn plan(client: &Client, names: &[SafeName], cluster: bool) -> Backed<Vec<Planned>> {
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
    };
    match draft.checked_json() {
        Ok(_) => Ok(()),
        Err(unreadable) => too_many(unreadable.reason),
    }
}

/// Creates the backup root if needed and returns it absolute.
fn prepare_root(output: &Utf8Path) -> Result<Utf8PathBuf, BackupError> {
    let repo = LocalRepo::prepare(output).map_err(|source| BackupError::Preparing {
        path: output.to_owned(),
        source,
    })?;
    Ok(repo.path().to_owned())
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
fn stopped(stop: &StopFlag) -> Backed {
    match stop.requested() {
        Some(by) => Err(BackupError::Interrupted { by }),
        None => Ok(()),
    }
}

/// Builds the whole backup in staging and renames it into place. Returns the manifest and the
/// total size of the files written.
fn write_backup(
    cx: &Context,
    args: &BackupArgs,
    planned: &[Planned],
    logs: &[(Utf8PathBuf, String)],
    final_dir: &Utf8Path,
    qdrant_version: Option<String>,
    undo: &Mutex<Undo>,
) -> Backed<(Manifest, u64, Utf8PathBuf)> {
    let final_name = final_dir.file_name().unwrap_or("backup");
    let folder_error = |path: &Utf8Path, source| BackupError::Folder {
        path: path.to_owned(),
        source,
    };
    let stage = SafeName::new(final_name)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))
        .and_then(|name| LocalRepo::new(cx.root).begin(&name))
        .map_err(|e| folder_error(cx.root, e))?;
    let staging = stage.location().to_owned();
    lock(undo).staging = Some(staging.clone());
    lock(undo).journal = Some(
        journal::Journal::create(&staging, &cx.server, &cx.identity).map_err(|source| {
            BackupError::Preparing {
                path: staging.clone(),
                source,
            }
        })?,
    );
    let snapshot_dir = staging.join(SNAPSHOT_DIR);
    layout::create_private_dir(&snapshot_dir).map_err(|e| folder_error(&snapshot_dir, e))?;

    let mut checksums: Vec<Entry> = Vec::new();
    let mut collections = BTreeMap::new();
    let mut total_size = 0u64;
    // In the order planned, whatever order they finished in: the checksums file lists them so.
    for (name, entry) in pipeline::back_up_collections(cx, args, planned, &snapshot_dir, undo)? {
        total_size += entry.size_bytes;
        match &entry.backup {
            crate::manifest::CollectionBackup::Shards(cluster) => {
                checksums.extend(cluster.shards.iter().map(|s| Entry {
                    sha256: s.sha256.clone(),
                    path: s.file.clone(),
                }))
            }
            crate::manifest::CollectionBackup::Snapshot { file } => checksums.push(Entry {
                sha256: entry.sha256.clone().unwrap_or_default(),
                path: format!("{SNAPSHOT_DIR}/{file}"),
            }),
        }
        collections.insert(name, entry);
    }

    stopped(cx.stop)?;
    cx.ui.blank();
    cx.ui.step("Backing up config files...");
    let copied = files::copy_config_files(cx.install, &*stage).map_err(|(file, source)| {
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
        total_size += copy.size;
        checksums.push(copy.checksum);
        config_files.push(name);
    }
    lock(cx.report).config_files = config_files.clone();

    if args.include_logs {
        stopped(cx.stop)?;
        cx.ui.step("Backing up logs...");
        for (source, relative) in logs {
            let relative = format!("{LOGS_DIR}/{relative}");
            if checksums::check_relative(&relative).is_err() {
                cx.ui.warn(&format!(
                    "skipped {source}: its name cannot be listed in CHECKSUMS.sha256"
                ));
                continue;
            }
            let copy = files::copy_private(source, &*stage, &relative).map_err(|source| {
                BackupError::Config {
                    file: relative.clone(),
                    install: cx.install.to_owned(),
                    source,
                }
            })?;
            total_size += copy.size;
            checksums.push(copy.checksum);
        }
        cx.ui.ok(&format!("{} log files", logs.len()));
    }

    let mut manifest = Manifest {
        backup_date: layout::timestamp(crate::localtime::now()),
        ai_memory_version: cx.ai_memory_version.clone(),
        qdrant_host: cx.endpoint.host.clone(),
        qdrant_port: cx.endpoint.port,
        collections,
        config_files,
        includes_logs: args.include_logs,
        runtime_flags: files::runtime_flags(cx.install),
        aimem_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        qdrant_version,
        cluster: None,
    };
    if let Some(cluster) = shards::cluster_record(cx.topology) {
        manifest.set_cluster(&cluster);
    }
    let write_error = |source| BackupError::Folder {
        path: staging.clone(),
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
    repo::write_file(&*stage, MANIFEST_FILE, checked.as_str().as_bytes()).map_err(write_error)?;
    let (manifest_sha, manifest_size) = checksums::hash_reader(checked.as_str().as_bytes())
        .map_err(|source| BackupError::Preparing {
            path: staging.clone(),
            source,
        })?;
    checksums.push(Entry {
        sha256: manifest_sha,
        path: MANIFEST_FILE.to_string(),
    });
    let listed = checksums::render(&checksums);
    repo::write_file(&*stage, checksums::CHECKSUMS_FILE, listed.as_bytes()).map_err(write_error)?;
    total_size += manifest_size;

    stopped(cx.stop)?;
    lock(undo).hand_on_leftover_snapshots(
        cx.client,
        cx.topology,
        cx.ui,
        cx.root,
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
    let final_dir = stage.commit().map_err(write_error)?;
    lock(undo).staging = None;
    Ok((manifest, total_size, final_dir))
}

/// Snapshot, download, verify and clean up one collection; returns its manifest entry and
/// what `--json` says about it. With [`snapshot::Durability::CallerSyncs`] the snapshot file
/// is not synced yet: the caller must sync it before the backup is published.
fn backup_collection(
    cx: &Context,
    args: &BackupArgs,
    collection: &Planned,
    snapshot_dir: &Utf8Path,
    undo: &Mutex<Undo>,
    durability: snapshot::Durability,
) -> Backed<(CollectionEntry, CollectionReport)> {
    if cx.topology.is_cluster() {
        return shards::backup_collection(cx, args, collection, snapshot_dir, undo);
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
            cx.method
                .release(cx.client, site, &description, &tracker)
                .ok();
        },
    )?;
    if let Some(size) = description.size {
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
    let target = name.snapshot_path(snapshot_dir);
    let downloaded = {
        let (client, name, description, target) = (
            cx.client.clone(),
            name.to_string(),
            description.clone(),
            target.clone(),
        );
        let (method, retry, ui, stop) = (cx.method, args.retry, cx.ui.clone(), cx.stop.clone());
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
            method.fetch(&download, retry, durability)
        })
    };
    let downloaded = downloaded
        .or_else(interrupted)?
        .map_err(|e| site_failure(cx, name, SiteFailure::Download(e), cx.root))?;
    // The server keeps every snapshot until deleted: do not let backups fill its disk.
    let deleted = match cx.method.release(cx.client, site, &description, &tracker) {
        Ok(()) => true,
        Err(e) => {
            cx.ui.warn(&format!(
                "could not delete snapshot {} from the server: {e}",
                description.name
            ));
            false
        }
    };
    let report = CollectionReport {
        name: name.to_string(),
        records,
        records_max,
        size: downloaded.size,
        sha256: downloaded.sha256.clone(),
        snapshot: description.name.clone(),
        server_snapshot_deleted: deleted,
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
    let captured = cx
        .method
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
        assert_eq!(AI_MEMORY_COLLECTIONS.len(), 5);
    }
}
