//! Which backups a retention policy keeps, as restic's `forget` defines the rules.
//!
//! Pure functions over backup times, so every rule is unit-tested without a folder:
//! - `keep_last N`: the N most recent backups;
//! - `keep_daily N`: the newest backup of each of the last N calendar days that have backups
//!   (days with none do not count); `keep_weekly N` likewise per ISO week;
//! - `keep_within D`: every backup taken at most D before the *newest backup* (not before
//!   now, as restic does too): a backup job that stopped months ago must not make the next
//!   prune delete everything.
//!
//! Rules combine: a backup is kept when any rule keeps it, and every rule that does is named.

use time::{Duration, OffsetDateTime};

/// The rules to apply; `None` means the rule is not used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub keep_last: Option<usize>,
    pub keep_within: Option<Duration>,
    pub keep_daily: Option<usize>,
    pub keep_weekly: Option<usize>,
}

impl Policy {
    /// No rule given: nothing may be decided (prune refuses rather than deleting everything).
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

/// For each backup time (newest first), the reasons it is kept; empty means it goes.
pub fn decide(times_newest_first: &[OffsetDateTime], policy: &Policy) -> Vec<Vec<String>> {
    let mut reasons = vec![Vec::new(); times_newest_first.len()];
    if let Some(n) = policy.keep_last {
        for (i, r) in reasons.iter_mut().enumerate().take(n) {
            r.push(format!("last {n} (#{})", i + 1));
        }
    }
    if let (Some(within), Some(newest)) = (policy.keep_within, times_newest_first.first()) {
        // A span reaching before the calendar's start keeps everything.
        let cutoff = newest.checked_sub(within);
        for (t, r) in times_newest_first.iter().zip(reasons.iter_mut()) {
            if cutoff.is_none_or(|cutoff| *t >= cutoff) {
                r.push(format!("within {} of the newest", show_duration(within)));
            }
        }
    }
    if let Some(n) = policy.keep_daily {
        bucketed(times_newest_first, n, &mut reasons, |t| {
            let d = t.date();
            (format!("daily ({d})"), i64::from(d.to_julian_day()))
        });
    }
    if let Some(n) = policy.keep_weekly {
        bucketed(times_newest_first, n, &mut reasons, |t| {
            let (year, week, _) = t.to_iso_week_date();
            (
                format!("weekly ({year}-W{week:02})"),
                i64::from(year) * 100 + i64::from(week),
            )
        });
    }
    reasons
}

/// Keeps the newest backup of each of the first `n` distinct buckets.
fn bucketed(
    times_newest_first: &[OffsetDateTime],
    n: usize,
    reasons: &mut [Vec<String>],
    bucket: impl Fn(&OffsetDateTime) -> (String, i64),
) {
    let mut last = None;
    let mut used = 0;
    for (t, r) in times_newest_first.iter().zip(reasons.iter_mut()) {
        if used >= n {
            break;
        }
        let (label, key) = bucket(t);
        if last != Some(key) {
            last = Some(key);
            used += 1;
            r.push(label);
        }
    }
}

/// The longest `--keep-within` accepted: a century, far beyond any backup's age.
const MAX_HOURS: i64 = 100 * 366 * 24;

/// `7d`, `12h`, `2w`, or combined like `1d12h`: weeks, days and hours.
///
/// `m` and `y` are refused rather than guessed: in restic's `--keep-within` `m` means months,
/// in most other tools minutes, and a wrong guess deletes backups.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`{text}` is not a duration: write a number and a unit (w, d or h), like 7d, 12h or 1d12h"
        )
    };
    let mut hours: i64 = 0;
    let mut number = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number.parse().map_err(|_| bad())?;
        number.clear();
        let per_unit = match c {
            'w' => 7 * 24,
            'd' => 24,
            'h' => 1,
            'm' | 'y' => {
                return Err(format!(
                    "`{text}`: `{c}` is ambiguous (months or minutes, years of which length?); \
                     write the span in w, d or h, like 30d or 52w"
                ));
            }
            _ => return Err(bad()),
        };
        hours = n
            .checked_mul(per_unit)
            .and_then(|h| hours.checked_add(h))
            .filter(|&h| h <= MAX_HOURS)
            .ok_or_else(|| format!("`{text}` is longer than a century"))?;
        any = true;
    }
    if !number.is_empty() || !any {
        return Err(bad());
    }
    Ok(Duration::hours(hours))
}

