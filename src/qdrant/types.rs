//! The few response shapes aimem reads field by field.

use serde::Deserialize;

/// A snapshot as Qdrant describes it (`SnapshotDescription`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SnapshotDescription {
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
