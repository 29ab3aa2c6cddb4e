//! The journal of a backup run: what it is about to create on the server, written (and synced)
//! *before* it asks, so a run killed with `kill -9` still tells the next one what to delete.
//!
//! It lives in the run's staging folder as `.aimem-journal`, one JSON record per line, appended
//! and synced. The run holds an `flock` on it for its whole life: a journal nobody holds
//! belongs to a dead run (the kernel drops the lock when the process ends, however it ends).
//! The file is created under a temporary name, locked, then renamed into place, so a journal
//! is never seen unlocked while its run is alive. It is removed just before the staging folder
//! becomes the finished backup.

use std::fs::File;
use std::io::{Read, Write};

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use super::site::{Site, peer_client};
use crate::engine::peers::Topology;
use crate::manifest::layout;
use crate::qdrant::Client;
use crate::ui::Ui;
use crate::workspace::runs::{self, Owner};

/// The journal's name inside a staging folder.
pub use crate::workspace::JOURNAL_FILE;

/// A journal is a few lines per collection; anything larger is not one of ours.
const JOURNAL_MAX: u64 = 1024 * 1024;

/// One line of the journal, as aimem works with it. On disk it is a [`wire::Line`]: the
/// format every aimem version reads and writes, a collection's and a shard's snapshot records
/// under tags of their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "wire::Line", into = "wire::Line")]
pub enum Record {
    /// The first line: who runs, against which server (no credentials), and the server's
    /// identity whatever URL reached it (see `Topology::identity`; absent from older journals).
    Started {
        owner: Owner,
        server: String,
        identity: Option<String>,
    },
    /// A restore's pre-restore folder: where it keeps its local copies.
    Folder { path: String },
    /// About to upload a snapshot file named `file` into `collection` (on cluster peer
    /// `peer_id`, reached at `peer_url` as shown, when given): the server keeps such an upload
    /// under that name until it is deleted. The name is aimem's own, so it is provably the
    /// run's.
    Uploading {
        collection: String,
        file: String,
        peer_id: Option<u64>,
        peer_url: Option<String>,
    },
    /// That uploaded copy is gone from the server.
    UploadGone {
        collection: String,
        file: String,
        peer_id: Option<u64>,
    },
    /// About to ask for a snapshot of `site` (a shard's peer reached at `peer_url`, as shown):
    /// snapshots named from `asked_at` on, before `asked_before`, and not in `existing` may be
    /// this run's.
    Creating {
        site: Site,
        peer_url: Option<String>,
        asked_at: String,
        /// Qdrant names a snapshot from the moment it starts it, so one named later is not
        /// the answer to this request (it may be another run's).
        asked_before: String,
        existing: Vec<String>,
    },
    /// The server refused the creation: nothing to look for.
    Refused { site: Site },
    /// About to create a temporary collection (a selective restore's staging area, named
    /// by [`crate::names::is_temporary_collection`]): deleted when the run ends, or by the
    /// next run against the server when it was killed.
    TempCollection { collection: String },
    /// That temporary collection is gone.
    TempCollectionGone { collection: String },
    /// The server answered with this snapshot's name.
    Created {
        site: Site,
        peer_url: Option<String>,
        snapshot: String,
    },
    /// The snapshot is gone from the server.
    Deleted { site: Site, snapshot: String },
}

/// A shard's peer as records show it (without credentials); none for a collection.
pub fn peer_url(site: Site<&str>, client: &Client) -> Option<String> {
    site.is_shard().then(|| client.display_url().to_string())
}

/// The journal's lines as they are on disk.
mod wire {
    use serde::{Deserialize, Serialize};

    use super::Record;
    use crate::engine::backup::site::Site;
    use crate::workspace::runs::Owner;

    /// One line of the journal.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(tag = "event", rename_all = "snake_case")]
    pub enum Line {
        Started {
            owner: Owner,
            server: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            identity: Option<String>,
        },
        Folder {
            path: String,
        },
        TempCollection {
            collection: String,
        },
        TempCollectionGone {
            collection: String,
        },
        Uploading {
            collection: String,
            file: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            peer_id: Option<u64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            peer_url: Option<String>,
        },
        UploadGone {
            collection: String,
            file: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            peer_id: Option<u64>,
        },
        Creating {
            collection: String,
            asked_at: String,
            asked_before: String,
            existing: Vec<String>,
        },
        Refused {
            collection: String,
        },
        Created {
            collection: String,
            snapshot: String,
        },
        Deleted {
            collection: String,
            snapshot: String,
        },
        ShardCreated {
            collection: String,
            shard: u32,
            peer_id: u64,
            peer_url: String,
            snapshot: String,
        },
        ShardDeleted {
            collection: String,
            shard: u32,
            peer_id: u64,
            snapshot: String,
        },
        ShardCreating {
            collection: String,
            shard: u32,
            peer_id: u64,
            peer_url: String,
            asked_at: String,
            asked_before: String,
            existing: Vec<String>,
        },
        ShardRefused {
            collection: String,
            shard: u32,
            peer_id: u64,
        },
    }

    fn shard(collection: String, shard: u32, peer: u64) -> Site {
        Site::Shard {
            collection,
            shard,
            peer,
        }
    }

    impl From<Line> for Record {
        fn from(line: Line) -> Record {
            match line {
                Line::Started {
                    owner,
                    server,
                    identity,
                } => Record::Started {
                    owner,
                    server,
                    identity,
                },
                Line::Folder { path } => Record::Folder { path },
                Line::TempCollection { collection } => Record::TempCollection { collection },
                Line::TempCollectionGone { collection } => {
                    Record::TempCollectionGone { collection }
                }
                Line::Uploading {
                    collection,
                    file,
                    peer_id,
                    peer_url,
                } => Record::Uploading {
                    collection,
                    file,
                    peer_id,
                    peer_url,
                },
                Line::UploadGone {
                    collection,
                    file,
                    peer_id,
                } => Record::UploadGone {
                    collection,
                    file,
                    peer_id,
                },
                Line::Creating {
                    collection,
                    asked_at,
                    asked_before,
                    existing,
                } => Record::Creating {
                    site: Site::Collection(collection),
                    peer_url: None,
                    asked_at,
                    asked_before,
                    existing,
                },
                Line::ShardCreating {
                    collection,
                    shard: id,
                    peer_id,
                    peer_url,
                    asked_at,
                    asked_before,
                    existing,
                } => Record::Creating {
                    site: shard(collection, id, peer_id),
                    peer_url: Some(peer_url),
                    asked_at,
                    asked_before,
                    existing,
                },
                Line::Refused { collection } => Record::Refused {
                    site: Site::Collection(collection),
                },
                Line::ShardRefused {
                    collection,
                    shard: id,
                    peer_id,
                } => Record::Refused {
                    site: shard(collection, id, peer_id),
                },
                Line::Created {
                    collection,
                    snapshot,
                } => Record::Created {
                    site: Site::Collection(collection),
                    peer_url: None,
                    snapshot,
                },
                Line::ShardCreated {
                    collection,
                    shard: id,
                    peer_id,
                    peer_url,
                    snapshot,
                } => Record::Created {
                    site: shard(collection, id, peer_id),
                    peer_url: Some(peer_url),
                    snapshot,
                },
                Line::Deleted {
                    collection,
                    snapshot,
                } => Record::Deleted {
                    site: Site::Collection(collection),
                    snapshot,
                },
                Line::ShardDeleted {
                    collection,
                    shard: id,
                    peer_id,
                    snapshot,
                } => Record::Deleted {
                    site: shard(collection, id, peer_id),
                    snapshot,
                },
            }
        }
    }

