//! A backup's shard files (a cluster's, or a single node's streamed ones): named from the
//! collection's safe name, opened inside the backup folder (no links), each with its verified
//! digest. How they are restored is in [`super::act`].

use camino::{Utf8Path, Utf8PathBuf};

use super::plan::Source;
use crate::manifest::checksums::Entry;
use crate::manifest::cluster::{CollectionCluster, ShardRecord, shard_file};
use crate::manifest::files::{BackupFiles, Opened};
use crate::names::SafeName;

/// One shard file of a cluster backup, opened inside the backup folder.
#[derive(Debug)]
pub struct ShardFile {
    pub record: ShardRecord,
    /// Relative to the backup folder (`qdrant/<collection>/shard-<id>.snapshot`).
    pub relative: String,
    /// The very handle its checksum pass read; its upload carries the verified SHA-256 too,
    /// which Qdrant checks.
    pub file: Opened,
    /// Its SHA-256 from CHECKSUMS.sha256, when that verified it.
    pub verified_sha256: Option<String>,
}

/// The shards of a collection backed up shard by shard.
#[derive(Debug)]
pub struct ClusterSource {
    pub record: CollectionCluster,
    pub shards: Vec<ShardFile>,
    /// Taken on a cluster; false for a single node's streamed shards.
    pub on_cluster: bool,
}

impl ClusterSource {
    pub fn size(&self) -> u64 {
        self.shards.iter().map(|s| s.file.len()).sum()
    }
}

/// The shard files a cluster entry names (rebuilt from the safe name, never taken from the
/// manifest's strings), each of which must be listed in CHECKSUMS.sha256.
pub fn shard_paths(name: &str, record: &CollectionCluster) -> Vec<String> {
    match SafeName::new(name) {
        Ok(safe) => record
            .shards
            .iter()
            .map(|s| shard_file(&safe, s.shard_id))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Opens every shard file of a cluster entry (regular files of the backup, no links), the
/// backup shown as `dir`.
pub fn open(
    (files, dir): (&dyn BackupFiles, &Utf8Path),
    name: &str,
    record: &CollectionCluster,
    listed: Option<&[Entry]>,
    on_cluster: bool,
) -> Result<ClusterSource, (Utf8PathBuf, std::io::Error)> {
    let mut shards = Vec::new();
    for (shard, relative) in record.shards.iter().zip(shard_paths(name, record)) {
        let file = files
            .open(&relative)
            .map_err(|e| (dir.join(&relative), e))?;
        let verified_sha256 = listed
            .and_then(|l| l.iter().find(|e| e.path == relative))
            .map(|e| e.sha256.clone());
        shards.push(ShardFile {
            record: shard.clone(),
            relative,
            file,
            verified_sha256,
        });
    }
    Ok(ClusterSource {
        record: record.clone(),
        shards,
        on_cluster,
    })
}

/// The bytes a source uploads.
pub fn size(source: &Source) -> u64 {
    match (&source.cluster, &source.points) {
        (Some(cluster), _) => cluster.size(),
        (None, Some(points)) => points.size(),
        (None, None) => source.file.len(),
    }
}
