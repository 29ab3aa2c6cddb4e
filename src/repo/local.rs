//! The backup root as a local folder: each backup a folder in it, built in a hidden staging
//! folder (`.aimem-staging-…`) and renamed into place once complete and synced; removed by a
//! rename out of sight (`.aimem-deleting-…`), then deleted.

use std::fs::File;
use std::io::{self, Write};
use std::time::SystemTime;

use camino::{Utf8Path, Utf8PathBuf};

use super::{Backup, Found, Kind, NewFile, Removed, Repo, Staging};
use crate::manifest::layout::{
    STAGING_PREFIX, create_private_dir, create_working_dir, folder_name, is_staging, private_file,
};
use crate::manifest::{Manifest, ManifestError, audit, confined};
use crate::names::SafeName;

/// A backup root that is a local folder.
#[derive(Debug, Clone)]
pub struct LocalRepo {
    root: Utf8PathBuf,
}

impl LocalRepo {
    /// The folder `root`, as given (it need not exist: listing it then fails with `NotFound`).
    pub fn new(root: impl Into<Utf8PathBuf>) -> LocalRepo {
        LocalRepo { root: root.into() }
    }

    /// The root a backup writes into: made if missing (its parents too), and named by its
    /// absolute, resolved path from here on.
    pub fn prepare(output: &Utf8Path) -> io::Result<LocalRepo> {
        std::fs::create_dir_all(output)?;
        Ok(LocalRepo::new(output.canonicalize_utf8()?))
    }

    /// The root folder.
    pub fn path(&self) -> &Utf8Path {
        &self.root
    }
}

impl Repo for LocalRepo {
    fn location(&self) -> &Utf8Path {
        &self.root
    }

    fn list(&self) -> io::Result<Vec<Found>> {
        let mut found = Vec::new();
        for entry in self.root.as_std_path().read_dir()? {
            let Ok(entry) = entry else { continue };
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let raw = entry.file_name();
            let name = raw.to_string_lossy().into_owned();
            if !is_dir || (name.starts_with('.') && !is_staging(&name)) {
                continue;
            }
            let location = self.root.join(&name);
            let name_is_utf8 = raw.to_str().is_some();
            // A folder whose name is not UTF-8 is listed, never read.
            let (size_bytes, modified) = match name_is_utf8 {
                true => (
                    folder_size(&location),
                    location.metadata().and_then(|m| m.modified()).ok(),
                ),
                false => (0, None),
            };
            found.push(Found {
                kind: match is_staging(&name) {
                    true => Kind::Staging,
                    false => Kind::Published,
                },
                name,
                location,
                name_is_utf8,
                size_bytes,
                modified,
            });
        }
        Ok(found)
    }

    fn open(&self, found: &Found) -> io::Result<Box<dyn Backup>> {
        if !found.name_is_utf8 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the name of {} is not valid UTF-8", found.location),
            ));
        }
        Ok(Box::new(LocalBackup::at(found.location.clone())))
    }

    fn last_change(&self, found: &Found) -> Option<SystemTime> {
        newest_change(&found.location)
    }

    fn free_name(&self, at: time::OffsetDateTime) -> Utf8PathBuf {
        free_folder(&self.root, at)
    }

    fn begin(&self, wanted: &SafeName) -> io::Result<Box<dyn Staging>> {
        let dir = create_staging_folder(&self.root, wanted)?;
        Ok(Box::new(LocalStaging {
            dir,
            wanted: self.root.join(wanted.as_str()),
        }))
    }

    fn remove(&self, found: &Found) -> io::Result<Removed> {
        if !found.name_is_utf8 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the name of {} is not valid UTF-8", found.location),
            ));
        }
        let hidden = self.root.join(format!("{DELETING_PREFIX}{}", found.name));
        std::fs::rename(&found.location, &hidden)?;
        Ok(match std::fs::remove_dir_all(&hidden) {
            Ok(()) => Removed::Fully,
            Err(e) => Removed::HalfWay(e),
        })
    }

    /// The process id ends a staging folder's name.
    fn writer_alive(&self, found: &Found) -> Option<bool> {
        let pid = found.name.rsplit_once('-')?.1.parse::<i32>().ok()?;
        Some(super::process_alive(pid))
    }

    fn finish_removals(&self) -> Vec<(String, io::Error)> {
        let Ok(entries) = self.root.read_dir_utf8() else {
            return Vec::new();
        };
        let mut failed = Vec::new();
        for entry in entries.flatten() {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && entry.file_name().starts_with(DELETING_PREFIX) {
                if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                    failed.push((entry.path().to_string(), e));
                }
            }
        }
        failed
    }
}

