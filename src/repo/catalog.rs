//! What a backup root holds: every backup folder with its date and state, newest first.
//!
//! One unreadable folder never hides the others: it is listed as damaged with the reason.
//! Hidden folders other than aimem's staging folders (restore's `.aimem-prerestore-*` among
//! them) are not backups and are left out. Manifests are read one at a time and only their
//! [`Summary`] is kept, so a root of many backups costs one manifest's memory.

use std::time::SystemTime;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::{Found, Kind, LocalRepo, Repo};
use crate::manifest::layout::{STAGING_PREFIX, is_dated};
use crate::manifest::{CollectionBackup, MANIFEST_FILE, Manifest, ManifestError};

/// The state of a folder in the backup root; the snake_case names are part of `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// A complete backup with a schema fingerprint for every collection.
    Ok,
    /// A complete backup without schema fingerprints (written before AI Memory 2.4.1).
    Legacy,
    /// A staging folder left by a backup that did not finish (or one still running).
    Incomplete,
    /// A folder whose manifest is missing or unreadable.
    Damaged,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Legacy => "legacy",
            State::Incomplete => "incomplete",
            State::Damaged => "damaged",
        }
    }

    /// Complete backups (the only ones retention may choose among).
    pub fn is_complete(self) -> bool {
        matches!(self, State::Ok | State::Legacy)
    }
}

/// One folder of the backup root.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub path: Utf8PathBuf,
    pub state: State,
    /// When the backup was taken: the manifest's `backup_date`, else the folder name.
    pub taken: Option<OffsetDateTime>,
    /// What the manifest says, for a folder whose manifest could be read.
    pub summary: Option<Summary>,
    /// Why a folder is damaged (or, for a complete one, why its date is not used).
    pub problem: Option<String>,
    /// A date more than [`FUTURE_ALLOWANCE`] ahead of now: not believed, so `taken` is None.
    pub future_date: Option<OffsetDateTime>,
    /// Total size of the files in the folder.
    pub size_bytes: u64,
    /// The folder's modification time (how old a staging folder is).
    pub modified: Option<SystemTime>,
    /// What the root's listing found: the handle to open or remove it by.
    pub found: Found,
}

/// What a listing shows of one manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub ai_memory_version: String,
    pub qdrant_version: Option<String>,
    /// The collection names, in the manifest's (sorted) order.
    pub collections: Vec<String>,
    /// Total records over all collections.
    pub records: u64,
    /// A cluster backup's peers at backup time and its number of shard files.
    pub cluster: Option<ClusterSummary>,
    /// `snapshot`, `logical`, or `mixed` when its collections differ.
    pub format: &'static str,
    /// What opens it, when its files are encrypted.
    pub encrypted: Option<crate::manifest::KeyKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClusterSummary {
    pub peers: usize,
    pub shards: usize,
}

impl Summary {
    pub fn of(manifest: &Manifest) -> Summary {
        Summary {
            ai_memory_version: manifest.ai_memory_version.clone(),
            qdrant_version: manifest.qdrant_version.clone(),
            collections: manifest.collections.keys().cloned().collect(),
            records: manifest.total_records(),
            format: format_of(manifest),
            encrypted: manifest.encryption.as_ref().map(|e| e.key),
            cluster: manifest.cluster.as_ref().map(|record| ClusterSummary {
                peers: record.peers.len(),
                shards: manifest
                    .collections
                    .values()
                    .map(|c| match &c.backup {
                        CollectionBackup::Shards(cluster) => cluster.shards.len(),
                        CollectionBackup::Snapshot { .. } | CollectionBackup::Points(_) => 0,
                    })
                    .sum(),
            }),
        }
    }
}

/// What a backup holds of its collections: one format, or `mixed`.
fn format_of(manifest: &Manifest) -> &'static str {
    let mut formats = manifest.collections.values().map(|c| c.backup.format());
    let first = formats.next().unwrap_or("snapshot");
    match formats.all(|f| f == first) {
        true => first,
        false => "mixed",
    }
}

/// Every backup and staging folder directly under `root`, newest first.
pub fn scan(root: &Utf8Path) -> std::io::Result<Vec<Listed>> {
    scan_repo(&LocalRepo::new(root))
}

/// Every backup and staging area of `repo`, newest first.
pub fn scan_repo(repo: &dyn Repo) -> std::io::Result<Vec<Listed>> {
    let mut found: Vec<Listed> = repo
        .list()?
        .into_iter()
        .map(|found| match found.name_is_utf8 {
            true => describe(repo, found),
            // Listed (never touched) rather than silently left out.
            false => Listed {
                problem: Some("the folder's name is not valid UTF-8".to_string()),
                ..empty_listing(found)
            },
        })
        .collect();
    found.sort_by(|a, b| b.taken.cmp(&a.taken).then_with(|| b.name.cmp(&a.name)));
    Ok(found)
}

