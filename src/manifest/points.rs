//! What a logical backup adds to a collection's manifest entry (docs/logical-format.md):
//!
//! ```text
//! "points": {
//!   "format": 1,
//!   "files": [{"file": "qdrant/<collection>/points-0000.parquet", "size_bytes", "rows", "sha256"}],
//!   "definition": {"config": {...}, "payload_schema": {...}, "aliases": [...],
//!                  "shard_keys": [...], "key_records": [...]}
//! }
//! ```
//!
//! in place of `snapshot_file`. The files are the collection's points (one Parquet row per
//! point); the definition is what recreates the collection on another Qdrant version or
//! topology: its `config` as the server reported it (vectors, sparse vectors, sharding, HNSW,
//! quantization, optimizer and WAL settings, strict mode), its payload indexes, the aliases
//! that pointed at it and, with custom sharding, its shard keys in creation order with each
//! key's exact count. Every file name is rebuilt from the safe collection name and the file's
//! position: the stored string is only compared with it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names::{SafeName, ShardKey, shown};

/// The most files one collection's points may be split into.
pub const MAX_POINTS_FILES: usize = 65_536;
/// The most aliases one definition may list.
pub const MAX_DEFINITION_ALIASES: usize = 10_000;
/// The most shard keys one definition may list.
pub const MAX_DEFINITION_KEYS: usize = 65_536;

/// A collection entry's `points` record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PointsRecord {
    /// The logical format the files are written in (`crate::logical::FORMAT_VERSION`).
    pub format: u32,
    /// In order: `points-0000.parquet`, `points-0001.parquet`…
    #[serde(deserialize_with = "crate::json::at_most::<_, _, MAX_POINTS_FILES>")]
    pub files: Vec<PointsFile>,
    pub definition: Definition,
}

/// One file of a collection's points.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PointsFile {
    /// `qdrant/<collection>/points-<n>.parquet`, relative to the backup folder.
    pub file: String,
    pub size_bytes: u64,
    /// Points (rows) in the file.
    pub rows: u64,
    pub sha256: String,
}

/// What recreates the collection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Definition {
    /// `config` of `GET /collections/{c}` at backup time, as the server answered it.
    #[serde(deserialize_with = "crate::json::bounded_value")]
    pub config: Value,
    /// `payload_schema` of the same answer (each index's type and parameters).
    #[serde(default, deserialize_with = "crate::json::bounded_value")]
    pub payload_schema: Value,
    /// The aliases that pointed at the collection.
    #[serde(
        default,
        deserialize_with = "crate::json::at_most::<_, _, MAX_DEFINITION_ALIASES>"
    )]
    pub aliases: Vec<String>,
    /// Custom sharding: the shard keys in creation order.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::json::at_most::<_, _, MAX_DEFINITION_KEYS>"
    )]
    pub shard_keys: Vec<ShardKey>,
    /// Custom sharding: each key's exact count, in `shard_keys` order. Empty when the counts
    /// moved while the points were read (then only the total range is known).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::json::at_most::<_, _, MAX_DEFINITION_KEYS>"
    )]
    pub key_records: Vec<u64>,
}

/// The file name of the `index`th file of a collection's points.
pub fn points_file_name(index: usize) -> String {
    format!("points-{index:04}.parquet")
}

/// `qdrant/<collection>/points-<n>.parquet`.
pub fn points_file(collection: &SafeName, index: usize) -> String {
    format!(
        "{}/{collection}/{}",
        super::layout::SNAPSHOT_DIR,
        points_file_name(index)
    )
}

impl PointsRecord {
    /// The total of every file's rows.
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    /// The sharding method the definition records (`auto` when it says none).
    pub fn sharding_method(&self) -> &str {
        self.definition
            .config
            .pointer("/params/sharding_method")
            .and_then(Value::as_str)
            .unwrap_or("auto")
    }

