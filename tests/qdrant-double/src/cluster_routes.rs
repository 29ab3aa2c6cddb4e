//! The REST endpoints that differ on a peer of a [`crate::Cluster`]: the cluster views,
//! collections over the shared state, shard keys, point counts over every shard, and the shard
//! snapshot endpoints (docs/qdrant.md, "Shard snapshots", "Distributed mode"). Everything else
//! is served by the single-node routes over the peer's local view (its own shards' points),
//! which [`sync_peer`] keeps current.

use std::collections::BTreeSet;
use std::fs;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Value, json};

use crate::cluster::{ClusterCollection, ClusterState, PeerLink, Replica};
use crate::faults::LateAnswer;
use crate::http::{BodyReader, Request, Response};
use crate::multipart::{self, MultipartError};
use crate::points;
use crate::routes::{
    self, Failure, Flags, RecoveryGuard, accepted, error, not_found_collection, ok, read_json,
};
use crate::server::{Shared, lock};
use crate::snapshot::{self, HashingWriter};
use crate::state;

/// More shards than this in one request are refused (a hostile count must not make the double
/// allocate without bound).
const MAX_SHARDS: u32 = 1024;

/// `Ok(answer)`, or `Err(())` when the single-node routes answer (over the local view).
pub(crate) fn handle<'s>(
    shared: &'s Shared,
    link: &'s PeerLink,
    req: &Request,
    body: &mut BodyReader<'_>,
    flags: &Flags,
    t: Instant,
    later: &mut Option<routes::Deferred<'s>>,
) -> Result<Response, ()> {
    let seg: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let method = req.method.to_ascii_uppercase();
    let resp = match (method.as_str(), seg.as_slice()) {
        ("GET", ["cluster"]) => ok(cluster_status(link), t),
        ("GET", ["collections"]) => {
            let list: Vec<Value> = link
                .lock()
                .collections
                .keys()
                .map(|name| json!({ "name": name }))
                .collect();
            ok(json!({ "collections": list }), t)
        }
        ("GET", ["collections", c]) => {
            let mut st = link.lock();
            let name = resolved(&st, c);
            let Some(col) = st.collections.get(&name) else {
                return Ok(error(404, &not_found_collection(c), t));
            };
            let mut info = col.as_collection(col.all_points()).info();
            // This peer's replicas build their vector index: yellow meanwhile.
            let peer = link.peer_id;
            if let Some(left) = st.indexing.get_mut(&(name.clone(), peer))
                && *left > 0
            {
                *left -= 1;
                info["status"] = json!("yellow");
            }
            if let Some(statuses) = st.indexing_statuses.get_mut(&name) {
                let status = info["status"].as_str().unwrap_or_default().to_string();
                statuses.entry(peer).or_default().push(status);
            }
            ok(state::info_for_version(info, &shared.config.version), t)
        }
        ("GET", ["collections", c, "exists"]) => {
            let exists = link.lock().collections.contains_key(*c);
            ok(json!({ "exists": exists }), t)
        }
        ("PUT", ["collections", c]) => create_collection(link, c, body, t),
        ("PATCH", ["collections", c]) => {
            let value = match read_json(body, false) {
                Ok(v) => v,
                Err(msg) => return Ok(error(400, &msg, t)),
            };
            if let Err(msg) = state::validate_update(&value) {
                return Ok(error(400, &msg, t));
            }
            let mut st = link.lock();
            let name = resolved(&st, c);
            let peers = st.peer_ids();
            let Some(col) = st.collections.get_mut(&name) else {
                return Ok(error(404, &not_found_collection(c), t));
            };
            let threshold = |col: &ClusterCollection| {
                col.config
                    .pointer("/optimizer_config/indexing_threshold")
                    .and_then(Value::as_u64)
            };
            let before = threshold(col);
            state::apply_update(&mut col.config, &value);
            let starts_indexing = before == Some(0) && threshold(col).is_some_and(|t| t > 0);
            let has_points = !col.all_points().is_empty();
            st.commit += 1;
            // Every peer builds the index of the replicas it holds.
            if starts_indexing && has_points {
                st.forget_indexing(&name);
                for peer in peers {
                    st.indexing
                        .insert((name.clone(), peer), shared.config.indexing_reads);
                }
                st.indexing_statuses.insert(name, Default::default());
            }
            ok(json!(true), t)
        }
        ("DELETE", ["collections", c]) => {
            let mut st = link.lock();
            let removed = st.collections.remove(*c).is_some();
            st.forget_indexing(c);
            crate::aliases::drop_collection(&mut st.aliases, c);
            st.commit += 1;
            ok(json!(removed), t)
        }
        ("GET", ["collections", c, "cluster"]) => match link.lock().collections.get(*c) {
            Some(col) => ok(col.cluster_view(link.peer_id), t),
            None => error(404, &not_found_collection(c), t),
        },
        ("GET", ["collections", c, "shards"]) => match link.lock().collections.get(*c) {
            Some(col) => {
                let keys: Vec<Value> = col.keys.iter().map(|k| json!({"key": k})).collect();
                ok(json!({"shard_keys": keys}), t)
            }
            None => error(404, &not_found_collection(c), t),
        },
        ("PUT", ["collections", c, "shards"]) => create_shard_key(link, c, body, t),
        ("POST", ["collections", c, "points", "count"]) => count(link, req, c, body, t),
        ("POST", ["collections", c, "points", "scroll"]) => read(link, c, body, t, points::scroll),
        ("POST", ["collections", c, "points"]) => read(link, c, body, t, points::retrieve),
        ("GET", ["aliases"]) => ok(crate::aliases::listed(&link.lock().aliases, None), t),
        ("GET", ["collections", c, "aliases"]) => {
            let st = link.lock();
            match st.collections.contains_key(*c) {
                true => ok(crate::aliases::listed(&st.aliases, Some(c)), t),
                false => error(404, &not_found_collection(c), t),
            }
        }
        ("POST", ["collections", "aliases"]) => {
            let value = match read_json(body, false) {
                Ok(v) => v,
                Err(msg) => return Ok(error(400, &msg, t)),
            };
            let mut st = link.lock();
            let ClusterState {
                aliases,
                collections,
                ..
            } = &mut *st;
            match crate::aliases::change(aliases, &value, |c| collections.contains_key(c)) {
                Ok(()) => {
                    st.commit += 1;
                    ok(json!(true), t)
                }
                Err((code, msg)) => error(code, &msg, t),
            }
        }
        ("PUT", ["collections", c, "points"]) => update_points(shared, link, req, c, body, t, true),
        ("POST", ["collections", c, "points", "delete"]) => {
            update_points(shared, link, req, c, body, t, false)
        }
        ("PUT", ["collections", c, "index"]) => {
            let _turn = lock(&shared.peer_sync);
            refresh_peer(shared, link);
            let resp = routes::create_index(shared, req, c, body, t, false);
            // The index belongs to the collection, not to this peer. (Never hold the peer's
            // state while taking the cluster's.)
            let schema = lock(&shared.state)
                .collections
                .get(*c)
                .map(|l| l.schema.clone());
            if let (Some(schema), Some(col)) = (schema, link.lock().collections.get_mut(*c)) {
                col.schema = schema;
            }
            resp
        }
        ("GET", ["collections", c, "shards", id, "snapshot"])
            if !shared.config.no_streamed_shard_snapshot =>
        {
            crate::stream_shard::cluster_peer(shared, link, c, id)
        }
        (_, ["collections", c, "shards", id, "snapshots", rest @ ..]) => {
            let Ok(id) = id.parse::<u32>() else {
                return Ok(error(
                    404,
                    &format!("Not found: no route for {} {}", req.method, req.raw_path),
                    t,
                ));
            };
            shard_snapshots(
                shared, link, req, &method, c, id, rest, body, flags, t, later,
            )
        }
        _ => return Err(()),
    };
    Ok(resp)
}

