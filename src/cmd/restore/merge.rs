//! `restore --filter`: the selective merge's arguments checked, the live collection's schema
//! checked against the backup's, the merge confirmed, then run with every change recorded
//! first ([`crate::engine::restore::merge`]).

use std::io::IsTerminal;

use camino::Utf8Path;
use serde_json::Value;

use super::error::RestoreError;
use super::{RestoreArgs, Server, changing, interrupted};
use crate::engine::restore::merge::{self, MergeReport};
use crate::engine::restore::plan::{self, Action, Source};
use crate::engine::restore::report::RestoreReport;
use crate::failure::Outcome;
use crate::signals::StopFlag;
use crate::ui::Ui;

/// The most bytes a `--filter` may hold.
const MAX_FILTER: usize = 1024 * 1024;

/// Merges into the one live collection the backed-up points that match `filter`.
/// `backup`: the backup folder and the Qdrant version it records.
pub(super) fn merge_into(
    args: &RestoreArgs,
    (backup_at, recorded_version): (&Utf8Path, Option<&str>),
    server: &Server,
    sources: Vec<Source>,
    filter: &str,
    (ui, stop): (&Ui, &StopFlag),
    report: &mut RestoreReport,
) -> Outcome {
    let filter = parse_filter(filter)?;
    let source = one_source(sources)?;
    // A snapshot is loaded into the temporary collection: it is bound to its Qdrant version
    // as for any restore. Points go anywhere.
    if source.points.is_none() {
        match super::version_note(recorded_version, &server.version) {
            Ok(_) => {}
            Err(refusal) if args.allow_version_skew => {
                ui.warn(&format!("{refusal} (--allow-version-skew)"));
            }
            Err(refusal) => {
                return Err(RestoreError::Refused {
                    count: 1,
                    reasons: vec![refusal],
                }
                .into());
            }
        }
    }
    let target = source.target.to_string();
    let planned =
        plan::plan_one(&server.client, &server.topology, source).map_err(RestoreError::Plan)?;
    match &planned.action {
        Action::Overwrite { .. } => {}
        Action::Create => {
            return Err(RestoreError::MergeTarget {
                reason: format!(
                    "`{target}` does not exist on the server; restore the whole collection without --filter"
                ),
            }
            .into());
        }
        Action::Refuse(_) => {
            let Action::Refuse(refusal) = planned.action else {
                unreachable!()
            };
            return Err(RestoreError::Refused {
                count: 1,
                reasons: vec![refusal],
            }
            .into());
        }
    }
    ui.step(&format!(
        "Plan: merge into `{target}` the points of the backup's `{}` that match the filter",
        planned.source.entry.name
    ));
    if !args.dry_run {
        let what = format!("the points of `{target}` that match the filter");
        let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        if !args.force && !terminal {
            return Err(RestoreError::NoTerminal { what }.into());
        }
        if !args.force {
            super::show::confirm(&what)?;
        }
    }
    interrupted(stop)?;
    let mut merged = MergeReport::default();
    let outcome = changing(args, backup_at, server, ui, stop, report, |cx, undo, _| {
        merge::merge(
            cx,
            &planned.source,
            &filter,
            args.dry_run,
            undo,
            &mut merged,
        )
    });
    report.merge = Some(merged);
    outcome
}

/// The filter: a JSON object, at most [`MAX_FILTER`] bytes.
fn parse_filter(text: &str) -> Outcome<Value> {
    let bad =
        |reason: String| -> crate::failure::Failure { RestoreError::BadFilter { reason }.into() };
    if text.len() > MAX_FILTER {
        return Err(bad(format!("it is over {} KiB", MAX_FILTER / 1024)));
    }
    let budget = crate::json::Budget::new(crate::json::DEFAULT_BUDGET);
    let value =
        crate::json::value_from_slice(text.as_bytes(), &budget).map_err(|e| bad(e.to_string()))?;
    match value {
        Value::Object(_) => Ok(value),
        _ => Err(bad("it is not a JSON object".into())),
    }
}

/// The one collection a merge works on.
fn one_source(mut sources: Vec<Source>) -> Outcome<Source> {
    match sources.len() {
        1 => Ok(sources.remove(0)),
        n => Err(RestoreError::MergeTarget {
            reason: format!("the backup holds {n} collections; name one with --collection"),
        }
        .into()),
    }
}