    impl From<Record> for Line {
        fn from(record: Record) -> Line {
            match record {
                Record::Started {
                    owner,
                    server,
                    identity,
                } => Line::Started {
                    owner,
                    server,
                    identity,
                },
                Record::Folder { path } => Line::Folder { path },
                Record::TempCollection { collection } => Line::TempCollection { collection },
                Record::TempCollectionGone { collection } => {
                    Line::TempCollectionGone { collection }
                }
                Record::Uploading {
                    collection,
                    file,
                    peer_id,
                    peer_url,
                } => Line::Uploading {
                    collection,
                    file,
                    peer_id,
                    peer_url,
                },
                Record::UploadGone {
                    collection,
                    file,
                    peer_id,
                } => Line::UploadGone {
                    collection,
                    file,
                    peer_id,
                },
                Record::Creating {
                    site,
                    peer_url,
                    asked_at,
                    asked_before,
                    existing,
                } => match site {
                    Site::Collection(collection) => Line::Creating {
                        collection,
                        asked_at,
                        asked_before,
                        existing,
                    },
                    Site::Shard {
                        collection,
                        shard,
                        peer,
                    } => Line::ShardCreating {
                        collection,
                        shard,
                        peer_id: peer,
                        peer_url: peer_url.unwrap_or_default(),
                        asked_at,
                        asked_before,
                        existing,
                    },
                },
                Record::Refused { site } => match site {
                    Site::Collection(collection) => Line::Refused { collection },
                    Site::Shard {
                        collection,
                        shard,
                        peer,
                    } => Line::ShardRefused {
                        collection,
                        shard,
                        peer_id: peer,
                    },
                },
                Record::Created {
                    site,
                    peer_url,
                    snapshot,
                } => match site {
                    Site::Collection(collection) => Line::Created {
                        collection,
                        snapshot,
                    },
                    Site::Shard {
                        collection,
                        shard,
                        peer,
                    } => Line::ShardCreated {
                        collection,
                        shard,
                        peer_id: peer,
                        peer_url: peer_url.unwrap_or_default(),
                        snapshot,
                    },
                },
                Record::Deleted { site, snapshot } => match site {
                    Site::Collection(collection) => Line::Deleted {
                        collection,
                        snapshot,
                    },
                    Site::Shard {
                        collection,
                        shard,
                        peer,
                    } => Line::ShardDeleted {
                        collection,
                        shard,
                        peer_id: peer,
                        snapshot,
                    },
                },
            }
        }
    }
}

/// An uploaded snapshot copy a dead restore may have left on the server (or on a peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadLeftover {
    pub collection: String,
    pub file: String,
    pub peer_id: Option<u64>,
    pub peer_url: Option<String>,
}

impl UploadLeftover {
    /// " on peer N (url)" for a copy uploaded to a cluster peer, else nothing.
    fn place(&self) -> String {
        match (self.peer_id, &self.peer_url) {
            (Some(peer), Some(url)) => format!(" on peer {peer} ({})", clean(url)),
            _ => String::new(),
        }
    }
}

/// A snapshot a dead run created and did not delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftSnapshot {
    pub site: Site,
    /// A shard's peer, as shown when the run worked.
    pub peer_url: Option<String>,
    pub snapshot: String,
}

/// The open, locked journal of this run.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: Utf8PathBuf,
}

impl Journal {
    /// Starts the journal of a run against `server` (known as `identity`) in its staging
    /// folder.
    pub fn create(staging: &Utf8Path, server: &str, identity: &str) -> std::io::Result<Journal> {
        Self::create_at(&crate::workspace::backup_journal(staging), server, identity)
    }

    /// Starts a journal at `path` (a new name in a folder of this user's).
    pub fn create_at(path: &Utf8Path, server: &str, identity: &str) -> std::io::Result<Journal> {
        let folder = path.parent().unwrap_or(Utf8Path::new("."));
        let temp = Utf8PathBuf::from(format!("{path}.new"));
        let file = layout::private_file(&temp)?;
        // Held from before the journal has its name until this run ends.
        runs::try_lock(&file)?;
        let mut journal = Journal {
            file,
            path: path.to_owned(),
        };
        journal.record(&Record::Started {
            owner: Owner::me(),
            server: server.to_string(),
            identity: Some(identity.to_string()),
        })?;
        std::fs::rename(&temp, &journal.path)?;
        File::open(folder)?.sync_all()?;
        Ok(journal)
    }

    /// Appends one record and syncs it.
    pub fn record(&mut self, record: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }

    /// The run has nothing left on the server: the journal goes (before the staging folder is
    /// published, so a finished backup never carries one).
    pub fn finish(self) -> std::io::Result<()> {
        std::fs::remove_file(&self.path)
    }
}

/// A creation a dead run asked for and never heard back about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unanswered {
    pub site: Site,
    /// A shard's peer, as shown when the run worked.
    pub peer_url: Option<String>,
    pub asked_at: String,
    pub asked_before: String,
    pub existing: Vec<String>,
}

/// The latest snapshot-name time a creation asked now can get: a couple of minutes of slack for
/// a server clock ahead of ours.
pub fn asked_before() -> String {
    super::undo::snapshot_time(time::OffsetDateTime::now_utc() + time::Duration::minutes(2))
}

/// The `YYYY-MM-DD-HH-MM-SS` time at the end of a Qdrant snapshot name.
fn name_time(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".snapshot")?;
    stem.get(stem.len().checked_sub(19)?..)
}

/// What a dead run left behind.
#[derive(Debug)]
pub struct Leftover {
    /// Its staging folder (a backup's), or the folder its journal is in (a restore's).
    pub staging: Utf8PathBuf,
    /// The journal itself.
    pub journal: Utf8PathBuf,
    /// A restore's pre-restore folder, as its journal records it.
    pub folder: Option<Utf8PathBuf>,
    pub owner: Option<Owner>,
    pub server: Option<String>,
    /// The server's identity (see `Topology::identity`), in journals that record it.
    pub identity: Option<String>,
    /// Uploaded copies the server may keep.
    pub uploads: Vec<UploadLeftover>,
    /// Temporary collections (a selective restore's) the server may keep.
    pub temp_collections: Vec<String>,
    /// Snapshots created and not deleted.
    pub snapshots: Vec<LeftSnapshot>,
    /// Creations whose answer never came.
    pub unanswered: Vec<Unanswered>,
    /// Why the journal cannot be taken as the whole record (over [`JOURNAL_MAX`], or a line
    /// before its last that is not a record): what it names is reported, nothing deleted,
    /// and it is never cleared as done.
    pub damaged: Option<String>,
    /// The journal, locked by this run while it deals with the leftover.
    _lock: File,
}

