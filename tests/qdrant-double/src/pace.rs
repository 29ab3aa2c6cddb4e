//! Simulated server-side work. A real Qdrant needs time proportional to a snapshot's size to
//! build it and to recover an upload (about 1.2 s per 250 MB on the bench machines); the
//! double does both at disk speed. With a rate configured, the work is stretched to at least
//! `bytes / rate`, so benchmarks see the waits a client has to overlap. Off by default.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

/// How long `bytes` of work take at `rate` bytes per second.
pub(crate) fn work_time(bytes: u64, rate: NonZeroU64) -> Duration {
    Duration::from_secs_f64(bytes as f64 / rate.get() as f64)
}

/// Sleeps until `started + bytes / rate`; no-op without a rate or when that time has passed.
pub(crate) fn stretch(started: Instant, bytes: u64, rate: Option<NonZeroU64>) {
    let Some(rate) = rate else {
        return;
    };
    if let Some(left) = work_time(bytes, rate).checked_sub(started.elapsed()) {
        std::thread::sleep(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_time_is_proportional_to_size() {
        let rate = NonZeroU64::new(1 << 20).expect("non-zero");
        assert_eq!(work_time(1 << 20, rate), Duration::from_secs(1));
        assert_eq!(work_time(3 << 19, rate), Duration::from_millis(1500));
        assert_eq!(work_time(0, rate), Duration::ZERO);
    }
}
