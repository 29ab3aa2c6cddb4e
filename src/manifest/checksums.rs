//! `CHECKSUMS.sha256`: one `<hex>  <relative path>` line per file, as `sha256sum` writes and
//! `sha256sum -c` reads it.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use camino::{Utf8Path, Utf8PathBuf};
use miette::Diagnostic;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::files::{BackupFiles, Folder};
use crate::fingerprint::hex;

/// The checksum file's name inside a backup folder.
pub const CHECKSUMS_FILE: &str = "CHECKSUMS.sha256";

/// `CHECKSUMS.sha256` is read whole, up to this size (over 600,000 lines of 100 bytes: aimem
/// writes one line per file, a handful per backup).
pub const MAX_CHECKSUMS_BYTES: u64 = 64 * 1024 * 1024;

/// At most this many lines are accepted, so the parsed list stays small too.
pub const MAX_ENTRIES: usize = 100_000;

/// Hashing reads this much at a time: large enough for full speed, small enough to stay flat.
const HASH_BUFFER: usize = 1024 * 1024;

/// One listed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub sha256: String,
    /// Relative to the backup folder, with `/` separators.
    pub path: String,
}

#[derive(Debug, Error, Diagnostic)]
pub enum ChecksumsError {
    #[error("{file} line {line}: {problem}")]
    #[diagnostic(
        code(aimem::checksums::malformed),
        help(
            "Each line must be a 64-digit lowercase SHA-256, two spaces, and a path inside the backup folder."
        )
    )]
    Malformed {
        file: Utf8PathBuf,
        line: usize,
        problem: String,
    },

    #[error("cannot read {file}: {source}")]
    #[diagnostic(code(aimem::checksums::io))]
    Io {
        file: Utf8PathBuf,
        source: std::io::Error,
    },
}

/// Parses checksum text strictly: every non-empty line must be well formed.
pub fn parse(file: &Utf8Path, text: &str) -> Result<Vec<Entry>, ChecksumsError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if entries.len() >= MAX_ENTRIES {
            return Err(ChecksumsError::Malformed {
                file: file.to_owned(),
                line: index + 1,
                problem: format!("more than {MAX_ENTRIES} files listed; no backup holds so many"),
            });
        }
        let malformed = |problem: &str| ChecksumsError::Malformed {
            file: file.to_owned(),
            line: index + 1,
            problem: problem.to_string(),
        };
        if line.is_empty() {
            continue;
        }
        let (digest, rest) = line
            .split_at_checked(64)
            .ok_or_else(|| malformed("too short for a SHA-256 line"))?;
        if !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed("the digest is not 64 hex digits"));
        }
        // sha256sum writes two spaces (text mode) or a space and `*` (binary mode).
        let path = rest
            .strip_prefix("  ")
            .or_else(|| rest.strip_prefix(" *"))
            .ok_or_else(|| malformed("expected two spaces after the digest"))?;
        check_relative(path).map_err(|problem| malformed(&problem))?;
        entries.push(Entry {
            sha256: digest.to_ascii_lowercase(),
            path: path.to_string(),
        });
    }
    Ok(entries)
}

/// Reads and parses `CHECKSUMS.sha256` in `backup_dir`.
pub fn read(backup_dir: &Utf8Path) -> Result<Vec<Entry>, ChecksumsError> {
    read_from(&Folder(backup_dir), backup_dir)
}

/// Reads and parses `CHECKSUMS.sha256` of the backup whose files are `files`, shown as `shown`.
pub fn read_from(files: &dyn BackupFiles, shown: &Utf8Path) -> Result<Vec<Entry>, ChecksumsError> {
    let file = shown.join(CHECKSUMS_FILE);
    let text = files
        .open(CHECKSUMS_FILE)
        .and_then(|opened| super::confined::read_text(opened, MAX_CHECKSUMS_BYTES, CHECKSUMS_FILE))
        .map_err(|source| ChecksumsError::Io {
            file: file.clone(),
            source,
        })?;
    parse(&file, &text)
}

