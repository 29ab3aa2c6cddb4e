//! The backup folder's own files: `manifest.json`, `CHECKSUMS.sha256` and the folder layout.
//!
//! Offline only: nothing here talks to a network or a terminal.

pub mod audit;
pub mod checksums;
pub mod cluster;
pub mod confined;
pub mod files;
pub mod layout;
pub mod legacy;
pub mod points;
pub mod points_audit;
pub mod retention;
pub mod shard_audit;
pub mod snapshot_archive;

use std::collections::BTreeMap;
use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};
use miette::{
    Diagnostic, MietteError, MietteSpanContents, NamedSource, SourceCode, SourceSpan, SpanContents,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// The manifest's file name inside a backup folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// `manifest.json`: what a backup holds, as plain data. [`Manifest::parse`] reads it (through
/// `RawManifest`, the file as spelled) and [`Manifest::to_json`] writes it.
///
/// The field names and meanings are the Python scripts' (so both tools read each other's
/// backups); the `Option` fields after them are what aimem adds. Fields aimem does not know
/// are skipped unread: a manifest is never rewritten, and a crafted one must not cost memory
/// for what nothing uses. The open-ended parts (schemas, runtime flags) are built within one
/// budget for the whole file ([`MANIFEST_BUDGET`]), every list is bounded while it is read.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Manifest {
    /// When the backup was taken, RFC 3339 with the local offset.
    pub backup_date: String,
    /// `unknown` when absent.
    pub ai_memory_version: String,
    pub qdrant_host: String,
    pub qdrant_port: u16,
    pub collections: BTreeMap<String, CollectionEntry>,
    /// Paths under `config/`, relative to it.
    pub config_files: Vec<String>,
    pub includes_logs: bool,
    /// Feature flags at backup time; diagnostic only.
    pub runtime_flags: BTreeMap<String, Value>,
    /// The aimem version that wrote this manifest (absent: the Python scripts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aimem_version: Option<String>,
    /// The Qdrant server version the snapshots came from (`GET /`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qdrant_version: Option<String>,
    /// Cluster backups only: the peers at backup time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<cluster::ClusterRecord>,
    /// Encrypted backups only: how their files are encrypted (see `crate::crypt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

/// How an encrypted backup's files are encrypted: every file but `manifest.json` and
/// `CHECKSUMS.sha256` is an age file. A scheme aimem does not know makes the manifest invalid,
/// so no older aimem takes such a backup for plain files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    pub scheme: Scheme,
    /// What opens it.
    pub key: KeyKind,
}

impl Encryption {
    pub fn age(key: KeyKind) -> Encryption {
        Encryption {
            scheme: Scheme::Age,
            key,
        }
    }
}

/// The encryption format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Scheme {
    /// age v1 (age-encryption.org/v1).
    #[serde(rename = "age")]
    Age,
}

/// What kind of key opens an encrypted backup.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// A passphrase (age's scrypt recipient).
    Passphrase,
    /// X25519 identities (age's `age1…` recipients).
    Recipients,
}

impl KeyKind {
    /// As `list` and messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            KeyKind::Passphrase => "a passphrase",
            KeyKind::Recipients => "age recipients",
        }
    }
}

/// One backed-up collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionEntry {
    pub name: String,
    /// Exact point count at backup time.
    pub records: u64,
    /// Set when the collection kept changing while it was snapshotted: the snapshot holds
    /// between `records` and this many points (aimem).
    pub records_max: Option<u64>,
    /// What the collection's backup is, decided once when the manifest is read.
    pub backup: CollectionBackup,
    pub size_bytes: u64,
    /// The schema fingerprint; absent in legacy (pre-2.4.1) manifests.
    pub schema: Option<Value>,
    /// SHA-256 of the snapshot file (aimem); absent for shards, which each record their own.
    pub sha256: Option<String>,
    /// `sha256:<hex>` of the canonical fingerprint (aimem).
    pub schema_digest: Option<String>,
}

/// What a collection's backup is. Each form is spelled by its own field of the entry
/// (`snapshot_file`, `cluster`): read side by side (`RawEntry`), checked to come alone and
/// decided once (`From<RawEntry>`), written back in place (`EntryFields`). A new form is a
/// variant here and its field in those three places; the compiler names every match that
/// must learn it.
#[derive(Debug, Clone, PartialEq)]
pub enum CollectionBackup {
    /// One Qdrant snapshot file, `qdrant/<file>` (`snapshot_file`): a single node's backup,
    /// aimem's or the Python scripts'.
    Snapshot { file: String },
    /// A cluster backup's shard files and the collection's shard layout (`cluster`).
    Shards(cluster::CollectionCluster),
    /// A logical backup: the collection's points in Parquet files and its definition
    /// (`points`, see [`points`]).
    Points(points::PointsRecord),
}

impl CollectionBackup {
    /// `snapshot` or `logical`: the backup format, as `list` and `--json` name it.
    pub fn format(&self) -> &'static str {
        match self {
            CollectionBackup::Snapshot { .. } | CollectionBackup::Shards(_) => "snapshot",
            CollectionBackup::Points(_) => "logical",
        }
    }
}

