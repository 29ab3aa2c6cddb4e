//! Writing an encrypted backup: a staging area that turns every file written into it (but the
//! manifest and the checksum list) into an age file in the staging area it wraps, a local
//! folder or a bucket alike, and remembers the digest of what it stored.
//!
//! The backup engine hashes what it writes, as for any backup: those digests, of the contents,
//! go into `CONTENTS.sha256`; the digests this area records, of the files as stored, go into
//! `CHECKSUMS.sha256` (see [`Staging::stored_digests`]).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use age::stream::StreamWriter;
use camino::{Utf8Path, Utf8PathBuf};

use super::Sealing;
use crate::manifest::checksums::HashingWriter;
use crate::repo::{NewFile, Staging};

/// Relative path → SHA-256 of the file as stored.
type Stored = Arc<Mutex<BTreeMap<String, String>>>;

/// A staging area whose files are encrypted on their way into `inner`.
pub struct SealedStaging {
    inner: Arc<dyn Staging>,
    sealing: Arc<Sealing>,
    stored: Stored,
}

impl SealedStaging {
    pub fn new(inner: Arc<dyn Staging>, sealing: Arc<Sealing>) -> SealedStaging {
        SealedStaging {
            inner,
            sealing,
            stored: Stored::default(),
        }
    }
}

impl Staging for SealedStaging {
    fn location(&self) -> &Utf8Path {
        self.inner.location()
    }

    fn create_file(&self, relative: &str) -> io::Result<Box<dyn NewFile>> {
        self.create_file_of(relative, None)
    }

    fn create_file_of(
        &self,
        relative: &str,
        expected: Option<u64>,
    ) -> io::Result<Box<dyn NewFile>> {
        if super::stored_plain(relative) {
            return self.inner.create_file_of(relative, expected);
        }
        let stored = self
            .inner
            .create_file_of(relative, expected.map(super::sealed_size))?;
        let writer = self.sealing.wrap(HashingWriter::new(stored))?;
        Ok(Box::new(SealedFile {
            writer,
            relative: relative.to_string(),
            stored: Arc::clone(&self.stored),
        }))
    }

    /// Never a folder: every file goes through the encryption, by name.
    fn folder(&self) -> Option<&Utf8Path> {
        None
    }

    fn local_folder(&self) -> Option<&Utf8Path> {
        self.inner.local_folder()
    }

    fn remove_file(&self, relative: &str) -> io::Result<()> {
        self.stored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(relative);
        self.inner.remove_file(relative)
    }

    fn discard(&self) -> io::Result<()> {
        self.inner.discard()
    }

    fn commit(&self) -> io::Result<Utf8PathBuf> {
        self.inner.commit()
    }

    fn stored_digests(&self) -> Option<BTreeMap<String, String>> {
        Some(
            self.stored
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// One file being encrypted into the staging area.
struct SealedFile {
    writer: StreamWriter<HashingWriter<Box<dyn NewFile>>>,
    relative: String,
    stored: Stored,
}

impl Write for SealedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl NewFile for SealedFile {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let SealedFile {
            writer,
            relative,
            stored,
        } = *self;
        let (sha256, _, file) = writer.finish()?.finish();
        file.finish()?;
        stored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(relative, sha256);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::names::SafeName;
    use crate::repo::{LocalRepo, Repo};

    #[test]
    fn files_are_age_files_but_the_manifest_and_checksums_and_digests_are_of_what_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let repo = LocalRepo::new(root);
        let inner: Arc<dyn Staging> = Arc::from(
            repo.begin(&SafeName::new("2026-01-01_000000").unwrap())
                .unwrap(),
        );
        let identity = age::x25519::Identity::generate();
        let sealing = Arc::new(Sealing::Recipients(vec![identity.to_public()]));
        let staging = SealedStaging::new(inner, sealing);
        assert!(staging.folder().is_none());
        crate::repo::write_file(&staging, "config/docker/.env", b"QDRANT_API_KEY=s3cret\n")
            .unwrap();
        crate::repo::write_file(&staging, "manifest.json", b"{}").unwrap();
        let published = staging.commit().unwrap();

        let stored = std::fs::read(published.join("config/docker/.env")).unwrap();
        assert!(!stored.windows(6).any(|w| w == b"s3cret"));
        let digests = staging.stored_digests().unwrap();
        let (expected, _) = crate::manifest::checksums::hash_reader(&stored[..]).unwrap();
        assert_eq!(digests["config/docker/.env"], expected);
        assert!(!digests.contains_key("manifest.json"));
        assert_eq!(
            std::fs::read(published.join("manifest.json")).unwrap(),
            b"{}"
        );
        let mut plain = String::new();
        super::super::Unsealing::Identities(vec![identity])
            .open(&stored[..])
            .unwrap()
            .read_to_string(&mut plain)
            .unwrap();
        assert_eq!(plain, "QDRANT_API_KEY=s3cret\n");
    }
}
