//! The private partial file of a download, kept across `--retry` attempts so that a broken
//! download can resume from the bytes already on disk instead of starting over.

use std::io::{Read, Seek, SeekFrom, Write};

use camino::Utf8Path;
use tempfile::NamedTempFile;

use crate::qdrant::ResumeFrom;

/// A hidden temporary file beside the target (removed when dropped unless persisted),
/// and what is known about the bytes in it.
pub(super) struct Partial {
    file: NamedTempFile,
    /// The ETag of the answer the bytes on disk came from, when that server offered ranges.
    /// `None` means the bytes must not be resumed.
    etag: Option<String>,
}

impl Partial {
    /// A new partial file for a download that is to become a file in `dir` (where: see
    /// [`crate::workspace::partial_download`]).
    pub(super) fn create(dir: &Utf8Path) -> std::io::Result<Partial> {
        let file = crate::workspace::partial_download(dir)?;
        Ok(Partial { file, etag: None })
    }

    pub(super) fn file(&self) -> &std::fs::File {
        self.file.as_file()
    }

    /// Where the next attempt can resume, if it can: some bytes of a file of `total` bytes
    /// (as Qdrant reported it) are on disk, but not all, and their ETag is known.
    pub(super) fn resume_point(&self, total: Option<u64>) -> Option<ResumeFrom> {
        let etag = self.etag.clone()?;
        let total = total?;
        let offset = self.file().metadata().ok()?.len();
        (offset > 0 && offset < total).then_some(ResumeFrom {
            offset,
            etag,
            total,
        })
    }

    /// Records where the bytes now being written come from (`None`: not resumable).
    pub(super) fn set_etag(&mut self, etag: Option<&str>) {
        self.etag = etag.map(str::to_string);
    }

    /// The bytes on disk are not to be resumed (they did not verify, say).
    pub(super) fn forget(&mut self) {
        self.etag = None;
    }

    /// Prepares the file for a body starting at `start`: keeps exactly the first `start` bytes
    /// (nothing when 0) and returns a writer that hashes them, read once from the disk, and
    /// then everything written to it, which goes to the file after them.
    pub(super) fn continue_at(&self, start: u64) -> std::io::Result<KeptPrefix<'_>> {
        let mut file = self.file();
        file.set_len(start)?;
        file.seek(SeekFrom::Start(0))?;
        Ok(KeptPrefix {
            on_disk: start,
            file,
        })
    }

    /// Renames the complete file to `target`, never over an existing file.
    pub(super) fn persist(self, target: &Utf8Path) -> std::io::Result<()> {
        self.file
            .persist_noclobber(target)
            .map(drop)
            .map_err(|e| e.error)
    }
}

/// The file being downloaded to, whose first `on_disk` bytes are already there: writing those
/// bytes again (to hash them) does not touch the disk; what follows is appended.
pub(super) struct KeptPrefix<'f> {
    on_disk: u64,
    file: &'f std::fs::File,
}

impl KeptPrefix<'_> {
    /// Passes the kept bytes, read from the file in one pass, through `hashing` (which wraps
    /// this writer): afterwards it has seen the whole prefix and the file offset is at its end.
    pub(super) fn replay_into<W: Write>(
        hashing: &mut W,
        file: &std::fs::File,
        kept: u64,
    ) -> std::io::Result<()> {
        let mut reader = file.take(kept);
        let copied = std::io::copy(&mut reader, hashing)?;
        if copied != kept {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the partial file holds {copied} of the {kept} bytes kept"),
            ));
        }
        Ok(())
    }
}

impl Write for KeptPrefix<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.on_disk > 0 {
            let n = buf
                .len()
                .min(usize::try_from(self.on_disk).unwrap_or(usize::MAX));
            self.on_disk -= n as u64;
            return Ok(n);
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::checksums::HashingWriter;

    /// A resumed file hashes exactly as the whole file would, and ends up byte for byte equal.
    #[test]
    fn a_kept_prefix_is_hashed_once_and_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        let whole: Vec<u8> = (0..700_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut partial = Partial::create(dir).unwrap();
        partial.file().write_all(&whole[..300_000]).unwrap();
        partial.set_etag(Some("\"a:b\""));
        let resume = partial.resume_point(Some(whole.len() as u64)).unwrap();
        assert_eq!(resume.offset, 300_000);

        let mut hashing = HashingWriter::new(partial.continue_at(resume.offset).unwrap());
        KeptPrefix::replay_into(&mut hashing, partial.file(), resume.offset).unwrap();
        hashing.write_all(&whole[300_000..]).unwrap();
        let (sha, size, _) = hashing.finish();

        let mut reference = HashingWriter::new(std::io::sink());
        reference.write_all(&whole).unwrap();
        assert_eq!((sha, size), {
            let (s, n, _) = reference.finish();
            (s, n)
        });
        let target = dir.join("done.snapshot");
        partial.persist(&target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), whole);
    }

    /// Starting again from 0 drops what was there.
    #[test]
    fn a_restart_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        let partial = Partial::create(dir).unwrap();
        partial.file().write_all(b"stale bytes").unwrap();
        let mut writer = partial.continue_at(0).unwrap();
        writer.write_all(b"new").unwrap();
        let mut text = String::new();
        let mut file = partial.file();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "new");
        assert!(
            partial.resume_point(Some(100)).is_none(),
            "no ETag: no resume"
        );
    }
}
