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
use crate::manifest::checksums::{self, CHECKSUMS_FILE, Entry};
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
        OpenError::Io(e) => unreadable(&shown, CONTENTS_FILE, &e),
        other => Failure::msg(
            Exit::Failed,
            format!("{shown}/{CONTENTS_FILE}: {other}"),
            "The backup is damaged or was altered: run `aimem verify --no-deep` on it, or use another backup.",
        ),
    })?;
    let manifest = vouched_manifest(&*backup, &contents).map_err(|refusal| match refusal {
        Err(e) => unreadable(&shown, MANIFEST_FILE, &e),
        Ok(why) => Failure::msg(
            Exit::Failed,
            format!("{shown}/{MANIFEST_FILE}: {why}"),
            "The backup was changed after it was made. Use another backup.",
        ),
    })?;
    Ok(Box::new(OpenedBackup {
        inner: backup,
        unsealing,
        contents,
        manifest,
        copy: OnceLock::new(),
    }))
}

/// A backup file that could not be read (the disk, the bucket): no verdict on the backup.
fn unreadable(shown: &str, file: &str, error: &io::Error) -> Failure {
    Failure::msg(
        Exit::Failed,
        format!("cannot read {shown}/{file}: {error}"),
        "Check the connection to the bucket (or the disk) and run again; nothing was changed.",
    )
}

/// The manifest's bytes, once they are those `CONTENTS.sha256` vouches for; else why not:
/// `Err` when it could not be read, `Ok` with why it is refused.
fn vouched_manifest(
    backup: &dyn Backup,
    contents: &[Entry],
) -> Result<Vec<u8>, Result<String, io::Error>> {
    let mut bytes = Vec::new();
    backup
        .reader(MANIFEST_FILE)
        .and_then(|r| r.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes))
        .map_err(Err)?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(Ok("larger than a manifest may be".into()));
    }
    let (actual, _) = checksums::hash_reader(&bytes[..]).map_err(Err)?;
    match contents.iter().find(|e| e.path == MANIFEST_FILE) {
        Some(entry) if entry.sha256.eq_ignore_ascii_case(&actual) => Ok(bytes),
        Some(_) => Err(Ok(format!(
            "not the manifest the backup was made with ({CONTENTS_FILE} records another)"
        ))),
        None => Err(Ok(format!("{CONTENTS_FILE} does not vouch for it"))),
    }
}

/// `CONTENTS.sha256` is read whole up to this size: 100,000 lines of a path and a digest
/// (checksums files take no more lines), in memory at once.
const MAX_CONTENTS_BYTES: u64 = 16 * 1024 * 1024;

