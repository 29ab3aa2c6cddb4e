//! The response shapes aimem reads, typed: what is not a field here is skipped unread, and
//! every list is bounded while it is read (see [`crate::json`]).

use serde::Deserialize;

use crate::json::{Scalar, at_most};

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

/// Qdrant's envelope `{"result": …, "status": …, "time": …}`: only `result` is read.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<T> {
    pub result: Option<T>,
}

/// The most collections a server may list (a real one holds a few dozen).
pub const MAX_COLLECTIONS: usize = 100_000;
/// The most snapshots a list may hold.
pub const MAX_SNAPSHOTS: usize = 100_000;

/// `GET /collections`.
#[derive(Debug, Deserialize)]
pub(crate) struct CollectionList {
    #[serde(default, deserialize_with = "optional_list::<_, _, MAX_COLLECTIONS>")]
    pub collections: Option<Vec<NamedCollection>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct NamedCollection {
    #[serde(default)]
    pub name: Scalar,
}

/// `GET /collections/{c}/exists`.
#[derive(Debug, Deserialize)]
pub(crate) struct Exists {
    #[serde(default)]
    pub exists: Scalar,
}

/// `POST /collections/{c}/points/count`.
#[derive(Debug, Deserialize)]
pub(crate) struct PointCount {
    #[serde(default)]
    pub count: Scalar,
}

/// An error body `{"status": {"error": "…"}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub status: Option<ErrorStatus>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorStatus {
    #[serde(default)]
    pub error: Scalar,
}

/// A snapshot list: every entry is read loosely first, so that one whose name is none of
/// aimem's does not spoil the list (see [`ListedSnapshot::into_description`]).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(crate) struct SnapshotList(
    #[serde(deserialize_with = "at_most::<_, _, MAX_SNAPSHOTS>")] pub Vec<ListedSnapshot>,
);

#[derive(Debug, Deserialize)]
pub(crate) struct ListedSnapshot {
    #[serde(default)]
    name: Scalar,
    #[serde(default)]
    creation_time: Scalar,
    #[serde(default)]
    size: Scalar,
    #[serde(default)]
    checksum: Scalar,
}

impl ListedSnapshot {
    /// The description, or None for a snapshot whose name is not a safe name (none of
    /// aimem's); an error when a field of one of aimem's has the wrong type.
    pub fn into_description(self) -> Result<Option<SnapshotDescription>, String> {
        let name = match &self.name {
            Scalar::Text(name) => name.as_str(),
            // Longer than any safe name.
            Scalar::LongText(_) => return Ok(None),
            other => return Err(format!("a snapshot's `name` is {}", other.kind())),
        };
        if crate::names::check(name).is_err() {
            return Ok(None);
        }
        let text = |field: &str, value: &Scalar| match value {
            Scalar::Null => Ok(None),
            Scalar::Text(s) => Ok(Some(s.clone())),
            other => Err(format!(
                "snapshot {}: `{field}` is {}",
                crate::names::shown(name),
                other.kind()
            )),
        };
        let size = match &self.size {
            Scalar::Null => None,
            other => Some(other.as_u64().ok_or_else(|| {
                format!(
                    "snapshot {}: `size` is not a byte count",
                    crate::names::shown(name)
                )
            })?),
        };
        Ok(Some(SnapshotDescription {
            name: name.to_string(),
            creation_time: text("creation_time", &self.creation_time)?,
            size,
            checksum: text("checksum", &self.checksum)?,
        }))
    }
}

/// `deserialize_with` for an optional list of at most `N` items.
fn optional_list<'de, D, T, const N: usize>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    at_most::<D, T, N>(deserializer).map(Some)
}
