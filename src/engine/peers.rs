//! Cluster discovery: is the server part of a distributed Qdrant, and what are the REST
//! addresses of its peers?
//!
//! `GET /cluster` lists peers by their P2P URIs only. Each peer's REST address is the P2P
//! host with the scheme, credentials and port of the URL aimem was given, unless `--peer URL`
//! / `QDRANT_PEERS` lists them. Either way every address must answer `GET /cluster` as the
//! peer it stands for before anything else happens.

use std::net::{SocketAddr, SocketAddrV6, ToSocketAddrs};

use clap::Args;
use miette::Diagnostic;
use thiserror::Error;

use crate::qdrant::cluster::{ClusterStatus, p2p_host};
use crate::qdrant::{Client, QdrantError, ServerUrl, UrlError, redact};

/// The REST addresses of a cluster's peers (backup, restore, diff-schema).
#[derive(Debug, Clone, Default, Args)]
pub struct PeerArgs {
    /// REST URL of a cluster peer (repeatable; QDRANT_PEERS: comma-separated); without it each
    /// peer is reached at its cluster host with the scheme and port of --url.
    #[arg(
        long = "peer",
        env = "QDRANT_PEERS",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "URL",
        value_hint = clap::ValueHint::Url,
        help_heading = "Connection"
    )]
    pub peers: Vec<String>,
}

/// One peer of the cluster, verified to answer as itself.
#[derive(Debug, Clone)]
pub struct Peer {
    pub peer_id: u64,
    /// The P2P URI Qdrant reports, redacted (any user info or query hidden): it is shown and
    /// written to the manifest.
    pub uri: String,
    pub client: Client,
}

/// What the server is.
#[derive(Debug, Clone)]
pub enum Topology {
    Single,
    /// Every peer, sorted by peer id.
    Cluster {
        peers: Vec<Peer>,
    },
}

impl Topology {
    pub fn peers(&self) -> &[Peer] {
        match self {
            Topology::Single => &[],
            Topology::Cluster { peers } => peers,
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Topology::Cluster { .. })
    }

    /// The peer with this id.
    pub fn peer(&self, peer_id: u64) -> Option<&Peer> {
        self.peers().iter().find(|p| p.peer_id == peer_id)
    }

    /// The server as journals tell it apart from others, whatever URL reached it: a cluster
    /// by its lowest peer id (every peer of it lists the same peers), a single node by its
    /// process id (`GET /telemetry`). `spelled` (the URL's scheme, host and port) when a single
    /// node does not say who it is: then two spellings of one server are two servers here, so
    /// locks go by [`LockKeys`], which adds the server's socket addresses.
    pub fn identity(&self, client: &Client, spelled: &str) -> String {
        match self.peers().iter().map(|p| p.peer_id).min() {
            Some(lowest) => format!("qdrant cluster with peer {lowest}"),
            None => match client.process_id() {
                Ok(id) => format!("qdrant process {id}"),
                Err(e) => {
                    log::info!("{spelled} does not say which server it is ({e}): known by its URL");
                    spelled.to_string()
                }
            },
        }
    }
}

/// The names one server goes by in this machine's locks: its identity ([`Topology::identity`]),
/// its URL as spelled, and every socket address its host and port resolve to here. Two runs
/// exclude each other when they share one name, so two spellings of one server (`127.0.0.1`,
/// `localhost`) still meet at an address when the server does not say who it is. Sharing an
/// address with another server (a proxy routing by host name) only makes the runs take turns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockKeys(Vec<String>);

impl LockKeys {
    /// `host` is the URL's (an IPv6 address in brackets); `spelled` is its scheme, host and
    /// port ([`crate::workspace::runs::server_key`]), never credentials.
    pub fn new(identity: &str, spelled: &str, host: &str, port: u16) -> LockKeys {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let addresses: Vec<SocketAddr> = match (bare, port).to_socket_addrs() {
            Ok(addresses) => addresses.collect(),
            // Nothing else can be known (a proxy may resolve it, not this machine): the same
            // spelling still shares the locks.
            Err(e) => {
                log::info!("cannot resolve {spelled} ({e}): locks know it by its URL");
                Vec::new()
            }
        };
        LockKeys::with_addresses(identity, spelled, addresses)
    }

    /// The keys of a server whose host resolved to `addresses` (none: known by its identity
    /// and URL alone).
    fn with_addresses(
        identity: &str,
        spelled: &str,
        addresses: impl IntoIterator<Item = SocketAddr>,
    ) -> LockKeys {
        let mut keys = vec![identity.to_string(), spelled.to_string()];
        keys.extend(addresses.into_iter().map(address_key));
        keys.sort_unstable();
        keys.dedup();
        LockKeys(keys)
    }

