//! `aimem backup`: snapshots of the chosen collections, their schema fingerprints, config
//! files and (optionally) logs, in a new dated folder that is either complete or absent.
//!
//! Everything is written into a hidden staging folder in the backup root and renamed into
//! place only once complete and synced. Every step that creates something records how to
//! undo it in [`Undo`], so one cleanup path serves errors and signals alike.

pub(crate) mod cluster;
pub(crate) mod disk;
pub(crate) mod files;
pub(crate) mod snapshot;
mod undo;

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use clap::Args;
use miette::Diagnostic;
use thiserror::Error;

use crate::cmd::{output, worker};
use crate::exit::Exit;
use crate::failure::{Failure, OrExit, Outcome};
use crate::fingerprint::Fingerprint;
use crate::manifest::checksums::{self, Entry};
use crate::manifest::layout::{self, LOGS_DIR, SNAPSHOT_DIR};
use crate::manifest::{CollectionEntry, MANIFEST_FILE, Manifest};
use crate::qdrant::{Client, QdrantError, SnapshotDescription, Timeouts};
use crate::settings::{ConnectionArgs, Endpoint, InstallArgs, seconds};
use crate::signals::StopFlag;
use crate::ui::{Ui, human_size};
use undo::{Pending, Undo};

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
        value_name = "DIR"
    )]
    pub output: Utf8PathBuf,

    /// Back up only this collection (repeatable). It must exist on the server.
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,

    /// Back up every collection on the server, not only AI Memory's five.
    #[arg(long, conflicts_with = "collections")]
    pub all: bool,

    /// Also copy the log files from <install>/logs.
    #[arg(long)]
    pub include_logs: bool,

    /// Re-attempt a failed snapshot download N times; partial data is discarded first.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub retry: u32,

    /// The AI Memory version to record [default: <install>/version.txt, else "unknown"].
    #[arg(long = "version", value_name = "V")]
    pub ai_memory_version: Option<String>,

    #[command(flatten)]
    pub install: InstallArgs,

    /// Seconds to wait for Qdrant to build a snapshot.
    #[arg(
        long,
        env = "BACKUP_SNAPSHOT_CREATE_TIMEOUT",
        hide_env_values = true,
        default_value_t = 300,
        value_name = "SECONDS"
    )]
    pub create_timeout: u64,

    /// Seconds a snapshot download may stall; one that keeps moving is never cut off.
    #[arg(
        long,
        env = "BACKUP_SNAPSHOT_DOWNLOAD_TIMEOUT",
        hide_env_values = true,
        default_value_t = 300,
        value_name = "SECONDS"
    )]
    pub download_timeout: u64,
}

/// What went wrong, worded for the person who has to fix it.
#[derive(Debug, Error, Diagnostic)]
enum BackupError {
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

    #[error("could not back up collection `{collection}`")]
    #[diagnostic(code(aimem::backup::collection))]
    Collection {
        collection: String,
        #[source]
        #[diagnostic_source]
        source: Box<dyn Diagnostic + Send + Sync>,
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

    #[error("stopped by a signal; the partial backup was removed")]
    #[diagnostic(
        code(aimem::interrupted),
        help("Nothing was kept: run the backup again when convenient.")
    )]
    Interrupted,
}

/// A Qdrant error while backing up `collection`. A refused key or a server gone away is a
/// connection failure (exit 1, as the guide says for backup); anything else is a failed
/// collection backup (exit 2).
fn collection_failure(collection: &str, error: QdrantError) -> Failure {
    let exit = if error.is_connection_problem() {
        Exit::BackupConnectionFailed
    } else {
        Exit::Failed
    };
    Failure::new(
        exit,
        miette::Report::new(collection_error(collection, error)),
    )
}

fn collection_error(
    collection: &str,
    source: impl Diagnostic + Send + Sync + 'static,
) -> BackupError {
    BackupError::Collection {
        collection: collection.to_string(),
        source: Box::new(source),
    }
}

