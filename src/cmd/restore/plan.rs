//! What a restore will do to each collection (create, overwrite or refuse), decided from
//! read-only calls only, and whether the server's Qdrant version can take the snapshots.

use camino::Utf8PathBuf;
use miette::Diagnostic;
use thiserror::Error;

use crate::fingerprint::{self, Fingerprint, Severity};
use crate::manifest::CollectionEntry;
use crate::qdrant::{Client, QdrantError};

/// One collection of the backup, with where it goes.
#[derive(Debug, Clone)]
pub struct Source {
    pub entry: CollectionEntry,
    /// The collection name on the server (`--target-name`, else the backup's name).
    pub target: crate::names::SafeName,
    pub snapshot: Utf8PathBuf,
    /// The snapshot file, opened inside the backup folder (never through a link): what is
    /// hashed and uploaded is exactly the file that was checked.
    pub file: std::sync::Arc<std::fs::File>,
    /// SHA-256 of the snapshot file, when CHECKSUMS.sha256 verified it.
    pub verified_sha256: Option<String>,
    /// The backup's schema; None for a legacy (pre-2.4.1) manifest.
    pub fingerprint: Option<Fingerprint>,
    /// Without a fingerprint: the schema the snapshot file itself holds (its config.json),
    /// which the live collection is checked against instead.
    pub snapshot_fingerprint: Option<Fingerprint>,
    /// A cluster backup's collection: its shard files (then `file` is the first of them).
    pub cluster: Option<std::sync::Arc<super::shards::ClusterSource>>,
}

impl Source {
    /// The exact count the backup recorded: a collection that kept changing while it was
    /// backed up is known only within a range.
    pub fn recorded_points(&self) -> (u64, u64) {
        let records = self.entry.records;
        (records, self.entry.records_max.unwrap_or(records))
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
             {source_version} server (or the next minor release), or pass --allow-version-skew to try anyway."
        )
    )]
    VersionSkew {
        source_version: String,
        target_version: String,
    },

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

/// Decides the action for one collection from the server's current state.
pub fn plan_one(client: &Client, source: Source) -> Result<Planned, PlanError> {
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
            Some(_) if custom_sharding && source.cluster.is_none() => {
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
    let blocking: Vec<String> = differences
        .iter()
        .filter(|d| d.severity == Severity::Blocking)
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
            snapshot_file: source.entry.snapshot_file.clone(),
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
