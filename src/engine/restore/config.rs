//! `--restore-config`: writes the backup's config files back into the install folder.
//!
//! Only files the manifest lists, that aimem knows where to put, and whose checksum verified
//! are written. Each is replaced atomically (a temporary file in the same folder, synced, then
//! renamed), with the mode AI Memory expects: 0600 for `docker/.env.secrets`, 0644 otherwise.
//! The previous content is kept in memory, recorded before the file is replaced, so a failed
//! restore can put it back. A destination that is a symbolic link (`.env → real.env`) is
//! written through: its target is replaced and the link stays a link.
//!
//! Nothing is ever written, created or chmod-ed outside the install dir: every link on the way
//! to a destination is followed here, and a destination that ends outside the install dir
//! (`.env → /etc/x`, or a dangling `docker → /elsewhere/new`) is not written, with a warning
//! naming the link and where it points. Folders made to hold a file are created one by one
//! inside the install dir, 0700 for a private file and 0755 otherwise. An existing file with a
//! stricter mode than aimem's (a `.env` kept 0600) keeps it, with a note.

use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};

use crate::engine::backup::CONFIG_FILES;
use crate::manifest::checksums::{self, Entry};
use crate::manifest::files::{BackupFiles, Opened};
use crate::manifest::layout::CONFIG_DIR;

/// One config file to write.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// The manifest's name (`docker/.env`).
    pub name: String,
    /// The backup's copy, as messages name it.
    pub from: Utf8PathBuf,
    /// The backup's copy, opened when it was checked (in the backup's folder, never through
    /// a link, or in its bucket).
    pub source: Opened,
    pub to: Utf8PathBuf,
    pub mode: u32,
    /// The destination exists already (the user is asked first).
    pub overwrites: bool,
    /// The install dir: nothing is written outside it.
    pub install: Utf8PathBuf,
    /// Said in the plan: the existing file's stricter mode is kept.
    pub note: Option<String>,
    /// The SHA-256 that `CHECKSUMS.sha256` lists: the bytes written are checked against it,
    /// since the file may change between the check and the write (the prompt is between).
    pub sha256: String,
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
    (files_of_backup, backup): (&dyn BackupFiles, &Utf8Path),
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
        let Some(list) = checksums else {
            // A backup of the Python scripts has no checksums file at all.
            skipped.push(skip(&format!(
                "the backup has no CHECKSUMS.sha256 to verify it with; copy it by hand from {} if you trust it",
                backup.join(&relative)
            )));
            continue;
        };
        let Some(entry) = list.iter().find(|e| e.path == relative) else {
            skipped.push(skip(
                "not listed in CHECKSUMS.sha256, so it cannot be verified",
            ));
            continue;
        };
        let link = files_of_backup
            .local_dir()
            .and_then(|dir| super::sources::symlink_in(dir, &relative));
        if let Some(link) = link {
            skipped.push(skip(&format!(
                "{link} is a symbolic link; aimem does not follow links in a backup"
            )));
            continue;
        }
        if let Some(problem) = checksums::check_one_in(files_of_backup, entry) {
            skipped.push(skip(&problem.to_string()));
            continue;
        }
        let source = match files_of_backup.open(&relative) {
            Ok(source) => source,
            Err(e) => {
                skipped.push(skip(&format!("cannot be read: {e}")));
                continue;
            }
        };
        let to = install.join(dest);
        let real = match resolve_inside(install, &to) {
            Ok(Ok(real)) => real,
            Ok(Err(escape)) => {
                skipped.push(skip(&escape.to_string()));
                continue;
            }
            Err(e) => {
                skipped.push(skip(&format!("cannot follow {to}: {e}")));
                continue;
            }
        };
        let wanted = mode_for(name);
        let existing = current_mode(&real).ok();
        // Keep what the user tightened: aimem's mode, minus the bits the file does not have.
        let mode = existing.map_or(wanted, |m| wanted & m);
        let note = (mode != wanted).then(|| {
            format!(
                "{to} is mode {mode:o}, stricter than the {wanted:o} aimem gives it: the stricter mode is kept"
            )
        });
        files.push(ConfigFile {
            name: name.clone(),
            from: backup.join(&relative),
            source,
            overwrites: to.symlink_metadata().is_ok(),
            to,
            mode,
            install: install.to_owned(),
            note,
            sha256: entry.sha256.clone(),
        });
    }
    (files, skipped)
}