/// Makes the peer's single-node state its local view of the cluster: every collection, with
/// the points of this peer's replicas.
pub(crate) fn sync_peer(shared: &Shared, link: &PeerLink) {
    let _turn = lock(&shared.peer_sync);
    refresh_peer(shared, link);
}

/// [`sync_peer`] for a caller that holds `shared.peer_sync` already.
fn refresh_peer(shared: &Shared, link: &PeerLink) {
    let views: Vec<(String, state::Collection)> = link
        .lock()
        .collections
        .iter()
        .map(|(name, col)| {
            (
                name.clone(),
                col.as_collection(col.local_points(link.peer_id)),
            )
        })
        .collect();
    let mut st = lock(&shared.state);
    st.collections = views.into_iter().collect();
}

fn cluster_status(link: &PeerLink) -> Value {
    let st = link.lock();
    let peers: serde_json::Map<String, Value> = st
        .peers
        .iter()
        .map(|p| (p.peer_id.to_string(), json!({"uri": p.uri})))
        .collect();
    let leader = st.peers.first().map_or(link.peer_id, |p| p.peer_id);
    let role = if leader == link.peer_id {
        "Leader"
    } else {
        "Follower"
    };
    let now = time::OffsetDateTime::now_utc();
    json!({
        "status": "enabled",
        "peer_id": link.peer_id,
        "peers": peers,
        "raft_info": {
            "term": 1, "commit": st.commit, "pending_operations": 0, "leader": leader,
            "role": role, "is_voter": true,
        },
        "consensus_thread_status": {
            "consensus_thread_status": "working",
            "last_update": format!("{}Z", routes::format_ts(now, '-', 'T', ':')),
        },
        "message_send_failures": {},
    })
}

