//! `aimem restore`: puts a backup back on a Qdrant server without ever making things worse.
//!
//! The order is fixed: arguments, the manifest, `CHECKSUMS.sha256`, the connection, a plan per
//! collection (create, overwrite or refuse) that is printed, confirmation, and only then any
//! change. Every change is recorded in the engine's undo log first, so a failure or a signal
//! after the first change puts the server (and the config files) back as they were. The work
//! itself is [`crate::engine::restore`]'s; this module orders it and reports.

mod error;
mod merge;
mod rollback;
mod show;

use std::io::IsTerminal;

use camino::{Utf8Path, Utf8PathBuf};
use clap::Args;

use crate::engine::peers::{LockKeys, Topology};
use crate::engine::restore::config::{self, ConfigFile};
use crate::engine::restore::plan::{self, Action, Planned, Refusal, Source, VersionCheck};
use crate::engine::restore::rollback::Undo;
use crate::engine::restore::sources::{self, SourceOptions};
use crate::engine::restore::{
    PRERESTORE_PREFIX, act, jobs, journal, lock, recovery, report, shards,
};
use crate::failure::Outcome;
use crate::manifest::files::BackupFiles;
use crate::manifest::layout;
use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::metrics::Facts;
use crate::qdrant::{Client, Timeouts};
use crate::settings::{ConnectionArgs, InstallArgs, seconds};
use crate::signals::StopFlag;
use crate::ui::{Ui, human_size};

use error::{RestoreError, Signal};
use rollback::roll_back;
use show::{confirm, show_plan, what_is_overwritten};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,

    #[command(flatten)]
    pub peers: crate::engine::peers::PeerArgs,

    /// The backup folder (or `s3://bucket/prefix/NAME`), or `latest` for the newest complete
    /// backup in AI_MEMORY_BACKUP_DIR.
    #[arg(value_name = "DIR", value_hint = clap::ValueHint::DirPath, add = crate::complete::backup_folder())]
    pub dir: Utf8PathBuf,

    #[command(flatten)]
    pub keys: crate::crypt::DecryptArgs,

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

    /// Merge into the live collection only the backed-up points that match this Qdrant filter
    /// (JSON, Qdrant's syntax), as they were at backup time; nothing else of the collection
    /// changes. Needs --collection; with --dry-run, says how many points would be merged.
    #[arg(
        long,
        value_name = "JSON",
        value_hint = clap::ValueHint::Other,
        conflicts_with_all = ["restore_config", "shard_number", "replication_factor"]
    )]
    pub filter: Option<String>,

    /// Logical backups: the number of shards of each collection created [default: as
    /// recorded]. A snapshot backup's layout cannot change.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65_536), value_hint = clap::ValueHint::Other)]
    pub shard_number: Option<u32>,

    /// Logical backups: the replicas of each shard of each collection created on a cluster
    /// [default: as recorded, at most one per peer].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024), value_hint = clap::ValueHint::Other)]
    pub replication_factor: Option<u32>,

    /// Logical backups: restore even when the server does not know a setting the backup
    /// recorded (it is left out, with a warning).
    #[arg(long)]
    pub allow_unknown_settings: bool,

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

    #[command(flatten)]
    pub metrics: crate::metrics::MetricsArgs,

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

pub fn run(args: &RestoreArgs, ui: &Ui, stop: &StopFlag, facts: &Facts) -> Outcome {
    let started = std::time::Instant::now();
    facts.root_of_backup(&args.dir);
    let mut report = report::RestoreReport {
        dry_run: args.dry_run,
        ..report::RestoreReport::default()
    };
    let outcome = restore(args, (ui, facts), stop, &mut report, started);
    // The collections restored (or to be), with the records the backup holds of each.
    for collection in report.collections.iter().filter(|c| c.action != "refuse") {
        facts.collection(&collection.target, collection.records);
    }
    if args.json {
        report.seconds = started.elapsed().as_secs_f64();
        crate::output::json(&report);
    }
    outcome
}