/// Hidden name a folder takes while it is deleted, so a deletion that fails half way never
/// leaves something that looks like a backup (or a damaged one) behind.
const DELETING_PREFIX: &str = ".aimem-deleting-";

/// A backup that is a local folder.
#[derive(Debug, Clone)]
pub struct LocalBackup {
    dir: Utf8PathBuf,
}

impl LocalBackup {
    /// The backup folder `dir` (a path as the user gave it, or one a listing found).
    pub fn at(dir: Utf8PathBuf) -> LocalBackup {
        LocalBackup { dir }
    }
}

impl Backup for LocalBackup {
    fn location(&self) -> &Utf8Path {
        &self.dir
    }

    fn open(&self, relative: &str) -> io::Result<File> {
        confined::open(&self.dir, relative)
    }

    fn manifest(&self) -> Result<Manifest, ManifestError> {
        Manifest::read(&self.dir)
    }

    fn folder(&self) -> io::Result<Utf8PathBuf> {
        Ok(self.dir.clone())
    }

    fn audit(&self, options: audit::Options) -> audit::Audit {
        audit::audit(&self.dir, options)
    }
}

/// A backup being built in a staging folder of its root.
#[derive(Debug)]
pub struct LocalStaging {
    dir: Utf8PathBuf,
    /// Where it is to be published.
    wanted: Utf8PathBuf,
}

impl Staging for LocalStaging {
    fn location(&self) -> &Utf8Path {
        &self.dir
    }

    fn create_file(&self, relative: &str) -> io::Result<Box<dyn NewFile>> {
        confined::check_plain(relative)?;
        let path = self.dir.join(relative);
        if let Some(parent) = path.parent() {
            create_private_dir(parent)?;
        }
        Ok(Box::new(LocalFile {
            file: private_file(&path)?,
        }))
    }

    fn folder(&self) -> Option<&Utf8Path> {
        Some(&self.dir)
    }

