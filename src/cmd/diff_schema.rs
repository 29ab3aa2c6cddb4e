//! `aimem diff-schema`: why a restore would be refused, before trying one.
//!
//! Compares a backup's schema fingerprints with the live collections (or, given two backups,
//! with each other, offline), with the same rules restore applies: each difference is a path
//! with both values, grouped into what blocks a restore and what is only a warning. When one
//! side is a cluster (a cluster backup, or a live cluster found as backup finds it), the
//! cluster layout is compared too ([`crate::engine::layout`]).

use std::collections::BTreeSet;

use camino::{Utf8Path, Utf8PathBuf};
use clap::Args;
use miette::{Diagnostic, Severity as MietteSeverity};
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::engine::layout::{self, LayoutComparison};
use crate::engine::peers::{self, PeerArgs, Topology};
use crate::exit::Exit;
use crate::failure::{ExitStatus, Outcome};
use crate::fingerprint::{self, Difference, Fingerprint, Severity};
use crate::manifest::{Manifest, ManifestError};
use crate::output;
use crate::qdrant::{Client, QdrantError, Timeouts};
use crate::repo::locate;
use crate::settings::ConnectionArgs;
use crate::ui::Ui;

#[derive(Debug, Args)]
pub struct DiffSchemaArgs {
    /// The backup folder (or `s3://bucket/prefix/NAME`), or `latest`.
    #[arg(value_name = "DIR", value_hint = clap::ValueHint::DirPath, add = crate::complete::backup_folder())]
    pub backup: Utf8PathBuf,

    /// A second backup: compare the two offline instead of the backup with the live server.
    #[arg(value_name = "OTHER_DIR", value_hint = clap::ValueHint::DirPath, add = crate::complete::backup_folder())]
    pub other: Option<Utf8PathBuf>,

    /// Compare only this collection.
    #[arg(long, value_name = "NAME", value_hint = clap::ValueHint::Other, add = crate::complete::collection_in_backup())]
    pub collection: Option<String>,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    #[command(flatten)]
    pub peers: PeerArgs,

    /// Print one JSON document on stdout (shape in the README, "JSON output").
    #[arg(long)]
    pub json: bool,
}

/// The outcome for one collection; snake_case names are part of `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Identical,
    Different,
    /// Only in the backup: restore would create it from the fingerprint.
    AbsentOnServer,
    /// Two backups: in one only.
    OnlyInLeft,
    OnlyInRight,
    /// A legacy manifest: nothing to compare, and restore refuses it.
    NoFingerprint,
}

impl Status {
    fn differs(self) -> bool {
        !matches!(self, Status::Identical | Status::AbsentOnServer)
    }
}

#[derive(Debug, Serialize)]
struct JsonDifference {
    path: String,
    severity: &'static str,
    left: Option<Value>,
    right: Option<Value>,
    description: String,
}

#[derive(Debug, Serialize)]
struct CollectionResult {
    name: String,
    status: Status,
    /// True when restore would refuse this collection.
    blocking: bool,
    differences: Vec<JsonDifference>,
    /// The cluster layout of both sides, when both have one (see [`layout`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    layout: Option<LayoutComparison>,
}

#[derive(Debug, Serialize)]
struct Comparison {
    left: Side,
    right: Side,
    identical: bool,
    collections: Vec<CollectionResult>,
}

#[derive(Debug, Serialize)]
struct Side {
    label: String,
    /// The backup folder, or the server URL.
    source: String,
}

/// Why `diff-schema` stopped, each with its exit status; the diagnostics are their sources'.
#[derive(Debug, Error, Diagnostic)]
enum DiffSchemaError {
    /// The server did not answer the first request (exit 3).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Connect(QdrantError),
    /// The cluster's peers could not be read (exit 3).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Peers(crate::engine::peers::PeerError),
    /// A live collection could not be read: a connection problem is exit 3, anything else 2.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Live(QdrantError),
    /// A live collection's schema could not be read (exit 2).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Schema(crate::fingerprint::FingerprintError),
    /// A folder without a manifest is not a backup: a wrong argument (exit 1), not a schema
    /// difference; any other manifest problem is exit 2.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Manifest(ManifestError),
    /// `--collection` names no collection of the backup (exit 1).
    #[error("no collection `{name}` in the backup")]
    #[diagnostic(help("The backup holds: {held}."))]
    UnknownCollection { name: String, held: String },
    /// The schemas differ (exit 2).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Differs(SchemaDiffers),
}

impl ExitStatus for DiffSchemaError {
    fn exit_status(&self) -> Exit {
        match self {
            DiffSchemaError::Connect(_) | DiffSchemaError::Peers(_) => Exit::ConnectionFailed,
            DiffSchemaError::Live(e) if e.is_connection_problem() => Exit::ConnectionFailed,
            DiffSchemaError::Manifest(ManifestError::Missing { .. })
            | DiffSchemaError::UnknownCollection { .. } => Exit::InvalidArguments,
            DiffSchemaError::Live(_)
            | DiffSchemaError::Schema(_)
            | DiffSchemaError::Manifest(_)
            | DiffSchemaError::Differs(_) => Exit::Failed,
        }
    }
}