fn restore(
    args: &RestoreArgs,
    (ui, facts): (&Ui, &Facts),
    stop: &StopFlag,
    report: &mut report::RestoreReport,
    started: std::time::Instant,
) -> Outcome {
    // 1. Arguments.
    let endpoint = args
        .connection
        .endpoint()
        .map_err(crate::settings::BadEndpoint::failure)?;
    // (Held to the end: a backup in a bucket is read from a local copy that lasts as long.)
    let (located, files) = backup_folder(args)?;
    report.backup = Some(located.location().to_string());
    facts.root_of_backup(located.location());
    ui.header("AI Memory Restore");
    ui.fact("Backup", located.location().as_str());
    ui.blank();

    // 2. The manifest, and 3. the checksums and the files they vouch for.
    let backup = read_backup((&*files, located.location()), args, ui)?;
    facts.bytes(backup.sources.iter().map(shards::size).sum());
    interrupted(stop)?;

    // 4. Connect.
    let server = connect(args, &endpoint, ui, report)?;
    // Held until the restore ends, from before the collections' state is read.
    let targets: Vec<&str> = backup.sources.iter().map(|s| s.target.as_str()).collect();
    let _locks = lock::take(&server.lock_keys, &server.key, &targets, args.dry_run, ui)
        .map_err(RestoreError::Locked)?;

    if let Some(filter) = &args.filter {
        let recorded = backup.manifest.qdrant_version.clone();
        let sources = backup.sources;
        return merge::merge_into(
            args,
            (located.location(), recorded.as_deref()),
            &server,
            sources,
            filter,
            (ui, stop),
            report,
        );
    }

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
        located.location(),
        &server,
        (&plans, &config_files),
        ui,
        stop,
        report,
    )?;
    show::summary(ui, &plans, &config_files, started.elapsed());
    Ok(())
}

/// Nothing changed yet: a signal ends the restore here.
fn interrupted(stop: &StopFlag) -> Outcome {
    match Signal::requested(stop) {
        Some(signal) => Err(RestoreError::Interrupted(signal).into()),
        None => Ok(()),
    }
}

/// The backup the argument names (a path, a backup in a bucket, or `latest`), and its files,
/// read where they are (an encrypted backup's decrypted copy).
fn backup_folder(
    args: &RestoreArgs,
) -> Outcome<(Box<dyn crate::repo::Backup>, Box<dyn BackupFiles>)> {
    let root = layout::default_root();
    // Absolute, so the paths printed for pre-restore snapshots work from any folder.
    let root = match crate::repo::is_remote(&root) {
        true => root,
        false => std::path::absolute(&root)
            .ok()
            .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
            .unwrap_or(root),
    };
    // A folder that is not there is an argument error (exit 1), as for verify and diff-schema.
    let backup = crate::repo::locate::resolve(&args.dir, &root)
        .map_err(|unresolved| RestoreError::NoBackup(unresolved.to_string()))?;
    // An encrypted backup is read decrypted: without its key, nothing goes further.
    let backup = crate::crypt::opened::open(backup, &args.keys)?;
    let files = backup.files().map_err(|e| {
        let at = backup.location();
        match e.kind() {
            // A file of an encrypted backup that does not decrypt.
            std::io::ErrorKind::InvalidData => crate::failure::Failure::msg(
                crate::exit::Exit::Failed,
                format!("{at}: {e}"),
                "The backup is damaged or was altered; nothing was changed. `aimem verify` lists every file that does not hold; restore another backup.",
            ),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                crate::failure::Failure::msg(
                    crate::exit::Exit::InsufficientSpace,
                    format!("{at}: no room for the temporary copy it is read from: {e}"),
                    "Free space in the temporary folder, or set TMPDIR to a folder with room for the backup; nothing was changed.",
                )
            }
            _ => RestoreError::NoBackup(format!("{at}: {e}")).into(),
        }
    })?;
    // Each file opened once: what is uploaded is the very file the checksums were read from.
    let files: Box<dyn BackupFiles> = Box::new(crate::manifest::files::OpenedOnce::new(files));
    Ok((backup, files))
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
fn read_backup(
    (files, dir): (&dyn BackupFiles, &Utf8Path),
    args: &RestoreArgs,
    ui: &Ui,
) -> Outcome<Backup> {
    ui.step("Verifying backup...");
    let manifest = Manifest::read_from(files, dir).map_err(RestoreError::Manifest)?;
    ui.ok(&format!("{MANIFEST_FILE} valid"));
    ui.fact("Backup date", &manifest.backup_date);
    ui.fact("Version", &manifest.ai_memory_version);
    ui.blank();
    let selected = select(&manifest, args)?;
    let options = SourceOptions {
        skip_checksum_verify: args.skip_checksum_verify,
        target_name: args.target_name.as_deref(),
        taken_on_cluster: manifest.has_cluster_record(),
    };
    let (listed, legacy_without_checksums) =
        sources::read_checksums((files, dir), options, &manifest, &selected, ui)
            .map_err(RestoreError::Source)?;
    let sources = sources::sources(
        (files, dir),
        &selected,
        options,
        listed.as_deref(),
        legacy_without_checksums,
    )
    .map_err(RestoreError::Source)?;
    for source in &sources {
        let shown = match &source.entry.backup {
            crate::manifest::CollectionBackup::Shards(cluster) => format!(
                "{}: {} shard files",
                source.entry.name,
                cluster.shards.len()
            ),
            crate::manifest::CollectionBackup::Snapshot { file } => file.clone(),
            crate::manifest::CollectionBackup::Points(points) => format!(
                "{}: {} points files (logical)",
                source.entry.name,
                points.files.len()
            ),
        };
        ui.ok(&format!("{shown} ({})", human_size(shards::size(source))));
    }
    let install = args.install.resolve();
    let (config_files, config_skipped) = if args.restore_config {
        config::plan(
            (files, dir),
            &install,
            &manifest.config_files,
            listed.as_deref(),
        )
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
    let server = client.server_info().map_err(RestoreError::Connect)?;
    client.list_collections().map_err(RestoreError::Connect)?;
    // A cluster's peers are reached and checked as for a backup, before anything else.
    let topology =
        crate::engine::peers::discover(&client, &args.peers).map_err(RestoreError::Peers)?;
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
    // Points restore into any Qdrant from 1.16 on: only snapshots are bound to their version.
    let snapshots = sources.iter().any(|s| s.points.is_none());
    let version = match snapshots {
        true => version_note(manifest.qdrant_version.as_deref(), &server.version),
        false => Ok(None),
    };
    if snapshots && (args.shard_number.is_some() || args.replication_factor.is_some()) {
        refusals.push(Refusal::SnapshotLayout);
    }
    match version {
        Ok(None) => {}
        Ok(Some(note)) => notes.push(note),
        Err(refusal) if args.allow_version_skew => {
            ui.warn(&format!("{refusal} (--allow-version-skew)"));
        }
        Err(refusal) => refusals.push(refusal),
    }
    let mut plans = Vec::new();
    for source in sources {
        let planned =
            plan::plan_one(&server.client, &server.topology, source).map_err(RestoreError::Plan)?;
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
        }
        .into());
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
            return Err(RestoreError::NoTerminal { what: what.clone() }.into());
        }
    }
    if let (Some(what), false) = (&overwrites, args.force) {
        confirm(what)?;
    }
    interrupted(stop)?;
    Ok(true)
}