/// A path a checksum line may name: relative, inside the folder, no escapes sha256sum would add.
pub fn check_relative(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.len() > super::confined::MAX_RELATIVE_PATH {
        return Err(format!(
            "the path is {} bytes long, beyond any real file's",
            path.len()
        ));
    }
    if path.starts_with('/') || path.split('/').any(|part| part == ".." || part.is_empty()) {
        return Err(format!(
            "`{path}` is not a plain path inside the backup folder"
        ));
    }
    if path.contains(['\\', '\n', '\r']) {
        return Err(format!("`{path}` holds a character sha256sum would escape"));
    }
    Ok(())
}

/// The file text for these entries, sorted by path.
pub fn render(entries: &[Entry]) -> String {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    sorted
        .iter()
        .map(|e| format!("{}  {}\n", e.sha256, e.path))
        .collect()
}

/// Writes `CHECKSUMS.sha256` into `dir` and syncs it.
pub fn write(dir: &Utf8Path, entries: &[Entry]) -> std::io::Result<()> {
    let mut file = super::layout::private_file(&dir.join(CHECKSUMS_FILE))?;
    file.write_all(render(entries).as_bytes())?;
    file.sync_all()
}

/// SHA-256 and length of a file, read in fixed-size chunks (memory stays flat).
///
/// For files aimem wrote itself; a backup's files are opened with [`super::confined::open`]
/// and hashed with [`hash_reader`].
pub fn hash_file(path: &Utf8Path) -> std::io::Result<(String, u64)> {
    hash_reader(std::fs::File::open(path)?)
}

/// SHA-256 and length of everything `file` yields, read in fixed-size chunks.
pub fn hash_reader(file: impl Read) -> std::io::Result<(String, u64)> {
    hash_reader_observed(file, &|_| {})
}

/// Someone watching [`check_all`] hash a backup (a progress bar).
pub trait HashProgress: Send + Sync {
    /// Hashing starts: this many bytes are listed in all.
    fn start(&self, total_bytes: u64);
    /// Another block of this many bytes was hashed.
    fn hashed(&self, bytes: u64);
}

thread_local! {
    /// The watcher of the [`check_all`] calls made on this thread, set by [`observed`]. Ambient
    /// rather than a parameter, so the layers between a command and the hashing (the audit,
    /// the restore's checks) need not carry the command's UI.
    static WATCHER: RefCell<Option<Arc<dyn HashProgress>>> = const { RefCell::new(None) };
}

/// Runs `work` with `watcher` told about every [`check_all`] it makes on this thread.
pub fn observed<R>(watcher: Arc<dyn HashProgress>, work: impl FnOnce() -> R) -> R {
    let previous = WATCHER.with(|w| w.replace(Some(watcher)));
    let result = work();
    WATCHER.with(|w| *w.borrow_mut() = previous);
    result
}

/// [`hash_reader`], telling `on_block` the size of each block hashed.
fn hash_reader_observed(
    mut file: impl Read,
    on_block: &dyn Fn(u64),
) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; HASH_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..n]);
        total += n as u64;
        on_block(n as u64);
    }
    Ok((hex(&hasher.finalize()), total))
}

/// A writer that hashes every byte on its way to the inner writer.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// Hex SHA-256 and byte count of everything written, and the inner writer.
    pub fn finish(self) -> (String, u64, W) {
        (hex(&self.hasher.finalize()), self.written, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A listed file that does not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file is listed but absent.
    Missing { path: String },
    /// The file's SHA-256 differs from the listed one.
    Mismatch {
        path: String,
        expected: String,
        actual: String,
    },
    /// The file could not be read.
    Unreadable { path: String, error: String },
}

impl Problem {
    pub fn path(&self) -> &str {
        match self {
            Problem::Missing { path }
            | Problem::Mismatch { path, .. }
            | Problem::Unreadable { path, .. } => path,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing { path } => {
                write!(f, "{path}: listed in {CHECKSUMS_FILE} but missing")
            }
            Problem::Mismatch {
                path,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "{path}: SHA-256 is {actual}, {CHECKSUMS_FILE} says {expected}"
                )
            }
            Problem::Unreadable { path, error } => write!(f, "{path}: cannot be read ({error})"),
        }
    }
}

/// Hashes every listed file under `dir` and returns what does not match, in list order.
///
/// Files are hashed in parallel by a small pool of scoped threads (one per core) pulling from
/// a shared queue, largest first, so one big snapshot starts at once instead of last and the
/// small files fill the other cores meanwhile. One file cannot be split: SHA-256 is
/// sequential, so a single large file runs at one core's speed (sha2 picks the CPU's SHA
/// extensions at run time where present). Each worker holds one 1 MiB buffer: memory stays
/// flat whatever the file sizes.
pub fn check_all(dir: &Utf8Path, entries: &[Entry]) -> Vec<Problem> {
    check_all_in(&Folder(dir), entries)
}

