//! `aimem restore`: puts a backup back on a Qdrant server without ever making things worse.
//!
//! The order is fixed: arguments, the manifest, `CHECKSUMS.sha256`, the connection, a plan per
//! collection (create, overwrite or refuse) that is printed, confirmation, and only then any
//! change. Every change is recorded in the [`rollback::Undo`] log first, so a failure or a
//! signal after the first change puts the server (and the config files) back as they were.

mod act;
mod check;
mod config;
mod indexes;
mod jobs;
mod journal;
mod lock;
mod plan;
mod recovery;
mod replica_uploads;
mod replicas;
mod report;
mod rollback;
mod shards;

use std::io::IsTerminal;

use camino::{Utf8Path, Utf8PathBuf};
use clap::Args;
use miette::Diagnostic;
use thiserror::Error;

use crate::engine::peers::{LockKeys, Topology};
use crate::exit::Exit;
use crate::failure::{Failure, OrExit, Outcome};
use crate::fingerprint::{Fingerprint, FingerprintError};
use crate::manifest::checksums::{self, Entry};
use crate::manifest::layout::{self, SNAPSHOT_DIR};
use crate::manifest::legacy;
use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::names::SafeName;
use crate::qdrant::{Client, Timeouts, collection_path, encode_segment};
use crate::settings::{ConnectionArgs, InstallArgs, seconds};
use crate::shell::{self, CommandLine};
use crate::signals::StopFlag;
use crate::ui::{Ui, human_size, throughput};

use config::ConfigFile;
use plan::{Action, Planned, Refusal, Source, VersionCheck};
use rollback::{Copies, ShardCopies, Undo, Unrestored};

pub(crate) use journal::{clear_dead_restores, dead_restores, describe as describe_dead_restore};

pub use crate::workspace::PRERESTORE_PREFIX;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,

    #[command(flatten)]
    pub peers: crate::engine::peers::PeerArgs,

    /// The backup folder, or `latest` for the newest complete backup in AI_MEMORY_BACKUP_DIR.
    #[arg(value_name = "DIR", value_hint = clap::ValueHint::DirPath, add = crate::complete::backup_folder())]
    pub dir: Utf8PathBuf,

    /// Overwrite existing collections and config files without asking.
    #[arg(long)]
    pub force: bool,

    /// Also write back settings.json, .env, docker/.env and docker/.env.secrets.
    #[arg(long)]
    pub restore_config: bool,

    /// Check everything and print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Restore only this collection of the backup.
    #[arg(long, value_name = "NAME", value_parser = crate::names::parse_collection_arg, value_hint = clap::ValueHint::Other, add = crate::complete::collection_in_backup())]
    pub collection: Option<String>,

    /// Restore the collection into this name instead, leaving the original untouched.
    #[arg(long, value_name = "NAME", requires = "collection", value_parser = crate::names::parse_collection_arg, value_hint = clap::ValueHint::Other)]
    pub target_name: Option<String>,

    /// Do not verify CHECKSUMS.sha256 before uploading (config files are still verified).
    #[arg(long)]
    pub skip_checksum_verify: bool,

    /// Restore even when the server's Qdrant is older, or over one minor newer, than the backup's.
    #[arg(long)]
    pub allow_version_skew: bool,

    #[command(flatten)]
    pub install: InstallArgs,

    /// Seconds an upload may stall; one that keeps moving is never cut off.
    #[arg(
        long,
        env = "SNAPSHOT_UPLOAD_TIMEOUT",
        hide_env_values = true,
        default_value_t = 300,
        value_name = "SECONDS",
        value_hint = clap::ValueHint::Other
    )]
    pub upload_timeout: u64,

    /// Seconds Qdrant may take to recover one collection: the wait for an upload's answer, and
    /// after an upload whose outcome is unknown, the wait for Qdrant to finish before rolling back;
    /// in a cluster, also each wait for every replica to settle (before the uploads, before the
    /// checks after them, and the same in a rollback).
    #[arg(
        long,
        env = "SNAPSHOT_RECOVERY_TIMEOUT",
        hide_env_values = true,
        default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(1..),
        value_name = "SECONDS",
        value_hint = clap::ValueHint::Other
    )]
    pub recovery_timeout: u64,

    /// Print one JSON document on stdout: the plan and what each collection ended as (shape in
    /// the README, "JSON output").
    #[arg(long)]
    pub json: bool,

    /// Collections restored at the same time (while Qdrant recovers one upload, the next is
    /// sent); 1 restores them one after another.
    #[arg(
        long,
        env = "RESTORE_JOBS",
        hide_env_values = true,
        default_value_t = jobs::DEFAULT_JOBS,
        value_parser = clap::value_parser!(u8).range(1..=16),
        value_name = "N",
        value_hint = clap::ValueHint::Other
    )]
    pub jobs: u8,
}