fn create_collection(link: &PeerLink, c: &str, body: &mut BodyReader<'_>, t: Instant) -> Response {
    if !routes::valid_collection_name(c) {
        return error(
            422,
            &format!(
                "Validation error in path parameters: [name: collection name {c:?} is invalid]"
            ),
            t,
        );
    }
    let bytes = match body.read_all(64 * 1024 * 1024) {
        Ok(b) => b,
        Err(e) => return error(400, &format!("Format error in JSON body: {e}"), t),
    };
    let config = match state::config_from_create(&bytes) {
        Ok(config) => config,
        Err(msg) => return error(400, &msg, t),
    };
    let mut st = link.lock();
    if st.collections.contains_key(c) {
        return error(
            409,
            &format!("Wrong input: Collection `{c}` already exists!"),
            t,
        );
    }
    let mut col = ClusterCollection::new(config, Default::default(), BTreeSet::new());
    if col.shard_number() > MAX_SHARDS {
        return error(
            400,
            &format!("Bad request: qdrant-double supports at most {MAX_SHARDS} shards"),
            t,
        );
    }
    // Custom sharding: no shards until keys are created.
    if !col.custom() {
        let (n, r) = (col.shard_number(), col.replication_factor());
        let init = Instant::now() + st.timing.init;
        col.add_shards(&st.peer_ids(), n, r, None, None, Some(init));
    }
    st.forget_indexing(c);
    st.collections.insert(c.to_string(), col);
    st.commit += 1;
    ok(json!(true), t)
}

/// A shard key is a string or an unsigned integer.
fn valid_key(key: &Value) -> bool {
    key.is_string() || key.is_u64()
}

fn create_shard_key(link: &PeerLink, c: &str, body: &mut BodyReader<'_>, t: Instant) -> Response {
    let value = match read_json(body, false) {
        Ok(v) => v,
        Err(msg) => return error(400, &msg, t),
    };
    let key = value["shard_key"].clone();
    if !valid_key(&key) {
        return error(
            400,
            "Format error in JSON body: shard_key must be a string or an unsigned integer",
            t,
        );
    }
    let mut st = link.lock();
    let peers = st.peer_ids();
    let init = Instant::now() + st.timing.init;
    let Some(col) = st.collections.get_mut(c) else {
        return error(404, &not_found_collection(c), t);
    };
    if !col.custom() {
        return error(
            400,
            "Bad request: Shard Key can only be created for collections with custom sharding",
            t,
        );
    }
    if col.keys.contains(&key) {
        return error(
            400,
            &format!("Bad request: Shard key {key} already exists"),
            t,
        );
    }
    let count = match &value["shards_number"] {
        Value::Null => col.shard_number(),
        given => match given.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (1..=MAX_SHARDS).contains(&n) => n,
            _ => {
                return error(
                    422,
                    &format!(
                        "Validation error in JSON body: [shards_number: must be from 1 to {MAX_SHARDS}]"
                    ),
                    t,
                );
            }
        },
    };
    let replication = value["replication_factor"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or_else(|| col.replication_factor());
    let placement: Option<Vec<u64>> = value["placement"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect());
    if let Some(unknown) = placement.iter().flatten().find(|p| !peers.contains(p)) {
        return error(
            400,
            &format!("Bad request: Peer {unknown} does not exist"),
            t,
        );
    }
    col.add_shards(
        &peers,
        count,
        replication,
        Some(key),
        placement.as_deref(),
        Some(init),
    );
    st.commit += 1;
    ok(json!(true), t)
}