impl Leftover {
    /// True when the dead run may have left something on a server (a damaged journal may
    /// name more than can be read).
    pub fn has_server_snapshots(&self) -> bool {
        self.damaged.is_some()
            || !self.snapshots.is_empty()
            || !self.unanswered.is_empty()
            || !self.uploads.is_empty()
            || !self.temp_collections.is_empty()
    }

    /// True when the dead run worked against this server (`server` as journals name it, known
    /// as `identity`). When the journal and this run both know the server's identity, only
    /// the identities count: another spelling of the URL is the same server, and the same URL
    /// answered by another server (another Qdrant on that port now) is not. Otherwise the URL
    /// must match, and a loopback one only counts for a run on this machine: on another, it
    /// named that machine's own server.
    pub fn is_of(&self, server: &str, identity: &str) -> bool {
        self.is_of_on(server, identity, &runs::hostname())
    }

    /// [`Leftover::is_of`] for a run on the machine named `host`.
    fn is_of_on(&self, server: &str, identity: &str, host: &str) -> bool {
        if let (Some(recorded), Some(current)) = (self.known_identity(), known(identity, server)) {
            return recorded == current;
        }
        self.server.as_deref() == Some(server) && (!is_loopback(server) || self.ran_on(host))
    }

    /// The server's identity as the journal records it, unless it is only its URL (a server
    /// that did not say who it is).
    fn known_identity(&self) -> Option<&str> {
        known(
            self.identity.as_deref()?,
            self.server.as_deref().unwrap_or_default(),
        )
    }

    /// True when the journal's run ran on the machine named `host`.
    fn ran_on(&self, host: &str) -> bool {
        self.owner
            .as_ref()
            .is_some_and(|owner| owner.host.eq_ignore_ascii_case(host))
    }

    /// Why a leftover whose URL is `server`'s is not of this server (`identity`), for the
    /// message that keeps it; empty when its URL is another.
    pub fn why_other_server(&self, server: &str, identity: &str) -> String {
        if self.server.as_deref() != Some(server) {
            return String::new();
        }
        let host = runs::hostname();
        match (self.known_identity(), known(identity, server)) {
            (Some(recorded), Some(current)) if recorded != current => format!(
                " (the server at that URL was {} then and is {} now: another server, or the same \
                 one restarted; if it is this one, delete them by hand, then remove {})",
                clean(recorded),
                clean(current),
                self.journal
            ),
            _ if is_loopback(server) && !self.ran_on(&host) => format!(
                " ({} on host {} is that machine's own server, not this one's: run it there)",
                clean(server),
                self.owner
                    .as_ref()
                    .map_or_else(|| "unknown".to_string(), |o| clean(&o.host))
            ),
            _ => String::new(),
        }
    }

    /// One sentence for the person: whose, where, what.
    pub fn describe(&self) -> String {
        let who = self
            .owner
            .as_ref()
            .map_or_else(|| "an unknown run".to_string(), Owner::describe);
        let staging = self.staging.file_name().unwrap_or_default();
        if let Some(damage) = self.damage(&self.staging) {
            return format!("{staging}: left by a killed backup ({who}); {damage}");
        }
        let what = self.what();
        if what.is_empty() {
            format!(
                "{staging}: left by a killed backup ({who}); nothing of it remains on the server"
            )
        } else {
            format!(
                "{staging}: left by a killed backup ({who}); still on {}: {}",
                self.server_shown(),
                what.join(", ")
            )
        }
    }

    /// The server as the journal names it, for messages.
    fn server_shown(&self) -> String {
        self.server.as_deref().map_or_else(
            || "an unknown server".to_string(),
            crate::qdrant::describe_stored,
        )
    }

    /// For a damaged journal: why it is not trusted, what it names, and how to end it
    /// (`remove`: what to remove once done).
    pub fn damage(&self, remove: &Utf8Path) -> Option<String> {
        let why = self.damaged.as_deref()?;
        let what = self.what();
        let named = match what.is_empty() {
            true => String::new(),
            false => format!(
                "; what can be read of it names, on {}: {}",
                self.server_shown(),
                what.join(", ")
            ),
        };
        Some(format!(
            "its journal cannot be taken as the whole record ({why}), so nothing it names is \
             deleted on a guess and it is kept{named}. Check that server and delete by hand what \
             is left of this run, then remove {remove}"
        ))
    }

    /// What the journal names as possibly left on the server, for messages.
    fn what(&self) -> Vec<String> {
        let (snapshots, shard_snapshots) = by_kind(&self.snapshots, |s| &s.site);
        let (unanswered, shard_unanswered) = by_kind(&self.unanswered, |u| &u.site);
        let snapshot = |s: &LeftSnapshot| {
            format!(
                "snapshot {} of {}",
                clean(&s.snapshot),
                shown_at(&s.site, s.peer_url.as_deref())
            )
        };
        let asked = |u: &Unanswered| {
            format!(
                "a snapshot of {} asked for at {} UTC whose name never came back",
                shown_at(&u.site, u.peer_url.as_deref()),
                clean(&u.asked_at)
            )
        };
        let uploads = self.uploads.iter().map(|u| {
            format!(
                "the uploaded copy {} of `{}`{}",
                clean(&u.file),
                clean(&u.collection),
                u.place()
            )
        });
        let temporary = self
            .temp_collections
            .iter()
            .map(|c| format!("the temporary collection `{}`", clean(c)));
        snapshots
            .into_iter()
            .map(snapshot)
            .chain(temporary)
            .chain(unanswered.into_iter().map(asked))
            .chain(shard_snapshots.into_iter().map(snapshot))
            .chain(uploads)
            .chain(shard_unanswered.into_iter().map(asked))
            .collect()
    }
}

/// `identity` when it says who the server is, not only its URL `server` (what
/// `Topology::identity` falls back to when a single node does not say).
fn known<'a>(identity: &'a str, server: &str) -> Option<&'a str> {
    (!identity.is_empty() && identity != server && !identity.contains("://")).then_some(identity)
}

/// True for a server URL (`scheme://host:port`, as journals name it) that reaches the machine
/// it is used on, whichever that is: `localhost`, a loopback or unspecified address.
fn is_loopback(server: &str) -> bool {
    let authority = server.split_once("://").map_or(server, |(_, rest)| rest);
    let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _port)| host),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.is_loopback() || v4.is_unspecified(),
        Ok(std::net::IpAddr::V6(v6)) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_unspecified())
        }
        Err(_) => false,
    }
}

/// Drops control characters from text read out of a journal, and bounds its length.
fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// A site read out of a journal, as messages name it.
fn shown(site: &Site) -> String {
    site.map_name(|name| clean(name)).to_string()
}

/// [`shown`], with a shard's peer as the run showed it.
fn shown_at(site: &Site, peer_url: Option<&str>) -> String {
    match site.is_shard() {
        true => format!("{} ({})", shown(site), clean(peer_url.unwrap_or_default())),
        false => shown(site),
    }
}

