//! `aimem backup`: its arguments, the run from connecting to the closing lines, and its
//! report (`--json`, or the new folder's path on stdout). The machinery (planning,
//! consistent snapshots, writing the folder, journals, undo) is [`crate::engine::backup`].

use std::sync::Mutex;
use std::time::Instant;

use camino::{Utf8Path, Utf8PathBuf};
use clap::Args;
use serde::Serialize;

use crate::engine::backup::{self, BackupError, CollectionDone, Options, Progress, Run};
use crate::engine::peers::{self, LockKeys, PeerArgs, Topology};
use crate::failure::Outcome;
use crate::metrics::Facts;
use crate::output;
use crate::qdrant::{Client, QdrantError, Timeouts};
use crate::settings::{ConnectionArgs, Endpoint, InstallArgs, seconds};
use crate::signals::StopFlag;
use crate::ui::{Ui, human_size, throughput};
use crate::workspace::runs;

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

    /// Folder that holds the backups; each backup is a dated folder inside it. An
    /// `s3://bucket/prefix` puts them in S3-compatible object storage instead (credentials
    /// and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL,
    /// AWS_REGION or AWS_PROFILE).
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

    /// Re-attempt a failed snapshot transfer N times: a stored snapshot's download resumes where
    /// it broke, a streamed shard snapshot starts again from its first byte.
    #[arg(long, default_value_t = 0, value_name = "N", value_hint = clap::ValueHint::Other)]
    pub retry: u32,

    /// Have Qdrant build each snapshot on its disk and download it from there (resumable,
    /// deleted after), instead of streaming each shard's snapshot with nothing stored.
    #[arg(long)]
    pub no_stream: bool,

    /// What to back up of each collection: `snapshot`, Qdrant's own snapshots (restorable into
    /// the same Qdrant version or the next minor one, in the same shard layout), or `logical`,
    /// its points in Parquet files with its definition (restorable into any Qdrant from 1.16 on and
    /// any shard layout, readable without aimem; docs/logical-format.md).
    #[arg(long, value_enum, default_value_t = FormatArg::Snapshot, value_name = "FORMAT")]
    pub format: FormatArg,

    /// The AI Memory version to record [default: <install>/version.txt, else "unknown"].
    #[arg(long = "version", value_name = "V", value_hint = clap::ValueHint::Other)]
    pub ai_memory_version: Option<String>,

    #[command(flatten)]
    pub install: InstallArgs,

    #[command(flatten)]
    pub peers: PeerArgs,

    #[command(flatten)]
    pub encryption: crate::crypt::EncryptArgs,

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

    #[command(flatten)]
    pub metrics: crate::metrics::MetricsArgs,

    /// Collections backed up at the same time (while Qdrant builds one snapshot, another is
    /// downloaded); 1 backs them up one after another.
    #[arg(
        long,
        env = "BACKUP_JOBS",
        hide_env_values = true,
        default_value_t = backup::DEFAULT_JOBS,
        value_parser = clap::value_parser!(u8).range(1..=16),
        value_name = "N",
        value_hint = clap::ValueHint::Other
    )]
    pub jobs: u8,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    Snapshot,
    Logical,
}

impl From<FormatArg> for backup::Format {
    fn from(format: FormatArg) -> backup::Format {
        match format {
            FormatArg::Snapshot => backup::Format::Snapshot,
            FormatArg::Logical => backup::Format::Logical,
        }
    }
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
    /// True when its files are encrypted (`--encrypt`).
    encrypted: bool,
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
    /// `streamed` (each shard's snapshot streamed, nothing stored on the server), `stored`,
    /// or `exported` (a logical backup's points).
    method: &'static str,
    /// `snapshot` or `logical`.
    format: &'static str,
    /// From the first schema read to the deleted server snapshot.
    seconds: f64,
}

impl From<CollectionDone> for CollectionReport {
    fn from(done: CollectionDone) -> CollectionReport {
        CollectionReport {
            name: done.name,
            records: done.records,
            records_max: done.records_max,
            size: done.size,
            sha256: done.sha256,
            snapshot: done.snapshot,
            server_snapshot_deleted: done.server_snapshot_deleted,
            method: done.method.name(),
            format: match done.method {
                crate::engine::backup::take::Method::Exported => "logical",
                _ => "snapshot",
            },
            seconds: done.seconds,
        }
    }
}

/// The report is filled in as the engine goes, so a failed run shows how far it got.
impl Progress for Mutex<BackupReport> {
    fn collection_done(&self, done: CollectionDone) {
        lock(self).collections.push(done.into());
    }

    fn config_files_copied(&self, names: &[String]) {
        lock(self).config_files = names.to_vec();
    }
}

/// The report even if a thread panicked while holding it.
fn lock(report: &Mutex<BackupReport>) -> std::sync::MutexGuard<'_, BackupReport> {
    report
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn run(args: &BackupArgs, ui: &Ui, stop: &StopFlag, facts: &Facts) -> Outcome {
    let started = Instant::now();
    facts.root(&args.output);
    let report = Mutex::new(BackupReport {
        includes_logs: args.include_logs,
        encrypted: args.encryption.encrypt,
        ..BackupReport::default()
    });
    let outcome = back_up(args, ui, stop, &report, started);
    let mut report = report
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    facts.bytes(report.total_size);
    for collection in &report.collections {
        facts.collection(&collection.name, collection.records);
    }
    if args.json {
        report.seconds = started.elapsed().as_secs_f64();
        output::json(&report);
    }
    outcome
}