/// The collection `c` names on the cluster (an alias names its collection).
fn resolved(st: &ClusterState, c: &str) -> String {
    crate::aliases::resolve(&st.aliases, c, st.collections.contains_key(c))
}

/// `POST /collections/{c}/points/scroll` and retrieve (`POST /collections/{c}/points`): every
/// selected shard read through this peer (its own replica first).
fn read(
    link: &PeerLink,
    c: &str,
    body: &mut BodyReader<'_>,
    t: Instant,
    answer: impl Fn(&points::View<'_>, &Value) -> Result<Value, String>,
) -> Response {
    let value = match read_json(body, true) {
        Ok(v) => v,
        Err(msg) => return error(400, &msg, t),
    };
    let st = link.lock();
    let Some(col) = st.collections.get(&resolved(&st, c)) else {
        return error(404, &not_found_collection(c), t);
    };
    let ids = match col.selected_shards(&value["shard_key"], "Bad request") {
        Ok(ids) => ids,
        Err(msg) => return error(400, &msg, t),
    };
    match answer(&col.view(link.peer_id, &ids), &value) {
        Ok(result) => ok(result, t),
        Err(msg) => error(400, &msg, t),
    }
}

/// `POST /collections/{c}/points/count`: exact over every selected shard read through this
/// peer (its own replica first), or with `?consistency=all` the smallest count of every
/// shard's replicas.
fn count(
    link: &PeerLink,
    req: &Request,
    c: &str,
    body: &mut BodyReader<'_>,
    t: Instant,
) -> Response {
    let value = match read_json(body, true) {
        Ok(v) => v,
        Err(msg) => return error(400, &msg, t),
    };
    let every_replica = match req.query("consistency") {
        None => false,
        Some("all") => true,
        Some("majority" | "quorum") => false,
        Some(n) if n.parse::<u32>().is_ok() => false,
        Some(other) => {
            return error(
                400,
                &format!("Format error in query parameters: unknown read consistency {other:?}"),
                t,
            );
        }
    };
    let st = link.lock();
    let Some(col) = st.collections.get(&resolved(&st, c)) else {
        return error(404, &not_found_collection(c), t);
    };
    let ids = match col.selected_shards(&value["shard_key"], "Bad request") {
        Ok(ids) => ids,
        Err(msg) => return error(400, &msg, t),
    };
    if !every_replica {
        return match points::count(&col.view(link.peer_id, &ids), &value) {
            Ok(n) => ok(json!({ "count": n }), t),
            Err(msg) => error(400, &msg, t),
        };
    }
    let mut total = 0;
    for (id, shard) in ids
        .iter()
        .filter_map(|id| col.shards.get(id).map(|s| (id, s)))
    {
        if shard.count_all_replicas().is_err() {
            return error(
                500,
                &format!(
                    "Service internal error: The replica set for shard {id} on peer {} does not have enough active replicas",
                    link.peer_id
                ),
                t,
            );
        }
        // The smallest count among the readable replicas, as Qdrant resolves counts.
        let mut smallest = None;
        for replica in shard.replicas.values().filter(|r| r.is_active()) {
            let view = points::View {
                config: &col.config,
                ids: replica.points.clone(),
                records: &col.records,
                shard_keys: Default::default(),
            };
            match points::count(&view, &value) {
                Ok(n) => smallest = Some(smallest.map_or(n, |m: usize| m.min(n))),
                Err(msg) => return error(400, &msg, t),
            }
        }
        total += smallest.unwrap_or(0);
    }
    ok(json!({ "count": total }), t)
}

/// Upsert (`PUT /collections/{c}/points`) or delete (`POST …/points/delete`) on the cluster:
/// a point goes to one shard of the selected ones (custom sharding: of its key) by its id,
/// into every replica of that shard; a delete takes the points from every selected shard.
/// With `wait=false` it is applied at once all the same.
fn update_points(
    shared: &Shared,
    link: &PeerLink,
    req: &Request,
    c: &str,
    body: &mut BodyReader<'_>,
    t: Instant,
    upsert: bool,
) -> Response {
    let value = match read_json(body, false) {
        Ok(v) => v,
        Err(msg) => return error(400, &msg, t),
    };
    {
        let mut st = link.lock();
        let name = resolved(&st, c);
        let Some(col) = st.collections.get_mut(&name) else {
            return error(404, &not_found_collection(c), t);
        };
        let applied = match upsert {
            true => col.upsert(&value, &shared.config.version),
            false => col.delete(link.peer_id, &value),
        };
        if let Err(msg) = applied {
            return error(400, &msg, t);
        }
    }
    let result = routes::update_result(&mut lock(&shared.state), req);
    ok(result, t)
}

fn shard_dir(shared: &Shared, c: &str, id: u32) -> PathBuf {
    shared.snapshot_dir(c).join("shards").join(id.to_string())
}

/// 404 unless the collection and the shard exist.
fn check_shard(link: &PeerLink, c: &str, id: u32) -> Result<ClusterCollection, Failure> {
    let st = link.lock();
    let col = st
        .collections
        .get(c)
        .ok_or_else(|| (404, not_found_collection(c)))?;
    if !col.shards.contains_key(&id) {
        return Err((404, format!("Not found: Shard {id} not found")));
    }
    Ok(col.clone())
}

#[allow(clippy::too_many_arguments)]
fn shard_snapshots<'s>(
    shared: &'s Shared,
    link: &'s PeerLink,
    req: &Request,
    method: &str,
    c: &str,
    id: u32,
    rest: &[&str],
    body: &mut BodyReader<'_>,
    flags: &Flags,
    t: Instant,
    later: &mut Option<routes::Deferred<'s>>,
) -> Response {
    let answer = |result: Result<Value, Failure>| match (req.wait(true), result) {
        (false, _) => accepted(t),
        (true, Ok(v)) => ok(v, t),
        (true, Err((code, msg))) => error(code, &msg, t),
    };
    match (method, rest) {
        ("POST", []) => answer(create_shard_snapshot(shared, link, c, id, flags)),
        ("GET", []) => match check_shard(link, c, id) {
            Ok(_) => ok(
                Value::Array(routes::list_snapshot_dir(
                    &shard_dir(shared, c, id),
                    flags.wrong_checksum,
                )),
                t,
            ),
            Err((code, msg)) => error(code, &msg, t),
        },
        ("POST", ["upload"]) => {
            upload_shard_snapshot(shared, link, req, c, id, body, flags, t, later)
        }
        ("GET", [name]) => match check_shard(link, c, id) {
            Ok(_) => routes::serve_snapshot_file(req, &shard_dir(shared, c, id), name, flags),
            Err((code, msg)) => Response::plain(code, &msg),
        },
        ("DELETE", [name]) => answer(
            check_shard(link, c, id)
                .and_then(|_| routes::delete_snapshot_file(&shard_dir(shared, c, id), name))
                .map(|()| json!(true)),
        ),
        _ => error(
            404,
            &format!("Not found: no route for {} {}", req.method, req.raw_path),
            t,
        ),
    }
}

