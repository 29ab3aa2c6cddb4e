//! A site: one unit of snapshot work. A single node's collection is one site; a cluster's
//! collection is one site per shard, each on the peer chosen to snapshot it. The turn to
//! create a snapshot and its download are a site's.

use std::fmt;

use crate::cmd::peers::LockKeys;
use crate::qdrant::{Client, QdrantError, ResumeFrom, SnapshotBody};

/// Where a snapshot is made and kept: generic over how the collection's name is held
/// (`Site<&str>` while working, `Site` (owned) in the journal and the undo log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site<S = String> {
    /// A collection's snapshot on the server aimem talks to.
    Collection(S),
    /// One shard's snapshot, made and named on the peer holding the replica.
    Shard {
        collection: S,
        shard: u32,
        peer: u64,
    },
}

impl<S: AsRef<str>> Site<S> {
    /// The same site, borrowing its name.
    pub fn borrowed(&self) -> Site<&str> {
        self.map_name(AsRef::as_ref)
    }

    /// The same site, its collection's name changed by `f`.
    pub fn map_name<'a, T>(&'a self, f: impl FnOnce(&'a S) -> T) -> Site<T> {
        match self {
            Site::Collection(collection) => Site::Collection(f(collection)),
            Site::Shard {
                collection,
                shard,
                peer,
            } => Site::Shard {
                collection: f(collection),
                shard: *shard,
                peer: *peer,
            },
        }
    }

    /// The names of the locks of its snapshot turn on the server `keys` names (see
    /// `concurrent`).
    pub(super) fn lock_names(&self, keys: &LockKeys) -> Vec<String> {
        match self {
            // The same names as before: a run of an older aimem still meets this one.
            Site::Collection(collection) => keys.lock_names("snapshot", &[collection.as_ref()]),
            Site::Shard {
                collection,
                shard,
                peer,
            } => keys.lock_names(
                "snapshot",
                &[
                    collection.as_ref(),
                    &format!("#shard {shard}"),
                    &format!("peer {peer}"),
                ],
            ),
        }
    }

    /// Opens the download of `snapshot`, from `resume` when given.
    pub fn open<'c>(
        &self,
        client: &'c Client,
        snapshot: &str,
        resume: Option<&ResumeFrom>,
    ) -> Result<SnapshotBody<'c>, QdrantError> {
        match self.borrowed() {
            Site::Collection(collection) => client.open_snapshot(collection, snapshot, resume),
            Site::Shard {
                collection, shard, ..
            } => client.open_shard_snapshot(collection, shard, snapshot, resume),
        }
    }

    /// The progress bar's label for its download.
    pub fn download_label(&self) -> String {
        match self {
            Site::Collection(collection) => format!("download {}", collection.as_ref()),
            Site::Shard {
                collection, shard, ..
            } => format!("download {} shard {shard}", collection.as_ref()),
        }
    }
}

/// As messages name it: `` `c` ``, or `` shard 1 of `c` on peer 2 ``.
impl<S: AsRef<str>> fmt::Display for Site<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Site::Collection(collection) => write!(f, "`{}`", collection.as_ref()),
            Site::Shard {
                collection,
                shard,
                peer,
            } => write!(
                f,
                "shard {shard} of `{}` on peer {peer}",
                collection.as_ref()
            ),
        }
    }
}
