//! Where the keys come from: a passphrase from the environment (`AIMEM_PASSPHRASE`, or the
//! file `AIMEM_PASSPHRASE_FILE` names) or typed at the terminal, recipients and identities
//! from the command line.
//! Never a passphrase on the command line, where `ps` and shell history would keep it; never a
//! key in any message.

use std::ffi::OsString;
use std::io::Read;

use age::secrecy::SecretString;
use camino::{Utf8Path, Utf8PathBuf};
use clap::Args;

use super::{Sealing, Unsealing};
use crate::exit::Exit;
use crate::failure::Failure;
use crate::manifest::KeyKind;

/// The passphrase itself.
pub const PASSPHRASE_ENV: &str = "AIMEM_PASSPHRASE";
/// A file holding the passphrase (its first line).
pub const PASSPHRASE_FILE_ENV: &str = "AIMEM_PASSPHRASE_FILE";

/// A passphrase file, a recipients file or an identity file is refused beyond this: each is
/// a few lines.
const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

/// How `backup` encrypts.
#[derive(Debug, Clone, Default, Args)]
pub struct EncryptArgs {
    /// Encrypt every file of the backup except its manifest and checksum list, with age: to
    /// the passphrase in AIMEM_PASSPHRASE (or the file AIMEM_PASSPHRASE_FILE names), or to
    /// the --recipient keys.
    #[arg(long, help_heading = "Encryption")]
    pub encrypt: bool,

    /// An age public key (age1...) to encrypt to, instead of a passphrase; repeatable. Its
    /// identity file opens the backup (with --identity, or with the age tool).
    #[arg(
        long = "recipient",
        value_name = "KEY",
        requires = "encrypt",
        value_hint = clap::ValueHint::Other,
        help_heading = "Encryption"
    )]
    pub recipients: Vec<String>,

    /// A file of age public keys to encrypt to, one per line (`#` starts a comment).
    #[arg(
        long,
        value_name = "FILE",
        requires = "encrypt",
        value_hint = clap::ValueHint::FilePath,
        help_heading = "Encryption"
    )]
    pub recipients_file: Option<Utf8PathBuf>,
}

/// How a command that reads a backup opens an encrypted one.
#[derive(Debug, Clone, Default, Args)]
pub struct DecryptArgs {
    /// An age identity file (AGE-SECRET-KEY-1... lines, as age-keygen writes) that opens a
    /// backup encrypted to recipients; repeatable. A backup encrypted with a passphrase is
    /// opened with AIMEM_PASSPHRASE or AIMEM_PASSPHRASE_FILE, or the passphrase typed on a
    /// terminal.
    #[arg(
        long = "identity",
        value_name = "FILE",
        value_hint = clap::ValueHint::FilePath,
        help_heading = "Encryption"
    )]
    pub identities: Vec<Utf8PathBuf>,
}

impl EncryptArgs {
    /// The key to encrypt to: None without `--encrypt`.
    pub fn sealing(&self) -> Result<Option<Sealing>, Failure> {
        if !self.encrypt {
            return Ok(None);
        }
        let mut recipients = Vec::new();
        for text in &self.recipients {
            recipients.push(parse_recipient(text, "--recipient")?);
        }
        if let Some(file) = &self.recipients_file {
            let text = read_key_file(file, "--recipients-file")?;
            for (index, line) in key_lines(&text) {
                recipients.push(parse_recipient(line, &format!("{file} line {index}"))?);
            }
            if recipients.is_empty() {
                return Err(key_error(
                    format!("{file} lists no recipient"),
                    "Put one age public key (age1…) on each line, or give --recipient.",
                ));
            }
        }
        if recipients.len() > super::MAX_RECIPIENTS {
            return Err(key_error(
                format!(
                    "{} recipients given; a backup is encrypted to at most {}",
                    recipients.len(),
                    super::MAX_RECIPIENTS
                ),
                "Encrypt to fewer keys: each one adds to every file's header.",
            ));
        }
        if !recipients.is_empty() {
            return Ok(Some(Sealing::Recipients(recipients)));
        }
        match passphrase(Prompt::Twice)? {
            Some(passphrase) => Ok(Some(Sealing::passphrase(passphrase))),
            None => Err(key_error(
                "--encrypt needs a key: no AIMEM_PASSPHRASE, AIMEM_PASSPHRASE_FILE or --recipient was given",
                "Set AIMEM_PASSPHRASE_FILE to a file (readable by you only) holding the passphrase, or give --recipient age1… (make one with `age-keygen`). Keep the passphrase or identity somewhere other than the backup: without it the backup cannot be restored.",
            )),
        }
    }
}