/// A collection chosen for backup, with what was learnt about it before starting.
struct Planned {
    name: String,
    fingerprint: Fingerprint,
    estimate: u64,
}

pub fn run(args: &BackupArgs, ui: &Ui, stop: &StopFlag) -> Outcome {
    let endpoint = args.connection.endpoint().map_err(|m| {
        Failure::msg(
            Exit::InvalidArguments,
            m,
            "Set --url or QDRANT_URL to http://HOST:PORT.",
        )
    })?;
    let timeouts = Timeouts {
        snapshot_create: seconds(args.create_timeout),
        transfer_stall: seconds(args.download_timeout),
        ..Timeouts::default()
    };
    let client = ConnectionArgs::client(&endpoint, timeouts);
    let install = args.install.resolve();

    ui.header("AI Memory Backup");
    let server_version = client.server_info().ok().and_then(|info| info.version);
    let on_server = client
        .list_collections()
        .or_exit(Exit::BackupConnectionFailed)?;
    let names = choose_collections(args, &on_server, ui)?;
    let planned = plan(&client, &names)?;
    stopped(stop)?;

    let root = prepare_root(&args.output).or_exit(Exit::Failed)?;
    let final_dir = layout::free_folder(&root, crate::localtime::now());
    ui.fact("Backup directory", final_dir.as_str());
    ui.fact("Qdrant", &format!("{}:{}", endpoint.host, endpoint.port));
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

    let mut undo = Undo::default();
    let context = Context {
        client: &client,
        endpoint: &endpoint,
        ui,
        stop,
        root: &root,
        install: &install,
        ai_memory_version,
        create_timeout: timeouts.snapshot_create,
    };
    let outcome = write_backup(
        &context,
        args,
        &planned,
        &logs,
        &final_dir,
        server_version,
        &mut undo,
    );
    let (manifest, total_size) = match outcome {
        Ok(done) => done,
        Err(failure) => {
            undo.run(&client, ui);
            return Err(failure);
        }
    };

    ui.blank();
    ui.rule();
    ui.success(&format!("Backup complete: {final_dir}"));
    ui.blank();
    ui.fact("Total size", &human_size(total_size));
    ui.fact("Collections", &manifest.collections.len().to_string());
    ui.fact("Records", &manifest.total_records().to_string());
    ui.rule();
    // The one line on stdout, for scripts: `dir=$(aimem backup)`.
    output::line(final_dir.as_str());
    Ok(())
}

/// What every step needs.
struct Context<'a> {
    client: &'a Client,
    endpoint: &'a Endpoint,
    ui: &'a Ui,
    stop: &'a StopFlag,
    root: &'a Utf8Path,
    install: &'a Utf8Path,
    ai_memory_version: String,
    /// How long Qdrant may take to build a snapshot.
    create_timeout: std::time::Duration,
}

/// The collections to back up: `--all`, the named ones (all must exist), or AI Memory's five
/// (absent ones skipped with a note).
fn choose_collections(args: &BackupArgs, on_server: &[String], ui: &Ui) -> Outcome<Vec<String>> {
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
            })
            .or_exit(Exit::Failed);
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
            })
            .or_exit(Exit::Failed);
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
        })
        .or_exit(Exit::Failed);
    }
    Ok(present.into_iter().map(str::to_string).collect())
}

