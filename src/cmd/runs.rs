//! Other aimem runs: who owns a journal or a lock, and advisory locks that end with their holder.
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
    let uid = rustix::process::geteuid().as_raw();
    let runtime = std::env::var("XDG_RUNTIME_DIR")
        .ok()
        // Only a runtime folder that exists: one named but missing is a broken session.
        .filter(|d| !d.is_empty() && Utf8Path::new(d).is_absolute() && Utf8Path::new(d).is_dir())
        .map(|d| Utf8PathBuf::from(d).join("aimem"));
    let dir = match runtime {
        Some(dir) => dir,
        None => {
            let temp = Utf8PathBuf::from_path_buf(std::env::temp_dir())
                .unwrap_or_else(|_| Utf8PathBuf::from("/tmp"));
            temp.join(format!("aimem-{uid}"))
        }
    };
    private_dir(&dir, uid)?;
    Ok(dir)
}

/// The folder for this user's run journals that must outlive a reboot (a killed restore's
/// record of what it left on a server, wherever the backup it restored lives):
/// `$XDG_STATE_HOME/aimem`, else `$HOME/.local/state/aimem`, each path absolute. The aimem
/// folder is created 0700 (its parents as needed) and must be a private folder of this user,
/// as for [`lock_dir`]. Without a usable one, the lock folder stands in (it may not survive a
/// reboot).
pub fn state_dir() -> std::io::Result<Utf8PathBuf> {
    let uid = rustix::process::geteuid().as_raw();
    let absolute = |var: &str| {
        std::env::var(var)
            .ok()
            .filter(|d| Utf8Path::new(d).is_absolute())
            .map(Utf8PathBuf::from)
    };
    let base = absolute("XDG_STATE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".local").join("state")));
    let chosen = base.and_then(|base| {
        std::fs::create_dir_all(&base).ok()?;
        let dir = base.join("aimem");
        private_dir(&dir, uid).ok()?;
        Some(dir)
    });
    match chosen {
        Some(dir) => Ok(dir),
        None => {
            let dir = lock_dir()?.join("state");
            private_dir(&dir, uid)?;
            Ok(dir)
        }
    }
}

/// `name` inside `parent`, created 0700 or checked as private, as [`lock_dir`] is.
pub fn private_subdir(parent: &Utf8Path, name: &str) -> std::io::Result<Utf8PathBuf> {
    let dir = parent.join(name);
    private_dir(&dir, rustix::process::geteuid().as_raw())?;
    Ok(dir)
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