impl DecryptArgs {
    /// The key for a backup encrypted to `kind`, or the error that says how to give it.
    pub fn unsealing(&self, kind: KeyKind, backup: &str) -> Result<Unsealing, Failure> {
        match kind {
            KeyKind::Recipients => {
                if self.identities.is_empty() {
                    return Err(key_error(
                        format!(
                            "{backup} is encrypted to age recipients, and no identity was given"
                        ),
                        "Give the identity file that matches a recipient: --identity FILE (the file age-keygen wrote).",
                    ));
                }
                let mut identities = Vec::new();
                for file in &self.identities {
                    identities.extend(read_identities(file)?);
                }
                Ok(Unsealing::Identities(identities))
            }
            KeyKind::Passphrase => match passphrase(Prompt::Once)? {
                Some(passphrase) => Ok(Unsealing::passphrase(passphrase)),
                None => Err(key_error(
                    format!("{backup} is encrypted with a passphrase, and none was given"),
                    "Set AIMEM_PASSPHRASE_FILE to a file holding the passphrase (or AIMEM_PASSPHRASE to the passphrase itself), or run on a terminal to type it.",
                )),
            },
        }
    }
}

/// How often a passphrase typed at a terminal is asked for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prompt {
    /// To open a backup: a wrong one is refused anyway.
    Once,
    /// To encrypt one: a typo would make it unreadable.
    Twice,
}

/// The passphrase from the environment, or else typed at the terminal when aimem runs on
/// one (never echoed); None when there is neither.
fn passphrase(prompt: Prompt) -> Result<Option<SecretString>, Failure> {
    if let Some(passphrase) = passphrase_from_env()? {
        return Ok(Some(passphrase));
    }
    use std::io::IsTerminal;
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Ok(None);
    }
    let mut asked = dialoguer::Password::new().with_prompt("Passphrase");
    if prompt == Prompt::Twice {
        asked = asked.with_confirmation(
            "Repeat the passphrase",
            "The passphrases differ; type it again.",
        );
    }
    let typed = asked
        .interact_on(&console::Term::stderr())
        .map_err(|e| match e {
            dialoguer::Error::IO(e) if e.kind() == std::io::ErrorKind::Interrupted => Failure::msg(
                Exit::Interrupted,
                "stopped at the passphrase prompt",
                "Nothing was changed.",
            ),
            dialoguer::Error::IO(e) => key_error(
                format!("cannot read the passphrase from the terminal: {e}"),
                "Set AIMEM_PASSPHRASE_FILE to a file holding it instead.",
            ),
        })?;
    if typed.is_empty() {
        return Err(key_error(
            "the passphrase is empty",
            "Type the passphrase, or set AIMEM_PASSPHRASE_FILE to a file holding it.",
        ));
    }
    Ok(Some(SecretString::from(typed)))
}

/// The passphrase from the environment: None when neither variable is set.
fn passphrase_from_env() -> Result<Option<SecretString>, Failure> {
    let direct = std::env::var_os(PASSPHRASE_ENV);
    let file = std::env::var_os(PASSPHRASE_FILE_ENV);
    let text = match (direct, file) {
        (Some(_), Some(_)) => {
            return Err(key_error(
                "both AIMEM_PASSPHRASE and AIMEM_PASSPHRASE_FILE are set",
                "Set only one of them.",
            ));
        }
        (None, None) => return Ok(None),
        (Some(direct), None) => utf8(direct, PASSPHRASE_ENV)?,
        (None, Some(path)) => {
            let path = Utf8PathBuf::from(utf8(path, PASSPHRASE_FILE_ENV)?);
            let text = read_key_file(&path, PASSPHRASE_FILE_ENV)?;
            // Its first line: an editor's final newline is not part of the passphrase.
            text.lines().next().unwrap_or_default().to_string()
        }
    };
    if text.is_empty() {
        return Err(key_error(
            "the passphrase is empty",
            "Put the passphrase in AIMEM_PASSPHRASE or in the file AIMEM_PASSPHRASE_FILE names.",
        ));
    }
    Ok(Some(SecretString::from(text)))
}

fn utf8(value: OsString, variable: &str) -> Result<String, Failure> {
    value.into_string().map_err(|_| {
        key_error(
            format!("{variable} is not valid UTF-8"),
            "Use a passphrase (and a path) in UTF-8.",
        )
    })
}

