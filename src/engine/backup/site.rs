//! A site: one unit of snapshot work. A single node's collection is one site; a cluster's
//! collection is one site per shard, each on the peer chosen to snapshot it. Whatever is done
//! to a snapshot (take the turn to create it, create, list, download, delete, journal) is done
//! to a site's, through the one implementation here.

use std::fmt;

use crate::engine::peers::{LockKeys, Topology};
use crate::qdrant::{Client, QdrantError, ResumeFrom, SnapshotBody, SnapshotDescription};

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
    /// The collection the snapshot is of (a shard's: the collection the shard is part of).
    pub fn collection(&self) -> &str {
        match self {
            Site::Collection(collection) | Site::Shard { collection, .. } => collection.as_ref(),
        }
    }

    /// True for a shard's site: its snapshot is made on a cluster peer.
    pub fn is_shard(&self) -> bool {
        matches!(self, Site::Shard { .. })
    }

    /// The same site, borrowing its name.
    pub fn borrowed(&self) -> Site<&str> {
        self.map_name(AsRef::as_ref)
    }

    /// The same site, owning its name (as records keep it).
    pub fn owned(&self) -> Site {
        self.map_name(|name| name.as_ref().to_string())
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

    /// The client that reaches the site: `client` for a collection, its peer's for a shard
    /// (see [`peer_client`]). On a single node (whose shard snapshots a restore may have taken
    /// when the node did not stream them) a shard's is `client`, once the node says it is the
    /// recorded peer.
    pub fn client<'c>(
        &self,
        client: &'c Client,
        topology: &'c Topology,
    ) -> Result<&'c Client, String> {
        match self {
            Site::Collection(_) => Ok(client),
            Site::Shard {
                collection, peer, ..
            } if !topology.is_cluster() => {
                match client.collection_cluster_view(collection.as_ref()) {
                    Ok(view) if view.peer_id == *peer => Ok(client),
                    // Its collection is gone, and the snapshot with it: asking to delete it
                    // gets the 404 that drops the record.
                    Err(e) if e.is_not_found() => Ok(client),
                    Ok(view) => Err(format!(
                        "this node is peer {}, not peer {peer}",
                        view.peer_id
                    )),
                    Err(e) => Err(format!("cannot tell whether this node is peer {peer}: {e}")),
                }
            }
            Site::Shard { peer, .. } => peer_client(topology, *peer),
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

    /// `POST …/snapshots?wait=true`.
    pub fn create(&self, client: &Client) -> Result<SnapshotDescription, QdrantError> {
        match self.borrowed() {
            Site::Collection(collection) => client.create_snapshot(collection),
            Site::Shard {
                collection, shard, ..
            } => client.create_shard_snapshot(collection, shard),
        }
    }

    /// `GET …/snapshots`.
    pub fn list(&self, client: &Client) -> Result<Vec<SnapshotDescription>, QdrantError> {
        match self.borrowed() {
            Site::Collection(collection) => client.list_snapshots(collection),
            Site::Shard {
                collection, shard, ..
            } => client.list_shard_snapshots(collection, shard),
        }
    }

    /// `DELETE …/snapshots/{snapshot}`.
    pub fn delete(&self, client: &Client, snapshot: &str) -> Result<(), QdrantError> {
        match self.borrowed() {
            Site::Collection(collection) => client.delete_snapshot(collection, snapshot),
            Site::Shard {
                collection, shard, ..
            } => client.delete_shard_snapshot(collection, shard, snapshot),
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

    /// True for a name Qdrant gives a snapshot of this site started at or after `asked_at`.
    pub fn names_snapshot(&self, name: &str, asked_at: &str) -> bool {
        match self.borrowed() {
            Site::Collection(collection) => super::undo::is_ours(name, collection, asked_at),
            Site::Shard {
                collection, shard, ..
            } => super::journal::is_shard_snapshot_of(name, collection, shard, asked_at),
        }
    }

    /// True for a snapshot name a journal may give this site: one Qdrant gives it, under safe
    /// names. A journal naming anything else is not one aimem wrote as it stands.
    pub fn may_name(&self, snapshot: &str) -> bool {
        let collection = self.collection();
        crate::names::check(collection).is_ok()
            && match self {
                Site::Collection(_) => super::undo::is_ours(snapshot, collection, ""),
                Site::Shard { shard, .. } => {
                    crate::names::check(snapshot).is_ok()
                        && snapshot.starts_with(&format!("{collection}-shard-{shard}-"))
                }
            }
    }

    /// The site's snapshots before a creation is asked for, as its record keeps them: only
    /// those named from `asked_at` on could be taken for the new one, and for a shard leaving
    /// the others out keeps the record small (a collection's lists them all, as it always has).
    pub fn existing(&self, client: &Client, asked_at: &str) -> Vec<String> {
        self.list(client)
            .map(|list| {
                list.into_iter()
                    .map(|s| s.name)
                    .filter(|name| !self.is_shard() || self.names_snapshot(name, asked_at))
                    .collect()
            })
            .unwrap_or_default()
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

/// The client of cluster peer `peer`: the peer with that id in the cluster this run discovered
/// and verified. An address a journal recorded is never asked: by now it may reach another
/// server, which must get neither this run's key nor credentials, nor the chance to answer as
/// the recorded peer.
pub fn peer_client(topology: &Topology, peer: u64) -> Result<&Client, String> {
    topology
        .peer(peer)
        .map(|p| &p.client)
        .ok_or_else(|| format!("peer {peer} is not a peer of this cluster now"))
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
