//! `restore --json`: the plan, what each collection ended as, and the rollback, filled in as
//! the restore goes (a failed run shows how far it got). Shape in the README, "JSON output".

use serde::Serialize;
use serde_json::{Value, json};

use super::config::{ConfigFile, Skipped};
use super::plan::{Action, Planned, Source, recorded_shard_number, shard_aware};
use super::rollback::{RollbackOutcome, Undo};
use crate::engine::peers::Topology;

#[derive(Debug, Default, Serialize)]
pub struct RestoreReport {
    /// The backup folder restored from (null when the argument named none).
    pub backup: Option<String>,
    pub dry_run: bool,
    /// The server, credentials redacted; null until connected.
    pub server: Option<String>,
    pub qdrant_version: Option<String>,
    /// Notes on the plan (the Qdrant versions of the backup and the server).
    pub notes: Vec<String>,
    /// One entry per collection of the backup to restore, in the plan's order; empty until
    /// the plan is made.
    pub collections: Vec<CollectionReport>,
    pub config_files: Vec<ConfigReport>,
    /// Config files `--restore-config` will not write, and why.
    pub config_skipped: Vec<SkippedReport>,
    /// Null unless a failure after the first change led to a rollback.
    pub rollback: Option<Rollback>,
    /// `--filter` only: what the selective merge did (or, a dry run, would do).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge: Option<super::merge::MergeReport>,
    pub seconds: f64,
    /// Seconds per restored collection (by target), as the restore finishes each.
    #[serde(skip)]
    pub timings: Vec<(String, f64)>,
}

#[derive(Debug, Serialize)]
pub struct CollectionReport {
    /// The collection's name in the backup.
    pub name: String,
    /// The collection on the server it is restored into.
    pub target: String,
    /// `create`, `overwrite` or `refuse`.
    pub action: &'static str,
    /// Records the backup holds.
    pub records: u64,
    /// Points in the live collection before (overwrite only).
    pub points_before: Option<u64>,
    /// Differences that do not block, or why it is refused.
    pub warnings: Vec<String>,
    pub refusal: Option<String>,
    /// `restored`, `unchanged`, `rolled_back`, or `unknown` (its rollback failed: see
    /// `rollback.failures`).
    pub outcome: &'static str,
    /// Seconds the restore of this collection took (null unless restored).
    pub seconds: Option<f64>,
    /// Cluster restores only: the layouts, peers and shards (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct ConfigReport {
    pub name: String,
    pub to: String,
    /// `create` or `overwrite`.
    pub action: &'static str,
}

#[derive(Debug, Serialize)]
pub struct SkippedReport {
    pub name: String,
    pub why: String,
}

#[derive(Debug, Serialize)]
pub struct Rollback {
    /// True when everything changed was put back.
    pub ok: bool,
    /// One line per thing put back.
    pub done: Vec<String>,
    /// What could not be put back, and why.
    pub failures: Vec<Failed>,
    /// Pre-restore snapshots kept on disk after a failed rollback.
    pub prerestore_kept: Vec<Kept>,
    /// Collections this run had changed, which the rollback was about.
    #[serde(skip)]
    pub touched: Vec<String>,
    /// Those of them the rollback put back (or deleted, when created by this run).
    #[serde(skip)]
    pub rolled_back: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Failed {
    pub what: String,
    pub why: String,
}

#[derive(Debug, Serialize)]
pub struct Kept {
    pub collection: String,
    pub path: String,
}

/// Collections the run changed (or may have): those the rollback is about.
fn touched(undo: &Undo) -> Vec<String> {
    let mut names: Vec<String> = undo.created.clone();
    names.extend(
        undo.saved
            .iter()
            .filter(|s| s.touched)
            .map(|s| s.collection.clone()),
    );
    names.extend(undo.unclear.iter().map(|u| u.collection.clone()));
    names.extend(undo.unsettled.iter().map(|u| u.collection.clone()));
    names
}

impl Rollback {
    /// Reads the undo log before it is replayed (the replay empties parts of it).
    pub fn before(undo: &Undo) -> Vec<String> {
        touched(undo)
    }