fn create_shard_snapshot(
    shared: &Shared,
    link: &PeerLink,
    c: &str,
    id: u32,
    flags: &Flags,
) -> Result<Value, Failure> {
    let col = check_shard(link, c, id)?;
    let local = col
        .shards
        .get(&id)
        .is_some_and(|s| s.replicas.contains_key(&link.peer_id));
    if !local {
        return Err((
            400,
            format!("Wrong input: Shard {id} is not a local or queue proxy shard"),
        ));
    }
    let io_err = |e: std::io::Error| (500, format!("Service internal error: {e}"));
    let filler = lock(&shared.state).fillers.get(c).copied().unwrap_or(0);
    let started = Instant::now();
    // The real naming (docs/qdrant.md, "Snapshot names"): no peer id, unlike collection
    // snapshots.
    let name = format!(
        "{c}-shard-{id}-{}.snapshot",
        routes::format_ts(routes::timestamp_now(), '-', '-', '-')
    );
    fs::create_dir_all(shared.tmp_dir()).map_err(io_err)?;
    let dir = shard_dir(shared, c, id);
    fs::create_dir_all(&dir).map_err(io_err)?;
    let tmp = shared
        .tmp_dir()
        .join(format!("{name}.{}.tmp", shared.unique()));
    let sha = match crate::cluster::write_shard_snapshot(&tmp, &col, id, link.peer_id, filler) {
        Ok(sha) => sha,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(e));
        }
    };
    let size = fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
    crate::pace::stretch(started, size, shared.config.snapshot_create_rate);
    let dest = dir.join(&name);
    fs::rename(&tmp, &dest).map_err(io_err)?;
    let reported = if flags.wrong_checksum {
        routes::wrong(&sha)
    } else {
        sha
    };
    fs::write(routes::checksum_path(&dest), &reported).map_err(io_err)?;
    let meta = fs::metadata(&dest).map_err(io_err)?;
    let mut desc = json!({
        "name": name,
        "creation_time": routes::creation_time(&meta),
        "size": meta.len(),
        "checksum": reported,
    });
    if let Some(name) = &flags.snapshot_named {
        desc["name"] = json!(name);
    }
    Ok(desc)
}

