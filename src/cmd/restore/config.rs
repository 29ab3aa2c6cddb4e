//! `--restore-config`: writes the backup's config files back into the install folder.
//!
//! Only files the manifest lists, that aimem knows where to put, and whose checksum verified
//! are written. Each is replaced atomically (a temporary file in the same folder, synced, then
//! renamed), with the mode AI Memory expects: 0600 for `docker/.env.secrets`, 0644 otherwise.
//! The previous content is kept in memory, recorded before the file is replaced, so a failed
//! restore can put it back. A destination that is a symbolic link (`.env → real.env`) is
//! written through: its target is replaced and the link stays a link.

use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};

use crate::cmd::backup::CONFIG_FILES;
use crate::manifest::checksums::{self, Entry};
use crate::manifest::layout::CONFIG_DIR;

/// One config file to write.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// The manifest's name (`docker/.env`).
    pub name: String,
    pub from: Utf8PathBuf,
    pub to: Utf8PathBuf,
    pub mode: u32,
    /// The destination exists already (the user is asked first).
    pub overwrites: bool,
}

/// A listed config file that will not be written, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub name: String,
    pub why: String,
}

/// The mode a restored config file gets: secrets stay private.
pub fn mode_for(name: &str) -> u32 {
    if name == "docker/.env.secrets" {
        0o600
    } else {
        0o644
    }
}

/// Decides which of the manifest's config files to write. `checksums` is None when
/// CHECKSUMS.sha256 could not be read; each file is checked here even with
/// --skip-checksum-verify, since only verified files may be written.
pub fn plan(
    backup: &Utf8Path,
    install: &Utf8Path,
    listed: &[String],
    checksums: Option<&[Entry]>,
) -> (Vec<ConfigFile>, Vec<Skipped>) {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for name in listed {
        let skip = |why: &str| Skipped {
            name: name.clone(),
            why: why.to_string(),
        };
        let Some((_, dest)) = CONFIG_FILES.iter().find(|(n, _)| n == name) else {
            skipped.push(skip("aimem does not know where this file belongs"));
            continue;
        };
        let relative = format!("{CONFIG_DIR}/{name}");
        let Some(entry) = checksums.and_then(|list| list.iter().find(|e| e.path == relative))
        else {
            skipped.push(skip(
                "not listed in CHECKSUMS.sha256, so it cannot be verified",
            ));
            continue;
        };
        if let Some(link) = super::symlink_in(backup, &relative) {
            skipped.push(skip(&format!(
                "{link} is a symbolic link; aimem does not follow links in a backup"
            )));
            continue;
        }
        if let Some(problem) = checksums::check_one(backup, entry) {
            skipped.push(skip(&problem.to_string()));
            continue;
        }
        let to = install.join(dest);
        files.push(ConfigFile {
            name: name.clone(),
            from: backup.join(&relative),
            overwrites: to.symlink_metadata().is_ok(),
            to,
            mode: mode_for(name),
        });
    }
    (files, skipped)
}

/// A config file is read whole, up to this size (they are a few KiB).
const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// The backup's copy of a config file (checked by [`plan`]), read again without following a
/// link and with a size bound, in case it was swapped since.
fn read_backup_copy(from: &Utf8Path) -> std::io::Result<Vec<u8>> {
    let (Some(folder), Some(name)) = (from.parent(), from.file_name()) else {
        return Err(std::io::Error::other(format!("{from} is not a file path")));
    };
    let opened = crate::manifest::confined::open(folder, name)?;
    crate::manifest::confined::read_bounded(opened, MAX_CONFIG_BYTES, from.as_str())
}

/// How to put a destination back as it was.
#[derive(Debug)]
pub struct Previous {
    /// The destination as the user knows it (possibly a link).
    pub shown: Utf8PathBuf,
    /// The file actually written: the destination, or the end of its chain of links.
    pub path: Utf8PathBuf,
    /// Content and mode before; None when the file did not exist.
    pub before: Option<(Vec<u8>, u32)>,
    /// Folders that did not exist and are created to hold it, outermost first.
    pub created_dirs: Vec<Utf8PathBuf>,
}

/// The ancestors of `path` that do not exist yet, outermost first.
fn missing_dirs(path: &Utf8Path) -> Vec<Utf8PathBuf> {
    let mut missing: Vec<Utf8PathBuf> = path
        .ancestors()
        .skip(1)
        .filter(|dir| !dir.as_str().is_empty())
        .take_while(|dir| dir.symlink_metadata().is_err())
        .map(Utf8Path::to_owned)
        .collect();
    missing.reverse();
    missing
}