/// A config file is read whole, up to this size (they are a few KiB).
const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// The backup's copy of a config file (checked by [`plan`]), read again from the handle the
/// check opened, with a size bound: the caller checks it again, as it may have changed since.
fn read_backup_copy(file: &ConfigFile) -> std::io::Result<Vec<u8>> {
    let source = file.source.reader_from(0);
    let len = source.len();
    crate::manifest::confined::read_bounded_from(source, len, MAX_CONFIG_BYTES, file.from.as_str())
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
    // Again at write time: the links may have changed since the plan was shown.
    let path = resolve_inside(&file.install, &file.to)?
        .map_err(|escape| std::io::Error::other(escape.to_string()))?;
    // What is there now is kept for the rollback: a regular file only (a FIFO would hang),
    // and no larger than a config file can sensibly be.
    let existing = crate::engine::backup::files::open_regular(&path).and_then(|file| {
        crate::manifest::confined::read_bounded(file, 16 * 1024 * 1024, path.as_str())
    });
    let before = match existing {
        Ok(bytes) => Some((bytes, current_mode(&path)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let content = read_backup_copy(file)?;
    let (sha256, _) = checksums::hash_reader(content.as_slice())?;
    if !sha256.eq_ignore_ascii_case(&file.sha256) {
        return Err(std::io::Error::other(format!(
            "{} changed after it was verified (SHA-256 {sha256}, CHECKSUMS.sha256 says {}); \
             nothing was written from it",
            file.from, file.sha256
        )));
    }
    let created_dirs = missing_dirs(&path);
    log.push(Previous {
        shown: file.to.clone(),
        created_dirs: created_dirs.clone(),
        path: path.clone(),
        before,
    });
    // Private files get private folders.
    let dir_mode = if file.mode & 0o077 == 0 { 0o700 } else { 0o755 };
    for dir in &created_dirs {
        create_one_dir(dir, dir_mode)?;
    }
    replace(&path, &content, file.mode)
}

/// Creates one folder (not its parents, never through a link). One that appeared meanwhile
/// is fine if it is a real folder.
fn create_one_dir(dir: &Utf8Path, mode: u32) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, mode);
    #[cfg(not(unix))]
    let _ = mode;
    match builder.create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            match dir.symlink_metadata()?.file_type().is_dir() {
                true => Ok(()),
                false => Err(e),
            }
        }
        other => other,
    }
}

/// A destination whose links lead out of the install dir.
#[derive(Debug)]
pub struct Escape {
    /// The destination as configured.
    pub path: Utf8PathBuf,
    /// The last link followed, and what it says.
    pub link: Option<(Utf8PathBuf, Utf8PathBuf)>,
    /// Where writing would land.
    pub lands: Utf8PathBuf,
    pub install: Utf8PathBuf,
}

impl std::fmt::Display for Escape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.link {
            Some((link, target)) => write!(
                f,
                "{link} is a symbolic link to {target}, so writing {} would land at {}, outside the install dir {}; aimem writes only inside it. Replace the link with the file itself (or give --install-dir the folder that really holds the files) and restore again",
                self.path, self.lands, self.install
            ),
            None => write!(
                f,
                "{} is outside the install dir {}",
                self.path, self.install
            ),
        }
    }
}