    /// The report of a rollback: the same account the terminal shows. Pre-restore copies are
    /// listed as kept only for what was not put back (the others were discarded).
    pub fn of(rolled: &RollbackOutcome, undo: &Undo, touched: Vec<String>) -> Rollback {
        Rollback {
            ok: rolled.ok(),
            done: rolled.done.clone(),
            failures: rolled
                .failed
                .iter()
                .map(|f| Failed {
                    what: f.what.clone(),
                    why: f.why.clone(),
                })
                .collect(),
            prerestore_kept: match rolled.ok() {
                true => Vec::new(),
                false => undo
                    .kept()
                    .into_iter()
                    .map(|(collection, path)| Kept {
                        collection: collection.to_string(),
                        path: path.to_string(),
                    })
                    .collect(),
            },
            touched,
            rolled_back: rolled.rolled_back.clone(),
        }
    }
}

impl RestoreReport {
    /// The plan, every collection `unchanged` for now.
    pub fn plan(
        &mut self,
        plans: &[Planned],
        notes: &[String],
        config_files: &[ConfigFile],
        skipped: &[Skipped],
    ) {
        self.notes = notes.to_vec();
        self.collections = plans
            .iter()
            .map(|p| {
                let (action, points_before, warnings, refusal) = match &p.action {
                    Action::Create => ("create", None, Vec::new(), None),
                    Action::Overwrite {
                        points, warnings, ..
                    } => ("overwrite", Some(*points), warnings.clone(), None),
                    Action::Refuse(refusal) => {
                        ("refuse", None, Vec::new(), Some(refusal.to_string()))
                    }
                };
                CollectionReport {
                    name: p.source.entry.name.clone(),
                    target: p.source.target.to_string(),
                    action,
                    records: p.source.entry.records,
                    points_before,
                    warnings,
                    refusal,
                    outcome: "unchanged",
                    seconds: None,
                    cluster: None,
                }
            })
            .collect();
        self.config_files = config_files
            .iter()
            .map(|f| ConfigReport {
                name: f.name.clone(),
                to: f.to.to_string(),
                action: match f.overwrites {
                    true => "overwrite",
                    false => "create",
                },
            })
            .collect();
        self.config_skipped = skipped
            .iter()
            .map(|s| SkippedReport {
                name: s.name.clone(),
                why: s.why.clone(),
            })
            .collect();
    }

    /// Every planned (not refused) collection was restored.
    pub fn restored(&mut self) {
        for c in &mut self.collections {
            if c.action != "refuse" {
                c.outcome = "restored";
            }
        }
        self.apply_timings();
    }

    /// After a failure: what the rollback did to each collection the run had changed.
    pub fn settle(&mut self) {
        self.apply_timings();
        let Some(rollback) = &self.rollback else {
            return;
        };
        for c in &mut self.collections {
            if rollback.touched.contains(&c.target) {
                c.outcome = match rollback.ok || rollback.rolled_back.contains(&c.target) {
                    true => "rolled_back",
                    false => "unknown",
                };
            }
        }
    }

    fn apply_timings(&mut self) {
        for (target, seconds) in &self.timings {
            if let Some(c) = self.collections.iter_mut().find(|c| &c.target == target) {
                c.seconds = Some(*seconds);
            }
        }
    }
}

/// The `--json` shard details of one collection restored shard by shard (new keys only).
pub fn cluster(topology: &Topology, source: &Source) -> Option<Value> {
    if !shard_aware(topology, source) {
        return None;
    }
    let peers: Vec<Value> = topology
        .peers()
        .iter()
        .map(|p| json!({"peer_id": p.peer_id, "url": p.client.display_url()}))
        .collect();
    Some(match &source.cluster {
        Some(c) => json!({
            "backup_layout": if c.on_cluster { "cluster" } else { "single" },
            "target_layout": if topology.is_cluster() { "cluster" } else { "single" },
            "peers": peers,
            "shard_number": c.record.shard_number,
            "replication_factor": c.record.replication_factor,
            "write_consistency_factor": c.record.write_consistency_factor,
            "sharding_method": c.record.sharding_method,
            "shard_keys": c.record.shard_keys,
            "shards": c.shards.iter().map(|s| json!({
                "shard_id": s.record.shard_id,
                "shard_key": s.record.shard_key,
                "file": s.relative,
                "records": s.record.records,
            })).collect::<Vec<_>>(),
        }),
        None => json!({
            "backup_layout": "single",
            "target_layout": "cluster",
            "peers": peers,
            "shard_number": recorded_shard_number(source),
        }),
    })
}
