//! Reading the collection schema out of a Qdrant snapshot without extracting it.
//!
//! A collection snapshot is a plain tar (api.md §4.1) whose top level holds `config.json` (the
//! collection config) and `payload_index.json` (`{"schema": {field: "keyword" | {params}}}`).
//! Both are small and sit after the shard data, so the archive is walked header by header,
//! seeking over the data of every other entry: a multi-gigabyte snapshot costs a few hundred
//! header reads, never its size in memory or in reads.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

use camino::Utf8Path;
use serde_json::{Map, Value, json};

use crate::fingerprint::{Fingerprint, FingerprintError};

/// Tar works in 512-byte blocks; an archive ends with two all-zero blocks.
const BLOCK: u64 = 512;
const END_MARKER: u64 = 2 * BLOCK;

/// Entries larger than this are not what Qdrant writes as `config.json`: refuse to load them.
const MAX_JSON_ENTRY: u64 = 16 * 1024 * 1024;

/// What can be wrong with a snapshot file, in words for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot be read: {0}")]
    Unreadable(String),
    #[error("is not a valid tar archive: {0}")]
    NotATar(String),
    #[error("is truncated: the archive ends at byte {len}, before its end marker at byte {end}")]
    Truncated { len: u64, end: u64 },
    #[error("holds no config.json: not a Qdrant collection snapshot")]
    NoConfig,
    #[error("has an unreadable {entry}: {detail}")]
    BadEntry { entry: &'static str, detail: String },
}

/// The two schema files of a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotSchema {
    /// `config.json`: the collection config (CollectionConfigInternal).
    pub config: Value,
    /// `payload_index.json`'s `schema` (empty when the file is absent).
    pub payload_schema: Map<String, Value>,
}

impl SnapshotSchema {
    /// The schema fingerprint this snapshot would restore, in the manifest's canonical form.
    pub fn fingerprint(&self) -> Result<Fingerprint, FingerprintError> {
        let mut value = Map::new();
        for key in ["params", "hnsw_config", "quantization_config"] {
            if let Some(v) = self.config.get(key) {
                value.insert(key.into(), v.clone());
            }
        }
        let payload_schema: Map<String, Value> = self
            .payload_schema
            .iter()
            .map(|(field, stored)| (field.clone(), index_info(stored)))
            .collect();
        value.insert("payload_schema".into(), Value::Object(payload_schema));
        Fingerprint::from_value(Value::Object(value))
    }
}

/// A stored `PayloadFieldSchema` in the form `GET /collections/{c}` shows it (and so the
/// fingerprint holds): a bare type `"keyword"` becomes `{"data_type": "keyword"}`, an object
/// `{"type": "integer", …}` becomes `{"data_type": "integer", "params": {…}}`. The server fills
/// in integer params' `lookup`, `range` and `is_principal` (null when unset) when it answers;
/// the stored form omits unset ones, so they are filled here the same way.
fn index_info(stored: &Value) -> Value {
    match stored {
        Value::Object(params) => {
            let data_type = params.get("type").cloned().unwrap_or(Value::Null);
            let mut params = params.clone();
            if data_type == "integer" {
                for key in ["lookup", "range", "is_principal"] {
                    params.entry(key).or_insert(Value::Null);
                }
            }
            json!({ "data_type": data_type, "params": params })
        }
        other => json!({ "data_type": other }),
    }
}

/// Reads `config.json` and `payload_index.json` from the snapshot at `path`, and checks that
/// the archive is whole (every entry's data and the end marker are present).
pub fn read_schema(path: &Utf8Path) -> Result<SnapshotSchema, ArchiveError> {
    let file = File::open(path).map_err(|e| ArchiveError::Unreadable(e.to_string()))?;
    let len = file
        .metadata()
        .map_err(|e| ArchiveError::Unreadable(e.to_string()))?
        .len();
    let mut archive = tar::Archive::new(BufReader::new(file));
    let mut config = None;
    let mut payload_schema = None;
    // Where the last entry's data ends (rounded to a block): the end marker must follow it.
    let mut data_end = 0u64;
    // Entry problems are kept until the archive is known to be whole: a truncated archive is
    // the better explanation for a half-read config.json.
    let mut entry_problem = None;
    let entries = archive
        .entries_with_seek()
        .map_err(|e| ArchiveError::NotATar(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| tar_error(e, len))?;
        let size = entry.size();
        data_end = entry.raw_file_position() + size.div_ceil(BLOCK) * BLOCK;
        let name = match entry.path() {
            Ok(p) => p.to_string_lossy().trim_start_matches("./").to_string(),
            Err(_) => continue,
        };
        let which = match name.as_str() {
            "config.json" => "config.json",
            "payload_index.json" => "payload_index.json",
            _ => continue,
        };
        match read_json(&mut entry, size, which) {
            Ok(value) if which == "config.json" => config = Some(value),
            Ok(value) => payload_schema = Some(value),
            Err(e) => {
                entry_problem.get_or_insert(e);
            }
        }
    }
    drop(archive);
    check_end_marker(path, len, data_end)?;
    if let Some(problem) = entry_problem {
        return Err(problem);
    }
    let config = config.ok_or(ArchiveError::NoConfig)?;
    if !config.is_object() {
        return Err(ArchiveError::BadEntry {
            entry: "config.json",
            detail: "not a JSON object".into(),
        });
    }
    let payload_schema = match payload_schema {
        None => Map::new(),
        Some(value) => match value.get("schema") {
            Some(Value::Object(schema)) => schema.clone(),
            _ => {
                return Err(ArchiveError::BadEntry {
                    entry: "payload_index.json",
                    detail: "no `schema` object".into(),
                });
            }
        },
    };
    Ok(SnapshotSchema {
        config,
        payload_schema,
    })
}