/// What went wrong, worded for the person who has to fix it.
#[derive(Debug, Error, Diagnostic)]
enum RestoreError {
    #[error("{0}")]
    #[diagnostic(
        code(aimem::restore::no_backup),
        help(
            "Give the backup folder's path, or set AI_MEMORY_BACKUP_DIR to the folder holding the backups."
        )
    )]
    NoBackup(String),

    #[error("no safe folder for the pre-restore snapshots: {reason}")]
    #[diagnostic(
        code(aimem::restore::prerestore_folder),
        help(
            "Move the backup into a folder only you can change, or set XDG_STATE_HOME to a private \
             folder. Nothing was changed."
        )
    )]
    PrerestoreFolder { reason: String },

    #[error("the backup has no collection named `{name}`")]
    #[diagnostic(
        code(aimem::restore::no_such_collection),
        help("The backup holds: {available}.")
    )]
    UnknownCollection { name: String, available: String },

    #[error("checksum verification failed; nothing was uploaded:\n{problems}")]
    #[diagnostic(
        code(aimem::restore::checksum),
        help(
            "The backup is damaged or was modified. Use an intact backup. If the drift is known to be \
             benign (a filesystem quirk), re-run with --skip-checksum-verify."
        )
    )]
    Checksums { problems: String },

    #[error("cannot read CHECKSUMS.sha256")]
    #[diagnostic(
        code(aimem::restore::checksum),
        help(
            "A backup folder holds CHECKSUMS.sha256 beside manifest.json. Re-run with --skip-checksum-verify to restore without it."
        )
    )]
    ChecksumFile {
        #[source]
        #[diagnostic_source]
        source: checksums::ChecksumsError,
    },

    #[error(
        "{file} is missing, but {reason}: it was removed after the backup was written; nothing was uploaded",
        file = checksums::CHECKSUMS_FILE
    )]
    #[diagnostic(
        code(aimem::restore::checksums_removed),
        help(
            "Without its checksums file nothing proves the snapshots are the ones backed up: the backup was \
             tampered with or damaged. Use another backup (`aimem list --verify` shows which verify). Only \
             backups of the Python scripts before v2.4.1 (no schema fingerprints) come without one. If you \
             know how the file was lost and trust the snapshots, --skip-checksum-verify restores without it."
        )
    )]
    ChecksumsRemoved { reason: String },

    #[error(
        "the backup records no schema fingerprint, and its snapshots fail the checks that stand in for one; nothing was uploaded:\n{problems}"
    )]
    #[diagnostic(
        code(aimem::restore::legacy_damaged),
        help(
            "Without a fingerprint (backups of the Python scripts before v2.4.1) aimem checks what it can: \
             that each snapshot is a whole Qdrant snapshot (a tar holding the collection's config.json) \
             and, when the backup has no CHECKSUMS.sha256, that its size matches the manifest. These \
             failed: the backup is damaged. Use another backup."
        )
    )]
    LegacyDamaged { problems: String },

    #[error("the snapshot of `{collection}` is missing: {path}")]
    #[diagnostic(
        code(aimem::restore::missing_snapshot),
        help("The backup is incomplete. Use another backup.")
    )]
    SnapshotMissing {
        collection: String,
        path: Utf8PathBuf,
    },

    #[error("the snapshot of `{collection}` cannot be read: {source}")]
    #[diagnostic(
        code(aimem::restore::unreadable_snapshot),
        help("Only a regular file inside the backup folder is uploaded. Use another backup.")
    )]
    SnapshotUnreadable {
        collection: String,
        source: std::io::Error,
    },

    #[error("{what} is a symbolic link: {path}")]
    #[diagnostic(
        code(aimem::restore::link),
        help(
            "aimem restores only the backup's own files and never follows links in a backup folder. \
             Replace the link with the file itself (and check it against CHECKSUMS.sha256)."
        )
    )]
    Link { what: String, path: Utf8PathBuf },

    #[error("the manifest's schema for `{collection}` is damaged")]
    #[diagnostic(code(aimem::restore::schema))]
    BadSchema {
        collection: String,
        #[source]
        #[diagnostic_source]
        source: FingerprintError,
    },

    #[error("restore refused: {count} problem(s) found before anything was changed")]
    #[diagnostic(code(aimem::restore::refused))]
    Refused {
        count: usize,
        #[related]
        reasons: Vec<Refusal>,
    },

    #[error("the restore would overwrite {what}, and there is no terminal to confirm it")]
    #[diagnostic(
        code(aimem::restore::no_terminal),
        help("Run it in a terminal to be asked, or pass --force to overwrite without asking.")
    )]
    NoTerminal { what: String },

    #[error("restore cancelled; nothing was changed")]
    #[diagnostic(code(aimem::restore::cancelled))]
    Declined,

    #[error("stopped by a signal before anything was changed")]
    #[diagnostic(
        code(aimem::interrupted),
        help("Run the restore again when convenient.")
    )]
    Interrupted,

    #[error(
        "the restore failed and was rolled back; the server is as it was before:\n{rolled_back}"
    )]
    #[diagnostic(code(aimem::restore::rolled_back))]
    RolledBack {
        rolled_back: String,
        #[source]
        #[diagnostic_source]
        cause: act::StepError,
    },

    #[error("the pre-restore snapshot could not be saved; nothing was changed")]
    #[diagnostic(code(aimem::restore::not_saved))]
    NotSaved {
        #[source]
        #[diagnostic_source]
        cause: act::StepError,
    },

    #[error("the restore failed AND its rollback failed:\n{failures}")]
    #[diagnostic(code(aimem::restore::rollback_failed), help("{recovery}"))]
    RollbackFailed {
        failures: String,
        recovery: String,
        #[source]
        #[diagnostic_source]
        cause: act::StepError,
    },
}

pub fn run(args: &RestoreArgs, ui: &Ui, stop: &StopFlag) -> Outcome {
    let started = std::time::Instant::now();
    let mut report = report::RestoreReport {
        dry_run: args.dry_run,
        ..report::RestoreReport::default()
    };
    let outcome = restore(args, ui, stop, &mut report, started);
    if args.json {
        report.seconds = started.elapsed().as_secs_f64();
        crate::output::json(&report);
    }
    outcome
}

fn restore(
    args: &RestoreArgs,
    ui: &Ui,
    stop: &StopFlag,
    report: &mut report::RestoreReport,
    started: std::time::Instant,
) -> Outcome {
    // 1. Arguments.
    let endpoint = args
        .connection
        .endpoint()
        .map_err(crate::settings::BadEndpoint::failure)?;
    let dir = backup_folder(args)?;
    report.backup = Some(dir.to_string());
    ui.header("AI Memory Restore");
    ui.fact("Backup", dir.as_str());
    ui.blank();

    // 2. The manifest, and 3. the checksums and the files they vouch for.
    let backup = read_backup(&dir, args, ui)?;
    interrupted(stop)?;

    // 4. Connect.
    let server = connect(args, &endpoint, ui, report)?;
    // Held until the restore ends, from before the collections' state is read.
    let targets: Vec<&str> = backup.sources.iter().map(|s| s.target.as_str()).collect();
    let _locks = lock::take(&server.lock_keys, &server.key, &targets, args.dry_run, ui)
        .or_exit(Exit::Failed)?;

    // 5. Plan, then show it.
    let Backup {
        manifest,
        sources,
        config_files,
        config_skipped,
    } = backup;
    let configs = (config_files.as_slice(), config_skipped.as_slice());
    let plans = plan_all(args, &server, &manifest, sources, configs, ui, report)?;

    // Confirmation (the dry run reports what the real run would do here).
    if !confirmed(args, &plans, &config_files, ui, stop)? {
        return Ok(());
    }

    // 6. Act.
    act_on(
        args,
        &dir,
        &server,
        (&plans, &config_files),
        ui,
        stop,
        report,
    )?;
    ui.blank();
    ui.rule();
    ui.success("Restore complete");
    ui.blank();
    let restored_bytes = plans.iter().map(|p| shards::size(&p.source)).sum();
    ui.fact("Took", &throughput(restored_bytes, started.elapsed()));
    ui.fact("Collections restored", &plans.len().to_string());
    ui.fact(
        "Total records",
        &plans
            .iter()
            .map(|p| p.source.entry.records)
            .sum::<u64>()
            .to_string(),
    );
    if !config_files.is_empty() {
        ui.fact("Config files restored", &config_files.len().to_string());
    }
    ui.rule();
    Ok(())
}

