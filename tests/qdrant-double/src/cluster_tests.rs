//! Multi-peer mode over real sockets, with a plain one-request-per-connection client.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::snapshot::{POINTS_ENTRY, read_snapshot};
use crate::{Cluster, Config, info_from_fixture};

struct Resp {
    status: u16,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// `url` is `http://host:port`.
fn request(url: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let host = url.strip_prefix("http://").expect("http url");
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(body).expect("body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    Resp {
        status,
        body: raw[split + 4..].to_vec(),
    }
}

fn get(url: &str, target: &str) -> Resp {
    request(url, "GET", target, &[], b"")
}

fn send_json(url: &str, method: &str, target: &str, body: &Value) -> Resp {
    let bytes = serde_json::to_vec(body).expect("json");
    request(
        url,
        method,
        target,
        &[("Content-Type", "application/json")],
        &bytes,
    )
}

fn upload(url: &str, target: &str, file: &[u8]) -> Resp {
    let mut body = b"--XBOUNDARYX\r\nContent-Disposition: form-data; name=\"snapshot\"; filename=\"s.snapshot\"\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    body.extend_from_slice(file);
    body.extend_from_slice(b"\r\n--XBOUNDARYX--\r\n");
    request(
        url,
        "POST",
        target,
        &[("Content-Type", "multipart/form-data; boundary=XBOUNDARYX")],
        &body,
    )
}

fn fixture(path: &str) -> Value {
    let text = std::fs::read_to_string(crate::fixtures_dir().join(path)).expect("fixture");
    serde_json::from_str(&text).expect("fixture json")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("object").keys().cloned().collect()
}

fn sha(bytes: &[u8]) -> String {
    crate::snapshot::hex(&Sha256::digest(bytes))
}

fn three_peers() -> Cluster {
    let cluster = Cluster::start(3, Config::default());
    cluster.seed(
        "discussions",
        info_from_fixture("cluster/3-node-collection-info.json"),
        3,
        2,
        (1..=600).collect(),
    );
    cluster
}

/// Every (shard, peer, state) a peer's collection view shows.
fn replicas_seen(view: &Value) -> BTreeSet<(u64, u64, String)> {
    let me = view["peer_id"].as_u64().expect("peer_id");
    let local = view["local_shards"].as_array().expect("local");
    let remote = view["remote_shards"].as_array().expect("remote");
    local
        .iter()
        .map(|s| {
            (
                s["shard_id"].as_u64().expect("id"),
                me,
                s["state"].as_str().expect("state").to_string(),
            )
        })
        .chain(remote.iter().map(|s| {
            (
                s["shard_id"].as_u64().expect("id"),
                s["peer_id"].as_u64().expect("peer"),
                s["state"].as_str().expect("state").to_string(),
            )
        }))
        .collect()
}

/// Waits until every replica of every collection is `Active`.
fn wait_until_all_active(cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cluster.all_active() {
        assert!(Instant::now() < deadline, "replicas never became Active");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Files of an uncompressed tar: name → content.
fn untar(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .expect("entries")
        .map(|e| {
            let mut e = e.expect("entry");
            let name = e.path().expect("path").to_string_lossy().into_owned();
            let mut content = Vec::new();
            e.read_to_end(&mut content).expect("read");
            (name, content)
        })
        .collect()
}

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp");
    f.write_all(bytes).expect("write");
    f
}

#[test]
fn cluster_status_has_the_fixture_shape_and_p2p_uris() {
    let cluster = Cluster::start(3, Config::default());
    let expected = fixture("cluster/3-node-status.json");
    let expected = &expected["response"]["body"]["result"];
    for i in 0..3 {
        let resp = get(&cluster.url(i), "/cluster");
        assert_eq!(resp.status, 200);
        let result = &resp.json()["result"];
        assert_eq!(keys(result), keys(expected));
        assert_eq!(keys(&result["raft_info"]), keys(&expected["raft_info"]));
        assert_eq!(
            keys(&result["consensus_thread_status"]),
            keys(&expected["consensus_thread_status"])
        );
        assert_eq!(result["status"], "enabled");
        assert_eq!(result["peer_id"], json!(cluster.peer_id(i)));
        let peers = result["peers"].as_object().expect("peers");
        assert_eq!(peers.len(), 3);
        for j in 0..3 {
            let uri = peers[&cluster.peer_id(j).to_string()]["uri"]
                .as_str()
                .expect("uri");
            assert_eq!(
                uri,
                format!("http://127.0.0.{}:{}/", j + 1, cluster.port() + 2)
            );
            assert!(!uri.starts_with(&cluster.url(j)), "a P2P URI, not REST");
        }
        assert_eq!(
            cluster.url(i),
            format!("http://127.0.0.{}:{}", i + 1, cluster.port())
        );
    }
}

#[test]
fn every_peer_sees_the_same_placement_and_counts() {
    let cluster = three_peers();
    let expected = fixture("cluster/3-node-collection-cluster-peer0.json");
    let expected = &expected["response"]["body"]["result"];
    let mut seen = Vec::new();
    for i in 0..3 {
        let url = cluster.url(i);
        let view = get(&url, "/collections/discussions/cluster").json()["result"].clone();
        assert_eq!(keys(&view), keys(expected));
        assert_eq!(
            keys(&view["local_shards"][0]),
            keys(&expected["local_shards"][0])
        );
        assert_eq!(
            keys(&view["remote_shards"][0]),
            keys(&expected["remote_shards"][0])
        );
        assert_eq!(view["peer_id"], json!(cluster.peer_id(i)));
        assert_eq!(view["shard_count"], 3);
        // Two local shards each (3 shards × 2 replicas over 3 peers), and their points.
        let local = view["local_shards"].as_array().expect("local");
        assert_eq!(local.len(), 2);
        for shard in local {
            let id = shard["shard_id"].as_u64().expect("id") as u32;
            let points = cluster
                .replica_point_ids("discussions", id, cluster.peer_id(i))
                .expect("replica");
            assert_eq!(shard["points_count"], json!(points.len()));
        }
        seen.push(replicas_seen(&view));
        let count = send_json(
            &url,
            "POST",
            "/collections/discussions/points/count",
            &json!({"exact": true}),
        );
        assert_eq!(count.json()["result"]["count"], 600);
        let info = get(&url, "/collections/discussions").json()["result"].clone();
        assert_eq!(info["points_count"], 600);
        assert_eq!(info["config"]["params"]["shard_number"], 3);
        assert_eq!(info["config"]["params"]["replication_factor"], 2);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1], seen[2]);
    assert_eq!(seen[0].len(), 6);
    let placement = cluster.placement("discussions").expect("placement");
    let from_api: BTreeSet<(u64, u64, String)> = placement
        .iter()
        .flat_map(|(id, rs)| rs.iter().map(move |(p, s)| (u64::from(*id), *p, s.clone())))
        .collect();
    assert_eq!(from_api, seen[0]);
    assert_eq!(cluster.point_ids("discussions"), Some((1..=600).collect()));

    cluster.seed_ai_memory(2, 3);
    assert_eq!(cluster.collection_names().len(), 5);
    let placement = cluster.placement("github").expect("github");
    assert_eq!(placement.len(), 2);
    assert!(placement.values().all(|replicas| replicas.len() == 3));
    assert_eq!(cluster.point_ids("github"), Some((1..=30).collect()));
}

#[test]
fn shard_snapshots_are_taken_only_where_the_shard_is_local() {
    let cluster = three_peers();
    let placement = cluster.placement("discussions").expect("placement");
    let holders: Vec<u64> = placement[&0].iter().map(|(p, _)| *p).collect();
    let outsider = (0..3)
        .find(|i| !holders.contains(&cluster.peer_id(*i)))
        .expect("a peer without shard 0");
    let holder = (0..3)
        .find(|i| holders.contains(&cluster.peer_id(*i)))
        .expect("a peer with shard 0");

    let refused = request(
        &cluster.url(outsider),
        "POST",
        "/collections/discussions/shards/0/snapshots?wait=true",
        &[],
        b"",
    );
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.json()["status"]["error"],
        "Wrong input: Shard 0 is not a local or queue proxy shard"
    );
    let missing = request(
        &cluster.url(holder),
        "POST",
        "/collections/discussions/shards/9/snapshots",
        &[],
        b"",
    );
    assert_eq!(missing.status, 404);