/// Where the pre-restore snapshots go: beside the backup (`backup_at`, where it is, never the
/// temporary copy an encrypted backup or one in a bucket is read from), unless someone else
/// controls that folder ([`crate::workspace::prerestore_home`]); without a place for the
/// copies the restore stops here, before any change.
fn prerestore_folder(backup_at: &Utf8Path, ui: &Ui) -> Outcome<Utf8PathBuf> {
    // A backup in a bucket has no folder beside it on this machine: the pre-restore copies,
    // maybe the only copy of what the restore overwrites, go to the state folder.
    match crate::repo::is_remote(backup_at) {
        true => crate::workspace::prerestore_home_for_copy(ui),
        false => crate::workspace::prerestore_home(backup_at, ui),
    }
    .map_err(|reason| RestoreError::PrerestoreFolder { reason }.into())
}

/// Restores the planned collections and config files, every change recorded first; after a
/// failure (or a signal) rolls everything back.
fn act_on(
    args: &RestoreArgs,
    backup_at: &Utf8Path,
    server: &Server,
    (plans, config_files): (&[Planned], &[ConfigFile]),
    ui: &Ui,
    stop: &StopFlag,
    report: &mut report::RestoreReport,
) -> Outcome {
    changing(
        args,
        backup_at,
        server,
        ui,
        stop,
        report,
        |cx, undo, report| {
            jobs::restore_collections(cx, plans, undo, &mut report.timings, args.jobs).and_then(
                |()| {
                    if config_files.is_empty() {
                        Ok(())
                    } else {
                        ui.blank();
                        act::restore_config(cx, config_files, undo)
                    }
                },
            )
        },
    )?;
    report.restored();
    Ok(())
}

/// Runs `work`, the part of a restore that changes the server, with every change recorded
/// first (the journal, the undo log); after a failure (or a signal) rolls everything back.
/// `backup_at` is where the backup is (its pre-restore copies go beside it).
fn changing(
    args: &RestoreArgs,
    backup_at: &Utf8Path,
    server: &Server,
    ui: &Ui,
    stop: &StopFlag,
    report: &mut report::RestoreReport,
    work: impl FnOnce(
        &act::Context,
        &mut Undo,
        &mut report::RestoreReport,
    ) -> Result<(), act::StepError>,
) -> Outcome {
    let client = &server.client;
    let now = crate::localtime::now();
    let stamp = layout::folder_name(now).replace('_', "-");
    let prerestore_in = prerestore_folder(backup_at, ui)?;
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
        logical: crate::engine::restore::logical::LogicalOptions {
            shard_number: args.shard_number,
            replication_factor: args.replication_factor,
            allow_unknown_settings: args.allow_unknown_settings,
        },
    };
    // Before the first change: every object the restore makes on the server is recorded
    // there first, so a killed run leaves the next one what to delete.
    let mut undo = Undo {
        journal: Some(
            journal::RestoreJournal::create(&server.key, &server.identity, ui)
                .map_err(|source| RestoreError::Journal(act::StepError::Journal { source }))?,
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
    let result = work(&cx, &mut undo, report)
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
        return Err(failure.into());
    }
    undo.discard_saved(client, ui);
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
            }
            .into()),
        },
    }
}