/// The lines of a recipients or identity file that hold a key, numbered from 1.
fn key_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
}

fn parse_recipient(text: &str, origin: &str) -> Result<age::x25519::Recipient, Failure> {
    text.trim().parse().map_err(|_| {
        key_error(
            format!("{origin}: not an age public key"),
            "An age public key starts with age1 (age-keygen prints it; `age-keygen -y FILE` reads it from an identity file). SSH keys and plugins are not supported.",
        )
    })
}

fn read_identities(file: &Utf8Path) -> Result<Vec<age::x25519::Identity>, Failure> {
    let text = read_key_file(file, "--identity")?;
    let mut identities = Vec::new();
    for (index, line) in key_lines(&text) {
        // The line itself is the secret: it never goes into a message.
        let identity = line.parse().map_err(|_| {
            key_error(
                format!("{file} line {index}: not an age identity"),
                "Give the file age-keygen wrote (AGE-SECRET-KEY-1… lines). Passphrase-protected identity files, SSH keys and plugins are not supported.",
            )
        })?;
        identities.push(identity);
    }
    if identities.is_empty() {
        return Err(key_error(
            format!("{file} holds no age identity"),
            "Give the file age-keygen wrote (AGE-SECRET-KEY-1… lines).",
        ));
    }
    Ok(identities)
}

/// A small key file, whole: a regular file (a link to one is followed), bounded, UTF-8.
fn read_key_file(path: &Utf8Path, origin: &str) -> Result<String, Failure> {
    let read = || -> std::io::Result<String> {
        let file = crate::engine::backup::files::open_regular(path)?;
        let mut bytes = Vec::new();
        file.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(std::io::Error::other(
                "larger than a key file can be (1 MiB)",
            ));
        }
        String::from_utf8(bytes)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
    };
    read().map_err(|e| {
        key_error(
            format!("cannot read {path} ({origin}): {e}"),
            "Check the path and that you can read the file.",
        )
    })
}

fn key_error(message: impl Into<String>, help: impl Into<String>) -> Failure {
    Failure::msg(Exit::InvalidArguments, message, help)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(text: &str) -> (tempfile::NamedTempFile, Utf8PathBuf) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let path = Utf8PathBuf::from_path_buf(file.path().to_path_buf()).unwrap();
        (file, path)
    }

    #[test]
    fn recipients_come_from_flags_and_files_and_bad_ones_are_named_by_line() {
        let one = age::x25519::Identity::generate().to_public().to_string();
        let two = age::x25519::Identity::generate().to_public().to_string();
        let (_keep, path) = file_with(&format!("# the team\n\n{two}\n"));
        let args = EncryptArgs {
            encrypt: true,
            recipients: vec![one],
            recipients_file: Some(path),
        };
        match args.sealing().unwrap() {
            Some(Sealing::Recipients(list)) => assert_eq!(list.len(), 2),
            _ => panic!("expected recipients"),
        }
        let (_keep, bad) = file_with("# ok\nssh-ed25519 AAAA\n");
        let args = EncryptArgs {
            encrypt: true,
            recipients: Vec::new(),
            recipients_file: Some(bad.clone()),
        };
        let error = args.sealing().err().unwrap();
        assert!(format!("{error:?}").contains(&format!("{bad} line 2")));
    }

    #[test]
    fn identities_are_read_and_never_quoted() {
        let identity = age::x25519::Identity::generate();
        let secret = age::secrecy::ExposeSecret::expose_secret(&identity.to_string()).to_string();
        let (_keep, path) = file_with(&format!("# created: now\n{secret}\n"));
        let args = DecryptArgs {
            identities: vec![path],
        };
        match args.unsealing(KeyKind::Recipients, "b").unwrap() {
            Unsealing::Identities(list) => assert_eq!(list.len(), 1),
            Unsealing::Passphrase(_) => panic!("expected identities"),
        }
        let broken = format!("{}X", &secret[..secret.len() - 1]);
        let (_keep, path) = file_with(&format!("{broken}\n"));
        let args = DecryptArgs {
            identities: vec![path],
        };
        let error = format!(
            "{:?}",
            args.unsealing(KeyKind::Recipients, "b").err().unwrap()
        );
        assert!(error.contains("line 1: not an age identity"));
        assert!(!error.contains(&broken[20..]));
        let none = DecryptArgs::default();
        let error = format!(
            "{:?}",
            none.unsealing(KeyKind::Recipients, "b").err().unwrap()
        );
        assert!(error.contains("--identity FILE"), "{error}");
    }
}
