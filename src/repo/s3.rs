//! The backup root as a prefix in an S3 bucket (`s3://bucket/prefix`).
//!
//! Object storage has no rename, so a backup is written under its final name and made visible
//! by its last object: `NAME/manifest.json`, written only if absent (`If-None-Match: *`).
//! What a prefix holds decides what it is:
//!
//! - `NAME/manifest.json`: a published backup (complete when the manifest reads);
//! - `NAME/.aimem-run.json` and no manifest: a backup being written, or one a killed run left
//!   (listed as incomplete, like a local staging folder). The run record claims the name
//!   (written only if absent: two runs never share a name), says who writes and since when,
//!   and lists the multipart uploads the run started, so that whoever removes the leftover
//!   also aborts them;
//! - `NAME/.aimem-deleting`: a backup being removed, out of sight. Removal writes this mark,
//!   deletes the manifest, then every other object, the mark last; a removal that stopped is
//!   finished by the next one ([`Repo::finish_removals`]).
//!
//! A name that is not one safe component is listed (as something that cannot be opened) and
//! never turned into a key.

use std::io;
use std::time::SystemTime;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::{Backup, Found, Kind, NewFile, Removed, Repo, Staging};
use crate::manifest::files::{BackupFiles, Opened};
use crate::manifest::{MANIFEST_FILE, Manifest, ManifestError, audit};
use crate::names::SafeName;
use crate::s3::transfer::{self, ObjectReader, ObjectStream, ObjectWriter, OnUploadStart, Version};
use crate::s3::{Listing, S3Client, S3Error, S3Location, io_error};

/// The run record of a backup being written.
pub const RUN_FILE: &str = ".aimem-run.json";
/// The mark of a backup being removed.
pub const DELETING_MARK: &str = ".aimem-deleting";
/// The largest run record read (thousands of uploads).
const MAX_RUN_RECORD: u64 = 1024 * 1024;
/// The most uploads a run record lists at once (each ~180 bytes: well inside the record's
/// bound); an upload leaves the list when it completes.
const MAX_UPLOADS: usize = 4_000;

/// This machine's boot id, empty when it cannot be read.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().chars().take(64).collect())
        .unwrap_or_default()
}

/// A token no other run has: the time, the process and the hasher's random keys.
fn run_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    let high = hasher.finish();
    hasher.write_u64(high);
    format!("{high:016x}{:016x}", hasher.finish())
}

/// A backup root in a bucket.
pub struct S3Repo {
    client: S3Client,
    root: S3Location,
    shown: Utf8PathBuf,
    /// This machine's name, for the run records of the backups it writes.
    host: String,
}

/// What a run that writes a backup says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub host: String,
    /// The kernel's boot id: with the host name it tells this machine, as it runs now, apart
    /// from another with the same name (containers, cloned VMs) or from before a reboot.
    #[serde(default)]
    pub boot: String,
    /// Random, this run's own: the run publishes only while the record still carries it.
    #[serde(default)]
    pub token: String,
    pub pid: u32,
    /// Unix seconds.
    pub started: u64,
    /// Multipart uploads started and not yet completed: (key, upload id).
    #[serde(default)]
    pub uploads: Vec<(String, String)>,
}

/// How long the S3 client waits for a connection, and for each answer.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

