//! `aimem prune`: delete old backups by a retention policy, never the last good one.
//!
//! Only complete backups (aimem's or the Python scripts') are candidates; damaged folders and
//! restore's hidden folders are left alone. Staging folders left by killed backups are removed
//! once older than a day (a younger one may belong to a backup still running). Before anything
//! is deleted, at least one backup that is kept must pass verification: otherwise the prune
//! could leave nothing restorable, and it stops unless `--force` is given.

use std::time::{Duration as StdDuration, SystemTime};

use camino::{Utf8Path, Utf8PathBuf};
use clap::Args;
use miette::Diagnostic;
use serde::Serialize;
use thiserror::Error;
use time::Duration;

use crate::exit::Exit;
use crate::failure::{ExitStatus, Outcome};
use crate::manifest::audit::Options;
use crate::manifest::layout::{self, default_root};
use crate::manifest::retention::{self, Policy};
use crate::metrics::Facts;
use crate::output;
use crate::repo::catalog::{Listed, State};
use crate::repo::{self, Repo, locate};
use crate::ui::Ui;

/// A staging folder younger than this may belong to a backup that is still running.
const STAGING_MAX_AGE: StdDuration = StdDuration::from_secs(24 * 60 * 60);

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The folder that holds the backups, or an `s3://bucket/prefix` [default:
    /// AI_MEMORY_BACKUP_DIR, else ./backups].
    #[arg(value_name = "ROOT", value_hint = clap::ValueHint::DirPath)]
    pub root: Option<Utf8PathBuf>,

    /// Keep the N most recent backups.
    #[arg(long, value_name = "N", value_hint = clap::ValueHint::Other)]
    pub keep_last: Option<usize>,

    /// Keep every backup taken within DURATION of the newest one (7d, 12h, 2w, 1d12h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, value_hint = clap::ValueHint::Other, add = crate::complete::keep_within_examples())]
    pub keep_within: Option<Duration>,

    /// Keep the newest backup of each of the last N days that have backups.
    #[arg(long, value_name = "N", value_hint = clap::ValueHint::Other)]
    pub keep_daily: Option<usize>,

    /// Keep the newest backup of each of the last N ISO weeks that have backups.
    #[arg(long, value_name = "N", value_hint = clap::ValueHint::Other)]
    pub keep_weekly: Option<usize>,

    /// Show what would be kept and removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Delete even when no backup that is kept passes verification.
    #[arg(long)]
    pub force: bool,

    /// Print one JSON document on stdout (shape in the README, "JSON output").
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub metrics: crate::metrics::MetricsArgs,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    retention::parse_duration(text)
}

#[derive(Debug, Serialize)]
struct Kept {
    name: String,
    date: Option<String>,
    reasons: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Removed {
    name: String,
    date: Option<String>,
}

/// `--json`.
#[derive(Debug, Serialize)]
struct Plan {
    root: String,
    dry_run: bool,
    /// True when nothing was deleted because no kept backup passes verification.
    refused: bool,
    /// The newest kept backup that passed verification (null when none was needed or found).
    verified: Option<String>,
    kept: Vec<Kept>,
    removed: Vec<Removed>,
    /// Staging folders of killed backups, older than a day.
    incomplete_removed: Vec<String>,
}

/// Why `prune` stopped, each with its exit status.
#[derive(Debug, Error, Diagnostic)]
enum PruneError {
    /// No `--keep-*` option (exit 1).
    #[error("no retention policy given: prune would not know what to keep")]
    #[diagnostic(help(
        "Give at least one of --keep-last N, --keep-within DURATION, --keep-daily N, --keep-weekly N (add --dry-run to preview)."
    ))]
    NoPolicy,
    /// No kept backup passes verification and `--force` was not given (exit 2).
    #[error("not pruning: none of the {kept} backups that would be kept passes verification")]
    #[diagnostic(help(
        "Deleting now could leave no restorable backup. Check them with `aimem list --verify`, take a new backup, or pass --force to prune anyway."
    ))]
    Refused { kept: usize },
    /// Some folders could not be deleted (exit 2).
    #[error("could not remove: {}", .failures.join("; "))]
    #[diagnostic(help("Check the folders' permissions and run prune again."))]
    NotRemoved { failures: Vec<String> },
}

