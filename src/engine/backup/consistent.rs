//! A collection's snapshot whose point count and schema are known, whether it is one site's
//! (a single node) or every shard's (a cluster).
//!
//! The schema fingerprint read before and after must agree, or the schema changed (a payload
//! index added, say) and nobody knows which one the snapshot holds: the manifest would not
//! describe it, and the backup would fail its own verification. Then it is taken again, and
//! after [`SNAPSHOT_ATTEMPTS`] the backup of this collection fails.
//!
//! The exact count before and after (and, with custom sharding, each shard key's) must agree
//! too, or writes happened meanwhile and the snapshot holds an unknown number of points, which
//! restore could not check. Then it is taken again; if the collection never holds still, the
//! range is recorded (`records` .. `records_max`) with a warning.

use super::{Backed, BackupError, Context, collection_error, live_fingerprint, stopped};
use crate::fingerprint::Fingerprint;
use crate::manifest::cluster::ShardKey;

/// How many times a snapshot is taken again when writes moved the point count (or the
/// schema) meanwhile.
pub const SNAPSHOT_ATTEMPTS: u32 = 3;

/// What is snapshotted, as the notes name it.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// The collection's one snapshot.
    Collection,
    /// Its shards' snapshots.
    Shards,
    /// Its points, read by scroll (a logical backup).
    Points,
}

impl Scope {
    fn schema_moved(self, name: &str) -> String {
        match self {
            Scope::Collection => {
                format!("`{name}`: its schema changed while it was snapshotted; taking it again")
            }
            Scope::Shards => format!(
                "`{name}`: its schema changed while it was snapshotted; taking its shards again"
            ),
            Scope::Points => {
                format!(
                    "`{name}`: its schema changed while its points were read; reading them again"
                )
            }
        }
    }

    fn points_moved(self, name: &str, before: u64, after: u64) -> String {
        match self {
            Scope::Collection => format!(
                "`{name}` changed while it was snapshotted ({before} → {after} points); taking it again"
            ),
            Scope::Shards => format!(
                "`{name}` changed while its shards were snapshotted ({before} → {after} points); taking them again"
            ),
            Scope::Points => format!(
                "`{name}` changed while its points were read ({before} → {after} points); reading them again"
            ),
        }
    }

    fn kept_moving(self, name: &str, low: u64, high: u64) -> String {
        match self {
            Scope::Collection => format!(
                "`{name}` kept changing while it was snapshotted: the snapshot holds between {low} and {high} points"
            ),
            Scope::Shards => format!(
                "`{name}` changed while its shards were snapshotted: the backup holds between {low} and {high} points"
            ),
            Scope::Points => format!(
                "`{name}` kept changing while its points were read: the backup holds between {low} and {high} points"
            ),
        }
    }
}

/// A snapshot taken with its point count and schema known.
pub struct Consistent<T> {
    pub taken: T,
    pub records: u64,
    /// When writes kept moving the count: the snapshot holds between `records` and this.
    pub records_max: Option<u64>,
    /// Each of `shard_keys`' exact count; empty when they moved.
    pub key_records: Vec<u64>,
    pub schema: Fingerprint,
}

/// Takes `name`'s snapshot with `take` until its count (and `shard_keys`' counts) and schema
/// held still around it; `again` drops an attempt that is taken again. After the last attempt
/// a schema still moving fails the collection (what was taken stays for the cleanup), counts
/// still moving are recorded as a range.
pub fn consistent<T>(
    cx: &Context,
    name: &str,
    shard_keys: &[ShardKey],
    scope: Scope,
    mut take: impl FnMut() -> Backed<T>,
    mut again: impl FnMut(T),
) -> Backed<Consistent<T>> {
    // The exact total, and (custom sharding) each key's exact count: a shard's own
    // `points_count` is approximate, so these are what a restore checks per key.
    let count = || -> Backed<(u64, Vec<u64>)> {
        let total = cx
            .client
            .count_exact(name)
            .map_err(|e| collection_error(name, e))?;
        let per_key = shard_keys
            .iter()
            .map(|key| {
                cx.client
                    .count_exact_in_shard_key(name, key)
                    .map_err(|e| collection_error(name, e))
            })
            .collect::<Backed<Vec<u64>>>()?;
        Ok((total, per_key))
    };
    let mut attempt = 1;
    loop {
        let schema_before = live_fingerprint(cx, name)?;
        let (before, keys_before) = count()?;
        let taken = take()?;
        let (after, keys_after) = count()?;
        let schema = live_fingerprint(cx, name)?;
        stopped(cx.stop)?;
        if schema_before != schema {
            if attempt == SNAPSHOT_ATTEMPTS {
                return Err(BackupError::SchemaKeptChanging {
                    collection: name.to_string(),
                    attempts: SNAPSHOT_ATTEMPTS,
                });
            }
            cx.ui.note(&scope.schema_moved(name));
            again(taken);
            attempt += 1;
            continue;
        }
        if before == after && keys_before == keys_after {
            return Ok(Consistent {
                taken,
                records: before,
                records_max: None,
                key_records: keys_after,
                schema,
            });
        }
        let (low, high) = (before.min(after), before.max(after));
        if attempt == SNAPSHOT_ATTEMPTS {
            cx.ui.warn(&scope.kept_moving(name, low, high));
            // The range is recorded even when the totals agree but the keys moved.
            return Ok(Consistent {
                taken,
                records: low,
                records_max: Some(high),
                key_records: Vec::new(),
                schema,
            });
        }
        cx.ui.note(&scope.points_moved(name, before, after));
        again(taken);
        attempt += 1;
    }
}
