//! `--jobs N`: several collections restored at once, so that while Qdrant recovers one upload
//! (an upload with `wait=true` answers only once recovered) the next is already being sent.
//!
//! Each collection keeps its own undo log while it runs; the logs are merged in plan order
//! once every worker is done, so the rollback sees exactly what a sequential run would have
//! recorded. The first failure stops new collections from starting (and running ones at their
//! next step); what is in flight finishes, since Qdrant finishes what it started.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::act::{self, Context, StepError};
use super::plan::{Action, Planned};
use super::rollback::Undo;

/// Collections restored at once unless `--jobs` says otherwise.
pub const DEFAULT_JOBS: u8 = 2;

/// One collection's undo log, and the seconds it took when it was restored.
type Finished = (Undo, Option<f64>);

/// Restores every planned collection, at most `jobs` at a time. `--jobs 1` is the sequential
/// [`act::restore_collections`].
pub fn restore_collections(
    cx: &Context,
    plans: &[Planned],
    undo: &mut Undo,
    timings: &mut Vec<(String, f64)>,
    jobs: u8,
) -> Result<(), StepError> {
    let workers = usize::from(jobs).min(plans.len());
    if workers <= 1 {
        return act::restore_collections(cx, plans, undo, timings);
    }
    cx.ui.step("Restoring collections...");
    // One folder for every pre-restore copy, made before the workers race to make it.
    if plans
        .iter()
        .any(|p| matches!(p.action, Action::Overwrite { .. }))
    {
        act::prerestore_folder(cx, undo)?;
    }
    let folder = undo.folder.clone();
    let journal = undo.journal.clone();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<StepError>> = Mutex::new(None);
    let outcomes: Vec<Mutex<Option<Finished>>> = plans.iter().map(|_| Mutex::new(None)).collect();
    let go_on = || -> Result<(), StepError> {
        if failed.load(Ordering::SeqCst) || cx.stop.requested().is_some() {
            return Err(StepError::Interrupted);
        }
        Ok(())
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    if go_on().is_err() {
                        return;
                    }
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(planned) = plans.get(index) else {
                        return;
                    };
                    let mut own = Undo {
                        folder: folder.clone(),
                        journal: journal.clone(),
                        ..Undo::default()
                    };
                    let result = act::caught(&planned.source.target, || {
                        act::restore_one(cx, planned, &mut own, &go_on, true)
                    });
                    let seconds = match result {
                        Ok(seconds) => seconds,
                        Err(e) => {
                            let mut first = first_error
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            if first.is_none() {
                                *first = Some(e);
                            }
                            failed.store(true, Ordering::SeqCst);
                            None
                        }
                    };
                    if let Some(slot) = outcomes.get(index) {
                        *slot
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) =
                            Some((own, seconds));
                    }
                }
            });
        }
    });
    for (planned, slot) in plans.iter().zip(outcomes) {
        let Some((own, seconds)) = slot
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        else {
            continue;
        };
        merge(undo, own);
        if let Some(seconds) = seconds {
            timings.push((planned.source.target.to_string(), seconds));
        }
    }
    match first_error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Adds one collection's log to the run's.
fn merge(undo: &mut Undo, own: Undo) {
    let Undo {
        created,
        saved,
        uploads,
        config,
        folder: _,
        journal: _,
        unclear,
        unsettled,
        merged,
        aliases,
        thresholds,
    } = own;
    undo.aliases.extend(aliases);
    undo.thresholds.extend(thresholds);
    if merged.is_some() {
        undo.merged = merged;
    }
    undo.created.extend(created);
    undo.saved.extend(saved);
    undo.uploads.extend(uploads);
    undo.config.extend(config);
    undo.unclear.extend(unclear);
    undo.unsettled.extend(unsettled);
}