impl S3Repo {
    /// The root `url` (`s3://bucket/prefix`), reached with the AWS settings of this process's
    /// environment. A bad URL or setting is an `InvalidInput` error that says what to fix.
    pub fn from_env(url: &str) -> io::Result<S3Repo> {
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        let root = S3Location::parse(url).map_err(|e| invalid(e.to_string()))?;
        let config = crate::s3::S3Config::from_env(&|name| std::env::var(name).ok(), root.bucket())
            .map_err(|e| invalid(e.to_string()))?;
        let client = S3Client::new(&config, root.bucket(), CONNECT_TIMEOUT, REQUEST_TIMEOUT)
            .map_err(io_error)?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().chars().take(255).collect())
            .unwrap_or_default();
        Ok(S3Repo::new(client, root, host))
    }

    /// The backup `name` of this root (listed, with a manifest), open for reading.
    pub fn backup(&self, name: &str) -> io::Result<Box<dyn Backup>> {
        let found = self
            .list()?
            .into_iter()
            .find(|f| f.name == name && f.kind == Kind::Published)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("there is no backup {name} in {}", self.shown),
                )
            })?;
        self.open(&found)
    }

    pub fn new(client: S3Client, root: S3Location, host: String) -> S3Repo {
        let shown = Utf8PathBuf::from(root.to_string());
        S3Repo {
            client,
            root,
            shown,
            host,
        }
    }

    pub fn client(&self) -> &S3Client {
        &self.client
    }

    /// The key of `relative` inside the backup `name` (one safe component, checked).
    fn key(&self, name: &str, relative: &str) -> io::Result<String> {
        let backup = self
            .root
            .child(name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(backup.key(relative))
    }

    /// Every object under the root, grouped by backup name (the first component under the
    /// prefix); objects right under the prefix belong to no backup and are left out.
    fn by_backup(&self) -> io::Result<Vec<(String, Vec<crate::s3::Object>)>> {
        let top = self.root.key_prefix();
        let Listing { objects, .. } = self.client.list(&top, false).map_err(io_error)?;
        let mut groups: std::collections::BTreeMap<String, Vec<crate::s3::Object>> =
            std::collections::BTreeMap::new();
        for object in objects {
            let Some((name, _)) = object.key[top.len()..].split_once('/') else {
                continue;
            };
            groups.entry(name.to_string()).or_default().push(object);
        }
        Ok(groups.into_iter().collect())
    }

    /// The run record of the backup `name`, if it has one that reads.
    pub fn run_record(&self, name: &str) -> io::Result<Option<RunRecord>> {
        let key = self.key(name, RUN_FILE)?;
        match self.client.get_small(&key, MAX_RUN_RECORD) {
            Ok(bytes) => {
                let record: RunRecord = serde_json::from_slice(&bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if record.uploads.len() > MAX_UPLOADS {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{key} lists more than {MAX_UPLOADS} uploads"),
                    ));
                }
                Ok(Some(record))
            }
            Err(S3Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    /// Deletes everything of the backup `name`: the mark that hides it first, its manifest
    /// next, the uploads its run record lists aborted, every other object, the mark last.
    fn delete_backup(&self, name: &str) -> io::Result<()> {
        let mark = self.key(name, DELETING_MARK)?;
        self.client.put(&mark, b"", false).map_err(io_error)?;
        let manifest = self.key(name, MANIFEST_FILE)?;
        self.client.delete(&manifest).map_err(io_error)?;
        let prefix = self.key(name, "")?;
        if let Ok(Some(record)) = self.run_record(name) {
            for (key, upload) in &record.uploads {
                // Only uploads of this backup's own keys, and only keys that address
                // themselves: a hostile entry is skipped, never a reason to stop the removal.
                if key.starts_with(&prefix) && crate::s3::is_addressable(key) {
                    if let Err(e) = self.client.abort_upload(key, upload) {
                        log::warn!("could not abort the upload of {key}: {e}");
                    }
                }
            }
        }
        let listing = self.client.list(&prefix, false).map_err(io_error)?;
        // A key with a `.` or `..` part would address another object: left alone (it is no
        // object aimem wrote, and the backup is out of sight without it).
        let owned = listing
            .objects
            .iter()
            .filter(|o| o.key != mark && crate::s3::is_addressable(&o.key));
        for object in owned {
            self.client.delete(&object.key).map_err(io_error)?;
        }
        self.client.delete(&mark).map_err(io_error)
    }
}

impl S3Repo {
    /// Claims the name `name` for a new backup by writing its run record, only if nothing is
    /// there yet. None when the name is taken.
    fn claim(&self, name: &str) -> io::Result<Option<S3Staging>> {
        let location = self
            .root
            .child(name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // Anything under the name (a backup, a leftover, a removal) makes it taken.
        let existing = self
            .client
            .list(&location.key_prefix(), false)
            .map_err(io_error)?;
        if !existing.objects.is_empty() {
            return Ok(None);
        }
        let record = RunRecord {
            host: self.host.clone(),
            boot: boot_id(),
            token: run_token(),
            pid: std::process::id(),
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            uploads: Vec::new(),
        };
        let run_key = location.key(RUN_FILE);
        let bytes = serde_json::to_vec(&record).map_err(io::Error::other)?;
        match self.client.put(&run_key, &bytes, true) {
            Ok(()) => {}
            Err(S3Error::Exists { .. }) => return Ok(None),
            Err(e) => return Err(io_error(e)),
        }
        // The same create-only write again tells whether the service honours
        // `If-None-Match`: one that does refuses it. One that does not gets a look before the
        // manifest is written instead (a smaller guard: two runs would have to publish the
        // same name in the same instant).
        let conditional = matches!(
            self.client.put(&run_key, &bytes, true),
            Err(S3Error::Exists { .. })
        );
        if !conditional {
            log::debug!(
                "{} does not honour If-None-Match: the manifest is written after a check instead",
                self.shown
            );
        }
        let run = Arc::new(Mutex::new(record));
        let heartbeat = Heartbeat::start(self.client.clone(), run_key.clone(), Arc::clone(&run));
        Ok(Some(S3Staging {
            heartbeat: Mutex::new(Some(heartbeat)),
            client: self.client.clone(),
            root: self.root.clone(),
            name: name.to_string(),
            shown: self.shown.join(name),
            location,
            run,
            manifest: Arc::new(Mutex::new(None)),
            finished: Arc::default(),
            conditional,
        }))
    }
}

impl Repo for S3Repo {
    fn location(&self) -> &Utf8Path {
        &self.shown
    }

    fn list(&self) -> io::Result<Vec<Found>> {
        let mut found = Vec::new();
        for (name, objects) in self.by_backup()? {
            let top = self.root.key_prefix();
            let has = |file: &str| {
                let key = format!("{top}{name}/{file}");
                objects.iter().any(|o| o.key == key)
            };
            if name.starts_with('.') || has(DELETING_MARK) {
                continue;
            }
            let safe = crate::names::check(&name).is_ok();
            found.push(Found {
                kind: match has(MANIFEST_FILE) {
                    true => Kind::Published,
                    false => Kind::Staging,
                },
                location: self.shown.join(&name),
                name_is_utf8: safe,
                size_bytes: objects.iter().map(|o| o.size).sum(),
                modified: objects.iter().filter_map(|o| o.modified).max(),
                name,
            });
        }
        Ok(found)
    }

    fn open(&self, found: &Found) -> io::Result<Box<dyn Backup>> {
        if !found.name_is_utf8 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a safe name", found.location),
            ));
        }
        let location = self
            .root
            .child(&found.name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Box::new(S3Backup {
            client: self.client.clone(),
            location,
            shown: found.location.clone(),
            copy: std::sync::OnceLock::new(),
        }))
    }

    fn last_change(&self, found: &Found) -> Option<SystemTime> {
        let prefix = self.key(&found.name, "").ok()?;
        let listing = self.client.list(&prefix, false).ok()?;
        listing.objects.iter().filter_map(|o| o.modified).max()
    }

    fn free_name(&self, at: time::OffsetDateTime) -> Utf8PathBuf {
        let taken: Vec<String> = self
            .by_backup()
            .map(|groups| groups.into_iter().map(|(n, _)| n).collect())
            .unwrap_or_default();
        let base = crate::manifest::layout::folder_name(at);
        let mut candidate = base.clone();
        let mut n = 2;
        while taken.contains(&candidate) {
            candidate = format!("{base}-{n}");
            n += 1;
        }
        self.shown.join(candidate)
    }

    fn begin(&self, wanted: &SafeName) -> io::Result<Box<dyn Staging>> {
        let mut n = 1;
        loop {
            let name = match n {
                1 => wanted.as_str().to_string(),
                n => format!("{wanted}-{n}", wanted = wanted.as_str()),
            };
            if let Some(staging) = self.claim(&name)? {
                return Ok(Box::new(staging));
            }
            n += 1;
        }
    }

    fn remove(&self, found: &Found) -> io::Result<Removed> {
        if !found.name_is_utf8 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a safe name", found.location),
            ));
        }
        let mark = self.key(&found.name, DELETING_MARK)?;
        self.client.put(&mark, b"", false).map_err(io_error)?;
        Ok(match self.delete_backup(&found.name) {
            Ok(()) => Removed::Fully,
            Err(e) => Removed::HalfWay(e),
        })
    }

    /// The run record says which machine and process write the backup.
    fn writer_alive(&self, found: &Found) -> Option<bool> {
        let record = self.run_record(&found.name).ok()??;
        let here = boot_id();
        if record.host.is_empty()
            || record.host != self.host
            || here.is_empty()
            || record.boot != here
        {
            return None;
        }
        let pid = i32::try_from(record.pid).ok()?;
        Some(super::process_alive(pid))
    }

    fn finish_removals(&self) -> Vec<(String, io::Error)> {
        let Ok(groups) = self.by_backup() else {
            return Vec::new();
        };
        let mut failed = Vec::new();
        let top = self.root.key_prefix();
        for (name, objects) in groups {
            let mark = format!("{top}{name}/{DELETING_MARK}");
            let marked = objects.iter().any(|o| o.key == mark);
            if marked && crate::names::check(&name).is_ok() {
                if let Err(e) = self.delete_backup(&name) {
                    failed.push((self.shown.join(&name).to_string(), e));
                }
            }
        }
        failed
    }
}

