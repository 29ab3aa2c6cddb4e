//! The few response shapes aimem reads field by field.

use serde::Deserialize;

/// A snapshot as Qdrant describes it (`SnapshotDescription`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SnapshotDescription {
    /// Checked as a safe name while parsing: it goes into URLs and, for some callers, paths.
    #[serde(deserialize_with = "crate::names::deserialize_safe")]
    pub name: String,
    #[serde(default)]
    pub creation_time: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    /// Lowercase hex SHA-256 of the whole file; absent for uploaded files and S3 storage.
    #[serde(default)]
    pub checksum: Option<String>,
}

/// `GET /`: the server's name and version (not wrapped in the usual envelope).
#[derive(Debug, Clone, Deserialize)]
pub struct ServerInfo {
    #[serde(default)]
    pub version: Option<String>,
}