/// `manifest.json` as spelled, before each entry's backup is decided: [`Manifest::parse`]
/// checks it as read (so an entry with both a snapshot file and shards is an inconsistency
/// like any other) and only then makes it a [`Manifest`]. The fields are the manifest's.
#[derive(Deserialize)]
#[serde(rename = "Manifest")]
struct RawManifest {
    backup_date: String,
    #[serde(default = "unknown")]
    ai_memory_version: String,
    #[serde(default)]
    qdrant_host: String,
    #[serde(default)]
    qdrant_port: u16,
    #[serde(deserialize_with = "collections")]
    collections: BTreeMap<String, RawEntry>,
    #[serde(
        default,
        deserialize_with = "crate::json::at_most::<_, _, MAX_CONFIG_FILES>"
    )]
    config_files: Vec<String>,
    #[serde(default)]
    includes_logs: bool,
    #[serde(default, deserialize_with = "crate::json::bounded_object")]
    runtime_flags: BTreeMap<String, Value>,
    #[serde(default)]
    aimem_version: Option<String>,
    #[serde(default)]
    qdrant_version: Option<String>,
    #[serde(default)]
    cluster: Option<cluster::ClusterRecord>,
    #[serde(default)]
    encryption: Option<Encryption>,
}

/// A collection entry as spelled: a snapshot's `snapshot_file` (empty when absent) and a
/// cluster's `cluster` record side by side.
#[derive(Deserialize)]
#[serde(rename = "CollectionEntry")]
struct RawEntry {
    name: String,
    records: u64,
    #[serde(default)]
    records_max: Option<u64>,
    #[serde(default)]
    snapshot_file: String,
    size_bytes: u64,
    #[serde(default, deserialize_with = "crate::json::bounded_option")]
    schema: Option<Value>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    schema_digest: Option<String>,
    #[serde(default)]
    cluster: Option<cluster::CollectionCluster>,
    #[serde(default)]
    points: Option<points::PointsRecord>,
}

/// A collection entry as written, in the order aimem has always written it: `snapshot_file`
/// for a snapshot, the `cluster` record last for shards.
#[derive(Serialize)]
struct EntryFields<'a> {
    name: &'a str,
    records: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    records_max: Option<u64>,
    #[serde(skip_serializing_if = "str::is_empty")]
    snapshot_file: &'a str,
    size_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_digest: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<&'a cluster::CollectionCluster>,
    #[serde(skip_serializing_if = "Option::is_none")]
    points: Option<&'a points::PointsRecord>,
}

impl Serialize for CollectionEntry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (snapshot_file, cluster, points) = match &self.backup {
            CollectionBackup::Snapshot { file } => (file.as_str(), None, None),
            CollectionBackup::Shards(cluster) => ("", Some(cluster), None),
            CollectionBackup::Points(points) => ("", None, Some(points)),
        };
        EntryFields {
            name: &self.name,
            records: self.records,
            records_max: self.records_max,
            snapshot_file,
            size_bytes: self.size_bytes,
            schema: self.schema.as_ref(),
            sha256: self.sha256.as_deref(),
            schema_digest: self.schema_digest.as_deref(),
            cluster,
            points,
        }
        .serialize(serializer)
    }
}

impl From<RawEntry> for CollectionEntry {
    /// Once checked ([`RawManifest::inconsistency`]): an entry with a `cluster` record has no
    /// snapshot file.
    fn from(raw: RawEntry) -> CollectionEntry {
        let backup = match (raw.cluster, raw.points) {
            (Some(cluster), _) => CollectionBackup::Shards(cluster),
            (None, Some(points)) => CollectionBackup::Points(points),
            (None, None) => CollectionBackup::Snapshot {
                file: raw.snapshot_file,
            },
        };
        CollectionEntry {
            name: raw.name,
            records: raw.records,
            records_max: raw.records_max,
            backup,
            size_bytes: raw.size_bytes,
            schema: raw.schema,
            sha256: raw.sha256,
            schema_digest: raw.schema_digest,
        }
    }
}

impl From<RawManifest> for Manifest {
    fn from(raw: RawManifest) -> Manifest {
        Manifest {
            backup_date: raw.backup_date,
            ai_memory_version: raw.ai_memory_version,
            qdrant_host: raw.qdrant_host,
            qdrant_port: raw.qdrant_port,
            collections: raw
                .collections
                .into_iter()
                .map(|(key, entry)| (key, entry.into()))
                .collect(),
            config_files: raw.config_files,
            includes_logs: raw.includes_logs,
            runtime_flags: raw.runtime_flags,
            aimem_version: raw.aimem_version,
            qdrant_version: raw.qdrant_version,
            cluster: raw.cluster,
            encryption: raw.encryption,
        }
    }
}

fn unknown() -> String {
    "unknown".to_string()
}

