//! `aimem list`: every backup in a backup root, newest first, with what it holds and its state.
//!
//! Offline. A folder that cannot be read is listed as damaged and the listing goes on; the
//! command itself fails only when the root cannot be read at all.

use camino::Utf8PathBuf;
use clap::Args;
use serde::Serialize;

use crate::engine::backup::journal;
use crate::failure::Outcome;
use crate::manifest::audit::Options;
use crate::manifest::layout::default_root;
use crate::output;
use crate::repo::catalog::{ClusterSummary, Listed, State};
use crate::repo::{Repo, locate};
use crate::ui::{Ui, human_size};

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The folder that holds the backups, or an `s3://bucket/prefix` [default:
    /// AI_MEMORY_BACKUP_DIR, else ./backups].
    #[arg(value_name = "ROOT", value_hint = clap::ValueHint::DirPath)]
    pub root: Option<Utf8PathBuf>,

    /// Also verify each complete backup (checksums and snapshot schemas) and show the result.
    #[arg(long)]
    pub verify: bool,

    /// Print one JSON document on stdout (shape in the README, "JSON output").
    #[arg(long)]
    pub json: bool,
}

/// One row of `--json`.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    path: String,
    /// RFC 3339, or null when unknown.
    date: Option<String>,
    ai_memory_version: Option<String>,
    qdrant_version: Option<String>,
    /// `snapshot`, `logical` (docs/logical-format.md) or `mixed`; null when unreadable.
    format: Option<&'static str>,
    /// `passphrase` or `recipients` for an encrypted backup (what opens it); omitted for
    /// one that is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    encrypted: Option<crate::manifest::KeyKind>,
    collections: Vec<String>,
    records: Option<u64>,
    size_bytes: u64,
    state: State,
    /// Why the folder is damaged.
    problem: Option<String>,
    /// With `--verify`, for complete backups: `{"ok", "legacy", "problems"}`.
    verification: Option<Verification>,
    /// Only for a backup of a distributed Qdrant: `{"peers", "shards"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterSummary>,
}

/// What a cluster backup spans: the peers at backup time and its shard files.
fn describe_cluster(cluster: &ClusterSummary) -> String {
    format!(
        "{} peer{}, {} shard{}",
        cluster.peers,
        if cluster.peers == 1 { "" } else { "s" },
        cluster.shards,
        if cluster.shards == 1 { "" } else { "s" }
    )
}

#[derive(Debug, Serialize)]
struct Verification {
    ok: bool,
    legacy: bool,
    problems: usize,
}

#[derive(Debug, Serialize)]
struct Listing {
    root: String,
    backups: Vec<Row>,
    /// What killed backups left behind (staging folders and server snapshots); omitted when
    /// there is none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    leftovers: Vec<Leftover>,
}

/// A killed backup's or restore's leftovers, from its journal.
#[derive(Debug, Serialize)]
struct Leftover {
    /// `backup` or `restore`.
    kind: &'static str,
    /// A backup's staging folder; a restore's journal.
    staging: String,
    owner: Option<String>,
    /// The server as the journal names it, credentials hidden; none when it names none or
    /// nothing aimem reads as a server URL.
    server: Option<String>,
    /// `collection/snapshot` names still on the server (uploaded copies included).
    snapshots: Vec<String>,
    /// Collections whose snapshot creation was asked for and never answered.
    unanswered: Vec<String>,
    message: String,
}

impl Leftover {
    fn of(kind: &'static str, l: &journal::Leftover, staging: String, message: String) -> Self {
        Leftover {
            kind,
            staging,
            owner: l
                .owner
                .as_ref()
                .map(crate::workspace::runs::Owner::describe),
            // Redacted: an older aimem may have written it with credentials.
            server: l.server.as_deref().and_then(crate::qdrant::shown_stored),
            snapshots: journal::in_kind_order(&l.snapshots, |s| &s.site)
                .map(|s| format!("{}/{}", s.site.collection(), s.snapshot))
                .chain(
                    l.uploads
                        .iter()
                        .map(|u| format!("{}/{}", u.collection, u.file)),
                )
                .collect(),
            unanswered: journal::in_kind_order(&l.unanswered, |u| &u.site)
                .map(|u| u.site.collection().to_string())
                .collect(),
            message,
        }
    }
}

