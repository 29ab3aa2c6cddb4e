//! Multi-peer mode: points with vectors and payloads written and read through any peer, over
//! every shard (auto and custom sharding), aliases, and collection snapshots that carry the
//! points into another collection.

use super::*;

fn quick() -> Config {
    Config {
        replica_init_delay: Duration::from_millis(20),
        transfer_start_delay: Duration::from_millis(20),
        transfer_duration: Duration::from_millis(40),
        consensus_delay: Duration::from_millis(20),
        ..Config::default()
    }
}

fn result(resp: Resp) -> Value {
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    resp.json()["result"].clone()
}

fn without_time(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("time");
    }
    if let Some(r) = v.get_mut("result").and_then(Value::as_object_mut) {
        r.remove("operation_id");
    }
    v
}

/// Sends a captured request to `url` and checks status and body (minus `time` and
/// `operation_id`).
fn replay(url: &str, path: &str) {
    let f = fixture(path);
    let req = &f["request"];
    let query: Vec<String> = req["query"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    let target = format!("{}?{}", req["path"].as_str().unwrap(), query.join("&"));
    let body = req.get("body").cloned().unwrap_or(Value::Null);
    let resp = match body {
        Value::Null => get(url, &target),
        body => send_json(url, req["method"].as_str().unwrap(), &target, &body),
    };
    assert_eq!(resp.status, f["response"]["status"], "{path}");
    assert_eq!(
        without_time(resp.json()),
        without_time(f["response"]["body"].clone()),
        "{path}"
    );
}

/// Every point through `url`, `page` at a time.
fn scroll_all(url: &str, collection: &str, page: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut offset = Value::Null;
    loop {
        let body =
            json!({"limit": page, "offset": offset, "with_vector": true, "with_payload": true});
        let got = result(send_json(
            url,
            "POST",
            &format!("/collections/{collection}/points/scroll"),
            &body,
        ));
        out.extend(got["points"].as_array().unwrap().iter().cloned());
        offset = got["next_page_offset"].clone();
        if offset.is_null() {
            return out;
        }
    }
}

fn count(url: &str, collection: &str, body: Value) -> u64 {
    result(send_json(
        url,
        "POST",
        &format!("/collections/{collection}/points/count"),
        &body,
    ))["count"]
        .as_u64()
        .unwrap()
}

fn some_points(n: u64) -> Vec<Value> {
    (1..=n)
        .map(|i| {
            let mut dense = vec![0.0; 768];
            dense[(i % 768) as usize] = 1.0;
            dense[0] = 0.5;
            json!({"id": i, "vector": {"": dense, "bm25": {"indices": [i + 1, 1], "values": [0.5, 0.25]}},
                   "payload": {"group_id": format!("proj-{}", i % 4), "n": i}})
        })
        .collect()
}

/// Every replica of every shard holds the same records.
fn replicas_agree(cluster: &Cluster, collection: &str) {
    for (shard, replicas) in cluster.placement(collection).unwrap() {
        let held: Vec<Vec<Value>> = replicas
            .iter()
            .map(|(peer, _)| cluster.replica_records(collection, shard, *peer).unwrap())
            .collect();
        assert!(held.windows(2).all(|w| w[0] == w[1]), "shard {shard}");
    }
}

#[test]
fn points_written_through_one_peer_read_back_through_every_peer() {
    let cluster = Cluster::start(3, quick());
    let urls = cluster.urls();
    let create = fixture("cluster/3-node-create-collection.json");
    result(send_json(
        &urls[0],
        "PUT",
        "/collections/discussions",
        &create["request"]["body"],
    ));
    // A collection created with three shards really has three.
    assert_eq!(cluster.placement("discussions").unwrap().len(), 3);
    wait_until_all_active(&cluster);

    let points = some_points(50);
    let written = result(send_json(
        &urls[1],
        "PUT",
        "/collections/discussions/points?wait=false",
        &json!({"points": points}),
    ));
    assert_eq!(written["status"], "acknowledged");
    // Counted at once, exactly, over every shard, through any peer.
    for url in &urls {
        assert_eq!(count(url, "discussions", json!({"exact": true})), 50);
    }
    assert_eq!(
        count(
            &urls[0],
            "discussions",
            json!({"exact": true, "filter": {"must": [{"key": "group_id", "match": {"value": "proj-1"}}]}})
        ),
        13
    );
    let all = result(send_json(
        &urls[2],
        "POST",
        "/collections/discussions/points/count?consistency=all",
        &json!({"exact": true}),
    ));
    assert_eq!(all["count"], 50);

    let read = scroll_all(&urls[0], "discussions", 7);
    assert_eq!(read.len(), 50);
    assert_eq!(read, cluster.records("discussions").unwrap());
    let ids: Vec<u64> = read.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=50).collect::<Vec<_>>());
    assert_eq!(
        read[0]["vector"]["bm25"],
        json!({"indices": [1, 2], "values": [0.25, 0.5]})
    );
    replicas_agree(&cluster, "discussions");
    // Points spread over the shards deterministically.
    for shard in 0..3u32 {
        let peer = cluster.placement("discussions").unwrap()[&shard][0].0;
        let held = cluster
            .replica_point_ids("discussions", shard, peer)
            .unwrap();
        assert!(
            held.iter().all(|id| id % 3 == u64::from(shard)),
            "shard {shard}"
        );
    }

    let got = result(send_json(
        &urls[2],
        "POST",
        "/collections/discussions/points",
        &json!({"ids": [3, 49, 1000], "with_payload": true}),
    ));
    assert_eq!(
        got,
        json!([{"id": 3, "payload": {"group_id": "proj-3", "n": 3}}, {"id": 49, "payload": {"group_id": "proj-1", "n": 49}}])
    );

    let deleted = result(send_json(
        &urls[1],
        "POST",
        "/collections/discussions/points/delete?wait=true",
        &json!({"filter": {"must": [{"key": "group_id", "match": {"any": ["proj-0", "proj-1"]}}]}}),
    ));
    assert_eq!(deleted["status"], "completed");
    assert_eq!(count(&urls[0], "discussions", json!({"exact": true})), 25);
    replicas_agree(&cluster, "discussions");
    // Upserted back, they read as before.
    let back: Vec<Value> = read
        .iter()
        .filter(|p| p["id"].as_u64().unwrap() % 4 < 2)
        .cloned()
        .collect();
    cluster.upsert_records("discussions", json!(back)).unwrap();
    assert_eq!(scroll_all(&urls[2], "discussions", 100), read);
}

