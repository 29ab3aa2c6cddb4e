//! Where the audit reads a backup's files from: a local folder, or the objects of a backup in
//! a bucket, read in place as ranged streams (never copied to disk first).
//!
//! Both hand out an [`Opened`] file: read from start to end (hashing, tar archives), or at any
//! offset (a Parquet file's footer, then its column chunks).

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};

use super::confined;

/// A backup's files, as the audit reads them.
pub trait BackupFiles: Sync {
    /// Opens `relative` (with `/` separators) for reading: `NotFound` when it is not there;
    /// a path that is not plain, a link or a special file is refused.
    fn open(&self, relative: &str) -> io::Result<Opened>;

    /// The size of `relative`, without reading it and without following a link (`NotFound`
    /// when it is not there).
    fn size(&self, relative: &str) -> io::Result<u64>;

    /// Every file there, relative with `/` separators, links included (as files: never
    /// followed), in no set order.
    fn all(&self) -> io::Result<Vec<String>>;

    /// The local folder the files are in, if they are in one (where a link among them can
    /// be named in a message).
    fn local_dir(&self) -> Option<&Utf8Path> {
        None
    }
}

/// A backup folder on a local disk; every file opened inside it only ([`confined`]).
pub struct Folder<'a>(pub &'a Utf8Path);

impl BackupFiles for Folder<'_> {
    fn open(&self, relative: &str) -> io::Result<Opened> {
        Opened::file(confined::open(self.0, relative)?)
    }

    fn size(&self, relative: &str) -> io::Result<u64> {
        confined::check_plain(relative)?;
        Ok(self.0.join(relative).symlink_metadata()?.len())
    }

    fn all(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        walk(self.0, self.0, &mut out)?;
        Ok(out)
    }

    fn local_dir(&self) -> Option<&Utf8Path> {
        Some(self.0)
    }
}

/// A backup folder on a local disk, owned (what outlives the call that named it).
pub struct OwnedFolder(pub Utf8PathBuf);

impl BackupFiles for OwnedFolder {
    fn open(&self, relative: &str) -> io::Result<Opened> {
        Folder(&self.0).open(relative)
    }

    fn size(&self, relative: &str) -> io::Result<u64> {
        Folder(&self.0).size(relative)
    }

    fn all(&self) -> io::Result<Vec<String>> {
        Folder(&self.0).all()
    }

    fn local_dir(&self) -> Option<&Utf8Path> {
        Some(&self.0)
    }
}

/// A backup's files, each opened once: a later open of one is a new reader of the same
/// handle (a local file's descriptor, an object's reader and version). A restore's checksum
/// pass opens each file first, so what it then uploads or loads is the very file that was
/// hashed, even if the name was given to another file meanwhile.
pub struct OpenedOnce {
    inner: Box<dyn BackupFiles>,
    opened: std::sync::Mutex<std::collections::BTreeMap<String, Opened>>,
}

impl OpenedOnce {
    pub fn new(inner: Box<dyn BackupFiles>) -> OpenedOnce {
        OpenedOnce {
            inner,
            opened: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        }
    }
}

impl BackupFiles for OpenedOnce {
    fn open(&self, relative: &str) -> io::Result<Opened> {
        let mut opened = self
            .opened
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(first) = opened.get(relative) {
            return Ok(first.reader_from(0));
        }
        let first = self.inner.open(relative)?;
        opened.insert(relative.to_string(), first.reader_from(0));
        Ok(first)
    }

    fn size(&self, relative: &str) -> io::Result<u64> {
        self.inner.size(relative)
    }

    fn all(&self) -> io::Result<Vec<String>> {
        self.inner.all()
    }

    fn local_dir(&self) -> Option<&Utf8Path> {
        self.inner.local_dir()
    }
}

/// Every file under `dir` (links included, as files: they are not followed), relative to
/// `base`, with `/` separators. A name that is not UTF-8 is kept in its lossy form, so it is
/// reported rather than ending the walk.
fn walk(base: &Utf8Path, dir: &Utf8Path, out: &mut Vec<String>) -> io::Result<()> {
    for entry in dir.as_std_path().read_dir()? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path: Utf8PathBuf = dir.join(&name);
        if entry.file_type()?.is_dir() {
            walk(base, &path, out)?;
        } else if let Ok(relative) = path.strip_prefix(base) {
            out.push(relative.as_str().replace('\\', "/"));
        }
    }
    Ok(())
}

/// Bytes read at any offset of something that is not a local file (an object in a bucket).
pub trait ReadAt: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; 0 only at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

/// One opened file of a backup, with the position its reader has reached. Further readers
/// of the same file ([`Opened::reader_from`]) each have a position of their own; they share
/// the source, which for an object in a bucket keeps a stream open where each reader
/// stands (`s3::transfer::ObjectReader`), so readers that go through the file side by side
/// each continue their own request.
pub struct Opened {
    source: Arc<dyn ReadAt>,
    len: u64,
    position: u64,
    /// A file on a local disk (not an object read over the network).
    local: bool,
}

/// A local file is read at offsets too (`pread`): its readers never share one position.
impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

impl Opened {
    /// Opens something read at offsets, `len` bytes long, at its first byte.
    pub fn at(source: Arc<dyn ReadAt>, len: u64) -> Opened {
        Opened {
            source,
            len,
            position: 0,
            local: false,
        }
    }

    /// An opened local file, at its first byte (its length read once, now).
    pub fn file(file: File) -> io::Result<Opened> {
        let len = file.metadata()?.len();
        Ok(Opened {
            local: true,
            ..Opened::at(Arc::new(file), len)
        })
    }