    /// What is wrong with this record of collection `collection` (a safe name), if anything.
    pub fn problem(&self, collection: &SafeName) -> Option<String> {
        let at = format!("collections.{}.points", shown(collection.as_str()));
        if self.format != crate::logical::FORMAT_VERSION {
            return Some(match self.format > crate::logical::FORMAT_VERSION {
                true => format!(
                    "{at} is in logical format {}, newer than this aimem reads ({}): use a later aimem",
                    self.format,
                    crate::logical::FORMAT_VERSION
                ),
                false => format!("{at}.format is {}, which no aimem wrote", self.format),
            });
        }
        for (index, file) in self.files.iter().enumerate() {
            let expected = points_file(collection, index);
            if file.file != expected {
                return Some(format!(
                    "{at}.files[{index}] is {}, expected {expected}",
                    shown(&file.file)
                ));
            }
            if file.sha256.len() != 64 || !file.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(format!("{at}.files[{index}] has no valid sha256"));
            }
        }
        if self.rows_overflow() {
            return Some(format!(
                "{at}.files count more rows than a collection holds"
            ));
        }
        let definition = &self.definition;
        if !definition.config.is_object() || definition.config.get("params").is_none() {
            return Some(format!(
                "{at}.definition.config is not a collection's config"
            ));
        }
        if !matches!(self.sharding_method(), "auto" | "custom") {
            return Some(format!(
                "{at}.definition.config.params.sharding_method is neither auto nor custom"
            ));
        }
        if self.sharding_method() == "auto" && !definition.shard_keys.is_empty() {
            return Some(format!("{at}.definition has shard keys but auto sharding"));
        }
        if !definition.key_records.is_empty()
            && definition.key_records.len() != definition.shard_keys.len()
        {
            return Some(format!(
                "{at}.definition.key_records has {} counts for {} shard keys",
                definition.key_records.len(),
                definition.shard_keys.len()
            ));
        }
        let mut keys = definition.shard_keys.clone();
        keys.sort();
        keys.dedup();
        if keys.len() != definition.shard_keys.len() {
            return Some(format!("{at}.definition.shard_keys repeats a key"));
        }
        for (i, alias) in definition.aliases.iter().enumerate() {
            if let Err(e) = SafeName::new(alias) {
                return Some(format!(
                    "{at}.definition.aliases[{i}] = {} is not a safe name: {e}",
                    shown(alias)
                ));
            }
        }
        None
    }

    fn rows_overflow(&self) -> bool {
        self.files
            .iter()
            .try_fold(0u64, |sum, f| sum.checked_add(f.rows))
            .is_none()
    }
}

impl super::RawEntry {
    /// Why this entry's `points` record is not acceptable, if it is not (the name is known
    /// to be safe by now): it comes alone, and is well formed.
    pub(super) fn points_problem(&self) -> Option<String> {
        let record = self.points.as_ref()?;
        let at = format!("collections.{}", shown(&self.name));
        if !self.snapshot_file.is_empty() || self.cluster.is_some() {
            return Some(format!(
                "{at} has a points record beside a snapshot_file or a cluster record"
            ));
        }
        let name = SafeName::new(&self.name).ok()?;
        record.problem(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> PointsRecord {
        serde_json::from_value(json!({
            "format": 1,
            "files": [
                {"file": "qdrant/notes/points-0000.parquet", "size_bytes": 10, "rows": 3,
                 "sha256": "a".repeat(64)},
                {"file": "qdrant/notes/points-0001.parquet", "size_bytes": 10, "rows": 4,
                 "sha256": "b".repeat(64)},
            ],
            "definition": {"config": {"params": {"vectors": {"size": 4, "distance": "Dot"}}},
                           "payload_schema": {}, "aliases": ["latest"]}
        }))
        .unwrap()
    }

    #[test]
    fn a_well_formed_record_has_no_problem_and_counts_its_rows() {
        let name = SafeName::new("notes").unwrap();
        assert_eq!(record().problem(&name), None);
        assert_eq!(record().rows(), 7);
    }

    #[test]
    fn files_named_other_than_their_place_are_refused() {
        let name = SafeName::new("notes").unwrap();
        for bad in [
            "qdrant/notes/points-0002.parquet",
            "../notes/points-0001.parquet",
            "qdrant/other/points-0001.parquet",
        ] {
            let mut r = record();
            r.files[1].file = bad.into();
            assert!(r.problem(&name).unwrap().contains("expected"), "{bad}");
        }
    }

    #[test]
    fn later_formats_unsafe_aliases_and_repeated_keys_are_refused() {
        let name = SafeName::new("notes").unwrap();
        let mut later = record();
        later.format = 2;
        assert!(later.problem(&name).unwrap().contains("later aimem"));
        let mut alias = record();
        alias.definition.aliases = vec!["../x".into()];
        assert!(alias.problem(&name).unwrap().contains("not a safe name"));
        let mut keys = record();
        keys.definition.config["params"]["sharding_method"] = json!("custom");
        keys.definition.shard_keys = vec![ShardKey::Keyword("a".into()); 2];
        assert!(keys.problem(&name).unwrap().contains("repeats"));
        let mut rows = record();
        rows.files[0].rows = u64::MAX;
        assert!(rows.problem(&name).unwrap().contains("more rows"));
    }
}
