//! Encryption at rest: a backup whose files are age files (<https://age-encryption.org>),
//! opened with a passphrase or an X25519 identity, by aimem or by the `age` tool itself.
//!
//! What an encrypted backup keeps readable, and why (docs/encryption.md has the whole layout):
//! `manifest.json` (names, dates, counts, sizes, schema fingerprints: what `list`, `prune`
//! and a checksum-only `verify` need) and `CHECKSUMS.sha256`, which lists the digests of the
//! files *as stored*, so they can be checked without the key. Every other file (snapshots,
//! points, config files with the API key, logs) is encrypted, and so is `CONTENTS.sha256`,
//! the digests of what is *inside* each of them.
//!
//! [`keys`] reads the keys from the command line and the environment, [`staging`] writes an
//! encrypted backup through any staging area, [`opened`] reads one back.

pub mod keys;
pub mod opened;
pub mod staging;

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use age::secrecy::SecretString;
use age::stream::{StreamReader, StreamWriter};

use crate::manifest::checksums::CHECKSUMS_FILE;
use crate::manifest::{Encryption, KeyKind, MANIFEST_FILE};

pub use keys::{DecryptArgs, EncryptArgs};

/// The encrypted list of what is inside every encrypted file (`sha256sum` format).
pub const CONTENTS_FILE: &str = "CONTENTS.sha256";

/// scrypt's work factor for a passphrase (N = 2^15, r = 8): 32 MiB and a fraction of a second
/// for each file. The age tool picks about one second's work; a backup has one scrypt per
/// file, so aimem takes the memory-hard setting that fits its memory budget instead.
const WORK_FACTOR: u8 = 15;

/// The highest work factor accepted when reading: aimem's own. A crafted file asking for more
/// (each step doubles the memory, before the key is known to be wrong) is refused unread.
const MAX_WORK_FACTOR: u8 = WORK_FACTOR;

/// The most an age header may take before its payload begins: one stanza of about 110 bytes
/// per recipient, so [`MAX_RECIPIENTS`] fit with room to spare. The age crate parses the
/// header again as each line arrives, so this bound also bounds that work: a crafted endless
/// header is cut off here.
const MAX_HEADER_BYTES: u64 = 64 * 1024;

/// The most recipients a backup is encrypted to (each adds a stanza to every file's header).
pub const MAX_RECIPIENTS: usize = 256;

/// Whether `relative` is stored as written in an encrypted backup (everything else is an age
/// file).
pub fn stored_plain(relative: &str) -> bool {
    relative == MANIFEST_FILE || relative == CHECKSUMS_FILE
}

/// The key a backup is encrypted to.
pub enum Sealing {
    /// A passphrase (`AIMEM_PASSPHRASE`): `age -d` asks for it.
    Passphrase(Box<age::scrypt::Recipient>),
    /// X25519 recipients (`--recipient age1…`): `age -d -i KEYFILE` opens each file.
    Recipients(Vec<age::x25519::Recipient>),
}

impl Sealing {
    /// Encryption to `passphrase`.
    pub fn passphrase(passphrase: SecretString) -> Sealing {
        let mut recipient = age::scrypt::Recipient::new(passphrase);
        recipient.set_work_factor(WORK_FACTOR);
        Sealing::Passphrase(Box::new(recipient))
    }

    /// What the manifest records about it.
    pub fn record(&self) -> Encryption {
        Encryption::age(match self {
            Sealing::Passphrase(_) => KeyKind::Passphrase,
            Sealing::Recipients(_) => KeyKind::Recipients,
        })
    }

    /// Starts an age file in `out`: its header is written, what is written next is encrypted,
    /// and [`StreamWriter::finish`] ends it.
    pub fn wrap<W: Write>(&self, out: W) -> io::Result<StreamWriter<W>> {
        let encryptor = match self {
            // The passphrase's scrypt runs inside, one at a time (32 MiB each).
            Sealing::Passphrase(recipient) => crate::memory::one_scrypt_at_a_time(|| {
                age::Encryptor::with_recipients(std::iter::once(&**recipient as _))
            }),
            Sealing::Recipients(recipients) => {
                age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            }
        }
        .map_err(|e| io::Error::other(format!("cannot encrypt: {e}")))?;
        encryptor.wrap_output(out)
    }
}

/// The key that opens a backup.
pub enum Unsealing {
    Passphrase(Box<age::scrypt::Identity>),
    Identities(Vec<age::x25519::Identity>),
}

impl Unsealing {
    /// Opening with `passphrase`.
    pub fn passphrase(passphrase: SecretString) -> Unsealing {
        let mut identity = age::scrypt::Identity::new(passphrase);
        identity.set_max_work_factor(MAX_WORK_FACTOR);
        Unsealing::Passphrase(Box::new(identity))
    }

    /// What kind of key this is.
    pub fn kind(&self) -> KeyKind {
        match self {
            Unsealing::Passphrase(_) => KeyKind::Passphrase,
            Unsealing::Identities(_) => KeyKind::Recipients,
        }
    }