    let url = cluster.url(holder);
    let created = request(
        &url,
        "POST",
        "/collections/discussions/shards/0/snapshots?wait=true",
        &[],
        b"",
    );
    assert_eq!(created.status, 200);
    let desc = created.json()["result"].clone();
    let name = desc["name"].as_str().expect("name").to_string();
    assert!(
        name.starts_with("discussions-shard-0-") && name.ends_with(".snapshot"),
        "{name}"
    );
    let list = get(&url, "/collections/discussions/shards/0/snapshots").json()["result"].clone();
    assert_eq!(list.as_array().expect("list").len(), 1);
    assert_eq!(list[0]["name"], json!(name));

    let file = get(
        &url,
        &format!("/collections/discussions/shards/0/snapshots/{name}"),
    );
    assert_eq!(file.status, 200);
    assert_eq!(json!(sha(&file.body)), desc["checksum"]);
    let entries = untar(&file.body);
    assert!(entries.contains_key(POINTS_ENTRY), "{:?}", entries.keys());
    let parsed = read_snapshot(write_temp(&file.body).path()).expect("parse");
    let shard0: BTreeSet<u64> = (1..=600).filter(|id| id % 3 == 0).collect();
    assert_eq!(parsed.points, shard0);

    let deleted = request(
        &url,
        "DELETE",
        &format!("/collections/discussions/shards/0/snapshots/{name}"),
        &[],
        b"",
    );
    assert_eq!(deleted.status, 200);
    let list = get(&url, "/collections/discussions/shards/0/snapshots").json()["result"].clone();
    assert_eq!(list, json!([]));
    assert!(
        cluster
            .shard_snapshot_names(holder, "discussions", 0)
            .is_empty()
    );
    request(
        &url,
        "POST",
        "/collections/discussions/shards/0/snapshots",
        &[],
        b"",
    );
    assert_eq!(
        cluster.shard_snapshot_names(holder, "discussions", 0).len(),
        1
    );
    // Not the collection's snapshot folder.
    assert!(
        cluster
            .peer(holder)
            .snapshot_names("discussions")
            .is_empty()
    );
}

