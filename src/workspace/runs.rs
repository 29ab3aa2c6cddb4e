//! Other aimem runs: who owns a journal or a lock, and advisory locks that end with their holder;
//! and where this user's runs keep what must outlive them (the state folder, [`state_dir`]).
//!
//! Locks are `flock`s on files: the kernel releases them when the holder dies, even by
//! `kill -9`, so "lock free" means "nobody alive holds it" whatever a pid file would say after
//! the pid was reused. The file's content names the holder (pid, host, start time), so a
//! second run can say who it waits for, or whose leftovers it takes over.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::sync::OnceLock;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::exit::Exit;
use crate::settings::Endpoint;
use crate::signals::StopFlag;
use crate::ui::Ui;

/// The run that holds a lock or wrote a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    pub host: String,
    /// RFC 3339, local time.
    pub started: String,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        static STARTED: OnceLock<String> = OnceLock::new();
        let started = STARTED.get_or_init(|| {
            crate::localtime::now()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        });
        Owner {
            pid: std::process::id(),
            host: hostname(),
            started: started.clone(),
        }
    }

    /// "pid 123 on host h since 2026-…", for messages. The fields come from a file anyone
    /// with access to the folder could have written: control characters are dropped.
    pub fn describe(&self) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect::<String>()
        };
        format!(
            "pid {} on host {} since {}",
            self.pid,
            clean(&self.host),
            clean(&self.started)
        )
    }
}

/// This machine's name (the kernel's), or "localhost" when it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The server as a lock or journal names it: scheme, host and port, never credentials (the
/// host is the parsed one, which holds none: see [`crate::qdrant::parse_host`]).
pub fn server_key(endpoint: &Endpoint) -> String {
    format!(
        "{}://{}:{}",
        endpoint.url.scheme().as_str(),
        endpoint.host.to_ascii_lowercase(),
        endpoint.port
    )
}

/// Takes an exclusive `flock` on `file` without waiting: true when taken, false when another
/// open file (another run, or this one through another handle) holds it.
pub fn try_lock(file: &File) -> std::io::Result<bool> {
    match rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// How often a waiting run tries the lock again.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// Takes the lock on `file`, waiting while another run holds it; `on_wait` runs once, when the
/// first attempt fails. A signal ends the wait with its exit status.
pub fn lock_waiting(file: &File, stop: &StopFlag, on_wait: impl FnOnce()) -> Result<(), Exit> {
    let mut on_wait = Some(on_wait);
    loop {
        match try_lock(file) {
            Ok(true) => return Ok(()),
            // A filesystem without flock: nothing to serialise with.
            Err(_) => return Ok(()),
            Ok(false) => {}
        }
        if let Some(say) = on_wait.take() {
            say();
        }
        if let Some(exit) = stop.requested() {
            return Err(exit);
        }
        std::thread::sleep(LOCK_POLL);
    }
}

/// Opens (creating it 0600 if needed) a lock file, never through a symbolic link, and only a
/// regular file.
pub fn open_lock_file(path: &Utf8Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{path} is not a regular file"
        )));
    }
    Ok(file)
}

/// The most a holder record can take: it is one short JSON line.
const OWNER_RECORD_MAX: u64 = 4096;

