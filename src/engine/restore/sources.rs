//! The backup's files to restore: `CHECKSUMS.sha256` verified against them (or, for a legacy
//! backup without one, what can be checked instead), and every snapshot opened once, never
//! through a link, with its schema and target name.

use camino::{Utf8Path, Utf8PathBuf};
use miette::Diagnostic;
use thiserror::Error;

use crate::exit::Exit;
use crate::failure::ExitStatus;
use crate::fingerprint::{Fingerprint, FingerprintError};
use crate::manifest::checksums::{self, Entry};
use crate::manifest::cluster::CollectionCluster;
use crate::manifest::files::{BackupFiles, Opened};
use crate::manifest::layout::SNAPSHOT_DIR;
use crate::manifest::legacy;
use crate::manifest::{CollectionBackup, CollectionEntry, MANIFEST_FILE, Manifest};
use crate::names::{SafeName, UnsafeName};
use crate::ui::{Ui, throughput};

use super::plan::Source;
use super::shards;

/// What the checks of the backup's files give: the listed checksums and how to open the files.
#[derive(Debug, Clone, Copy)]
pub struct SourceOptions<'a> {
    /// `--skip-checksum-verify`: the digests are not checked, nor handed on as verified.
    pub skip_checksum_verify: bool,
    /// `--target-name`: restore into this name instead of the backup's.
    pub target_name: Option<&'a str>,
    /// The backup was taken on a cluster (its manifest has the top-level `cluster` record):
    /// its shard files are a cluster's, not a single node's streamed ones.
    pub taken_on_cluster: bool,
}

/// A backup file that cannot be trusted or read; nothing was changed.
#[derive(Debug, Error, Diagnostic)]
pub enum SourceError {
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

    #[error("the cluster backup of `{collection}` records no schema")]
    #[diagnostic(help(
        "A cluster backup always records its schema: this manifest is damaged. Use another backup."
    ))]
    NoClusterSchema { collection: String },

    /// The name restored into is not one aimem can use (an argument error, unlike the rest).
    #[error("{0}")]
    #[diagnostic(help("Choose another name."))]
    BadTarget(UnsafeName),
}

impl ExitStatus for SourceError {
    fn exit_status(&self) -> Exit {
        match self {
            SourceError::BadTarget(_) => Exit::InvalidArguments,
            _ => Exit::Failed,
        }
    }
}

/// The backup's CHECKSUMS.sha256, verified against every file to restore (unless
/// `skip_checksum_verify`), and whether the backup is a legacy one that has none.
pub fn read_checksums(
    (files, dir): (&dyn BackupFiles, &Utf8Path),
    options: SourceOptions,
    manifest: &Manifest,
    selected: &[&CollectionEntry],
    ui: &Ui,
) -> Result<(Option<Vec<Entry>>, bool), SourceError> {
    if options.skip_checksum_verify {
        ui.warn("checksum verification skipped (--skip-checksum-verify)");
        return Ok((checksums::read_from(files, dir).ok(), false));
    }
    match checksums::read_from(files, dir) {
        Ok(entries) => {
            let meter = ui.hash_meter(&format!("hashing {}", dir.file_name().unwrap_or("")));
            let checked = checksums::observed(meter.clone(), || {
                verify_checksums(files, &entries, selected)
            });
            let (bytes, took) = meter.done();
            checked?;
            ui.ok(&format!("checksums match: {}", throughput(bytes, took)));
            Ok((Some(entries), false))
        }
        // The Python scripts write no checksums file: such a backup is taken on the checks
        // it allows; one that should have the file and lacks it is refused.
        Err(source) if legacy::is_absent(&source) => {
            legacy::without_checksums(manifest)
                .map_err(|reason| SourceError::ChecksumsRemoved { reason })?;
            ui.warn(&format!(
                "this backup carries no checksums (no {}, as the Python scripts write it): \
                 corruption cannot be detected; only each snapshot's size and archive are checked",
                checksums::CHECKSUMS_FILE
            ));
            Ok((None, true))
        }
        Err(source) => Err(SourceError::ChecksumFile { source }),
    }
}