impl ExitStatus for PruneError {
    fn exit_status(&self) -> Exit {
        match self {
            PruneError::NoPolicy => Exit::InvalidArguments,
            PruneError::Refused { .. } | PruneError::NotRemoved { .. } => Exit::Failed,
        }
    }
}

pub fn run(args: &PruneArgs, ui: &Ui, facts: &Facts) -> Outcome {
    let root = args.root.clone().unwrap_or_else(default_root);
    facts.root(&root);
    let policy = policy(args)?;
    let repo = locate::repo(&root)?;
    let listed = locate::scan(&*repo, "prune")?;

    let decision = decide(&listed, &policy, ui);
    let stale = stale_staging(&*repo, &root, &listed, ui);
    let verified = verify_one_kept(&*repo, &decision, ui);
    let refused = !decision.removed.is_empty() && verified.is_none() && !args.force;
    let mut plan = plan(args, &root, &decision, &stale, verified, refused);

    if !args.json {
        print_plan(args, &plan, &decision.removed, &stale, refused);
    }
    if refused {
        if args.json {
            output::json(&plan);
        }
        return Err(PruneError::Refused {
            kept: decision.kept.len(),
        }
        .into());
    }
    if plan.verified.is_none() && !decision.removed.is_empty() {
        ui.warn("no kept backup passes verification; pruning anyway (--force)");
    }

    ui.phase_started("prune", None);
    let failures = if args.dry_run {
        Vec::new()
    } else {
        delete_all(&*repo, &decision.removed, &stale, &mut plan, ui)
    };
    let kept = decision.kept.len() as u64;
    let failed = |l: &&Listed| {
        failures
            .iter()
            .any(|f| f.starts_with(&format!("{}: ", l.path)))
    };
    let deleted = match args.dry_run {
        true => 0,
        false => decision.removed.iter().filter(|l| !failed(l)).count() as u64,
    };
    facts.pruned(kept, deleted);
    ui.phase_finished(
        "prune",
        None,
        failures.is_empty(),
        serde_json::json!({ "kept": kept, "deleted": deleted }),
    );
    if args.json {
        output::json(&plan);
    } else {
        print_summary(args, &plan, &decision.removed, &stale);
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(PruneError::NotRemoved { failures }.into())
    }
}

/// The retention policy from the `--keep-*` options; at least one is required.
fn policy(args: &PruneArgs) -> Result<Policy, PruneError> {
    let policy = Policy {
        keep_last: args.keep_last,
        keep_within: args.keep_within,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
    };
    if policy.is_empty() {
        return Err(PruneError::NoPolicy);
    }
    Ok(policy)
}

/// The complete backups, sorted into kept (with the reasons) and removed.
struct Decision<'a> {
    kept: Vec<(&'a Listed, Vec<String>)>,
    removed: Vec<&'a Listed>,
}

