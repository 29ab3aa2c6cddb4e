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

/// A free name in `root` for a backup taken at `at`: the timestamp, with `-2`, `-3`… if taken.
pub fn free_folder(root: &Utf8Path, at: OffsetDateTime) -> Utf8PathBuf {
    let base = folder_name(at);
    let mut candidate = root.join(&base);
    let mut n = 2;
    while candidate.symlink_metadata().is_ok() {
        candidate = root.join(format!("{base}-{n}"));
        n += 1;
    }
    candidate
}

/// The staging folder for a backup that will be named `final_name`.
pub fn staging_folder(root: &Utf8Path, final_name: &str) -> Utf8PathBuf {
    root.join(format!(
        "{STAGING_PREFIX}{final_name}-{}",
        std::process::id()
    ))
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
}