/// Nothing changed yet: a signal ends the restore here.
fn interrupted(stop: &StopFlag) -> Outcome {
    match stop.requested() {
        Some(exit) => Err(RestoreError::Interrupted).or_exit(exit),
        None => Ok(()),
    }
}

/// The backup folder the argument names (a path, or `latest`), absolute.
fn backup_folder(args: &RestoreArgs) -> Outcome<Utf8PathBuf> {
    let root = layout::default_root();
    // Absolute, so the paths printed for pre-restore snapshots work from any folder.
    let root = std::path::absolute(&root)
        .ok()
        .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
        .unwrap_or(root);
    // A folder that is not there is an argument error (exit 1), as for verify and diff-schema.
    let backup = crate::repo::locate::resolve(&args.dir, &root)
        .map_err(|unresolved| RestoreError::NoBackup(unresolved.to_string()))
        .or_exit(Exit::InvalidArguments)?;
    Ok(backup.location().to_owned())
}

/// What the backup offers to restore, every file of it checked.
struct Backup {
    manifest: Manifest,
    sources: Vec<Source>,
    config_files: Vec<ConfigFile>,
    config_skipped: Vec<config::Skipped>,
}

/// Reads the manifest, verifies the checksums (or, for a backup without them, what can be
/// checked instead), and opens every file to restore.
fn read_backup(dir: &Utf8Path, args: &RestoreArgs, ui: &Ui) -> Outcome<Backup> {
    ui.step("Verifying backup...");
    let manifest = Manifest::read(dir).or_exit(Exit::Failed)?;
    ui.ok(&format!("{MANIFEST_FILE} valid"));
    ui.fact("Backup date", &manifest.backup_date);
    ui.fact("Version", &manifest.ai_memory_version);
    ui.blank();
    let selected = select(&manifest, args)?;
    let (listed, legacy_without_checksums) = read_checksums(dir, args, &manifest, &selected, ui)?;
    let sources = sources(
        dir,
        &selected,
        args,
        listed.as_deref(),
        legacy_without_checksums,
    )?;
    for source in &sources {
        let shown = match &source.entry.backup {
            crate::manifest::CollectionBackup::Shards(cluster) => format!(
                "{}: {} shard files",
                source.entry.name,
                cluster.shards.len()
            ),
            crate::manifest::CollectionBackup::Snapshot { file } => file.clone(),
        };
        ui.ok(&format!("{shown} ({})", human_size(shards::size(source))));
    }
    let install = args.install.resolve();
    let (config_files, config_skipped) = if args.restore_config {
        config::plan(dir, &install, &manifest.config_files, listed.as_deref())
    } else {
        (Vec::new(), Vec::new())
    };
    ui.blank();
    Ok(Backup {
        manifest,
        sources,
        config_files,
        config_skipped,
    })
}

/// The backup's CHECKSUMS.sha256, verified against every file to restore (unless
/// `--skip-checksum-verify`), and whether the backup is a legacy one that has none.
fn read_checksums(
    dir: &Utf8Path,
    args: &RestoreArgs,
    manifest: &Manifest,
    selected: &[&crate::manifest::CollectionEntry],
    ui: &Ui,
) -> Outcome<(Option<Vec<Entry>>, bool)> {
    if args.skip_checksum_verify {
        ui.warn("checksum verification skipped (--skip-checksum-verify)");
        return Ok((checksums::read(dir).ok(), false));
    }
    match checksums::read(dir) {
        Ok(entries) => {
            let meter = ui.hash_meter(&format!("hashing {}", dir.file_name().unwrap_or("")));
            let checked =
                checksums::observed(meter.clone(), || verify_checksums(dir, &entries, selected));
            let (bytes, took) = meter.done();
            checked?;
            ui.ok(&format!("checksums match: {}", throughput(bytes, took)));
            Ok((Some(entries), false))
        }
        // The Python scripts write no checksums file: such a backup is taken on the checks
        // it allows; one that should have the file and lacks it is refused.
        Err(source) if legacy::is_absent(&source) => {
            legacy::without_checksums(manifest)
                .map_err(|reason| RestoreError::ChecksumsRemoved { reason })
                .or_exit(Exit::Failed)?;
            ui.warn(&format!(
                "this backup carries no checksums (no {}, as the Python scripts write it): \
                 corruption cannot be detected; only each snapshot's size and archive are checked",
                checksums::CHECKSUMS_FILE
            ));
            Ok((None, true))
        }
        Err(source) => Err(RestoreError::ChecksumFile { source }).or_exit(Exit::Failed),
    }
}

/// The server restored into, as reached and named.
struct Server {
    client: Client,
    /// A single node, or every peer of a cluster.
    topology: Topology,
    /// Its Qdrant version ("unknown" when it does not say).
    version: String,
    /// Its URL without credentials ([`crate::workspace::runs::server_key`]).
    key: String,
    /// Who it is whatever URL reached it.
    identity: String,
    lock_keys: LockKeys,
}

