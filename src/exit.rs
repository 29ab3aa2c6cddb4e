//! The process exit statuses, all in one place.
//!
//! The numbers come from the guide of the Python scripts aimem replaces, so cron jobs and
//! wrappers written for those keep working. aimem adds 5 (a restore failed and so did its
//! rollback) and the conventional 130/143 for SIGINT/SIGTERM.

use std::process::ExitCode;

/// Why aimem stopped. Each variant maps to exactly one exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything worked.
    Success,
    /// The command line was wrong (clap errors, conflicting options, no terminal to confirm).
    InvalidArguments,
    /// `backup` could not reach or authenticate with Qdrant.
    BackupConnectionFailed,
    /// A collection could not be backed up, or a backup/schema check failed.
    Failed,
    /// Not enough free disk space for the backup.
    InsufficientSpace,
    /// `restore`/`diff-schema` could not reach or authenticate with Qdrant.
    ConnectionFailed,
    /// Config files could not be backed up; or a restore failed and was rolled back.
    ConfigOrRestoreFailed,
    /// A restore failed and its rollback failed too.
    RollbackFailed,
    /// The run's output could not be written (stdout full or failing; a closed pipe is not).
    OutputFailed,
    /// Stopped by SIGINT (Ctrl-C) after cleaning up.
    Interrupted,
    /// Stopped by SIGTERM after cleaning up.
    Terminated,
}

impl Exit {
    /// The numeric process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::InvalidArguments | Exit::BackupConnectionFailed => 1,
            Exit::Failed => 2,
            Exit::InsufficientSpace | Exit::ConnectionFailed => 3,
            Exit::ConfigOrRestoreFailed => 4,
            Exit::RollbackFailed => 5,
            // sysexits' EX_IOERR.
            Exit::OutputFailed => 74,
            Exit::Interrupted => 130,
            Exit::Terminated => 143,
        }
    }
}

/// The exit-status table shown by `aimem --help` and the man page (the README has the same).
pub const TABLE: &str = "\
Exit status:
  0    success
  1    invalid arguments; Qdrant connection or authentication failed (backup)
  2    a backup, verification, checksum or schema check failed; a restore refused unchanged
  3    not enough disk space; Qdrant connection failed (restore, diff-schema)
  4    config backup failed; a restore failed and was rolled back
  5    a restore failed and its rollback failed too, or could not be made safely
  74   the output could not be written (stdout full or failing)
  130  stopped by Ctrl-C (SIGINT) after cleaning up
  143  stopped by SIGTERM after cleaning up";

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn codes_match_the_documented_table() {
        let table = [
            (Exit::Success, 0),
            (Exit::InvalidArguments, 1),
            (Exit::BackupConnectionFailed, 1),
            (Exit::Failed, 2),
            (Exit::InsufficientSpace, 3),
            (Exit::ConnectionFailed, 3),
            (Exit::ConfigOrRestoreFailed, 4),
            (Exit::RollbackFailed, 5),
            (Exit::OutputFailed, 74),
            (Exit::Interrupted, 130),
            (Exit::Terminated, 143),
        ];
        for (exit, code) in table {
            assert_eq!(exit.code(), code, "{exit:?}");
            let row = format!("\n  {code} ");
            assert!(super::TABLE.contains(&row), "the help table lacks {code}");
        }
    }
}
