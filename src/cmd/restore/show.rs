//! What the restore shows: the plan, the question before overwriting, and the summary at the end.

use crate::engine::restore::config::{ConfigFile, Skipped};
use crate::engine::restore::plan::{Action, Planned};
use crate::engine::restore::shards;
use crate::failure::Outcome;
use crate::ui::{Ui, throughput};

use super::error::{RestoreError, Signal};

pub(super) fn show_plan(
    ui: &Ui,
    plans: &[Planned],
    notes: &[String],
    config_files: &[ConfigFile],
    skipped: &[Skipped],
) {
    ui.step("Plan:");
    for note in notes {
        ui.note(note);
    }
    for planned in plans {
        let s = &planned.source;
        let from = match s.target == s.entry.name {
            true => String::new(),
            false => format!(" (from backup collection `{}`)", s.entry.name),
        };
        match &planned.action {
            Action::Create => ui.note(&format!(
                "{}{from}: create from the backup's schema, then load {} records",
                s.target, s.entry.records
            )),
            Action::Overwrite {
                points, warnings, ..
            } => {
                ui.note(&format!(
                    "{}{from}: overwrite its {points} points with the backup's {} records (a pre-restore copy is taken first)",
                    s.target, s.entry.records
                ));
                for warning in warnings {
                    ui.warn(warning);
                }
            }
            Action::Refuse(refusal) => ui.warn(&format!("{}: refused: {refusal}", s.target)),
        }
    }
    for file in config_files {
        let how = match file.overwrites {
            true => "overwrite",
            false => "create",
        };
        ui.note(&format!(
            "config {} → {} ({how}, mode {:o})",
            file.name, file.to, file.mode
        ));
        if let Some(note) = &file.note {
            ui.warn(note);
        }
    }
    for skip in skipped {
        ui.warn(&format!(
            "config {} will not be written: {}",
            skip.name, skip.why
        ));
    }
    ui.blank();
}

/// "collections a, b and config files x" when anything existing gets replaced.
pub(super) fn what_is_overwritten(plans: &[Planned], files: &[ConfigFile]) -> Option<String> {
    let collections: Vec<&str> = plans
        .iter()
        .filter(|p| matches!(p.action, Action::Overwrite { .. }))
        .map(|p| p.source.target.as_str())
        .collect();
    let configs: Vec<&str> = files
        .iter()
        .filter(|f| f.overwrites)
        .map(|f| f.to.as_str())
        .collect();
    let mut parts = Vec::new();
    if !collections.is_empty() {
        parts.push(format!("existing collections {}", collections.join(", ")));
    }
    if !configs.is_empty() {
        parts.push(format!("config files {}", configs.join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join(" and "))
}

/// Asks on the terminal; anything but yes cancels.
pub(super) fn confirm(what: &str) -> Outcome {
    let answer = dialoguer::Confirm::new()
        .with_prompt(crate::terminal::escape(&format!(
            "This will overwrite {what}. Continue?"
        )))
        .default(false)
        .interact_on(&console::Term::stderr());
    match answer {
        Ok(true) => Ok(()),
        // Ctrl-C at the prompt: the terminal's raw mode turns it into a key, which dialoguer
        // reports as an interrupted read (and raises SIGINT, which may end aimem first with the
        // same status). Either way nothing was changed and the status is the signal's.
        Err(dialoguer::Error::IO(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
            Err(RestoreError::Interrupted(Signal::Interrupt).into())
        }
        _ => Err(RestoreError::Declined.into()),
    }
}

/// The summary of a restore that completed.
pub(super) fn summary(
    ui: &Ui,
    plans: &[Planned],
    config_files: &[ConfigFile],
    took: std::time::Duration,
) {
    ui.blank();
    ui.rule();
    ui.success("Restore complete");
    ui.blank();
    let restored_bytes = plans.iter().map(|p| shards::size(&p.source)).sum();
    ui.fact("Took", &throughput(restored_bytes, took));
    ui.fact("Collections restored", &plans.len().to_string());
    ui.fact(
        "Total records",
        &plans
            .iter()
            .map(|p| p.source.entry.records)
            .sum::<u64>()
            .to_string(),
    );
    if !config_files.is_empty() {
        ui.fact("Config files restored", &config_files.len().to_string());
    }
    ui.rule();
}