/// `7d`, `12h`, `1d12h`.
fn show_duration(d: Duration) -> String {
    let mut out = String::new();
    let minutes = d.whole_minutes();
    let (days, rest) = (minutes / (24 * 60), minutes % (24 * 60));
    let (hours, mins) = (rest / 60, rest % 60);
    for (n, unit) in [(days, 'd'), (hours, 'h'), (mins, 'm')] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() { "0m".into() } else { out }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    /// Newest first: two on 02-10, one each on 02-09, 02-08, nothing on 02-07, 02-06,
    /// then 02-01 (previous ISO week) and 01-20.
    fn times() -> Vec<OffsetDateTime> {
        vec![
            datetime!(2026-02-10 18:00 UTC),
            datetime!(2026-02-10 06:00 UTC),
            datetime!(2026-02-09 12:00 UTC),
            datetime!(2026-02-08 12:00 UTC),
            datetime!(2026-02-06 12:00 UTC),
            datetime!(2026-02-01 12:00 UTC),
            datetime!(2026-01-20 12:00 UTC),
        ]
    }

    fn kept(policy: Policy) -> Vec<usize> {
        decide(&times(), &policy)
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn keep_last_keeps_the_most_recent() {
        let p = Policy {
            keep_last: Some(3),
            ..Policy::default()
        };
        assert_eq!(kept(p), [0, 1, 2]);
    }

    #[test]
    fn keep_daily_counts_days_that_have_backups() {
        let p = Policy {
            keep_daily: Some(3),
            ..Policy::default()
        };
        // The newest of 02-10 (not the 06:00 one), 02-09, 02-08.
        assert_eq!(kept(p), [0, 2, 3]);
    }

    #[test]
    fn keep_weekly_uses_iso_weeks() {
        let p = Policy {
            keep_weekly: Some(2),
            ..Policy::default()
        };
        // 2026-02-10 (Tue) and 02-09 (Mon) are week 7; 02-08 (Sun) starts week 6.
        assert_eq!(kept(p), [0, 3]);
        let reasons = decide(&times(), &p);
        assert_eq!(reasons[3], ["weekly (2026-W06)"]);
    }

    #[test]
    fn keep_within_is_measured_from_the_newest_backup() {
        let p = Policy {
            keep_within: Some(parse_duration("2d").unwrap()),
            ..Policy::default()
        };
        // 02-10 18:00 minus 2 days = 02-08 18:00: the 02-08 12:00 backup is out.
        assert_eq!(kept(p), [0, 1, 2]);
    }

    #[test]
    fn rules_combine_and_each_reason_is_named() {
        let p = Policy {
            keep_last: Some(1),
            keep_daily: Some(2),
            keep_weekly: Some(4),
            ..Policy::default()
        };
        assert_eq!(kept(p), [0, 2, 3, 5, 6]);
        let reasons = decide(&times(), &p);
        assert_eq!(
            reasons[0],
            ["last 1 (#1)", "daily (2026-02-10)", "weekly (2026-W07)"]
        );
        assert!(reasons[1].is_empty());
    }

    #[test]
    fn no_policy_is_empty() {
        assert!(Policy::default().is_empty());
        assert!(
            !Policy {
                keep_last: Some(0),
                ..Policy::default()
            }
            .is_empty()
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d").unwrap(), Duration::days(7));
        assert_eq!(parse_duration("12h").unwrap(), Duration::hours(12));
        assert_eq!(parse_duration("1d12h").unwrap(), Duration::hours(36));
        assert_eq!(parse_duration("2w").unwrap(), Duration::days(14));
        // restic's `m` is months, most tools' minutes: refused, not guessed.
        assert!(parse_duration("6m").unwrap_err().contains("ambiguous"));
        assert!(parse_duration("1y").unwrap_err().contains("ambiguous"));
        assert!(
            parse_duration("99999999999999w")
                .unwrap_err()
                .contains("century")
        );
        assert!(
            parse_duration("100000000d")
                .unwrap_err()
                .contains("century")
        );
        for bad in ["", "7", "d", "7x", "-1d", "1.5d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(show_duration(Duration::hours(36)), "1d12h");
    }
}
