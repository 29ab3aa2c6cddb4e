//! Auditing a backup folder offline: is everything there, intact, and what the manifest says?
//!
//! The audit never stops at the first problem: it collects every one, each naming the file and
//! what is wrong, so a person sees the whole state of a backup in one run. It checks, in order:
//! the manifest parses; `CHECKSUMS.sha256` parses strictly; every listed file exists and
//! matches (hashed in parallel); the manifest's snapshots, config files and the manifest itself
//! are listed; nothing unlisted lies in the folder; the manifest's sizes match the files; and,
//! unless told not to, each snapshot's own schema (read from the tar) matches the fingerprint.
//! A cluster backup's shard files are checked the same way, plus their placement and each
//! shard archive's own state ([`super::shard_audit`]); such findings name the shard.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;
use serde_json::Value;

use super::checksums::{self, CHECKSUMS_FILE, ChecksumsError, Problem};
use super::layout::{CONFIG_DIR, SNAPSHOT_DIR};
use super::{CollectionBackup, InvalidManifest, MANIFEST_FILE, Manifest, ManifestError};
use super::{confined, legacy, shard_audit, snapshot_archive};
use crate::fingerprint::{self, Fingerprint, Severity};

/// What kind of problem a [`Finding`] is; the snake_case names are part of `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `manifest.json` is absent.
    ManifestMissing,
    /// `manifest.json` does not parse.
    ManifestInvalid,
    /// A collection has no schema fingerprint (a pre-2.4.1 backup).
    NoFingerprint,
    /// `CHECKSUMS.sha256` is absent (a legacy backup).
    ChecksumsMissing,
    /// `CHECKSUMS.sha256` has a malformed line.
    ChecksumsMalformed,
    /// A listed file is absent.
    Missing,
    /// A listed file's SHA-256 differs.
    Mismatch,
    /// A file could not be read.
    Unreadable,
    /// A file the manifest names is not listed in `CHECKSUMS.sha256`.
    NotListed,
    /// A file in the folder is not listed in `CHECKSUMS.sha256`.
    Unlisted,
    /// A snapshot's size differs from the manifest's `size_bytes`.
    SizeMismatch,
    /// A snapshot is not a whole, readable collection snapshot.
    SnapshotDamaged,
    /// A snapshot's own schema differs from the manifest's fingerprint.
    SchemaMismatch,
    /// A cluster backup's shard list, placement or a shard file's own state disagrees with
    /// the manifest (see [`super::shard_audit`]).
    PlacementMismatch,
    /// Information, not a problem: a cluster collection's per-shard point counts do not add
    /// up to its exact count.
    RecordsDiffer,
}

/// One problem: the file (relative to the backup folder) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub file: String,
    pub kind: Kind,
    pub problem: String,
    /// A cluster backup's finding about one collection's shard: the collection...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// ...and the shard id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
}

impl Finding {
    pub fn new(file: &str, kind: Kind, problem: String) -> Finding {
        Finding {
            file: file.to_string(),
            kind,
            problem,
            collection: None,
            shard: None,
        }
    }

    /// The same finding, about shard `shard` of `collection`.
    pub fn of_shard(mut self, collection: &str, shard: u32) -> Finding {
        self.collection = Some(collection.to_string());
        self.shard = Some(shard);
        self
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.collection, self.shard) {
            (Some(collection), Some(shard)) => write!(
                f,
                "{} (shard {shard} of `{collection}`): {}",
                self.file, self.problem
            ),
            _ => write!(f, "{}: {}", self.file, self.problem),
        }
    }
}

/// Whether to read each snapshot's schema from inside its archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub deep: bool,
}

/// The result of auditing one backup.
#[derive(Debug)]
pub struct Audit {
    pub backup: Utf8PathBuf,
    /// No schema fingerprint (a backup of the Python scripts before v2.4.1, which also write no
    /// `CHECKSUMS.sha256`): written before aimem's format.
    pub legacy: bool,
    /// What a legacy backup without checksums lacks, reported but not counted as a problem
    /// (such a backup is not damaged, only less checkable); empty otherwise.
    pub notices: Vec<Finding>,
    /// How many listed files were hashed.
    pub files_checked: usize,
    pub findings: Vec<Finding>,
    /// What is worth knowing but is no problem (a cluster backup's approximate shard counts).
    pub information: Vec<Finding>,
    /// The manifest parse error, kept whole so it can be rendered with the bad spot marked.
    pub manifest_error: Option<ManifestError>,
}

impl Audit {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// No problem and nothing that could not be checked: a backup to rely on.
    pub fn fully_verified(&self) -> bool {
        self.ok() && !self.legacy
    }
}

