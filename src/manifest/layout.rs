//! Where things live in and around a backup folder.

use camino::{Utf8Path, Utf8PathBuf};
use time::OffsetDateTime;
use time::macros::format_description;

/// Snapshots live in `qdrant/`, config copies in `config/`, logs in `logs/`.
pub const SNAPSHOT_DIR: &str = "qdrant";
pub const CONFIG_DIR: &str = "config";
pub const LOGS_DIR: &str = "logs";

/// A backup in progress is built in a hidden folder with this prefix in the same root, then
/// renamed into place; one left behind by a killed run is an incomplete backup.
pub const STAGING_PREFIX: &str = ".aimem-staging-";

/// Creates a new file only its owner may read or write: backups hold secrets.
pub fn private_file(path: &Utf8Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Creates a folder (and its parents) only its owner may enter.
pub fn create_private_dir(path: &Utf8Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// `YYYY-MM-DD_HHMMSS`, the name of a backup folder.
pub fn folder_name(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day]_[hour][minute][second]");
    at.format(&format).unwrap_or_else(|_| "backup".to_string())
}

/// Random characters in a working folder's name: nobody can plant something at it beforehand.
const RANDOM_CHARS: usize = 12;

/// Creates a new folder in `parent` named `<prefix><random letters and digits><suffix>`, only its
/// owner may enter (0700), and returns its path.
///
/// The creation is exclusive (a plain mkdir, never a recursive one): it fails rather than take
/// over anything already there, a folder or a link planted at a guessed name alike, so the
/// folder belongs to this run alone and whatever the run later deletes in it is its own. It is
/// checked afterwards to be what it claims: a real folder, not a link.
pub fn create_working_dir(
    parent: &Utf8Path,
    prefix: &str,
    suffix: &str,
) -> std::io::Result<Utf8PathBuf> {
    use std::io::{Error, ErrorKind};
    if !parent.metadata()?.is_dir() {
        return Err(Error::new(
            ErrorKind::NotADirectory,
            format!("{parent} is not a folder"),
        ));
    }
    let mut builder = tempfile::Builder::new();
    builder
        .prefix(prefix)
        .suffix(suffix)
        .rand_bytes(RANDOM_CHARS);
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let created = builder.tempdir_in(parent)?.keep();
    let path = Utf8PathBuf::from_path_buf(created).map_err(|p| {
        Error::new(
            ErrorKind::InvalidData,
            format!("{} is not valid UTF-8", p.display()),
        )
    })?;
    check_real_dir(&path)?;
    Ok(path)
}

/// A real folder, not a link someone swapped in. (Its owner and mode are not checked: on a
/// FAT or NTFS backup disk they are whatever the mount says, and the folder is new anyway.)
fn check_real_dir(path: &Utf8Path) -> std::io::Result<()> {
    if path.symlink_metadata()?.file_type().is_dir() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{path} is not the folder just created"),
        ))
    }
}

/// True when no one but this user (and root) can rename or replace anything on the way to
/// `dir`: every folder from `/` down to it is owned by this user or root, and is writable by
/// no one else unless it is sticky (like /tmp, where others cannot rename what is ours).
/// Working folders live only in such places: in a folder another user controls, ours could
/// be swapped for a link between its creation and its use.
#[cfg(unix)]
pub fn only_we_control(dir: &Utf8Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    let Ok(real) = dir.canonicalize_utf8() else {
        return false;
    };
    real.ancestors().all(|folder| {
        folder.symlink_metadata().is_ok_and(|meta| {
            let owner_ok = meta.uid() == me || meta.uid() == 0;
            let others_cannot_write = meta.mode() & 0o022 == 0;
            let sticky = meta.mode() & 0o1000 != 0;
            meta.is_dir() && owner_ok && (others_cannot_write || sticky)
        })
    })
}

#[cfg(not(unix))]
pub fn only_we_control(_dir: &Utf8Path) -> bool {
    true
}

