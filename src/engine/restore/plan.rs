//! What a restore will do to each collection (create, overwrite or refuse), decided from
//! read-only calls only, and whether the server's Qdrant version can take the snapshots.
//!
//! A collection restored shard by shard ([`shard_aware`]: a cluster backup, or any backup into
//! a cluster) is planned the same way, and then refused where the layouts do not allow it
//! (docs/qdrant.md, "Shard snapshots", "Restoring into a cluster").

use camino::Utf8PathBuf;
use miette::Diagnostic;
use thiserror::Error;

use std::collections::BTreeMap;

use serde_json::Value;

use super::check::Against;
use super::replicas::{self, Expected};
use crate::engine::peers::Topology;
use crate::fingerprint::{self, Fingerprint, Severity};
use crate::manifest::CollectionEntry;
use crate::manifest::cluster::ShardKey;
use crate::qdrant::{Client, QdrantError};

/// One collection of the backup, with where it goes.
#[derive(Debug, Clone)]
pub struct Source {
    pub entry: CollectionEntry,
    /// The collection name on the server (`--target-name`, else the backup's name).
    pub target: crate::names::SafeName,
    pub snapshot: Utf8PathBuf,
    /// The snapshot file, opened inside the backup folder (never through a link) or in its
    /// bucket: the very handle its checksum pass read (`manifest::files::OpenedOnce`). Its
    /// upload carries the verified SHA-256 too, which Qdrant checks before it recovers
    /// anything.
    pub file: crate::manifest::files::Opened,
    /// SHA-256 of the snapshot file, when CHECKSUMS.sha256 verified it.
    pub verified_sha256: Option<String>,
    /// The backup's schema; None for a legacy (pre-2.4.1) manifest.
    pub fingerprint: Option<Fingerprint>,
    /// Without a fingerprint: the schema the snapshot file itself holds (its config.json),
    /// which the live collection is checked against instead.
    pub snapshot_fingerprint: Option<Fingerprint>,
    /// A cluster backup's collection: its shard files (then `file` is the first of them).
    pub cluster: Option<std::sync::Arc<super::shards::ClusterSource>>,
    /// A logical backup's collection: its points files and definition (then `file` is the
    /// first of them).
    pub points: Option<std::sync::Arc<super::logical::source::PointsSource>>,
}

impl Source {
    /// Backed up on a cluster (not a single node, whether as one snapshot or its streamed
    /// shards): what decides which settings a restore into the same kind of server keeps.
    pub fn taken_on_cluster(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.on_cluster)
    }

    /// The exact count the backup recorded: a collection that kept changing while it was
    /// backed up is known only within a range.
    pub fn recorded_points(&self) -> (u64, u64) {
        let records = self.entry.records;
        (records, self.entry.records_max.unwrap_or(records))
    }

    /// What the restored collection must hold: the backup's shards (a single-node backup has
    /// shard 0 alone), its exact count, and each key's exact count where the backup knows it.
    pub fn expected(&self) -> Expected {
        let shards = match &self.cluster {
            Some(cluster) => cluster
                .record
                .shards
                .iter()
                .map(|s| (s.shard_id, s.shard_key.clone()))
                .collect(),
            None => BTreeMap::from([(0, None)]),
        };
        // Per key only when the backup counted each key exactly (the count did not move while
        // it was backed up); the shards' own `points_count` is approximate and never checked
        // against the backup.
        let keys = self
            .cluster
            .as_ref()
            .map(|c| {
                c.record
                    .shard_keys
                    .iter()
                    .cloned()
                    .zip(c.record.key_records.iter().copied())
                    .collect()
            })
            .unwrap_or_default();
        Expected {
            shards,
            points: self.recorded_points(),
            keys,
            against: Against::Backup,
        }
    }
}

/// What happens to one target collection.
#[derive(Debug)]
pub enum Action {
    /// Absent: create it from the fingerprint, then upload.
    Create,
    /// Present and compatible: its points are replaced, its config kept.
    Overwrite {
        live: Fingerprint,
        points: u64,
        /// Differences that do not block (replication, write consistency), or the legacy note.
        warnings: Vec<String>,
    },
    /// Not restorable: nothing is touched.
    Refuse(Refusal),
}

#[derive(Debug)]
pub struct Planned {
    pub source: Source,
    pub action: Action,
}