/// A backup in a bucket, open for reading.
///
/// `verify` and `restore` read its objects in place ([`Backup::files`], [`ObjectFiles`]):
/// hashed as they stream in, archives and Parquet files read at the offsets they need,
/// nothing written to disk. `diff-schema` and `list` read only its manifest, straight from
/// the bucket. What wants a local path instead ([`Backup::open`], [`Backup::folder`]; no
/// command does today) gets a private temporary copy, every object under its prefix whose
/// name is safe, made once on first use and removed when the backup is dropped.
pub struct S3Backup {
    client: S3Client,
    location: S3Location,
    shown: Utf8PathBuf,
    copy: std::sync::OnceLock<Result<crate::scratch::ScratchDir, (io::ErrorKind, String)>>,
}

impl S3Backup {
    /// The local copy, made on first use.
    fn local(&self) -> io::Result<Utf8PathBuf> {
        let copy = self
            .copy
            .get_or_init(|| self.download().map_err(|e| (e.kind(), e.to_string())));
        match copy {
            Ok(dir) => Ok(dir.path().to_owned()),
            // Its kind kept: a full temporary folder is told apart from a failed transfer.
            Err((kind, why)) => Err(io::Error::new(*kind, why.clone())),
        }
    }

    /// The backup's files, as objects: every key under its prefix that is a safe relative
    /// path, but the markers of a run or a removal (which are not the backup's).
    fn objects(&self) -> io::Result<ObjectFiles> {
        let prefix = self.location.key_prefix();
        let listing = self.client.list(&prefix, false).map_err(io_error)?;
        let mut objects = std::collections::BTreeMap::new();
        let mut foreign = Vec::new();
        for object in listing.objects {
            let Some(relative) = object.key.strip_prefix(&prefix) else {
                continue;
            };
            if relative == RUN_FILE || relative == DELETING_MARK {
                continue;
            }
            // An empty object named as a folder is a console's or a sync tool's marker, as an
            // empty local folder is nothing.
            if object.size == 0 && (relative.is_empty() || relative.ends_with('/')) {
                continue;
            }
            // A key that is not a safe relative path is not an aimem file: never a path,
            // never read, only reported (as a local folder's stray file is).
            if crate::names::check_relative(relative).is_err() {
                foreign.push(relative.to_string());
                continue;
            }
            // The version is the one the first read is served (the checksum pass's): a listed
            // ETag is not taken, as some services list another than they serve.
            objects.insert(
                relative.to_string(),
                (object.key.clone(), object.size, Version::default()),
            );
        }
        Ok(ObjectFiles {
            client: self.client.clone(),
            objects,
            foreign,
        })
    }

