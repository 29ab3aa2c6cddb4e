//! Auditing a backup offline: is everything there, intact, and what the manifest says?
//!
//! The audit never stops at the first problem: it collects every one, each naming the file and
//! what is wrong, so a person sees the whole state of a backup in one run. It checks, in order:
//! the manifest parses; `CHECKSUMS.sha256` parses strictly; every listed file exists and
//! matches (hashed in parallel); the manifest's snapshots, config files and the manifest itself
//! are listed; nothing unlisted lies in the folder; the manifest's sizes match the files; and,
//! unless told not to, each snapshot's own schema (read from the tar) matches the fingerprint.
//! A cluster backup's shard files are checked the same way, plus their placement and each
//! shard archive's own state ([`super::shard_audit`]); such findings name the shard.
//!
//! The files are read through [`BackupFiles`]: a local folder, or a bucket's objects in place.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;
use serde_json::Value;

use super::checksums::{self, CHECKSUMS_FILE, ChecksumsError, Problem};
use super::files::{BackupFiles, Folder};
use super::layout::{CONFIG_DIR, SNAPSHOT_DIR};
use super::{
    CollectionBackup, CollectionEntry, InvalidManifest, MANIFEST_FILE, Manifest, ManifestError,
};
use super::{legacy, shard_audit, snapshot_archive};
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
    /// A snapshot's own schema differs from the manifest's fingerprint (a logical backup's
    /// points file: its columns differ from the recorded definition's vectors).
    SchemaMismatch,
    /// A logical backup's points file is not a whole, readable one of the rows recorded.
    PointsDamaged,
    /// A cluster backup's shard list, placement or a shard file's own state disagrees with
    /// the manifest (see [`super::shard_audit`]).
    PlacementMismatch,
    /// Information, not a problem: a cluster collection's per-shard point counts do not add
    /// up to its exact count.
    RecordsDiffer,
    /// A file of an encrypted backup does not decrypt with the key that opens the rest: it
    /// is damaged or was replaced.
    Undecryptable,
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
    /// Its manifest says its files are encrypted.
    pub encrypted: bool,
    /// What is inside its files was checked: always, unless it is encrypted and was audited
    /// without its key (then only the files as stored were).
    pub contents_checked: bool,
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

/// Audits the backup folder `dir`. An encrypted backup's files are checked as stored: listed,
/// present, their digests as `CHECKSUMS.sha256` lists them (what is inside them needs the key:
/// see [`audit_opened`]).
pub fn audit(dir: &Utf8Path, options: Options) -> Audit {
    audit_as(&Folder(dir), dir, options, false)
}

/// [`audit`] of a backup whose files are read through `files` (a bucket's objects, in
/// place); `shown` is where the backup is, as the user named it.
pub fn audit_files(files: &dyn BackupFiles, shown: &Utf8Path, options: Options) -> Audit {
    audit_as(files, shown, options, false)
}

/// Audits the decrypted copy `dir` of an encrypted backup (`crate::crypt::opened`) as a plain
/// backup: its `CHECKSUMS.sha256` lists what is inside each file.
pub fn audit_opened(dir: &Utf8Path, options: Options) -> Audit {
    audit_as(&Folder(dir), dir, options, true)
}

fn audit_as(files: &dyn BackupFiles, shown: &Utf8Path, options: Options, opened: bool) -> Audit {
    let mut auditor = Auditor::new(files, shown, options);
    let (manifest, manifest_error) = auditor.read_manifest();
    auditor.sealed = !opened && manifest.as_ref().is_some_and(|m| m.encryption.is_some());
    if let Some(manifest) = &manifest {
        auditor.note_missing_fingerprints(manifest);
    }
    let listed = auditor.check_checksums(manifest.as_ref());
    if let Some(listed) = &listed {
        auditor.check_listing(listed, manifest.as_ref());
    }
    if let Some(manifest) = &manifest {
        auditor.check_collections(manifest, listed.as_ref());
    }
    auditor.finish(manifest.as_ref(), manifest_error)
}

/// Listed path → its SHA-256, as `CHECKSUMS.sha256` says.
type Listed = BTreeMap<String, String>;

/// One audit in progress: what it found so far, and what it learnt about the backup.
struct Auditor<'a> {
    files: &'a dyn BackupFiles,
    /// Where the backup is, as shown.
    shown: &'a Utf8Path,
    /// Every file there, listed once (or why they could not be).
    present: Result<Vec<String>, String>,
    options: Options,
    findings: Vec<Finding>,
    /// Findings that carry their shard: they follow the others.
    shard_findings: Vec<Finding>,
    information: Vec<Finding>,
    legacy: bool,
    /// A legacy backup of the Python scripts, which never wrote `CHECKSUMS.sha256`.
    without_checksums: bool,
    files_checked: usize,
    /// The files are encrypted and audited as stored: what the manifest records of their
    /// contents (sizes, digests, schemas inside) cannot be compared with them.
    sealed: bool,
}