/// Connects to the server, and to every peer of a cluster.
fn connect(
    args: &RestoreArgs,
    endpoint: &crate::settings::Endpoint,
    ui: &Ui,
    report: &mut report::RestoreReport,
) -> Outcome<Server> {
    ui.step(&format!(
        "Connecting to Qdrant ({}:{})...",
        endpoint.host, endpoint.port
    ));
    let timeouts = Timeouts {
        request: args.connection.request_timeout(),
        transfer_stall: seconds(args.upload_timeout),
        recover: seconds(args.recovery_timeout),
        ..Timeouts::default()
    };
    let client = ConnectionArgs::client(endpoint, timeouts);
    let server = client.server_info().or_exit(Exit::ConnectionFailed)?;
    client.list_collections().or_exit(Exit::ConnectionFailed)?;
    // A cluster's peers are reached and checked as for a backup, before anything else.
    let topology = crate::engine::peers::discover(&client, &args.peers)
        .map_err(|e| Failure::new(Exit::ConnectionFailed, miette::Report::new(e)))?;
    let version = server.version.unwrap_or_else(|| "unknown".to_string());
    report.server = Some(client.display_url().to_string());
    report.qdrant_version = Some(version.clone());
    ui.ok(&format!("Connected (Qdrant {version})"));
    ui.blank();
    // The server whatever URL reached it: two spellings of one server's URL share its locks.
    let key = crate::workspace::runs::server_key(endpoint);
    let identity = topology.identity(&client, &key);
    let lock_keys = LockKeys::new(&identity, &key, &endpoint.host, endpoint.port);
    Ok(Server {
        client,
        topology,
        version,
        key,
        identity,
        lock_keys,
    })
}