/// The server this run talks to, as the command line names it.
struct Server {
    endpoint: Endpoint,
    client: Client,
    /// Its version, when it tells it (the manifest records it).
    version: Option<String>,
    topology: Topology,
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
    let install = args.install.resolve();
    // The key first: a backup that cannot be encrypted as asked is not started.
    let sealing = args.encryption.sealing()?.map(std::sync::Arc::new);
    ui.header("AI Memory Backup");
    let Server {
        endpoint,
        client,
        version,
        topology,
    } = connect(args, endpoint)?;
    let on_server = client.list_collections().map_err(BackupError::Connect)?;
    let names = choose_collections(args, &on_server, ui)?;
    let planned = backup::plan(&client, &names, topology.is_cluster())?;
    backup::stopped(stop)?;

    let root = backup::prepare_root(&args.output)?;
    let server = runs::server_key(&endpoint);
    let identity = topology.identity(&client, &server);
    let lock_keys = LockKeys::new(&identity, &server, &endpoint.host, endpoint.port);
    backup::clear_leftovers(&root, &client, (&server, &identity), &topology, ui);
    backup::sweep_remote_leftovers(&root, ui);
    let final_dir = crate::repo::at(&root)
        .map_err(|source| BackupError::Preparing {
            path: root.clone(),
            source,
        })?
        .free_name(crate::localtime::now());
    show_where(ui, &final_dir, &endpoint, &topology);

    let logs = if args.include_logs {
        backup::log_files(&install).unwrap_or_default()
    } else {
        Vec::new()
    };
    let ai_memory_version = backup::ai_memory_version(args.ai_memory_version.as_deref(), &install)
        .unwrap_or_else(|| {
            ui.warn(&format!(
                "no AI Memory version found ({install}/version.txt is missing): recording \"unknown\"; pass --version V"
            ));
            "unknown".to_string()
        });
    // A backup into object storage needs no local disk: its files are streamed up.
    if !crate::repo::is_remote(&root) {
        ui.step("Checking disk space...");
        let free = backup::check_estimate(&root, &planned, &logs)?;
        ui.ok(&format!("{} available", human_size(free)));
    }

    let run = Run {
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
        qdrant_version: version,
        topology: &topology,
        options: Options {
            jobs: args.jobs,
            retry: args.retry,
            include_logs: args.include_logs,
            stream: !args.no_stream,
            format: args.format.into(),
        },
        sealing,
        progress: report,
    };
    let written = backup::write(run, &planned, &logs, &final_dir)?;

    ui.blank();
    ui.rule();
    ui.success(&format!("Backup complete: {}", written.folder));
    ui.blank();
    ui.fact("Total size", &human_size(written.total_size));
    ui.fact("Took", &throughput(written.total_size, started.elapsed()));
    ui.fact(
        "Collections",
        &written.manifest.collections.len().to_string(),
    );
    ui.fact("Records", &written.manifest.total_records().to_string());
    ui.rule();
    {
        let mut report = lock(report);
        report.folder = Some(written.folder.to_string());
        report.complete = true;
        report.total_size = written.total_size;
        report.records = written.manifest.total_records();
    }
    // The one line on stdout, for scripts: `dir=$(aimem backup)`.
    if !args.json {
        output::line(written.folder.as_str());
    }
    Ok(())
}

/// Reaches the server: its version and, for a cluster, its peers.
fn connect(args: &BackupArgs, endpoint: Endpoint) -> Result<Server, BackupError> {
    let timeouts = Timeouts {
        request: args.connection.request_timeout(),
        snapshot_create: seconds(args.create_timeout),
        transfer_stall: seconds(args.download_timeout),
        ..Timeouts::default()
    };
    let client = ConnectionArgs::client(&endpoint, timeouts);
    // The version is only recorded, so a server that cannot tell it is fine; one that does
    // not answer at all is not, and asking it again (list_collections) would only wait as long.
    let version = match client.server_info() {
        Ok(info) => info.version,
        Err(e @ (QdrantError::Timeout { .. } | QdrantError::Unreachable { .. })) => {
            return Err(BackupError::Connect(e));
        }
        Err(_) => None,
    };
    let topology = peers::discover(&client, &args.peers).map_err(BackupError::Peers)?;
    Ok(Server {
        endpoint,
        client,
        version,
        topology,
    })
}

/// Where the backup goes and where it comes from.
fn show_where(ui: &Ui, final_dir: &Utf8Path, endpoint: &Endpoint, topology: &Topology) {
    ui.fact("Backup directory", final_dir.as_str());
    ui.fact("Qdrant", &format!("{}:{}", endpoint.host, endpoint.port));
    if let Topology::Cluster { peers } = topology {
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
}

/// The collections to back up: `--all`, the named ones (all must exist), or AI Memory's five
/// (absent ones skipped with a note).
fn choose_collections(
    args: &BackupArgs,
    on_server: &[String],
    ui: &Ui,
) -> Result<Vec<String>, BackupError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ai_memory_has_five_collections() {
        assert_eq!(AI_MEMORY_COLLECTIONS.len(), 5);
    }
}