#[derive(Debug, Error, Diagnostic)]
pub enum ManifestError {
    #[error("{path} does not exist")]
    #[diagnostic(
        code(aimem::manifest::missing),
        help("Is this a backup folder? It should hold manifest.json and CHECKSUMS.sha256.")
    )]
    Missing { path: Utf8PathBuf },

    #[error("cannot read {path}: {source}")]
    #[diagnostic(code(aimem::manifest::io))]
    Io {
        path: Utf8PathBuf,
        source: std::io::Error,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(Box<InvalidManifest>),

    #[error(transparent)]
    #[diagnostic(transparent)]
    UnsafeName(Box<UnsafeManifestName>),

    /// Two entries that would restore into one collection or share one snapshot file: the
    /// second would overwrite what the first restored, and its pre-restore copy the first's.
    #[error("{path}: {detail}")]
    #[diagnostic(
        code(aimem::manifest::inconsistent),
        help(
            "aimem and the Python scripts name each entry after its collection and give each its own \
             snapshot file, so this manifest was altered. Use another backup."
        )
    )]
    Inconsistent { path: Utf8PathBuf, detail: String },

    /// Larger than any manifest aimem or the Python scripts write: refused unread.
    #[error("{path} is {size} bytes, larger than the {} MiB a manifest may be", MAX_MANIFEST_BYTES >> 20)]
    #[diagnostic(
        code(aimem::manifest::too_large),
        help(
            "A real manifest is a few KiB per collection, so this one was altered or is not a \
             backup's. Use another backup."
        )
    )]
    TooLarge { path: Utf8PathBuf, size: u64 },
}

/// Manifest text that [`Manifest::parse`] reads back (made by [`Manifest::checked_json`]).
#[derive(Clone)]
pub struct CheckedManifest(String);

impl std::fmt::Debug for CheckedManifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckedManifest({} bytes)", self.0.len())
    }
}

impl CheckedManifest {
    /// The text to write.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why aimem could not read back a manifest it was about to write.
#[derive(Debug, Error)]
#[error("{reason}")]
pub struct Unreadable {
    pub reason: String,
}

/// A manifest naming a collection or file that cannot be used as a path component
/// (`../../x`, a separator, a control character…): refused before anything else happens.
#[derive(Debug, Error, Diagnostic)]
#[error("{path}: {entry} = {} is not a safe name: {}", crate::names::shown(&.problem.name), .problem.problem)]
#[diagnostic(
    code(aimem::manifest::unsafe_name),
    help(
        "aimem and Qdrant never write such a name, so this manifest was altered or made elsewhere, and \
         aimem will not use it as a file or folder name. Use another backup; if you trust this one, \
         rename the marked entry (and its file under qdrant/ or config/) by hand."
    )
)]
pub struct UnsafeManifestName {
    pub path: Utf8PathBuf,
    /// Which entry, e.g. ``collections.`x`.snapshot_file`` (escaped).
    pub entry: String,
    pub problem: crate::names::UnsafeName,
    #[source_code]
    pub source_code: NamedSource<Excerpt>,
    #[label("this name")]
    pub span: SourceSpan,
}

/// A manifest that is not valid JSON or not a manifest, with the bad spot marked.
#[derive(Debug, Error, Diagnostic)]
#[error("{path} is not a valid manifest: {message}")]
#[diagnostic(
    code(aimem::manifest::invalid),
    help(
        "The backup's manifest is damaged. Use another backup, or repair the marked spot by hand."
    )
)]
pub struct InvalidManifest {
    pub path: Utf8PathBuf,
    pub message: String,
    #[source_code]
    pub source_code: NamedSource<Excerpt>,
    #[label("{message}")]
    pub span: SourceSpan,
    /// Where the error is in the whole file, 1-based (serde_json's position).
    pub line: usize,
    pub column: usize,
}

/// `manifest.json` is read whole, up to this size: aimem's are a few KiB per collection (a
/// cluster's a few hundred bytes more per shard).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// What the schemas and runtime flags of one manifest may cost together once parsed (an
/// estimate, see [`crate::json`]): a real schema costs 5 to 30 KiB (AI Memory's about 25 KiB),
/// so this holds well over [`MAX_BACKUP_COLLECTIONS`] of them, and with the text itself stays
/// under the 64 MiB aimem allows any crafted input.
pub const MANIFEST_BUDGET: usize = 40 * 1024 * 1024;

/// The most collections one backup takes: each is about 2.5 KiB of manifest (a cluster's a few
/// hundred bytes more per shard) and up to about 30 KiB of [`MANIFEST_BUDGET`], so a thousand
/// fit both bounds with room to spare. Whatever the count, `backup` writes a manifest only
/// once it is known to read back (see [`Manifest::checked_json`]).
pub const MAX_BACKUP_COLLECTIONS: usize = 1_000;

/// The most collections one manifest may list.
pub const MAX_COLLECTIONS: usize = 10_000;

/// The most config files one manifest may list (aimem backs up four).
pub const MAX_CONFIG_FILES: usize = 10_000;