    /// The plaintext of the age file `input`. The header is read (bounded) and the key
    /// tried before this returns; the payload is checked chunk by chunk as it is read, and a
    /// damaged or cut-off file is an error from `read`, never silently short.
    pub fn open<R: Read>(
        &self,
        input: R,
    ) -> Result<StreamReader<io::BufReader<HeaderBound<Sourced<R>>>>, OpenError> {
        let left = Arc::new(AtomicU64::new(MAX_HEADER_BYTES));
        let bounded = HeaderBound {
            inner: Sourced(input),
            left: Arc::clone(&left),
        };
        // Buffered: the header is read a line at a time, not a byte at a time.
        let decryptor =
            age::Decryptor::new_buffered(io::BufReader::with_capacity(64 * 1024, bounded))
                .map_err(OpenError::from_age)?;
        let reader = match self {
            Unsealing::Passphrase(identity) => {
                if !decryptor.is_scrypt() {
                    return Err(OpenError::WrongKind);
                }
                crate::memory::one_scrypt_at_a_time(|| {
                    decryptor.decrypt(std::iter::once(&**identity as _))
                })
            }
            Unsealing::Identities(identities) => {
                if decryptor.is_scrypt() {
                    return Err(OpenError::WrongKind);
                }
                decryptor.decrypt(identities.iter().map(|i| i as &dyn age::Identity))
            }
        }
        .map_err(OpenError::from_age)?;
        // The header is read: the payload is as long as the file.
        left.store(UNBOUNDED, Ordering::Relaxed);
        Ok(reader)
    }
}

/// Why an age file could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The key is not this file's (a wrong passphrase, or another identity).
    WrongKey,
    /// A passphrase for a file encrypted to recipients, or the other way round.
    WrongKind,
    /// Not an age file, or a damaged one.
    Damaged(String),
    /// The file could not be read.
    Io(io::Error),
}

impl OpenError {
    fn from_age(error: age::DecryptError) -> OpenError {
        match error {
            age::DecryptError::NoMatchingKeys
            | age::DecryptError::DecryptionFailed
            | age::DecryptError::KeyDecryptionFailed => OpenError::WrongKey,
            // Reading the file failed (its disk, the network): no verdict on the file.
            age::DecryptError::Io(e) if is_read_failure(&e) => OpenError::Io(e),
            age::DecryptError::Io(e) if e.kind() != io::ErrorKind::UnexpectedEof => {
                OpenError::Io(e)
            }
            age::DecryptError::ExcessiveWork { required, .. } => OpenError::Damaged(format!(
                "its passphrase needs scrypt work factor {required}, above the {MAX_WORK_FACTOR} aimem accepts"
            )),
            other => OpenError::Damaged(format!("not a readable age file ({other})")),
        }
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::WrongKey => f.write_str("the key does not open it"),
            OpenError::WrongKind => f.write_str("it is encrypted to another kind of key"),
            OpenError::Damaged(why) => f.write_str(why),
            OpenError::Io(e) => write!(f, "cannot be read ({e})"),
        }
    }
}

/// An error of reading the stored file itself (its disk, the network), told apart from what
/// decrypting it found (a bad tag, a file cut short): the first says nothing of the backup.
#[derive(Debug)]
pub struct ReadFailed(io::Error);

impl std::fmt::Display for ReadFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ReadFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Whether `error` came from reading the stored file, not from decrypting it.
pub fn is_read_failure(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<ReadFailed>())
}

/// The stored file, its read errors marked as [`ReadFailed`].
pub struct Sourced<R>(R);

impl<R: Read> Read for Sourced<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| match e.kind() {
            io::ErrorKind::Interrupted => e,
            kind => io::Error::new(kind, ReadFailed(e)),
        })
    }
}

/// [`HeaderBound::left`] once the header is read.
const UNBOUNDED: u64 = u64::MAX;

/// A reader that refuses to give more than [`MAX_HEADER_BYTES`] until the header is read.
pub struct HeaderBound<R> {
    inner: R,
    /// Bytes still allowed ([`UNBOUNDED`] once the header is read).
    left: Arc<AtomicU64>,
}

impl<R: Read> Read for HeaderBound<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let budget = self.left.load(Ordering::Relaxed);
        if budget == UNBOUNDED {
            return self.inner.read(buf);
        }
        if budget == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "its age header is longer than {} KiB",
                    MAX_HEADER_BYTES / 1024
                ),
            ));
        }
        let most = buf.len().min(usize::try_from(budget).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..most])?;
        self.left.store(budget - read as u64, Ordering::Relaxed);
        Ok(read)
    }
}

