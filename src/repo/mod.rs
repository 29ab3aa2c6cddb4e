//! Where backups live: a backup root holding backups by name, and the few things done with
//! them (list, read, write and publish, remove).
//!
//! Commands reach backups only through [`Repo`] (and what it hands out: [`Backup`] to read
//! one, [`Staging`] to write one), never through the filesystem, so that a root can be
//! something else than a local folder. [`LocalRepo`] is the local folder, and the only
//! implementation so far: everything that assumes "a backup is a folder" (staging folders,
//! fsync, the no-replace rename that publishes, the hidden rename that deletes) lives there.
//!
//! Names never become paths here unchecked: a listed backup is handed back as the [`Found`]
//! the listing made (it carries its own location), a new backup is named by a
//! [`SafeName`], and files inside a backup are named by relative paths that the confined
//! reader ([`crate::manifest::confined`]) walks without following links.
//!
//! What is local to this machine whatever the root is (locks, journals, pre-restore copies,
//! partial downloads) is not a repository's: see the `workspace` module.

pub mod catalog;
pub mod local;
pub mod locate;
pub mod s3;

use std::fs::File;
use std::io::{self, Write};
use std::time::SystemTime;

use camino::{Utf8Path, Utf8PathBuf};

use crate::manifest::{Manifest, ManifestError, audit};
use crate::names::SafeName;

pub use local::{LocalBackup, LocalRepo, LocalStaging};

/// The backup root `root` names: a local folder, or an `s3://bucket/prefix` (reached with
/// the AWS settings of the environment). The one place a kind of root is told apart.
pub fn at(root: &Utf8Path) -> io::Result<Box<dyn Repo>> {
    if crate::s3::S3Location::is_s3(root.as_str()) {
        return Ok(Box::new(s3::S3Repo::from_env(root.as_str())?));
    }
    Ok(Box::new(LocalRepo::new(root)))
}

/// Whether `root` names a backup root in object storage.
pub fn is_remote(root: &Utf8Path) -> bool {
    crate::s3::S3Location::is_s3(root.as_str())
}

/// What a root holds under one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A published backup: complete when its manifest can be read.
    Published,
    /// A backup being written, or one a run did not finish.
    Staging,
}

/// One backup (or staging area) of a root, as [`Repo::list`] found it. The only handle
/// [`Repo::open`], [`Repo::remove`] and [`Repo::last_change`] take: what they act on is what
/// the listing saw, never a name put together elsewhere.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its name in the root (with U+FFFD for bytes that are not UTF-8).
    pub name: String,
    /// Where it is, as messages and `--json` show it.
    pub location: Utf8PathBuf,
    pub kind: Kind,
    /// False when the name is not valid UTF-8: such a backup is listed (as damaged), never
    /// opened or removed.
    pub name_is_utf8: bool,
    /// Total size of its files (for display: what cannot be read counts as zero).
    pub size_bytes: u64,
    /// When it was last changed itself (how old a staging area is).
    pub modified: Option<SystemTime>,
}

/// How a removal went, once the backup is no longer one.
#[derive(Debug)]
pub enum Removed {
    /// Gone.
    Fully,
    /// Out of sight (no longer a backup, not listed), but deleting its files stopped: the
    /// next [`Repo::finish_removals`] goes on with it.
    HalfWay(io::Error),
}

/// A backup root.
pub trait Repo {
    /// The root, as messages show it.
    fn location(&self) -> &Utf8Path;

    /// Every backup and staging area in the root, in no particular order. Other things the
    /// root holds (hidden folders that are neither, files) are left out. A root that does not
    /// exist is a `NotFound` error.
    fn list(&self) -> io::Result<Vec<Found>>;

    /// Opens a listed backup for reading.
    fn open(&self, found: &Found) -> io::Result<Box<dyn Backup>>;

    /// The latest change to a listed backup or anything in it: a long backup keeps writing
    /// into its staging area while the area itself stays as old as the run. None when it
    /// cannot be read.
    fn last_change(&self, found: &Found) -> Option<SystemTime>;

    /// Where a backup taken at `at` is to go: its timestamp (`YYYY-MM-DD_HHMMSS`), with
    /// `-2`, `-3`… when that is taken. Another run may take it meanwhile: [`Staging::commit`]
    /// then publishes under the next free one.
    fn free_name(&self, at: time::OffsetDateTime) -> Utf8PathBuf;

    /// Begins a new backup that is to be published as `wanted` (or, if another run takes
    /// that name meanwhile, the next free `wanted-N`): a staging area of this run alone.
    fn begin(&self, wanted: &SafeName) -> io::Result<Box<dyn Staging>>;

    /// Removes a listed backup: first out of sight at once (atomically: it stops being a
    /// backup, complete or damaged), then its files. An error means it is still there.
    fn remove(&self, found: &Found) -> io::Result<Removed>;

    /// Goes on with removals that stopped half way; returns what still could not be removed
    /// (its location, why).
    fn finish_removals(&self) -> Vec<(String, io::Error)>;