/// Why a collection cannot be restored.
#[derive(Debug, Error, Diagnostic)]
pub enum Refusal {
    #[error("schema mismatch on `{target}`:\n{differences}")]
    #[diagnostic(
        code(aimem::restore::schema_mismatch),
        help(
            "backup/restore is a same-version tool: the live collection's structure differs from the backup's. \
             Run the migrate_v<XXX>_*.py script that shipped with the release whose schema you are moving to, \
             or restore into a new name with --collection {backup_name} --target-name NEW."
        )
    )]
    SchemaMismatch {
        backup_name: String,
        target: String,
        differences: String,
    },

    #[error(
        "`{target}` does not exist, and the backup predates v2.4.1: without a schema fingerprint aimem cannot create it"
    )]
    #[diagnostic(
        code(aimem::restore::legacy_manifest),
        help(
            "Provision the collections first with `python scripts/setup-collections.py` (or create `{target}` \
             with the schema it had), then run the restore again: a backup without a fingerprint restores \
             into existing collections, checked against the config inside its snapshot."
        )
    )]
    LegacyAbsent { target: String },

    #[error(
        "the snapshot for `{target}` holds another schema than the live `{target}`:\n{differences}"
    )]
    #[diagnostic(
        code(aimem::restore::legacy_snapshot_mismatch),
        help(
            "The backup has no schema fingerprint, so the collection config inside its snapshot \
             (qdrant/{snapshot_file}) was compared with the live collection: the snapshot is of another \
             collection or schema. Check that the backup's snapshot files are the right ones, or use \
             another backup."
        )
    )]
    LegacySnapshotMismatch {
        target: String,
        snapshot_file: String,
        differences: String,
    },

    #[error(
        "`{target}` does not exist and uses custom sharding, whose shard keys a snapshot cannot recreate"
    )]
    #[diagnostic(
        code(aimem::restore::custom_sharding),
        help(
            "Qdrant does not recreate shard keys from a snapshot (qdrant issue 10135), so the points would have \
             no shard to go to. Create `{target}` with its shard keys first (PUT /collections/{target}, then \
             PUT /collections/{target}/shards for each key, in their original order), then run the restore \
             again: it restores into the existing collection."
        )
    )]
    CustomShardingAbsent { target: String },

    #[error("the backup comes from Qdrant {source_version}; this server runs {target_version}")]
    #[diagnostic(
        code(aimem::restore::version_skew),
        help(
            "Qdrant restores a snapshot only on the same or the next minor version. Restore on a Qdrant \
             {source_version} server (or the next minor release), or pass --allow-version-skew to try anyway. \
             A backup taken with --format logical restores into any Qdrant from 1.16 on."
        )
    )]
    VersionSkew {
        source_version: String,
        target_version: String,
    },

    #[error(
        "--shard-number and --replication-factor apply to logical backups only, and this backup holds snapshots"
    )]
    #[diagnostic(
        code(aimem::restore::snapshot_layout),
        help(
            "A Qdrant snapshot holds its shards as they were: it restores only into the layout it was \
             taken in. Re-run without those flags, or take a backup with --format logical, which \
             restores into any layout."
        )
    )]
    SnapshotLayout,

    #[error("`{target}` cannot be restored here: {why}")]
    #[diagnostic(code(aimem::restore::cluster_layout), help("{todo}"))]
    ClusterLayout {
        target: String,
        why: String,
        todo: String,
    },
}

/// How the server's version relates to the backup's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionCheck {
    Same,
    NextMinor,
    /// Older, or two or more minors newer, or another major.
    Skew,
    /// One of the versions is unknown.
    Unknown,
}

/// Compares `major.minor` of the backup's and the server's Qdrant versions.
pub fn check_version(source: Option<&str>, target: Option<&str>) -> VersionCheck {
    let parse = |v: &str| {
        let mut parts = v.trim().trim_start_matches('v').split('.');
        let major = parts.next()?.parse::<u64>().ok()?;
        let minor = parts.next()?.parse::<u64>().ok()?;
        Some((major, minor))
    };
    match (source.and_then(parse), target.and_then(parse)) {
        (Some(s), Some(t)) if s == t => VersionCheck::Same,
        (Some((sm, sn)), Some((tm, tn))) if sm == tm && tn == sn + 1 => VersionCheck::NextMinor,
        (Some(_), Some(_)) => VersionCheck::Skew,
        _ => VersionCheck::Unknown,
    }
}