/// Reads the holder a lock file names, if it names one.
pub fn read_owner(file: &mut File) -> Option<Owner> {
    file.rewind().ok()?;
    let mut text = String::new();
    file.take(OWNER_RECORD_MAX).read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

/// Writes this run as the holder of a lock it holds.
pub fn write_owner(file: &mut File) -> std::io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    let line = serde_json::to_string(&Owner::me()).map_err(std::io::Error::other)?;
    file.write_all(line.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_data()
}

/// The folder for this user's lock files: `$XDG_RUNTIME_DIR/aimem`, else
/// `<temp>/aimem-<uid>`. Created 0700 if missing; an existing one must be a real folder (not a
/// link) owned by this user and closed to others, or another user could plant or read locks.
pub fn lock_dir() -> std::io::Result<Utf8PathBuf> {
    let dir = lock_dir_path();
    private_dir(&dir, rustix::process::geteuid().as_raw())?;
    Ok(dir)
}

/// Where [`lock_dir`] is, without making or checking it.
fn lock_dir_path() -> Utf8PathBuf {
    let uid = rustix::process::geteuid().as_raw();
    let runtime = std::env::var("XDG_RUNTIME_DIR")
        .ok()
        // Only a runtime folder that exists: one named but missing is a broken session.
        .filter(|d| !d.is_empty() && Utf8Path::new(d).is_absolute() && Utf8Path::new(d).is_dir())
        .map(|d| Utf8PathBuf::from(d).join("aimem"));
    match runtime {
        Some(dir) => dir,
        None => {
            let temp = Utf8PathBuf::from_path_buf(std::env::temp_dir())
                .unwrap_or_else(|_| Utf8PathBuf::from("/tmp"));
            temp.join(format!("aimem-{uid}"))
        }
    }
}

/// What [`state_dir`] does when the folder does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Make it, 0700 (its parents too, 0700, as the XDG spec asks): for a run that writes state.
    Create,
    /// Leave it absent ([`StateError::Absent`]): for a run that only reads state, such as
    /// `list`, which must create nothing. An absent folder holds nothing to read.
    Skip,
}

/// Why there is no state folder to use.
#[derive(Debug)]
pub enum StateError {
    /// Neither `XDG_STATE_HOME` nor `HOME` names an absolute folder.
    Unset,
    /// It does not exist (with [`Missing::Skip`]).
    Absent(Utf8PathBuf),
    /// It is there but not this user's own folder: a symbolic link, something else than a
    /// folder, or another user's. Refused: whoever controls it could read what aimem keeps
    /// there (pre-restore copies of collections) or plant records in it.
    Refused { dir: Utf8PathBuf, why: String },
    /// It could not be made, opened or made private.
    Io {
        dir: Utf8PathBuf,
        source: std::io::Error,
    },
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::Unset => f.write_str(
                "aimem has no state folder: neither XDG_STATE_HOME nor HOME names an absolute folder",
            ),
            StateError::Absent(dir) => write!(f, "{dir} does not exist"),
            StateError::Refused { dir, why } => {
                write!(f, "{dir} {why}: aimem does not use it as its state folder")
            }
            StateError::Io { dir, source } => write!(f, "{dir} cannot be used: {source}"),
        }
    }
}

impl std::error::Error for StateError {}

