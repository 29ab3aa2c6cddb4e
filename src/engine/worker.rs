//! Keeps the command responsive to Ctrl-C while a blocking network call runs.
//!
//! A snapshot can take minutes to build and a download can stall for the whole stall timeout;
//! a blocked socket read does not notice a signal. So long calls run on a worker thread while
//! the command's thread watches the stop flag. On a stop the command goes on to its cleanup at
//! once and the worker is abandoned: it ends with the process.

use std::time::Duration;

use crate::exit::Exit;
use crate::signals::StopFlag;

/// How often the waiting thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// Runs `work` on a worker thread; returns its result, or None as soon as `give_up` says so
/// (the worker is then abandoned). `give_up` is asked every poll. A panic in `work` is
/// re-raised here.
pub fn until<T: Send + 'static>(
    mut give_up: impl FnMut() -> bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let handle = std::thread::spawn(work);
    loop {
        if handle.is_finished() {
            return match handle.join() {
                Ok(value) => Some(value),
                Err(panic) => std::panic::resume_unwind(panic),
            };
        }
        if give_up() {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Runs `work` on a worker thread; returns its result, or the signal's exit status as soon as
/// a stop is requested.
pub fn interruptible<T: Send + 'static>(
    stop: &StopFlag,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Exit> {
    if let Some(exit) = stop.requested() {
        return Err(exit);
    }
    until(|| stop.requested().is_some(), work)
        .ok_or_else(|| stop.requested().unwrap_or(Exit::Interrupted))
}

/// Runs `work` on a worker thread and waits for it to end even after a stop: for calls whose
/// outcome must be known before cleaning up, since Qdrant finishes what it started after the
/// client goes away. `on_stop` runs on every poll while a stop is requested (it prints what
/// is being waited for, once); a second signal still ends the process at once.
pub fn wait_through<T: Send + 'static>(
    stop: &StopFlag,
    mut on_stop: impl FnMut(),
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let result = until(
        || {
            if stop.requested().is_some() {
                on_stop();
            }
            false
        },
        work,
    );
    match result {
        Some(value) => value,
        // `give_up` above never says yes.
        None => unreachable!("the wait never gives up"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_through_a_stop_still_returns_the_result() {
        assert_eq!(wait_through(&StopFlag::never(), || {}, || 6 * 7), 42);
        assert_eq!(until(|| false, || 1), Some(1));
        assert_eq!(
            until(|| true, || std::thread::sleep(Duration::from_secs(5))),
            None
        );
    }

    #[test]
    fn returns_the_work_result() {
        assert_eq!(interruptible(&StopFlag::never(), || 41 + 1), Ok(42));
    }
}