/// [`check_all`] of the files of a backup wherever they are (a bucket's objects, in place).
pub fn check_all_in(files: &dyn BackupFiles, entries: &[Entry]) -> Vec<Problem> {
    let watcher = WATCHER.with(|w| w.borrow().clone());
    let on_block = |n: u64| {
        if let Some(watcher) = &watcher {
            watcher.hashed(n);
        }
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(entries.len());
    let mut order: Vec<(u64, usize)> = entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            // Not followed: a listed link is refused by the check itself.
            let size = files.size(&entry.path).unwrap_or(0);
            (size, index)
        })
        .collect();
    if let Some(watcher) = &watcher {
        watcher.start(order.iter().map(|(size, _)| size).sum());
    }
    if workers <= 1 {
        return entries
            .iter()
            .filter_map(|entry| check_one_observed(files, entry, &on_block))
            .collect();
    }
    order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Problem>>> = Mutex::new(vec![None; entries.len()]);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(&(_, index)) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let problem = check_one_observed(files, &entries[index], &on_block);
                    // A poisoned lock only means another worker panicked; its slot stays None
                    // and the scope re-raises the panic, so the data is still sound to use.
                    let mut slots = results.lock().unwrap_or_else(PoisonError::into_inner);
                    slots[index] = problem;
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .into_iter()
        .flatten()
        .collect()
}

/// Checks one listed file; None when it matches.
pub fn check_one(dir: &Utf8Path, entry: &Entry) -> Option<Problem> {
    check_one_in(&Folder(dir), entry)
}

/// [`check_one`] of a file of a backup wherever it is.
pub fn check_one_in(files: &dyn BackupFiles, entry: &Entry) -> Option<Problem> {
    check_one_observed(files, entry, &|_| {})
}