/// A backup folder argument: a path, or `latest` for the newest complete, dated backup under
/// `root` (by the time it was taken, as `list` orders them, not by name: names are local time
/// and go backwards when clocks do). `latest` always means that, whatever is in the current
/// folder: a folder planted there under that name must not be restored instead; `./latest`
/// reaches such a folder.
pub fn resolve_backup(arg: &Utf8Path, root: &Utf8Path) -> Result<Utf8PathBuf, String> {
    if arg.as_str() != "latest" {
        return Ok(arg.to_owned());
    }
    latest(&LocalRepo::new(root)).map(|l| l.path)
}

/// The newest complete, dated backup of `repo` (see [`resolve_backup`]).
pub fn latest(repo: &dyn Repo) -> Result<Listed, String> {
    let root = repo.location();
    let listed = scan_repo(repo).map_err(|e| format!("cannot list the backups in {root}: {e}"))?;
    listed
        .into_iter()
        .find(|l| l.state.is_complete() && l.taken.is_some() && is_dated(&l.name))
        .ok_or_else(|| format!("`latest`: there is no complete backup in {root}"))
}

/// A damaged entry with nothing known about it yet.
fn empty_listing(found: Found) -> Listed {
    Listed {
        name: found.name.clone(),
        path: found.location.clone(),
        state: State::Damaged,
        taken: None,
        summary: None,
        problem: None,
        future_date: None,
        size_bytes: 0,
        modified: None,
        found,
    }
}

fn describe(repo: &dyn Repo, found: Found) -> Listed {
    let name = found.name.clone();
    let mut listed = Listed {
        size_bytes: found.size_bytes,
        modified: found.modified,
        ..empty_listing(found)
    };
    if listed.found.kind == Kind::Staging {
        listed.state = State::Incomplete;
        // A local staging folder's name starts with the prefix; a bucket's incomplete backup
        // has its final name.
        listed.taken = name_time(name.strip_prefix(STAGING_PREFIX).unwrap_or(&name));
        return listed;
    }
    match repo
        .open(&listed.found)
        .map_err(|source| ManifestError::Io {
            path: listed.path.join(MANIFEST_FILE),
            source,
        })
        .and_then(|backup| backup.manifest())
    {
        Ok(manifest) => {
            listed.state = if manifest.is_legacy() {
                State::Legacy
            } else {
                State::Ok
            };
            listed.taken = backup_time(&name, Some(&manifest));
            listed.summary = Some(Summary::of(&manifest));
            distrust_future(&mut listed, OffsetDateTime::now_utc());
        }
        Err(e) => {
            listed.taken = backup_time(&name, None);
            listed.problem = Some(match e {
                ManifestError::Missing { .. } => format!("no {MANIFEST_FILE}"),
                ManifestError::Invalid(invalid) => {
                    format!("unreadable {MANIFEST_FILE}: {}", invalid.message)
                }
                other => other.to_string(),
            });
        }
    }
    listed
}

/// How far ahead of this machine's clock a backup's date may be and still be believed: clocks
/// of machines differ, and a folder name (local time, read as UTC) can be up to 14 hours ahead.
/// A backup dated later than that was not taken yet: its date is a mistake or a lie.
pub const FUTURE_ALLOWANCE: time::Duration = time::Duration::days(1);

/// A backup dated beyond [`FUTURE_ALLOWANCE`] counts as undated: it is never the newest (for
/// `latest`, or for retention measuring from the newest), and retention never deletes it
/// (undated backups are kept). Its date is kept in `future_date`, for a warning.
fn distrust_future(listed: &mut Listed, now: OffsetDateTime) {
    let Some(taken) = listed.taken else { return };
    if taken <= now + FUTURE_ALLOWANCE {
        return;
    }
    listed.taken = None;
    listed.future_date = Some(taken);
    let shown = taken.format(&Rfc3339).unwrap_or_else(|_| taken.to_string());
    listed.problem = Some(format!(
        "dated {shown}, in the future: its date is not used (not `latest`, not counted by prune)"
    ));
}

/// When a backup was taken: `backup_date` from its manifest (RFC 3339, or ISO 8601 without an
/// offset, read as UTC), else the `YYYY-MM-DD_HHMMSS` at the start of its folder name.
pub fn backup_time(name: &str, manifest: Option<&Manifest>) -> Option<OffsetDateTime> {
    let from_manifest = manifest.and_then(|m| {
        OffsetDateTime::parse(&m.backup_date, &Rfc3339)
            .ok()
            .or_else(|| {
                let naive = format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
                );
                PrimitiveDateTime::parse(&m.backup_date, &naive)
                    .ok()
                    .map(PrimitiveDateTime::assume_utc)
            })
    });
    from_manifest.or_else(|| name_time(name))
}

