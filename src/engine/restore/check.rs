//! The one check a collection passes after a restore, and after a rollback: its schema is the
//! one it should have, and its exact point count is within the range recorded for it.
//!
//! Every path uses it: a single-node restore ([`super::act`]), a shard-by-shard one (whose
//! count is checked on every replica, [`super::replicas::verify`]), and both rollbacks. What
//! differs between them is a parameter: what the collection is checked [`Against`], and which
//! schema differences [`Counted`].

use crate::fingerprint::{self, Fingerprint, Severity};
use crate::qdrant::{Client, QdrantError};

/// What a collection is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Against {
    /// The backup it was restored from.
    Backup,
    /// What it held before the restore, which a rollback put back.
    Before,
}

impl Against {
    /// How a schema difference names its two sides, and the words that introduce the list.
    fn labels(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Against::Backup => ("backup", "restored", "schema differs"),
            Against::Before => ("before", "now", "its schema differs afterwards"),
        }
    }

    /// The words before a recorded count: "… points, the backup recorded 31".
    pub fn recorded(self) -> &'static str {
        match self {
            Against::Backup => "the backup recorded",
            Against::Before => "before the restore it held",
        }
    }
}

/// Which schema differences fail the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Every difference.
    Every,
    /// Structure only ([`Severity::Blocking`]): replication settings may differ.
    Blocking,
}

impl Counted {
    /// After a restore: a collection created in the layout the backup was taken in must equal
    /// the backup. An overwritten one keeps its own replication settings (reported as
    /// warnings when planned), and across layouts (single node, cluster) they differ on
    /// purpose: there only structure counts.
    pub fn after_restore(created: bool, same_layout: bool) -> Counted {
        match created && same_layout {
            true => Counted::Every,
            false => Counted::Blocking,
        }
    }
}

/// Why a check failed.
#[derive(Debug)]
pub enum Failed {
    /// The server could not be asked.
    Read(QdrantError),
    /// The collection is not as it should be: what differs.
    Differs(String),
}

/// The live schema of `collection` against `expected`: the differences `counted`, named as
/// `against` says. Without an expected schema (a legacy backup) the live one must still be
/// readable.
pub fn schema(
    client: &Client,
    collection: &str,
    expected: Option<&Fingerprint>,
    against: Against,
    counted: Counted,
) -> Result<(), Failed> {
    let info = client.collection_info(collection).map_err(Failed::Read)?;
    let live =
        Fingerprint::from_collection_info(&info).map_err(|e| Failed::Differs(e.to_string()))?;
    let Some(expected) = expected else {
        return Ok(());
    };
    let (expected_side, live_side, intro) = against.labels();
    let relevant: Vec<String> = fingerprint::diff(expected, &live)
        .iter()
        .filter(|d| counted == Counted::Every || d.severity == Severity::Blocking)
        .map(|d| d.describe(expected_side, live_side))
        .collect();
    match relevant.is_empty() {
        true => Ok(()),
        false => Err(Failed::Differs(format!("{intro}: {}", relevant.join("; ")))),
    }
}

/// An exact count against the range recorded for it (`low` = `high` unless the collection
/// was written to while it was taken): what differs, if it is outside.
pub fn points(points: u64, (low, high): (u64, u64), against: Against) -> Result<(), String> {
    if (low..=high).contains(&points) {
        return Ok(());
    }
    Err(format!(
        "it holds {points} points, {} {}",
        against.recorded(),
        range(low, high)
    ))
}

/// `31`, or `between 30 and 32`.
fn range(low: u64, high: u64) -> String {
    match low == high {
        true => low.to_string(),
        false => format!("between {low} and {high}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_outside_its_range_is_told_with_the_range() {
        assert!(points(31, (31, 31), Against::Backup).is_ok());
        assert!(points(31, (30, 32), Against::Before).is_ok());
        assert_eq!(
            points(30, (31, 31), Against::Backup).unwrap_err(),
            "it holds 30 points, the backup recorded 31"
        );
        assert_eq!(
            points(29, (30, 32), Against::Backup).unwrap_err(),
            "it holds 29 points, the backup recorded between 30 and 32"
        );
        assert_eq!(
            points(33, (30, 32), Against::Before).unwrap_err(),
            "it holds 33 points, before the restore it held between 30 and 32"
        );
    }

    #[test]
    fn every_difference_counts_only_in_a_created_collection_of_the_same_layout() {
        assert_eq!(Counted::after_restore(true, true), Counted::Every);
        assert_eq!(Counted::after_restore(true, false), Counted::Blocking);
        assert_eq!(Counted::after_restore(false, true), Counted::Blocking);
        assert_eq!(Counted::after_restore(false, false), Counted::Blocking);
    }
}