/// `collections`, at most [`MAX_COLLECTIONS`] of them: the entry after the last one allowed
/// is an error before it is read.
fn collections<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, RawEntry>, D::Error> {
    struct Entries;
    impl<'de> serde::de::Visitor<'de> for Entries {
        type Value = BTreeMap<String, RawEntry>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of collections")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut entries = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if entries.len() == MAX_COLLECTIONS {
                    return Err(serde::de::Error::custom(format!(
                        "more than {MAX_COLLECTIONS} collections, more than aimem accepts"
                    )));
                }
                let entry = map.next_value()?;
                entries.insert(key, entry);
            }
            Ok(entries)
        }
    }
    deserializer.deserialize_map(Entries)
}

/// A line longer than this is not shown whole in a diagnostic, only a window around the error:
/// the renderer pads to the column (it panics past 65,535) and a person cannot read more.
const MAX_SHOWN_LINE: usize = 400;

impl Manifest {
    /// Reads `manifest.json` from a backup folder.
    pub fn read(backup_dir: &Utf8Path) -> Result<Manifest, ManifestError> {
        Manifest::read_from(&files::Folder(backup_dir), backup_dir)
    }

    /// Reads `manifest.json` of the backup whose files are `files`, shown as `shown`.
    pub fn read_from(
        files: &dyn files::BackupFiles,
        shown: &Utf8Path,
    ) -> Result<Manifest, ManifestError> {
        let path = shown.join(MANIFEST_FILE);
        let file = match files.open(MANIFEST_FILE) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ManifestError::Missing { path });
            }
            Err(source) => return Err(ManifestError::Io { path, source }),
        };
        let size = file.len();
        if size > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge { path, size });
        }
        let text =
            confined::read_text(file, MAX_MANIFEST_BYTES, MANIFEST_FILE).map_err(|source| {
                ManifestError::Io {
                    path: path.clone(),
                    source,
                }
            })?;
        Manifest::parse(&path, text)
    }

    /// Parses manifest text; errors point at the offending line and column.
    /// Every name that becomes a path is checked here, so no manifest with an unsafe one gets
    /// past reading.
    pub fn parse(path: &Utf8Path, text: String) -> Result<Manifest, ManifestError> {
        let budget = crate::json::Budget::new(MANIFEST_BUDGET);
        let parsed = crate::json::within(&budget, || serde_json::from_str::<RawManifest>(&text));
        let manifest: RawManifest = parsed.map_err(|e| {
            let offset = offset_of(&text, e.line(), e.column());
            let message = strip_position(&e.to_string());
            let (excerpt, offset) = Excerpt::around(text.clone(), offset);
            ManifestError::Invalid(Box::new(InvalidManifest {
                path: path.to_owned(),
                message,
                source_code: NamedSource::new(path.as_str(), excerpt),
                span: SourceSpan::from((offset, 1)),
                line: e.line(),
                column: e.column(),
            }))
        })?;
        match manifest.unsafe_name() {
            None => match manifest.inconsistency() {
                None => Ok(manifest.into()),
                Some(detail) => Err(ManifestError::Inconsistent {
                    path: path.to_owned(),
                    detail,
                }),
            },
            Some((entry, problem)) => {
                // A minified manifest is one long line: show an excerpt, as for syntax errors.
                let span = span_of(&text, &problem.name);
                let (excerpt, offset) = Excerpt::around(text, span.offset());
                Err(ManifestError::UnsafeName(Box::new(UnsafeManifestName {
                    path: path.to_owned(),
                    entry,
                    problem,
                    span: SourceSpan::from((
                        offset,
                        span.len().min(excerpt.text().len().saturating_sub(offset)),
                    )),
                    source_code: NamedSource::new(path.as_str(), excerpt),
                })))
            }
        }
    }

    /// Pretty JSON with a final newline, as written to disk.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The manifest as written, once it is known that `verify`, `restore` and `list` will read
    /// it back: no larger than [`MAX_MANIFEST_BYTES`] and within every bound of
    /// [`Manifest::parse`]. A backup whose manifest aimem could not read is no backup.
    pub fn checked_json(&self) -> Result<CheckedManifest, Unreadable> {
        let text = self.to_json();
        if text.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(Unreadable {
                reason: format!(
                    "the manifest would be {} bytes, more than the {} MiB aimem reads",
                    text.len(),
                    MAX_MANIFEST_BYTES >> 20
                ),
            });
        }
        match Manifest::parse(Utf8Path::new(MANIFEST_FILE), text.clone()) {
            Ok(_) => Ok(CheckedManifest(text)),
            Err(ManifestError::Invalid(invalid)) => Err(Unreadable {
                reason: format!(
                    "aimem could not read the manifest back: {}",
                    invalid.message
                ),
            }),
            Err(other) => Err(Unreadable {
                reason: format!("aimem could not read the manifest back: {other}"),
            }),
        }
    }

    /// Writes a checked manifest into `dir` (a new file, owner-only) and syncs it.
    pub fn write(dir: &Utf8Path, manifest: &CheckedManifest) -> std::io::Result<()> {
        let mut file = layout::private_file(&dir.join(MANIFEST_FILE))?;
        file.write_all(manifest.0.as_bytes())?;
        file.sync_all()
    }

    /// Total records over all collections.
    pub fn total_records(&self) -> u64 {
        self.collections.values().map(|c| c.records).sum()
    }

    /// True when any collection lacks a schema fingerprint (a pre-2.4.1 backup).
    pub fn is_legacy(&self) -> bool {
        self.collections.values().any(|c| c.schema.is_none())
    }
}