/// Every listed file must match, and every snapshot to restore must be listed.
fn verify_checksums(
    files: &dyn BackupFiles,
    entries: &[Entry],
    selected: &[&CollectionEntry],
) -> Result<(), SourceError> {
    let mut problems: Vec<String> = checksums::check_all_in(files, entries)
        .iter()
        .map(|p| format!("  {p}"))
        .collect();
    for entry in selected {
        let paths = match &entry.backup {
            CollectionBackup::Shards(cluster) => shards::shard_paths(&entry.name, cluster),
            CollectionBackup::Snapshot { file } => vec![snapshot_path(file)],
            CollectionBackup::Points(points) => {
                super::logical::source::points_paths(&entry.name, points)
            }
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
        Err(SourceError::Checksums {
            problems: problems.join("\n"),
        })
    }
}

/// The first symbolic link among the components of `relative` in the backup's local folder
/// (the file itself or a folder on the way), if any; none for a backup read from a bucket.
fn link_in(files: &dyn BackupFiles, relative: &str) -> Option<Utf8PathBuf> {
    symlink_in(files.local_dir()?, relative)
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
pub fn sources(
    (files, dir): (&dyn BackupFiles, &Utf8Path),
    selected: &[&CollectionEntry],
    options: SourceOptions,
    listed: Option<&[Entry]>,
    legacy_without_checksums: bool,
) -> Result<Vec<Source>, SourceError> {
    let mut damaged = Vec::new();
    let sources: Vec<Source> = selected
        .iter()
        .map(|entry| match &entry.backup {
            CollectionBackup::Shards(cluster) => {
                cluster_source((files, dir), entry, cluster, options, listed)
            }
            CollectionBackup::Points(points) => points_source((files, dir), entry, points, options),
            CollectionBackup::Snapshot { file } => {
                let opened = snapshot_source((files, dir), entry, file, options, listed)?;
                if opened.fingerprint.is_none() {
                    match legacy_fingerprint(entry, &opened.file, legacy_without_checksums) {
                        Ok(inside) => {
                            return Ok(Source {
                                snapshot_fingerprint: Some(inside),
                                ..opened
                            });
                        }
                        Err(problem) => {
                            damaged.push(format!("  {}: {problem}", snapshot_path(file)))
                        }
                    }
                }
                Ok(opened)
            }
        })
        .collect::<Result<_, _>>()?;
    if !damaged.is_empty() {
        return Err(SourceError::LegacyDamaged {
            problems: damaged.join("\n"),
        });
    }
    Ok(sources)
}

/// A single-node backup's collection: its snapshot file opened (not through a link), the
/// digest it was verified against, its recorded schema (if any) and target.
fn snapshot_source(
    (files, dir): (&dyn BackupFiles, &Utf8Path),
    entry: &CollectionEntry,
    snapshot_file: &str,
    options: SourceOptions,
    listed: Option<&[Entry]>,
) -> Result<Source, SourceError> {
    let relative = snapshot_path(snapshot_file);
    let snapshot = dir.join(&relative);
    // A link could point anywhere (and with --skip-checksum-verify nothing would
    // notice): only the backup's own files are uploaded.
    if let Some(link) = link_in(files, &relative) {
        return Err(SourceError::Link {
            what: format!("the snapshot of `{}`", entry.name),
            path: link,
        });
    }
    if checksums::check_relative(&relative).is_err() {
        return Err(SourceError::SnapshotMissing {
            collection: entry.name.clone(),
            path: snapshot,
        });
    }
    let file = files
        .open(&relative)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => SourceError::SnapshotMissing {
                collection: entry.name.clone(),
                path: snapshot.clone(),
            },
            _ => SourceError::SnapshotUnreadable {
                collection: entry.name.clone(),
                source,
            },
        })?;
    let fingerprint = match &entry.schema {
        Some(schema) => Some(recorded_schema(entry, schema)?),
        None => None,
    };
    let verified_sha256 = match options.skip_checksum_verify {
        true => None,
        false => listed
            .and_then(|l| l.iter().find(|e| e.path == relative))
            .map(|e| e.sha256.clone()),
    };
    Ok(Source {
        entry: entry.clone(),
        target: target(entry, options)?,
        snapshot,
        file,
        verified_sha256,
        fingerprint,
        snapshot_fingerprint: None,
        cluster: None,
        points: None,
    })
}

/// For a backup without a fingerprint: the schema the snapshot itself holds, read from the
/// very file that is uploaded (a clone shares the open file), after the size check a backup
/// without checksums allows. Fails in words for a person.
fn legacy_fingerprint(
    entry: &CollectionEntry,
    file: &Opened,
    legacy_without_checksums: bool,
) -> Result<Fingerprint, String> {
    match legacy_without_checksums {
        true => legacy::check_size(entry, file),
        false => Ok(()),
    }
    .and_then(|()| legacy::snapshot_fingerprint(file.reader_from(0)))
}