#[allow(clippy::too_many_arguments)]
fn upload_shard_snapshot<'s>(
    shared: &'s Shared,
    link: &'s PeerLink,
    req: &Request,
    c: &str,
    id: u32,
    body: &mut BodyReader<'_>,
    flags: &Flags,
    t: Instant,
    later: &mut Option<routes::Deferred<'s>>,
) -> Response {
    let priority = req.query("priority").unwrap_or("snapshot").to_string();
    if !["no_sync", "snapshot", "replica"].contains(&priority.as_str()) {
        return error(
            400,
            &format!(
                "Format error in query parameters: unknown variant `{priority}`, expected one of `no_sync`, `snapshot`, `replica`"
            ),
            t,
        );
    }
    let Some(boundary) = req.header("content-type").and_then(multipart::boundary) else {
        return Response::plain(400, "Could not find boundary in Content-Type header");
    };
    // The whole form is spooled before the handler runs; the file is not kept afterwards.
    let spool = fs::create_dir_all(shared.upload_dir())
        .and_then(|()| tempfile::NamedTempFile::new_in(shared.upload_dir()));
    let spool = match spool {
        Ok(f) => f,
        Err(e) => return error(500, &format!("Service internal error: {e}"), t),
    };
    let mut writer = HashingWriter::new(BufWriter::with_capacity(256 * 1024, spool.as_file()));
    let field = multipart::extract_field(&mut *body, &boundary, "snapshot", &mut writer);
    let (buffered, sha) = writer.finish();
    let flushed = buffered.into_inner().map_err(|e| e.into_error());
    match (field, flushed) {
        (Ok(_), Ok(_)) => {}
        (Err(MultipartError::MissingField), _) => {
            return Response::plain(400, "Required field is missing: snapshot");
        }
        (Err(MultipartError::Malformed(msg)), _) => return Response::plain(400, &msg),
        (Err(MultipartError::Io(e)), _) | (_, Err(e)) => {
            return Response::plain(400, &format!("Multipart stream is incomplete: {e}"));
        }
    }
    if let Some(sum) = req.query("checksum")
        && !sum.trim().eq_ignore_ascii_case(&sha)
    {
        return error(
            400,
            &format!("Checksum mismatch: expected {sha}, actual {sum}"),
            t,
        );
    }
    if let Err((code, msg)) = check_shard(link, c, id) {
        return error(code, &msg, t);
    }
    // SlowRecovery with a lost or gateway answer: the recovery runs on after the answer, like
    // the real server's spawned task (docs/qdrant.md, "Uploads and recovery").
    if let Some((takes, answer)) = &flags.slow_recovery
        && !matches!(answer, LateAnswer::Wait)
    {
        let (collection, fail_after_clear) = (c.to_string(), flags.upload_fail_after_clear);
        let recover = move || {
            let flags = Flags {
                upload_fail_after_clear: fail_after_clear,
                ..Flags::default()
            };
            recover_shard(
                shared,
                link,
                &collection,
                id,
                spool.path(),
                &priority,
                &flags,
            )
        };
        *later = Some(routes::Deferred::shard(
            shared,
            c,
            *takes,
            Box::new(recover),
        ));
        return match answer {
            LateAnswer::Gateway { code, body } => Response::plain(*code, body),
            _ => Response::dropped(),
        };
    }
    let result = {
        let _running = RecoveryGuard::new(shared, c);
        if let Some((takes, LateAnswer::Wait)) = &flags.slow_recovery {
            std::thread::sleep(*takes);
        }
        recover_shard(shared, link, c, id, spool.path(), &priority, flags)
    };
    match (req.wait(true), result) {
        (false, _) => accepted(t),
        (true, Ok(())) => ok(json!(true), t),
        (true, Err((code, msg))) => error(code, &msg, t),
    }
}

