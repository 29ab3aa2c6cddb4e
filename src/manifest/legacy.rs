//! Backups written by the published Python scripts (`backup_qdrant.py`): no `CHECKSUMS.sha256`
//! and no schema fingerprint. They are accepted with a warning, after the checks they allow
//! (sizes from the manifest, each snapshot a whole tar holding a collection config); a backup
//! that lacks its checksums file but shows aimem's or a fingerprinting script's marks is not
//! one of them: its checksums file was removed, and nothing proves its files are the ones
//! backed up.

use super::checksums::ChecksumsError;
use super::{CollectionBackup, CollectionEntry, Manifest, snapshot_archive};
use crate::fingerprint::Fingerprint;

/// Whether `error` (from reading `CHECKSUMS.sha256`) means the file is simply not there.
pub fn is_absent(error: &ChecksumsError) -> bool {
    matches!(error, ChecksumsError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// For a backup without `CHECKSUMS.sha256`: `Ok` when it is a legacy backup of the Python
/// scripts (which write none), else why it cannot be one, in words for a person that end in
/// "writes it" (the checksums file), to follow "CHECKSUMS.sha256 is missing, but".
///
/// Every writer that records a fingerprint, or any of aimem's own fields, also writes the
/// checksums file, so any of these marks means the file was there and was removed.
pub fn without_checksums(manifest: &Manifest) -> Result<(), String> {
    // Only aimem backs up shard by shard: such a backup is never the Python scripts'.
    if manifest.has_cluster_record() {
        return Err(
            "it is a cluster backup (its manifest records the cluster), which only aimem writes, and aimem always writes it"
                .to_string(),
        );
    }
    if manifest
        .collections
        .values()
        .any(|c| matches!(c.backup, CollectionBackup::Shards(_)))
    {
        return Err(
            "its collections were backed up shard by shard (its manifest records their shards), which only aimem does, and aimem always writes it"
                .to_string(),
        );
    }
    if let Some(version) = &manifest.aimem_version {
        return Err(format!(
            "the backup was written by aimem {} (its manifest records `aimem_version`), which always writes it",
            crate::names::shown(version)
        ));
    }
    let marked = |entry: &CollectionEntry| {
        entry.sha256.is_some() || entry.schema_digest.is_some() || entry.records_max.is_some()
    };
    if let Some(entry) = manifest.collections.values().find(|e| marked(e)) {
        return Err(format!(
            "collection {} carries aimem's fields (`sha256`, `schema_digest`), and aimem always writes it",
            crate::names::shown(&entry.name)
        ));
    }
    if manifest.qdrant_version.is_some() {
        return Err(
            "the manifest records `qdrant_version`, which only aimem writes, and aimem always writes it"
                .to_string(),
        );
    }
    if let Some(entry) = manifest.collections.values().find(|e| e.schema.is_some()) {
        return Err(format!(
            "collection {} has a schema fingerprint, and every version that records fingerprints also writes it",
            crate::names::shown(&entry.name)
        ));
    }
    Ok(())
}

/// The size check a legacy backup allows: the file must be as long as the manifest says.
pub fn check_size(entry: &CollectionEntry, file: &super::files::Opened) -> Result<(), String> {
    let len = file.len();
    if len == entry.size_bytes {
        Ok(())
    } else {
        Err(format!(
            "{len} bytes, the manifest says {}",
            entry.size_bytes
        ))
    }
}

/// The schema a snapshot holds, read from its own `config.json` and `payload_index.json`:
/// what a backup without a fingerprint is checked against. Fails (in words for a person) when
/// the file is not a whole tar or holds no collection config.
pub fn snapshot_fingerprint(file: super::files::Opened) -> Result<Fingerprint, String> {
    let inside = snapshot_archive::read_schema_from(file).map_err(|e| e.to_string())?;
    inside
        .fingerprint()
        .map_err(|e| format!("its config.json is not a collection config: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use camino::Utf8Path;

    /// The manifest `backup_qdrant.py` writes before v2.4.1: the guide's shape, no `schema`.
    const PYTHON: &str = r#"{
      "backup_date": "2026-02-03T14:30:52.123456+00:00",
      "ai_memory_version": "2.4.0",
      "qdrant_host": "localhost",
      "qdrant_port": 26350,
      "collections": {"discussions": {"name": "discussions", "records": 42,
        "snapshot_file": "discussions.snapshot", "size_bytes": 1048576}},
      "config_files": ["settings.json", ".env"],
      "includes_logs": false,
      "runtime_flags": {"HYBRID_SEARCH_ENABLED": "false"}
    }"#;

    fn parse(text: &str) -> Manifest {
        Manifest::parse(Utf8Path::new("m.json"), text.to_string()).unwrap()
    }

    #[test]
    fn the_python_manifest_is_legacy() {
        assert_eq!(without_checksums(&parse(PYTHON)), Ok(()));
    }

    #[test]
    fn any_mark_of_aimem_or_a_fingerprint_means_the_checksums_were_removed() {
        let marks = [
            (
                r#""includes_logs": false"#,
                r#""includes_logs": false, "aimem_version": "0.1.0""#,
                "aimem_version",
            ),
            (
                r#""includes_logs": false"#,
                r#""includes_logs": false, "qdrant_version": "1.18.3""#,
                "qdrant_version",
            ),
            (
                r#""size_bytes": 1048576"#,
                r#""size_bytes": 1048576, "sha256": "00""#,
                "sha256",
            ),
            (
                r#""size_bytes": 1048576"#,
                r#""size_bytes": 1048576, "schema_digest": "sha256:00""#,
                "schema_digest",
            ),
            (
                r#""size_bytes": 1048576"#,
                r#""size_bytes": 1048576, "schema": {"params": {}}"#,
                "fingerprint",
            ),
        ];
        for (from, to, named) in marks {
            let text = PYTHON.replacen(from, to, 1);
            assert_ne!(text, PYTHON);
            let why = without_checksums(&parse(&text)).unwrap_err();
            assert!(why.contains(named), "{named}: {why}");
            assert!(why.ends_with("writes it"), "{why}");
        }
    }
}