/// The schema the manifest records for `entry`.
fn recorded_schema(
    entry: &CollectionEntry,
    schema: &serde_json::Value,
) -> Result<Fingerprint, SourceError> {
    Fingerprint::from_value(schema.clone()).map_err(|source| SourceError::BadSchema {
        collection: entry.name.clone(),
        source,
    })
}

/// The name restored into. Checked again here (the manifest and the argument were checked
/// when read): the target names the local pre-restore snapshot file.
fn target(entry: &CollectionEntry, options: SourceOptions) -> Result<SafeName, SourceError> {
    SafeName::new(options.target_name.unwrap_or(&entry.name)).map_err(SourceError::BadTarget)
}

/// A cluster backup's collection: every shard file opened (none through a link), its schema
/// and target. `file` is its first shard file.
fn cluster_source(
    (files, dir): (&dyn BackupFiles, &Utf8Path),
    entry: &CollectionEntry,
    cluster: &CollectionCluster,
    options: SourceOptions,
    listed: Option<&[Entry]>,
) -> Result<Source, SourceError> {
    let opened = open_shards((files, dir), entry, cluster, options, listed)?;
    let first = opened.shards.first().map(|s| &s.file);
    let source = of_files(dir, entry, options, first)?;
    Ok(Source {
        cluster: Some(std::sync::Arc::new(opened)),
        ..source
    })
}

/// A logical backup's collection: every points file opened (none through a link), its schema
/// and target. `file` is its first points file.
fn points_source(
    (files, dir): (&dyn BackupFiles, &Utf8Path),
    entry: &CollectionEntry,
    record: &crate::manifest::points::PointsRecord,
    options: SourceOptions,
) -> Result<Source, SourceError> {
    for relative in super::logical::source::points_paths(&entry.name, record) {
        if let Some(link) = link_in(files, &relative) {
            return Err(SourceError::Link {
                what: format!("a points file of `{}`", entry.name),
                path: link,
            });
        }
    }
    let opened = super::logical::source::open((files, dir), &entry.name, record)
        .map_err(open_failure(entry))?;
    let first = opened.files.first().map(|f| &f.file);
    let source = of_files(dir, entry, options, first)?;
    Ok(Source {
        points: Some(std::sync::Arc::new(opened)),
        ..source
    })
}

/// A collection backed up as several files (shards, points), opened: its recorded schema
/// (which such a backup always has), target and `first` file.
fn of_files(
    dir: &Utf8Path,
    entry: &CollectionEntry,
    options: SourceOptions,
    first: Option<&Opened>,
) -> Result<Source, SourceError> {
    let folder = dir.join(SNAPSHOT_DIR).join(&entry.name);
    let Some(first) = first else {
        return Err(SourceError::SnapshotMissing {
            collection: entry.name.clone(),
            path: folder,
        });
    };
    let file = first.reader_from(0);
    let Some(schema) = &entry.schema else {
        return Err(SourceError::NoClusterSchema {
            collection: entry.name.clone(),
        });
    };
    Ok(Source {
        entry: entry.clone(),
        target: target(entry, options)?,
        snapshot: folder,
        file,
        verified_sha256: None,
        fingerprint: Some(recorded_schema(entry, schema)?),
        snapshot_fingerprint: None,
        cluster: None,
        points: None,
    })
}

/// A file of `entry` that could not be opened: missing, or unreadable.
fn open_failure(
    entry: &CollectionEntry,
) -> impl Fn((Utf8PathBuf, std::io::Error)) -> SourceError + '_ {
    move |(path, source)| match source.kind() {
        std::io::ErrorKind::NotFound => SourceError::SnapshotMissing {
            collection: entry.name.clone(),
            path,
        },
        _ => SourceError::SnapshotUnreadable {
            collection: entry.name.clone(),
            source,
        },
    }
}

/// Every shard file of a cluster collection opened, none through a link, each with the digest
/// it was verified against (unless `skip_checksum_verify`).
fn open_shards(
    (files, dir): (&dyn BackupFiles, &Utf8Path),
    entry: &CollectionEntry,
    cluster: &CollectionCluster,
    options: SourceOptions,
    listed: Option<&[Entry]>,
) -> Result<shards::ClusterSource, SourceError> {
    for relative in shards::shard_paths(&entry.name, cluster) {
        if let Some(link) = link_in(files, &relative) {
            return Err(SourceError::Link {
                what: format!("a shard file of `{}`", entry.name),
                path: link,
            });
        }
    }
    let listed = match options.skip_checksum_verify {
        true => None,
        false => listed,
    };
    shards::open(
        (files, dir),
        &entry.name,
        cluster,
        listed,
        options.taken_on_cluster,
    )
    .map_err(open_failure(entry))
}
