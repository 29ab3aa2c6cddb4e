//! The command line: global options and the subcommand list.

use clap::{Parser, Subcommand, ValueEnum};

use crate::cmd;
use crate::metrics::{MetricsArgs, Operation};

/// Back up, verify and restore the Qdrant collections behind AI Memory (or any Qdrant).
///
/// Connection settings come from --url, or QDRANT_URL, or QDRANT_HOST and QDRANT_PORT; the
/// API key from QDRANT_API_KEY.
#[derive(Debug, Parser)]
#[command(
    name = "aimem",
    version = env!("AIMEM_LONG_VERSION"),
    about,
    long_about,
    max_term_width = 100,
    after_long_help = crate::exit::TABLE
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// When to use colour (NO_COLOR is honoured with `auto`).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Print only warnings and errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds
    /// headers (the API key always hidden), -vvv the HTTP library's own messages.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Never draw progress bars (the same as --progress none).
    #[arg(long, global = true)]
    pub no_progress: bool,

    /// How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes
    /// JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of
    /// the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged.
    #[arg(
        long,
        value_enum,
        global = true,
        default_value_t = ProgressMode::Auto,
        value_name = "MODE",
        conflicts_with = "no_progress"
    )]
    pub progress: ProgressMode,
}

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    Auto,
    None,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// How to get the completion that knows backups and collections; one command a line, so no
/// terminal width splits one.
const DYNAMIC_COMPLETION: &str = "\
Print a static shell completion script to stdout: it completes subcommands and options.

Dynamic completion also completes backup folders and collection names. To use it, \
add the line for your shell to its start-up file:
  bash (~/.bashrc):
    source <(COMPLETE=bash aimem)
  zsh (~/.zshrc):
    source <(COMPLETE=zsh aimem)
  fish (~/.config/fish/config.fish):
    COMPLETE=fish aimem | source";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Snapshot collections, config files and (optionally) logs into a new backup folder.
    Backup(cmd::backup::BackupArgs),
    /// Restore a backup: collections (with rollback on failure) and, optionally, config files.
    Restore(cmd::restore::RestoreArgs),
    /// Check a backup offline: manifest, checksums, and each snapshot's schema against it.
    Verify(cmd::verify::VerifyArgs),
    /// List the backups in the backup root, newest first, with their state.
    List(cmd::list::ListArgs),
    /// Compare a backup's schemas with the live collections, or two backups with each other.
    DiffSchema(cmd::diff_schema::DiffSchemaArgs),
    /// Delete old backups by a retention policy, never the last one that verifies.
    Prune(cmd::prune::PruneArgs),
    /// Print a shell completion script to stdout.
    #[command(long_about = DYNAMIC_COMPLETION)]
    Completions(cmd::completions::CompletionsArgs),
}

impl Command {
    /// The subcommand's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Backup(_) => "backup",
            Command::Restore(_) => "restore",
            Command::Verify(_) => "verify",
            Command::List(_) => "list",
            Command::DiffSchema(_) => "diff-schema",
            Command::Prune(_) => "prune",
            Command::Completions(_) => "completions",
        }
    }

    /// What the run's metrics are of and where they go: the commands that change or check
    /// backups, and not their dry runs (which change nothing and prove nothing).
    pub fn metrics(&self) -> Option<(Operation, &MetricsArgs)> {
        match self {
            Command::Backup(args) => Some((Operation::Backup, &args.metrics)),
            Command::Restore(args) if !args.dry_run => Some((Operation::Restore, &args.metrics)),
            Command::Verify(args) => Some((Operation::Verify, &args.metrics)),
            Command::Prune(args) if !args.dry_run => Some((Operation::Prune, &args.metrics)),
            _ => None,
        }
    }

    /// Whether the run was asked for one JSON document on stdout (`--json`).
    pub fn json(&self) -> bool {
        match self {
            Command::Backup(args) => args.json,
            Command::Restore(args) => args.json,
            Command::Verify(args) => args.json,
            Command::List(args) => args.json,
            Command::DiffSchema(args) => args.json,
            Command::Prune(args) => args.json,
            Command::Completions(_) => false,
        }
    }
}
