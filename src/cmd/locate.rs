//! Finding backups from the command line: a backup folder argument (or `latest`), and the
//! backups under a root. Shared by the offline subcommands.

use camino::{Utf8Path, Utf8PathBuf};

use crate::exit::Exit;
use crate::failure::{Failure, Outcome};
use crate::manifest::catalog::resolve_backup;
use crate::manifest::catalog::{self, Listed};
use crate::manifest::layout::default_root;

/// The backup folder `arg` names (`latest`: the newest complete one in the backup root).
pub fn backup_folder(arg: &Utf8Path) -> Outcome<Utf8PathBuf> {
    let dir = resolve_backup(arg, &default_root()).map_err(|m| {
        Failure::msg(
            Exit::InvalidArguments,
            m,
            "Give a backup folder, or set AI_MEMORY_BACKUP_DIR to the folder that holds them.",
        )
    })?;
    if !dir.is_dir() {
        return Err(Failure::msg(
            Exit::InvalidArguments,
            format!("{dir} is not a folder"),
            "Give a backup folder (one holding manifest.json), or `latest`.",
        ));
    }
    Ok(dir)
}

/// Everything under `root` (newest first). `command` names the subcommand in the hint.
///
/// A root that does not exist is an argument error (exit 1, like a backup folder that does not
/// exist): listing it as empty would make a typo in a cron job look like success.
pub fn scan_root(root: &Utf8Path, command: &str) -> Outcome<Vec<Listed>> {
    match catalog::scan(root) {
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