    /// The lock file names of `kind` for `parts` (a collection…) under every key: sorted and
    /// without repeats, the order every run takes them in, so two runs that want overlapping
    /// sets never each hold what the other waits for.
    pub fn lock_names(&self, kind: &str, parts: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .iter()
            .map(|key| {
                let mut all = vec![key.as_str()];
                all.extend_from_slice(parts);
                crate::workspace::runs::lock_name(kind, &all)
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// `address 127.0.0.1:6333`, `address [::1]:6333`: an IPv4 address written as IPv6
/// (`::ffff:127.0.0.1`) is the IPv4 one, and a flow label is no part of the address.
fn address_key(address: SocketAddr) -> String {
    let address = match address {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, v6.scope_id())),
        },
        v4 => v4,
    };
    format!("address {address}")
}

#[derive(Debug, Error, Diagnostic)]
pub enum PeerError {
    #[error("cannot ask {url} whether it is part of a cluster: {source}")]
    #[diagnostic(code(aimem::cluster::status))]
    Status {
        url: String,
        #[source]
        #[diagnostic_source]
        source: QdrantError,
    },

    #[error("peer {peer_id} of the cluster at {url} is unreachable: {source}")]
    #[diagnostic(
        code(aimem::cluster::peer_unreachable),
        help(
            "Every peer must answer for a cluster backup or restore. Start the peer, or give every \
             peer's REST address with --peer URL (repeatable) or QDRANT_PEERS."
        )
    )]
    Unreachable {
        peer_id: u64,
        url: String,
        #[source]
        source: QdrantError,
    },

    #[error("{url} should be peer {expected} of the cluster but answers as {got}")]
    #[diagnostic(
        code(aimem::cluster::wrong_peer),
        help(
            "The REST address derived for (or given for) this peer reaches another server. Give every \
             peer's REST address with --peer URL (repeatable) or QDRANT_PEERS."
        )
    )]
    WrongPeer {
        expected: String,
        got: String,
        url: String,
    },

    #[error("--peer {url} answers as {got}, which is not a peer of the cluster at {main}")]
    #[diagnostic(
        code(aimem::cluster::foreign_peer),
        help(
            "Each --peer URL must be the REST address of one peer of this cluster, each peer once."
        )
    )]
    Foreign {
        url: String,
        got: String,
        main: String,
    },

    #[error("peer {peer_id} of the cluster (P2P {uri}) has no --peer URL")]
    #[diagnostic(
        code(aimem::cluster::peer_missing),
        help("With --peer / QDRANT_PEERS, list the REST address of every peer of the cluster.")
    )]
    Missing { peer_id: u64, uri: String },

    #[error("peer {peer_id}'s P2P address {uri} has no host aimem can use")]
    #[diagnostic(
        code(aimem::cluster::peer_address),
        help("Give every peer's REST address with --peer URL (repeatable) or QDRANT_PEERS.")
    )]
    Underivable { peer_id: u64, uri: String },

    #[error("--peer was given but {url} is not part of a cluster")]
    #[diagnostic(
        code(aimem::cluster::not_a_cluster),
        help("Leave out --peer / QDRANT_PEERS for a single-node Qdrant.")
    )]
    NotACluster { url: String },

    /// The value is not quoted: QDRANT_PEERS is split at commas, so a comma in a password
    /// leaves pieces of credentials that no longer look like credentials.
    #[error(
        "--peer / QDRANT_PEERS value {position} is not a REST address http(s)://HOST:PORT: it {reason}"
    )]
    #[diagnostic(
        code(aimem::cluster::peer_url),
        help(
            "Each --peer URL is a scheme, host and port, without a path or query. QDRANT_PEERS is \
             split at commas: write a comma in a password as %2C."
        )
    )]
    BadPeerUrl { position: usize, reason: UrlError },
}