/// `items` parted into the collections' and the shards' (each in journal order): messages
/// name a collection's snapshots before a shard's.
pub fn by_kind<T>(items: &[T], site: impl Fn(&T) -> &Site) -> (Vec<&T>, Vec<&T>) {
    items.iter().partition(|item| !site(item).is_shard())
}

/// `items`, the collections' first (see [`by_kind`]).
pub fn in_kind_order<T>(items: &[T], site: impl Fn(&T) -> &Site) -> impl Iterator<Item = &T> {
    let (collections, shards) = by_kind(items, site);
    collections.into_iter().chain(shards)
}

/// The leftovers of dead runs in `root`: staging folders whose journal nobody holds. Each
/// returned journal is locked by this process until the [`Leftover`] is dropped, so two runs
/// never deal with the same one. Staging folders without a journal are not looked at.
pub fn dead_runs(root: &Utf8Path) -> Vec<Leftover> {
    let mut found: Vec<Leftover> = crate::workspace::backup_journals(root)
        .iter()
        .filter_map(|place| read_dead(&place.folder))
        .collect();
    found.sort_by(|a, b| a.staging.cmp(&b.staging));
    found
}

/// True when a run holds the journal of `staging`: that backup is running (here or on another
/// machine sharing the folder), and its folder is not to be touched.
pub fn is_held(staging: &Utf8Path) -> bool {
    open_journal(&crate::workspace::backup_journal(staging))
        .is_some_and(|file| !runs::try_lock(&file).unwrap_or(true))
}

/// Opens a journal for reading: never through a link, never blocking.
fn open_journal(path: &Utf8Path) -> Option<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(
            (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
        );
    }
    options.open(path).ok()
}

/// The journal of `staging` when its run is dead.
pub(crate) fn read_dead(staging: &Utf8Path) -> Option<Leftover> {
    read_dead_journal(&crate::workspace::backup_journal(staging), staging)
}

/// The journal at `path` when its run is dead (`staging`: the run's folder, as reported).
pub(crate) fn read_dead_journal(path: &Utf8Path, staging: &Utf8Path) -> Option<Leftover> {
    let file = open_journal(path)?;
    let meta = file.metadata().ok()?;
    // Only a regular file this user wrote: a journal planted by someone else must not make
    // aimem delete snapshots on their say-so.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return None;
        }
    }
    if !meta.is_file() || !runs::try_lock(&file).ok()? {
        return None;
    }
    let mut leftover = Leftover {
        staging: staging.to_owned(),
        journal: path.to_owned(),
        folder: None,
        owner: None,
        server: None,
        identity: None,
        uploads: Vec::new(),
        temp_collections: Vec::new(),
        snapshots: Vec::new(),
        unanswered: Vec::new(),
        damaged: None,
        _lock: file.try_clone().ok()?,
    };
    // One more byte than a journal may hold tells an oversized one from one that fills it.
    let mut bytes = Vec::new();
    if let Err(e) = file.take(JOURNAL_MAX + 1).read_to_end(&mut bytes) {
        leftover.damaged = Some(format!("it cannot be read: {e}"));
        return Some(leftover);
    }
    let oversized = bytes.len() as u64 > JOURNAL_MAX;
    bytes.truncate(usize::try_from(JOURNAL_MAX).unwrap_or(usize::MAX));
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // What follows the last newline: nothing, or a line the kill cut while it was written (it
    // is written, and synced, before what it records is asked for, so it names nothing made).
    let torn = lines.pop().unwrap_or_default();
    let mut unreadable = 0;
    for line in lines {
        match serde_json::from_slice::<Record>(line) {
            Ok(record) => leftover.apply(record),
            Err(_) => unreadable += 1,
        }
    }
    if !oversized && let Ok(record) = serde_json::from_slice::<Record>(torn) {
        leftover.apply(record);
    }
    leftover.damaged = match (oversized, unreadable) {
        (true, _) => Some(format!(
            "it is over {} MiB, more than a run writes",
            JOURNAL_MAX / (1024 * 1024)
        )),
        (false, 0) => None,
        (false, 1) => Some("a line before its last is not a record".to_string()),
        (false, n) => Some(format!("{n} lines before its last are not records")),
    };
    Some(leftover)
}

impl Leftover {
    /// Takes one record of the journal into account.
    fn apply(&mut self, record: Record) {
        let leftover = self;
        match record {
            Record::Started {
                owner,
                server,
                identity,
            } => {
                leftover.owner = Some(owner);
                leftover.server = Some(server);
                leftover.identity = identity;
            }
            Record::Folder { path } => leftover.folder = Some(Utf8PathBuf::from(path)),
            Record::TempCollection { collection } => leftover.temp_collections.push(collection),
            Record::TempCollectionGone { collection } => {
                leftover.temp_collections.retain(|c| *c != collection)
            }
            Record::Uploading {
                collection,
                file,
                peer_id,
                peer_url,
            } => leftover.uploads.push(UploadLeftover {
                collection,
                file,
                peer_id,
                peer_url,
            }),
            Record::UploadGone {
                collection,
                file,
                peer_id,
            } => leftover.uploads.retain(|u| {
                !(u.collection == collection && u.file == file && u.peer_id == peer_id)
            }),
            Record::Creating {
                site,
                peer_url,
                asked_at,
                asked_before,
                existing,
            } => leftover.unanswered.push(Unanswered {
                site,
                peer_url,
                asked_at,
                asked_before,
                existing,
            }),
            Record::Refused { site } => leftover.answered(&site),
            Record::Created {
                site,
                peer_url,
                snapshot,
            } => {
                leftover.answered(&site);
                leftover.snapshots.push(LeftSnapshot {
                    site,
                    peer_url,
                    snapshot,
                });
            }
            Record::Deleted { site, snapshot } => leftover
                .snapshots
                .retain(|s| !(s.site == site && s.snapshot == snapshot)),
        }
    }

    /// The answer came: the earliest unanswered creation of `site` is answered.
    fn answered(&mut self, site: &Site) {
        if let Some(at) = self.unanswered.iter().position(|u| u.site == *site) {
            self.unanswered.remove(at);
        }
    }
}

/// Deletes what a dead run left on the server `client` talks to (`server` as journals name it,
/// and its identity), then its staging folder. A leftover from another server is reported and
/// kept: its journal is the only record of what to delete there. So is one that leaves
/// snapshots aimem cannot prove to be the dead run's ([`Cleanup::unproven`]), and one whose
/// journal is damaged ([`Leftover::damaged`]). Returns true when the leftover was cleared.
pub fn clear(
    leftover: &Leftover,
    client: &Client,
    server: (&str, &str),
    topology: &Topology,
    ui: &Ui,
) -> bool {
    let (server, identity) = server;
    if leftover.damaged.is_some() {
        ui.warn(&leftover.describe());
        return false;
    }
    if leftover.has_server_snapshots() && !leftover.is_of(server, identity) {
        ui.warn(&format!(
            "{}; run `aimem backup` into this folder against that server to delete them{}",
            leftover.describe(),
            leftover.why_other_server(server, identity)
        ));
        return false;
    }
    ui.note(&format!("{}: cleaning up", leftover.describe()));
    let cleanup = delete_server_snapshots(leftover, client, topology, ui);
    let subject = leftover.staging.file_name().unwrap_or_default();
    let again = format!("kept {} so the next backup tries again", leftover.staging);
    if !cleanup.report(leftover, subject, &again, ui) {
        return false;
    }
    if let Err(e) = std::fs::remove_dir_all(&leftover.staging) {
        ui.warn(&format!(
            "could not remove {}: {e}; delete it by hand",
            leftover.staging
        ));
        return false;
    }
    true
}