/// This user's state folder: `$XDG_STATE_HOME/aimem`, else `$HOME/.local/state/aimem` (each
/// variable only when it is an absolute path). It holds what must outlive a reboot: killed
/// restores' journals, and pre-restore copies of backups in folders other users can change.
///
/// The one place its rules live ([`own_folder`]): it must be a real folder (not a symbolic
/// link, which is refused, never followed) owned by this user; one of ours open to others is
/// made 0700, with a warning. The folders above it are the user's choice (`XDG_STATE_HOME`,
/// `HOME`) and are taken as they are. What to do without it is the caller's choice: see
/// [`fallback_state_dir`].
pub fn state_dir(missing: Missing, ui: &Ui) -> Result<Utf8PathBuf, StateError> {
    let absolute = |var: &str| {
        std::env::var(var)
            .ok()
            .filter(|d| Utf8Path::new(d).is_absolute())
            .map(Utf8PathBuf::from)
    };
    let base = absolute("XDG_STATE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".local").join("state")))
        .ok_or(StateError::Unset)?;
    let dir = base.join("aimem");
    own_folder(&dir, missing, ui)?;
    Ok(dir)
}

/// `name` inside a state folder, under the same rules as [`state_dir`].
pub fn state_subdir(
    parent: &Utf8Path,
    name: &str,
    missing: Missing,
    ui: &Ui,
) -> Result<Utf8PathBuf, StateError> {
    let dir = parent.join(name);
    own_folder(&dir, missing, ui)?;
    Ok(dir)
}

/// Where state goes when [`state_dir`] cannot be used: `state` in the lock folder
/// ([`lock_dir`]), which may not outlive a reboot (it is often in memory). Only for records
/// that are better there than nowhere (a restore's journal); a caller using it says so. Read
/// by the runs after, whatever their state folder, so nothing recorded there is missed.
pub fn fallback_state_dir(missing: Missing, ui: &Ui) -> Result<Utf8PathBuf, StateError> {
    let locks = match missing {
        Missing::Create => lock_dir().map_err(|source| StateError::Io {
            dir: lock_dir_path(),
            source,
        })?,
        Missing::Skip => {
            let dir = lock_dir_path();
            own_folder(&dir, Missing::Skip, ui)?;
            dir
        }
    };
    state_subdir(&locks, "state", missing, ui)
}

/// Checks that `dir` is a folder of this user's own, reached without following a link, and
/// makes it 0700 if it is open to others; with [`Missing::Create`] it is made (0700) first
/// if absent, its parents too.
fn own_folder(dir: &Utf8Path, missing: Missing, ui: &Ui) -> Result<(), StateError> {
    use rustix::fs::{Mode, OFlags};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let io = |source: std::io::Error| StateError::Io {
        dir: dir.to_owned(),
        source,
    };
    if missing == Missing::Create {
        let mut builder = std::fs::DirBuilder::new();
        builder.mode(0o700);
        if let Some(parent) = dir.parent() {
            builder.recursive(true).create(parent).map_err(io)?;
        }
        match builder.recursive(false).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
    }
    // Opened without following a link: what is checked and changed below is the folder
    // itself, even if it is swapped for a link meanwhile.
    let me = rustix::process::geteuid().as_raw();
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let folder = match rustix::fs::open(dir.as_std_path(), flags, Mode::empty()) {
        Ok(folder) => folder,
        Err(e) => {
            let refused = |why: &str| StateError::Refused {
                dir: dir.to_owned(),
                why: why.to_string(),
            };
            return Err(match dir.symlink_metadata() {
                Ok(meta) if meta.file_type().is_symlink() => refused("is a symbolic link"),
                Ok(meta) if !meta.is_dir() => refused("is not a folder"),
                Ok(meta) if meta.uid() != me => {
                    refused(&format!("belongs to another user (uid {})", meta.uid()))
                }
                Err(_) if e == rustix::io::Errno::NOENT => StateError::Absent(dir.to_owned()),
                _ => io(e.into()),
            });
        }
    };
    let stat = rustix::fs::fstat(&folder).map_err(|e| io(e.into()))?;
    if stat.st_uid != me {
        return Err(StateError::Refused {
            dir: dir.to_owned(),
            why: format!("belongs to another user (uid {})", stat.st_uid),
        });
    }
    let mode = stat.st_mode & 0o7777;
    if mode & 0o077 != 0 {
        rustix::fs::fchmod(&folder, Mode::from_raw_mode(0o700)).map_err(|e| io(e.into()))?;
        ui.warn(&format!(
            "{dir} was open to other users (mode {mode:04o}): aimem made it private (0700)"
        ));
    }
    Ok(())
}

/// Creates `dir` 0700, or checks that the existing one is a real folder (not a link) owned by
/// `uid` and closed to others.
fn private_dir(dir: &Utf8Path, uid: u32) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = dir.symlink_metadata()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if !meta.file_type().is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
            return Err(std::io::Error::other(format!(
                "{dir} is not a private folder of this user (a link, another owner, or open to others)"
            )));
        }
    }
    #[cfg(not(unix))]
    if !meta.file_type().is_dir() {
        return Err(std::io::Error::other(format!("{dir} is not a folder")));
    }
    Ok(())
}