    fn download(&self) -> io::Result<crate::scratch::ScratchDir> {
        let dir = crate::scratch::ScratchDir::new("aimem-s3-")?;
        let root = dir.path().to_owned();
        for (relative, (key, size, etag)) in self.objects()?.objects {
            let path = root.join(&relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut file = crate::manifest::layout::private_file(&path)?;
            let mut stream =
                ObjectStream::new(ObjectReader::pinned(self.client.clone(), key, size, etag));
            copy_large(&mut stream, &mut file)?;
        }
        Ok(dir)
    }
}

/// A backup's objects, listed once, read in place: the audit's view of a backup in a bucket.
struct ObjectFiles {
    client: S3Client,
    /// Relative path → its key, size and version (the one its first read is served: every
    /// reader of it then asks for that one).
    objects: std::collections::BTreeMap<String, (String, u64, Version)>,
    /// What else lies under the prefix, by a name that is not a safe relative path.
    foreign: Vec<String>,
}

impl ObjectFiles {
    fn find(&self, relative: &str) -> io::Result<&(String, u64, Version)> {
        crate::manifest::confined::check_plain(relative)?;
        self.objects.get(relative).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{relative} is not in the bucket"),
            )
        })
    }
}

impl BackupFiles for ObjectFiles {
    fn open(&self, relative: &str) -> io::Result<Opened> {
        let (key, size, version) = self.find(relative)?;
        let object = ObjectReader::pinned(self.client.clone(), key.clone(), *size, version.clone());
        Ok(Opened::at(Arc::new(object), *size))
    }