/// Says which snapshots may be a dead run's, why aimem keeps them, and how to end it
/// (`subject`: the leftover as messages name it).
pub fn unproven_message(leftover: &Leftover, subject: &str, unproven: &[String]) -> String {
    format!(
        "{subject}: a killed run asked for a snapshot and never heard its name; {} may be it, or \
         may be someone else's taken since. aimem deletes only what it can prove is its own, so \
         it is kept. Delete it by hand if it is not yours; then (or to keep it) remove {} so \
         this is not reported again",
        unproven.join(", "),
        leftover.journal
    )
}

/// Says which objects a journal names under names aimem does not give, why aimem keeps them,
/// and how to end it.
pub fn not_ours_message(leftover: &Leftover, subject: &str, not_ours: &[String]) -> String {
    format!(
        "{subject}: its journal names {} under a name aimem never gives what it makes, so \
         nothing proves it is aimem's. aimem deletes only what it can prove is its own, so it is \
         kept. Delete it by hand if it is yours; then (or to keep it) remove {} so this is not \
         reported again",
        not_ours.join(", "),
        leftover.journal
    )
}

/// What cleaning up after a dead run came to.
#[derive(Debug, Default)]
pub struct Cleanup {
    /// Something the journal names could not be dealt with now (the server did not answer, a
    /// deletion failed): the record stays for the next run to try again.
    pub retry: bool,
    /// Snapshots named in the time window of a creation whose answer never came: maybe the
    /// dead run's, maybe another client's taken meanwhile. Kept and said, never deleted.
    pub unproven: Vec<String>,
    /// Objects the journal names under names aimem never gives (a journal aimem did not write
    /// as it stands): nothing proves they are aimem's. Kept and said, never deleted.
    pub not_ours: Vec<String>,
}

impl Cleanup {
    /// True when everything the journal names is gone, or was never made.
    pub fn done(&self) -> bool {
        !self.retry && self.unproven.is_empty() && self.not_ours.is_empty()
    }

    /// Says what is kept and why (`subject`: the leftover as messages name it; `again`: what
    /// to say when the next run is to try again). Returns [`Cleanup::done`].
    pub fn report(&self, leftover: &Leftover, subject: &str, again: &str, ui: &Ui) -> bool {
        if !self.unproven.is_empty() {
            ui.warn(&unproven_message(leftover, subject, &self.unproven));
        }
        if !self.not_ours.is_empty() {
            ui.warn(&not_ours_message(leftover, subject, &self.not_ours));
        }
        if self.retry {
            ui.warn(again);
        }
        self.done()
    }
}

/// Deletes the server objects a dead run's journal names (the server's own check is the
/// caller's): recorded snapshot names, and uploaded copies under names only aimem gives.
/// A creation whose answer never came is looked up, never deleted: see [`Cleanup::unproven`].
pub(crate) fn delete_server_snapshots(
    leftover: &Leftover,
    client: &Client,
    topology: &Topology,
    ui: &Ui,
) -> Cleanup {
    let mut cleanup = Cleanup::default();
    let (snapshots, shard_snapshots) = by_kind(&leftover.snapshots, |s| &s.site);
    let (unanswered, shard_unanswered) = by_kind(&leftover.unanswered, |u| &u.site);
    for left in snapshots {
        delete_left(left, client, topology, &mut cleanup, ui);
    }
    for upload in &leftover.uploads {
        if crate::names::check(&upload.collection).is_err()
            || !is_our_upload(&upload.file, &upload.collection)
        {
            cleanup.not_ours.push(format!(
                "the uploaded copy {} of `{}`",
                clean(&upload.file),
                clean(&upload.collection)
            ));
            continue;
        }
        let copy = format!(
            "the uploaded copy {} of `{}`{}",
            clean(&upload.file),
            clean(&upload.collection),
            upload.place()
        );
        match clear_upload(upload, client, topology) {
            Ok(()) => {}
            Err(UploadKept::Recovering(running)) => {
                cleanup.retry = true;
                ui.warn(&format!(
                    "kept {copy}: Qdrant is recovering `{c}` ({running} running, \
                     snapshot_recovery_running in GET /metrics), maybe from this very copy, and \
                     deleting it could break that; the next backup or restore against this server \
                     deletes it once no recovery of `{c}` runs",
                    c = clean(&upload.collection)
                ));
            }
            Err(UploadKept::CannotTell(e)) => {
                cleanup.retry = true;
                ui.warn(&format!(
                    "kept {copy}: cannot tell whether Qdrant is still recovering from it ({e}), \
                     and deleting it could break that; the next backup or restore against this \
                     server tries again. Once snapshot_recovery_running{{id=\"{c}\"}} in \
                     GET /metrics reads 0, you may delete it by hand and remove {}",
                    leftover.journal,
                    c = clean(&upload.collection)
                ));
            }
            Err(UploadKept::Failed(e)) => {
                cleanup.retry = true;
                ui.warn(&format!("could not delete {copy}: {e}"));
            }
        }
    }
    for collection in &leftover.temp_collections {
        if !crate::names::is_temporary_collection(collection) {
            cleanup
                .not_ours
                .push(format!("the temporary collection `{}`", clean(collection)));
            continue;
        }
        if let Err(e) = client.delete_collection(collection) {
            cleanup.retry = true;
            ui.warn(&format!(
                "could not delete the temporary collection `{}`: {e}",
                clean(collection)
            ));
        }
    }
    for asked in unanswered {
        look_for(asked, client, topology, &mut cleanup, ui);
    }
    for left in shard_snapshots {
        delete_left(left, client, topology, &mut cleanup, ui);
    }
    for asked in shard_unanswered {
        look_for(asked, client, topology, &mut cleanup, ui);
    }
    cleanup
}

