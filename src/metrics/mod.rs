//! How runs went, for Prometheus: pushed to a Pushgateway (PUSHGATEWAY_URL, `--pushgateway`)
//! and/or written into a file for node_exporter's textfile collector (`--metrics-file`).
//!
//! `backup`, `verify`, `restore` and `prune` record what they did in [`Facts`] as they go;
//! `main` turns the facts, the exit status and the run's duration into the `aimemory_backup_*`
//! gauges ([`samples`]) once the run is over, and publishes them. Publishing never changes a
//! run's outcome: a failure is a warning. The README's "Metrics for Prometheus and Grafana"
//! lists every metric.

pub mod exposition;
pub mod gateway;
pub mod textfile;

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use camino::{Utf8Path, Utf8PathBuf};

use crate::exit::Exit;
use crate::ui::Ui;
use exposition::Sample;

/// Where the run's metrics go.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MetricsArgs {
    /// Push how the run went to this Prometheus Pushgateway (job `aimem`): a URL, or
    /// host:port as AI Memory's PUSHGATEWAY_URL holds it. One short try; a failure is a
    /// warning, never the run's outcome.
    #[arg(
        long,
        env = "PUSHGATEWAY_URL",
        hide_env_values = true,
        value_name = "URL",
        value_hint = clap::ValueHint::Url
    )]
    pub pushgateway: Option<String>,

    /// Write how the run went into this file, in Prometheus text format, for node_exporter's
    /// textfile collector (the other operations' series in it are kept).
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    pub metrics_file: Option<Utf8PathBuf>,
}

/// What a run is, as the `operation` label says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Backup,
    Verify,
    Restore,
    Prune,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Verify => "verify",
            Operation::Restore => "restore",
            Operation::Prune => "prune",
        }
    }
}

/// What a run did, recorded as it goes (a failed run may have recorded some of it).
#[derive(Debug, Default)]
pub struct Facts {
    recorded: Mutex<Recorded>,
}

#[derive(Debug, Default, Clone)]
struct Recorded {
    root: Option<String>,
    bytes: Option<u64>,
    collections: Vec<(String, u64)>,
    prune: Option<(u64, u64)>,
}

