//! The one way aimem opens a file inside a backup folder.
//!
//! A backup folder can come from anywhere, so a path it names is walked one component at a
//! time from a handle on the folder, never following a symbolic link (`O_NOFOLLOW` on every
//! step, `..` and absolute paths refused up front): nothing outside the folder can be reached,
//! whatever links it holds or a manifest names. Only a regular file is accepted; the open is
//! non-blocking so a FIFO or a device is refused instead of hanging, and the type is checked on
//! the opened handle (`fstat`), so it cannot be swapped after the check. Whole-file reads have
//! a size bound: a link to `/dev/zero` or a huge file is refused, never loaded.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;

use camino::Utf8Path;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// The longest relative path accepted (Linux's `PATH_MAX`): a longer one is no real file.
pub const MAX_RELATIVE_PATH: usize = 4096;

/// Opens `relative` (with `/` separators) under `dir` for reading, as described above.
///
/// Errors keep their kind (`NotFound` for a missing file) and say what was wrong in words;
/// they name paths, never content.
pub fn open(dir: &Utf8Path, relative: &str) -> io::Result<File> {
    check_plain(relative)?;
    let mut current: OwnedFd = rustix::fs::open(
        dir.as_std_path(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let parts: Vec<&str> = relative.split('/').collect();
    let last = parts.len() - 1;
    for (index, part) in parts.iter().enumerate() {
        let shown = || parts[..=index].join("/");
        let flags = if index == last {
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY
        } else {
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        };
        match rustix::fs::openat(&current, *part, flags, Mode::empty()) {
            Ok(fd) => current = fd,
            Err(errno) => {
                // ELOOP (the last part) or ENOTDIR (a folder on the way) can be a link: say so.
                let is_link = rustix::fs::statat(&current, *part, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
                if is_link {
                    return Err(refused(format!(
                        "{} is a symbolic link; a backup must hold the file itself",
                        shown()
                    )));
                }
                if errno == rustix::io::Errno::NOTDIR {
                    return Err(refused(format!("{} is not a folder", shown())));
                }
                return Err(io::Error::from(errno));
            }
        }
    }
    let kind = FileType::from_raw_mode(rustix::fs::fstat(&current)?.st_mode);
    if kind != FileType::RegularFile {
        return Err(refused(format!(
            "{relative} is {}, not a regular file",
            describe(kind)
        )));
    }
    Ok(File::from(current))
}

/// Reads all of `file`, refusing (without reading further) one longer than `limit` bytes.
pub fn read_bounded(file: File, limit: u64, shown: &str) -> io::Result<Vec<u8>> {
    let expected = file.metadata().map_or(0, |m| m.len());
    read_bounded_from(file, expected, limit, shown)
}

/// Reads `file` as UTF-8 text of at most `limit` bytes (see [`read_bounded`]).
pub fn read_text(file: super::files::Opened, limit: u64, shown: &str) -> io::Result<String> {
    let expected = file.len();
    let bytes = read_bounded_from(file, expected, limit, shown)?;
    String::from_utf8(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{shown} is not UTF-8 text"),
        )
    })
}

/// Reads all of `file` (`expected` bytes long, as far as is known), refusing one longer than
/// `limit` bytes without reading further.
pub fn read_bounded_from(
    file: impl Read,
    expected: u64,
    limit: u64,
    shown: &str,
) -> io::Result<Vec<u8>> {
    // Sized from the file (plus the byte that tells it grew), not grown by doubling.
    let expected = expected.min(limit);
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0) + 1);
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(refused(format!(
            "{shown} is larger than {} MiB, far beyond what aimem writes",
            limit / (1024 * 1024)
        )));
    }
    Ok(bytes)
}

/// [`open`] then [`read_bounded`], as UTF-8 text.
pub fn read_to_string(dir: &Utf8Path, relative: &str, limit: u64) -> io::Result<String> {
    let bytes = read_bounded(open(dir, relative)?, limit, relative)?;
    String::from_utf8(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{relative} is not UTF-8 text"),
        )
    })
}

/// A relative path made only of plain names: not empty, not absolute, no `.`/`..`/empty parts.
pub fn check_plain(relative: &str) -> io::Result<()> {
    let plain = !relative.is_empty()
        && relative.len() <= MAX_RELATIVE_PATH
        && !relative.contains('\0')
        && relative
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if plain {
        Ok(())
    } else {
        Err(refused(format!(
            "`{}` is not a plain path inside the backup folder",
            relative.chars().take(200).collect::<String>()
        )))
    }
}

fn refused(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn describe(kind: FileType) -> &'static str {
    match kind {
        FileType::Directory => "a folder",
        FileType::Fifo => "a FIFO",
        FileType::CharacterDevice | FileType::BlockDevice => "a device",
        FileType::Socket => "a socket",
        FileType::Symlink => "a symbolic link",
        _ => "a special file",
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn folder() -> (tempfile::TempDir, camino::Utf8PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap().to_owned();
        std::fs::create_dir_all(root.join("backup/qdrant")).unwrap();
        std::fs::write(root.join("backup/qdrant/a.snapshot"), "inside").unwrap();
        std::fs::write(root.join("outside"), "SECRET").unwrap();
        (dir, root)
    }

    fn error(root: &Utf8Path, relative: &str) -> String {
        open(&root.join("backup"), relative)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn opens_a_plain_file_inside() {
        let (_dir, root) = folder();
        let text = read_to_string(&root.join("backup"), "qdrant/a.snapshot", 100).unwrap();
        assert_eq!(text, "inside");
        let missing = open(&root.join("backup"), "qdrant/none").unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn never_leaves_the_folder() {
        let (_dir, root) = folder();
        for relative in [
            "../outside",
            "qdrant/../../outside",
            "/etc/passwd",
            "",
            "a//b",
        ] {
            assert!(
                error(&root, relative).contains("not a plain path"),
                "{relative}"
            );
        }
        symlink(root.join("outside"), root.join("backup/qdrant/link")).unwrap();
        assert!(error(&root, "qdrant/link").contains("qdrant/link is a symbolic link"));
        symlink(root.as_std_path(), root.join("backup/up")).unwrap();
        assert!(error(&root, "up/outside").contains("up is a symbolic link"));
        assert!(error(&root, "qdrant/a.snapshot/x").contains("not a folder"));
    }

    #[test]
    fn refuses_what_is_not_a_regular_file_without_blocking() {
        let (_dir, root) = folder();
        let fifo = root.join("backup/fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            fifo.as_std_path(),
            FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .unwrap();
        assert!(error(&root, "fifo").contains("a FIFO, not a regular file"));
        assert!(error(&root, "qdrant").contains("a folder"));
    }

    #[test]
    fn whole_reads_are_bounded() {
        let (_dir, root) = folder();
        let err = read_to_string(&root.join("backup"), "qdrant/a.snapshot", 3).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        let zero = File::open("/dev/zero").unwrap();
        assert!(read_bounded(zero, 1024 * 1024, "zero").is_err());
    }
}