/// Deletes a snapshot a dead run left, on its server or peer; one the journal names under a
/// name Qdrant does not give that site is not something aimem created, and is kept.
fn delete_left(
    left: &LeftSnapshot,
    client: &Client,
    topology: &Topology,
    cleanup: &mut Cleanup,
    ui: &Ui,
) {
    let what = format!(
        "snapshot {} of {}",
        clean(&left.snapshot),
        shown(&left.site)
    );
    if !left.site.may_name(&left.snapshot) {
        cleanup.not_ours.push(what);
        return;
    }
    let deleted = left.site.client(client, topology).and_then(|on| {
        match left.site.delete(on, &left.snapshot) {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    });
    if let Err(e) = deleted {
        cleanup.retry = true;
        ui.warn(&format!("could not delete {what}: {e}"));
    }
}

/// Looks for the snapshots that may be the one a dead run asked for and never heard back
/// about: named in the request's time window and not there before. Never deleted (see
/// [`Cleanup::unproven`]); a list that cannot be read keeps the record for the next run.
fn look_for(
    asked: &Unanswered,
    client: &Client,
    topology: &Topology,
    cleanup: &mut Cleanup,
    ui: &Ui,
) {
    let site = &asked.site;
    if crate::names::check(site.collection()).is_err() {
        cleanup.not_ours.push(format!(
            "a snapshot of {} asked for at {} UTC",
            shown(site),
            clean(&asked.asked_at)
        ));
        return;
    }
    let listed = site
        .client(client, topology)
        .and_then(|on| site.list(on).map_err(|e| e.to_string()));
    let listed = match listed {
        Ok(listed) => listed,
        Err(e) => {
            cleanup.retry = true;
            // A collection's is looked for again without a word, as it always was.
            if site.is_shard() {
                ui.warn(&format!(
                    "could not look for the snapshot of {}: {e}",
                    shown(site)
                ));
            }
            return;
        }
    };
    cleanup.unproven.extend(
        listed
            .into_iter()
            .filter(|s| !asked.existing.contains(&s.name))
            .filter(|s| site.names_snapshot(&s.name, &asked.asked_at))
            .filter(|s| name_time(&s.name).is_some_and(|t| t < asked.asked_before.as_str()))
            .map(|s| format!("snapshot {} of {}", clean(&s.name), shown(site))),
    );
}

/// True for the name of an upload copy aimem gives a snapshot file it uploads into
/// `collection`: `aimem-restore-<collection>-…` or `aimem-rollback-<collection>-…`,
/// `.snapshot`, one safe name.
pub fn is_our_upload(file: &str, collection: &str) -> bool {
    crate::names::check(file).is_ok()
        && file.ends_with(".snapshot")
        && ["aimem-restore-", "aimem-rollback-"]
            .iter()
            .any(|kind| file.starts_with(&format!("{kind}{collection}-")))
}

/// Why an uploaded copy a dead restore left is not deleted now.
enum UploadKept {
    /// Qdrant is recovering its collection (this many recoveries run): maybe from this copy.
    Recovering(u64),
    /// Whether Qdrant is recovering its collection cannot be read.
    CannotTell(String),
    /// Its server could not be asked, or did not delete it.
    Failed(String),
}

/// Deletes an uploaded copy a dead restore left under one of aimem's upload names (the
/// caller's check): on the server `client` talks to, or on the cluster peer it went to (as
/// this run verified that peer). Qdrant keeps the uploaded file while it recovers from it (in
/// a task that outlives the dead run's request), so the copy is deleted only while that
/// server's `snapshot_recovery_running{id="<collection>"}` gauge reads 0.
fn clear_upload(
    upload: &UploadLeftover,
    client: &Client,
    topology: &Topology,
) -> Result<(), UploadKept> {
    let on = match upload.peer_id {
        Some(peer) => peer_client(topology, peer).map_err(UploadKept::Failed)?,
        None => client,
    };
    match on.snapshot_recoveries_running(&upload.collection) {
        Ok(0) => {}
        Ok(running) => return Err(UploadKept::Recovering(running)),
        Err(e) => return Err(UploadKept::CannotTell(e.to_string())),
    }
    match on.delete_snapshot(&upload.collection, &upload.file) {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(UploadKept::Failed(e.to_string())),
    }
}

/// True for a name Qdrant gives a snapshot of `shard` of `collection` started at or after
/// `asked_at`: `<c>-shard-<id>-<time>.snapshot` (docs/qdrant.md, "Snapshot names"), also with
/// a peer id before the time as collection snapshots have.
pub(crate) fn is_shard_snapshot_of(
    name: &str,
    collection: &str,
    shard: u32,
    asked_at: &str,
) -> bool {
    let prefix = format!("{collection}-shard-{shard}-");
    let Some(rest) = name
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix(".snapshot"))
    else {
        return false;
    };
    let Some(split) = rest.len().checked_sub(19) else {
        return false;
    };
    let (peer, stamp) = rest.split_at_checked(split).unwrap_or(("-", ""));
    let peer_ok = peer.is_empty()
        || peer
            .strip_suffix('-')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let shaped = stamp.len() == 19 && stamp.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    peer_ok && shaped && stamp >= asked_at
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dead runs of `root` once a journal just dropped is free. Other tests of this
    /// process start shells: a child shares the journal's open file (and so its `flock`)
    /// between fork and exec, for a moment after the journal is closed here.
    fn dead_runs_once_free(root: &Utf8Path) -> Vec<Leftover> {
        for _ in 0..200 {
            let dead = dead_runs(root);
            if !dead.is_empty() {
                return dead;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        dead_runs(root)
    }

    fn staging() -> (tempfile::TempDir, Utf8PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap().to_owned();
        let staging = root.join(".aimem-staging-x");
        std::fs::create_dir(&staging).unwrap();
        (dir, root)
    }

    #[test]
    fn a_journal_is_held_while_its_run_lives() {
        let (_dir, root) = staging();
        let folder = root.join(".aimem-staging-x");
        assert!(!is_held(&folder), "no journal yet");
        let journal = Journal::create(&folder, "http://h:1", "qdrant process 1").unwrap();
        assert!(is_held(&folder));
        drop(journal);
        assert!(!is_held(&folder));
    }

    /// The live journal of a run in `root`'s staging folder, holding `records`.
    fn journal_of(root: &Utf8Path, records: &[Record]) -> Journal {
        let mut journal = Journal::create(
            &root.join(".aimem-staging-x"),
            "http://h:1",
            "qdrant process 1",
        )
        .unwrap();
        for record in records {
            journal.record(record).unwrap();
        }
        journal
    }

    fn creating(site: Site, asked_at: &str, asked_before: &str, existing: &[&str]) -> Record {
        Record::Creating {
            peer_url: match site {
                Site::Shard { peer, .. } => Some(format!("http://127.0.0.{peer}:6333")),
                Site::Collection(_) => None,
            },
            site,
            asked_at: asked_at.into(),
            asked_before: asked_before.into(),
            existing: existing.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn shard(collection: &str, shard: u32, peer: u64) -> Site {
        Site::Shard {
            collection: collection.into(),
            shard,
            peer,
        }
    }

    #[test]
    fn a_live_run_is_not_a_leftover_and_a_dead_one_says_what_remains() {
        let (_dir, root) = staging();
        let collection = |name: &str| Site::Collection(name.to_string());
        let journal = journal_of(
            &root,
            &[
                creating(
                    collection("a"),
                    "2026-01-01-00-00-00",
                    "2026-01-01-00-03-00",
                    &[],
                ),
                Record::Created {
                    site: collection("a"),
                    peer_url: None,
                    snapshot: "a-1-2026-01-01-00-00-01.snapshot".into(),
                },
                creating(
                    collection("b"),
                    "2026-01-01-00-00-05",
                    "2026-01-01-00-03-05",
                    &[],
                ),
                creating(
                    collection("c"),
                    "2026-01-01-00-00-06",
                    "2026-01-01-00-03-06",
                    &[],
                ),
                Record::Refused {
                    site: collection("c"),
                },
            ],
        );
        assert!(dead_runs(&root).is_empty(), "the run holding it is alive");
        // The process ends: its handle (and lock) go.
        drop(journal);
        let dead = dead_runs_once_free(&root);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].server.as_deref(), Some("http://h:1"));
        assert_eq!(
            dead[0].snapshots,
            vec![LeftSnapshot {
                site: collection("a"),
                peer_url: None,
                snapshot: "a-1-2026-01-01-00-00-01.snapshot".to_string()
            }]
        );
        assert_eq!(dead[0].unanswered.len(), 1);
        assert_eq!(dead[0].unanswered[0].site, collection("b"));
        // While one run deals with it, another does not see it.
        assert!(dead_runs(&root).is_empty());
    }

    /// Each kind of line as aimem has always written it: read and written again, the same bytes.
    const LINES: [&str; 13] = [
        r#"{"event":"started","owner":{"pid":1,"host":"h","started":"2026-01-01T00:00:00Z"},"server":"http://h:1","identity":"qdrant process 1"}"#,
        r#"{"event":"folder","path":"/b/pre-restore-x"}"#,
        r#"{"event":"uploading","collection":"c","file":"aimem-restore-c-1.snapshot"}"#,
        r#"{"event":"uploading","collection":"c","file":"aimem-restore-c-1.snapshot","peer_id":2,"peer_url":"http://p:6333"}"#,
        r#"{"event":"upload_gone","collection":"c","file":"aimem-restore-c-1.snapshot","peer_id":2}"#,
        r#"{"event":"creating","collection":"c","asked_at":"2026-01-01-00-00-00","asked_before":"2026-01-01-00-03-00","existing":["c-1-2025-12-31-00-00-00.snapshot"]}"#,
        r#"{"event":"refused","collection":"c"}"#,
        r#"{"event":"created","collection":"c","snapshot":"c-1-2026-01-01-00-00-01.snapshot"}"#,
        r#"{"event":"deleted","collection":"c","snapshot":"c-1-2026-01-01-00-00-01.snapshot"}"#,
        r#"{"event":"shard_created","collection":"c","shard":1,"peer_id":2,"peer_url":"http://p:6333","snapshot":"c-shard-1-2026-01-01-00-00-01.snapshot"}"#,
        r#"{"event":"shard_deleted","collection":"c","shard":1,"peer_id":2,"snapshot":"c-shard-1-2026-01-01-00-00-01.snapshot"}"#,
        r#"{"event":"shard_creating","collection":"c","shard":1,"peer_id":2,"peer_url":"http://p:6333","asked_at":"2026-01-01-00-00-00","asked_before":"2026-01-01-00-03-00","existing":[]}"#,
        r#"{"event":"shard_refused","collection":"c","shard":1,"peer_id":2}"#,
    ];

    #[test]
    fn every_line_is_written_back_as_it_was_read() {
        for line in LINES {
            let record: Record = serde_json::from_str(line).unwrap();
            assert_eq!(serde_json::to_string(&record).unwrap(), line);
        }
    }

    #[test]
    fn a_shards_lines_are_its_sites_records() {
        let read = |line: &str| serde_json::from_str::<Record>(line).unwrap();
        let at = |site: Site| (site, Some("http://p:6333".to_string()));
        let creating = read(LINES[11]);
        assert!(
            matches!(&creating, Record::Creating { site, peer_url, .. } if (site.clone(), peer_url.clone()) == at(shard("c", 1, 2))),
            "{creating:?}"
        );
        assert_eq!(
            read(LINES[12]),
            Record::Refused {
                site: shard("c", 1, 2)
            }
        );
        assert_eq!(
            read(LINES[10]),
            Record::Deleted {
                site: shard("c", 1, 2),
                snapshot: "c-shard-1-2026-01-01-00-00-01.snapshot".into()
            }
        );
        assert_eq!(
            read(LINES[6]),
            Record::Refused {
                site: Site::Collection("c".into())
            }
        );
    }

    #[test]
    fn the_time_in_a_snapshot_name() {
        assert_eq!(
            name_time("c-1-2026-01-01-00-00-05.snapshot"),
            Some("2026-01-01-00-00-05")
        );
        assert_eq!(name_time("x.snapshot"), None);
        assert_eq!(name_time("c-1-2026-01-01-00-00-05"), None);
    }

    #[test]
    fn a_dead_runs_shard_creations_without_an_answer_are_left_to_look_for() {
        let (_dir, root) = staging();
        let shard_creating = |id: u32, peer: u64| {
            creating(
                shard("d", id, peer),
                "2026-01-01-00-00-00",
                "2026-01-01-00-03-00",
                &["d-shard-0-2025-12-31-00-00-00.snapshot"],
            )
        };
        let journal = journal_of(
            &root,
            &[
                shard_creating(0, 1),
                shard_creating(1, 2),
                shard_creating(2, 3),
                // Answered: a snapshot to delete by name, nothing to look for.
                Record::Created {
                    site: shard("d", 0, 1),
                    peer_url: Some("http://127.0.0.1:6333".into()),
                    snapshot: "d-shard-0-2026-01-01-00-00-01.snapshot".into(),
                },
                // Refused: nothing made. The same shard on another peer is a different creation.
                Record::Refused {
                    site: shard("d", 2, 1),
                },
                Record::Refused {
                    site: shard("d", 2, 3),
                },
            ],
        );
        drop(journal);
        let dead = dead_runs_once_free(&root);
        assert_eq!(dead.len(), 1);
        let unanswered: Vec<&Site> = dead[0].unanswered.iter().map(|u| &u.site).collect();
        assert_eq!(unanswered, [&shard("d", 1, 2)]);
        let snapshots: Vec<&Site> = dead[0].snapshots.iter().map(|s| &s.site).collect();
        assert_eq!(snapshots, [&shard("d", 0, 1)]);
        assert!(dead[0].has_server_snapshots());
        let said = dead[0].describe();
        assert!(
            said.contains("shard 1 of `d` on peer 2") && said.contains("never came back"),
            "{said}"
        );
    }

    #[test]
    fn only_a_shard_snapshot_named_from_the_request_time_on_is_looked_for() {
        let at = "2026-11-26-16-00-01";
        assert!(is_shard_snapshot_of(
            "d-shard-3-2026-11-26-16-00-01.snapshot",
            "d",
            3,
            at
        ));
        // With a peer id before the time, as collection snapshots are named.
        assert!(is_shard_snapshot_of(
            "d-shard-3-2743143085275039-2026-11-26-16-00-02.snapshot",
            "d",
            3,
            at
        ));
        assert!(!is_shard_snapshot_of(
            "d-shard-3-2026-11-26-15-59-59.snapshot",
            "d",
            3,
            at
        ));
        assert!(!is_shard_snapshot_of(
            "d-shard-30-2026-11-26-16-00-01.snapshot",
            "d",
            3,
            at
        ));
        assert!(!is_shard_snapshot_of(
            "d-x-shard-3-2026-11-26-16-00-01.snapshot",
            "d",
            3,
            at
        ));
        assert!(!is_shard_snapshot_of(
            "d-shard-3-x-2026-11-26-16-00-01.snapshot",
            "d",
            3,
            at
        ));
        assert!(!is_shard_snapshot_of("d-shard-3-.snapshot", "d", 3, ""));
        assert!(!is_shard_snapshot_of(
            "d-shard-3-2026-11-26-16-00-01",
            "d",
            3,
            at
        ));
    }

    /// A leftover of a run on `host` against `server`, known as `identity` when given.
    fn leftover_of(server: &str, identity: Option<&str>, host: &str) -> Leftover {
        Leftover {
            staging: Utf8PathBuf::from(".aimem-staging-x"),
            journal: Utf8PathBuf::from(".aimem-staging-x/.aimem-journal"),
            folder: None,
            owner: Some(Owner {
                pid: 1,
                host: host.to_string(),
                started: String::new(),
            }),
            server: Some(server.to_string()),
            identity: identity.map(str::to_string),
            uploads: Vec::new(),
            temp_collections: Vec::new(),
            snapshots: Vec::new(),
            unanswered: Vec::new(),
            damaged: None,
            _lock: tempfile::tempfile().unwrap(),
        }
    }

    #[test]
    fn known_identities_alone_tell_servers_apart() {
        let (a, b) = ("qdrant process aaaa", "qdrant process bbbb");
        let here = "here";
        // The same server through another spelling.
        assert!(
            leftover_of("http://localhost:6333", Some(a), here).is_of_on(
                "http://127.0.0.1:6333",
                a,
                here
            )
        );
        // The same URL, answered by another server now: not its leftovers.
        assert!(!leftover_of("http://h:6333", Some(a), here).is_of_on("http://h:6333", b, here));
        assert!(
            !leftover_of("http://127.0.0.1:6333", Some(a), here).is_of_on(
                "http://127.0.0.1:6333",
                b,
                here
            )
        );
        // Known identities match whatever machine ran it.
        assert!(
            leftover_of("http://127.0.0.1:6333", Some(a), "there").is_of_on(
                "http://h:6333",
                a,
                here
            )
        );
    }

    #[test]
    fn without_both_identities_the_url_counts_and_a_loopback_one_only_on_the_same_machine() {
        let here = "here";
        let this = "qdrant process bbbb";
        // An older journal without an identity.
        assert!(leftover_of("http://h:6333", None, here).is_of_on("http://h:6333", this, here));
        assert!(
            leftover_of("http://h:6333", None, "there").is_of_on("http://h:6333", this, here),
            "a name that is not loopback reaches one server from any machine"
        );
        assert!(!leftover_of("http://h:6333", None, here).is_of_on("http://g:6333", this, here));
        // A server that does not say who it is: its identity is its URL.
        let url = "http://h:6333";
        assert!(leftover_of(url, Some(url), here).is_of_on(url, url, here));
        assert!(leftover_of(url, Some("qdrant process aaaa"), here).is_of_on(url, url, here));
        // Loopback: another machine's own server.
        for server in [
            "http://127.0.0.1:6333",
            "http://localhost:6333",
            "https://[::1]:443",
            "http://127.1.2.3:6333",
            "http://0.0.0.0:6333",
        ] {
            assert!(
                leftover_of(server, None, here).is_of_on(server, this, here),
                "{server}"
            );
            assert!(
                leftover_of(server, None, "HERE").is_of_on(server, this, here),
                "{server}"
            );
            assert!(
                !leftover_of(server, None, "there").is_of_on(server, this, here),
                "{server}"
            );
            assert!(
                !leftover_of(server, Some(server), "there").is_of_on(server, server, here),
                "{server}"
            );
        }
    }

    #[test]
    fn loopback_urls() {
        for url in [
            "http://127.0.0.1:6333",
            "http://localhost:1",
            "http://LOCALHOST.:1",
            "http://qdrant.localhost:1",
            "https://[::1]:443",
            "http://[::ffff:127.0.0.1]:6333",
            "http://[::]:6333",
            "http://0.0.0.0:6333",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "http://10.0.0.1:6333",
            "http://qdrant:6333",
            "https://[2001:db8::1]:443",
            "http://localhost.example:1",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }

    /// The leftover a dead run's journal holding `text` gives.
    fn read_text(text: &[u8]) -> Leftover {
        let (_dir, root) = staging();
        let folder = root.join(".aimem-staging-x");
        std::fs::write(folder.join(JOURNAL_FILE), text).unwrap();
        read_dead(&folder).unwrap()
    }

    #[test]
    fn only_a_torn_last_line_is_what_a_kill_leaves() {
        let started = r#"{"event":"started","owner":{"pid":1,"host":"h","started":""},"server":"http://h:1"}"#;
        let created =
            r#"{"event":"created","collection":"a","snapshot":"a-1-2026-01-01-00-00-01.snapshot"}"#;
        let whole = format!("{started}\n{created}\n");
        let read = read_text(whole.as_bytes());
        assert_eq!((read.damaged, read.snapshots.len()), (None, 1));
        // Cut while written: the rest is the whole record.
        let read = read_text(format!("{whole}{{\"event\":\"crea").as_bytes());
        assert_eq!((read.damaged, read.snapshots.len()), (None, 1));
        // Anything else is not: what can be read is still named.
        for damaged in [
            format!("{started}\n{{\"event\":\"crea\n{created}\n"),
            format!("{started}\n\n{created}\n"),
            format!("{started}\n{{\"event\":\"from_a_later_aimem\"}}\n{created}\n"),
            format!("{whole}not json\n"),
        ] {
            let read = read_text(damaged.as_bytes());
            assert!(read.damaged.is_some(), "{damaged}");
            assert_eq!(read.snapshots.len(), 1, "{damaged}");
            assert!(read.has_server_snapshots());
        }
        let mut bad_utf8 = format!("{started}\n").into_bytes();
        bad_utf8.extend_from_slice(b"\xff\xfe\n");
        bad_utf8.extend_from_slice(created.as_bytes());
        bad_utf8.push(b'\n');
        let read = read_text(&bad_utf8);
        assert!(read.damaged.is_some());
        assert_eq!(read.server.as_deref(), Some("http://h:1"));
        // Over the bound.
        let refused = "{\"event\":\"refused\",\"collection\":\"a\"}\n";
        let big = format!("{whole}{}", refused.repeat(1024 * 1024 / refused.len() + 1));
        let read = read_text(big.as_bytes());
        assert!(read.damaged.is_some_and(|why| why.contains("over 1 MiB")));
        // Nothing left and nothing damaged: cleared as usual.
        let read = read_text(format!("{started}\n").as_bytes());
        assert!(!read.has_server_snapshots());
    }

    #[test]
    fn a_finished_run_leaves_no_journal() {
        let (_dir, root) = staging();
        journal_of(&root, &[]).finish().unwrap();
        assert!(!root.join(".aimem-staging-x").join(JOURNAL_FILE).exists());
        assert!(dead_runs(&root).is_empty());
    }
}