/// Audits the backup folder `dir`.
pub fn audit(dir: &Utf8Path, options: Options) -> Audit {
    let mut findings = Vec::new();
    let mut push = |file: &str, kind: Kind, problem: String| {
        findings.push(Finding::new(file, kind, problem));
    };

    let (manifest, manifest_error) = match Manifest::read(dir) {
        Ok(manifest) => (Some(manifest), None),
        Err(ManifestError::Missing { .. }) => {
            push(
                MANIFEST_FILE,
                Kind::ManifestMissing,
                "missing: this is not a complete backup".into(),
            );
            (None, None)
        }
        Err(e) => {
            push(MANIFEST_FILE, Kind::ManifestInvalid, manifest_problem(&e));
            (None, Some(e))
        }
    };
    let mut legacy = false;
    if let Some(manifest) = &manifest {
        for (name, entry) in &manifest.collections {
            if entry.schema.is_none() {
                legacy = true;
                push(
                    MANIFEST_FILE,
                    Kind::NoFingerprint,
                    format!(
                        "collection `{name}` has no schema fingerprint (a pre-2.4.1 backup): restore cannot create it, only overwrite an existing one"
                    ),
                );
            }
        }
    }

    let mut files_checked = 0;
    let mut without_checksums = false;
    // Listed path → its SHA-256.
    let listed: Option<BTreeMap<String, String>> = match checksums::read(dir) {
        Ok(entries) => {
            files_checked = entries.len();
            for problem in checksums::check_all(dir, &entries) {
                let (kind, text) = match &problem {
                    Problem::Missing { .. } => (
                        Kind::Missing,
                        format!("listed in {CHECKSUMS_FILE} but missing"),
                    ),
                    Problem::Mismatch {
                        expected, actual, ..
                    } => (
                        Kind::Mismatch,
                        format!("SHA-256 is {actual}, {CHECKSUMS_FILE} says {expected}"),
                    ),
                    Problem::Unreadable { error, .. } => {
                        (Kind::Unreadable, format!("cannot be read ({error})"))
                    }
                };
                push(problem.path(), kind, text);
            }
            Some(entries.into_iter().map(|e| (e.path, e.sha256)).collect())
        }
        Err(ChecksumsError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            match manifest.as_ref().map(legacy::without_checksums) {
                Some(Ok(())) => {
                    legacy = true;
                    without_checksums = true;
                    push(
                        CHECKSUMS_FILE,
                        Kind::ChecksumsMissing,
                        "absent, as in every backup of the Python scripts: corruption cannot be detected; sizes and snapshot archives were checked".into(),
                    );
                }
                Some(Err(reason)) => push(
                    CHECKSUMS_FILE,
                    Kind::ChecksumsMissing,
                    format!(
                        "missing, but {reason}: it was removed, so nothing proves the files are the ones backed up"
                    ),
                ),
                None => push(
                    CHECKSUMS_FILE,
                    Kind::ChecksumsMissing,
                    "missing: the files cannot be checked".into(),
                ),
            }
            None
        }
        Err(ChecksumsError::Io { source, .. }) => {
            push(
                CHECKSUMS_FILE,
                Kind::Unreadable,
                format!("cannot be read ({source})"),
            );
            None
        }
        Err(ChecksumsError::Malformed { line, problem, .. }) => {
            push(
                CHECKSUMS_FILE,
                Kind::ChecksumsMalformed,
                format!("line {line}: {problem}"),
            );
            None
        }
    };

    if let Some(listed) = &listed {
        let mut named = vec![MANIFEST_FILE.to_string()];
        if let Some(manifest) = &manifest {
            named.extend(
                manifest
                    .collections
                    .values()
                    .flat_map(|c| snapshot_files(c).into_iter().map(|(file, _, _)| file)),
            );
            named.extend(
                manifest
                    .config_files
                    .iter()
                    .map(|f| format!("{CONFIG_DIR}/{f}")),
            );
        }
        for file in named {
            if !listed.contains_key(&file) {
                push(
                    &file,
                    Kind::NotListed,
                    format!("named by the manifest but not listed in {CHECKSUMS_FILE}"),
                );
            }
        }
        let mut present = Vec::new();
        if let Err(e) = walk_files(dir, dir, &mut present) {
            push(
                ".",
                Kind::Unreadable,
                format!("cannot list the folder ({e})"),
            );
        }
        for file in present {
            if file != CHECKSUMS_FILE && !listed.contains_key(&file) {
                push(
                    &file,
                    Kind::Unlisted,
                    format!("present but not listed in {CHECKSUMS_FILE}"),
                );
            }
        }
    }

    // Findings that carry their shard (pushed after the others, as they have more fields).
    let mut shard_findings = Vec::new();
    let mut information = Vec::new();
    if let Some(manifest) = &manifest {
        for (name, entry) in &manifest.collections {
            shard_findings.extend(shard_audit::placement(name, entry, manifest));
            shard_findings.extend(shard_audit::stray_files(dir, name, entry));
            information.extend(shard_audit::records_note(name, entry));
            for (file, size_bytes, sha256) in snapshot_files(entry) {
                // Nothing outside the folder is looked at, not even its size.
                if let Err(problem) = checksums::check_relative(&file) {
                    push(&file, Kind::Unreadable, problem);
                    continue;
                }
                let path = dir.join(&file);
                // A missing snapshot is reported by the checksum check when it is listed; a link
                // is not followed (the checksum check reports it).
                let Ok(meta) = path.symlink_metadata() else {
                    if listed.as_ref().is_none_or(|l| !l.contains_key(&file)) {
                        push(
                            &file,
                            Kind::Missing,
                            "named by the manifest but missing".into(),
                        );
                    }
                    continue;
                };
                if meta.len() != size_bytes {
                    push(
                        &file,
                        Kind::SizeMismatch,
                        format!("{} bytes, the manifest says {}", meta.len(), size_bytes),
                    );
                }
                // Without CHECKSUMS.sha256 a digest the manifest records is checked on its own:
                // whatever else is missing, a recorded digest is never taken on trust.
                if listed.is_none()
                    && let Some(recorded) = &sha256
                {
                    match confined::open(dir, &file).and_then(checksums::hash_reader) {
                        Ok((actual, _)) if !actual.eq_ignore_ascii_case(recorded) => push(
                            &file,
                            Kind::Mismatch,
                            format!("SHA-256 is {actual}, the manifest records {recorded}"),
                        ),
                        Ok(_) => {}
                        Err(e) => push(&file, Kind::Unreadable, format!("cannot be read ({e})")),
                    }
                }
                // The manifest records the snapshot's digest too: a CHECKSUMS.sha256 "repaired" to
                // match a changed file no longer agrees with it.
                let checksum_line = listed.as_ref().and_then(|l| l.get(&file));
                if let (Some(recorded), Some(line)) = (&sha256, checksum_line) {
                    if !recorded.eq_ignore_ascii_case(line) {
                        push(
                            &file,
                            Kind::Mismatch,
                            format!(
                                "the manifest records SHA-256 {recorded}, {CHECKSUMS_FILE} lists {line}"
                            ),
                        );
                    }
                }
                if let (Some(digest), Some(schema)) = (&entry.schema_digest, &entry.schema) {
                    let actual = Fingerprint::from_value(schema.clone()).map(|f| f.digest());
                    if actual.as_ref().ok() != Some(digest) {
                        push(
                            MANIFEST_FILE,
                            Kind::SchemaMismatch,
                            format!(
                                "the schema of `{name}` does not match its recorded digest {digest}"
                            ),
                        );
                    }
                }
                // A shard file's archive holds one shard, not a collection: checked as one.
                if options.deep && matches!(entry.backup, CollectionBackup::Shards(_)) {
                    let listed_file = listed.as_ref().is_some_and(|l| l.contains_key(&file));
                    if let Some(finding) =
                        shard_audit::deep_check_shard(name, entry, dir, &file, listed_file)
                    {
                        shard_findings.push(finding);
                    }
                } else if options.deep {
                    // A listed file that cannot be opened was reported by the checksum check.
                    let listed_file = listed.as_ref().is_some_and(|l| l.contains_key(&file));
                    if let Some(finding) =
                        deep_check(name, dir, &file, entry.schema.as_ref(), listed_file)
                    {
                        findings_push(&mut push, finding);
                    }
                }
            }
        }
    }

    findings.extend(shard_findings);
    if let Some(manifest) = &manifest {
        shard_audit::name_shards(&mut findings, manifest);
    }

    if let (true, Some(manifest)) = (without_checksums, &manifest) {
        let mut push = |file: &str, kind: Kind, problem: String| {
            findings.push(Finding::new(file, kind, problem));
        };
        // Nothing lists the config files: at least each one named must be there.
        for name in &manifest.config_files {
            let file = format!("{CONFIG_DIR}/{name}");
            if confined::open(dir, &file).is_err() {
                push(
                    &file,
                    Kind::Missing,
                    "named by the manifest but missing or unreadable".into(),
                );
            }
        }
    }

    // A legacy backup of the Python scripts lacks checksums and fingerprints by design: that
    // is reported, not counted as damage (restore accepts it, with a warning).
    let (notices, findings) = match without_checksums {
        true => findings
            .into_iter()
            .partition(|f| matches!(f.kind, Kind::ChecksumsMissing | Kind::NoFingerprint)),
        false => (Vec::new(), findings),
    };
    Audit {
        backup: dir.to_owned(),
        legacy,
        notices,
        files_checked,
        findings,
        information,
        manifest_error,
    }
}