fn tar_error(error: std::io::Error, len: u64) -> ArchiveError {
    // The tar crate says "failed to read entire block" when a header is cut short.
    if error.to_string().contains("entire block") {
        ArchiveError::Truncated {
            len,
            end: len.div_ceil(BLOCK) * BLOCK + BLOCK,
        }
    } else {
        ArchiveError::NotATar(error.to_string())
    }
}

fn read_json(entry: &mut impl Read, size: u64, which: &'static str) -> Result<Value, ArchiveError> {
    let bad = |detail: String| ArchiveError::BadEntry {
        entry: which,
        detail,
    };
    if size > MAX_JSON_ENTRY {
        return Err(bad(format!("{size} bytes, far too large")));
    }
    let mut text = Vec::new();
    entry
        .take(MAX_JSON_ENTRY)
        .read_to_end(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))
}

/// The tar crate reads an end of file at a header boundary as the end of the archive, so a
/// snapshot cut between entries would look whole to it. Every writer (Qdrant's included)
/// ends an archive with two zero blocks: they must follow the last entry's data.
fn check_end_marker(path: &Utf8Path, len: u64, data_end: u64) -> Result<(), ArchiveError> {
    let end = data_end + END_MARKER;
    if len < end {
        return Err(ArchiveError::Truncated { len, end });
    }
    let mut file = File::open(path).map_err(|e| ArchiveError::Unreadable(e.to_string()))?;
    file.seek(SeekFrom::Start(data_end))
        .map_err(|e| ArchiveError::Unreadable(e.to_string()))?;
    let mut marker = [0u8; END_MARKER as usize];
    file.read_exact(&mut marker)
        .map_err(|e| ArchiveError::Unreadable(e.to_string()))?;
    if marker.iter().any(|b| *b != 0) {
        return Err(ArchiveError::NotATar(format!(
            "no end-of-archive marker after the last entry (byte {data_end})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use camino::Utf8PathBuf;

    use super::*;
    use crate::fingerprint::diff;

    fn fixtures() -> Utf8PathBuf {
        Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qdrant")
    }

    fn conventions_info() -> Value {
        let text =
            std::fs::read_to_string(fixtures().join("collections/info-conventions.json")).unwrap();
        let exchange: Value = serde_json::from_str(&text).unwrap();
        exchange["response"]["body"]["result"].clone()
    }

    #[test]
    fn the_real_snapshot_matches_its_collection_info() {
        let schema = read_schema(&fixtures().join("conventions.snapshot")).unwrap();
        let from_snapshot = schema.fingerprint().unwrap();
        let from_info = Fingerprint::from_collection_info(&conventions_info()).unwrap();
        assert_eq!(diff(&from_info, &from_snapshot), vec![]);
        assert_eq!(from_snapshot.digest(), from_info.digest());
    }

    fn copy_of_fixture(dir: &tempfile::TempDir) -> (Utf8PathBuf, Vec<u8>) {
        let bytes = std::fs::read(fixtures().join("conventions.snapshot")).unwrap();
        let path =
            Utf8PathBuf::from_path_buf(PathBuf::from(dir.path()).join("c.snapshot")).unwrap();
        (path, bytes)
    }

    #[test]
    fn every_truncation_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = copy_of_fixture(&dir);
        // Cut inside the data, at a block boundary between entries, and inside the end marker.
        for cut in [
            bytes.len() / 2,
            512 * 10,
            bytes.len() - 512,
            bytes.len() - 1,
        ] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = read_schema(&path).unwrap_err();
            assert!(
                matches!(err, ArchiveError::Truncated { .. } | ArchiveError::NoConfig),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn garbage_and_empty_files_are_not_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = copy_of_fixture(&dir);
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        assert!(matches!(
            read_schema(&path).unwrap_err(),
            ArchiveError::NotATar(_)
        ));
        std::fs::write(&path, b"").unwrap();
        assert!(read_schema(&path).is_err());
    }

    #[test]
    fn stored_index_forms_become_info_forms() {
        assert_eq!(
            index_info(&json!("keyword")),
            json!({"data_type": "keyword"})
        );
        assert_eq!(
            index_info(&json!({"type": "integer", "lookup": true, "range": true})),
            json!({"data_type": "integer", "params": {"type": "integer", "lookup": true, "range": true, "is_principal": null}})
        );
        assert_eq!(
            index_info(&json!({"type": "keyword", "is_tenant": true})),
            json!({"data_type": "keyword", "params": {"type": "keyword", "is_tenant": true}})
        );
    }
}