/// A shard snapshot of `discussions` shard `id`, taken on a peer holding it: (peer index, bytes).
fn take_shard_snapshot(cluster: &Cluster, id: u32) -> (usize, Vec<u8>) {
    let placement = cluster.placement("discussions").expect("placement");
    let holder_id = placement[&id][0].0;
    let holder = (0..cluster.len())
        .find(|i| cluster.peer_id(*i) == holder_id)
        .expect("holder");
    let url = cluster.url(holder);
    let created = request(
        &url,
        "POST",
        &format!("/collections/discussions/shards/{id}/snapshots"),
        &[],
        b"",
    );
    let name = created.json()["result"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let file = get(
        &url,
        &format!("/collections/discussions/shards/{id}/snapshots/{name}"),
    );
    assert_eq!(file.status, 200);
    (holder, file.body)
}

#[test]
fn shard_upload_with_a_wrong_checksum_gets_the_real_error() {
    let cluster = three_peers();
    let (holder, bytes) = take_shard_snapshot(&cluster, 1);
    let wrong = "ab".repeat(32);
    let resp = upload(
        &cluster.url(holder),
        &format!(
            "/collections/discussions/shards/1/snapshots/upload?wait=true&priority=snapshot&checksum={wrong}"
        ),
        &bytes,
    );
    assert_eq!(resp.status, 400);
    assert_eq!(
        resp.json()["status"]["error"],
        json!(format!(
            "Checksum mismatch: expected {}, actual {wrong}",
            sha(&bytes)
        ))
    );
    let unknown = upload(
        &cluster.url(holder),
        "/collections/nope/shards/1/snapshots/upload",
        &bytes,
    );
    assert_eq!(unknown.status, 404);
    let no_shard = upload(
        &cluster.url(holder),
        "/collections/discussions/shards/7/snapshots/upload",
        &bytes,
    );
    assert_eq!(no_shard.status, 404);
}

/// A fresh `restored` collection (3 shards × 2 replicas) and the snapshot of shard 2 of the
/// seeded `discussions` (points 2, 5, … 599).
fn fresh_collection_and_shard_2(config: Config) -> (Cluster, Vec<u8>) {
    let cluster = Cluster::start(3, config);
    cluster.seed(
        "discussions",
        info_from_fixture("cluster/3-node-collection-info.json"),
        3,
        2,
        (1..=600).collect(),
    );
    let (_, bytes) = take_shard_snapshot(&cluster, 2);
    let create = json!({
        "vectors": {"size": 768, "distance": "Cosine"},
        "sparse_vectors": {"bm25": {"modifier": "idf"}},
        "shard_number": 3, "replication_factor": 2,
    });
    let created = send_json(&cluster.url(0), "PUT", "/collections/restored", &create);
    assert_eq!(
        created.status,
        200,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    (cluster, bytes)
}

fn shard_2_points() -> Vec<u64> {
    (1..=600).filter(|id| id % 3 == 2).collect()
}

/// Shard 2's two replicas (peer ids) and the index of the first one's peer.
fn shard_2_replicas(cluster: &Cluster) -> (Vec<u64>, usize) {
    let placement = cluster.placement("restored").expect("placement");
    let replicas: Vec<u64> = placement[&2].iter().map(|(p, _)| *p).collect();
    assert_eq!(replicas.len(), 2);
    let target = (0..3)
        .find(|i| cluster.peer_id(*i) == replicas[0])
        .expect("target");
    (replicas, target)
}

fn upload_shard_2(cluster: &Cluster, peer: usize, priority: &str, bytes: &[u8]) {
    let resp = upload(
        &cluster.url(peer),
        &format!(
            "/collections/restored/shards/2/snapshots/upload?wait=true&priority={priority}&checksum={}",
            sha(bytes)
        ),
        bytes,
    );
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
}

fn shard_2_states(cluster: &Cluster) -> BTreeMap<u64, String> {
    cluster.placement("restored").expect("p")[&2]
        .iter()
        .cloned()
        .collect()
}

#[test]
fn snapshot_priority_recovery_kills_the_active_replicas_which_a_transfer_refills() {
    let (cluster, bytes) = fresh_collection_and_shard_2(Config {
        consensus_delay: Duration::from_millis(800),
        transfer_start_delay: Duration::from_millis(600),
        transfer_duration: Duration::from_secs(3),
        ..Config::default()
    });
    wait_until_all_active(&cluster);
    let (replicas, target) = shard_2_replicas(&cluster);
    let other = replicas[1];
    upload_shard_2(&cluster, target, "snapshot", &bytes);
    assert_eq!(
        cluster.replica_point_ids("restored", 2, replicas[0]),
        Some(shard_2_points())
    );
    // Right after the answer every replica still looks Active, the other one empty: the
    // cluster's consensus has not applied the change yet.
    assert!(cluster.all_active());
    assert_eq!(
        cluster.replica_point_ids("restored", 2, other),
        Some(vec![])
    );
    // Then Dead, with no transfer listed yet.
    let deadline = Instant::now() + Duration::from_secs(30);
    while shard_2_states(&cluster)[&other] != "Dead" {
        assert!(Instant::now() < deadline, "never Dead");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(shard_2_states(&cluster)[&replicas[0]], "Active");
    let view = get(&cluster.url(target), "/collections/restored/cluster").json()["result"].clone();
    assert_eq!(view["shard_transfers"], json!([]));
    // Then a transfer from the recovered replica.
    let deadline = Instant::now() + Duration::from_secs(30);
    while shard_2_states(&cluster)[&other] != "Partial" {
        assert!(Instant::now() < deadline, "no transfer started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let view = get(&cluster.url(target), "/collections/restored/cluster").json()["result"].clone();
    assert_eq!(
        view["shard_transfers"],
        json!([{"shard_id": 2, "from": replicas[0], "to": other, "sync": true, "method": "stream_records"}])
    );
    wait_until_all_active(&cluster);
    assert_eq!(
        cluster.replica_point_ids("restored", 2, other),
        Some(shard_2_points())
    );
    let view = get(&cluster.url(0), "/collections/restored/cluster").json()["result"].clone();
    assert_eq!(view["shard_transfers"], json!([]));
    let count = send_json(
        &cluster.url(1),
        "POST",
        "/collections/restored/points/count",
        &json!({"exact": true}),
    );
    assert_eq!(
        count.json()["result"]["count"],
        json!(shard_2_points().len())
    );
}

#[test]
fn a_recovery_while_another_replica_initializes_leaves_that_replica_active_and_empty() {
    let (cluster, bytes) = fresh_collection_and_shard_2(Config {
        replica_init_delay: Duration::from_millis(800),
        ..Config::default()
    });
    let (replicas, target) = shard_2_replicas(&cluster);
    assert_eq!(shard_2_states(&cluster)[&replicas[1]], "Initializing");
    upload_shard_2(&cluster, target, "snapshot", &bytes);
    assert_eq!(shard_2_states(&cluster)[&replicas[1]], "Initializing");
    wait_until_all_active(&cluster);
    let view = get(&cluster.url(0), "/collections/restored/cluster").json()["result"].clone();
    assert_eq!(view["shard_transfers"], json!([]));
    assert_eq!(
        cluster.replica_point_ids("restored", 2, replicas[0]),
        Some(shard_2_points())
    );
    assert_eq!(
        cluster.replica_point_ids("restored", 2, replicas[1]),
        Some(vec![])
    );
    // A read lands on the peer's own replica: full on one peer, empty on the other.
    let count_on = |peer: usize, query: &str| {
        send_json(
            &cluster.url(peer),
            "POST",
            &format!("/collections/restored/points/count{query}"),
            &json!({"exact": true}),
        )
        .json()["result"]["count"]
            .clone()
    };
    let other = (0..3)
        .find(|i| cluster.peer_id(*i) == replicas[1])
        .expect("other");
    assert_eq!(count_on(target, ""), json!(shard_2_points().len()));
    assert_eq!(count_on(other, ""), json!(0));
    // consistency=all answers the smallest replica's count.
    assert_eq!(count_on(target, "?consistency=all"), json!(0));
}

#[test]
fn no_sync_recovery_leaves_the_other_replicas_alone() {
    let (cluster, bytes) = fresh_collection_and_shard_2(Config::default());
    wait_until_all_active(&cluster);
    let (replicas, target) = shard_2_replicas(&cluster);
    upload_shard_2(&cluster, target, "no_sync", &bytes);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        shard_2_states(&cluster)
            .values()
            .all(|state| state == "Active")
    );
    assert_eq!(
        cluster.replica_point_ids("restored", 2, replicas[1]),
        Some(vec![])
    );
    let other = (0..3)
        .find(|i| cluster.peer_id(*i) == replicas[1])
        .expect("other");
    upload_shard_2(&cluster, other, "no_sync", &bytes);
    for peer in replicas {
        assert_eq!(
            cluster.replica_point_ids("restored", 2, peer),
            Some(shard_2_points())
        );
    }
    let count = send_json(
        &cluster.url(0),
        "POST",
        "/collections/restored/points/count?consistency=all",
        &json!({"exact": true}),
    );
    assert_eq!(
        count.json()["result"]["count"],
        json!(shard_2_points().len())
    );
}

#[test]
fn a_failed_shard_recovery_leaves_a_dead_replica() {
    let cluster = three_peers();
    let (holder, bytes) = take_shard_snapshot(&cluster, 0);
    cluster.peer(holder).inject(crate::Fault::new(
        Some("POST"),
        "/shards/0/snapshots/upload",
        crate::FaultKind::UploadFailAfterClear,
    ));
    let resp = upload(
        &cluster.url(holder),
        "/collections/discussions/shards/0/snapshots/upload?priority=snapshot",
        &bytes,
    );
    assert_eq!(resp.status, 500);
    let states: BTreeMap<u64, String> = cluster.placement("discussions").expect("p")[&0]
        .iter()
        .cloned()
        .collect();
    assert_eq!(states[&cluster.peer_id(holder)], "Dead");
    assert_eq!(
        cluster.replica_point_ids("discussions", 0, cluster.peer_id(holder)),
        Some(vec![])
    );
}

#[test]
fn custom_shard_keys_get_sequential_shard_ids() {
    let cluster = Cluster::start(3, Config::default());
    let url = cluster.url(1);
    let create = fixture("collections/create-custom-sharding.json")["request"]["body"].clone();
    let mut create = create;
    create["shard_number"] = json!(2);
    create["replication_factor"] = json!(2);
    assert_eq!(
        send_json(&url, "PUT", "/collections/tenants", &create).status,
        200
    );
    let view = get(&url, "/collections/tenants/cluster").json()["result"].clone();
    assert_eq!(view["shard_count"], 0);

    assert_eq!(
        send_json(
            &url,
            "PUT",
            "/collections/tenants/shards",
            &json!({"shard_key": "beta"})
        )
        .status,
        200
    );
    assert_eq!(
        send_json(
            &cluster.url(2),
            "PUT",
            "/collections/tenants/shards",
            &json!({"shard_key": 7, "shards_number": 1, "replication_factor": 1})
        )
        .status,
        200
    );
    let again = send_json(
        &url,
        "PUT",
        "/collections/tenants/shards",
        &json!({"shard_key": "beta"}),
    );
    assert_eq!(again.status, 400);
    let keys = cluster.shard_keys("tenants").expect("keys");
    assert_eq!(
        keys,
        BTreeMap::from([
            (0, Some(json!("beta"))),
            (1, Some(json!("beta"))),
            (2, Some(json!(7)))
        ])
    );
    assert_eq!(
        cluster.shard_key_order("tenants"),
        Some(vec![json!("beta"), json!(7)])
    );
    let listed = get(&cluster.url(0), "/collections/tenants/shards").json()["result"].clone();
    assert_eq!(listed, json!({"shard_keys": [{"key": "beta"}, {"key": 7}]}));
    let view = get(&cluster.url(0), "/collections/tenants/cluster").json()["result"].clone();
    assert_eq!(view["shard_count"], 3);
    // New shards' replicas are Initializing for a moment, as on a real cluster.
    assert!(
        replicas_seen(&view)
            .iter()
            .all(|(_, _, state)| state == "Initializing"),
        "{view}"
    );
    wait_until_all_active(&cluster);
    for entry in view["local_shards"]
        .as_array()
        .into_iter()
        .chain(view["remote_shards"].as_array())
        .flatten()
    {
        let id = entry["shard_id"].as_u64().expect("id") as u32;
        assert_eq!(Some(&entry["shard_key"]), keys[&id].as_ref());
    }

    let upsert = send_json(
        &url,
        "PUT",
        "/collections/tenants/points?wait=true",
        &json!({"points": [{"id": 1}, {"id": 2}, {"id": 3}], "shard_key": "beta"}),
    );
    assert_eq!(upsert.status, 200);
    let no_key = send_json(
        &url,
        "PUT",
        "/collections/tenants/points?wait=true",
        &json!({"points": [{"id": 4}]}),
    );
    assert_eq!(no_key.status, 400);
    send_json(
        &url,
        "PUT",
        "/collections/tenants/points?wait=true",
        &json!({"points": [{"id": 9}], "shard_key": 7}),
    );
    let count = |body: Value| {
        send_json(
            &cluster.url(0),
            "POST",
            "/collections/tenants/points/count",
            &body,
        )
        .json()["result"]["count"]
            .clone()
    };
    assert_eq!(count(json!({"exact": true})), 4);
    assert_eq!(count(json!({"exact": true, "shard_key": "beta"})), 3);
    assert_eq!(count(json!({"exact": true, "shard_key": 7})), 1);

    cluster.seed_custom(
        "seeded",
        info_from_fixture("collections/info-custom-sharding.json"),
        1,
        2,
        &[(json!("x"), vec![1, 2]), (json!("y"), vec![3])],
    );
    assert_eq!(
        cluster.shard_key_order("seeded"),
        Some(vec![json!("x"), json!("y")])
    );
    assert_eq!(cluster.point_ids("seeded"), Some(vec![1, 2, 3]));
    assert_eq!(
        cluster.replica_point_ids(
            "seeded",
            1,
            cluster.placement("seeded").expect("p")[&1][0].0
        ),
        Some(vec![3])
    );
}

#[test]
fn a_stopped_peer_refuses_connections() {
    let mut cluster = three_peers();
    let url = cluster.url(1);
    assert_eq!(get(&url, "/cluster").status, 200);
    cluster.stop_peer(1);
    let host = url.strip_prefix("http://").expect("url");
    let err = TcpStream::connect(host).expect_err("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let status = get(&cluster.url(0), "/cluster").json()["result"].clone();
    assert_eq!(status["peers"].as_object().expect("peers").len(), 3);
    assert_eq!(
        get(&cluster.url(2), "/collections/discussions/cluster").status,
        200
    );
}

#[test]
fn a_collection_snapshot_holds_only_the_peers_local_shards() {
    let cluster = three_peers();
    let url = cluster.url(0);
    let me = cluster.peer_id(0);
    let created = request(
        &url,
        "POST",
        "/collections/discussions/snapshots?wait=true",
        &[],
        b"",
    );
    assert_eq!(created.status, 200);
    let name = created.json()["result"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    assert!(name.starts_with(&format!("discussions-{me}-")), "{name}");
    let file = get(&url, &format!("/collections/discussions/snapshots/{name}"));
    assert_eq!(file.status, 200);
    let entries = untar(&file.body);
    let placement = cluster.placement("discussions").expect("placement");
    let mut local_points = BTreeSet::new();
    for (id, replicas) in &placement {
        let local = replicas.iter().any(|(p, _)| *p == me);
        let state: Value =
            serde_json::from_slice(&entries[&format!("{id}/replica_state.json")]).expect("state");
        assert_eq!(state["is_local"], json!(local), "shard {id}");
        assert_eq!(
            entries.contains_key(&format!("{id}/{POINTS_ENTRY}")),
            local,
            "shard {id}"
        );
        if local {
            local_points.extend(
                cluster
                    .replica_point_ids("discussions", *id, me)
                    .expect("points"),
            );
        }
    }
    let parsed = read_snapshot(write_temp(&file.body).path()).expect("parse");
    assert_eq!(parsed.points, local_points);
    assert!(parsed.points.len() < 600);
    // The listing of this peer shows it; the other peers have none.
    assert_eq!(cluster.peer(0).snapshot_names("discussions"), vec![name]);
    assert!(cluster.peer(1).snapshot_names("discussions").is_empty());
}

#[test]
fn a_single_node_collection_snapshot_recovers_into_a_one_shard_cluster_collection() {
    let single = crate::Double::start(Config::default());
    single.seed_from_fixture("discussions", "collections/info-discussions.json", 30);
    let created = request(
        &single.url(),
        "POST",
        "/collections/discussions/snapshots",
        &[],
        b"",
    );
    let name = created.json()["result"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let bytes = get(
        &single.url(),
        &format!("/collections/discussions/snapshots/{name}"),
    )
    .body;

    let cluster = Cluster::start(
        3,
        Config {
            transfer_duration: Duration::from_secs(3),
            ..Config::default()
        },
    );
    // Into a fresh cluster: the upload creates the collection from the snapshot's config.
    let resp = upload(
        &cluster.url(1),
        "/collections/fresh/snapshots/upload?wait=true&priority=snapshot",
        &bytes,
    );
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(cluster.point_ids("fresh"), Some((1..=30).collect()));
    let count = send_json(
        &cluster.url(2),
        "POST",
        "/collections/fresh/points/count",
        &json!({"exact": true}),
    );
    assert_eq!(count.json()["result"]["count"], 30);

    // Into an existing empty one with two replicas: the other replica is Dead, then refilled.
    cluster.seed(
        "discussions",
        info_from_fixture("collections/info-discussions.json"),
        1,
        2,
        Vec::new(),
    );
    let replicas: Vec<u64> = cluster.placement("discussions").expect("p")[&0]
        .iter()
        .map(|(p, _)| *p)
        .collect();
    let target = (0..3)
        .find(|i| cluster.peer_id(*i) == replicas[0])
        .expect("target");
    let resp = upload(
        &cluster.url(target),
        "/collections/discussions/snapshots/upload?priority=snapshot",
        &bytes,
    );
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let states: BTreeMap<u64, String> = cluster.placement("discussions").expect("p")[&0]
        .iter()
        .cloned()
        .collect();
    assert_eq!(states[&replicas[0]], "Active");
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.placement("discussions").expect("p")[&0][1].1 == "Active" {
        assert!(
            Instant::now() < deadline,
            "the other replica never turned Dead"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_until_all_active(&cluster);
    assert_eq!(
        cluster.replica_point_ids("discussions", 0, replicas[1]),
        Some((1..=30).collect())
    );
}

#[test]
fn api_keys_hold_on_every_peer() {
    let cluster = Cluster::start(
        2,
        Config {
            api_key: Some("cluster-key".into()),
            ..Config::default()
        },
    );
    for url in cluster.urls() {
        assert_eq!(get(&url, "/cluster").status, 401);
        let ok = request(&url, "GET", "/cluster", &[("api-key", "cluster-key")], b"");
        assert_eq!(ok.status, 200);
    }
}

#[test]
fn hostile_shard_counts_are_refused() {
    let cluster = Cluster::start(2, Config::default());
    let url = cluster.url(0);
    let create =
        json!({"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 4_000_000_000u64});
    assert_eq!(
        send_json(&url, "PUT", "/collections/huge", &create).status,
        400
    );
    assert_eq!(cluster.collection_names(), Vec::<String>::new());
    let custom = json!({"vectors": {"size": 4, "distance": "Dot"}, "sharding_method": "custom"});
    assert_eq!(
        send_json(&url, "PUT", "/collections/c", &custom).status,
        200
    );
    for n in [
        json!(0),
        json!(4_000_000_000u64),
        json!(50_000_000_000u64),
        json!("two"),
    ] {
        let resp = send_json(
            &url,
            "PUT",
            "/collections/c/shards",
            &json!({"shard_key": "k", "shards_number": n}),
        );
        assert_eq!(resp.status, 422, "{n}");
    }
    assert_eq!(cluster.placement("c"), Some(BTreeMap::new()));
}

/// Payload indexes created on two collections at once through one peer all land: a request
/// refreshing that peer's view must not drop an index another request just made.
#[test]
fn concurrent_index_creations_through_one_peer_are_all_kept() {
    let cluster = Cluster::start(3, Config::default());
    let url = cluster.url(0);
    for name in ["left", "right"] {
        let r = send_json(
            &url,
            "PUT",
            &format!("/collections/{name}"),
            &json!({"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 3, "replication_factor": 2}),
        );
        assert_eq!(r.status, 200, "{}", r.json());
    }
    const FIELDS: usize = 40;
    std::thread::scope(|scope| {
        for name in ["left", "right"] {
            let url = &url;
            scope.spawn(move || {
                for i in 0..FIELDS {
                    let r = send_json(
                        url,
                        "PUT",
                        &format!("/collections/{name}/index?wait=false"),
                        &json!({"field_name": format!("f{i}"), "field_schema": "keyword"}),
                    );
                    assert_eq!(r.status, 200, "{}", r.json());
                }
            });
        }
    });
    for name in ["left", "right"] {
        let info = send_json(&url, "GET", &format!("/collections/{name}"), &Value::Null).json();
        let fields = info["result"]["payload_schema"]
            .as_object()
            .map_or(0, |m| m.len());
        assert_eq!(
            fields, FIELDS,
            "{name}: {}",
            info["result"]["payload_schema"]
        );
    }
}

#[test]
fn a_peer_streams_its_local_replica_of_a_shard() {
    let cluster = three_peers();
    let placement = cluster.placement("discussions").expect("placement");
    let holders: Vec<u64> = placement[&1].iter().map(|(p, _)| *p).collect();
    let holder = (0..3)
        .find(|i| holders.contains(&cluster.peer_id(*i)))
        .expect("a peer with shard 1");
    let outsider = (0..3)
        .find(|i| !holders.contains(&cluster.peer_id(*i)))
        .expect("a peer without shard 1");

    let resp = get(
        &cluster.url(holder),
        "/collections/discussions/shards/1/snapshot",
    );
    assert_eq!(resp.status, 200);
    let (body, terminated) = crate::http::decode_chunked(&resp.body);
    assert!(terminated, "no terminating chunk");
    let entries = untar(&body);
    let replica: Value = serde_json::from_slice(&entries["replica_state.json"]).expect("json");
    assert_eq!(replica["this_peer_id"], json!(cluster.peer_id(holder)));
    assert_eq!(replica["is_local"], json!(true));
    assert!(entries.contains_key("shard_config.json"));
    assert!(entries.keys().any(|n| n.trim_end_matches('/') == "wal"));
    let parsed = read_snapshot(write_temp(&body).path()).expect("parse");
    let shard1: BTreeSet<u64> = (1..=600).filter(|id| id % 3 == 1).collect();
    assert_eq!(parsed.points, shard1);
    // This peer's replica: a replica that differs streams what it holds.
    cluster.set_replica_points("discussions", 1, cluster.peer_id(holder), vec![4, 7]);
    let resp = get(
        &cluster.url(holder),
        "/collections/discussions/shards/1/snapshot",
    );
    let (body, _) = crate::http::decode_chunked(&resp.body);
    let parsed = read_snapshot(write_temp(&body).path()).expect("parse");
    assert_eq!(parsed.points, BTreeSet::from([4, 7]));
    // Nothing stored.
    assert!(
        cluster
            .shard_snapshot_names(holder, "discussions", 1)
            .is_empty()
    );
    assert!(
        cluster
            .peer(holder)
            .snapshot_names("discussions")
            .is_empty()
    );

    let refused = get(
        &cluster.url(outsider),
        "/collections/discussions/shards/1/snapshot",
    );
    assert_eq!(refused.status, 400);
    assert_eq!(
        String::from_utf8_lossy(&refused.body),
        "Wrong input: Shard 1 is not a local or queue proxy shard"
    );
    let missing = get(
        &cluster.url(holder),
        "/collections/discussions/shards/7/snapshot",
    );
    assert_eq!(missing.status, 404);
    assert_eq!(
        String::from_utf8_lossy(&missing.body),
        "Not found: shard 7 not found"
    );
    let missing = get(&cluster.url(holder), "/collections/nope/shards/0/snapshot");
    assert_eq!(missing.status, 404);
    assert_eq!(
        String::from_utf8_lossy(&missing.body),
        "Not found: Collection `nope` doesn't exist!"
    );
}

#[test]
fn an_older_cluster_has_no_streamed_shard_snapshot() {
    let cluster = Cluster::start(
        2,
        Config {
            no_streamed_shard_snapshot: true,
            ..Config::default()
        },
    );
    cluster.seed(
        "discussions",
        info_from_fixture("cluster/3-node-collection-info.json"),
        2,
        2,
        (1..=20).collect(),
    );
    let resp = get(
        &cluster.url(0),
        "/collections/discussions/shards/0/snapshot",
    );
    assert_eq!(resp.status, 404);
    assert_eq!(
        resp.json()["status"]["error"],
        "Not found: no route for GET /collections/discussions/shards/0/snapshot"
    );
}

#[path = "cluster_points_tests.rs"]
mod cluster_points_tests;

/// A `PATCH` that gives a cluster collection with points its indexing threshold back from 0
/// is seen by every peer, and each peer answers `yellow` to its own next info reads
/// (`indexing_reads` of them), then `green`; the statuses each peer answered are kept.
#[test]
fn each_peer_builds_its_index_after_the_threshold_comes_back() {
    let cluster = Cluster::start(
        3,
        Config {
            indexing_reads: 2,
            ..Config::default()
        },
    );
    let create = json!({"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 1,
                        "replication_factor": 3, "optimizers_config": {"indexing_threshold": 0}});
    assert_eq!(
        send_json(&cluster.url(0), "PUT", "/collections/c", &create).status,
        200
    );
    wait_until_all_active(&cluster);
    cluster
        .upsert_records("c", json!([{"id": 1, "vector": [1.0, 0.5]}]))
        .unwrap();
    assert_eq!(cluster.statuses_since_indexing("c"), None);
    let change = json!({"optimizers_config": {"indexing_threshold": 20}});
    let answer = send_json(&cluster.url(1), "PATCH", "/collections/c", &change);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["result"], true);
    let status = |peer: usize| {
        let info = get(&cluster.url(peer), "/collections/c").json();
        let threshold = &info["result"]["config"]["optimizer_config"]["indexing_threshold"];
        let status = info["result"]["status"].as_str().unwrap();
        format!("{status} {threshold}")
    };
    assert_eq!(status(2), "yellow 20");
    assert_eq!(status(2), "yellow 20");
    assert_eq!(status(2), "green 20");
    assert_eq!(status(0), "yellow 20");
    let seen = cluster.statuses_since_indexing("c").unwrap();
    let (first, third) = (cluster.peer_id(0), cluster.peer_id(2));
    assert_eq!(seen.get(&third).unwrap(), &["yellow", "yellow", "green"]);
    assert_eq!(seen.get(&first).unwrap(), &["yellow"]);
    assert_eq!(seen.get(&cluster.peer_id(1)), None);
    // Set again from a number to another: nothing to build.
    let again = json!({"optimizers_config": {"indexing_threshold": 30}});
    assert_eq!(
        send_json(&cluster.url(0), "PATCH", "/collections/c", &again).status,
        200
    );
    assert_eq!(status(1), "yellow 30", "peer 1 had not been read yet");
    assert_eq!(
        send_json(&cluster.url(0), "DELETE", "/collections/c", &json!({})).status,
        200
    );
    assert_eq!(cluster.statuses_since_indexing("c"), None);
}
