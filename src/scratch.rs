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
                io::ErrorKind::InvalidData,
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

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // The folder itself goes with `dir`, right after.
        live().retain(|p| p != self.dir.path());
    }
}

fn live() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes every live scratch folder: for the signal thread, just before it ends the process.
/// The lock is kept, so no new one is made meanwhile.
pub fn remove_all() {
    let folders = live();
    for folder in folders.iter() {
        std::fs::remove_dir_all(folder).ok();
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