/// Finds out whether `client`'s server is a cluster and, if so, reaches and checks every peer.
///
/// A server that does not answer `GET /cluster` usefully (an old version, a key without the
/// right) is taken as a single node, as before cluster support, unless `--peer` was given;
/// one that cannot be reached at all, or answers something aimem refuses, is an error.
pub fn discover(client: &Client, args: &PeerArgs) -> Result<Topology, PeerError> {
    let main = client.display_url().to_string();
    let overrides: Vec<&str> = args
        .peers
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect();
    // Every value is parsed before any is used or shown (see PeerError::BadPeerUrl).
    let overrides = overrides
        .iter()
        .enumerate()
        .map(|(i, url)| {
            ServerUrl::parse(url).map_err(|reason| PeerError::BadPeerUrl {
                position: i + 1,
                reason,
            })
        })
        .collect::<Result<Vec<ServerUrl>, PeerError>>()?;
    let status = match client.cluster_status() {
        Ok(status) => status,
        // An answer aimem refuses (a cluster with a hostile or contradicting peer list) is
        // not a single node: taken as one, the run would work through one peer only.
        Err(e)
            if e.is_connection_problem()
                || matches!(
                    e,
                    QdrantError::Timeout { .. }
                        | QdrantError::InvalidResponse { .. }
                        | QdrantError::AnswerTooLong { .. }
                )
                || !overrides.is_empty() =>
        {
            return Err(PeerError::Status {
                url: main,
                source: e,
            });
        }
        Err(e) => {
            log::info!("GET /cluster failed ({e}): treating the server as a single node");
            return Ok(Topology::Single);
        }
    };
    let ClusterStatus::Enabled { peers: listed, .. } = status else {
        if !overrides.is_empty() {
            return Err(PeerError::NotACluster { url: main });
        }
        return Ok(Topology::Single);
    };
    let mut peers = Vec::with_capacity(listed.len());
    if overrides.is_empty() {
        for (&peer_id, uri) in &listed {
            let host = p2p_host(uri).ok_or_else(|| PeerError::Underivable {
                peer_id,
                uri: redact(uri),
            })?;
            let peer_client = client.for_peer(&client.url().with_host(&host));
            let answered = answering_peer(&peer_client, peer_id)?;
            if answered != peer_id {
                return Err(PeerError::WrongPeer {
                    expected: peer_id.to_string(),
                    got: format!("peer {answered}"),
                    url: peer_client.display_url().to_string(),
                });
            }
            peers.push(Peer {
                peer_id,
                uri: redact(uri),
                client: peer_client,
            });
        }
    } else {
        for url in &overrides {
            let peer_client = client.for_peer(url);
            let shown = peer_client.display_url().to_string();
            let status = peer_client
                .cluster_status()
                .map_err(|source| PeerError::Status {
                    url: shown.clone(),
                    source,
                })?;
            let got = match status {
                ClusterStatus::Enabled { peer_id, .. } => peer_id,
                ClusterStatus::Disabled => {
                    return Err(PeerError::Foreign {
                        url: shown,
                        got: "a single node".into(),
                        main,
                    });
                }
            };
            let Some(uri) = listed.get(&got) else {
                return Err(PeerError::Foreign {
                    url: shown,
                    got: format!("peer {got}"),
                    main,
                });
            };
            if peers.iter().any(|p: &Peer| p.peer_id == got) {
                return Err(PeerError::WrongPeer {
                    expected: "another peer".into(),
                    got: format!("peer {got}, which another --peer URL is already"),
                    url: shown,
                });
            }
            peers.push(Peer {
                peer_id: got,
                uri: redact(uri),
                client: peer_client,
            });
        }
        if let Some((&peer_id, uri)) = listed
            .iter()
            .find(|(id, _)| !peers.iter().any(|p| p.peer_id == **id))
        {
            return Err(PeerError::Missing {
                peer_id,
                uri: redact(uri),
            });
        }
        peers.sort_by_key(|p| p.peer_id);
    }
    Ok(Topology::Cluster { peers })
}

/// The peer id `client` answers `GET /cluster` with (`expected` names it in errors).
fn answering_peer(client: &Client, expected: u64) -> Result<u64, PeerError> {
    let url = client.display_url().to_string();
    match client.cluster_status() {
        Ok(ClusterStatus::Enabled { peer_id, .. }) => Ok(peer_id),
        Ok(ClusterStatus::Disabled) => Err(PeerError::WrongPeer {
            expected: expected.to_string(),
            got: "a single node".into(),
            url,
        }),
        Err(source) => Err(PeerError::Unreachable {
            peer_id: expected,
            url,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_spellings_of_a_loopback_server_share_an_address_key() {
        let numeric = LockKeys::new(
            "http://127.0.0.1:6333",
            "http://127.0.0.1:6333",
            "127.0.0.1",
            6333,
        );
        let named = LockKeys::new(
            "http://localhost:6333",
            "http://localhost:6333",
            "localhost",
            6333,
        );
        assert!(
            numeric.0.contains(&"address 127.0.0.1:6333".to_string()),
            "{numeric:?}"
        );
        let shared: Vec<&String> = numeric.0.iter().filter(|k| named.0.contains(k)).collect();
        assert!(!shared.is_empty(), "{numeric:?} {named:?}");
        let v6 = LockKeys::new("qdrant process x", "http://[::1]:6333", "[::1]", 6333);
        assert!(v6.0.contains(&"address [::1]:6333".to_string()), "{v6:?}");
        assert!(v6.0.contains(&"qdrant process x".to_string()), "{v6:?}");
    }

    #[test]
    fn an_ipv4_address_written_as_ipv6_is_the_ipv4_one() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:6333".parse().unwrap();
        assert_eq!(address_key(mapped), "address 127.0.0.1:6333");
    }

    #[test]
    fn an_unresolvable_host_is_known_by_its_url_alone() {
        // (Without resolving a name: a resolver that answers every name would spoil it.)
        let keys = LockKeys::with_addresses(
            "http://no-such-host.invalid:6333",
            "http://no-such-host.invalid:6333",
            [],
        );
        assert_eq!(keys.0, vec!["http://no-such-host.invalid:6333".to_string()]);
    }

    #[test]
    fn lock_names_are_sorted_without_repeats_and_keep_the_identitys_old_name() {
        let keys = LockKeys::new("qdrant process x", "http://127.0.0.1:1", "127.0.0.1", 1);
        let names = keys.lock_names("restore", &["c"]);
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), 3, "{keys:?}");
        // A run of an older aimem locked on the identity alone: it still meets this one.
        assert!(names.contains(&crate::workspace::runs::lock_name(
            "restore",
            &["qdrant process x", "c"]
        )));
    }
}
