//! `aimem verify`: audit one backup offline (no Qdrant needed) and say what it is worth.
//!
//! The checks themselves live in [`crate::manifest::audit`]; this command resolves the folder,
//! prints each problem on its own line and a summary, and maps the result to an exit status:
//! 0 when everything holds (a legacy backup without checksums: everything that can be
//! checked, with a warning), 2 when anything is wrong.

use camino::Utf8PathBuf;
use clap::Args;
use serde::Serialize;

use crate::exit::Exit;
use crate::failure::{Failure, Outcome};
use crate::manifest::audit::{Audit, Finding, Options};
use crate::manifest::checksums;
use crate::metrics::Facts;
use crate::output;
use crate::repo::locate;
use crate::ui::{Ui, throughput};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The backup folder (or `s3://bucket/prefix/NAME`), or `latest` for the newest complete
    /// backup in the backup root (AI_MEMORY_BACKUP_DIR, else ./backups).
    #[arg(value_name = "DIR", value_hint = clap::ValueHint::DirPath, add = crate::complete::backup_folder())]
    pub backup: Utf8PathBuf,

    /// Check files only: do not read each snapshot's schema from inside its archive, nor
    /// decode a logical backup's points files.
    #[arg(long)]
    pub no_deep: bool,

    /// Print one JSON document on stdout (shape in the README, "JSON output").
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub metrics: crate::metrics::MetricsArgs,

    #[command(flatten)]
    pub keys: crate::crypt::DecryptArgs,
}

/// `--json`: `{"backup", "ok", "legacy", "deep", "files_checked", "problems": [{file, kind, problem}],
/// "notices": [{file, kind, problem}]}`; a cluster backup's findings about a shard add
/// `collection` and `shard`, and it may add `"information": [{file, kind, problem}]`.
#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    backup: &'a str,
    ok: bool,
    legacy: bool,
    deep: bool,
    files_checked: usize,
    /// Its files are encrypted.
    encrypted: bool,
    /// What is inside the files was checked (false: an encrypted backup checked as stored).
    contents_checked: bool,
    problems: &'a [Finding],
    /// What a legacy backup without checksums lacks (not problems); empty otherwise.
    notices: &'a [Finding],
    /// Worth knowing, no problem (a cluster backup's per-shard counts); omitted when empty.
    #[serde(skip_serializing_if = "<[Finding]>::is_empty")]
    information: &'a [Finding],
}

pub fn run(args: &VerifyArgs, ui: &Ui, facts: &Facts) -> Outcome {
    facts.root_of_backup(&args.backup);
    let backup = locate::backup(&args.backup)?;
    facts.root_of_backup(backup.location());
    // Checking the files as stored needs no key; reading what is inside them does.
    let backup = match args.no_deep {
        true => backup,
        false => crate::crypt::opened::open(backup, &args.keys)?,
    };
    let dir = backup.location();
    ui.step(&format!("Verifying {dir}..."));
    ui.phase_started("verify", None);
    let meter = ui.hash_meter(&format!("hashing {}", dir.file_name().unwrap_or("")));
    let audit = checksums::observed(meter.clone(), || {
        backup.audit(Options {
            deep: !args.no_deep,
        })
    });
    let (bytes, took) = meter.done();
    facts.bytes(bytes);
    // The records of each collection, as the manifest of a backup that holds records them.
    if let Ok(manifest) = backup.manifest() {
        for (name, entry) in &manifest.collections {
            facts.collection(name, entry.records);
        }
    }
    ui.phase_finished(
        "verify",
        None,
        audit.ok(),
        serde_json::json!({ "bytes": bytes, "problems": audit.findings.len() }),
    );
    ui.note(&format!("hashed {}", throughput(bytes, took)));
    report(&audit, args, ui)
}