/// Writes one file atomically with its mode. What was there is pushed onto `log` *before*
/// anything is replaced, so even a failure half way (the rename done, the folder's sync
/// failed) leaves the rollback what it needs.
pub fn write(file: &ConfigFile, log: &mut Vec<Previous>) -> std::io::Result<()> {
    let path = resolve_links(&file.to)?;
    let before = match std::fs::read(&path) {
        Ok(bytes) => Some((bytes, current_mode(&path)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let content = read_backup_copy(&file.from)?;
    log.push(Previous {
        shown: file.to.clone(),
        created_dirs: missing_dirs(&path),
        path: path.clone(),
        before,
    });
    replace(&path, &content, file.mode)
}

/// Follows `path` through symbolic links to the file they end at (which may not exist yet).
fn resolve_links(path: &Utf8Path) -> std::io::Result<Utf8PathBuf> {
    let mut current = path.to_owned();
    // The kernel's own limit on a chain of links.
    for _ in 0..40 {
        match current.symlink_metadata() {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = current.read_link_utf8()?;
                current = match target.is_absolute() {
                    true => target,
                    false => current.parent().unwrap_or(Utf8Path::new(".")).join(target),
                };
            }
            _ => return Ok(current),
        }
    }
    Err(std::io::Error::other(format!(
        "{path}: too many levels of symbolic links"
    )))
}

/// Puts a destination back: the old content and mode, or no file at all.
pub fn undo(previous: &Previous) -> std::io::Result<()> {
    match &previous.before {
        Some((bytes, mode)) => replace(&previous.path, bytes, *mode),
        None => {
            match std::fs::remove_file(&previous.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            // The folders made for it go too, innermost first, and only while empty.
            for dir in previous.created_dirs.iter().rev() {
                if std::fs::remove_dir(dir).is_err() {
                    break;
                }
            }
            Ok(())
        }
    }
}

/// Writes `content` to a temporary file beside `path`, sets `mode`, syncs, renames over `path`.
fn replace(path: &Utf8Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Utf8Path::new("."));
    std::fs::create_dir_all(dir)?;
    // tempfile creates the file 0600, so a secret is never readable by others, even briefly.
    let mut temp = tempfile::Builder::new()
        .prefix(".aimem-restore-")
        .tempfile_in(dir)?;
    temp.write_all(content)?;
    set_mode(temp.path(), mode)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    #[cfg(test)]
    if tests::FAIL_DIR_SYNC.with(std::cell::Cell::get) {
        return Err(std::io::Error::other("injected: syncing the folder failed"));
    }
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(unix)]
fn set_mode(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &std::path::Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn current_mode(path: &Utf8Path) -> std::io::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn current_mode(_: &Utf8Path) -> std::io::Result<u32> {
    Ok(0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Makes `replace` fail after its rename, when it syncs the folder.
        pub static FAIL_DIR_SYNC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// `.env` from `root/new` to `root/<to>`, 0644.
    fn env_file(root: &Utf8Path, to: &str) -> ConfigFile {
        ConfigFile {
            name: ".env".into(),
            from: root.join("new"),
            to: root.join(to),
            mode: 0o644,
            overwrites: true,
        }
    }

    #[test]
    fn what_was_there_is_recorded_before_the_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(root.join("new"), "NEW").unwrap();
        std::fs::write(root.join("old"), "OLD").unwrap();
        let file = env_file(root, "old");
        let mut log = Vec::new();
        FAIL_DIR_SYNC.with(|f| f.set(true));
        let result = write(&file, &mut log);
        FAIL_DIR_SYNC.with(|f| f.set(false));
        assert!(result.is_err());
        // The rename happened before the failure: the log must know how to undo it.
        assert_eq!(std::fs::read_to_string(root.join("old")).unwrap(), "NEW");
        assert_eq!(log.len(), 1);
        undo(&log[0]).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("old")).unwrap(), "OLD");
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_destination_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(root.join("new"), "NEW").unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::fs::write(root.join("real/real.env"), "OLD").unwrap();
        std::os::unix::fs::symlink("real/real.env", root.join(".env")).unwrap();
        let file = env_file(root, ".env");
        let mut log = Vec::new();
        write(&file, &mut log).unwrap();
        let is_link = |p: &Utf8Path| p.symlink_metadata().unwrap().file_type().is_symlink();
        assert!(is_link(&root.join(".env")));
        assert_eq!(
            std::fs::read_to_string(root.join("real/real.env")).unwrap(),
            "NEW"
        );
        undo(&log[0]).unwrap();
        assert!(is_link(&root.join(".env")));
        assert_eq!(
            std::fs::read_to_string(root.join("real/real.env")).unwrap(),
            "OLD"
        );
        assert_eq!(log[0].shown, root.join(".env"));
    }

    #[test]
    fn secrets_are_private_the_rest_readable() {
        assert_eq!(mode_for("docker/.env.secrets"), 0o600);
        assert_eq!(mode_for("docker/.env"), 0o644);
        assert_eq!(mode_for("settings.json"), 0o644);
    }

    #[test]
    fn write_then_undo_puts_the_old_file_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(root.join("new"), "NEW").unwrap();
        std::fs::write(root.join("old"), "OLD").unwrap();
        let file = env_file(root, "old");
        let mut log = Vec::new();
        write(&file, &mut log).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("old")).unwrap(), "NEW");
        undo(&log[0]).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("old")).unwrap(), "OLD");
        let fresh = ConfigFile {
            to: root.join("sub/deeper/fresh"),
            ..file
        };
        write(&fresh, &mut log).unwrap();
        assert!(root.join("sub/deeper/fresh").is_file());
        undo(&log[1]).unwrap();
        assert!(!root.join("sub/deeper/fresh").exists());
        // The folders made for it are gone too: the install folder is exactly as before.
        assert!(!root.join("sub").exists());
    }
}