/// Installs the archive's points as this peer's replica of shard `id` (creating the replica
/// when the peer had none), as the real server does (checked on real clusters):
/// `priority=snapshot` makes the other replicas that are `Active` now `Dead` a moment later (a
/// transfer then refills them from this one), and leaves the others, `Initializing` ones
/// included, alone;
/// `replica` makes this replica `Dead` when another is `Active` (it is then refilled from
/// there); `no_sync` changes no other replica.
fn recover_shard(
    shared: &Shared,
    link: &PeerLink,
    c: &str,
    id: u32,
    path: &std::path::Path,
    priority: &str,
    flags: &Flags,
) -> Result<(), Failure> {
    let started = Instant::now();
    let parsed = snapshot::read_snapshot(path).map_err(|msg| (500, msg))?;
    let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    crate::pace::stretch(started, size, shared.config.snapshot_recover_rate);
    if !parsed.config["params"].is_object() {
        return Err((500, snapshot::MALFORMED.to_string()));
    }
    let mut st = link.lock();
    let timing = st.timing;
    let col = st
        .collections
        .get_mut(c)
        .ok_or_else(|| (404, not_found_collection(c)))?;
    let ours = &col.config["params"]["vectors"];
    let theirs = &parsed.config["params"]["vectors"];
    if ours != theirs {
        return Err((
            400,
            format!(
                "Wrong input: Snapshot is not compatible with existing collection: Collection vectors: {} Snapshot Vectors: {}",
                state::debug_vectors(ours),
                state::debug_vectors(theirs)
            ),
        ));
    }
    let shard = col
        .shards
        .get_mut(&id)
        .ok_or_else(|| (404, format!("Not found: Shard {id} not found")))?;
    let now = Instant::now();
    let me = link.peer_id;
    let replica = shard
        .replicas
        .entry(me)
        .or_insert_with(|| Replica::active(BTreeSet::new()));
    if flags.upload_fail_after_clear {
        replica.points.clear();
        replica.kill(now, timing);
        return Err((
            500,
            format!(
                "Service internal error: failed to recover shard {id} of collection {c} from the snapshot (injected by qdrant-double); the replica was cleared and is now Dead"
            ),
        ));
    }
    replica.recovered(parsed.points.clone());
    if let Some(after) = flags.late_replica_reset {
        replica.pending = Some(crate::cluster::Pending::Reset(now + after));
    }
    apply_priority(shard, me, priority, now, timing);
    col.adopt_records(&parsed.points, parsed.records);
    if col.empty_fields.is_empty() {
        col.empty_fields = parsed.empty_fields;
    }
    st.commit += 1;
    Ok(())
}

/// What a recovery with `priority` does to the other replicas of a shard, once this peer's
/// replica is recovered and `Active` (only `Active` others count, as in the real server).
fn apply_priority(
    shard: &mut crate::cluster::Shard,
    me: u64,
    priority: &str,
    now: Instant,
    timing: crate::cluster::ReplicaTiming,
) {
    let others_active = shard
        .replicas
        .iter()
        .any(|(peer, r)| *peer != me && r.is_active());
    match priority {
        "snapshot" => {
            for (peer, other) in shard.replicas.iter_mut() {
                if *peer != me && other.is_active() {
                    other.pending = Some(crate::cluster::Pending::MarkDead(now + timing.consensus));
                }
            }
        }
        "replica" if others_active => {
            if let Some(mine) = shard.replicas.get_mut(&me) {
                mine.kill(now, timing);
            }
        }
        _ => {}
    }
}

/// Points (and their records) per shard id in a collection snapshot archive
/// (`<id>/segments/double-points.json`).
type ShardPoints = (u32, BTreeSet<u64>, std::collections::BTreeMap<u64, Value>);