impl Facts {
    fn with<R>(&self, f: impl FnOnce(&mut Recorded) -> R) -> R {
        f(&mut self.recorded.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The backup root the run works on, as one label whatever its spelling: a local one
    /// made absolute, without `.` parts or a trailing `/`; a bucket's without a trailing `/`
    /// and with its scheme in lower case.
    pub fn root(&self, root: &Utf8Path) {
        let label = root_label(root);
        self.with(|r| r.root = Some(label));
    }

    /// The root of the backup `backup` names (`latest`: the default root).
    pub fn root_of_backup(&self, backup: &Utf8Path) {
        match backup.as_str() {
            "latest" => self.root(&crate::manifest::layout::default_root()),
            _ => match backup.parent() {
                Some(parent) if !parent.as_str().is_empty() => self.root(parent),
                _ => self.root(Utf8Path::new(".")),
            },
        }
    }

    /// Bytes written (backup) or read (verify, restore).
    pub fn bytes(&self, bytes: u64) {
        self.with(|r| r.bytes = Some(bytes));
    }

    /// A collection and its records.
    pub fn collection(&self, name: &str, records: u64) {
        self.with(|r| r.collections.push((name.to_string(), records)));
    }

    /// What a prune kept and deleted.
    pub fn pruned(&self, kept: u64, deleted: u64) {
        self.with(|r| r.prune = Some((kept, deleted)));
    }

    /// What `--progress json`'s summary says of the run: the root, bytes, collections and
    /// records, and what a prune kept and deleted, as far as the run got.
    pub fn summary(&self) -> serde_json::Value {
        let recorded = self.with(|r| r.clone());
        let collections: Vec<serde_json::Value> = recorded
            .collections
            .iter()
            .map(|(name, records)| serde_json::json!({ "name": name, "records": records }))
            .collect();
        serde_json::json!({
            "root": recorded.root,
            "bytes": recorded.bytes,
            "collections": collections,
            "kept": recorded.prune.map(|(kept, _)| kept),
            "deleted": recorded.prune.map(|(_, deleted)| deleted),
        })
    }
}

/// `root` as the `root` label writes it (see [`Facts::root`]).
fn root_label(root: &Utf8Path) -> String {
    if crate::repo::is_remote(root) {
        let text = root.as_str().trim_end_matches('/');
        let (scheme, rest) = text.split_at(text.find("://").map_or(0, |at| at + 3));
        return format!("{}{rest}", scheme.to_ascii_lowercase());
    }
    let absolute = std::path::absolute(root)
        .ok()
        .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
        .unwrap_or_else(|| root.to_owned());
    // `.` parts and a trailing `/` dropped, `..` taken back a part (as text: no link is
    // followed), so that `../backups` and the folder it names are one label.
    let mut label = Utf8PathBuf::new();
    for part in absolute.components() {
        match part {
            camino::Utf8Component::ParentDir => {
                label.pop();
            }
            camino::Utf8Component::CurDir => {}
            other => label.push(other),
        }
    }
    label.to_string()
}

/// Every metric aimem writes, with its help text.
const METRICS: [(&str, &str); 10] = [
    (
        LAST_RUN,
        "When the last run of this operation on this root ended (Unix time), success or not.",
    ),
    (
        LAST_SUCCESS,
        "When the last successful run ended (Unix time); a failed run leaves it as it was.",
    ),
    (DURATION, "How long the last run took, in seconds."),
    (
        EXIT_CODE,
        "The last run's exit status (0 success; aimem --help lists the others).",
    ),
    (SUCCESS, "1 when the last run succeeded, 0 when it failed."),
    (
        BYTES,
        "Bytes the last successful run wrote (backup) or read (verify, restore).",
    ),
    (
        RECORDS,
        "Records of each collection in the last successful backup, verify or restore.",
    ),
    (COLLECTIONS, "Collections in the last successful run."),
    (KEPT, "Backups the last successful prune kept."),
    (DELETED, "Backups the last successful prune deleted."),
];

const LAST_RUN: &str = "aimemory_backup_last_run_timestamp_seconds";
const LAST_SUCCESS: &str = "aimemory_backup_last_success_timestamp_seconds";
const DURATION: &str = "aimemory_backup_last_run_duration_seconds";
const EXIT_CODE: &str = "aimemory_backup_last_run_exit_code";
const SUCCESS: &str = "aimemory_backup_last_run_success";
const BYTES: &str = "aimemory_backup_bytes";
const RECORDS: &str = "aimemory_backup_collection_records";
const COLLECTIONS: &str = "aimemory_backup_collections";
const KEPT: &str = "aimemory_backup_prune_kept_backups";
const DELETED: &str = "aimemory_backup_prune_deleted_backups";

/// The help text of an aimem metric.
pub fn help(name: &str) -> Option<&'static str> {
    METRICS.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
}

/// Whether `name` is one of aimem's metrics.
pub fn is_aimem_metric(name: &str) -> bool {
    help(name).is_some()
}

/// The names of every metric aimem writes.
pub fn names() -> impl Iterator<Item = &'static str> {
    METRICS.iter().map(|(name, _)| *name)
}

/// The gauges of a run that ended at `ended` after `duration` with `exit`. A failed run gives
/// only its time, duration and status: what it did is not a result to show.
fn samples(recorded: &Recorded, ended: SystemTime, duration: Duration, exit: Exit) -> Vec<Sample> {
    let unix = ended
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let gauge = |name: &str, value: f64| Sample {
        name: name.to_string(),
        labels: Default::default(),
        value,
    };
    let ok = exit == Exit::Success;
    let mut samples = vec![
        gauge(LAST_RUN, unix),
        gauge(DURATION, duration.as_secs_f64()),
        gauge(EXIT_CODE, f64::from(exit.code())),
        gauge(SUCCESS, if ok { 1.0 } else { 0.0 }),
    ];
    if !ok {
        return samples;
    }
    samples.push(gauge(LAST_SUCCESS, unix));
    if let Some(bytes) = recorded.bytes {
        samples.push(gauge(BYTES, bytes as f64));
    }
    if let Some((kept, deleted)) = recorded.prune {
        samples.push(gauge(KEPT, kept as f64));
        samples.push(gauge(DELETED, deleted as f64));
    }
    if !recorded.collections.is_empty() || recorded.bytes.is_some() {
        samples.push(gauge(COLLECTIONS, recorded.collections.len() as f64));
    }
    for (name, records) in &recorded.collections {
        let mut sample = gauge(RECORDS, *records as f64);
        sample
            .labels
            .insert("collection".to_string(), name.to_string());
        samples.push(sample);
    }
    samples
}