impl RawManifest {
    /// Entries whose name differs from their key, whose cluster record is unsound or comes
    /// with a snapshot file, or that share a snapshot file (checked after the names are known
    /// to be safe): what must hold before each entry's backup is decided.
    fn inconsistency(&self) -> Option<String> {
        use crate::names::shown;
        let mut files = std::collections::BTreeSet::new();
        for (key, entry) in &self.collections {
            if entry.name != *key {
                return Some(format!(
                    "collections.{} is named {}: an entry's name must be its key",
                    shown(key),
                    shown(&entry.name)
                ));
            }
            if let Some(problem) = entry.cluster_problem() {
                return Some(problem);
            }
            if let Some(problem) = entry.points_problem() {
                return Some(problem);
            }
            if entry.cluster.is_some() || entry.points.is_some() {
                continue;
            }
            if !files.insert(entry.snapshot_file.as_str()) {
                return Some(format!(
                    "collections.{} uses snapshot file {}, which another entry uses too",
                    shown(key),
                    shown(&entry.snapshot_file)
                ));
            }
        }
        if let Some(problem) = self.cluster_problem() {
            return Some(problem);
        }
        None
    }

    /// The first name that would become a path and is not a safe one: which entry, and why.
    fn unsafe_name(&self) -> Option<(String, crate::names::UnsafeName)> {
        use crate::names::{SafeName, check_relative, shown};
        for (key, entry) in &self.collections {
            let at = format!("collections.{}", shown(key));
            if let Err(e) = SafeName::new(key) {
                return Some(("a key of collections".to_string(), e));
            }
            if let Err(e) = SafeName::new(&entry.name) {
                return Some((format!("{at}.name"), e));
            }
            if entry.cluster.is_some() || entry.points.is_some() {
                continue;
            }
            if let Err(e) = SafeName::new(&entry.snapshot_file) {
                return Some((format!("{at}.snapshot_file"), e));
            }
        }
        for (i, file) in self.config_files.iter().enumerate() {
            if let Err(e) = check_relative(file) {
                return Some((format!("config_files[{i}]"), e));
            }
        }
        None
    }
}

/// Byte offset of a 1-based line and column (serde_json's positions).
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let mut offset = (line_start + column.saturating_sub(1)).min(text.len().saturating_sub(1));
    // serde_json counts bytes: at the end of a truncated file the position can fall inside a
    // multi-byte character, and a label must start on a character.
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Where `name` appears as a JSON string in `text` (the start of the file if it cannot be found).
fn span_of(text: &str, name: &str) -> SourceSpan {
    let quoted = serde_json::to_string(name).unwrap_or_default();
    match text.find(&quoted) {
        Some(at) => SourceSpan::from((at, quoted.len())),
        None => SourceSpan::from((0, 0)),
    }
}

/// The part of a manifest a diagnostic shows: the whole text when the error's line is short,
/// else only a part of that line around the error, reported at its real line and column.
#[derive(Debug)]
pub struct Excerpt {
    text: String,
    /// 0-based line and column (in bytes) of the excerpt's start in the whole text.
    first_line: usize,
    first_column: usize,
}

impl Excerpt {
    /// The excerpt for an error at `offset`, and the offset moved into it.
    fn around(text: String, offset: usize) -> (Excerpt, usize) {
        let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
        // The renderer shows a line of context on each side: those must be short too.
        let before = &text[..line_start.saturating_sub(1)];
        let previous_len = line_start.saturating_sub(1) - before.rfind('\n').map_or(0, |i| i + 1);
        let after = text.get(line_end + 1..).unwrap_or("");
        let next_len = after.find('\n').unwrap_or(after.len());
        let longest = (line_end - line_start).max(previous_len).max(next_len);
        if longest <= MAX_SHOWN_LINE {
            let whole = Excerpt {
                text,
                first_line: 0,
                first_column: 0,
            };
            return (whole, offset);
        }
        let half = MAX_SHOWN_LINE / 2;
        let mut start = offset.saturating_sub(half).max(line_start);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        // The marked character itself stays inside, even at the end of a line.
        let mut end = (offset + half)
            .min(line_end)
            .max((offset + 1).min(text.len()));
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let excerpt = Excerpt {
            first_line: text[..line_start].matches('\n').count(),
            first_column: start - line_start,
            text: text[start..end].to_string(),
        };
        (excerpt, offset - start)
    }