#[test]
fn custom_sharding_answers_as_the_captured_three_node_cluster() {
    let cluster = Cluster::start(3, quick());
    let url = cluster.url(0);
    for name in [
        "create",
        "create-key-a",
        "create-key-b",
        "upsert-key",
        "upsert-no-key",
    ] {
        replay(&url, &format!("cluster/3-node-custom-{name}.json"));
    }
    let b: Vec<Value> = (10..=12)
        .map(|i| json!({"id": i, "vector": [0, 1, 0, i], "payload": {"t": "b"}}))
        .collect();
    result(send_json(
        &cluster.url(1),
        "PUT",
        "/collections/keyed/points?wait=true",
        &json!({"points": b, "shard_key": "tenant-b"}),
    ));
    wait_until_all_active(&cluster);
    for name in ["list-keys", "scroll-all", "scroll-key", "count-key"] {
        replay(
            &cluster.url(2),
            &format!("cluster/3-node-custom-{name}.json"),
        );
    }
    let info = result(get(&url, "/collections/keyed"));
    let want = fixture("cluster/3-node-custom-info.json")["response"]["body"]["result"].clone();
    assert_eq!(info["config"], want["config"]);
    assert_eq!(info["points_count"], want["points_count"]);
    // An unknown key: the write's and the read's wording.
    let bad = send_json(
        &url,
        "PUT",
        "/collections/keyed/points",
        &json!({"points": b, "shard_key": "nope"}),
    );
    assert_eq!(
        bad.json()["status"]["error"],
        "Wrong input: Shard key \"nope\" not found"
    );
    let bad = send_json(
        &url,
        "POST",
        "/collections/keyed/points/scroll",
        &json!({"shard_key": "nope"}),
    );
    assert_eq!(
        bad.json()["status"]["error"],
        "Bad request: Shard key \"nope\" not found"
    );
    // Deleting by filter within one key leaves the other's points.
    result(send_json(
        &url,
        "POST",
        "/collections/keyed/points/delete",
        &json!({"shard_key": "tenant-a", "filter": {"must": [{"key": "t", "match": {"except": ["zzz"]}}]}}),
    ));
    assert_eq!(count(&url, "keyed", json!({"exact": true})), 3);
}

#[test]
fn aliases_are_the_clusters_and_go_with_their_collection() {
    let cluster = Cluster::start(3, quick());
    cluster.seed_from_fixture(
        "discussions",
        "cluster/3-node-collection-info.json",
        3,
        2,
        30,
    );
    replay(&cluster.url(0), "aliases/create.json");
    replay(&cluster.url(2), "aliases/list.json");
    replay(&cluster.url(1), "aliases/of-collection.json");
    assert_eq!(
        count(&cluster.url(2), "memories", json!({"exact": true})),
        30
    );
    assert_eq!(cluster.aliases().len(), 1);
    result(request(
        &cluster.url(1),
        "DELETE",
        "/collections/discussions",
        &[],
        b"",
    ));
    assert_eq!(
        result(get(&cluster.url(0), "/aliases")),
        json!({"aliases": []})
    );
}

#[test]
fn peer_snapshots_carry_the_points_into_another_collection() {
    let cluster = Cluster::start(3, quick());
    let create = fixture("cluster/3-node-create-collection.json");
    result(send_json(
        &cluster.url(0),
        "PUT",
        "/collections/orig",
        &create["request"]["body"],
    ));
    wait_until_all_active(&cluster);
    cluster
        .upsert_records("orig", json!(some_points(40)))
        .unwrap();
    let original = cluster.records("orig").unwrap();
    let files: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let url = cluster.url(i);
            let made = result(send_json(
                &url,
                "POST",
                "/collections/orig/snapshots",
                &json!({}),
            ));
            let name = made["name"].as_str().unwrap();
            get(&url, &format!("/collections/orig/snapshots/{name}")).body
        })
        .collect();
    for (i, file) in files.iter().enumerate() {
        let resp = upload(&cluster.url(i), "/collections/copy/snapshots/upload", file);
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    }
    wait_until_all_active(&cluster);
    assert_eq!(cluster.records("copy").unwrap(), original);
    replicas_agree(&cluster, "copy");
    assert_eq!(scroll_all(&cluster.url(1), "copy", 9), original);
}

#[test]
fn seeded_points_read_the_same_through_every_peer() {
    let cluster = Cluster::start(3, quick());
    cluster.seed_ai_memory(3, 2);
    let through: Vec<Vec<Value>> = (0..3)
        .map(|i| scroll_all(&cluster.url(i), "github", 8))
        .collect();
    assert_eq!(through[0].len(), 30);
    assert!(through.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(through[0], cluster.records("github").unwrap());
}
