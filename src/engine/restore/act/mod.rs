//! The changing part of a restore: per collection, save what is there ([`save`]) or create it
//! ([`create`]), upload the backup into it ([`upload`]), and check the result. Every change
//! goes into the [`Undo`] log first.
//!
//! A collection is restored shard by shard (docs/qdrant.md, "Shard snapshots", "Restoring into
//! a cluster") when the backup or the server is a cluster: the steps are the same, and
//! [`placement`] adds the peers. The collection is created with the recorded sharding (shard
//! keys in their recorded order, so the server hands out the same shard ids). Once every
//! replica is Active, *every* replica of each shard is recovered from the shard's file on the
//! peer holding it (`priority=no_sync`: no replica waits for Qdrant to copy another, which
//! loses data when a replica is still initializing, see [`super::replicas`]). The collection
//! counts as restored only when every replica holds what the backup holds, checked again once
//! the cluster has stayed quiet. An existing collection is overwritten the same way after a
//! pre-restore copy of each shard, and a rollback puts that copy back the same way
//! ([`super::rollback`]).

mod create;
pub(super) mod placement;
mod save;
mod upload;

use camino::Utf8PathBuf;
use miette::Diagnostic;
use thiserror::Error;

use super::check::{self, Against, Counted, Failed};
use super::config::{self, ConfigFile};
use super::plan::{Action, Planned, Source, shard_aware};
use super::rollback::Undo;
use crate::engine::backup::disk;
use crate::engine::backup::snapshot::DownloadError;
use crate::qdrant::{Client, QdrantError};
use crate::signals::StopFlag;
use crate::ui::{Ui, human_size};

pub(super) use save::prerestore_folder;

/// What every step needs.
pub struct Context<'a> {
    pub client: &'a Client,
    pub ui: &'a Ui,
    pub stop: &'a StopFlag,
    /// The folder (the backup's parent) in which the pre-restore folder is created, on first
    /// use, as `<prerestore_prefix><random>`: a new folder owned by this run alone
    /// ([`crate::manifest::layout::create_working_dir`]), kept in `Undo::folder`.
    pub prerestore_in: Utf8PathBuf,
    /// `.aimem-prerestore-<stamp>-`.
    pub prerestore_prefix: String,
    /// Makes uploaded file names unique.
    pub stamp: String,
    /// The server: a single node, or every peer of a cluster.
    pub topology: &'a crate::engine::peers::Topology,
    /// The names the server goes by in snapshot turns (a backup's creations take them too).
    pub lock_keys: &'a crate::engine::peers::LockKeys,
    /// How long a cluster restore waits for every replica to turn Active (--recovery-timeout),
    /// and a logical one for its points to be applied and the collection to turn green.
    pub settle_limit: std::time::Duration,
    /// How a logical backup is laid out and created.
    pub logical: super::logical::LogicalOptions,
}

/// A step that failed; the restore is rolled back after it.
#[derive(Debug, Error, Diagnostic)]
pub enum StepError {
    #[error("{step} `{collection}` failed")]
    #[diagnostic(code(aimem::restore::step))]
    Qdrant {
        step: &'static str,
        collection: String,
        #[source]
        #[diagnostic_source]
        source: QdrantError,
    },

    #[error("saving `{collection}` before overwriting it failed")]
    #[diagnostic(code(aimem::restore::prerestore))]
    Save {
        collection: String,
        #[source]
        #[diagnostic_source]
        source: DownloadError,
    },