/// Decides the action for one collection from the server's current state: from its schema
/// and count, then from how it would be laid out on `topology`.
pub fn plan_one(
    client: &Client,
    topology: &Topology,
    source: Source,
) -> Result<Planned, PlanError> {
    let mut planned = by_schema(client, source)?;
    check_layout(client, topology, &mut planned);
    Ok(planned)
}

/// The action the collection's existence and schema allow.
fn by_schema(client: &Client, source: Source) -> Result<Planned, PlanError> {
    let target = source.target.to_string();
    let fail = |e: QdrantError| PlanError::Qdrant {
        target: target.clone(),
        source: e,
    };
    if !client.collection_exists(&target).map_err(fail)? {
        let custom_sharding = source.fingerprint.as_ref().is_some_and(|f| {
            f.as_value()
                .pointer("/params/sharding_method")
                .and_then(|m| m.as_str())
                == Some("custom")
        });
        let action = match source.fingerprint {
            // Created from the fingerprint it would have no shard keys, so no shard would take
            // the snapshot's points (qdrant#10135): refuse before anything is done.
            Some(_) if custom_sharding && source.cluster.is_none() && source.points.is_none() => {
                Action::Refuse(Refusal::CustomShardingAbsent {
                    target: target.clone(),
                })
            }
            Some(_) => Action::Create,
            None => Action::Refuse(Refusal::LegacyAbsent {
                target: target.clone(),
            }),
        };
        return Ok(Planned { source, action });
    }
    let info = client.collection_info(&target).map_err(fail)?;
    let live = Fingerprint::from_collection_info(&info).map_err(|e| PlanError::Fingerprint {
        target: target.clone(),
        source: e,
    })?;
    let points = client.count_exact(&target).map_err(fail)?;
    let Some(backup) = &source.fingerprint else {
        return Ok(plan_without_fingerprint(source, target, live, points));
    };
    let differences = fingerprint::diff(backup, &live);
    // A logical backup's points go into any layout.
    let logical = source.points.is_some();
    let blocking: Vec<String> = differences
        .iter()
        .filter(|d| d.severity == Severity::Blocking)
        .filter(|d| !(logical && super::logical::is_layout(&d.path)))
        .map(|d| format!("  {}", d.describe("backup", "live")))
        .collect();
    if !blocking.is_empty() {
        let action = Action::Refuse(Refusal::SchemaMismatch {
            backup_name: source.entry.name.clone(),
            target,
            differences: blocking.join("\n"),
        });
        return Ok(Planned { source, action });
    }
    let warnings = differences
        .iter()
        .map(|d| {
            format!(
                "`{target}` differs (kept as is): {}",
                d.describe("backup", "live")
            )
        })
        .collect();
    Ok(Planned {
        source,
        action: Action::Overwrite {
            live,
            points,
            warnings,
        },
    })
}

/// The plan for an existing collection when the backup has no fingerprint: the schema inside
/// the snapshot stands in for it (blocking differences refuse, others warn).
fn plan_without_fingerprint(
    source: Source,
    target: String,
    live: Fingerprint,
    points: u64,
) -> Planned {
    let Some(inside) = &source.snapshot_fingerprint else {
        let warnings = vec![format!(
            "the backup predates v2.4.1 and has no schema fingerprint: the schema of `{target}` could not be checked"
        )];
        return Planned {
            source,
            action: Action::Overwrite {
                live,
                points,
                warnings,
            },
        };
    };
    let differences = fingerprint::diff(inside, &live);
    let blocking: Vec<String> = differences
        .iter()
        .filter(|d| d.severity == Severity::Blocking)
        .map(|d| format!("  {}", d.describe("snapshot", "live")))
        .collect();
    if !blocking.is_empty() {
        let action = Action::Refuse(Refusal::LegacySnapshotMismatch {
            snapshot_file: match &source.entry.backup {
                crate::manifest::CollectionBackup::Snapshot { file } => file.clone(),
                // Backups of shards and logical ones record their schema: they are never
                // planned without one.
                crate::manifest::CollectionBackup::Shards(_)
                | crate::manifest::CollectionBackup::Points(_) => String::new(),
            },
            target,
            differences: blocking.join("\n"),
        });
        return Planned { source, action };
    }
    let mut warnings = vec![format!(
        "the backup predates v2.4.1 and has no schema fingerprint: `{target}` was checked against the config inside its snapshot instead"
    )];
    warnings.extend(differences.iter().map(|d| {
        format!(
            "`{target}` differs (kept as is): {}",
            d.describe("snapshot", "live")
        )
    }));
    Planned {
        source,
        action: Action::Overwrite {
            live,
            points,
            warnings,
        },
    }
}