/// RFC 3339 with microseconds and the offset, like Python's `isoformat()`.
pub fn timestamp(at: OffsetDateTime) -> String {
    let format = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6][offset_hour sign:mandatory]:[offset_minute]"
    );
    at.format(&format).unwrap_or_default()
}

/// The environment variable and default for the folder that holds backups.
pub const BACKUP_ROOT_ENV: &str = "AI_MEMORY_BACKUP_DIR";
pub const DEFAULT_BACKUP_ROOT: &str = "./backups";

/// The backup root when no folder is given: `AI_MEMORY_BACKUP_DIR`, else `./backups`.
pub fn default_root() -> Utf8PathBuf {
    std::env::var(BACKUP_ROOT_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .map_or_else(|| DEFAULT_BACKUP_ROOT.into(), Utf8PathBuf::from)
}

/// True for a folder a running or killed aimem backup is building.
pub fn is_staging(name: &str) -> bool {
    name.starts_with(STAGING_PREFIX)
}

/// `YYYY-MM-DD_HHMMSS`, optionally with a `-N` suffix: the names `backup` gives its folders.
pub fn is_dated(name: &str) -> bool {
    let (Some(base), Some(suffix)) = (name.get(..17), name.get(17..)) else {
        return false;
    };
    let shape_ok = base.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        10 => b == b'_',
        _ => b.is_ascii_digit(),
    });
    let suffix_ok = suffix.is_empty()
        || suffix
            .strip_prefix('-')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    shape_ok && suffix_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn dated_names() {
        assert!(is_dated("2026-02-03_143052") && is_dated("2026-02-03_143052-12"));
        assert!(!is_dated("2026-02-03_14305") && !is_dated("2026-02-03_143052-"));
        assert!(!is_dated("pre-upgrade"));
    }

    #[test]
    fn names_and_timestamps() {
        let at = datetime!(2026-02-03 14:30:52.123456 +01:00);
        assert_eq!(folder_name(at), "2026-02-03_143052");
        assert_eq!(timestamp(at), "2026-02-03T14:30:52.123456+01:00");
    }

    fn mode_of(path: &Utf8Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        path.symlink_metadata().unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn working_folders_are_new_private_and_unpredictable() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        // The same prefix in the same instant (two runs in one second): two folders.
        let a = create_working_dir(root, ".aimem-prerestore-2026-02-03_143052-", "").unwrap();
        let b = create_working_dir(root, ".aimem-prerestore-2026-02-03_143052-", "").unwrap();
        assert_ne!(a, b);
        for made in [&a, &b] {
            assert_eq!(made.parent(), Some(root));
            assert!(made.symlink_metadata().unwrap().is_dir());
            assert_eq!(mode_of(made), 0o700, "{made}");
            let random = &made.file_name().unwrap()[".aimem-prerestore-2026-02-03_143052-".len()..];
            assert_eq!(random.len(), RANDOM_CHARS);
            assert!(
                random.bytes().all(|b| b.is_ascii_alphanumeric()),
                "{random}"
            );
        }
    }

    #[test]
    fn creation_never_goes_through_a_planted_link_or_an_existing_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let victim = root.join("victim");
        std::fs::create_dir(&victim).unwrap();
        // The old, predictable name, planted as a link into the victim folder: the new folder
        // is made elsewhere, and the link and its target stay as they were.
        let planted = root.join(".aimem-prerestore-2026-02-03_143052");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let made = create_working_dir(root, ".aimem-prerestore-2026-02-03_143052", "").unwrap();
        assert_ne!(made, planted);
        assert!(planted.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);
        // And a parent that is not a folder is refused.
        let file = root.join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(create_working_dir(&file, "p-", "").is_err());
    }

    #[test]
    fn a_folder_others_may_write_is_not_ours_alone() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let shared = root.join("shared");
        let private = root.join("private");
        std::fs::create_dir(&shared).unwrap();
        std::fs::create_dir(&private).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(only_we_control(&private));
        assert!(!only_we_control(&shared));
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(
            only_we_control(&shared),
            "sticky: others cannot rename what is ours"
        );
    }
}
