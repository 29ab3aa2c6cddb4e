//! Reading an encrypted backup: with its key, it is read through a private decrypted copy in
//! the temporary folder, laid out as a plain backup whose `CHECKSUMS.sha256` lists what is
//! inside each file (the decrypted `CONTENTS.sha256`). Everything that reads a plain backup by
//! path (restore's checks and uploads, the deep audit) then reads it unchanged.
//!
//! The key is tried on `CONTENTS.sha256` when the backup is opened, so a missing or wrong key
//! is an error before anything else happens. Every file is authenticated as it is decrypted
//! (age checks each 64 KiB chunk and the end): a damaged file is an error, never a short one.

use std::io::{self, Read, Write};
use std::sync::OnceLock;

use camino::{Utf8Path, Utf8PathBuf};

use super::{CONTENTS_FILE, DecryptArgs, OpenError, Unsealing};
use crate::exit::Exit;
use crate::failure::{Failure, Outcome};
use crate::manifest::checksums::{self, CHECKSUMS_FILE, Entry, MAX_CHECKSUMS_BYTES};
use crate::manifest::{
    MANIFEST_FILE, MAX_MANIFEST_BYTES, Manifest, ManifestError, audit, confined,
};
use crate::repo::Backup;

/// `backup` as it can be read with the keys given: itself when it is not encrypted (or its
/// manifest cannot be read: whatever reads it next says why), else the backup opened with its
/// key. A missing key, a key that does not open it, or an unreadable `CONTENTS.sha256` is an
/// error here.
pub fn open(backup: Box<dyn Backup>, keys: &DecryptArgs) -> Outcome<Box<dyn Backup>> {
    let Some(encryption) = backup.manifest().ok().and_then(|m| m.encryption) else {
        return Ok(backup);
    };
    let shown = backup.location().to_string();
    let unsealing = keys.unsealing(encryption.key, &shown)?;
    let contents = read_contents(&*backup, &unsealing).map_err(|e| match e {
        OpenError::WrongKey => Failure::msg(
            Exit::InvalidArguments,
            format!(
                "the key given does not open {shown} (it is encrypted with {})",
                encryption.key.describe()
            ),
            match encryption.key {
                super::KeyKind::Passphrase => {
                    "Check AIMEM_PASSPHRASE or the file AIMEM_PASSPHRASE_FILE names: it must be the passphrase the backup was made with."
                }
                super::KeyKind::Recipients => {
                    "Give the identity file of one of the recipients the backup was encrypted to (--identity FILE)."
                }
            },
        ),
        other => Failure::msg(
            Exit::Failed,
            format!("{shown}/{CONTENTS_FILE}: {other}"),
            "The backup is damaged or was altered: run `aimem verify --no-deep` on it, or use another backup.",
        ),
    })?;
    Ok(Box::new(OpenedBackup {
        inner: backup,
        unsealing,
        contents,
        copy: OnceLock::new(),
    }))
}

/// The decrypted `CONTENTS.sha256`, parsed (bounded as a checksums file is).
fn read_contents(backup: &dyn Backup, unsealing: &Unsealing) -> Result<Vec<Entry>, OpenError> {
    let stored = backup.reader(CONTENTS_FILE).map_err(OpenError::Io)?;
    let mut text = String::new();
    unsealing
        .open(stored)?
        .take(MAX_CHECKSUMS_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| OpenError::Damaged(format!("cannot be decrypted ({e})")))?;
    if text.len() as u64 > MAX_CHECKSUMS_BYTES {
        return Err(OpenError::Damaged("it is too large".into()));
    }
    checksums::parse(Utf8Path::new(CONTENTS_FILE), &text)
        .map_err(|e| OpenError::Damaged(e.to_string()))
}

/// An encrypted backup, open with its key.
struct OpenedBackup {
    inner: Box<dyn Backup>,
    unsealing: Unsealing,
    /// What is inside each encrypted file (the decrypted `CONTENTS.sha256`).
    contents: Vec<Entry>,
    /// The decrypted copy, made on first use.
    copy: OnceLock<Result<Decrypted, String>>,
}

/// The decrypted copy, and the files that could not be decrypted into it.
struct Decrypted {
    /// Holds the copy: it is removed when the backup is dropped.
    _dir: tempfile::TempDir,
    path: Utf8PathBuf,
    /// Relative path, why.
    failed: Vec<(String, String)>,
}

impl OpenedBackup {
    fn decrypted(&self) -> io::Result<&Decrypted> {
        match self
            .copy
            .get_or_init(|| self.decrypt().map_err(|e| e.to_string()))
        {
            Ok(copy) => Ok(copy),
            Err(why) => Err(io::Error::other(why.clone())),
        }
    }