    /// The text shown.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        let column = if inner.line() == 0 {
            inner.column() + self.first_column
        } else {
            inner.column()
        };
        Ok(Box::new(MietteSpanContents::new(
            inner.data(),
            *inner.span(),
            inner.line() + self.first_line,
            column,
            inner.line_count(),
        )))
    }
}

/// serde_json appends " at line L column C": the label shows the spot already.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The guide's example manifest (also the seed of the fuzz properties).
    pub(crate) const GUIDE_EXAMPLE: &str = r#"{
  "backup_date": "2026-02-03T14:30:52.123456+00:00",
  "ai_memory_version": "2.4.1",
  "qdrant_host": "localhost",
  "qdrant_port": 26350,
  "collections": {
    "discussions": {
      "name": "discussions",
      "records": 42,
      "snapshot_file": "discussions.snapshot",
      "size_bytes": 1048576,
      "schema": {
        "params": { "vectors": {}, "sparse_vectors": {}, "shard_number": 1, "on_disk_payload": true },
        "hnsw_config": {},
        "quantization_config": {},
        "payload_schema": {}
      }
    }
  },
  "config_files": ["settings.json", ".env", "docker/.env", "docker/.env.secrets"],
  "includes_logs": false,
  "runtime_flags": { "COLBERT_RERANKING_ENABLED": "true", "HYBRID_SEARCH_ENABLED": "false", "BM25_SPARSE_ENABLED": "true" },
  "python_only_field": [1, 2]
}"#;

    #[test]
    fn reads_the_python_manifest_and_skips_unknown_fields() {
        let manifest = Manifest::parse(Utf8Path::new("m.json"), GUIDE_EXAMPLE.to_string()).unwrap();
        assert_eq!(manifest.qdrant_port, 26350);
        assert_eq!(manifest.total_records(), 42);
        assert!(!manifest.is_legacy());
        assert!(manifest.aimem_version.is_none());
        let again = Manifest::parse(Utf8Path::new("m.json"), manifest.to_json()).unwrap();
        assert_eq!(again, manifest);
        let written: Value = serde_json::from_str(&manifest.to_json()).unwrap();
        assert!(
            written.get("aimem_version").is_none(),
            "no invented fields for Python backups"
        );
        // Never read, so never kept: a manifest is not rewritten.
        assert!(written.get("python_only_field").is_none());
    }

    /// A single-node and a cluster backup's manifest as aimem writes them.
    const SINGLE_NODE: &str = include_str!("../../tests/fixtures/manifest/single-node.json");
    const CLUSTER: &str = include_str!("../../tests/fixtures/manifest/cluster.json");

    /// What aimem writes reads back and is written again byte for byte: the format of every
    /// backup already taken is the one still written.
    #[test]
    fn a_manifest_aimem_wrote_reads_back_and_is_written_again_byte_for_byte() {
        for text in [SINGLE_NODE, CLUSTER] {
            let manifest = Manifest::parse(Utf8Path::new("m.json"), text.to_string()).unwrap();
            assert_eq!(manifest.to_json(), text);
        }
    }

    /// Each entry's backup is decided when it is read: a `snapshot_file` is a snapshot, a
    /// `cluster` record shards (whatever else the entry spells).
    #[test]
    fn each_entry_says_what_its_backup_is() {
        let single = Manifest::parse(Utf8Path::new("m.json"), SINGLE_NODE.to_string()).unwrap();
        let entry = &single.collections["discussions"];
        assert_eq!(
            entry.backup,
            CollectionBackup::Snapshot {
                file: "discussions.snapshot".into()
            }
        );
        let cluster = Manifest::parse(Utf8Path::new("m.json"), CLUSTER.to_string()).unwrap();
        let CollectionBackup::Shards(tenants) = &cluster.collections["tenants"].backup else {
            panic!("a cluster entry is shards");
        };
        assert_eq!(tenants.sharding_method, "custom");
        assert_eq!(
            tenants.shards[1].shard_key,
            Some(cluster::ShardKey::Number(7))
        );
        assert_eq!(tenants.key_records, [25, 15]);

        // The Python scripts' manifest, and one without fingerprints (before 2.4.1).
        let python = Manifest::parse(Utf8Path::new("m.json"), GUIDE_EXAMPLE.to_string()).unwrap();
        assert!(matches!(
            &python.collections["discussions"].backup,
            CollectionBackup::Snapshot { file } if file == "discussions.snapshot"
        ));
        let legacy = GUIDE_EXAMPLE.replace("\"schema\"", "\"old_schema\"");
        let legacy = Manifest::parse(Utf8Path::new("m.json"), legacy).unwrap();
        assert_eq!(
            legacy.collections["discussions"].backup,
            python.collections["discussions"].backup
        );

        // An explicit empty snapshot_file beside the cluster record, an explicit null cluster:
        // read as before, and written as aimem writes them.
        let mut value: Value = serde_json::from_str(CLUSTER).unwrap();
        value["collections"]["tenants"]["snapshot_file"] = "".into();
        let spelled = Manifest::parse(Utf8Path::new("m.json"), value.to_string()).unwrap();
        assert_eq!(spelled.to_json(), CLUSTER);
        let mut value: Value = serde_json::from_str(SINGLE_NODE).unwrap();
        value["collections"]["discussions"]["cluster"] = Value::Null;
        let spelled = Manifest::parse(Utf8Path::new("m.json"), value.to_string()).unwrap();
        assert_eq!(spelled.to_json(), SINGLE_NODE);
    }

    /// An entry spelling both a snapshot file and a cluster record is an inconsistent
    /// manifest (not an unreadable one), and so is a cluster entry without the top-level record.
    #[test]
    fn an_entry_with_both_a_snapshot_file_and_shards_is_inconsistent() {
        let mut value: Value = serde_json::from_str(CLUSTER).unwrap();
        value["collections"]["tenants"]["snapshot_file"] = "tenants.snapshot".into();
        let err = Manifest::parse(Utf8Path::new("m.json"), value.to_string()).unwrap_err();
        let ManifestError::Inconsistent { detail, .. } = err else {
            panic!("wrong error: {err}");
        };
        assert_eq!(
            detail,
            "collections.`tenants` has both a snapshot_file and a cluster record"
        );
        let mut value: Value = serde_json::from_str(CLUSTER).unwrap();
        value.as_object_mut().unwrap().remove("cluster");
        let err = Manifest::parse(Utf8Path::new("m.json"), value.to_string()).unwrap_err();
        assert!(matches!(err, ManifestError::Inconsistent { .. }), "{err}");
    }

    /// A manifest of `count` collections, each with the schema of the fixture collection
    /// `jira-data` (the largest of AI Memory's) plus `extra_indexes` payload indexes.
    fn manifest_of(count: usize, extra_indexes: usize) -> Manifest {
        let fixture: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/qdrant/collections/info-jira-data.json"
        ))
        .unwrap();
        let mut info = fixture["response"]["body"]["result"].clone();
        for i in 0..extra_indexes {
            info["payload_schema"][format!("f{i}")] =
                serde_json::json!({"data_type": "bool", "points": 0});
        }
        let fingerprint = crate::fingerprint::Fingerprint::from_collection_info(&info).unwrap();
        let mut manifest =
            Manifest::parse(Utf8Path::new("m.json"), GUIDE_EXAMPLE.to_string()).unwrap();
        manifest.collections = (0..count)
            .map(|i| {
                let name = format!("collection-{i:05}");
                let entry = CollectionEntry {
                    name: name.clone(),
                    records: 1_000_000,
                    records_max: None,
                    backup: CollectionBackup::Snapshot {
                        file: format!("{name}.snapshot"),
                    },
                    size_bytes: 1 << 30,
                    schema: Some(fingerprint.as_value().clone()),
                    sha256: Some("a".repeat(64)),
                    schema_digest: Some(fingerprint.digest()),
                };
                (name, entry)
            })
            .collect();
        manifest
    }

    #[test]
    fn the_manifest_of_the_most_collections_one_backup_takes_reads_back() {
        let manifest = manifest_of(MAX_BACKUP_COLLECTIONS, 0);
        let checked = manifest
            .checked_json()
            .expect("aimem reads its own manifest");
        let again = Manifest::parse(Utf8Path::new("m.json"), checked.0).unwrap();
        assert_eq!(again.collections.len(), MAX_BACKUP_COLLECTIONS);
    }

    #[test]
    fn a_manifest_aimem_could_not_read_back_is_never_handed_out_for_writing() {
        // Schemas with many payload indexes: within the byte bound, over the parse budget.
        let heavy = manifest_of(MAX_BACKUP_COLLECTIONS, 16);
        assert!((heavy.to_json().len() as u64) < MAX_MANIFEST_BYTES);
        let error = heavy.checked_json().unwrap_err();
        assert!(error.reason.contains("JSON structure"), "{}", error.reason);
        // Over the byte bound.
        let large = manifest_of(MAX_BACKUP_COLLECTIONS * 2, 0);
        let error = large.checked_json().unwrap_err();
        assert!(
            error.reason.contains("more than the 4 MiB"),
            "{}",
            error.reason
        );
    }

    #[test]
    fn a_manifest_without_schema_is_legacy() {
        let legacy = GUIDE_EXAMPLE.replace("\"schema\"", "\"old_schema\"");
        let manifest = Manifest::parse(Utf8Path::new("m.json"), legacy).unwrap();
        assert!(manifest.is_legacy());
    }

    #[test]
    fn broken_json_points_at_the_bad_spot() {
        let broken = GUIDE_EXAMPLE.replace("\"records\": 42,", "\"records\": 42,,");
        let err = Manifest::parse(Utf8Path::new("m.json"), broken.clone()).unwrap_err();
        let ManifestError::Invalid(invalid) = err else {
            panic!("wrong error")
        };
        let InvalidManifest { span, message, .. } = *invalid;
        assert_eq!(&broken[span.offset()..span.offset() + 1], ",", "{message}");
        let line = broken[..span.offset()].lines().count();
        assert_eq!(line, 9);
    }

    #[test]
    fn a_file_cut_after_a_multibyte_character_is_reported_not_a_panic() {
        let text = "{\"backup_date\": \"é".to_string();
        let err = Manifest::parse(Utf8Path::new("m.json"), text.clone()).unwrap_err();
        let ManifestError::Invalid(invalid) = err else {
            panic!("wrong error")
        };
        assert!(text.is_char_boundary(invalid.span.offset()));
    }

    /// miette pads the marker line to the error's column and panics past 65,535: a long line
    /// is shown as an excerpt around the error, at its real position.
    #[test]
    fn an_error_far_along_a_line_renders_an_excerpt() {
        let text = format!(r#"{{"backup_date": "{}", oops}}"#, "é".repeat(40_000));
        let err = Manifest::parse(Utf8Path::new("m.json"), text).unwrap_err();
        let ManifestError::Invalid(invalid) = &err else {
            panic!("wrong error")
        };
        assert_eq!((invalid.line, invalid.column), (1, 80_021));
        assert!(invalid.source_code.inner().text().len() <= MAX_SHOWN_LINE + 4);
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, invalid.as_ref())
            .unwrap();
        assert!(out.contains("m.json:1:80021"), "{out}");
        assert!(out.len() < 4000, "{out}");
    }

    /// The lines shown around the error are bounded too (found by the fuzz tests).
    #[test]
    fn a_long_line_next_to_the_error_is_not_shown_whole() {
        let text = format!("{{\"backup_date\": \"{}\",\n oops}}", "x".repeat(100_000));
        let err = Manifest::parse(Utf8Path::new("m.json"), text).unwrap_err();
        let ManifestError::Invalid(invalid) = &err else {
            panic!("wrong error")
        };
        assert_eq!(invalid.line, 2);
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, invalid.as_ref())
            .unwrap();
        assert!(out.len() < 4000, "{out}");
        assert!(out.contains("m.json:2:2"), "{out}");
    }

    #[test]
    fn every_name_that_becomes_a_path_is_checked_when_read() {
        // (replace, with, the entry named, the string the label marks)
        let cases = [
            (
                r#""discussions": {"#,
                r#""../../../tmp/x": {"#,
                "a key of collections",
                r#""../../../tmp/x""#,
            ),
            (
                r#""name": "discussions""#,
                r#""name": "a/b""#,
                "collections.`discussions`.name",
                r#""a/b""#,
            ),
            (
                r#""snapshot_file": "discussions.snapshot""#,
                r#""snapshot_file": "..""#,
                "collections.`discussions`.snapshot_file",
                r#""..""#,
            ),
            (
                r#""snapshot_file": "discussions.snapshot""#,
                r#""snapshot_file": "x\u001b]0;t\u0007""#,
                "collections.`discussions`.snapshot_file",
                r#""x\u001b]0;t\u0007""#,
            ),
            (
                r#""docker/.env","#,
                r#""docker/../../x","#,
                "config_files[2]",
                r#""docker/../../x""#,
            ),
            (
                r#""docker/.env","#,
                r#""/etc/passwd","#,
                "config_files[2]",
                r#""/etc/passwd""#,
            ),
        ];
        for (from, to, entry, marked) in cases {
            let text = GUIDE_EXAMPLE.replacen(from, to, 1);
            assert_ne!(text, GUIDE_EXAMPLE, "{from}");
            let err = Manifest::parse(Utf8Path::new("m.json"), text.clone()).unwrap_err();
            let ManifestError::UnsafeName(unsafe_name) = err else {
                panic!("{to}: wrong error {err:?}")
            };
            assert_eq!(unsafe_name.entry, entry);
            let message = unsafe_name.to_string();
            assert!(message.contains("is not a safe name"), "{message}");
            assert!(!message.chars().any(char::is_control), "{message:?}");
            let span = unsafe_name.span;
            assert_eq!(&text[span.offset()..span.offset() + span.len()], marked);
        }
    }

    #[test]
    fn entries_must_be_named_by_their_key_and_own_their_snapshot_file() {
        let renamed = GUIDE_EXAMPLE.replace(r#""name": "discussions""#, r#""name": "github""#);
        let err = Manifest::parse(Utf8Path::new("m.json"), renamed).unwrap_err();
        assert!(matches!(err, ManifestError::Inconsistent { .. }), "{err}");
        let mut value: Value = serde_json::from_str(GUIDE_EXAMPLE).unwrap();
        let mut twin = value["collections"]["discussions"].clone();
        twin["name"] = Value::from("twin");
        value["collections"]["twin"] = twin;
        let err = Manifest::parse(Utf8Path::new("m.json"), value.to_string()).unwrap_err();
        assert!(
            err.to_string().contains("which another entry uses too"),
            "{err}"
        );
    }

    #[test]
    fn wrong_types_are_reported_too() {
        let wrong = GUIDE_EXAMPLE.replace("\"records\": 42", "\"records\": \"many\"");
        let err = Manifest::parse(Utf8Path::new("m.json"), wrong).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
    }
}
