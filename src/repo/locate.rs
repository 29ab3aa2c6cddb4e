//! Finding backups from the command line: a backup argument (a folder, or `latest`), and the
//! backups in a root. Shared by the subcommands that read backups.

use camino::Utf8Path;

use super::catalog::{self, Listed};
use super::{Backup, LocalBackup, Repo};
use crate::exit::Exit;
use crate::failure::{Failure, Outcome};
use crate::manifest::layout::default_root;

/// Why a backup argument names no backup; displays as the message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// `latest`, and the root cannot be listed or holds no complete backup.
    NoLatest(String),
    /// The argument is not a folder (or does not exist).
    NotAFolder(String),
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unresolved::NoLatest(why) | Unresolved::NotAFolder(why) => f.write_str(why),
        }
    }
}

/// The backup `arg` names: a backup folder as given, or for `latest` the newest complete,
/// dated backup in `root` (see [`catalog::resolve_backup`]: a folder named `latest` is
/// reached as `./latest` only).
pub fn resolve(arg: &Utf8Path, root: &Utf8Path) -> Result<Box<dyn Backup>, Unresolved> {
    if arg.as_str() == "latest" && super::is_remote(root) {
        let repo = super::at(root).map_err(|e| Unresolved::NoLatest(e.to_string()))?;
        let latest = catalog::latest(&*repo).map_err(Unresolved::NoLatest)?;
        return repo
            .open(&latest.found)
            .map_err(|e| Unresolved::NoLatest(e.to_string()));
    }
    if super::is_remote(arg) {
        // `s3://bucket/prefix/NAME`: the backup NAME of the root `s3://bucket/prefix`.
        let (parent, name) = arg
            .as_str()
            .trim_end_matches('/')
            .rsplit_once('/')
            .filter(|(parent, _)| parent.len() > crate::s3::location::SCHEME.len())
            .ok_or_else(|| Unresolved::NotAFolder(format!("{arg} names no backup in a bucket")))?;
        let repo = super::s3::S3Repo::from_env(parent)
            .map_err(|e| Unresolved::NotAFolder(e.to_string()))?;
        return repo
            .backup(name)
            .map_err(|e| Unresolved::NotAFolder(e.to_string()));
    }
    let dir = catalog::resolve_backup(arg, root).map_err(Unresolved::NoLatest)?;
    if !dir.is_dir() {
        return Err(Unresolved::NotAFolder(format!("{dir} is not a folder")));
    }
    Ok(Box::new(LocalBackup::at(dir)))
}

/// The backup `arg` names (`latest`: the newest complete one in the backup root), or the
/// argument error that says why there is none.
pub fn backup(arg: &Utf8Path) -> Outcome<Box<dyn Backup>> {
    resolve(arg, &default_root()).map_err(|unresolved| match unresolved {
        Unresolved::NoLatest(why) => Failure::msg(
            Exit::InvalidArguments,
            why,
            "Give a backup folder, or set AI_MEMORY_BACKUP_DIR to the folder that holds them.",
        ),
        Unresolved::NotAFolder(why) => Failure::msg(
            Exit::InvalidArguments,
            why,
            "Give a backup folder (one holding manifest.json), or `latest`.",
        ),
    })
}

/// The backup root `root` names, or the argument error that says why it cannot be used (a
/// malformed `s3://` URL or AWS setting).
pub fn repo(root: &Utf8Path) -> Outcome<Box<dyn Repo>> {
    super::at(root).map_err(|e| {
        Failure::msg(
            Exit::InvalidArguments,
            format!("cannot use the backup root {root}: {e}"),
            "Check the root's URL and the AWS settings (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION).",
        )
    })
}

/// Everything in `repo` (newest first). `command` names the subcommand in the hint.
///
/// A root that does not exist is an argument error (exit 1, like a backup folder that does not
/// exist): listing it as empty would make a typo in a cron job look like success.
pub fn scan(repo: &dyn Repo, command: &str) -> Outcome<Vec<Listed>> {
    let root = repo.location();
    match catalog::scan_repo(repo) {
        Ok(listed) => Ok(listed),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::msg(
            Exit::InvalidArguments,
            format!("the backup root {root} does not exist"),
            format!(
                "Name the folder that holds the backups (`aimem {command} DIR`, or AI_MEMORY_BACKUP_DIR); `aimem backup` creates it."
            ),
        )),
        Err(e) => Err(Failure::msg(
            Exit::Failed,
            format!("cannot read the backup root {root}: {e}"),
            format!("Check the folder's permissions, or name another root: `aimem {command} DIR`."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_argument_that_is_no_folder_or_no_latest_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let missing = root.join("none");
        assert_eq!(
            resolve(&missing, root).err(),
            Some(Unresolved::NotAFolder(format!("{missing} is not a folder")))
        );
        assert_eq!(
            resolve(Utf8Path::new("latest"), root).err(),
            Some(Unresolved::NoLatest(format!(
                "`latest`: there is no complete backup in {root}"
            )))
        );
        std::fs::create_dir(root.join("2026-02-03_143052")).unwrap();
        std::fs::write(
            root.join("2026-02-03_143052/manifest.json"),
            r#"{"backup_date": "2026-02-03T14:30:52+00:00", "collections": {}}"#,
        )
        .unwrap();
        let latest = resolve(Utf8Path::new("latest"), root).unwrap();
        assert_eq!(latest.location(), root.join("2026-02-03_143052"));
        assert!(latest.manifest().is_ok());
        assert!(latest.open("manifest.json").is_ok());
    }
}