    fn size(&self, relative: &str) -> io::Result<u64> {
        self.find(relative).map(|(_, size, _)| *size)
    }

    fn all(&self) -> io::Result<Vec<String>> {
        Ok(self.objects.keys().chain(&self.foreign).cloned().collect())
    }
}

/// Copies `from` into `to` a MiB at a time (a network stream gives more than `io::copy`'s
/// 8 KiB at once).
fn copy_large(from: &mut impl io::Read, to: &mut impl Write) -> io::Result<u64> {
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut copied = 0;
    loop {
        match from.read(&mut buffer) {
            Ok(0) => return Ok(copied),
            Ok(n) => {
                to.write_all(&buffer[..n])?;
                copied += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl Backup for S3Backup {
    fn location(&self) -> &Utf8Path {
        &self.shown
    }

    fn open(&self, relative: &str) -> io::Result<std::fs::File> {
        crate::manifest::confined::open(&self.local()?, relative)
    }

    fn folder(&self) -> io::Result<Utf8PathBuf> {
        self.local()
    }

    fn files(&self) -> io::Result<Box<dyn BackupFiles>> {
        Ok(Box::new(self.objects()?))
    }

    fn reader(&self, relative: &str) -> io::Result<Box<dyn io::Read + Send>> {
        crate::manifest::confined::check_plain(relative)?;
        if let Some(copy) = self.copy.get().and_then(|copy| copy.as_ref().ok()) {
            return Ok(Box::new(crate::manifest::confined::open(
                copy.path(),
                relative,
            )?));
        }
        let key = self.location.key(relative);
        let object = self.client.head(&key).map_err(io_error)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{relative} is not in the bucket"),
            )
        })?;
        Ok(Box::new(ObjectStream::new(ObjectReader::new(
            self.client.clone(),
            key,
            object.size,
        ))))
    }

    fn manifest(&self) -> Result<Manifest, ManifestError> {
        let key = self.location.key(MANIFEST_FILE);
        let path = self.shown.join(MANIFEST_FILE);
        let bytes = match self
            .client
            .get_small(&key, crate::manifest::MAX_MANIFEST_BYTES)
        {
            Ok(bytes) => bytes,
            Err(S3Error::NotFound { .. }) => return Err(ManifestError::Missing { path }),
            Err(e) => {
                return Err(ManifestError::Io {
                    path,
                    source: io_error(e),
                });
            }
        };
        let text = String::from_utf8(bytes).map_err(|_| ManifestError::Io {
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, "the manifest is not UTF-8"),
        })?;
        Manifest::parse(&path, text)
    }

    fn audit(&self, options: audit::Options) -> audit::Audit {
        // A copy already made (a restore's) is read rather than the bucket again.
        if let Some(Ok(copy)) = self.copy.get() {
            let mut audit = audit::audit(copy.path(), options);
            audit.backup = self.shown.clone();
            return audit;
        }
        match self.objects() {
            Ok(files) => audit::audit_files(&files, &self.shown, options),
            Err(e) => audit::Audit {
                backup: self.shown.clone(),
                legacy: false,
                notices: Vec::new(),
                files_checked: 0,
                findings: vec![audit::Finding::new(
                    "",
                    audit::Kind::Unreadable,
                    format!("cannot list the backup's objects in the bucket: {e}"),
                )],
                information: Vec::new(),
                manifest_error: None,
                encrypted: false,
                contents_checked: false,
            },
        }
    }
}

/// A backup being written into a bucket, under its final name: every object but the manifest
/// goes up as it is written, the manifest at [`Staging::commit`], and only if absent.
pub struct S3Staging {
    client: S3Client,
    /// The root and the name claimed in it.
    root: S3Location,
    name: String,
    location: S3Location,
    shown: Utf8PathBuf,
    run: Arc<Mutex<RunRecord>>,
    /// The manifest, kept until the commit writes it last.
    manifest: Arc<Mutex<Option<Vec<u8>>>>,
    /// Every file written (its key and size), for the check before the manifest goes.
    finished: Arc<Mutex<Vec<(String, u64)>>>,
    /// Whether the service refuses a create-only write over an existing object.
    conditional: bool,
    /// Rewrites the run record now and then, so that a long upload is not taken for a
    /// killed run's leftover by another machine; stops when the staging area goes.
    heartbeat: Mutex<Option<Heartbeat>>,
}