impl<'a> Auditor<'a> {
    fn new(files: &'a dyn BackupFiles, shown: &'a Utf8Path, options: Options) -> Auditor<'a> {
        Auditor {
            files,
            shown,
            present: files.all().map_err(|e| e.to_string()),
            options,
            findings: Vec::new(),
            shard_findings: Vec::new(),
            information: Vec::new(),
            legacy: false,
            without_checksums: false,
            files_checked: 0,
            sealed: false,
        }
    }

    fn push(&mut self, file: &str, kind: Kind, problem: String) {
        self.findings.push(Finding::new(file, kind, problem));
    }

    /// The manifest, or the finding that it is missing or invalid (the parse error kept whole
    /// for [`Audit::manifest_error`]).
    fn read_manifest(&mut self) -> (Option<Manifest>, Option<ManifestError>) {
        match Manifest::read_from(self.files, self.shown) {
            Ok(manifest) => (Some(manifest), None),
            Err(ManifestError::Missing { .. }) => {
                self.push(
                    MANIFEST_FILE,
                    Kind::ManifestMissing,
                    "missing: this is not a complete backup".into(),
                );
                (None, None)
            }
            Err(e) => {
                self.push(MANIFEST_FILE, Kind::ManifestInvalid, manifest_problem(&e));
                (None, Some(e))
            }
        }
    }

    /// A collection without a schema fingerprint makes the backup legacy (pre-2.4.1).
    fn note_missing_fingerprints(&mut self, manifest: &Manifest) {
        for (name, entry) in &manifest.collections {
            if entry.schema.is_none() {
                self.legacy = true;
                self.push(
                    MANIFEST_FILE,
                    Kind::NoFingerprint,
                    format!(
                        "collection `{name}` has no schema fingerprint (a pre-2.4.1 backup): restore cannot create it, only overwrite an existing one"
                    ),
                );
            }
        }
    }

    /// Reads `CHECKSUMS.sha256` and checks every file it lists; the listing, when there is
    /// one that parses.
    fn check_checksums(&mut self, manifest: Option<&Manifest>) -> Option<Listed> {
        match checksums::read_from(self.files, self.shown) {
            Ok(entries) => {
                self.files_checked = entries.len();
                for problem in checksums::check_all_in(self.files, &entries) {
                    let (kind, text) = checksum_problem(&problem);
                    self.push(problem.path(), kind, text);
                }
                Some(entries.into_iter().map(|e| (e.path, e.sha256)).collect())
            }
            Err(ChecksumsError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                self.checksums_absent(manifest);
                None
            }
            Err(ChecksumsError::Io { source, .. }) => {
                self.push(
                    CHECKSUMS_FILE,
                    Kind::Unreadable,
                    format!("cannot be read ({source})"),
                );
                None
            }
            Err(ChecksumsError::Malformed { line, problem, .. }) => {
                self.push(
                    CHECKSUMS_FILE,
                    Kind::ChecksumsMalformed,
                    format!("line {line}: {problem}"),
                );
                None
            }
        }
    }

    /// No `CHECKSUMS.sha256`: expected of the Python scripts' backups (then the backup is
    /// legacy), a sign of tampering in aimem's.
    fn checksums_absent(&mut self, manifest: Option<&Manifest>) {
        match manifest.map(legacy::without_checksums) {
            Some(Ok(())) => {
                self.legacy = true;
                self.without_checksums = true;
                self.push(
                    CHECKSUMS_FILE,
                    Kind::ChecksumsMissing,
                    "absent, as in every backup of the Python scripts: corruption cannot be detected; sizes and snapshot archives were checked".into(),
                );
            }
            Some(Err(reason)) => self.push(
                CHECKSUMS_FILE,
                Kind::ChecksumsMissing,
                format!(
                    "missing, but {reason}: it was removed, so nothing proves the files are the ones backed up"
                ),
            ),
            None => self.push(
                CHECKSUMS_FILE,
                Kind::ChecksumsMissing,
                "missing: the files cannot be checked".into(),
            ),
        }
    }

    /// Every file the manifest names is listed, and every file in the folder is.
    fn check_listing(&mut self, listed: &Listed, manifest: Option<&Manifest>) {
        let mut named = vec![MANIFEST_FILE.to_string()];
        if self.sealed {
            named.push(crate::crypt::CONTENTS_FILE.to_string());
        }
        if let Some(manifest) = manifest {
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
                self.push(
                    &file,
                    Kind::NotListed,
                    format!("named by the manifest but not listed in {CHECKSUMS_FILE}"),
                );
            }
        }
        let present = match &self.present {
            Ok(present) => present.clone(),
            Err(e) => {
                let problem = format!("cannot list the backup's files ({e})");
                self.push(".", Kind::Unreadable, problem);
                Vec::new()
            }
        };
        for file in present {
            if file != CHECKSUMS_FILE && !listed.contains_key(&file) {
                self.push(
                    &file,
                    Kind::Unlisted,
                    format!("present but not listed in {CHECKSUMS_FILE}"),
                );
            }
        }
    }

    /// Each collection: its shards' placement and stray files, then each snapshot file.
    fn check_collections(&mut self, manifest: &Manifest, listed: Option<&Listed>) {
        for (name, entry) in &manifest.collections {
            self.shard_findings
                .extend(shard_audit::placement(name, entry, manifest));
            self.shard_findings.extend(shard_audit::stray_files(
                self.present.as_deref().unwrap_or_default(),
                name,
                entry,
            ));
            self.information
                .extend(shard_audit::records_note(name, entry));
            if let CollectionBackup::Points(record) = &entry.backup
                && let Some(finding) = super::points_audit::rows_against_records(
                    name,
                    record,
                    (entry.records, entry.records_max.unwrap_or(entry.records)),
                )
            {
                self.findings.push(finding);
            }
            for (file, size_bytes, sha256) in snapshot_files(entry) {
                self.check_snapshot_file(name, entry, &file, size_bytes, sha256.as_deref(), listed);
            }
        }
    }

    /// One snapshot file of collection `name`: inside the folder, present, its size and
    /// digests as recorded, the collection's schema digest, and (deep) its archive.
    fn check_snapshot_file(
        &mut self,
        name: &str,
        entry: &CollectionEntry,
        file: &str,
        size_bytes: u64,
        sha256: Option<&str>,
        listed: Option<&Listed>,
    ) {
        // Nothing outside the folder is looked at, not even its size.
        if let Err(problem) = checksums::check_relative(file) {
            self.push(file, Kind::Unreadable, problem);
            return;
        }
        // A missing snapshot is reported by the checksum check when it is listed; a link is
        // not followed (the checksum check reports it).
        let Ok(size) = self.files.size(file) else {
            if listed.is_none_or(|l| !l.contains_key(file)) {
                self.push(
                    file,
                    Kind::Missing,
                    "named by the manifest but missing".into(),
                );
            }
            return;
        };
        if self.sealed {
            // Its size, digest and archive are of the contents, checked once decrypted.
            self.check_schema_digest(name, entry);
            return;
        }
        if size != size_bytes {
            self.push(
                file,
                Kind::SizeMismatch,
                format!("{size} bytes, the manifest says {size_bytes}"),
            );
        }
        self.check_recorded_digest(file, sha256, listed);
        self.check_schema_digest(name, entry);
        if self.options.deep {
            // A listed file that cannot be opened was reported by the checksum check.
            let listed_file = listed.is_some_and(|l| l.contains_key(file));
            self.deep_check_file(name, entry, file, listed_file);
        }
    }

    /// The snapshot digest the manifest records (`sha256`), against the file itself when
    /// there is no `CHECKSUMS.sha256`, else against its line there.
    fn check_recorded_digest(&mut self, file: &str, sha256: Option<&str>, listed: Option<&Listed>) {
        // Without CHECKSUMS.sha256 a digest the manifest records is checked on its own:
        // whatever else is missing, a recorded digest is never taken on trust.
        if listed.is_none()
            && let Some(recorded) = sha256
        {
            match self.files.open(file).and_then(checksums::hash_reader) {
                Ok((actual, _)) if !actual.eq_ignore_ascii_case(recorded) => self.push(
                    file,
                    Kind::Mismatch,
                    format!("SHA-256 is {actual}, the manifest records {recorded}"),
                ),
                Ok(_) => {}
                Err(e) => self.push(file, Kind::Unreadable, format!("cannot be read ({e})")),
            }
        }
        // The manifest records the snapshot's digest too: a CHECKSUMS.sha256 "repaired" to
        // match a changed file no longer agrees with it.
        let checksum_line = listed.and_then(|l| l.get(file));
        if let (Some(recorded), Some(line)) = (sha256, checksum_line) {
            if !recorded.eq_ignore_ascii_case(line) {
                self.push(
                    file,
                    Kind::Mismatch,
                    format!(
                        "the manifest records SHA-256 {recorded}, {CHECKSUMS_FILE} lists {line}"
                    ),
                );
            }
        }
    }

    /// The collection's fingerprint against the digest recorded of it (checked with each of
    /// its snapshot files that is present).
    fn check_schema_digest(&mut self, name: &str, entry: &CollectionEntry) {
        if let (Some(digest), Some(schema)) = (&entry.schema_digest, &entry.schema) {
            let actual = Fingerprint::from_value(schema.clone()).map(|f| f.digest());
            if actual.as_ref().ok() != Some(digest) {
                self.push(
                    MANIFEST_FILE,
                    Kind::SchemaMismatch,
                    format!("the schema of `{name}` does not match its recorded digest {digest}"),
                );
            }
        }
    }

    /// Reads the snapshot's archive: a shard file holds one shard, not a collection, and is
    /// checked as one.
    fn deep_check_file(
        &mut self,
        name: &str,
        entry: &CollectionEntry,
        file: &str,
        listed_file: bool,
    ) {
        if let CollectionBackup::Points(record) = &entry.backup {
            let index = record.files.iter().position(|f| f.file == file);
            if let Some(finding) = index.and_then(|index| {
                super::points_audit::deep_check_points_file(
                    name,
                    record,
                    index,
                    self.files,
                    listed_file,
                )
            }) {
                self.findings.push(finding);
            }
        } else if matches!(entry.backup, CollectionBackup::Shards(_)) {
            if let Some(finding) =
                shard_audit::deep_check_shard(name, entry, self.files, file, listed_file)
            {
                self.shard_findings.push(finding);
            }
        } else if let Some(finding) =
            deep_check(name, self.files, file, entry.schema.as_ref(), listed_file)
        {
            self.findings.push(finding);
        }
    }

    /// The shard findings after the others, the checks only a backup without checksums
    /// needs, and the findings sorted into problems and notices.
    fn finish(
        mut self,
        manifest: Option<&Manifest>,
        manifest_error: Option<ManifestError>,
    ) -> Audit {
        self.findings.append(&mut self.shard_findings);
        if let Some(manifest) = manifest {
            shard_audit::name_shards(&mut self.findings, manifest);
            if self.without_checksums {
                self.check_config_files(manifest);
            }
        }
        // A legacy backup of the Python scripts lacks checksums and fingerprints by design:
        // that is reported, not counted as damage (restore accepts it, with a warning).
        let (notices, findings) = match self.without_checksums {
            true => self
                .findings
                .into_iter()
                .partition(|f| matches!(f.kind, Kind::ChecksumsMissing | Kind::NoFingerprint)),
            false => (Vec::new(), self.findings),
        };
        Audit {
            backup: self.shown.to_owned(),
            legacy: self.legacy,
            notices,
            files_checked: self.files_checked,
            findings,
            information: self.information,
            manifest_error,
            encrypted: manifest.is_some_and(|m| m.encryption.is_some()),
            contents_checked: !self.sealed,
        }
    }

    /// Nothing lists the config files: at least each one named must be there.
    fn check_config_files(&mut self, manifest: &Manifest) {
        for name in &manifest.config_files {
            let file = format!("{CONFIG_DIR}/{name}");
            if self.files.open(&file).is_err() {
                self.push(
                    &file,
                    Kind::Missing,
                    "named by the manifest but missing or unreadable".into(),
                );
            }
        }
    }
}

/// A problem the checksum check found, as a finding's kind and text.
fn checksum_problem(problem: &Problem) -> (Kind, String) {
    match problem {
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
    }
}

/// Compares the schema inside the snapshot with the manifest's fingerprint.
pub(super) fn deep_check(
    collection: &str,
    files: &dyn BackupFiles,
    file: &str,
    schema: Option<&Value>,
    open_problem_reported: bool,
) -> Option<Finding> {
    let finding = |kind, problem| Some(Finding::new(file, kind, problem));
    // Opened inside the backup only: a link or a special file is never read.
    let opened = match files.open(file) {
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

/// The files a collection entry names, with their recorded size and SHA-256: its one
/// `qdrant/<snapshot_file>`, a backup of shards' shard files, or a logical backup's points.
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
        CollectionBackup::Points(points) => points
            .files
            .iter()
            .map(|f| (f.file.clone(), f.size_bytes, Some(f.sha256.clone())))
            .collect(),
    }
}
