//! Private temporary folders that do not outlive the run: the local copy of a backup read
//! from a bucket, the decrypted copy of an encrypted backup. Removed when dropped, as any
//! temporary folder, and also when a signal ends the process at once (see `signals`), which
//! skips every drop: a decrypted copy must not stay behind in the temporary folder after a
//! Ctrl-C. (Nothing survives SIGKILL's skipping of everything; the copies are then left, mode
//! 0700, for the system's temporary-file cleaning.)

use std::io;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use camino::{Utf8Path, Utf8PathBuf};

/// The folders of every live [`ScratchDir`].
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A new private folder (mode 0700) in the temporary folder (`TMPDIR`).
pub struct ScratchDir {
    dir: tempfile::TempDir,
    path: Utf8PathBuf,
}

impl ScratchDir {
    pub fn new(prefix: &str) -> io::Result<ScratchDir> {
        use std::os::unix::fs::PermissionsExt;
        // Made 0700 from the start (tempfile's default follows the umask).
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()?;
        let path = Utf8PathBuf::from_path_buf(dir.path().to_path_buf()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "the temporary folder's path is not UTF-8 (set TMPDIR to another folder)",
            )
        })?;
        live().push(dir.path().to_path_buf());
        Ok(ScratchDir { dir, path })
    }

    pub fn path(&self) -> &Utf8Path {
        &self.path
    }
}

impl ScratchDir {
    /// Makes the folder `relative` (and those above it) inside, each private. The scratch
    /// folder itself is never made again: once a signal removed it, this fails, so nothing
    /// is written after the removal.
    pub fn create_dirs(&self, relative: &Utf8Path) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let mut path = self.path.clone();
        for part in relative.components() {
            path.push(part);
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                other => other?,
            }
        }
        Ok(())
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Removed while still listed, so a signal meanwhile finishes the removal.
        std::fs::remove_dir_all(self.dir.path()).ok();
        live().retain(|p| p != self.dir.path());
    }
}

fn live() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes every live scratch folder: for the signal thread, just before it ends the process.
/// The lock is kept, so no new one is made meanwhile. Other threads may still be writing into
/// one: a file made while the folder was being emptied fails its removal, which is tried
/// again (nothing makes a scratch folder itself again, see [`ScratchDir::create_dirs`]).
pub fn remove_all() {
    let folders = live();
    for folder in folders.iter() {
        for _ in 0..50 {
            if std::fs::remove_dir_all(folder).is_ok() || !folder.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `remove_all` is checked by a CLI test (a signal during a decryption), never here: it
    // would remove the folders of tests running beside this one.
    #[test]
    fn a_scratch_folder_is_private_known_while_it_lives_and_removed_when_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let dropped = ScratchDir::new("aimem-test-").unwrap();
        let path = dropped.path().to_owned();
        std::fs::write(path.join("f"), b"x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(live().iter().any(|p| p.as_path() == path.as_std_path()));
        drop(dropped);
        assert!(!path.exists());
        assert!(!live().iter().any(|p| p.as_path() == path.as_std_path()));
    }
}