fn report(audit: &Audit, args: &VerifyArgs, ui: &Ui) -> Outcome {
    if let Some(error) = &audit.manifest_error {
        // The manifest's own diagnostic marks the bad spot; shown once, on stderr.
        match ui.writes_events() {
            true => ui.event(
                "problem",
                serde_json::json!({
                    "file": crate::manifest::MANIFEST_FILE,
                    "message": error.to_string(),
                }),
            ),
            false => eprintln!("{:?}", ManifestReport(error)),
        }
    }
    let problems = audit.findings.len();
    if args.json {
        output::json(&JsonReport {
            backup: audit.backup.as_str(),
            ok: audit.ok(),
            legacy: audit.legacy,
            deep: !args.no_deep,
            files_checked: audit.files_checked,
            encrypted: audit.encrypted,
            contents_checked: audit.contents_checked,
            problems: &audit.findings,
            notices: &audit.notices,
            information: &audit.information,
        });
    } else {
        for finding in &audit.findings {
            output::line(&format!("✗ {finding}"));
        }
        for note in &audit.information {
            // Plain ASCII: information, neither a check mark nor a failure.
            output::line(&format!("note: {note}"));
        }
        let deep = if audit.encrypted && !audit.contents_checked {
            " as stored (encrypted: what is inside them was not read)"
        } else if args.no_deep {
            ""
        } else {
            ", snapshot schemas and points files compared with the manifest"
        };
        let legacy = if audit.legacy { " (legacy backup)" } else { "" };
        output::line(&if audit.ok() && !audit.notices.is_empty() {
            format!(
                "✓ {}: OK as far as it can be checked: a legacy backup without checksums{}",
                audit.backup,
                match args.no_deep {
                    true => "",
                    false => ", snapshot archives read",
                }
            )
        } else if audit.ok() {
            format!(
                "✓ {}: OK, {} files checked{deep}",
                audit.backup, audit.files_checked
            )
        } else {
            format!(
                "✗ {}: {problems} problem{}{legacy}, {} files checked{deep}",
                audit.backup,
                if problems == 1 { "" } else { "s" },
                audit.files_checked
            )
        });
    }
    for notice in &audit.notices {
        ui.warn(&notice.to_string());
    }
    if audit.ok() {
        match audit.notices.is_empty() {
            true => ui.ok("backup verified"),
            false => ui.warn(
                "legacy backup: its sizes and snapshot archives hold, but without checksums corruption cannot be detected. Restore accepts it (over existing collections) with a warning; take a new backup with `aimem backup` to have one that verifies fully.",
            ),
        }
        return Ok(());
    }
    let help = if audit.legacy {
        "This backup predates aimem's format (no schema fingerprint) and has the problems above besides: do not rely on it. Take a new backup with `aimem backup`."
    } else {
        "Do not rely on this backup: restore would refuse it. Use another one (`aimem list --verify`), or take a new backup with `aimem backup`."
    };
    Err(Failure::msg(
        Exit::Failed,
        format!(
            "{} failed verification ({problems} problem{})",
            audit.backup,
            if problems == 1 { "" } else { "s" }
        ),
        help,
    ))
}

/// Renders a borrowed manifest error through miette (which wants an owned diagnostic).
struct ManifestReport<'a>(&'a crate::manifest::ManifestError);

impl std::fmt::Debug for ManifestReport<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::io::IsTerminal;
        // Box drawing only on a terminal, as for every other diagnostic (`terminal.rs`).
        let theme = match (
            console::colors_enabled_stderr(),
            std::io::stderr().is_terminal(),
        ) {
            (true, true) => miette::GraphicalTheme::unicode(),
            (false, true) => miette::GraphicalTheme::unicode_nocolor(),
            (true, false) => miette::GraphicalTheme::ascii(),
            (false, false) => miette::GraphicalTheme::none(),
        };
        let handler = miette::GraphicalReportHandler::new_themed(theme).with_wrap_lines(false);
        let mut out = String::new();
        let escaped = crate::terminal::Escaped::new(self.0);
        if handler.render_report(&mut out, &escaped).is_err() {
            return write!(f, "{escaped}");
        }
        write!(f, "{out}")
    }
}