fn points_per_shard(path: &std::path::Path) -> Result<Vec<ShardPoints>, Failure> {
    use std::io::Read;
    let malformed = |_| (500, snapshot::MALFORMED.to_string());
    let file = fs::File::open(path).map_err(|e| (500, format!("Service internal error: {e}")))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut out = Vec::new();
    for entry in archive.entries().map_err(malformed)? {
        let mut entry = entry.map_err(malformed)?;
        let name = entry
            .path()
            .map_err(malformed)?
            .to_string_lossy()
            .into_owned();
        let name = name.trim_start_matches("./");
        let Some(id) = name
            .strip_suffix(&format!("/{}", snapshot::POINTS_ENTRY))
            .and_then(|id| id.parse::<u32>().ok())
        else {
            continue;
        };
        let mut text = Vec::new();
        entry.read_to_end(&mut text).map_err(malformed)?;
        let v: Value =
            serde_json::from_slice(&text).map_err(|_| (500, snapshot::MALFORMED.to_string()))?;
        let ids = v.get("ids").unwrap_or(&v);
        let points = ids
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect();
        out.push((id, points, snapshot::records_of_entry(&v)));
    }
    Ok(out)
}

/// A collection snapshot recovered (upload or `recover`) on a peer of a cluster: every shard
/// of the file that has data gets this peer's replica with the file's points (created when the
/// peer had none), and the other replicas of those shards are treated by `priority` as in
/// [`recover_shard`]; shards without data in the file keep their state. A missing collection
/// is created from the snapshot's config first.
pub(crate) fn recover_collection(
    shared: &Shared,
    link: &PeerLink,
    c: &str,
    path: &std::path::Path,
    fail_after_clear: bool,
    priority: &str,
) -> Result<(), Failure> {
    let started = Instant::now();
    let parsed = snapshot::read_snapshot(path).map_err(|msg| (500, msg))?;
    let shards = points_per_shard(path)?;
    let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    crate::pace::stretch(started, size, shared.config.snapshot_recover_rate);
    if !parsed.config["params"].is_object() {
        return Err((500, snapshot::MALFORMED.to_string()));
    }
    let mut st = link.lock();
    let peers = st.peer_ids();
    let timing = st.timing;
    let now = Instant::now();
    let col = match st.collections.entry(c.to_string()) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => {
            let config = state::config_from_snapshot(&parsed.config);
            let mut col = ClusterCollection::new(config, parsed.schema.clone(), BTreeSet::new());
            if !col.custom() {
                let (n, r) = (col.shard_number(), col.replication_factor());
                col.add_shards(&peers, n, r, None, None, Some(now + timing.init));
            }
            e.insert(col)
        }
    };
    let ours = &col.config["params"];
    let theirs = &parsed.config["params"];
    if ours["vectors"] != theirs["vectors"] {
        return Err((
            400,
            format!(
                "Wrong input: Snapshot is not compatible with existing collection: Collection vectors: {} Snapshot Vectors: {}",
                state::debug_vectors(&ours["vectors"]),
                state::debug_vectors(&theirs["vectors"])
            ),
        ));
    }
    if ours["shard_number"] != theirs["shard_number"] {
        return Err((
            400,
            format!(
                "Wrong input: Snapshot is not compatible with existing collection: Collection shard number: {} Snapshot shard number: {}",
                ours["shard_number"], theirs["shard_number"]
            ),
        ));
    }
    let me = link.peer_id;
    for (id, points, records) in shards {
        let Some(shard) = col.shards.get_mut(&id) else {
            continue;
        };
        let replica = shard
            .replicas
            .entry(me)
            .or_insert_with(|| Replica::active(BTreeSet::new()));
        if fail_after_clear {
            replica.points.clear();
            replica.kill(now, timing);
            return Err((
                500,
                format!(
                    "Service internal error: failed to restore shard {id} of the collection from the snapshot (injected by qdrant-double); the replica was cleared and is now Dead"
                ),
            ));
        }
        replica.recovered(points.clone());
        apply_priority(shard, me, priority, now, timing);
        col.adopt_records(&points, records);
    }
    col.empty_fields = parsed.empty_fields;
    st.commit += 1;
    Ok(())
}
