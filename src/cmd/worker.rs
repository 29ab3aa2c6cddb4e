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

/// Runs `work` on a worker thread; returns its result, or the signal's exit status if a stop
/// was requested first. A panic in `work` is re-raised here.
pub fn interruptible<T: Send + 'static>(
    stop: &StopFlag,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Exit> {
    if let Some(exit) = stop.requested() {
        return Err(exit);
    }
    let handle = std::thread::spawn(work);
    loop {
        if handle.is_finished() {
            return handle
                .join()
                .map_err(|panic| std::panic::resume_unwind(panic));
        }
        if let Some(exit) = stop.requested() {
            return Err(exit);
        }
        std::thread::sleep(POLL);
    }
}

/// Runs `work` on a worker thread and always waits for it to finish, because abandoning it
/// would leave something behind (a snapshot Qdrant goes on building). When a stop is
/// requested meanwhile, `on_stop` runs once (to say what is being waited for; a second signal
/// ends the process at once) and the signal's exit status is returned beside the result.
pub fn finish_then_stop<T: Send + 'static>(
    stop: &StopFlag,
    on_stop: impl FnOnce(),
    work: impl FnOnce() -> T + Send + 'static,
) -> (T, Option<Exit>) {
    let handle = std::thread::spawn(work);
    let mut on_stop = Some(on_stop);
    loop {
        if handle.is_finished() {
            let result = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            return (result, stop.requested());
        }
        if stop.requested().is_some() {
            if let Some(say) = on_stop.take() {
                say();
            }
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_work_result() {
        assert_eq!(interruptible(&StopFlag::never(), || 41 + 1), Ok(42));
        let (result, stopped) = finish_then_stop(&StopFlag::never(), || panic!("no stop"), || 7);
        assert_eq!((result, stopped), (7, None));
    }
}