/// Reads each collection's schema and estimates its snapshot size.
fn plan(client: &Client, names: &[String]) -> Outcome<Vec<Planned>> {
    names
        .iter()
        .map(|name| {
            let info = client
                .collection_info(name)
                .map_err(|e| collection_failure(name, e))?;
            let fingerprint = Fingerprint::from_collection_info(&info)
                .map_err(|e| collection_error(name, e))
                .or_exit(Exit::Failed)?;
            // Older servers or restricted keys may not answer this: then there is nothing to check.
            if let Ok(placement) = client.collection_cluster(name) {
                let missing = cluster::shards_missing_locally(&placement);
                if !missing.is_empty() {
                    let shards = missing
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(BackupError::Distributed {
                        collection: name.clone(),
                        shards,
                    })
                    .or_exit(Exit::Failed);
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

/// Creates the backup root if needed and returns it absolute.
fn prepare_root(output: &Utf8Path) -> Result<Utf8PathBuf, BackupError> {
    let folder_error = |source| BackupError::Folder {
        path: output.to_owned(),
        source,
    };
    std::fs::create_dir_all(output).map_err(folder_error)?;
    let absolute = output.canonicalize_utf8().map_err(folder_error)?;
    Ok(absolute)
}

/// Fails with exit 3 unless `root`'s filesystem has twice `needed` free. Returns the free bytes.
fn check_space(root: &Utf8Path, needed: u64, why: &str) -> Outcome<u64> {
    let free = disk::free_space(root)
        .map_err(|source| BackupError::Folder {
            path: root.to_owned(),
            source,
        })
        .or_exit(Exit::Failed)?;
    let wanted = needed.saturating_mul(2);
    if free < wanted {
        return Err(BackupError::DiskSpace {
            root: root.to_owned(),
            needed: human_size(wanted),
            available: human_size(free),
            why: why.to_string(),
        })
        .or_exit(Exit::InsufficientSpace);
    }
    Ok(free)
}

/// The failure for a stop requested while a worker ran.
fn interrupted<T>(exit: Exit) -> Outcome<T> {
    Err(BackupError::Interrupted).or_exit(exit)
}

fn stopped(stop: &StopFlag) -> Outcome {
    match stop.requested() {
        Some(exit) => Err(BackupError::Interrupted).or_exit(exit),
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
    undo: &mut Undo,
) -> Outcome<(Manifest, u64)> {
    let final_name = final_dir.file_name().unwrap_or("backup");
    let staging = layout::staging_folder(cx.root, final_name);
    let folder_error = |path: &Utf8Path, source| BackupError::Folder {
        path: path.to_owned(),
        source,
    };
    layout::create_private_dir(&staging)
        .map_err(|e| folder_error(&staging, e))
        .or_exit(Exit::Failed)?;
    undo.staging = Some(staging.clone());
    let snapshot_dir = staging.join(SNAPSHOT_DIR);
    layout::create_private_dir(&snapshot_dir)
        .map_err(|e| folder_error(&snapshot_dir, e))
        .or_exit(Exit::Failed)?;

    let mut checksums: Vec<Entry> = Vec::new();
    let mut collections = BTreeMap::new();
    let mut total_size = 0u64;
    for collection in planned {
        stopped(cx.stop)?;
        cx.ui.step(&format!("Backing up {}...", collection.name));
        let entry = backup_collection(cx, args, collection, &snapshot_dir, undo)?;
        cx.ui.ok(&format!(
            "{} records, snapshot created ({})",
            entry.records,
            human_size(entry.size_bytes)
        ));
        total_size += entry.size_bytes;
        checksums.push(Entry {
            sha256: entry.sha256.clone().unwrap_or_default(),
            path: format!("{SNAPSHOT_DIR}/{}", entry.snapshot_file),
        });
        collections.insert(collection.name.clone(), entry);
    }

    stopped(cx.stop)?;
    cx.ui.blank();
    cx.ui.step("Backing up config files...");
    let copied = files::copy_config_files(cx.install, &staging)
        .map_err(|(file, source)| BackupError::Config {
            file,
            install: cx.install.to_owned(),
            source,
        })
        .or_exit(Exit::ConfigOrRestoreFailed)?;
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
            let copy = files::copy_private(source, &staging.join(&relative), &relative)
                .map_err(|source| BackupError::Config {
                    file: relative.clone(),
                    install: cx.install.to_owned(),
                    source,
                })
                .or_exit(Exit::ConfigOrRestoreFailed)?;
            total_size += copy.size;
            checksums.push(copy.checksum);
        }
        cx.ui.ok(&format!("{} log files", logs.len()));
    }

    let manifest = Manifest {
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
        extra: BTreeMap::new(),
    };
    let write_error = |source| BackupError::Folder {
        path: staging.clone(),
        source,
    };
    manifest
        .write(&staging)
        .map_err(write_error)
        .or_exit(Exit::Failed)?;
    let (manifest_sha, manifest_size) = checksums::hash_file(&staging.join(MANIFEST_FILE))
        .map_err(write_error)
        .or_exit(Exit::Failed)?;
    checksums.push(Entry {
        sha256: manifest_sha,
        path: MANIFEST_FILE.to_string(),
    });
    checksums::write(&staging, &checksums)
        .map_err(write_error)
        .or_exit(Exit::Failed)?;
    total_size += manifest_size;

    stopped(cx.stop)?;
    publish(&staging, final_dir)
        .map_err(write_error)
        .or_exit(Exit::Failed)?;
    undo.staging = None;
    Ok((manifest, total_size))
}

/// Snapshot, download, verify and clean up one collection; returns its manifest entry.
fn backup_collection(
    cx: &Context,
    args: &BackupArgs,
    collection: &Planned,
    snapshot_dir: &Utf8Path,
    undo: &mut Undo,
) -> Outcome<CollectionEntry> {
    let name = &collection.name;
    let (description, records, records_max) = consistent_snapshot(cx, name, undo)?;
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
    let file_name = format!("{name}.snapshot");
    let target = snapshot_dir.join(&file_name);
    let downloaded = {
        let (client, name, description, target) = (
            cx.client.clone(),
            name.clone(),
            description.clone(),
            target.clone(),
        );
        let (retry, ui, stop) = (args.retry, cx.ui.clone(), cx.stop.clone());
        worker::interruptible(cx.stop, move || {
            snapshot::download_verified(&client, &name, &description, &target, retry, &ui, &stop)
        })
    };
    let downloaded = match downloaded.or_else(interrupted)? {
        Ok(done) => done,
        Err(snapshot::DownloadError::Qdrant(QdrantError::Interrupted)) => {
            // The transfer ended because a signal arrived: stop with the signal's status.
            stopped(cx.stop)?;
            return Err(BackupError::Interrupted).or_exit(Exit::Interrupted);
        }
        Err(snapshot::DownloadError::Qdrant(e)) => return Err(collection_failure(name, e)),
        Err(e) => return Err(collection_error(name, e)).or_exit(Exit::Failed),
    };
    // The server keeps every snapshot until deleted: do not let backups fill its disk.
    match cx.client.delete_snapshot(name, &description.name) {
        Ok(()) => undo.forget_snapshot(name, &description.name),
        Err(e) => cx.ui.warn(&format!(
            "could not delete snapshot {} from the server: {e}",
            description.name
        )),
    }
    Ok(CollectionEntry {
        name: name.clone(),
        records,
        records_max,
        snapshot_file: file_name,
        size_bytes: downloaded.size,
        schema: Some(collection.fingerprint.as_value().clone()),
        sha256: Some(downloaded.sha256),
        schema_digest: Some(collection.fingerprint.digest()),
        extra: BTreeMap::new(),
    })
}

/// How many times a snapshot is taken again when writes moved the point count meanwhile.
const SNAPSHOT_ATTEMPTS: u32 = 3;

/// Takes a snapshot whose point count is known: the exact count before and after it must
/// agree, or writes happened meanwhile and the snapshot holds an unknown number of points, which
/// restore could not check. Then it is taken again; if the collection never holds still, the
/// range is recorded (`records` .. `records_max`) with a warning.
fn consistent_snapshot(
    cx: &Context,
    name: &str,
    undo: &mut Undo,
) -> Outcome<(SnapshotDescription, u64, Option<u64>)> {
    let count = || {
        cx.client
            .count_exact(name)
            .map_err(|e| collection_failure(name, e))
    };
    let mut attempt = 1;
    loop {
        let before = count()?;
        let description = create_snapshot(cx, name, undo)?;
        let after = count()?;
        if before == after {
            return Ok((description, before, None));
        }
        let (low, high) = (before.min(after), before.max(after));
        if attempt == SNAPSHOT_ATTEMPTS {
            cx.ui.warn(&format!(
                "`{name}` kept changing while it was snapshotted: the snapshot holds between {low} and {high} points"
            ));
            return Ok((description, low, Some(high)));
        }
        cx.ui.note(&format!(
            "`{name}` changed while it was snapshotted ({before} → {after} points); taking it again"
        ));
        if cx.client.delete_snapshot(name, &description.name).is_ok() {
            undo.forget_snapshot(name, &description.name);
        }
        attempt += 1;
    }
}

/// `POST …/snapshots`, on a worker thread. It always waits for Qdrant's answer, even after
/// Ctrl-C, so the snapshot can be deleted; a creation that times out is recorded as pending.
fn create_snapshot(cx: &Context, name: &str, undo: &mut Undo) -> Outcome<SnapshotDescription> {
    // A minute of slack for a server clock behind ours: snapshots that existed before the
    // request are ruled out by name anyway.
    let asked_at =
        undo::snapshot_time(time::OffsetDateTime::now_utc() - time::Duration::minutes(1));
    let existing: Vec<String> = cx
        .client
        .list_snapshots(name)
        .map(|list| list.into_iter().map(|s| s.name).collect())
        .unwrap_or_default();
    let (client, collection) = (cx.client.clone(), name.to_string());
    let ui = cx.ui.clone();
    let waiting = format!(
        "waiting for Qdrant to finish the snapshot of `{name}` so it can be deleted (Ctrl-C again quits at once)"
    );
    let mut said = false;
    let created = worker::wait_through(
        cx.stop,
        move || {
            if !std::mem::replace(&mut said, true) {
                ui.warn(&waiting);
            }
        },
        move || client.create_snapshot(&collection),
    );
    let signal = cx.stop.requested();
    match created {
        Ok(description) => {
            undo.server_snapshots
                .push((name.to_string(), description.name.clone()));
            match signal {
                Some(exit) => interrupted(exit),
                None => Ok(description),
            }
        }
        Err(e) => {
            // No answer: Qdrant may still be building it.
            if e.status().is_none() {
                undo.pending.push(Pending {
                    collection: name.to_string(),
                    existing,
                    wait: cx.create_timeout,
                    asked_at,
                });
            }
            Err(collection_failure(name, e))
        }
    }
}

/// Syncs the staging tree and renames it to its final name, then syncs the root so the rename
/// itself survives a crash.
fn publish(staging: &Utf8Path, final_dir: &Utf8Path) -> std::io::Result<()> {
    sync_tree_dirs(staging)?;
    std::fs::rename(staging, final_dir)?;
    if let Some(root) = final_dir.parent() {
        sync_dir(root)?;
    }
    Ok(())
}

/// Files were synced as they were written; this syncs the folders holding them.
fn sync_tree_dirs(dir: &Utf8Path) -> std::io::Result<()> {
    for entry in dir.read_dir_utf8()? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree_dirs(entry.path())?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Utf8Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::layout::CONFIG_DIR;

    #[test]
    fn the_backup_folder_layout_constants_match_the_guide() {
        assert_eq!(
            (SNAPSHOT_DIR, CONFIG_DIR, LOGS_DIR),
            ("qdrant", "config", "logs")
        );
        assert_eq!(AI_MEMORY_COLLECTIONS.len(), 5);
    }
}