/// How often a run rewrites its run record while it writes a backup (another machine counts
/// a backup untouched for a day as abandoned).
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// A thread that rewrites the run record every [`HEARTBEAT`] until dropped.
struct Heartbeat {
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    fn start(client: S3Client, run_key: String, run: Arc<Mutex<RunRecord>>) -> Heartbeat {
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (lock, wake) = &*stopped;
            let mut done = lock.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                // Looked at before each wait: a stop asked before the first wait is no
                // wake-up missed.
                if *done {
                    return;
                }
                let (guard, timeout) = wake
                    .wait_timeout(done, HEARTBEAT)
                    .unwrap_or_else(|p| p.into_inner());
                done = guard;
                if *done {
                    return;
                }
                if timeout.timed_out() {
                    // Held across the write, as for a new upload's record (see
                    // `record_upload`). Best effort: a missed beat only shortens another
                    // machine's patience.
                    let record = run.lock().unwrap_or_else(|p| p.into_inner());
                    if let Ok(bytes) = serde_json::to_vec(&*record) {
                        let _ = client.put(&run_key, &bytes, false);
                    }
                }
            }
        });
        Heartbeat {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl S3Staging {
    /// Rewrites the run record after an upload started, so whoever cleans up after a killed
    /// run can abort it.
    fn record_upload(
        client: &S3Client,
        run_key: &str,
        run: &Mutex<RunRecord>,
        key: &str,
        upload: &str,
    ) -> io::Result<()> {
        // Held across the write: two uploads starting at once must not write their copies
        // of the record in the other order (the later copy would lack the earlier upload).
        let mut record = run.lock().unwrap_or_else(|p| p.into_inner());
        if record.uploads.len() >= MAX_UPLOADS {
            return Err(io::Error::other(format!(
                "a backup may have at most {MAX_UPLOADS} uploads under way"
            )));
        }
        record.uploads.push((key.to_string(), upload.to_string()));
        let bytes = serde_json::to_vec(&*record).map_err(io::Error::other)?;
        client.put(run_key, &bytes, false).map_err(io_error)
    }

    /// An upload completed: it leaves the run record (written again with the next start or
    /// beat; a stale entry only costs a cleanup an abort that finds nothing).
    fn upload_done(run: &Mutex<RunRecord>, key: &str) {
        run.lock()
            .unwrap_or_else(|p| p.into_inner())
            .uploads
            .retain(|(k, _)| k != key);
    }
}

impl S3Staging {
    /// Before the manifest: the name is still this run's (its run record carries this run's
    /// token: no other run took it for a leftover and removed it), nobody is removing it, and
    /// every file written is there, whole.
    fn check_still_ours(&self) -> io::Result<()> {
        let lost = |why: String| io::Error::other(format!("{}: {why}", self.shown));
        let token = self
            .run
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .token
            .clone();
        let key = self.location.key(RUN_FILE);
        let stored = match self.client.get_small(&key, MAX_RUN_RECORD) {
            Ok(bytes) => serde_json::from_slice::<RunRecord>(&bytes).ok(),
            Err(S3Error::NotFound { .. }) => None,
            Err(e) => return Err(io_error(e)),
        };
        if stored.is_none_or(|record| record.token != token) {
            return Err(lost(
                "its run record is gone or another run's: it was taken for a leftover".into(),
            ));
        }
        let listing = self
            .client
            .list(&self.location.key_prefix(), false)
            .map_err(io_error)?;
        if listing
            .objects
            .iter()
            .any(|o| o.key.ends_with(&format!("/{DELETING_MARK}")))
        {
            return Err(lost("another run is removing it".into()));
        }
        let finished = self.finished.lock().unwrap_or_else(|p| p.into_inner());
        for (file, size) in finished.iter() {
            let there = listing
                .objects
                .iter()
                .any(|o| o.key == *file && o.size == *size);
            if !there {
                return Err(lost(format!(
                    "{file} is not in the bucket as it was written ({size} bytes)"
                )));
            }
        }
        Ok(())
    }
}

impl Staging for S3Staging {
    fn location(&self) -> &Utf8Path {
        &self.shown
    }

    fn create_file(&self, relative: &str) -> io::Result<Box<dyn NewFile>> {
        self.create_file_of(relative, None)
    }

    fn create_file_of(
        &self,
        relative: &str,
        expected: Option<u64>,
    ) -> io::Result<Box<dyn NewFile>> {
        crate::manifest::confined::check_plain(relative)?;
        if relative == MANIFEST_FILE {
            return Ok(Box::new(HeldManifest {
                bytes: Vec::new(),
                slot: Arc::clone(&self.manifest),
            }));
        }
        let key = self.location.key(relative);
        let client = self.client.clone();
        let run_key = self.location.key(RUN_FILE);
        let run = Arc::clone(&self.run);
        let on_start: OnUploadStart = Arc::new(move |key: &str, upload: &str| {
            S3Staging::record_upload(&client, &run_key, &run, key, upload)
        });
        Ok(Box::new(UploadFile {
            writer: ObjectWriter::new(
                self.client.clone(),
                key.clone(),
                transfer::part_size(expected),
                on_start,
            ),
            key,
            written: 0,
            done: Arc::clone(&self.finished),
            run: Arc::clone(&self.run),
        }))
    }

    fn folder(&self) -> Option<&Utf8Path> {
        None
    }

    fn discard(&self) -> io::Result<()> {
        drop(
            self.heartbeat
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        // The uploads this run knows of, whatever the stored record says.
        let uploads = self
            .run
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .uploads
            .clone();
        for (key, upload) in uploads {
            let _ = self.client.abort_upload(&key, &upload);
        }
        let repo = S3Repo::new(self.client.clone(), self.root.clone(), String::new());
        repo.delete_backup(&self.name)
    }

    fn remove_file(&self, relative: &str) -> io::Result<()> {
        crate::manifest::confined::check_plain(relative)?;
        self.client
            .delete(&self.location.key(relative))
            .map_err(io_error)
    }

    fn commit(&self) -> io::Result<Utf8PathBuf> {
        let manifest = self
            .manifest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no manifest was written"))?;
        let key = self.location.key(MANIFEST_FILE);
        self.check_still_ours()?;
        if !self.conditional && self.client.head(&key).map_err(io_error)?.is_some() {
            return Err(io_error(S3Error::Exists { what: key }));
        }
        self.client
            .put(&key, &manifest, self.conditional)
            .map_err(io_error)?;
        // A removal that began meanwhile (its mark written after the check) would delete the
        // manifest before the rest, or just before this write: never leave a backup published
        // that is being removed.
        let mark = self.location.key(DELETING_MARK);
        if self.client.head(&mark).map_err(io_error)?.is_some() {
            let _ = self.client.delete(&key);
            return Err(io::Error::other(format!(
                "{} was removed by another run while it was written",
                self.shown
            )));
        }
        // Published: the run record has done its work (and no beat may write it again).
        drop(
            self.heartbeat
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let _ = self.client.delete(&self.location.key(RUN_FILE));
        Ok(self.shown.clone())
    }
}

/// The manifest, held in memory until the commit.
struct HeldManifest {
    bytes: Vec<u8>,
    slot: Arc<Mutex<Option<Vec<u8>>>>,
}

impl Write for HeldManifest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() as u64 + buf.len() as u64 > crate::manifest::MAX_MANIFEST_BYTES {
            return Err(io::Error::other(
                "the manifest is larger than a manifest may be",
            ));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl NewFile for HeldManifest {
    fn finish(self: Box<Self>) -> io::Result<()> {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.bytes);
        Ok(())
    }
}

/// A file streamed into the bucket.
struct UploadFile {
    writer: ObjectWriter,
    key: String,
    written: u64,
    /// Where a finished file is told (its key and size) and its upload leaves the record.
    done: Arc<Mutex<Vec<(String, u64)>>>,
    run: Arc<Mutex<RunRecord>>,
}

impl Write for UploadFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.writer.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl NewFile for UploadFile {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let UploadFile {
            writer,
            key,
            written,
            done,
            run,
        } = *self;
        writer.finish()?;
        S3Staging::upload_done(&run, &key);
        let mut done = done.lock().unwrap_or_else(|p| p.into_inner());
        done.retain(|(k, _)| *k != key);
        done.push((key, written));
        Ok(())
    }
}