fn findings_push(push: &mut impl FnMut(&str, Kind, String), finding: Finding) {
    push(&finding.file, finding.kind, finding.problem);
}

/// Compares the schema inside the snapshot with the manifest's fingerprint.
pub(super) fn deep_check(
    collection: &str,
    dir: &Utf8Path,
    file: &str,
    schema: Option<&Value>,
    open_problem_reported: bool,
) -> Option<Finding> {
    let finding = |kind, problem| Some(Finding::new(file, kind, problem));
    // Opened inside the backup folder only: a link or a special file is never read.
    let opened = match confined::open(dir, file) {
        Ok(opened) => opened,
        Err(_) if open_problem_reported => return None,
        Err(e) => return finding(Kind::Unreadable, format!("cannot be read ({e})")),
    };
    let inside = match snapshot_archive::read_schema_from(opened) {
        Ok(inside) => inside,
        Err(e) => return finding(Kind::SnapshotDamaged, e.to_string()),
    };
    compare_schema(collection, file, &inside, schema)
}

/// Compares a snapshot's own schema files with the manifest's fingerprint `schema`.
pub(super) fn compare_schema(
    collection: &str,
    file: &str,
    inside: &snapshot_archive::SnapshotSchema,
    schema: Option<&Value>,
) -> Option<Finding> {
    let finding = |kind, problem| Some(Finding::new(file, kind, problem));
    let Some(schema) = schema else {
        // Without a fingerprint there is nothing to compare with (reported as legacy already),
        // but the snapshot must still hold a collection config, which restore checks against.
        return match inside.fingerprint() {
            Ok(_) => None,
            Err(e) => finding(
                Kind::SnapshotDamaged,
                format!("its config.json is not a collection config: {e}"),
            ),
        };
    };
    let expected = Fingerprint::from_value(schema.clone());
    let actual = inside.fingerprint();
    let (expected, actual) = match (expected, actual) {
        (Ok(e), Ok(a)) => (e, a),
        (Err(e), _) => {
            return finding(
                Kind::SchemaMismatch,
                format!("the manifest's fingerprint of `{collection}` is unreadable: {e}"),
            );
        }
        (_, Err(e)) => {
            return finding(
                Kind::SnapshotDamaged,
                format!("its config.json is not a collection config: {e}"),
            );
        }
    };
    let differences = fingerprint::diff(&expected, &actual);
    if differences.is_empty() {
        return None;
    }
    let blocking = differences
        .iter()
        .filter(|d| d.severity == Severity::Blocking)
        .count();
    let shown: Vec<String> = differences
        .iter()
        .take(3)
        .map(|d| d.describe("manifest", "snapshot"))
        .collect();
    let more = differences.len().saturating_sub(shown.len());
    finding(
        Kind::SchemaMismatch,
        format!(
            "its schema does not match the manifest's fingerprint of `{collection}` ({} difference{}, {blocking} blocking): {}{}",
            differences.len(),
            if differences.len() == 1 { "" } else { "s" },
            shown.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        ),
    )
}