    /// Decrypts every file `CONTENTS.sha256` lists into a new private folder, streamed from
    /// where the backup is (a bucket's objects are read straight, never copied first).
    fn decrypt(&self) -> io::Result<Decrypted> {
        let dir = tempfile::Builder::new().prefix("aimem-opened-").tempdir()?;
        let path = Utf8PathBuf::from_path_buf(dir.path().to_path_buf()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidData, "temporary folder is not UTF-8")
        })?;
        let mut manifest = Vec::new();
        self.inner
            .reader(MANIFEST_FILE)?
            .take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut manifest)?;
        if manifest.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the manifest is larger than a manifest may be",
            ));
        }
        write_new(&path, MANIFEST_FILE, &manifest)?;
        let (manifest_sha, _) = checksums::hash_reader(&manifest[..])?;
        let mut listed = Vec::with_capacity(self.contents.len() + 1);
        let mut failed = Vec::new();
        for entry in &self.contents {
            // A crafted list naming the plain files would overwrite them in the copy.
            if super::stored_plain(&entry.path) || entry.path == CONTENTS_FILE {
                failed.push((
                    entry.path.clone(),
                    format!("listed in {CONTENTS_FILE}, which never lists it"),
                ));
                continue;
            }
            listed.push(entry.clone());
            match self.decrypt_file(&path, &entry.path) {
                Ok(()) => {}
                // Missing: the audit of the copy reports it (it is listed, not there).
                Err(DecryptFailure::Missing) => {}
                Err(DecryptFailure::Other(why)) => failed.push((entry.path.clone(), why)),
            }
        }
        listed.push(Entry {
            sha256: manifest_sha,
            path: MANIFEST_FILE.to_string(),
        });
        write_new(&path, CHECKSUMS_FILE, checksums::render(&listed).as_bytes())?;
        Ok(Decrypted {
            _dir: dir,
            path,
            failed,
        })
    }

    /// Decrypts the stored `relative` into the copy.
    fn decrypt_file(&self, copy: &Utf8Path, relative: &str) -> Result<(), DecryptFailure> {
        // Named by the decrypted list: a plain relative path only (no `..`, no absolute).
        confined::check_plain(relative).map_err(|e| DecryptFailure::Other(e.to_string()))?;
        let source = match self.inner.reader(relative) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(DecryptFailure::Missing),
            Err(e) => return Err(DecryptFailure::Other(format!("cannot be read ({e})"))),
        };
        let mut reader = self
            .unsealing
            .open(source)
            .map_err(|e| DecryptFailure::Other(format!("cannot be decrypted: {e}")))?;
        let target = copy.join(relative);
        let written = (|| -> io::Result<()> {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut file = crate::manifest::layout::private_file(&target)?;
            let mut buffer = vec![0u8; 256 * 1024];
            loop {
                let read = match reader.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(read) => read,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("damaged: {e}"),
                        ));
                    }
                };
                file.write_all(&buffer[..read])?;
            }
            file.flush()
        })();
        written.map_err(|e| {
            std::fs::remove_file(&target).ok();
            DecryptFailure::Other(format!("cannot be decrypted: {e}"))
        })
    }
}

enum DecryptFailure {
    Missing,
    Other(String),
}

/// Writes a new private file `relative` under `dir`.
fn write_new(dir: &Utf8Path, relative: &str, bytes: &[u8]) -> io::Result<()> {
    let mut file = crate::manifest::layout::private_file(&dir.join(relative))?;
    file.write_all(bytes)?;
    file.flush()
}

impl Backup for OpenedBackup {
    fn location(&self) -> &Utf8Path {
        self.inner.location()
    }

    fn open(&self, relative: &str) -> io::Result<std::fs::File> {
        confined::open(&self.folder()?, relative)
    }

    fn manifest(&self) -> Result<Manifest, ManifestError> {
        self.inner.manifest()
    }

    /// The decrypted copy; an error when any file could not be decrypted.
    fn folder(&self) -> io::Result<Utf8PathBuf> {
        let copy = self.decrypted()?;
        if let Some((file, why)) = copy.failed.first() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{file}: {why}"),
            ));
        }
        Ok(copy.path.clone())
    }

    /// The files as stored (as without the key), then what is inside them.
    fn audit(&self, options: audit::Options) -> audit::Audit {
        let mut audit = self.inner.audit(options);
        let copy = match self.decrypted() {
            Ok(copy) => copy,
            Err(e) => {
                audit.findings.push(audit::Finding::new(
                    "",
                    audit::Kind::Unreadable,
                    format!("cannot decrypt the backup: {e}"),
                ));
                return audit;
            }
        };
        for (file, why) in &copy.failed {
            audit.findings.push(audit::Finding::new(
                file,
                audit::Kind::Undecryptable,
                why.clone(),
            ));
        }
        let inside = audit::audit_opened(&copy.path, options);
        let failed = |f: &audit::Finding| copy.failed.iter().any(|(file, _)| *file == f.file);
        for finding in inside.findings {
            // Each problem once: the manifest's own checks run on both sides.
            let known = audit.findings.contains(&finding);
            if !known && !failed(&finding) {
                audit.findings.push(finding);
            }
        }
        audit.contents_checked = true;
        audit
    }
}
