//! Amounts for people: sizes in binary IEC units and durations, as every line aimem prints
//! shows them (the UI's steps and closing lines, the `-v` trace of each HTTP exchange).
//!
//! Pure formatting, below everything that prints, so the Qdrant client's trace and the UI
//! share it without the client depending on the UI.

use std::time::Duration;

/// `850 ms`, `12.3 s`, `4 min 05 s`, `1 h 02 min`.
pub fn human_duration(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    match seconds {
        0 => format!("{} ms", elapsed.as_millis()),
        1..60 => format!("{:.1} s", elapsed.as_secs_f64()),
        60..3600 => format!("{} min {:02} s", seconds / 60, seconds % 60),
        _ => format!("{} h {:02} min", seconds / 3600, seconds % 3600 / 60),
    }
}

/// `1.2 MiB`: binary multiples with their IEC names, the units the progress bars use too.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{human_duration, human_size};

    #[test]
    fn sizes_use_binary_iec_units() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(524_288), "512.0 KiB");
        assert_eq!(human_size(1_258_291), "1.2 MiB");
        assert_eq!(human_size(53_901_000_000), "50.2 GiB");
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(human_duration(Duration::from_millis(12_340)), "12.3 s");
        assert_eq!(human_duration(Duration::from_secs(245)), "4 min 05 s");
        assert_eq!(human_duration(Duration::from_secs(3720)), "1 h 02 min");
    }
}