/// Applies the policy to the dated complete backups (newest first, as scanned); the others
/// are kept, each with the reason the policy does not apply to it. Warns about backups dated
/// in the future.
fn decide<'a>(listed: &'a [Listed], policy: &Policy, ui: &Ui) -> Decision<'a> {
    let candidates: Vec<&Listed> = listed
        .iter()
        .filter(|l| l.state.is_complete() && l.taken.is_some() && layout::is_dated(&l.name))
        .collect();
    let times: Vec<_> = candidates.iter().filter_map(|l| l.taken).collect();
    let reasons = retention::decide(&times, policy);
    let mut kept: Vec<(&Listed, Vec<String>)> = Vec::new();
    let mut removed: Vec<&Listed> = Vec::new();
    for (listed, why) in candidates.iter().zip(reasons) {
        if why.is_empty() {
            removed.push(listed);
        } else {
            kept.push((listed, why));
        }
    }
    for l in listed
        .iter()
        .filter(|l| l.state.is_complete() && l.taken.is_none())
    {
        let why = match l.future_date {
            // Counting it would make it the newest: `--keep-within` would then measure from
            // 2099 and delete every real backup.
            Some(_) => "dated in the future: not counted by the policy",
            None => "no date to apply the policy to",
        };
        kept.push((l, vec![why.into()]));
    }
    for l in listed.iter().filter(|l| l.future_date.is_some()) {
        ui.warn(&format!(
            "{} is {}",
            l.name,
            l.problem.as_deref().unwrap_or("dated in the future")
        ));
    }
    // A copy someone named by hand (`pre-upgrade`) is theirs to delete, not a policy's.
    for l in listed
        .iter()
        .filter(|l| l.state.is_complete() && l.taken.is_some() && !layout::is_dated(&l.name))
    {
        kept.push((l, vec!["not a dated backup folder (named by hand)".into()]));
    }
    Decision { kept, removed }
}

/// The staging folders of killed backups that can go: abandoned for over a day, leaving
/// nothing on a server, and not held by a running backup. Warns about those that left
/// snapshots on a server.
fn stale_staging<'a>(
    repo: &dyn Repo,
    root: &Utf8Path,
    listed: &'a [Listed],
    ui: &Ui,
) -> Vec<&'a Listed> {
    let now = SystemTime::now();
    // prune works offline: what killed backups left on a server is reported, and their
    // staging folders (whose journals are the only record of it) are kept for the next backup.
    let leftovers = crate::engine::backup::journal::dead_runs(root);
    let on_server: Vec<&Utf8Path> = leftovers
        .iter()
        .filter(|l| l.has_server_snapshots())
        .map(|l| l.staging.as_path())
        .collect();
    for leftover in leftovers.iter().filter(|l| l.has_server_snapshots()) {
        match leftover.damaged {
            // It says what to do: no later backup deletes what it names.
            Some(_) => ui.warn(&leftover.describe()),
            None => ui.warn(&format!(
                "{}; kept: prune works offline, and the next `aimem backup` into this folder against that server deletes them",
                leftover.describe()
            )),
        }
    }
    listed
        .iter()
        .filter(|l| l.state == State::Incomplete && staging_is_abandoned(repo, l, now))
        .filter(|l| !on_server.contains(&l.path.as_path()))
        // A journal someone holds is a running backup, whatever its pid says (another host or
        // container sharing the folder). Dead runs' journals are held by this prune itself.
        .filter(|l| {
            leftovers.iter().any(|d| d.staging == l.path)
                || !crate::engine::backup::journal::is_held(&l.path)
        })
        .collect()
}

/// Protects the last good backup: when something is to be removed, the kept backups are
/// verified in turn (newest first) until one passes. The name of the one that passed.
fn verify_one_kept(repo: &dyn Repo, decision: &Decision, ui: &Ui) -> Option<String> {
    if decision.removed.is_empty() {
        return None;
    }
    for (l, _) in &decision.kept {
        ui.step(&format!("Verifying {} (kept)...", l.name));
        // A legacy backup without checksums cannot be fully verified: it does not count.
        let audited = repo
            .open(&l.found)
            .map(|backup| backup.audit(Options { deep: true }));
        if audited.is_ok_and(|audit| audit.fully_verified()) {
            return Some(l.name.clone());
        }
    }
    None
}