    #[error("cannot create the folder for pre-restore snapshots {path}: {source}")]
    #[diagnostic(
        code(aimem::restore::prerestore),
        help(
            "aimem keeps a copy of each collection it overwrites next to the backup folder. Make the \
             backup's parent folder writable, or copy the backup somewhere writable."
        )
    )]
    PrerestoreFolder {
        path: String,
        source: std::io::Error,
    },

    #[error(
        "not enough free space in {path} for the pre-restore snapshot of `{collection}`: about {} needed, {} free",
        human_size(*.needed),
        human_size(*.free)
    )]
    #[diagnostic(
        code(aimem::restore::space),
        help("Free space there, or copy the backup to a larger disk and restore from that copy.")
    )]
    NoSpace {
        collection: String,
        path: String,
        needed: u64,
        free: u64,
    },

    #[error("cannot write {path}: {source}")]
    #[diagnostic(
        code(aimem::restore::io),
        help("Check that the folder is writable and its disk is not full.")
    )]
    Io {
        path: String,
        source: std::io::Error,
    },

    #[error("`{collection}` does not match the backup after the restore: {detail}")]
    #[diagnostic(
        code(aimem::restore::check),
        help(
            "Qdrant did not restore what the backup holds. Check the server's logs and disk space."
        )
    )]
    Check { collection: String, detail: String },

    #[error("cannot write the restore's journal: {source}")]
    #[diagnostic(
        code(aimem::restore::journal),
        help(
            "aimem records what it makes on the server before it asks for it, in its state folder \
             ($XDG_STATE_HOME/aimem, else ~/.local/state/aimem). Make that folder writable and private \
             to you, or free space on its disk."
        )
    )]
    Journal { source: std::io::Error },

    #[error("this server does not know settings `{collection}` was backed up with: {settings}")]
    #[diagnostic(
        code(aimem::restore::unknown_settings),
        help(
            "The backup comes from a Qdrant that has settings this one lacks, and Qdrant would drop them \
             without a word. Restore into a Qdrant as recent as the backup's, or re-run with \
             --allow-unknown-settings to restore without them."
        )
    )]
    UnknownSettings {
        collection: String,
        settings: String,
    },

    #[error("loading the points of `{collection}` from {file} failed: {detail}")]
    #[diagnostic(
        code(aimem::restore::points),
        help("Run `aimem verify` on the backup; if it passes, check the disk the backup is on.")
    )]
    Load {
        collection: String,
        file: String,
        detail: String,
    },

    #[error("stopped by a signal")]
    #[diagnostic(code(aimem::interrupted))]
    Interrupted,

    #[error("restoring `{collection}` failed: aimem hit an internal error (above)")]
    #[diagnostic(
        code(aimem::restore::internal),
        help("If it happens again, report the message above.")
    )]
    Panicked { collection: String },

    #[error("restoring `{collection}` shard by shard failed: {detail}")]
    #[diagnostic(
        code(aimem::restore::cluster),
        help(
            "Check every peer's logs and GET /collections/NAME/cluster on the peers; a slow cluster may \
             need a longer --recovery-timeout."
        )
    )]
    Cluster { collection: String, detail: String },
}

/// A failed server call of `step` on `collection` as the step error (a stop as the stop).
pub(super) fn qdrant(
    step: &'static str,
    collection: &str,
) -> impl FnOnce(QdrantError) -> StepError {
    let collection = collection.to_string();
    move |source| match source {
        QdrantError::Interrupted => StepError::Interrupted,
        source => StepError::Qdrant {
            step,
            collection,
            source,
        },
    }
}

impl StepError {
    /// Saving what is there before overwriting it failed: a restore that ends here changed
    /// nothing if nothing else was changed before.
    pub fn is_prerestore(&self) -> bool {
        matches!(
            self,
            StepError::Save { .. } | StepError::PrerestoreFolder { .. } | StepError::NoSpace { .. }
        ) || matches!(self, StepError::Qdrant { step, .. } if *step == SNAPSHOTTING)
    }
}

impl StepError {
    /// The step failed for want of disk space: the disk-space check said so, or a write of
    /// the pre-restore copy hit a full disk or quota.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            StepError::NoSpace { .. } => true,
            StepError::Save { source, .. } => source.is_out_of_space(),
            StepError::PrerestoreFolder { source, .. } | StepError::Io { source, .. } => {
                disk::is_out_of_space(source)
            }
            _ => false,
        }
    }
}

const SNAPSHOTTING: &str = "snapshotting";

/// What a failed upload did to the collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    /// Refused before anything changed: a definite 4xx answer (Qdrant checks access, the
    /// checksum and compatibility before it clears anything; a proxy's 413 or 403 never reaches
    /// it), or a body aimem cut short itself.
    Unchanged,
    /// Nobody knows: no answer, a timeout, a lost connection, a gateway's 502/503/504 or a 408.
    /// Qdrant may be recovering still.
    Unclear,
    /// Qdrant answered an error after it started (a 500 mid-recovery): it may have cleared data.
    Changed,
}