    fn discard(&self) -> io::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn remove_file(&self, relative: &str) -> io::Result<()> {
        confined::check_plain(relative)?;
        match std::fs::remove_file(self.dir.join(relative)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Syncs the staging tree and renames it to its final name (the next free `-N` one if
    /// another run took it meanwhile), then syncs the root so the rename itself survives a
    /// crash.
    fn commit(&self) -> io::Result<Utf8PathBuf> {
        sync_tree_dirs(&self.dir)?;
        let used = publish_no_replace(&self.dir, &self.wanted)?;
        if let Some(root) = used.parent() {
            sync_dir(root)?;
        }
        Ok(used)
    }
}

/// A new file in a staging folder.
struct LocalFile {
    file: File,
}

impl Write for LocalFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl NewFile for LocalFile {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.file.flush()?;
        self.file.sync_all()
    }
}

/// A free name in `root` for a backup taken at `at`: the timestamp, with `-2`, `-3`… if taken.
pub fn free_folder(root: &Utf8Path, at: time::OffsetDateTime) -> Utf8PathBuf {
    let base = folder_name(at);
    let mut candidate = root.join(&base);
    let mut n = 2;
    while candidate.symlink_metadata().is_ok() {
        candidate = root.join(format!("{base}-{n}"));
        n += 1;
    }
    candidate
}

/// Creates the staging folder for a backup that will be named `final_name`:
/// `.aimem-staging-<final name>-<random>-<pid>`, new and owned by this run alone (see
/// [`create_working_dir`]). The name starts with the final name (so `list` shows when it was
/// started) and ends with the process id (so `prune` can tell whether its writer still runs).
pub fn create_staging_folder(root: &Utf8Path, final_name: &SafeName) -> io::Result<Utf8PathBuf> {
    create_working_dir(
        root,
        &format!("{STAGING_PREFIX}{final_name}-"),
        &format!("-{}", std::process::id()),
    )
}

/// Renames the finished staging folder to `wanted`, or, when another run took that name
/// meanwhile, to the next free `-N` name. Never replaces anything. Returns the name used.
pub fn publish_no_replace(staging: &Utf8Path, wanted: &Utf8Path) -> io::Result<Utf8PathBuf> {
    let root = wanted.parent().unwrap_or(Utf8Path::new("."));
    let base = wanted.file_name().unwrap_or("backup");
    let mut candidate = wanted.to_owned();
    let mut n = 2;
    loop {
        match rename_new(staging, &candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if taken(&e) && n < 10_000 => {
                candidate = root.join(format!("{base}-{n}"));
                n += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The target exists: EEXIST from RENAME_NOREPLACE, ENOTEMPTY/EEXIST from a plain rename onto
/// a folder.
fn taken(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == rustix::io::Errno::EXIST.raw_os_error()
            || code == rustix::io::Errno::NOTEMPTY.raw_os_error()
    ) || e.kind() == io::ErrorKind::AlreadyExists
}

/// Renames the finished folder `from` to `to`, which must not exist: never replaces anything
/// (an empty folder or a link planted at `to` makes it fail with `AlreadyExists`).
pub fn rename_new(from: &Utf8Path, to: &Utf8Path) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        use rustix::io::Errno;
        let flags = RenameFlags::NOREPLACE;
        match renameat_with(CWD, from.as_std_path(), CWD, to.as_std_path(), flags) {
            Ok(()) => return Ok(()),
            // Filesystems without RENAME_NOREPLACE (some network and FUSE ones) refuse the
            // flag itself: then claim the name below.
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    claim_then_rename(from, to)
}

/// Claims `to` with an exclusive mkdir (which fails on anything already there, a link
/// included), then renames over that empty folder of our own.
fn claim_then_rename(from: &Utf8Path, to: &Utf8Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(to)?;
    std::fs::rename(from, to).inspect_err(|_| {
        std::fs::remove_dir(to).ok();
    })
}

/// Files were synced as they were written; this syncs the folders holding them.
fn sync_tree_dirs(dir: &Utf8Path) -> io::Result<()> {
    for entry in dir.read_dir_utf8()? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree_dirs(entry.path())?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Utf8Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Total size of the regular files under `dir` (errors count as zero: this is for display).
fn folder_size(dir: &Utf8Path) -> u64 {
    let Ok(entries) = dir.read_dir_utf8() else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => folder_size(entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// The latest modification time of the folder or anything inside it (links not followed).
fn newest_change(dir: &Utf8Path) -> Option<SystemTime> {
    let mut newest = dir.symlink_metadata().and_then(|m| m.modified()).ok();
    for entry in dir.read_dir_utf8().ok()?.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let time = if meta.is_dir() {
            newest_change(entry.path())
        } else {
            meta.modified().ok()
        };
        newest = newest.max(time);
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn mode_of(path: &Utf8Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        path.symlink_metadata().unwrap().permissions().mode() & 0o777
    }

    fn name(text: &str) -> SafeName {
        SafeName::new(text).unwrap()
    }

    #[test]
    fn a_staging_folder_keeps_the_shape_list_and_prune_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let staging = create_staging_folder(root, &name("2026-02-03_143052")).unwrap();
        let folder = staging.file_name().unwrap();
        assert!(is_staging(folder), "{folder}");
        assert!(
            folder.starts_with(".aimem-staging-2026-02-03_143052-"),
            "{folder}"
        );
        let (_, pid) = folder.rsplit_once('-').unwrap();
        assert_eq!(pid, std::process::id().to_string());
        assert_eq!(mode_of(&staging), 0o700);
        let again = create_staging_folder(root, &name("2026-02-03_143052")).unwrap();
        assert_ne!(staging, again);
        // `list` still reads when it was started.
        let listed = crate::repo::catalog::scan(root).unwrap();
        assert_eq!(listed.len(), 2);
        for l in listed {
            assert_eq!(l.state, crate::repo::catalog::State::Incomplete);
            assert_eq!(
                l.taken,
                Some(time::macros::datetime!(2026-02-03 14:30:52 UTC))
            );
        }
    }

    #[test]
    fn the_final_rename_replaces_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let staging = root.join("staging");
        std::fs::create_dir(&staging).unwrap();
        std::fs::write(staging.join("manifest.json"), "{}").unwrap();
        // An empty folder planted at the final name (a plain rename would replace it).
        let final_dir = root.join("2026-02-03_143052");
        std::fs::create_dir(&final_dir).unwrap();
        assert!(rename_new(&staging, &final_dir).is_err());
        assert!(staging.join("manifest.json").is_file());
        assert_eq!(std::fs::read_dir(&final_dir).unwrap().count(), 0);
        // A link planted there is neither followed nor replaced.
        let victim = root.join("victim");
        std::fs::create_dir(&victim).unwrap();
        std::fs::remove_dir(&final_dir).unwrap();
        std::os::unix::fs::symlink(&victim, &final_dir).unwrap();
        assert!(rename_new(&staging, &final_dir).is_err());
        assert!(
            final_dir
                .symlink_metadata()
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);
        // A free name works.
        let free = root.join("2026-02-03_143052-2");
        rename_new(&staging, &free).unwrap();
        assert!(free.join("manifest.json").is_file());
    }

    #[test]
    fn a_taken_name_gets_a_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let at = datetime!(2026-02-03 14:30:52 UTC);
        std::fs::create_dir(root.join("2026-02-03_143052")).unwrap();
        assert_eq!(free_folder(root, at), root.join("2026-02-03_143052-2"));
        std::fs::create_dir(root.join("2026-02-03_143052-2")).unwrap();
        assert_eq!(free_folder(root, at), root.join("2026-02-03_143052-3"));
    }

    #[test]
    fn the_fallback_never_replaces_either() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::create_dir(root.join("a")).unwrap();
        std::fs::create_dir(root.join("x")).unwrap();
        let e = claim_then_rename(&root.join("a"), &root.join("x")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(root.join("a").is_dir());
    }

    #[test]
    fn a_taken_name_is_never_replaced_the_next_free_one_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        for name in ["a", "b"] {
            std::fs::create_dir(root.join(name)).unwrap();
            std::fs::write(root.join(name).join("f"), name).unwrap();
        }
        // Another run published `x` (even empty) and `x-2` meanwhile.
        std::fs::create_dir(root.join("x")).unwrap();
        std::fs::create_dir(root.join("x-2")).unwrap();
        let used = publish_no_replace(&root.join("a"), &root.join("x")).unwrap();
        assert_eq!(used, root.join("x-3"));
        assert_eq!(std::fs::read_to_string(root.join("x-3/f")).unwrap(), "a");
        let used = publish_no_replace(&root.join("b"), &root.join("y")).unwrap();
        assert_eq!(used, root.join("y"));
        assert!(root.join("x").read_dir().unwrap().next().is_none());
    }

    #[test]
    fn a_staged_backup_is_published_whole_under_a_free_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let repo = LocalRepo::new(root);
        let staging = repo.begin(&name("2026-02-03_143052")).unwrap();
        let location = staging.location().to_owned();
        super::super::write_file(&*staging, "config/docker/.env", b"A=1\n").unwrap();
        super::super::write_file(&*staging, "manifest.json", b"{}").unwrap();
        // Never over a file already written, never outside the folder.
        assert!(staging.create_file("manifest.json").is_err());
        for bad in ["../x", "/etc/x", "a//b", "./x", ""] {
            assert!(staging.create_file(bad).is_err(), "{bad}");
        }
        assert_eq!(mode_of(&location.join("config/docker/.env")) & 0o777, 0o600);
        assert_eq!(mode_of(&location.join("config/docker")), 0o700);
        // Listed as incomplete until published.
        let listed = repo.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].kind, Kind::Staging);
        // Another run took the name meanwhile.
        std::fs::create_dir(root.join("2026-02-03_143052")).unwrap();
        let used = staging.commit().unwrap();
        assert_eq!(used, root.join("2026-02-03_143052-2"));
        assert!(!location.exists());
        assert_eq!(
            std::fs::read_to_string(used.join("manifest.json")).unwrap(),
            "{}"
        );
    }

    #[test]
    fn a_removal_hides_the_folder_first_and_is_finished_later() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("2026-02-03_143052/qdrant")).unwrap();
        std::fs::write(root.join("2026-02-03_143052/qdrant/a.snapshot"), "x").unwrap();
        std::fs::create_dir(root.join(".aimem-deleting-old")).unwrap();
        std::fs::write(root.join("file"), "not a backup").unwrap();
        let repo = LocalRepo::new(root);
        let listed = repo.list().unwrap();
        assert_eq!(listed.len(), 1, "hidden folders and files are no backups");
        assert_eq!(listed[0].size_bytes, 1);
        assert!(matches!(repo.remove(&listed[0]).unwrap(), Removed::Fully));
        assert!(repo.list().unwrap().is_empty());
        assert!(repo.finish_removals().is_empty());
        assert!(!root.join(".aimem-deleting-old").exists());
        assert!(root.join("file").exists());
    }
}