/// The `--json` document; a refused prune removes nothing.
fn plan(
    args: &PruneArgs,
    root: &Utf8Path,
    decision: &Decision,
    stale: &[&Listed],
    verified: Option<String>,
    refused: bool,
) -> Plan {
    let date = |l: &Listed| {
        l.taken.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
    };
    Plan {
        root: root.to_string(),
        dry_run: args.dry_run,
        refused,
        verified,
        kept: decision
            .kept
            .iter()
            .map(|(l, why)| Kept {
                name: l.name.clone(),
                date: date(l),
                reasons: why.clone(),
            })
            .collect(),
        removed: if refused {
            Vec::new()
        } else {
            decision
                .removed
                .iter()
                .map(|l| Removed {
                    name: l.name.clone(),
                    date: date(l),
                })
                .collect()
        },
        incomplete_removed: stale.iter().map(|l| l.name.clone()).collect(),
    }
}

/// One line per backup kept or (to be) removed, and per stale staging folder.
fn print_plan(
    args: &PruneArgs,
    plan: &Plan,
    removed: &[&Listed],
    stale: &[&Listed],
    refused: bool,
) {
    let verb = if args.dry_run {
        "would remove"
    } else {
        "remove"
    };
    for k in &plan.kept {
        output::line(&format!("keep    {}  ({})", k.name, k.reasons.join(", ")));
    }
    for r in removed {
        let verb = if refused {
            "would remove (refused)"
        } else {
            verb
        };
        output::line(&format!("{verb}  {}", r.name));
    }
    for s in stale {
        output::line(&format!(
            "{verb}  {}  (incomplete: left by a backup that did not finish, over a day old)",
            s.name
        ));
    }
}

/// Deletes the removed backups and the stale staging folders, then finishes what an earlier
/// prune left half deleted. A folder that could not be deleted leaves the plan and is
/// returned as a line of the error.
fn delete_all(
    repo: &dyn Repo,
    removed: &[&Listed],
    stale: &[&Listed],
    plan: &mut Plan,
    ui: &Ui,
) -> Vec<String> {
    let mut failures = Vec::new();
    for l in removed.iter().chain(stale.iter()) {
        if let Err(e) = delete(repo, l, ui) {
            failures.push(format!("{}: {e}", l.path));
            plan.removed.retain(|r| r.name != l.name);
            plan.incomplete_removed.retain(|name| name != &l.name);
        }
    }
    // What an earlier prune hid for deletion but could not finish deleting.
    for (location, e) in repo.finish_removals() {
        ui.warn(&format!("could not finish deleting {location}: {e}"));
    }
    failures
}

/// The closing line: how many kept, and how many (would be) removed.
fn print_summary(args: &PruneArgs, plan: &Plan, removed: &[&Listed], stale: &[&Listed]) {
    let what = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    output::line(&format!(
        "{} kept, {what} {} backup{} and {} incomplete folder{}",
        plan.kept.len(),
        removed.len(),
        if removed.len() == 1 { "" } else { "s" },
        stale.len(),
        if stale.len() == 1 { "" } else { "s" },
    ));
}

/// A staging folder is abandoned when the backup that wrote it is gone (its process id ends
/// the name, or a bucket's run record names it) and nothing inside it changed for a day: a
/// long backup is still writing into `qdrant/` while the folder's own time stays at its start.
fn staging_is_abandoned(repo: &dyn Repo, listed: &Listed, now: SystemTime) -> bool {
    let writer_alive = repo.writer_alive(&listed.found) == Some(true);
    let newest = repo.last_change(&listed.found).or(listed.modified);
    let old = newest
        .and_then(|m| now.duration_since(m).ok())
        .is_some_and(|age| age > STAGING_MAX_AGE);
    !writer_alive && old
}

/// Removes a backup (out of sight at once, then its files). Once out of sight it is no longer
/// a backup, so a failure to delete the rest is only a warning's worth.
fn delete(repo: &dyn Repo, listed: &Listed, ui: &Ui) -> std::io::Result<()> {
    if let repo::Removed::HalfWay(e) = repo.remove(&listed.found)? {
        ui.warn(&format!(
            "{} is no longer a backup, but deleting it stopped half way ({e}); the next prune retries",
            listed.name
        ));
    }
    Ok(())
}