/// Publishes the run's metrics where `args` says; a warning for each place it could not.
pub fn publish(
    args: &MetricsArgs,
    operation: Operation,
    facts: &Facts,
    duration: Duration,
    exit: Exit,
    ui: &Ui,
) {
    let gateway = args
        .pushgateway
        .as_deref()
        .filter(|url| !url.trim().is_empty());
    if gateway.is_none() && args.metrics_file.is_none() {
        return;
    }
    let recorded = facts.with(|r| r.clone());
    let root = recorded.root.clone().unwrap_or_default();
    let samples = samples(&recorded, SystemTime::now(), duration, exit);
    if let Some(url) = gateway {
        let pushed = gateway::Gateway::parse(url).and_then(|gateway| {
            gateway
                .push(operation.name(), &root, &samples, help)
                .map_err(|why| format!("{}: {why}", gateway.shown()))
        });
        if let Err(why) = pushed {
            ui.warn(&format!(
                "metrics not pushed to the Pushgateway ({why}); the run's own result stands"
            ));
        }
    }
    if let Some(path) = &args.metrics_file {
        if let Err(why) = textfile::update(path, operation.name(), &root, &samples, help) {
            ui.warn(&format!(
                "metrics file not written: {why}; the run's own result stands"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_root_is_one_label_however_it_is_spelled() {
        let here = std::env::current_dir().unwrap();
        let here = Utf8PathBuf::from_path_buf(here).unwrap();
        for spelling in ["backups", "backups/", "./backups", "backups/./"] {
            assert_eq!(
                root_label(Utf8Path::new(spelling)),
                here.join("backups").as_str(),
                "{spelling}"
            );
        }
        assert_eq!(root_label(Utf8Path::new("/srv/b//")), "/srv/b");
        assert_eq!(root_label(Utf8Path::new("/srv/x/../b/")), "/srv/b");
        for spelling in [
            "s3://bucket/aimem",
            "s3://bucket/aimem/",
            "S3://bucket/aimem",
        ] {
            if crate::repo::is_remote(Utf8Path::new(spelling)) {
                assert_eq!(root_label(Utf8Path::new(spelling)), "s3://bucket/aimem");
            }
        }
    }

    #[test]
    fn a_failed_run_gives_no_time_of_success_and_nothing_it_did() {
        let recorded = Recorded {
            root: Some("/b".into()),
            bytes: Some(10),
            collections: vec![("github".into(), 3)],
            prune: None,
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let failed = samples(&recorded, at, Duration::from_millis(1500), Exit::Failed);
        let names: Vec<&str> = failed.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, [LAST_RUN, DURATION, EXIT_CODE, SUCCESS]);
        assert_eq!(failed[2].value, 2.0);
        assert_eq!(failed[3].value, 0.0);

        let ok = samples(&recorded, at, Duration::from_secs(2), Exit::Success);
        let value = |name: &str| ok.iter().find(|s| s.name == name).map(|s| s.value);
        assert_eq!(value(LAST_SUCCESS), Some(1000.0));
        assert_eq!(value(BYTES), Some(10.0));
        assert_eq!(value(COLLECTIONS), Some(1.0));
        let records = ok.iter().find(|s| s.name == RECORDS).unwrap();
        assert_eq!(
            records.labels.get("collection").map(String::as_str),
            Some("github")
        );
        assert!(ok.iter().all(|s| is_aimem_metric(&s.name)));
    }
}
