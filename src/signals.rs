//! Ctrl-C and SIGTERM.
//!
//! Outside a [`StopFlag::cleanup_scope`] the first signal ends the process at once, with 130
//! or 143: nothing is half made there (reading, hashing, connecting, asking), so there is
//! nothing to undo, and no code path has to remember to look at the flag for the signal to
//! work. This is what makes every subcommand stop on one signal, whatever it is blocked in.
//!
//! Inside a cleanup scope (a command that has started changing things: a staging folder, a
//! server snapshot, a restore) the first signal only asks the command to stop; it notices,
//! undoes what it made and exits with the signal's status. A second one then ends the
//! process at once, except inside a [`StopFlag::hold`] section, where the command itself gives
//! up on what it was waiting for and says what is left to do (a third one still ends the
//! process at once).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::exit::Exit;

/// Shared view of whether a stop was asked for.
#[derive(Debug, Clone)]
pub struct StopFlag {
    /// The first signal's number, 0 before any.
    signal: Arc<AtomicUsize>,
    /// How many signals arrived.
    count: Arc<AtomicUsize>,
    /// Open [`Hold`]s.
    holds: Arc<AtomicUsize>,
    /// Open [`CleanupScope`]s. The signal thread keeps the lock from its decision to end the
    /// process to the end itself, so no scope (and nothing it would undo) can begin between.
    cleanups: Arc<Mutex<usize>>,
}

fn exit_for(number: usize) -> Exit {
    match number == SIGTERM as usize {
        true => Exit::Terminated,
        false => Exit::Interrupted,
    }
}

impl StopFlag {
    /// Installs the handlers. On failure (no signal support) the flag simply never rises.
    ///
    /// `last_words` runs on the signal thread just before it ends the process, with the exit
    /// status it ends with: the face's chance to say so (the `--json` document). It must
    /// return within a bounded time.
    pub fn install(last_words: fn(Exit)) -> StopFlag {
        let flag = StopFlag::never();
        // A thread reads the signals (the handler itself only writes to a pipe), so the
        // decision can look at more than one flag; ending the process uses `_exit`, which is
        // what the handler would do.
        if let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
            let seen = flag.clone();
            let spawned = std::thread::Builder::new()
                .name("aimem-signals".into())
                .spawn(move || {
                    for number in signals.forever() {
                        let number = number as usize;
                        let n = seen.count.fetch_add(1, Ordering::SeqCst) + 1;
                        if n == 1 {
                            seen.signal.store(number, Ordering::SeqCst);
                            let scopes = seen.open_cleanups();
                            if *scopes > 0 {
                                continue;
                            }
                            crate::events::stopped_by_signal(exit_for(number));
                            last_words(exit_for(number));
                            crate::scratch::remove_all();
                            signal_hook::low_level::exit(i32::from(exit_for(number).code()));
                        }
                        if n == 2 && seen.holds.load(Ordering::SeqCst) > 0 {
                            continue;
                        }
                        let exit = exit_for(seen.signal.load(Ordering::SeqCst));
                        last_words(exit);
                        crate::scratch::remove_all();
                        signal_hook::low_level::exit(i32::from(exit.code()));
                    }
                });
            let _ = spawned;
        }
        flag
    }

    /// A flag that never rises, for code paths that cannot be interrupted (and tests).
    pub fn never() -> StopFlag {
        StopFlag {
            signal: Arc::new(AtomicUsize::new(0)),
            count: Arc::new(AtomicUsize::new(0)),
            holds: Arc::new(AtomicUsize::new(0)),
            cleanups: Arc::new(Mutex::new(0)),
        }
    }

    fn open_cleanups(&self) -> MutexGuard<'_, usize> {
        self.cleanups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// From now until the returned guard is dropped, the first signal does not end the
    /// process: it only raises the flag, and the caller must notice ([`StopFlag::requested`]),
    /// undo what it made and return the signal's status. Open it before making the first
    /// thing that would need undoing.
    pub fn cleanup_scope(&self) -> CleanupScope {
        *self.open_cleanups() += 1;
        CleanupScope { flag: self.clone() }
    }

    /// The exit status to stop with, if a signal arrived.
    pub fn requested(&self) -> Option<Exit> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            n => Some(exit_for(n)),
        }
    }

    /// Until the returned guard is dropped, a second signal does not end the process: it makes
    /// [`StopFlag::abandoned`] true, so a wait that must not be cut silently can give up and
    /// report. A third signal still ends the process at once.
    pub fn hold(&self) -> Hold {
        self.holds.fetch_add(1, Ordering::SeqCst);
        Hold { flag: self.clone() }
    }

    /// True once a second signal arrived (the user insists on stopping).
    pub fn abandoned(&self) -> bool {
        self.count.load(Ordering::SeqCst) >= 2
    }

    #[cfg(test)]
    fn raise(&self, number: i32) {
        if self.count.fetch_add(1, Ordering::SeqCst) == 0 {
            self.signal.store(number as usize, Ordering::SeqCst);
        }
    }
}

/// See [`StopFlag::cleanup_scope`].
#[derive(Debug)]
pub struct CleanupScope {
    flag: StopFlag,
}

impl Drop for CleanupScope {
    fn drop(&mut self) {
        let mut open = self.flag.open_cleanups();
        *open = open.saturating_sub(1);
    }
}

/// See [`StopFlag::hold`].
#[derive(Debug)]
pub struct Hold {
    flag: StopFlag,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.flag.holds.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_decides_the_exit_and_a_second_abandons() {
        let flag = StopFlag::never();
        assert_eq!(flag.requested(), None);
        flag.raise(SIGTERM);
        assert_eq!(flag.requested(), Some(Exit::Terminated));
        assert!(!flag.abandoned());
        let hold = flag.hold();
        flag.raise(SIGINT);
        assert!(flag.abandoned());
        assert_eq!(flag.requested(), Some(Exit::Terminated));
        drop(hold);
        assert_eq!(flag.holds.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn cleanup_scopes_nest_and_close() {
        let flag = StopFlag::never();
        let outer = flag.cleanup_scope();
        let inner = flag.clone().cleanup_scope();
        assert_eq!(*flag.open_cleanups(), 2);
        drop(inner);
        drop(outer);
        assert_eq!(*flag.open_cleanups(), 0);
    }
}