/// True when this collection is restored shard by shard: a cluster backup, or any backup into
/// a cluster (a single-node backup into a single node is restored as one snapshot).
pub fn shard_aware(topology: &Topology, source: &Source) -> bool {
    source.cluster.is_some() || topology.is_cluster()
}

/// Refuses, before anything changes, what the layouts do not allow.
fn check_layout(client: &Client, topology: &Topology, planned: &mut Planned) {
    let source = &planned.source;
    // A logical backup's points go into any layout.
    if !shard_aware(topology, source)
        || source.points.is_some()
        || matches!(planned.action, Action::Refuse(_))
    {
        return;
    }
    let target = source.target.to_string();
    let refusal = |why: String, todo: String| {
        Action::Refuse(Refusal::ClusterLayout {
            target: target.clone(),
            why,
            todo,
        })
    };
    // Shard files go over the shards of the same ids: a cluster's, or a single node's (where
    // every shard is local).
    let restorable_over = source.cluster.is_some();
    if restorable_over && matches!(planned.action, Action::Overwrite { .. }) {
        match overwrite_problem(client, topology, source) {
            Some(OverwriteProblem::Layout(problem)) => {
                planned.action = refusal(
                    format!(
                        "the existing `{target}` is sharded otherwise than the backup: {problem}"
                    ),
                    format!(
                        "Restore into a new name (--collection {} --target-name NEW), or delete \
                         `{target}` first (after taking a backup of it) and run the restore again.",
                        source.entry.name
                    ),
                );
            }
            Some(OverwriteProblem::ReplicasDiffer(problem)) => {
                planned.action = refusal(
                    format!(
                        "the replicas of the existing `{target}` do not hold the same data ({problem}), \
                         so no copy of it taken before overwriting could put every replica back"
                    ),
                    format!(
                        "Restore into a new name (--collection {} --target-name NEW) and compare; or, \
                         once you know which replica is right, repair `{target}` (or delete it) and \
                         run the restore again.",
                        source.entry.name
                    ),
                );
            }
            None => {}
        }
        return;
    }
    if matches!(planned.action, Action::Overwrite { .. }) {
        let what = match (source.cluster.is_some(), topology.is_cluster()) {
            (true, true) => "a cluster backup over an existing collection of a cluster",
            (true, false) => "a cluster backup over an existing collection",
            _ => "over an existing collection of a cluster",
        };
        planned.action = refusal(
            format!(
                "`{target}` exists, and this aimem does not restore {what} yet (its shard-aware pre-restore copy is not built)"
            ),
            format!(
                "Restore into a new name (--collection {} --target-name NEW), or delete `{target}` first \
                 (after taking a backup of it) and run the restore again.",
                source.entry.name
            ),
        );
        return;
    }
    if source.cluster.is_none() && topology.is_cluster() {
        let shards = recorded_shard_number(source);
        if shards != 1 {
            planned.action = refusal(
                format!(
                    "the backup is a single-node snapshot of a collection with shard_number {shards}; \
                     a collection snapshot recovers only the shards of the peer it is uploaded to"
                ),
                "Restore it on a single-node Qdrant, then copy its points into the cluster with a \
                 migration tool (or re-index them). Only a single-node backup of a collection with \
                 shard_number 1 restores into a cluster."
                    .to_string(),
            );
        }
    }
}

/// Whether an existing collection has exactly the backup's shards (ids and keys), so that each
/// shard file has its shard to go to, and (on a cluster) replicas that agree; why not otherwise.
fn overwrite_problem(
    client: &Client,
    topology: &Topology,
    source: &Source,
) -> Option<OverwriteProblem> {
    let target = source.target.as_str();
    let nodes = match topology.is_cluster() {
        true => replicas::nodes_of(topology),
        false => match client.collection_cluster_view(target) {
            Ok(view) => vec![replicas::Node {
                peer_id: view.peer_id,
                client: client.clone(),
            }],
            Err(e) => return Some(OverwriteProblem::Layout(e.to_string())),
        },
    };
    let placement = match replicas::read_placement(&nodes, target, false) {
        Ok(placement) => placement,
        Err(e) => return Some(OverwriteProblem::Layout(e.to_string())),
    };
    if let Err(e) = replicas::check_shard_ids(&placement, &source.expected().shards) {
        return Some(OverwriteProblem::Layout(e.to_string()));
    }
    // The pre-restore copy takes each shard from one replica, and a rollback puts it on all.
    let client = topology.peers().first().map(|p| &p.client)?;
    match replicas::existing_replicas_differ(&nodes, client, target) {
        Ok(None) => None,
        Ok(Some(problem)) => Some(OverwriteProblem::ReplicasDiffer(problem)),
        Err(e) => Some(OverwriteProblem::Layout(e.to_string())),
    }
}