    /// Whether the run writing the staging area `found` is alive: `Some(true)` or
    /// `Some(false)` when it is a run of this machine, whose process can be looked at; None
    /// when that cannot be told (no process id, or another machine's run).
    fn writer_alive(&self, found: &Found) -> Option<bool>;
}

/// Whether the process `pid` of this machine runs (one that exists but is another user's
/// counts).
pub fn process_alive(pid: i32) -> bool {
    rustix::process::Pid::from_raw(pid).is_some_and(|pid| match rustix::process::test_kill_process(
        pid,
    ) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    })
}

/// One backup, open for reading.
pub trait Backup {
    /// Where it is, as messages show it.
    fn location(&self) -> &Utf8Path;

    /// Opens the file at `relative` (`/`-separated) for reading: only a regular file inside
    /// the backup, reached through no link. Errors keep their kind (`NotFound`).
    fn open(&self, relative: &str) -> io::Result<File>;

    /// Streams the file at `relative` from its first byte: for a backup in object storage,
    /// straight from the bucket (no local copy). The same files as [`Backup::open`] reaches.
    fn reader(&self, relative: &str) -> io::Result<Box<dyn io::Read + Send>> {
        Ok(Box::new(self.open(relative)?))
    }

    /// Reads and parses its `manifest.json`.
    fn manifest(&self) -> Result<Manifest, ManifestError>;

    /// A local folder holding its files, for what reads a backup by path: the backup's own
    /// folder, or a copy made on first use (a backup in object storage; it lasts as long as
    /// this value).
    fn folder(&self) -> io::Result<Utf8PathBuf>;

    /// Its files, read where they are: its own folder, a bucket's objects (ranged reads that
    /// resume), or an encrypted backup's decrypted copy ([`Backup::folder`]). What restore
    /// reads: a backup in a bucket needs no local copy.
    fn files(&self) -> io::Result<Box<dyn crate::manifest::files::BackupFiles>> {
        Ok(Box::new(crate::manifest::files::OwnedFolder(
            self.folder()?,
        )))
    }

    /// Audits it: is everything there, intact, and what the manifest says (see
    /// [`crate::manifest::audit`], which reads a local folder).
    fn audit(&self, options: audit::Options) -> audit::Audit;
}

/// A backup being written: files go in, then [`Staging::commit`] publishes the whole at once.
/// Until then it is not a backup (`list` shows it as incomplete), and a run that fails or is
/// killed leaves nothing that looks like one.
pub trait Staging: Send + Sync {
    /// Where it is being written, as messages show it.
    fn location(&self) -> &Utf8Path;

    /// Creates the file at `relative` (`/`-separated safe names; its folders are made as
    /// needed), new, readable by its owner only; never over an existing one.
    fn create_file(&self, relative: &str) -> io::Result<Box<dyn NewFile>>;

    /// [`Staging::create_file`] for a file expected to be about `expected` bytes (a staging
    /// area in object storage sizes its upload's parts by it).
    fn create_file_of(
        &self,
        relative: &str,
        expected: Option<u64>,
    ) -> io::Result<Box<dyn NewFile>> {
        let _ = expected;
        self.create_file(relative)
    }

    /// The local folder the backup is built in, when it is built in one: the backup engine
    /// then downloads snapshots into it by path itself (resumed across retries, synced).
    /// None for a staging area that takes files by name only (object storage), where each
    /// file goes through [`Staging::create_file`] and a retry writes it again.
    fn folder(&self) -> Option<&Utf8Path>;

    /// The local folder the staging area lives in, when it lives in one, whether files go
    /// into it by path ([`Staging::folder`]) or by name (an encrypted backup's, through the
    /// encryption): where the run keeps its journal, and what a failed run removes.
    fn local_folder(&self) -> Option<&Utf8Path> {
        self.folder()
    }

    /// Removes a file written earlier (an attempt that is taken again); one that is not
    /// there is no error.
    fn remove_file(&self, relative: &str) -> io::Result<()>;

    /// Removes everything written so far (the run failed): nothing of it stays.
    fn discard(&self) -> io::Result<()>;

    /// Makes everything written durable and publishes the backup under its wanted name (or
    /// the next free `-N` one), never over anything. Returns where it was published.
    fn commit(&self) -> io::Result<Utf8PathBuf>;

    /// For a staging area that stores files otherwise than written (encrypted): the SHA-256
    /// of each file finished so far as stored, by relative path. None when every file is
    /// stored as written.
    fn stored_digests(&self) -> Option<std::collections::BTreeMap<String, String>> {
        None
    }
}

/// A file being written into a [`Staging`] area.
pub trait NewFile: Write + Send {
    /// Makes the bytes written durable (they are flushed and synced before this returns).
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// Writes a whole file into `staging` and makes it durable.
pub fn write_file(staging: &dyn Staging, relative: &str, bytes: &[u8]) -> io::Result<()> {
    let mut file = staging.create_file(relative)?;
    file.write_all(bytes)?;
    file.finish()
}