pub(super) fn effect_of(error: &QdrantError) -> Effect {
    match (error, error.status()) {
        (QdrantError::Interrupted | QdrantError::LocalRead { .. }, _) => Effect::Unchanged,
        (_, Some(408 | 502 | 503 | 504)) => Effect::Unclear,
        (_, Some(400..=499)) => Effect::Unchanged,
        (_, Some(_)) => Effect::Changed,
        (_, None) => Effect::Unclear,
    }
}

pub(super) fn stopped(stop: &StopFlag) -> Result<(), StepError> {
    match stop.requested() {
        Some(_) => Err(StepError::Interrupted),
        None => Ok(()),
    }
}

/// Restores every planned collection in order (refusals were handled before).
pub fn restore_collections(
    cx: &Context,
    plans: &[Planned],
    undo: &mut Undo,
    timings: &mut Vec<(String, f64)>,
) -> Result<(), StepError> {
    cx.ui.step("Restoring collections...");
    for planned in plans {
        let restored = caught(&planned.source.target, || {
            restore_one(cx, planned, undo, &|| stopped(cx.stop), false)
        })?;
        if let Some(seconds) = restored {
            timings.push((planned.source.target.to_string(), seconds));
        }
    }
    Ok(())
}

/// Runs one collection's restore. A panic (a bug in aimem) fails that collection like any
/// other error instead of unwinding past the rollback: what the undo log holds up to the
/// panic is still put back.
pub(super) fn caught<T>(
    collection: &str,
    restore: impl FnOnce() -> Result<T, StepError>,
) -> Result<T, StepError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(restore)).unwrap_or_else(|_| {
        Err(StepError::Panicked {
            collection: collection.to_string(),
        })
    })
}

/// Restores one planned collection: create it or save what is there, upload the backup into
/// it, check it. Restored shard by shard ([`shard_aware`]), it goes to every replica of each
/// shard once they have settled, and is checked replica by replica. `go_on` is asked before
/// each step (a signal, or with `--jobs` another collection's failure, ends it there);
/// `named` puts the collection's name in the closing line (several run at once). Returns
/// the seconds it took, or `None` for a refused collection (nothing done).
pub(super) fn restore_one(
    cx: &Context,
    planned: &Planned,
    undo: &mut Undo,
    go_on: &dyn Fn() -> Result<(), StepError>,
    named: bool,
) -> Result<Option<f64>, StepError> {
    let target = planned.source.target.as_str();
    if matches!(planned.action, Action::Refuse(_)) {
        return restore_planned(cx, planned, undo, go_on, named);
    }
    cx.ui.phase_started("collection", Some(target));
    let restored = restore_planned(cx, planned, undo, go_on, named);
    let made = serde_json::json!({ "records": planned.source.entry.records });
    cx.ui
        .phase_finished("collection", Some(target), restored.is_ok(), made);
    restored
}

/// [`restore_one`], without its `--progress json` events.
fn restore_planned(
    cx: &Context,
    planned: &Planned,
    undo: &mut Undo,
    go_on: &dyn Fn() -> Result<(), StepError>,
    named: bool,
) -> Result<Option<f64>, StepError> {
    let started = std::time::Instant::now();
    go_on()?;
    let source = &planned.source;
    if let Some(points) = &source.points {
        return super::logical::restore_one(cx, planned, points, undo, go_on, named);
    }
    let target = source.target.as_str();
    let by_shard = shard_aware(cx.topology, source);
    let created = match &planned.action {
        Action::Create => true,
        Action::Overwrite { .. } => false,
        Action::Refuse(_) => return Ok(None),
    };
    let how = match (by_shard, created) {
        (false, _) => "",
        (true, true) => ", shard by shard",
        (true, false) => ", shard by shard, over the existing collection",
    };
    cx.ui.step(&format!(
        "  Restoring {target} ({} records{how})...",
        source.entry.records
    ));
    match &planned.action {
        Action::Overwrite { live, points, .. } => save::save(cx, source, live, *points, undo)?,
        _ => create::create(cx, source, undo, go_on)?,
    }
    go_on()?;
    if by_shard {
        let nodes = placement::nodes(cx, target)?;
        // Only once every replica is Active, with no transfer running: a shard recovered while
        // another replica of it still initializes leaves that replica empty, and a replica
        // refilled by a transfer meanwhile would take the transfer's data over the backup's.
        let expected = source.expected();
        let settled = placement::wait_settled(cx, &nodes, target, &expected)?;
        upload::upload_every_replica(cx, source, (&nodes, &settled), undo)?;
        stopped(cx.stop)?;
        placement::check_replicas(cx, source, &nodes, &expected, created)?;
    } else {
        upload::upload(cx, source, undo)?;
        // A signal that arrived while the server was recovering still asks for the rollback.
        stopped(cx.stop)?;
        check(cx, source, created)?;
    }
    // An overwrite shard by shard names its collection even when restored alone.
    let recovered = match named || (by_shard && !created) {
        true => format!("`{target}` recovered"),
        false => "Collection recovered".to_string(),
    };
    let checked = match by_shard {
        true => ", every replica checked",
        false => "",
    };
    cx.ui.ok(&format!(
        "{recovered} ({} records{checked})",
        source.entry.records
    ));
    Ok(Some(started.elapsed().as_secs_f64()))
}