/// Why an existing cluster collection is not overwritten.
enum OverwriteProblem {
    /// Its shards are not the backup's (or its placement could not be read).
    Layout(String),
    /// Its replicas hold different data.
    ReplicasDiffer(String),
}

/// The `shard_number` a single-node backup's schema records (1 when it says nothing).
pub fn recorded_shard_number(source: &Source) -> u64 {
    source
        .fingerprint
        .as_ref()
        .and_then(|f| {
            f.as_value()
                .pointer("/params/shard_number")
                .and_then(Value::as_u64)
        })
        .unwrap_or(1)
}

/// One line for the plan: how the collection is laid out where it goes.
pub fn describe_layout(topology: &Topology, source: &Source) -> Option<String> {
    let peers = topology.peers().len();
    if source.points.is_some() {
        return topology.is_cluster().then(|| {
            format!(
                "{}: its points loaded through the cluster, which places them in its shards",
                source.target
            )
        });
    }
    match (&source.cluster, topology.is_cluster()) {
        (Some(c), true) => Some(format!(
            "{}: {} shards ({} sharding{}) × replication {} over {peers} peers; every replica recovered from its shard's file on the peer holding it",
            source.target,
            c.record.shards.len(),
            c.record.sharding_method,
            keys_shown(&c.record.shard_keys),
            c.record.replication_factor
        )),
        (Some(c), false) if !c.on_cluster => Some(format!(
            "{}: {} streamed shard snapshots, each recovered into its shard",
            source.target,
            c.record.shards.len(),
        )),
        (Some(c), false) => Some(format!(
            "{}: a cluster backup of {} shards ({} sharding{}) into a single node: replication 1, each shard recovered from its file",
            source.target,
            c.record.shards.len(),
            c.record.sharding_method,
            keys_shown(&c.record.shard_keys),
        )),
        (None, true) => Some(format!(
            "{}: a single-node backup into a cluster of {peers} peers: its one shard recovered on every peer holding shard 0",
            source.target
        )),
        (None, false) => None,
    }
}

fn keys_shown(keys: &[ShardKey]) -> String {
    match keys.is_empty() {
        true => String::new(),
        false => format!(
            ", keys {}",
            keys.iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Reading the server's state failed while planning.
#[derive(Debug, Error, Diagnostic)]
pub enum PlanError {
    #[error("cannot read collection `{target}`")]
    #[diagnostic(code(aimem::restore::plan))]
    Qdrant {
        target: String,
        #[source]
        #[diagnostic_source]
        source: QdrantError,
    },

    #[error("cannot read the schema of `{target}`")]
    #[diagnostic(code(aimem::restore::plan))]
    Fingerprint {
        target: String,
        #[source]
        #[diagnostic_source]
        source: fingerprint::FingerprintError,
    },
}

impl PlanError {
    /// True when the server as a whole was out of reach (exit 3 rather than 2).
    pub fn is_connection_problem(&self) -> bool {
        matches!(self, PlanError::Qdrant { source, .. } if source.is_connection_problem())
    }
}

impl crate::failure::ExitStatus for PlanError {
    fn exit_status(&self) -> crate::exit::Exit {
        match self.is_connection_problem() {
            true => crate::exit::Exit::ConnectionFailed,
            false => crate::exit::Exit::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_or_next_minor_is_fine_anything_else_is_skew() {
        use VersionCheck::*;
        let check = |s, t| check_version(Some(s), Some(t));
        assert_eq!(check("1.18.3", "1.18.0"), Same);
        assert_eq!(check("1.17.9", "1.18.3"), NextMinor);
        assert_eq!(check("1.18.3", "1.17.9"), Skew, "older target");
        assert_eq!(check("1.16.0", "1.18.3"), Skew, "two minors newer");
        assert_eq!(check("1.18.0", "2.19.0"), Skew, "another major");
        assert_eq!(check_version(None, Some("1.18.3")), Unknown);
        assert_eq!(check("1.x", "1.18.3"), Unknown);
    }
}