/// The time in a folder name `YYYY-MM-DD_HHMMSS[...]`. Folder names carry no offset; read as
/// UTC so that the calendar day in the name stays the day used for retention.
fn name_time(name: &str) -> Option<OffsetDateTime> {
    let stamp = name.get(..17)?;
    let format = format_description!("[year]-[month]-[day]_[hour][minute][second]");
    PrimitiveDateTime::parse(stamp, &format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_come_from_the_manifest_then_the_name() {
        let t = name_time("2026-02-03_143052-2").unwrap();
        assert_eq!(t.to_string(), "2026-02-03 14:30:52.0 +00:00:00");
        assert!(name_time("notes").is_none());
        let text = r#"{"backup_date": "2026-02-04T01:02:03.123456+02:00", "collections": {}}"#;
        let m = Manifest::parse(Utf8Path::new("m"), text.to_string()).unwrap();
        let t = backup_time("2026-02-03_143052", Some(&m)).unwrap();
        assert_eq!(t.offset().whole_hours(), 2);
        assert_eq!(t.day(), 4);
        let text = r#"{"backup_date": "2026-02-05T01:02:03.5", "collections": {}}"#;
        let m = Manifest::parse(Utf8Path::new("m"), text.to_string()).unwrap();
        assert_eq!(backup_time("x", Some(&m)).unwrap().day(), 5);
        let text = r#"{"backup_date": "yesterday", "collections": {}}"#;
        let m = Manifest::parse(Utf8Path::new("m"), text.to_string()).unwrap();
        assert_eq!(backup_time("2026-02-03_143052", Some(&m)).unwrap().day(), 3);
    }

    #[test]
    fn latest_is_the_newest_complete_dated_backup_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        assert!(
            resolve_backup(Utf8Path::new("latest"), root)
                .unwrap_err()
                .contains("no complete backup")
        );
        let manifest = |date: &str| format!(r#"{{"backup_date": "{date}", "collections": {{}}}}"#);
        // Clocks went back an hour: the later name holds the earlier backup.
        for (name, date) in [
            ("2026-10-25_024500", "2026-10-25T02:45:00.000000+02:00"),
            ("2026-10-25_021500", "2026-10-25T02:15:00.000000+01:00"),
            ("pre-upgrade", "2027-01-01T00:00:00.000000+00:00"),
        ] {
            std::fs::create_dir(root.join(name)).unwrap();
            std::fs::write(root.join(name).join("manifest.json"), manifest(date)).unwrap();
        }
        std::fs::create_dir(root.join(".aimem-staging-2027-01-02_000000-1")).unwrap();
        assert_eq!(
            resolve_backup(Utf8Path::new("latest"), root).unwrap(),
            root.join("2026-10-25_021500")
        );
        assert_eq!(
            resolve_backup(Utf8Path::new("some/dir"), root).unwrap(),
            Utf8PathBuf::from("some/dir")
        );
    }

    #[test]
    fn a_backup_dated_in_the_future_is_never_latest() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let manifest = |date: &str| format!(r#"{{"backup_date": "{date}", "collections": {{}}}}"#);
        for (name, date) in [
            ("2026-10-25_021500", "2026-10-25T02:15:00.000000+01:00"),
            ("2099-01-01_000000", "2099-01-01T00:00:00.000000+00:00"),
            // A plausible name does not make a future date believable.
            ("2026-10-26_000000", "2098-01-01T00:00:00.000000+00:00"),
        ] {
            std::fs::create_dir(root.join(name)).unwrap();
            std::fs::write(root.join(name).join("manifest.json"), manifest(date)).unwrap();
        }
        assert_eq!(
            resolve_backup(Utf8Path::new("latest"), root).unwrap(),
            root.join("2026-10-25_021500")
        );
        let listed = scan(root).unwrap();
        let future: Vec<&str> = listed
            .iter()
            .filter(|l| l.future_date.is_some())
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(future.len(), 2);
        assert!(
            listed
                .iter()
                .all(|l| l.future_date.is_none() || l.taken.is_none())
        );
        assert_eq!(listed[0].name, "2026-10-25_021500");
    }

    #[test]
    fn scan_classifies_and_sorts_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let write = |name: &str, manifest: Option<&str>| {
            std::fs::create_dir(root.join(name)).unwrap();
            if let Some(text) = manifest {
                std::fs::write(root.join(name).join(MANIFEST_FILE), text).unwrap();
            }
        };
        let good = r#"{"backup_date": "2026-02-03T10:00:00+00:00", "collections": {"c": {"name": "c", "records": 1, "snapshot_file": "c.snapshot", "size_bytes": 1, "schema": {"params": {}}}}}"#;
        let legacy = r#"{"backup_date": "2026-02-02T10:00:00+00:00", "collections": {"c": {"name": "c", "records": 1, "snapshot_file": "c.snapshot", "size_bytes": 1}}}"#;
        write("2026-02-03_100000", Some(good));
        write("2026-02-02_100000", Some(legacy));
        write("2026-02-01_100000", Some("{ broken"));
        write(".aimem-staging-2026-02-04_100000-77", None);
        write(".aimem-prerestore-xyz", None);
        std::fs::write(root.join("stray.txt"), "x").unwrap();
        let listed = scan(root).unwrap();
        let got: Vec<(&str, State)> = listed.iter().map(|l| (l.name.as_str(), l.state)).collect();
        assert_eq!(
            got,
            [
                (".aimem-staging-2026-02-04_100000-77", State::Incomplete),
                ("2026-02-03_100000", State::Ok),
                ("2026-02-02_100000", State::Legacy),
                ("2026-02-01_100000", State::Damaged),
            ]
        );
        assert!(listed[3].problem.as_ref().unwrap().contains("unreadable"));
    }
}