/// The decrypted `CONTENTS.sha256`, parsed (bounded).
fn read_contents(backup: &dyn Backup, unsealing: &Unsealing) -> Result<Vec<Entry>, OpenError> {
    let stored = backup.reader(CONTENTS_FILE).map_err(|e| match e.kind() {
        // Missing, or refused by the confined reader (a link, a folder): the backup's fault.
        io::ErrorKind::NotFound | io::ErrorKind::InvalidInput => OpenError::Damaged(format!(
            "cannot be read ({e}); every encrypted backup has one"
        )),
        _ => OpenError::Io(e),
    })?;
    let mut text = String::new();
    unsealing
        .open(stored)?
        .take(MAX_CONTENTS_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| match super::is_read_failure(&e) {
            true => OpenError::Io(e),
            false => OpenError::Damaged(format!("cannot be decrypted ({e})")),
        })?;
    if text.len() as u64 > MAX_CONTENTS_BYTES {
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
    /// The manifest's bytes, as `CONTENTS.sha256` vouches for them.
    manifest: Vec<u8>,
    /// The decrypted copy, made on first use.
    copy: OnceLock<Result<Decrypted, (io::ErrorKind, String)>>,
}

/// The decrypted copy, and the files that could not be decrypted into it.
struct Decrypted {
    /// Holds the copy: it is removed when the backup is dropped.
    _dir: crate::scratch::ScratchDir,
    path: Utf8PathBuf,
    /// Relative path, why.
    failed: Vec<(String, String)>,
}

impl OpenedBackup {
    fn decrypted(&self) -> io::Result<&Decrypted> {
        match self
            .copy
            .get_or_init(|| self.decrypt().map_err(|e| (e.kind(), e.to_string())))
        {
            Ok(copy) => Ok(copy),
            Err((kind, why)) => Err(io::Error::new(*kind, why.clone())),
        }
    }

    /// Decrypts every file `CONTENTS.sha256` lists into a new private folder, streamed from
    /// where the backup is (a bucket's objects are read straight, never copied first).
    fn decrypt(&self) -> io::Result<Decrypted> {
        let dir = crate::scratch::ScratchDir::new("aimem-opened-")?;
        let path = dir.path().to_owned();
        write_new(&path, MANIFEST_FILE, &self.manifest)?;
        let mut listed = Vec::with_capacity(self.contents.len());
        let mut failed = Vec::new();
        for entry in &self.contents {
            if entry.path == MANIFEST_FILE {
                // Checked when the backup was opened, and written above.
                listed.push(entry.clone());
                continue;
            }
            // A crafted list naming the other plain files would overwrite them in the copy.
            if super::stored_plain(&entry.path) || entry.path == CONTENTS_FILE {
                failed.push((
                    entry.path.clone(),
                    format!("listed in {CONTENTS_FILE}, which never lists it"),
                ));
                continue;
            }
            listed.push(entry.clone());
            match self.decrypt_file(&dir, &entry.path) {
                Ok(()) | Err(DecryptFailure::Missing) => {}
                Err(DecryptFailure::Damaged(why)) => failed.push((entry.path.clone(), why)),
                Err(DecryptFailure::Local(e)) => return Err(e),
            }
        }
        write_new(&path, CHECKSUMS_FILE, checksums::render(&listed).as_bytes())?;
        Ok(Decrypted {
            _dir: dir,
            path,
            failed,
        })
    }

    /// Decrypts the stored `relative` into the copy.
    fn decrypt_file(
        &self,
        copy: &crate::scratch::ScratchDir,
        relative: &str,
    ) -> Result<(), DecryptFailure> {
        // Named by the decrypted list: a plain relative path only (no `..`, no absolute).
        confined::check_plain(relative).map_err(|e| DecryptFailure::Damaged(e.to_string()))?;
        let source = match self.inner.reader(relative) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(DecryptFailure::Missing),
            // Refused by the confined reader: a link, a device, a folder in its place.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                return Err(DecryptFailure::Damaged(format!("cannot be read ({e})")));
            }
            Err(e) => return Err(DecryptFailure::Local(e)),
        };
        let mut reader = self.unsealing.open(source).map_err(|e| match e {
            OpenError::Io(e) => DecryptFailure::Local(e),
            other => DecryptFailure::Damaged(format!("does not decrypt: {other}")),
        })?;
        let target = copy.path().join(relative);
        if let Some(parent) = Utf8Path::new(relative).parent() {
            copy.create_dirs(parent).map_err(DecryptFailure::Local)?;
        }
        let mut file =
            crate::manifest::layout::private_file(&target).map_err(DecryptFailure::Local)?;
        let mut buffer = vec![0u8; 256 * 1024];
        let copied = loop {
            let read = match reader.read(&mut buffer) {
                Ok(0) => break file.flush().map_err(DecryptFailure::Local),
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if super::is_read_failure(&e) => break Err(DecryptFailure::Local(e)),
                // A chunk whose tag does not match, or a file cut short.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    break Err(DecryptFailure::Damaged(format!("does not decrypt: {e}")));
                }
                Err(e) => break Err(DecryptFailure::Local(e)),
            };
            if let Err(e) = file.write_all(&buffer[..read]) {
                break Err(DecryptFailure::Local(e));
            }
        };
        if copied.is_err() {
            std::fs::remove_file(&target).ok();
        }
        copied
    }
}

/// Why a file was not decrypted into the copy.
enum DecryptFailure {
    /// Not in the backup (the audit of the copy reports it: listed, not there).
    Missing,
    /// It does not decrypt: damaged, cut short, or replaced.
    Damaged(String),
    /// Reading it or writing the copy failed (a full disk, a dropped connection): no
    /// verdict on the backup, the whole copy fails with this error.
    Local(io::Error),
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

    /// The manifest `CONTENTS.sha256` vouches for.
    fn manifest(&self) -> Result<Manifest, ManifestError> {
        let path = self.location().join(MANIFEST_FILE);
        let text = String::from_utf8(self.manifest.clone()).map_err(|_| ManifestError::Io {
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, "the manifest is not UTF-8"),
        })?;
        Manifest::parse(&path, text)
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