pub fn run(args: &ListArgs, ui: &Ui) -> Outcome {
    let root = args.root.clone().unwrap_or_else(default_root);
    let repo = locate::repo(&root)?;
    let listed = locate::scan(&*repo, "list")?;
    // Offline: the leftovers of killed backups are reported; the next backup deletes them.
    let journals = crate::workspace::journal_root(&root, crate::workspace::runs::Missing::Skip, ui)
        .unwrap_or_else(|_| root.clone());
    let mut leftovers: Vec<Leftover> = journal::dead_runs(&journals)
        .iter()
        .map(|l| {
            let message = match l.has_server_snapshots() && l.damaged.is_none() {
                true => format!(
                    "{}; the next `aimem backup` into this folder against that server deletes them",
                    l.describe()
                ),
                false => l.describe(),
            };
            ui.warn(&message);
            Leftover::of("backup", l, l.staging.to_string(), message)
        })
        .collect();
    // Killed restores, wherever the backup they restored lives: the next backup or restore
    // against their server deletes what they left there.
    leftovers.extend(crate::engine::restore::dead_restores(&root, ui).iter().map(|l| {
        let message = match (l.damage(&l.journal), l.has_server_snapshots()) {
            (Some(damage), _) => format!(
                "{}: {damage}",
                crate::engine::restore::describe_dead_restore(l)
            ),
            (None, true) => format!(
                "{}; may still be on {}; the next `aimem backup` or `aimem restore` against that server deletes them",
                crate::engine::restore::describe_dead_restore(l),
                l.server
                    .as_deref()
                    .map_or_else(|| "its server".to_string(), crate::qdrant::describe_stored)
            ),
            (None, false) => crate::engine::restore::describe_dead_restore(l),
        };
        ui.warn(&message);
        Leftover::of("restore", l, l.journal.to_string(), message)
    }));
    let rows: Vec<Row> = listed
        .iter()
        .map(|l| {
            if args.verify && l.state.is_complete() {
                ui.step(&format!("Verifying {}...", l.name));
            }
            row(&*repo, l, args.verify)
        })
        .collect();
    if args.json {
        output::json(&Listing {
            root: root.to_string(),
            backups: rows,
            leftovers,
        });
    } else if rows.is_empty() {
        output::line(&format!("No backups in {root}"));
    } else {
        print_table(&rows, args.verify);
    }
    Ok(())
}

fn row(repo: &dyn Repo, listed: &Listed, verify: bool) -> Row {
    let summary = listed.summary.as_ref();
    let verification = (verify && listed.state.is_complete()).then(|| {
        match repo.open(&listed.found) {
            Ok(backup) => {
                let audit = backup.audit(Options { deep: true });
                Verification {
                    ok: audit.ok(),
                    legacy: audit.legacy,
                    problems: audit.findings.len(),
                }
            }
            // What was read to list it as complete cannot be read again.
            Err(_) => Verification {
                ok: false,
                legacy: false,
                problems: 1,
            },
        }
    });
    Row {
        name: listed.name.clone(),
        path: listed.path.to_string(),
        date: listed.taken.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }),
        ai_memory_version: summary.map(|s| s.ai_memory_version.clone()),
        qdrant_version: summary.and_then(|s| s.qdrant_version.clone()),
        format: summary.map(|s| s.format),
        encrypted: summary.and_then(|s| s.encrypted),
        collections: summary.map(|s| s.collections.clone()).unwrap_or_default(),
        records: summary.map(|s| s.records),
        size_bytes: listed.size_bytes,
        state: listed.state,
        problem: listed.problem.clone(),
        verification,
        cluster: summary.and_then(|s| s.cluster),
    }
}

fn print_table(rows: &[Row], verify: bool) {
    let mut header = vec![
        "NAME",
        "DATE",
        "AI MEMORY",
        "QDRANT",
        "FORMAT",
        "COLLECTIONS",
        "RECORDS",
        "SIZE",
        "STATE",
    ];
    if verify {
        header.push("VERIFIED");
    }
    // Only a root that holds a cluster backup gets the column: other listings stay as they were.
    let clusters = rows.iter().any(|r| r.cluster.is_some());
    if clusters {
        header.push("CLUSTER");
    }
    let dash = || "-".to_string();
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let mut cells = vec![
            r.name.clone(),
            r.date
                .as_deref()
                .map_or_else(dash, |d| d.get(..19).unwrap_or(d).replace('T', " ")),
            r.ai_memory_version.clone().unwrap_or_else(dash),
            r.qdrant_version.clone().unwrap_or_else(dash),
            match (r.format, r.encrypted) {
                (Some(format), Some(_)) => format!("{format}, encrypted"),
                (format, _) => format.map_or_else(dash, str::to_string),
            },
            if r.collections.is_empty() {
                dash()
            } else {
                r.collections.len().to_string()
            },
            r.records.map_or_else(dash, |n| n.to_string()),
            human_size(r.size_bytes),
            match &r.problem {
                Some(problem) => format!("{} ({problem})", r.state.as_str()),
                None => r.state.as_str().to_string(),
            },
        ];
        if verify {
            cells.push(match &r.verification {
                None => dash(),
                Some(v) if v.ok && v.legacy => "ok (legacy, no checksums)".into(),
                Some(v) if v.ok => "ok".into(),
                Some(v) => format!(
                    "FAILED ({} problem{})",
                    v.problems,
                    if v.problems == 1 { "" } else { "s" }
                ),
            });
        }
        if clusters {
            cells.push(r.cluster.as_ref().map_or_else(dash, describe_cluster));
        }
        // Escaped before measuring, so the columns line up; a line break in a field cannot
        // forge a row.
        table.push(
            cells
                .iter()
                .map(|cell| crate::terminal::escape_line(cell).into_owned())
                .collect(),
        );
    }
    let columns = table[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for cells in &table {
        let line: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        output::line(line.join("  ").trim_end());
    }
}
