//! `--metrics-file`: the run's metrics in a file for node_exporter's textfile collector.
//!
//! The file holds the series of every operation and root that wrote it, each sample with its
//! `operation` and `root` labels. A run replaces, in its own operation and root, the metrics
//! it writes and keeps the others, as a push with add semantics does (a failed run keeps the
//! time of the last success). The update is whole or nothing: read, merged, written to a
//! temporary file in the same folder and renamed over the old one, under a lock on the folder
//! so that two runs at once do not lose each other's update. A file that holds anything aimem
//! did not write, a link, or one too big to be aimem's is left alone.

use std::io::{Read as _, Write as _};

use camino::Utf8Path;

use super::exposition::{self, Sample};

/// More than aimem writes for thousands of roots and collections.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Merges `samples` (of `operation` on `root`) into the file at `path`; why not, when it did
/// not.
pub fn update(
    path: &Utf8Path,
    operation: &str,
    root: &str,
    samples: &[Sample],
    help: exposition::Help,
) -> Result<(), String> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_str().is_empty() => parent,
        _ => Utf8Path::new("."),
    };
    let Some(file_name) = path.file_name() else {
        return Err(format!("{path} names no file"));
    };
    // Held until the new file is in place: another run's update waits for this one.
    let _lock = lock_folder(folder).map_err(|e| format!("cannot lock the folder {folder}: {e}"))?;
    let existing = read_existing(path)?;
    let group = |sample: &Sample| {
        sample.labels.get("operation").map(String::as_str) == Some(operation)
            && sample.labels.get("root").map(String::as_str) == Some(root)
    };
    let written: Vec<&str> = samples.iter().map(|s| s.name.as_str()).collect();
    let mut merged: Vec<Sample> = existing
        .into_iter()
        .filter(|s| !(group(s) && written.contains(&s.name.as_str())))
        .collect();
    merged.extend(samples.iter().map(|sample| {
        let mut sample = sample.clone();
        sample
            .labels
            .insert("operation".to_string(), operation.to_string());
        sample.labels.insert("root".to_string(), root.to_string());
        sample
    }));
    // Grouped by metric, in a stable order, whatever order the runs came in.
    merged.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.labels.cmp(&b.labels)));
    let text = exposition::render(&merged, help);
    replace(folder, file_name, &text).map_err(|e| format!("cannot write {path}: {e}"))
}

/// The samples in the file now (none when there is no file yet).
fn read_existing(path: &Utf8Path) -> Result<Vec<Sample>, String> {
    let meta = match path.symlink_metadata() {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {path}: {e}")),
    };
    if !meta.file_type().is_file() {
        return Err(format!(
            "{path} is not a regular file (a link, a folder or a device): aimem writes only a file of its own there"
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{path} is larger than aimem's metrics ever are: it was left as it is"
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES).read_to_string(&mut text))
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    exposition::parse(&text, super::is_aimem_metric).map_err(|(line, why)| {
        format!(
            "{path} holds what aimem did not write (line {line}: {why}): it was left as it is; give --metrics-file a file of aimem's own"
        )
    })
}

/// Writes `text` as `folder/file_name`: a temporary file beside it (readable by all, as the
/// collector runs as another user), synced, then renamed over it.
fn replace(folder: &Utf8Path, file_name: &str, text: &str) -> std::io::Result<()> {
    let mut temporary = tempfile::Builder::new()
        .prefix(".aimem-metrics-")
        .tempfile_in(folder)?;
    temporary
        .as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    temporary.write_all(text.as_bytes())?;
    temporary.as_file().sync_all()?;
    temporary
        .persist(folder.join(file_name))
        .map_err(|e| e.error)?;
    // The rename reaches the disk with the folder.
    if let Ok(dir) = std::fs::File::open(folder) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// An exclusive lock on `folder` (released when the handle is dropped), waited for
/// [`LOCK_WAIT`] at most: another run's update takes milliseconds, and a lock held longer
/// (a stuck network file system, another tool) must not hold this run up.
fn lock_folder(folder: &Utf8Path) -> std::io::Result<std::fs::File> {
    let dir = std::fs::File::open(folder)?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(dir),
            Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "another process has held it for seconds",
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// How long an update waits for another one to finish.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The labels of a sample.
    fn labels(sample: &Sample) -> BTreeMap<&str, &str> {
        sample
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn gauge(name: &str, value: f64) -> Sample {
        Sample {
            name: name.into(),
            labels: BTreeMap::new(),
            value,
        }
    }

    fn read(path: &Utf8Path) -> Vec<Sample> {
        let text = std::fs::read_to_string(path).unwrap();
        exposition::parse(&text, super::super::is_aimem_metric).unwrap()
    }

    #[test]
    fn a_run_replaces_its_own_metrics_and_keeps_every_other_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8Path::from_path(dir.path()).unwrap().join("aimem.prom");
        let help = super::super::help;
        let success = [
            gauge("aimemory_backup_last_success_timestamp_seconds", 100.0),
            gauge("aimemory_backup_last_run_success", 1.0),
        ];
        update(&path, "backup", "/b", &success, help).unwrap();
        update(&path, "verify", "/b", &success, help).unwrap();
        update(&path, "backup", "s3://x/y", &success, help).unwrap();
        // A failed backup of /b: no time of success.
        update(
            &path,
            "backup",
            "/b",
            &[gauge("aimemory_backup_last_run_success", 0.0)],
            help,
        )
        .unwrap();
        let samples = read(&path);
        assert_eq!(samples.len(), 6, "{samples:?}");
        let value = |name: &str, operation: &str, root: &str| {
            samples
                .iter()
                .find(|s| {
                    s.name == name
                        && labels(s).get("operation") == Some(&operation)
                        && labels(s).get("root") == Some(&root)
                })
                .map(|s| s.value)
        };
        assert_eq!(
            value("aimemory_backup_last_run_success", "backup", "/b"),
            Some(0.0)
        );
        assert_eq!(
            value(
                "aimemory_backup_last_success_timestamp_seconds",
                "backup",
                "/b"
            ),
            Some(100.0),
            "the failure kept the last success"
        );
        assert_eq!(
            value("aimemory_backup_last_run_success", "verify", "/b"),
            Some(1.0)
        );
        assert_eq!(
            value("aimemory_backup_last_run_success", "backup", "s3://x/y"),
            Some(1.0)
        );
        let mode = std::fs::metadata(&path).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o644
        );
        // Nothing but the file is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_file_that_is_not_aimems_or_a_link_is_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let help = super::super::help;
        let samples = [gauge("aimemory_backup_last_run_success", 1.0)];

        let other = root.join("node.prom");
        std::fs::write(&other, "node_load1 0.5\n").unwrap();
        let refused = update(&other, "backup", "/b", &samples, help).unwrap_err();
        assert!(refused.contains("line 1"), "{refused}");
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "node_load1 0.5\n");

        let target = root.join("precious");
        std::fs::write(&target, "keep me").unwrap();
        let link = root.join("aimem.prom");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let refused = update(&link, "backup", "/b", &samples, help).unwrap_err();
        assert!(refused.contains("not a regular file"), "{refused}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    }
}