/// The error diagnostic: one related line per difference, blocking ones as errors.
#[derive(Debug, Error, Diagnostic)]
#[error("the schemas differ in {count} collection{}: {names}", if *.count == 1 { "" } else { "s" })]
#[diagnostic(
    code(aimem::diff_schema::differs),
    help(
        "Restore refuses a backup whose schema differs from the live collection (warnings alone are allowed). \
         Across AI Memory versions, use the release's migrate_v<XXX>_*.py script instead of a restore."
    )
)]
struct SchemaDiffers {
    count: usize,
    names: String,
    #[related]
    lines: Vec<DiffLine>,
}

#[derive(Debug, Error)]
#[error("{text}")]
struct DiffLine {
    text: String,
    blocking: bool,
}

impl Diagnostic for DiffLine {
    fn severity(&self) -> Option<MietteSeverity> {
        Some(if self.blocking {
            MietteSeverity::Error
        } else {
            MietteSeverity::Warning
        })
    }
}

pub fn run(args: &DiffSchemaArgs, ui: &Ui) -> Outcome {
    let (left_dir, left) = load(&args.backup)?;
    let right = open_right(args, ui)?;
    let labels = Labels::of(&left_dir, &right);
    let names = collections_to_compare(&left, &right.against, args.collection.as_deref())?;
    let results = compare_all(&names, &left, &right.against, &labels)?;
    let failure = schema_differs(&results, &labels);
    if args.json {
        output::json(&Comparison {
            left: Side {
                label: labels.left.clone(),
                source: left_dir.to_string(),
            },
            right: Side {
                label: labels.right.clone(),
                source: right.source,
            },
            identical: failure.is_none(),
            collections: results,
        });
    } else {
        print_report(&results, &labels.left, &labels.right);
    }
    match failure {
        None => Ok(()),
        Some(differs) => Err(DiffSchemaError::Differs(differs).into()),
    }
}

/// The right-hand side of a comparison.
enum Against {
    Backup(Manifest),
    Live(Client, Vec<String>, Topology),
}

/// The right-hand side, opened, with where it came from (`--json`'s `right.source`).
struct Right {
    against: Against,
    /// The second backup's folder, or the server URL.
    source: String,
}

/// Opens the second backup, or connects to the live server (and reads its collections and
/// topology up front, so a connection problem stops before anything is compared).
fn open_right(args: &DiffSchemaArgs, ui: &Ui) -> Outcome<Right> {
    if let Some(other) = &args.other {
        let (dir, manifest) = load(other)?;
        return Ok(Right {
            against: Against::Backup(manifest),
            source: dir.to_string(),
        });
    }
    let endpoint = args
        .connection
        .endpoint()
        .map_err(crate::settings::BadEndpoint::failure)?;
    let timeouts = Timeouts {
        request: args.connection.request_timeout(),
        ..Timeouts::default()
    };
    let client = ConnectionArgs::client(&endpoint, timeouts);
    let names = client
        .list_collections()
        .map_err(DiffSchemaError::Connect)?;
    // A cluster's layout is read from every peer, as backup reads it.
    let topology = peers::discover(&client, &args.peers).map_err(DiffSchemaError::Peers)?;
    ui.step(&format!("Comparing with {}", endpoint.url));
    Ok(Right {
        against: Against::Live(client, names, topology),
        source: endpoint.url.to_string(),
    })
}

/// What the two sides are called in differences and reports.
struct Labels {
    left: String,
    right: String,
}

impl Labels {
    /// `backup` and `live` against the server; two backups by their folder names, or A and B
    /// when those are the same.
    fn of(left_dir: &Utf8Path, right: &Right) -> Labels {
        let (left, right) = match &right.against {
            Against::Live(..) => ("backup".to_string(), "live".to_string()),
            Against::Backup(_) => labels(left_dir, Utf8Path::new(&right.source)),
        };
        Labels { left, right }
    }
}