/// Plans every collection, shows the plan (and puts it in the report), and refuses the
/// restore if anything is refused. Returns the collections to restore.
fn plan_all(
    args: &RestoreArgs,
    server: &Server,
    manifest: &Manifest,
    sources: Vec<Source>,
    (config_files, config_skipped): (&[ConfigFile], &[config::Skipped]),
    ui: &Ui,
    report: &mut report::RestoreReport,
) -> Outcome<Vec<Planned>> {
    let (mut notes, mut refusals) = (Vec::new(), Vec::new());
    match version_note(manifest.qdrant_version.as_deref(), &server.version) {
        Ok(None) => {}
        Ok(Some(note)) => notes.push(note),
        Err(refusal) if args.allow_version_skew => {
            ui.warn(&format!("{refusal} (--allow-version-skew)"));
        }
        Err(refusal) => refusals.push(refusal),
    }
    let mut plans = Vec::new();
    for source in sources {
        let planned = plan::plan_one(&server.client, &server.topology, source).map_err(|e| {
            let exit = match e.is_connection_problem() {
                true => Exit::ConnectionFailed,
                false => Exit::Failed,
            };
            Failure::new(exit, miette::Report::new(e))
        })?;
        plans.push(planned);
    }
    if let Topology::Cluster { peers } = &server.topology {
        notes.push(format!(
            "the server is a cluster of {} peers: {}",
            peers.len(),
            peers
                .iter()
                .map(|p| format!("{} ({})", p.peer_id, p.client.display_url()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for planned in &plans {
        if let Some(line) = plan::describe_layout(&server.topology, &planned.source) {
            notes.push(line);
        }
    }
    show_plan(ui, &plans, &notes, config_files, config_skipped);
    report.plan(&plans, &notes, config_files, config_skipped);
    for (collection, planned) in report.collections.iter_mut().zip(&plans) {
        collection.cluster = report::cluster(&server.topology, &planned.source);
    }
    let (refused, plans): (Vec<Planned>, Vec<Planned>) = plans
        .into_iter()
        .partition(|p| matches!(p.action, Action::Refuse(_)));
    refusals.extend(refused.into_iter().filter_map(|p| match p.action {
        Action::Refuse(refusal) => Some(refusal),
        _ => None,
    }));
    if !refusals.is_empty() {
        return Err(RestoreError::Refused {
            count: refusals.len(),
            reasons: refusals,
        })
        .or_exit(Exit::Failed);
    }
    Ok(plans)
}

/// What the Qdrant versions of the backup and the server say: nothing, a note for the plan,
/// or the refusal of a skew.
fn version_note(
    source_version: Option<&str>,
    server_version: &str,
) -> Result<Option<String>, Refusal> {
    match plan::check_version(source_version, Some(server_version)) {
        VersionCheck::Same => Ok(None),
        VersionCheck::NextMinor => Ok(Some(format!(
            "the backup comes from Qdrant {}; this server runs the next minor release {server_version}, which Qdrant supports",
            source_version.unwrap_or_default()
        ))),
        VersionCheck::Unknown => Ok(Some(
            "the backup does not record its Qdrant version: snapshots restore only on the same or the next minor release"
                .to_string(),
        )),
        VersionCheck::Skew => Err(Refusal::VersionSkew {
            source_version: source_version.unwrap_or_default().to_string(),
            target_version: server_version.to_string(),
        }),
    }
}

/// Whether to go on and change things: not after a dry run (which reports what the real run
/// would do here and changes nothing, so it needs neither --force nor a terminal to ask on);
/// overwriting anything needs --force or a yes on the terminal.
fn confirmed(
    args: &RestoreArgs,
    plans: &[Planned],
    config_files: &[ConfigFile],
    ui: &Ui,
    stop: &StopFlag,
) -> Outcome<bool> {
    let overwrites = what_is_overwritten(plans, config_files);
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if args.dry_run {
        ui.rule();
        ui.success("Dry run: all checks passed; nothing was changed");
        if overwrites.is_some() && !args.force {
            match terminal {
                true => ui.step("The real run will ask before overwriting (or pass --force)."),
                false => ui
                    .step("Without a terminal to ask on, the real run needs --force to overwrite."),
            }
        }
        ui.rule();
        return Ok(false);
    }
    if let Some(what) = &overwrites {
        if !args.force && !terminal {
            return Err(RestoreError::NoTerminal { what: what.clone() })
                .or_exit(Exit::InvalidArguments);
        }
    }
    if let (Some(what), false) = (&overwrites, args.force) {
        confirm(what)?;
    }
    interrupted(stop)?;
    Ok(true)
}

/// Where the pre-restore snapshots go: beside the backup, unless someone else controls that
/// folder ([`crate::workspace::prerestore_home`]); without a place for the copies the restore
/// stops here, before any change.
fn prerestore_folder(dir: &Utf8Path, ui: &Ui) -> Outcome<Utf8PathBuf> {
    crate::workspace::prerestore_home(dir, ui)
        .map_err(|reason| RestoreError::PrerestoreFolder { reason })
        .or_exit(Exit::Failed)
}

/// Restores the planned collections and config files, every change recorded first; after a
/// failure (or a signal) rolls everything back.
fn act_on(
    args: &RestoreArgs,
    dir: &Utf8Path,
    server: &Server,
    (plans, config_files): (&[Planned], &[ConfigFile]),
    ui: &Ui,
    stop: &StopFlag,
    report: &mut report::RestoreReport,
) -> Outcome {
    let client = &server.client;
    let now = crate::localtime::now();
    let stamp = layout::folder_name(now).replace('_', "-");
    let prerestore_in = prerestore_folder(dir, ui)?;
    // What killed restores left on this server goes first: nothing else ever deletes it.
    journal::clear_dead_restores(
        &prerestore_in,
        client,
        (&server.key, &server.identity),
        &server.topology,
        ui,
    );
    let cx = act::Context {
        client,
        ui,
        stop,
        prerestore_in,
        prerestore_prefix: format!("{PRERESTORE_PREFIX}{}-", layout::folder_name(now)),
        stamp,
        topology: &server.topology,
        lock_keys: &server.lock_keys,
        settle_limit: seconds(args.recovery_timeout),
    };
    // Before the first change: every object the restore makes on the server is recorded
    // there first, so a killed run leaves the next one what to delete.
    let mut undo = Undo {
        journal: Some(
            journal::RestoreJournal::create(&server.key, &server.identity, ui)
                .map_err(|source| act::StepError::Journal { source })
                .or_exit(Exit::Failed)?,
        ),
        ..Undo::default()
    };
    // From the first change on, a second Ctrl-C no longer ends aimem at once (which would skip
    // the rollback and hide where the pre-restore snapshots are): it stops the wait in
    // progress and goes on to the rollback. A third one still ends aimem at once.
    let _hold = stop.hold();
    // Also from the first change on, a first signal asks instead of ending aimem at once (it
    // did so up to here: checking, connecting and planning change nothing).
    let _cleanup = stop.cleanup_scope();
    interrupted(stop)?;
    let result = jobs::restore_collections(&cx, plans, &mut undo, &mut report.timings, args.jobs)
        .and_then(|()| {
            if config_files.is_empty() {
                Ok(())
            } else {
                ui.blank();
                act::restore_config(&cx, config_files, &mut undo)
            }
        })
        // The last chance to honour a signal: after this the restore is reported done.
        .and_then(|()| match stop.requested() {
            Some(_) => Err(act::StepError::Interrupted),
            None => Ok(()),
        });
    if let Err(cause) = result {
        let watch = recovery::Watch {
            client,
            ui,
            stop,
            limit: seconds(args.recovery_timeout),
        };
        let failure = roll_back(
            &cx,
            &watch,
            client.display_url(),
            &mut undo,
            cause,
            &mut report.rollback,
        );
        report.settle();
        return Err(failure);
    }
    undo.discard_saved(client, ui);
    report.restored();
    Ok(())
}

/// The manifest's collections to restore: all, or the one `--collection` names.
fn select<'m>(
    manifest: &'m Manifest,
    args: &RestoreArgs,
) -> Outcome<Vec<&'m crate::manifest::CollectionEntry>> {
    match &args.collection {
        None => Ok(manifest.collections.values().collect()),
        Some(name) => match manifest.collections.get(name) {
            Some(entry) => Ok(vec![entry]),
            None => Err(RestoreError::UnknownCollection {
                name: name.clone(),
                available: manifest
                    .collections
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .or_exit(Exit::InvalidArguments),
        },
    }
}

/// Every listed file must match, and every snapshot to restore must be listed.
fn verify_checksums(
    dir: &Utf8Path,
    entries: &[Entry],
    selected: &[&crate::manifest::CollectionEntry],
) -> Outcome {
    let mut problems: Vec<String> = checksums::check_all(dir, entries)
        .iter()
        .map(|p| format!("  {p}"))
        .collect();
    for entry in selected {
        let paths = match &entry.backup {
            crate::manifest::CollectionBackup::Shards(cluster) => {
                shards::shard_paths(&entry.name, cluster)
            }
            crate::manifest::CollectionBackup::Snapshot { file } => vec![snapshot_path(file)],
        };
        for path in paths {
            if !entries.iter().any(|e| e.path == path) {
                problems.push(format!(
                    "  {path}: not listed in {}",
                    checksums::CHECKSUMS_FILE
                ));
            }
        }
    }
    if !entries.iter().any(|e| e.path == MANIFEST_FILE) {
        problems.push(format!(
            "  {MANIFEST_FILE}: not listed in {}",
            checksums::CHECKSUMS_FILE
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(RestoreError::Checksums {
            problems: problems.join("\n"),
        })
        .or_exit(Exit::Failed)
    }
}

/// The first symbolic link among the components of `relative` under `dir` (the file itself
/// or a folder on the way), if any.
pub(crate) fn symlink_in(dir: &Utf8Path, relative: &str) -> Option<Utf8PathBuf> {
    let mut path = dir.to_owned();
    for part in Utf8Path::new(relative).components() {
        path.push(part);
        if path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Some(path);
        }
    }
    None
}

fn snapshot_path(file: &str) -> String {
    format!("{SNAPSHOT_DIR}/{file}")
}

/// Each selected collection with its snapshot file, verified digest, schema and target name.
/// Without a fingerprint, the schema the snapshot itself holds is read (and must be there);
/// `legacy_without_checksums` adds the size check a backup without checksums allows.
fn sources(
    dir: &Utf8Path,
    selected: &[&crate::manifest::CollectionEntry],
    args: &RestoreArgs,
    listed: Option<&[Entry]>,
    legacy_without_checksums: bool,
) -> Outcome<Vec<Source>> {
    let mut damaged = Vec::new();
    let sources: Vec<Source> = selected
        .iter()
        .map(|entry| {
            let snapshot_file = match &entry.backup {
                crate::manifest::CollectionBackup::Shards(cluster) => {
                    return cluster_source(dir, entry, cluster, args, listed);
                }
                crate::manifest::CollectionBackup::Snapshot { file } => file,
            };
            let relative = snapshot_path(snapshot_file);
            let snapshot = dir.join(&relative);
            if checksums::check_relative(&relative).is_err() || !snapshot.is_file() {
                return Err(RestoreError::SnapshotMissing {
                    collection: entry.name.clone(),
                    path: snapshot,
                })
                .or_exit(Exit::Failed);
            }
            // A link could point anywhere (and with --skip-checksum-verify nothing would
            // notice): only the backup's own files are uploaded.
            if let Some(link) = symlink_in(dir, &relative) {
                return Err(RestoreError::Link {
                    what: format!("the snapshot of `{}`", entry.name),
                    path: link,
                })
                .or_exit(Exit::Failed);
            }
            let file = crate::manifest::confined::open(dir, &relative)
                .map_err(|source| RestoreError::SnapshotUnreadable {
                    collection: entry.name.clone(),
                    source,
                })
                .or_exit(Exit::Failed)?;
            let fingerprint = match &entry.schema {
                Some(schema) => Some(
                    Fingerprint::from_value(schema.clone())
                        .map_err(|source| RestoreError::BadSchema {
                            collection: entry.name.clone(),
                            source,
                        })
                        .or_exit(Exit::Failed)?,
                ),
                None => None,
            };
            let verified_sha256 = match args.skip_checksum_verify {
                true => None,
                false => listed
                    .and_then(|l| l.iter().find(|e| e.path == relative))
                    .map(|e| e.sha256.clone()),
            };
            // Checked again here (the manifest and the argument were checked when read): the
            // target names the local pre-restore snapshot file.
            let target = args.target_name.as_deref().unwrap_or(&entry.name);
            let target = SafeName::new(target).map_err(|e| {
                Failure::msg(
                    Exit::InvalidArguments,
                    e.to_string(),
                    "Choose another name.",
                )
            })?;
            let mut snapshot_fingerprint = None;
            if fingerprint.is_none() {
                // Read from the very file that is uploaded (a clone shares the open file).
                let checked = match legacy_without_checksums {
                    true => legacy::check_size(entry, &file),
                    false => Ok(()),
                }
                .and_then(|()| file.try_clone().map_err(|e| format!("cannot be read: {e}")))
                .and_then(legacy::snapshot_fingerprint);
                match checked {
                    Ok(inside) => snapshot_fingerprint = Some(inside),
                    Err(problem) => damaged.push(format!("  {relative}: {problem}")),
                }
            }
            Ok(Source {
                entry: (*entry).clone(),
                target,
                snapshot,
                file: std::sync::Arc::new(file),
                verified_sha256,
                fingerprint,
                snapshot_fingerprint,
                cluster: None,
            })
        })
        .collect::<Outcome<_>>()?;
    if !damaged.is_empty() {
        return Err(RestoreError::LegacyDamaged {
            problems: damaged.join("\n"),
        })
        .or_exit(Exit::Failed);
    }
    Ok(sources)
}

/// A cluster backup's collection: every shard file opened (none through a link), its schema
/// and target. `file` is its first shard file.
fn cluster_source(
    dir: &Utf8Path,
    entry: &crate::manifest::CollectionEntry,
    cluster: &crate::manifest::cluster::CollectionCluster,
    args: &RestoreArgs,
    listed: Option<&[Entry]>,
) -> Outcome<Source> {
    for relative in shards::shard_paths(&entry.name, cluster) {
        if let Some(link) = symlink_in(dir, &relative) {
            return Err(RestoreError::Link {
                what: format!("a shard file of `{}`", entry.name),
                path: link,
            })
            .or_exit(Exit::Failed);
        }
    }
    let listed = match args.skip_checksum_verify {
        true => None,
        false => listed,
    };
    let opened = shards::open(dir, &entry.name, cluster, listed).map_err(|(path, source)| {
        match source.kind() {
            std::io::ErrorKind::NotFound => Failure::new(
                Exit::Failed,
                miette::Report::new(RestoreError::SnapshotMissing {
                    collection: entry.name.clone(),
                    path,
                }),
            ),
            _ => Failure::new(
                Exit::Failed,
                miette::Report::new(RestoreError::SnapshotUnreadable {
                    collection: entry.name.clone(),
                    source,
                }),
            ),
        }
    })?;
    let Some(first) = opened.shards.first() else {
        return Err(RestoreError::SnapshotMissing {
            collection: entry.name.clone(),
            path: dir.join(SNAPSHOT_DIR).join(&entry.name),
        })
        .or_exit(Exit::Failed);
    };
    let file = first
        .file
        .try_clone()
        .map_err(|source| RestoreError::SnapshotUnreadable {
            collection: entry.name.clone(),
            source,
        })
        .or_exit(Exit::Failed)?;
    let Some(schema) = &entry.schema else {
        return Err(Failure::msg(
            Exit::Failed,
            format!("the cluster backup of `{}` records no schema", entry.name),
            "A cluster backup always records its schema: this manifest is damaged. Use another backup.",
        ));
    };
    let fingerprint = Fingerprint::from_value(schema.clone())
        .map_err(|source| RestoreError::BadSchema {
            collection: entry.name.clone(),
            source,
        })
        .or_exit(Exit::Failed)?;
    let target = args.target_name.as_deref().unwrap_or(&entry.name);
    let target = SafeName::new(target).map_err(|e| {
        Failure::msg(
            Exit::InvalidArguments,
            e.to_string(),
            "Choose another name.",
        )
    })?;
    Ok(Source {
        entry: entry.clone(),
        target,
        snapshot: dir.join(SNAPSHOT_DIR).join(&entry.name),
        file: std::sync::Arc::new(file),
        verified_sha256: None,
        fingerprint: Some(fingerprint),
        snapshot_fingerprint: None,
        cluster: Some(std::sync::Arc::new(opened)),
    })
}

fn show_plan(
    ui: &Ui,
    plans: &[Planned],
    notes: &[String],
    config_files: &[ConfigFile],
    skipped: &[config::Skipped],
) {
    ui.step("Plan:");
    for note in notes {
        ui.note(note);
    }
    for planned in plans {
        let s = &planned.source;
        let from = match s.target == s.entry.name {
            true => String::new(),
            false => format!(" (from backup collection `{}`)", s.entry.name),
        };
        match &planned.action {
            Action::Create => ui.note(&format!(
                "{}{from}: create from the backup's schema, then load {} records",
                s.target, s.entry.records
            )),
            Action::Overwrite {
                points, warnings, ..
            } => {
                ui.note(&format!(
                    "{}{from}: overwrite its {points} points with the backup's {} records (a pre-restore snapshot is taken first)",
                    s.target, s.entry.records
                ));
                for warning in warnings {
                    ui.warn(warning);
                }
            }
            Action::Refuse(refusal) => ui.warn(&format!("{}: refused: {refusal}", s.target)),
        }
    }
    for file in config_files {
        let how = match file.overwrites {
            true => "overwrite",
            false => "create",
        };
        ui.note(&format!(
            "config {} → {} ({how}, mode {:o})",
            file.name, file.to, file.mode
        ));
        if let Some(note) = &file.note {
            ui.warn(note);
        }
    }
    for skip in skipped {
        ui.warn(&format!(
            "config {} will not be written: {}",
            skip.name, skip.why
        ));
    }
    ui.blank();
}

/// "collections a, b and config files x" when anything existing gets replaced.
fn what_is_overwritten(plans: &[Planned], files: &[ConfigFile]) -> Option<String> {
    let collections: Vec<&str> = plans
        .iter()
        .filter(|p| matches!(p.action, Action::Overwrite { .. }))
        .map(|p| p.source.target.as_str())
        .collect();
    let configs: Vec<&str> = files
        .iter()
        .filter(|f| f.overwrites)
        .map(|f| f.to.as_str())
        .collect();
    let mut parts = Vec::new();
    if !collections.is_empty() {
        parts.push(format!("existing collections {}", collections.join(", ")));
    }
    if !configs.is_empty() {
        parts.push(format!("config files {}", configs.join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join(" and "))
}

/// Asks on the terminal; anything but yes cancels.
fn confirm(what: &str) -> Outcome {
    let answer = dialoguer::Confirm::new()
        .with_prompt(crate::terminal::escape(&format!(
            "This will overwrite {what}. Continue?"
        )))
        .default(false)
        .interact_on(&console::Term::stderr());
    match answer {
        Ok(true) => Ok(()),
        // Ctrl-C at the prompt: the terminal's raw mode turns it into a key, which dialoguer
        // reports as an interrupted read (and raises SIGINT, which may end aimem first with the
        // same status). Either way nothing was changed and the status is the signal's.
        Err(dialoguer::Error::IO(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
            Err(RestoreError::Interrupted).or_exit(Exit::Interrupted)
        }
        _ => Err(RestoreError::Declined).or_exit(Exit::InvalidArguments),
    }
}

/// Replays the undo log after `cause`, and words the outcome.
fn roll_back(
    cx: &act::Context,
    watch: &recovery::Watch,
    url: &str,
    undo: &mut Undo,
    cause: act::StepError,
    outcome: &mut Option<report::Rollback>,
) -> Failure {
    let stop = cx.stop;
    let touched = report::Rollback::before(undo);
    cx.ui.blank();
    if cause.is_prerestore() && undo.changed_nothing() {
        // Only the pre-restore snapshot itself is to clean up: the restore is refused before
        // any change, like any other refusal.
        undo.discard_saved(cx.client, cx.ui);
        // No room for the pre-restore copy is the documented disk-space status (3).
        let exit = stop.requested().unwrap_or(match cause.is_out_of_space() {
            true => Exit::InsufficientSpace,
            false => Exit::Failed,
        });
        return Failure::new(exit, miette::Report::new(RestoreError::NotSaved { cause }));
    }
    cx.ui.warn(&format!("restore failed: {cause}"));
    for (collection, path) in undo.kept() {
        cx.ui
            .warn(&format!("pre-restore snapshot of `{collection}`: {path}"));
    }
    cx.ui.step("Rolling back...");
    let mut settle = |unclear: &rollback::Unclear| recovery::wait_until_recovered(watch, unclear);
    let rolled = undo.rollback(cx.client, cx.ui, &cx.stamp, &mut settle);
    let lines = |items: &[String]| {
        items
            .iter()
            .map(|d| format!("  {d}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let failure = match rolled.ok() {
        true => {
            let rolled_back = match rolled.done.is_empty() {
                true => "  nothing had been changed yet".to_string(),
                false => lines(&rolled.done),
            };
            let exit = match (&cause, stop.requested()) {
                (_, Some(signal)) => signal,
                _ => Exit::ConfigOrRestoreFailed,
            };
            Failure::new(
                exit,
                miette::Report::new(RestoreError::RolledBack { rolled_back, cause }),
            )
        }
        false => {
            let mut failures = rolled
                .failed
                .iter()
                .map(|Unrestored { what, why }| format!("  {what}: {why}"))
                .collect::<Vec<_>>()
                .join("\n");
            if !rolled.done.is_empty() {
                failures.push_str(&format!("\nput back:\n{}", lines(&rolled.done)));
            }
            Failure::new(
                Exit::RollbackFailed,
                miette::Report::new(RestoreError::RollbackFailed {
                    failures,
                    recovery: recovery_help(url, undo),
                    cause,
                }),
            )
        }
    };
    *outcome = Some(report::Rollback::of(&rolled, undo, touched));
    failure
}

/// Where each kept pre-restore snapshot is and the one command that puts it back.
///
/// Every command is built by [`CommandLine`] (names and paths shell-quoted, names
/// percent-encoded in URLs) and stands on a line of its own: the report is never wrapped.
fn recovery_help(shown_url: &str, undo: &Undo) -> String {
    // The URL as shown hides its credentials (`***@`): the commands leave them out and say how
    // to give them, rather than print a URL that cannot work.
    let peer_hides_credentials = undo.saved.iter().any(|saved| match &saved.copies {
        Copies::Shards(copies) => copies
            .shards
            .iter()
            .any(|shard| copies.holder_urls(shard).iter().any(|u| u.contains("***@"))),
        Copies::Collection { .. } => false,
    });
    let credentials_note = match shown_url.contains("***@") || peer_hides_credentials {
        true => {
            "The server's URL holds a user and password, left out of these commands: add \
             `-u USER:PASSWORD` to each.\n"
        }
        false => "",
    };
    let url = without_shown_credentials(shown_url);
    let url = url.as_str();
    let kept = undo.kept();
    let mut text = String::from(credentials_note);
    if !undo.unsettled.is_empty() {
        text.push_str(
            "Qdrant may still be recovering from the backup's upload; anything done before it ends is \
             undone by it. Wait until this prints 0 for each collection named:",
        );
        for unclear in &undo.unsettled {
            let gauge = format!(
                "snapshot_recovery_running{{id=\"{}\"}}",
                prometheus_label(&unclear.collection)
            );
            let command = curl(None)
                .arg(&format!("{url}/metrics"))
                .pipe(CommandLine::new("grep").arg("-F").arg(&gauge));
            text.push_str(&format!("\n  {command}"));
        }
        text.push_str("\nthen:");
        for unclear in &undo.unsettled {
            let c = &unclear.collection;
            if undo.created.contains(c) {
                let command = curl(Some("DELETE")).arg(&format!("{url}{}", collection_path(c, "")));
                text.push_str(&format!(
                    "\n  delete `{c}`, which this restore created:\n    {command}"
                ));
            }
            let command = curl(Some("DELETE")).arg(&format!(
                "{url}{}",
                collection_path(
                    c,
                    &format!("/snapshots/{}", encode_segment(&unclear.upload))
                )
            ));
            text.push_str(&format!(
                "\n  delete the uploaded copy of `{c}`:\n    {command}"
            ));
        }
        if !kept.is_empty() {
            text.push('\n');
        }
    }
    if kept.is_empty() {
        if text.is_empty() {
            return "No existing collection had been touched; check the collections named above by hand."
                .to_string();
        }
        return text;
    }
    text.push_str(
        "The pre-restore snapshots are kept (aimem will not delete them). To put a collection back as it was, run:",
    );
    for saved in &undo.saved {
        match &saved.copies {
            Copies::Collection { local, .. } => {
                text.push_str(&put_back_collection(url, &saved.collection, local));
            }
            Copies::Shards(copies) => {
                text.push_str(&put_back_shards(&saved.collection, copies));
            }
        }
    }
    text
}

/// The command that puts a collection back from its pre-restore snapshot `path`.
fn put_back_collection(url: &str, collection: &str, path: &Utf8Path) -> String {
    let command = curl(Some("POST"))
        .arg("-F")
        .arg(&shell::curl_form_file("snapshot", path.as_str()))
        .arg(&format!(
            "{url}{}",
            collection_path(collection, "/snapshots/upload?wait=true&priority=snapshot")
        ));
    format!("\n  {collection} ({path}):\n    {command}")
}

/// The commands that put a cluster collection back shard by shard, each shard's copy onto
/// every replica (priority=no_sync, as the restore itself does: see replicas.rs).
fn put_back_shards(collection: &str, copies: &ShardCopies) -> String {
    let mut text = String::new();
    for shard in &copies.shards {
        let path = &shard.local;
        text.push_str(&format!(
            "\n  {collection} shard {} ({path}), on every peer that holds it:",
            shard.shard_id
        ));
        for peer in copies.holder_urls(shard) {
            let peer = without_shown_credentials(peer);
            let command = curl(Some("POST"))
                .arg("-F")
                .arg(&shell::curl_form_file("snapshot", path.as_str()))
                .arg(&format!(
                    "{peer}{}",
                    collection_path(
                        collection,
                        &format!(
                            "/shards/{}/snapshots/upload?wait=true&priority=no_sync",
                            shard.shard_id
                        )
                    )
                ));
            text.push_str(&format!("\n    {command}"));
        }
    }
    text
}

/// A URL as shown (credentials as `***@`) without them: the commands say to add `-u`.
fn without_shown_credentials(shown: &str) -> String {
    match shown.split_once("***@") {
        Some((scheme, host)) => format!("{scheme}{host}"),
        None => shown.to_string(),
    }
}

/// `curl -fsS` with the API key header (expanded by the shell from the environment, so the
/// key itself is never printed).
fn curl(method: Option<&str>) -> CommandLine {
    let command = CommandLine::new("curl").arg("-fsS");
    let command = match method {
        Some(method) => command.arg("-X").arg(method),
        None => command,
    };
    command.raw("-H \"api-key: $QDRANT_API_KEY\"")
}

/// A label value as Prometheus' text format writes it (`\`, `"` and line breaks escaped).
fn prometheus_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::restore::rollback::Unclear;

    #[test]
    fn recovery_commands_leave_hidden_credentials_out_and_say_so() {
        let undo = Undo {
            created: vec!["github".into()],
            unsettled: vec![Unclear {
                collection: "github".into(),
                upload: "aimem-restore-github.snapshot".into(),
                size: 1,
            }],
            ..Undo::default()
        };
        let text = recovery_help("http://***@qdrant.example:6333", &undo);
        assert!(!text.contains("***"), "{text}");
        assert!(
            text.contains("http://qdrant.example:6333/metrics"),
            "{text}"
        );
        assert!(text.contains("-u USER:PASSWORD"), "{text}");
        let plain = recovery_help("http://qdrant.example:6333", &undo);
        assert!(!plain.contains("USER:PASSWORD"), "{plain}");
    }
}
