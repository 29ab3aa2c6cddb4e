//! A logical backup's points files: named from the collection's safe name (never taken from
//! the manifest's strings) and opened inside the backup folder (no links), once
//! `CHECKSUMS.sha256` vouched for them.

use camino::{Utf8Path, Utf8PathBuf};

use crate::manifest::files::{BackupFiles, Opened};
use crate::manifest::points::{PointsRecord, points_file};
use crate::names::SafeName;

/// One points file, opened inside the backup folder.
#[derive(Debug)]
pub struct PointsFile {
    /// Relative to the backup folder (`qdrant/<collection>/points-<n>.parquet`).
    pub relative: String,
    /// The very handle its checksum pass read (in a bucket: the version that was hashed).
    pub file: Opened,
    /// Points it holds, as the manifest records.
    pub rows: u64,
}

/// A collection's logical backup: its definition and its points files.
#[derive(Debug)]
pub struct PointsSource {
    pub record: PointsRecord,
    pub files: Vec<PointsFile>,
}

impl PointsSource {
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.file.len()).sum()
    }
}

/// The files a points record names, rebuilt from the safe collection name.
pub fn points_paths(name: &str, record: &PointsRecord) -> Vec<String> {
    match SafeName::new(name) {
        Ok(safe) => (0..record.files.len())
            .map(|index| points_file(&safe, index))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Opens every points file of a logical entry (regular files of the backup, no links), the
/// backup shown as `dir`.
pub fn open(
    (backup, dir): (&dyn BackupFiles, &Utf8Path),
    name: &str,
    record: &PointsRecord,
) -> Result<PointsSource, (Utf8PathBuf, std::io::Error)> {
    let mut files = Vec::new();
    for (recorded, relative) in record.files.iter().zip(points_paths(name, record)) {
        let file = backup
            .open(&relative)
            .map_err(|e| (dir.join(&relative), e))?;
        files.push(PointsFile {
            relative,
            file,
            rows: recorded.rows,
        });
    }
    Ok(PointsSource {
        record: record.clone(),
        files,
    })
}