/// Saves an existing collection before it is overwritten (a snapshot of it, or on a cluster a
/// copy of each shard), recorded in `undo`.
pub(super) fn save_existing(
    cx: &Context,
    source: &Source,
    live: &crate::fingerprint::Fingerprint,
    points: u64,
    undo: &mut Undo,
) -> Result<(), StepError> {
    save::save(cx, source, live, points, undo)
}

/// The restored collection must have the backup's schema and exactly its record count.
fn check(cx: &Context, source: &Source, created: bool) -> Result<(), StepError> {
    let target = &source.target;
    check_schema(cx, source, created)?;
    let points = cx
        .client
        .count_exact(target)
        .map_err(qdrant("counting", target))?;
    check::points(points, source.recorded_points(), Against::Backup).map_err(|detail| {
        StepError::Check {
            collection: target.to_string(),
            detail,
        }
    })
}

/// The restored collection's schema against the backup's: every difference counts in a
/// collection this run `created` in the backup's own layout, only structure otherwise
/// ([`Counted::after_restore`]).
pub(super) fn check_schema(cx: &Context, source: &Source, created: bool) -> Result<(), StepError> {
    let target = &source.target;
    let same_layout = source.taken_on_cluster() == cx.topology.is_cluster();
    check::schema(
        cx.client,
        target,
        source.fingerprint.as_ref(),
        Against::Backup,
        Counted::after_restore(created, same_layout),
    )
    .map_err(|failed| match failed {
        Failed::Read(e) => qdrant("checking", target)(e),
        Failed::Differs(detail) => StepError::Check {
            collection: target.to_string(),
            detail,
        },
    })
}

/// Writes the config files, each atomically, recording how to put the old ones back.
pub fn restore_config(
    cx: &Context,
    files: &[ConfigFile],
    undo: &mut Undo,
) -> Result<(), StepError> {
    cx.ui.step("Restoring config files...");
    for file in files {
        stopped(cx.stop)?;
        config::write(file, &mut undo.config).map_err(|source| StepError::Io {
            path: file.to.to_string(),
            source,
        })?;
        cx.ui.ok(&format!(
            "{} → {} (mode {:o})",
            file.name, file.to, file.mode
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_while_saving_the_pre_restore_copy_is_out_of_space() {
        let full = || std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let save = StepError::Save {
            collection: "c".into(),
            source: DownloadError::Qdrant(QdrantError::LocalWrite(full())),
        };
        let folder = StepError::PrerestoreFolder {
            path: "p".into(),
            source: full(),
        };
        let checked = StepError::NoSpace {
            collection: "c".into(),
            path: "p".into(),
            needed: 2,
            free: 1,
        };
        let damaged = StepError::Save {
            collection: "c".into(),
            source: DownloadError::Mismatch { detail: "x".into() },
        };
        assert!(save.is_out_of_space());
        assert!(folder.is_out_of_space());
        assert!(checked.is_out_of_space());
        assert!(!damaged.is_out_of_space());
    }

    #[test]
    fn a_panicking_restore_fails_its_collection_instead_of_unwinding() {
        let outcome: Result<(), StepError> = caught("notes", || panic!("a bug"));
        assert!(
            matches!(outcome, Err(StepError::Panicked { collection }) if collection == "notes")
        );
        assert_eq!(caught("notes", || Ok(7)).ok(), Some(7));
    }
}