/// The collections to compare, in name order: the backup's (and, against a second backup,
/// that one's too), narrowed to `--collection`, which must name one of them.
fn collections_to_compare(
    left: &Manifest,
    right: &Against,
    only: Option<&str>,
) -> Result<BTreeSet<String>, DiffSchemaError> {
    let mut names: BTreeSet<String> = left.collections.keys().cloned().collect();
    if let Against::Backup(other) = right {
        names.extend(other.collections.keys().cloned());
    }
    if let Some(only) = only {
        if !names.contains(only) {
            return Err(DiffSchemaError::UnknownCollection {
                name: only.to_string(),
                held: left
                    .collections
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        names.retain(|n| n == only);
    }
    Ok(names)
}

/// Compares each collection in turn; against the server, a collection only there is skipped
/// (restore never touches it) and a read error stops the whole comparison.
fn compare_all(
    names: &BTreeSet<String>,
    left: &Manifest,
    right: &Against,
    labels: &Labels,
) -> Result<Vec<CollectionResult>, DiffSchemaError> {
    let mut results = Vec::new();
    for name in names {
        let result = match right {
            Against::Backup(other) => compare_backups(name, left, other, labels),
            Against::Live(client, on_server, topology) => {
                match compare_live(name, left, client, on_server, topology, labels)? {
                    Some(result) => result,
                    None => continue,
                }
            }
        };
        results.push(result);
    }
    Ok(results)
}

/// One collection of two backups: its fingerprints, and its layouts when both have one.
fn compare_backups(
    name: &str,
    left: &Manifest,
    other: &Manifest,
    labels: &Labels,
) -> CollectionResult {
    let mine = left.collections.get(name).map(|c| c.schema.clone());
    let theirs = other.collections.get(name).map(|c| c.schema.clone());
    match (mine, theirs) {
        (Some(a), Some(b)) => {
            let layouts = left.collections.get(name).zip(other.collections.get(name));
            let layouts = layouts
                .and_then(|(l, r)| layout::of_backup(l, left).zip(layout::of_backup(r, other)));
            with_layout(
                compare(name, a, b, &labels.left, &labels.right),
                layouts,
                &labels.left,
                &labels.right,
            )
        }
        (Some(_), None) => plain(name, Status::OnlyInLeft),
        (None, _) => plain(name, Status::OnlyInRight),
    }
}

/// One collection of the backup against the live server; `None` when the backup does not
/// hold it (it is only on the server).
fn compare_live(
    name: &str,
    left: &Manifest,
    client: &Client,
    on_server: &[String],
    topology: &Topology,
    labels: &Labels,
) -> Result<Option<CollectionResult>, DiffSchemaError> {
    let Some(mine) = left.collections.get(name).map(|c| c.schema.clone()) else {
        return Ok(None);
    };
    if !on_server.iter().any(|n| n == name) {
        return Ok(Some(plain(name, Status::AbsentOnServer)));
    }
    let info = client
        .collection_info(name)
        .map_err(DiffSchemaError::Live)?;
    let live = Fingerprint::from_collection_info(&info).map_err(DiffSchemaError::Schema)?;
    let ours = left
        .collections
        .get(name)
        .and_then(|entry| layout::of_backup(entry, left));
    let layouts = match ours {
        Some(ours) => Some((
            ours,
            layout::live(name, &info, topology).map_err(DiffSchemaError::Live)?,
        )),
        None => None,
    };
    Ok(Some(with_layout(
        compare(
            name,
            mine,
            Some(live.as_value().clone()),
            &labels.left,
            &labels.right,
        ),
        layouts,
        &labels.left,
        &labels.right,
    )))
}

/// The error to end with when any collection differs (`None` when none does): one line per
/// difference, or the status when a collection differs without one (only on one side, no
/// fingerprint).
fn schema_differs(results: &[CollectionResult], labels: &Labels) -> Option<SchemaDiffers> {
    let differing: Vec<&CollectionResult> = results.iter().filter(|r| r.status.differs()).collect();
    (!differing.is_empty()).then(|| SchemaDiffers {
        count: differing.len(),
        names: differing
            .iter()
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
            .join(", "),
        lines: differing
            .iter()
            .flat_map(|r| diff_lines(r, labels))
            .collect(),
    })
}

/// One collection's lines in the error: its status when it has no difference to list, then
/// its schema differences, then its layout's.
fn diff_lines(r: &CollectionResult, labels: &Labels) -> Vec<DiffLine> {
    let no_layout_difference = r.layout.as_ref().is_none_or(|l| l.differences.is_empty());
    let status_line = (r.differences.is_empty() && no_layout_difference).then(|| DiffLine {
        text: format!(
            "{}: {}",
            r.name,
            describe_status(r.status, &labels.left, &labels.right)
        ),
        blocking: true,
    });
    let layout_lines = r.layout.iter().flat_map(|l| {
        l.differences.iter().map(|d| DiffLine {
            text: format!("{}: {}", r.name, d.description),
            blocking: d.severity == "blocking",
        })
    });
    status_line
        .into_iter()
        .chain(r.differences.iter().map(|d| DiffLine {
            text: format!("{}: {}", r.name, d.description),
            blocking: d.severity == "blocking",
        }))
        .chain(layout_lines)
        .collect()
}

/// Adds the layout comparison of `layouts` (backup or left side first) to `result`: a
/// layout difference makes the collection differ, as a schema difference does.
fn with_layout(
    mut result: CollectionResult,
    layouts: Option<(layout::Layout, layout::Layout)>,
    left_label: &str,
    right_label: &str,
) -> CollectionResult {
    // Two single-node sides: their parameters are the fingerprint's, compared already.
    let Some((left, right)) = layouts.filter(|(l, r)| l.is_cluster() || r.is_cluster()) else {
        return result;
    };
    let comparison = layout::compare(left, right, left_label, right_label);
    if result.status == Status::Identical && !comparison.differences.is_empty() {
        result.status = Status::Different;
    }
    result.blocking |= comparison.blocking();
    result.layout = Some(comparison);
    result
}

/// Reads a backup's manifest (`latest` resolved in the backup root).
fn load(arg: &Utf8Path) -> Outcome<(Utf8PathBuf, Manifest)> {
    let backup = locate::backup(arg)?;
    let dir = backup.location().to_owned();
    // A folder without a manifest is not a backup: a wrong argument, not a schema difference.
    let manifest = backup.manifest().map_err(DiffSchemaError::Manifest)?;
    Ok((dir, manifest))
}

/// Two backups are labelled by their folder names, or A and B when those are the same.
fn labels(a: &Utf8Path, b: &Utf8Path) -> (String, String) {
    match (a.file_name(), b.file_name()) {
        (Some(x), Some(y)) if x != y => (x.to_string(), y.to_string()),
        _ => ("A".to_string(), "B".to_string()),
    }
}

fn plain(name: &str, status: Status) -> CollectionResult {
    CollectionResult {
        name: name.to_string(),
        status,
        blocking: status.differs(),
        differences: Vec::new(),
        layout: None,
    }
}

/// Compares two stored fingerprints (`None` inside: a legacy entry without one).
fn compare(
    name: &str,
    left: Option<Value>,
    right: Option<Value>,
    left_label: &str,
    right_label: &str,
) -> CollectionResult {
    let parse = |v: Option<Value>| v.and_then(|v| Fingerprint::from_value(v).ok());
    let (Some(left), Some(right)) = (parse(left), parse(right)) else {
        return plain(name, Status::NoFingerprint);
    };
    let differences: Vec<Difference> = fingerprint::diff(&left, &right);
    let blocking = differences.iter().any(|d| d.severity == Severity::Blocking);
    CollectionResult {
        name: name.to_string(),
        status: if differences.is_empty() {
            Status::Identical
        } else {
            Status::Different
        },
        blocking,
        differences: differences
            .iter()
            .map(|d| JsonDifference {
                path: d.path.clone(),
                severity: match d.severity {
                    Severity::Blocking => "blocking",
                    Severity::Warning => "warning",
                },
                left: d.left.clone(),
                right: d.right.clone(),
                description: d.describe(left_label, right_label),
            })
            .collect(),
        layout: None,
    }
}

fn describe_status(status: Status, left: &str, right: &str) -> String {
    match status {
        Status::Identical => "identical".into(),
        Status::Different => "different".into(),
        Status::AbsentOnServer => "absent on server (restore would create it)".into(),
        Status::OnlyInLeft => format!("only in {left}"),
        Status::OnlyInRight => format!("only in {right}"),
        Status::NoFingerprint => {
            "no schema fingerprint (a pre-2.4.1 backup): nothing to compare, restore refuses it"
                .into()
        }
    }
}

fn print_report(results: &[CollectionResult], left: &str, right: &str) {
    for r in results {
        // The schema's differences, then the cluster layout's, as (severity, description).
        let all: Vec<(&str, &str)> = r
            .differences
            .iter()
            .map(|d| (d.severity, d.description.as_str()))
            .chain(r.layout.iter().flat_map(|l| {
                l.differences
                    .iter()
                    .map(|d| (d.severity, d.description.as_str()))
            }))
            .collect();
        if all.is_empty() {
            output::line(&format!(
                "{}: {}",
                r.name,
                describe_status(r.status, left, right)
            ));
        } else {
            output::line(&format!(
                "{}: {} difference{}",
                r.name,
                all.len(),
                if all.len() == 1 { "" } else { "s" }
            ));
        }
        for (severity, heading) in [
            ("blocking", "blocks a restore"),
            ("warning", "warnings only"),
        ] {
            let group: Vec<&str> = all
                .iter()
                .filter(|(s, _)| *s == severity)
                .map(|(_, d)| *d)
                .collect();
            if group.is_empty() {
                continue;
            }
            output::line(&format!("  {heading}:"));
            for d in group {
                output::line(&format!("    {d}"));
            }
        }
        let information = r.layout.iter().flat_map(|l| &l.information);
        for (i, line) in information.enumerate() {
            if i == 0 {
                output::line("  cluster layout (information):");
            }
            output::line(&format!("    {line}"));
        }
    }
}