/// Follows `path` (inside `install`) through every symbolic link on the way, like the kernel
/// would when writing it, to the file that would be written, which may not exist yet. An
/// outer `Err` is an I/O failure; `Ok(Err(_))` a destination that lands outside `install`.
pub fn resolve_inside(
    install: &Utf8Path,
    path: &Utf8Path,
) -> std::io::Result<Result<Utf8PathBuf, Escape>> {
    let install_real = existing_real(install)?;
    let mut pending: std::collections::VecDeque<String> = path
        .strip_prefix(install)
        .map_err(|_| std::io::Error::other(format!("{path} is not under {install}")))?
        .components()
        .map(|c| c.as_str().to_string())
        .collect();
    let mut current = install_real.clone();
    let mut missing = false;
    let mut hops = 0;
    let mut last_link = None;
    while let Some(part) = pending.pop_front() {
        match part.as_str() {
            "." => continue,
            ".." => {
                current.pop();
                continue;
            }
            _ => {}
        }
        let candidate = current.join(&part);
        if missing {
            current = candidate;
            continue;
        }
        match candidate.symlink_metadata() {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                // The kernel's own limit on a chain of links.
                if hops > 40 {
                    return Err(std::io::Error::other(format!(
                        "{path}: too many levels of symbolic links"
                    )));
                }
                let target = candidate.read_link_utf8()?;
                let mut rest: Vec<String> = target
                    .components()
                    .filter(|c| !matches!(c, camino::Utf8Component::RootDir))
                    .map(|c| c.as_str().to_string())
                    .collect();
                if target.is_absolute() {
                    current = Utf8PathBuf::from("/");
                }
                rest.extend(pending.drain(..));
                pending = rest.into();
                last_link = Some((candidate, target));
            }
            Ok(_) => current = candidate,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing = true;
                current = candidate;
            }
            Err(e) => return Err(e),
        }
    }
    if current.starts_with(&install_real) && current != install_real {
        Ok(Ok(current))
    } else {
        Ok(Err(Escape {
            path: path.to_owned(),
            link: last_link,
            lands: current,
            install: install.to_owned(),
        }))
    }
}

/// `path` with its existing part canonicalised (links resolved) and the rest appended.
fn existing_real(path: &Utf8Path) -> std::io::Result<Utf8PathBuf> {
    let absolute = std::path::absolute(path)?;
    let absolute = Utf8PathBuf::from_path_buf(absolute)
        .map_err(|_| std::io::Error::other(format!("{path} is not UTF-8")))?;
    let mut rest = Vec::new();
    let mut existing = absolute.as_path();
    loop {
        match existing.canonicalize_utf8() {
            Ok(real) => {
                let mut real = real;
                for part in rest.iter().rev() {
                    real.push(part);
                }
                return Ok(real);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                    return Err(e);
                };
                rest.push(name);
                existing = parent;
            }
            Err(e) => return Err(e),
        }
    }
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
            source: Opened::file(std::fs::File::open(root.join("new")).unwrap()).unwrap(),
            to: root.join(to),
            mode: 0o644,
            overwrites: true,
            install: root.to_owned(),
            note: None,
            sha256: checksums::hash_reader(&b"NEW"[..]).unwrap().0,
        }
    }

    #[test]
    fn a_copy_changed_after_the_check_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(root.join("new"), "SWAPPED").unwrap();
        std::fs::write(root.join("old"), "OLD").unwrap();
        let mut log = Vec::new();
        let err = write(&env_file(root, "old"), &mut log).unwrap_err();
        assert!(
            err.to_string().contains("changed after it was verified"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(root.join("old")).unwrap(), "OLD");
        assert!(log.is_empty());
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

    #[cfg(unix)]
    #[test]
    fn links_are_followed_only_while_they_stay_inside_the_install_dir() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let base = Utf8Path::from_path(dir.path()).unwrap();
        let install = base.join("install");
        std::fs::create_dir_all(install.join("real")).unwrap();
        symlink("real", install.join("docker")).unwrap();
        symlink("../outside/x", install.join(".env")).unwrap();
        symlink("/nonexistent-aimem/made/here", install.join("dangling")).unwrap();
        symlink("real/../../install/real/y", install.join("back-in")).unwrap();
        let resolve = |p: &str| resolve_inside(&install, &install.join(p)).unwrap();
        let real = install.canonicalize_utf8().unwrap();
        assert_eq!(resolve("docker/.env").unwrap(), real.join("real/.env"));
        assert_eq!(resolve("back-in").unwrap(), real.join("real/y"));
        assert_eq!(
            resolve("fresh/sub/file").unwrap(),
            real.join("fresh/sub/file")
        );
        let escape = resolve(".env").unwrap_err();
        assert_eq!(
            escape.lands,
            base.canonicalize_utf8().unwrap().join("outside/x")
        );
        assert!(escape.to_string().contains("../outside/x"));
        let escape = resolve("dangling/file").unwrap_err();
        assert_eq!(
            escape.lands,
            Utf8Path::new("/nonexistent-aimem/made/here/file")
        );
        assert!(resolve("real/../../elsewhere").is_err());
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