/// A file name for a lock on `parts`: a digest, so any server URL or collection name gives
/// one safe path component.
pub fn lock_name(kind: &str, parts: &[&str]) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{kind}-{hex}.lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_exclusive_between_open_files_and_ends_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8Path::from_path(dir.path()).unwrap().join("x.lock");
        let first = open_lock_file(&path).unwrap();
        let second = open_lock_file(&path).unwrap();
        assert!(try_lock(&first).unwrap());
        assert!(!try_lock(&second).unwrap());
        drop(first);
        assert!(try_lock(&second).unwrap());
    }

    #[test]
    fn the_holder_is_written_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8Path::from_path(dir.path()).unwrap().join("x.lock");
        let mut file = open_lock_file(&path).unwrap();
        assert_eq!(read_owner(&mut file), None);
        write_owner(&mut file).unwrap();
        assert_eq!(read_owner(&mut file), Some(Owner::me()));
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_file_is_never_opened_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(root.join("victim"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("victim"), root.join("x.lock")).unwrap();
        assert!(open_lock_file(&root.join("x.lock")).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn the_lock_folder_must_be_private_and_no_link() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let uid = rustix::process::geteuid().as_raw();
        private_dir(&root.join("fresh"), uid).unwrap();
        assert_eq!(
            std::fs::metadata(root.join("fresh"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        std::fs::create_dir(root.join("open")).unwrap();
        std::fs::set_permissions(root.join("open"), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        assert!(private_dir(&root.join("open"), uid).is_err());
        std::os::unix::fs::symlink(root.join("fresh"), root.join("link")).unwrap();
        assert!(private_dir(&root.join("link"), uid).is_err());
        assert!(private_dir(&root.join("fresh"), uid + 1).is_err());
    }

    #[test]
    fn a_state_folder_is_ours_private_and_no_link() {
        use std::os::unix::fs::PermissionsExt;
        let ui = Ui::new(true, false);
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let mode = |p: &Utf8Path| p.symlink_metadata().unwrap().permissions().mode() & 0o7777;
        // Skipped when absent: nothing is made.
        let fresh = root.join("a/b/aimem");
        assert!(matches!(
            own_folder(&fresh, Missing::Skip, &ui),
            Err(StateError::Absent(_))
        ));
        assert!(!root.join("a").exists());
        // Made 0700, parents too.
        own_folder(&fresh, Missing::Create, &ui).unwrap();
        assert_eq!((mode(&fresh), mode(&root.join("a"))), (0o700, 0o700));
        // Ours and open to others: made private.
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o777)).unwrap();
        own_folder(&fresh, Missing::Skip, &ui).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        // A link (even to a folder of ours) or a file: refused, the target untouched.
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = root.join("link");
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        let file = root.join("file");
        std::fs::write(&file, "x").unwrap();
        for missing in [Missing::Skip, Missing::Create] {
            let e = own_folder(&link, missing, &ui).unwrap_err();
            assert!(e.to_string().contains("is a symbolic link"), "{e}");
            let e = own_folder(&file, missing, &ui).unwrap_err();
            assert!(e.to_string().contains("is not a folder"), "{e}");
        }
        assert_eq!(mode(&fresh), 0o755);
        // Another user's (only root can make one to test with).
        if rustix::process::geteuid().is_root() {
            let theirs = root.join("theirs");
            std::fs::create_dir(&theirs).unwrap();
            std::os::unix::fs::chown(&theirs, Some(4242), None).unwrap();
            std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o777)).unwrap();
            let e = own_folder(&theirs, Missing::Create, &ui).unwrap_err();
            assert!(
                e.to_string().contains("belongs to another user (uid 4242)"),
                "{e}"
            );
            assert_eq!(mode(&theirs), 0o777);
        }
    }

    #[test]
    fn server_keys_hold_no_credentials_and_lock_names_are_one_component() {
        let endpoint = crate::settings::parse_url("HTTP://user:secret@Host:6333").unwrap();
        assert_eq!(server_key(&endpoint), "http://host:6333");
        let endpoint = crate::settings::parse_url("https://u:p%2Fw@[::1]").unwrap();
        assert_eq!(server_key(&endpoint), "https://[::1]:443");
        let name = lock_name("restore", &["http://h:1", "../../etc/passwd"]);
        assert!(!name.contains('/') && name.starts_with("restore-"));
        assert_ne!(name, lock_name("restore", &["http://h:1", "other"]));
    }
}