    /// Whether it is a file on a local disk, where a read costs no request.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads up to `buf.len()` bytes at `offset` (0 at the end), whatever this reader's
    /// position.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let left = usize::try_from(self.len - offset).unwrap_or(usize::MAX);
        let wanted = buf.len().min(left);
        self.source.read_at(&mut buf[..wanted], offset)
    }

    /// Fills `buf` from `offset` on: `UnexpectedEof` when the file ends first.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let read = match at < self.len {
                true => self.source.read_at(&mut buf[done..], at),
                false => Ok(0),
            };
            match read {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file ended before the bytes asked for",
                    ));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A second reader of the same file, from `start` on (this one's position untouched).
    pub fn reader_from(&self, start: u64) -> Opened {
        Opened {
            source: Arc::clone(&self.source),
            len: self.len,
            position: start.min(self.len),
            local: self.local,
        }
    }
}

/// A clone is a second reader at the same position ([`Opened::reader_from`]).
impl Clone for Opened {
    fn clone(&self) -> Opened {
        self.reader_from(self.position)
    }
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("len", &self.len)
            .field("position", &self.position)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Read for Opened {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.read_at(buf, self.position)?;
        self.position += read as u64;
        Ok(read)
    }
}

impl io::Seek for Opened {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let target = match to {
            io::SeekFrom::Start(at) => Some(at),
            io::SeekFrom::End(back) => self.len.checked_add_signed(back),
            io::SeekFrom::Current(by) => self.position.checked_add_signed(by),
        };
        let target = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a seek before the start of the file",
            )
        })?;
        self.position = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Bytes in memory read at offsets, a few at a time (as a network read gives what has
    /// come), counting the reads.
    struct Remote {
        bytes: Vec<u8>,
        reads: AtomicUsize,
    }

    impl ReadAt for Remote {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            let start = usize::try_from(offset).unwrap().min(self.bytes.len());
            let n = buf.len().min(7).min(self.bytes.len() - start);
            buf[..n].copy_from_slice(&self.bytes[start..start + n]);
            Ok(n)
        }
    }

    fn remote(bytes: &[u8]) -> Opened {
        let source = Remote {
            bytes: bytes.to_vec(),
            reads: AtomicUsize::new(0),
        };
        Opened::at(Arc::new(source), bytes.len() as u64)
    }

    #[test]
    fn an_opened_object_reads_whole_seeks_and_hands_out_readers_of_their_own() {
        let text: Vec<u8> = (0..100u8).collect();
        let mut opened = remote(&text);
        assert!(!opened.is_local());
        let mut all = Vec::new();
        opened.read_to_end(&mut all).unwrap();
        assert_eq!(all, text);

        opened.seek(SeekFrom::Start(10)).unwrap();
        let mut second = opened.reader_from(90);
        let mut tail = Vec::new();
        second.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, text[90..]);
        let mut four = [0u8; 4];
        opened.read_exact(&mut four).unwrap();
        assert_eq!(four, [10, 11, 12, 13], "the first reader kept its place");

        opened.seek(SeekFrom::End(-2)).unwrap();
        let mut end = Vec::new();
        opened.read_to_end(&mut end).unwrap();
        assert_eq!(end, [98, 99]);
        assert!(opened.seek(SeekFrom::Current(-200)).is_err());

        let mut twenty = [0u8; 20];
        opened.read_exact_at(&mut twenty, 50).unwrap();
        assert_eq!(twenty[..], text[50..70]);
        let past = opened.read_exact_at(&mut twenty, 90).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_file_opened_once_is_read_again_through_the_same_handle_whatever_its_name_holds_now() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(root.join("a"), b"checked").unwrap();
        let files = OpenedOnce::new(Box::new(OwnedFolder(root.to_owned())));
        let mut first = String::new();
        files.open("a").unwrap().read_to_string(&mut first).unwrap();
        assert_eq!(first, "checked");
        // Another file takes the name (a rename, as an attacker or a sync tool would do).
        std::fs::write(root.join("b"), b"swapped").unwrap();
        std::fs::rename(root.join("b"), root.join("a")).unwrap();
        let mut again = String::new();
        files.open("a").unwrap().read_to_string(&mut again).unwrap();
        assert_eq!(again, "checked");
        assert_eq!(
            files.open("missing").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(files.local_dir(), Some(root));
    }

    #[test]
    fn a_local_file_is_read_through_its_handle_at_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::create_dir(root.join("qdrant")).unwrap();
        std::fs::write(root.join("qdrant/a"), b"0123456789").unwrap();
        std::os::unix::fs::symlink(root.join("qdrant/a"), root.join("link")).unwrap();
        let folder = Folder(root);
        let mut opened = folder.open("qdrant/a").unwrap();
        assert!(opened.is_local());
        assert_eq!(opened.len(), 10);
        let mut second = opened.reader_from(8);
        let mut two = String::new();
        second.read_to_string(&mut two).unwrap();
        assert_eq!(two, "89");
        let mut all = String::new();
        opened.read_to_string(&mut all).unwrap();
        assert_eq!(all, "0123456789");

        assert_eq!(folder.size("qdrant/a").unwrap(), 10);
        assert_eq!(
            folder.open("missing").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(folder.open("link").is_err(), "a link is never followed");
        assert!(folder.open("../a").is_err());
        assert!(folder.size("../a").is_err());
        let mut all = folder.all().unwrap();
        all.sort();
        assert_eq!(all, ["link", "qdrant/a"]);
    }
}
