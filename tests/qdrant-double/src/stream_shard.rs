//! The streamed shard snapshot, `GET /collections/{c}/shards/{id}/snapshot` (singular): the
//! shard's archive made while it is sent, nothing stored on the server. Checked on real Qdrant
//! 1.16.3 and 1.18.3 (`snapshots/stream-shard-0.json`, `stream-shard-404.json`): 200,
//! `transfer-encoding: chunked` and no content-length, `application/octet-stream`, and
//! `content-disposition: attachment; filename="{c}-shard-{id}-{YYYY-MM-DD-HH-MM-SS}.snapshot"`;
//! the body is a plain tar of the shard directory at the archive root (the same entries as the
//! double's stored shard snapshots). The double never compresses it. An unknown collection or
//! shard is a plain-text 404. With [`crate::Config::no_streamed_shard_snapshot`] the route does
//! not exist (an older server): the double's 404 for unknown routes.

use std::collections::BTreeMap;

use crate::cluster::{ClusterCollection, PeerLink, Replica, Shard};
use crate::http::{BodyStream, Response, ResponseBody};
use crate::routes::{self, not_found_collection};
use crate::server::{Shared, lock};
use crate::state::Collection;

fn shard_not_found(shard: &str) -> Response {
    Response::plain(404, &format!("Not found: shard {shard} not found"))
}

/// Single-node mode: shards `0..shard_number` of the collection (custom sharding: none), each
/// with its points ([`Collection::shard_points`]).
pub(crate) fn single_node(shared: &Shared, c: &str, shard: &str) -> Response {
    let (col, filler) = {
        let st = lock(&shared.state);
        let Some(col) = st.collections.get(c) else {
            return Response::plain(404, &not_found_collection(c));
        };
        (col.clone(), st.fillers.get(c).copied().unwrap_or(0))
    };
    let shard_number = if col.custom_sharding() {
        0
    } else {
        col.shard_number()
    };
    let Some(id) = shard
        .parse::<u32>()
        .ok()
        .filter(|s| u64::from(*s) < shard_number)
    else {
        return shard_not_found(shard);
    };
    let peer = shared.config.peer_id;
    stream(shared, c, id, as_cluster(&col, id, peer), peer, filler)
}

/// Multi-peer mode: this peer's replica of the shard.
pub(crate) fn cluster_peer(shared: &Shared, link: &PeerLink, c: &str, shard: &str) -> Response {
    let Some(col) = link.lock().collections.get(c).cloned() else {
        return Response::plain(404, &not_found_collection(c));
    };
    let Some(id) = shard
        .parse::<u32>()
        .ok()
        .filter(|s| col.shards.contains_key(s))
    else {
        return shard_not_found(shard);
    };
    if !col.shards[&id].replicas.contains_key(&link.peer_id) {
        // As the double's shard snapshot creation answers (not checked on a real cluster).
        return Response::plain(
            400,
            &format!("Wrong input: Shard {id} is not a local or queue proxy shard"),
        );
    }
    let filler = lock(&shared.state).fillers.get(c).copied().unwrap_or(0);
    stream(shared, c, id, col, link.peer_id, filler)
}

/// A single node's collection as one peer holding shard `id` (the only one the archive needs).
pub(crate) fn as_cluster(col: &Collection, id: u32, peer: u64) -> ClusterCollection {
    let mut out = ClusterCollection::new(
        col.config.clone(),
        col.schema.clone(),
        col.empty_fields.clone(),
    );
    let points = col.shard_points(id);
    out.records = points
        .iter()
        .filter_map(|p| col.records.get(p).map(|r| (*p, r.clone())))
        .collect();
    out.shards.insert(
        id,
        Shard {
            key: None,
            replicas: BTreeMap::from([(peer, Replica::active(points))]),
        },
    );
    out
}

fn stream(
    shared: &Shared,
    c: &str,
    id: u32,
    col: ClusterCollection,
    peer: u64,
    filler: u64,
) -> Response {
    // As on real 1.16.3 and 1.18.3: a stream puts the collection among `/metrics`'
    // `snapshot_*{id="c"}` series (at 0), without counting a created snapshot.
    lock(&shared.state)
        .snapshot_telemetry
        .entry(c.to_string())
        .or_default();
    let name = format!(
        "{c}-shard-{id}-{}.snapshot",
        routes::format_ts(routes::timestamp_now(), '-', '-', '-')
    );
    let write = Box::new(move |out: &mut dyn std::io::Write| {
        crate::cluster::stream_shard_snapshot(out, &col, id, peer, filler)
    });
    Response {
        status: 200,
        headers: vec![
            (
                "content-type".to_string(),
                "application/octet-stream".to_string(),
            ),
            (
                "content-disposition".to_string(),
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body: ResponseBody::Stream(BodyStream::new(write, shared.config.snapshot_create_rate)),
    }
}