fn check_one_observed(
    files: &dyn BackupFiles,
    entry: &Entry,
    on_block: &dyn Fn(u64),
) -> Option<Problem> {
    let path = entry.path.clone();
    // Opened inside the folder only: a link (which could lead anywhere, and change or vanish
    // on its own), a FIFO or a device is refused. A backup holds its files, not links to them.
    let hashed = files
        .open(&entry.path)
        .and_then(|file| hash_reader_observed(file, on_block));
    match hashed {
        Ok((actual, _)) if actual == entry.sha256 => None,
        Ok((actual, _)) => Some(Problem::Mismatch {
            path,
            expected: entry.sha256.clone(),
            actual,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Problem::Missing { path }),
        Err(e) => Some(Problem::Unreadable {
            path,
            error: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn check_all_names_missing_and_changed_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(root.join("good"), "hello world").unwrap();
        std::fs::write(root.join("bad"), "hello world!").unwrap();
        let good = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9".to_string();
        let entries = vec![
            Entry {
                sha256: good.clone(),
                path: "good".into(),
            },
            Entry {
                sha256: good.clone(),
                path: "bad".into(),
            },
            Entry {
                sha256: good.clone(),
                path: "gone".into(),
            },
        ];
        std::os::unix::fs::symlink(root.join("good"), root.join("link")).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::fs::write(root.join("real/inner"), "hello world").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("linked-dir")).unwrap();
        for path in ["link", "linked-dir/inner"] {
            let entry = Entry {
                sha256: good.clone(),
                path: path.into(),
            };
            let problem = check_one(root, &entry).expect("a link is a problem");
            assert!(problem.to_string().contains("symbolic link"), "{problem}");
        }
        let problems = check_all(root, &entries);
        assert_eq!(problems.len(), 2);
        assert!(matches!(&problems[0], Problem::Mismatch { path, .. } if path == "bad"));
        assert_eq!(
            problems[1],
            Problem::Missing {
                path: "gone".into()
            }
        );
    }

    use super::*;

    #[test]
    fn parallel_check_keeps_list_order_over_many_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let mut entries = Vec::new();
        for i in 0..40 {
            let name = format!("f{i:02}");
            std::fs::write(root.join(&name), vec![b'x'; i * 1000]).unwrap();
            let (digest, _) = hash_file(&root.join(&name)).unwrap();
            // Every third file is listed with a wrong digest.
            let sha256 = if i % 3 == 0 { A.to_string() } else { digest };
            entries.push(Entry { sha256, path: name });
        }
        let problems = check_all(root, &entries);
        let paths: Vec<&str> = problems.iter().map(Problem::path).collect();
        let expected: Vec<String> = (0..40).step_by(3).map(|i| format!("f{i:02}")).collect();
        assert_eq!(paths, expected);
    }

    const A: &str = "8429c265cc4c2dfa13dd3be91060e133b38c3017499104d2a452e8999d682fa7";

    #[test]
    fn round_trips_sha256sum_format() {
        let entries = vec![
            Entry {
                sha256: A.into(),
                path: "qdrant/conventions.snapshot".into(),
            },
            Entry {
                sha256: A.into(),
                path: "manifest.json".into(),
            },
        ];
        let text = render(&entries);
        assert_eq!(
            text,
            format!("{A}  manifest.json\n{A}  qdrant/conventions.snapshot\n")
        );
        let parsed = parse(Utf8Path::new("C"), &text).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].path, "manifest.json");
    }

    #[test]
    fn binary_mode_lines_are_accepted() {
        let parsed = parse(Utf8Path::new("C"), &format!("{A} *manifest.json\n")).unwrap();
        assert_eq!(parsed[0].path, "manifest.json");
    }

    #[test]
    fn malformed_lines_are_named_by_number() {
        let cases = [
            (format!("{A}  ok\nnot a line\n"), 2, "too short"),
            (format!("{}  x\n", "z".repeat(64)), 1, "hex"),
            (format!("{A} x\n"), 1, "two spaces"),
            (format!("{A}  /etc/passwd\n"), 1, "not a plain path"),
            (format!("{A}  qdrant/../../x\n"), 1, "not a plain path"),
        ];
        for (text, line, words) in cases {
            let err = parse(Utf8Path::new("C"), &text).unwrap_err();
            let ChecksumsError::Malformed {
                line: got, problem, ..
            } = &err
            else {
                panic!()
            };
            assert_eq!(*got, line, "{text:?}");
            assert!(problem.contains(words), "{problem}");
        }
    }

    /// Deeply nested paths cost time in proportion to their length: a 2 MB path (a million
    /// folders deep) is refused at once by the parser, and the check of such an entry stops at
    /// the first component that does not exist. Walking it prefix by prefix (the old link
    /// check) took hours at this size; no timing is asserted, the test simply finishes.
    #[test]
    fn deep_paths_are_handled_in_linear_time() {
        let deep = format!("{}f", "a/".repeat(1_000_000));
        let text = format!("{A}  {deep}\n{A}  manifest.json\n");
        let err = parse(Utf8Path::new("C"), &text).unwrap_err();
        assert!(err.to_string().contains("beyond any real file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("a/a/a")).unwrap();
        let entry = Entry {
            sha256: A.into(),
            path: deep.clone(),
        };
        assert!(check_one(root, &entry).is_some());
        let shallow_enough = format!("{}f", "a/".repeat(2000));
        let entry = Entry {
            sha256: A.into(),
            path: shallow_enough,
        };
        assert_eq!(
            check_all(root, &[entry.clone(), entry.clone()]),
            [
                Problem::Missing {
                    path: entry.path.clone()
                },
                Problem::Missing { path: entry.path }
            ]
        );
    }

    #[test]
    fn the_number_of_lines_is_bounded() {
        let line = format!("{A}  f\n");
        let text = line.repeat(MAX_ENTRIES + 1);
        let err = parse(Utf8Path::new("C"), &text).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
        assert_eq!(
            parse(Utf8Path::new("C"), &line.repeat(10)).unwrap().len(),
            10
        );
    }

    #[test]
    fn hashing_writer_and_hash_file_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::from_path_buf(dir.path().join("f")).unwrap();
        let mut writer = HashingWriter::new(std::fs::File::create(&path).unwrap());
        writer.write_all(b"hello world").unwrap();
        let (digest, len, _) = writer.finish();
        assert_eq!(
            digest,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(hash_file(&path).unwrap(), (digest, len));
    }
}
