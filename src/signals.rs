//! Ctrl-C and SIGTERM: the first one asks the running command to stop and clean up; a second
//! one ends the process at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::exit::Exit;

/// Shared view of whether a stop was asked for.
#[derive(Debug, Clone)]
pub struct StopFlag {
    signal: Arc<AtomicUsize>,
}

impl StopFlag {
    /// Installs the handlers. On failure (no signal support) the flag simply never rises.
    pub fn install() -> StopFlag {
        let signal = Arc::new(AtomicUsize::new(0));
        let asked = Arc::new(AtomicBool::new(false));
        for (number, exit) in [(SIGINT, Exit::Interrupted), (SIGTERM, Exit::Terminated)] {
            // Order matters: the conditional shutdown runs first, so only a *second* signal
            // (asked already true) ends the process at once.
            let _ = signal_hook::flag::register_conditional_shutdown(
                number,
                i32::from(exit.code()),
                Arc::clone(&asked),
            );
            let _ = signal_hook::flag::register(number, Arc::clone(&asked));
            let _ = signal_hook::flag::register_usize(number, Arc::clone(&signal), number as usize);
        }
        StopFlag { signal }
    }

    /// A flag that never rises, for code paths that cannot be interrupted (and tests).
    pub fn never() -> StopFlag {
        StopFlag {
            signal: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The exit status to stop with, if a signal arrived.
    pub fn requested(&self) -> Option<Exit> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            n if n == SIGTERM as usize => Some(Exit::Terminated),
            _ => Some(Exit::Interrupted),
        }
    }
}