/// `not valid: expected value at line 9 column 5`, in one line for the list of problems.
fn manifest_problem(error: &ManifestError) -> String {
    match error {
        ManifestError::Invalid(invalid) => {
            let InvalidManifest {
                message,
                line,
                column,
                ..
            } = invalid.as_ref();
            format!("not a valid manifest: {message} (line {line}, column {column})")
        }
        other => other.to_string(),
    }
}

/// Every file under `dir` (links included, as files: they are not followed), relative to
/// `base`, with `/` separators. A name that is not UTF-8 is kept in its lossy form, so it is
/// reported rather than ending the walk.
fn walk_files(base: &Utf8Path, dir: &Utf8Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in dir.as_std_path().read_dir()? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = dir.join(&name);
        if entry.file_type()?.is_dir() {
            walk_files(base, &path, out)?;
        } else if let Ok(relative) = path.strip_prefix(base) {
            out.push(relative.as_str().replace('\\', "/"));
        }
    }
    Ok(())
}

/// The snapshot files a collection entry names, with their recorded size and SHA-256: its one
/// `qdrant/<snapshot_file>`, or a cluster backup's shard files.
fn snapshot_files(entry: &super::CollectionEntry) -> Vec<(String, u64, Option<String>)> {
    match &entry.backup {
        CollectionBackup::Shards(cluster) => cluster
            .shards
            .iter()
            .map(|s| (s.file.clone(), s.size_bytes, Some(s.sha256.clone())))
            .collect(),
        CollectionBackup::Snapshot { file } => vec![(
            format!("{SNAPSHOT_DIR}/{file}"),
            entry.size_bytes,
            entry.sha256.clone(),
        )],
    }
}