/// At most the size of an age file holding `plaintext` bytes: its header, then each 64 KiB
/// chunk with a 16-byte tag. For sizing uploads only.
pub fn sealed_size(plaintext: u64) -> u64 {
    plaintext + (plaintext / (64 * 1024) + 1) * 16 + MAX_HEADER_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(sealing: &Sealing, bytes: &[u8]) -> Vec<u8> {
        let mut writer = sealing.wrap(Vec::new()).unwrap();
        writer.write_all(bytes).unwrap();
        writer.finish().unwrap()
    }

    fn unseal(unsealing: &Unsealing, sealed: &[u8]) -> Result<Vec<u8>, String> {
        let mut reader = unsealing.open(sealed).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_string())
    }

    #[test]
    fn a_passphrase_round_trips_and_a_wrong_one_is_refused() {
        let sealed = seal(&Sealing::passphrase(secret("correct horse")), b"points");
        assert!(sealed.starts_with(b"age-encryption.org/v1\n-> scrypt "));
        assert!(!sealed.windows(6).any(|w| w == b"points"));
        assert_eq!(
            unseal(&Unsealing::passphrase(secret("correct horse")), &sealed).unwrap(),
            b"points"
        );
        assert_eq!(
            unseal(&Unsealing::passphrase(secret("wrong")), &sealed).unwrap_err(),
            "the key does not open it"
        );
    }

    #[test]
    fn recipients_round_trip_and_kinds_are_told_apart() {
        let identity = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let sealing = Sealing::Recipients(vec![other.to_public(), identity.to_public()]);
        let sealed = seal(&sealing, &vec![7u8; 200_000]);
        assert_eq!(
            unseal(&Unsealing::Identities(vec![identity]), &sealed).unwrap(),
            vec![7u8; 200_000]
        );
        let stranger = age::x25519::Identity::generate();
        assert_eq!(
            unseal(&Unsealing::Identities(vec![stranger]), &sealed).unwrap_err(),
            "the key does not open it"
        );
        assert_eq!(
            unseal(&Unsealing::passphrase(secret("x")), &sealed).unwrap_err(),
            "it is encrypted to another kind of key"
        );
    }

    #[test]
    fn damage_and_truncation_are_errors_never_short_reads() {
        let identity = age::x25519::Identity::generate();
        let sealing = Sealing::Recipients(vec![identity.to_public()]);
        let unsealing = Unsealing::Identities(vec![identity]);
        let sealed = seal(&sealing, &vec![1u8; 150_000]);
        let mut flipped = sealed.clone();
        let last = flipped.len() - 100;
        flipped[last] ^= 1;
        assert!(unseal(&unsealing, &flipped).is_err());
        assert!(unseal(&unsealing, &sealed[..sealed.len() - 1]).is_err());
        // Cut at a chunk boundary: the last chunk's flag is missing.
        assert!(
            unseal(
                &unsealing,
                &sealed[..sealed.len() - (150_000 - 131_072) - 16]
            )
            .is_err()
        );
        assert!(unseal(&unsealing, b"not an age file").is_err());
        assert!(unseal(&unsealing, b"").is_err());
    }

    /// A stored file whose reading fails (a dropped connection) is told apart from one that
    /// does not decrypt (cut short): only the second says the backup is damaged.
    #[test]
    fn a_failed_read_is_no_verdict_on_the_file() {
        struct FailsAfter<'a>(&'a [u8]);
        impl Read for FailsAfter<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
                }
                let n = buf.len().min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let identity = age::x25519::Identity::generate();
        let sealed = seal(
            &Sealing::Recipients(vec![identity.to_public()]),
            &vec![3u8; 200_000],
        );
        let unsealing = Unsealing::Identities(vec![identity]);
        let half = &sealed[..100_000];
        let mut out = Vec::new();
        let failed = unsealing
            .open(FailsAfter(half))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(is_read_failure(&failed), "{failed:?}");
        let cut = unsealing
            .open(half)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(!is_read_failure(&cut), "{cut:?}");
        assert!(matches!(
            unsealing.open(FailsAfter(&sealed[..20])).err(),
            Some(OpenError::Io(_))
        ));
    }

    #[test]
    fn an_endless_header_is_cut_off() {
        let identity = age::x25519::Identity::generate();
        let mut endless = b"age-encryption.org/v1\n".to_vec();
        while endless.len() < 3 * 1024 * 1024 {
            endless.extend_from_slice(b"-> X25519 AAAA\nAAAA\n");
        }
        let error = unseal(&Unsealing::Identities(vec![identity]), &endless).unwrap_err();
        assert!(!error.is_empty());
    }

    #[test]
    fn sealed_size_is_an_upper_bound() {
        let identity = age::x25519::Identity::generate();
        let sealing = Sealing::Recipients(vec![identity.to_public()]);
        for size in [0usize, 1, 65_536, 65_537, 300_000] {
            let sealed = seal(&sealing, &vec![0u8; size]);
            assert!(
                sealed.len() as u64 <= sealed_size(size as u64),
                "{size}: {}",
                sealed.len()
            );
        }
    }
}
