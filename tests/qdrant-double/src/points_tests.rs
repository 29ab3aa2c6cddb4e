//! Single-node mode: points with vectors and payloads (scroll, count, retrieve, delete,
//! upsert), filters, aliases, collections created from full bodies, and snapshots that carry
//! the points, checked against the captured exchanges of both versions.

use super::*;

/// The two captured versions: the double's config and the fixture folder (relative to
/// [`fixtures_dir`]).
const VERSIONS: [(&str, &str); 2] = [("1.18.3", ""), ("1.16.3", "../qdrant-1.16.3/")];

fn start(version: &str) -> Double {
    Double::start(Config {
        version: version.to_string(),
        ..Config::default()
    })
}

/// `plain` as the captures have it: a 4-d cosine vector `""` and a sparse `bm25`.
fn create_plain(client: &mut Client) {
    let body =
        json!({"vectors": {"size": 4, "distance": "Cosine"}, "sparse_vectors": {"bm25": {}}});
    let resp = client.json("PUT", "/collections/plain", &body);
    assert_eq!(resp.status, 200, "{}", resp.text());
}

/// [`replay`], with `operation_id` masked (the real server's count had other operations in).
fn replay_update(client: &mut Client, path: &str) {
    let f = fixture(path);
    let req = &f["request"];
    let query: Vec<String> = req["query"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    let target = format!("{}?{}", req["path"].as_str().unwrap(), query.join("&"));
    let resp = client.json(req["method"].as_str().unwrap(), &target, &req["body"]);
    let mut got = without_time(resp.json());
    let mut want = without_time(f["response"]["body"].clone());
    assert_eq!(resp.status, f["response"]["status"], "{path}: {got}");
    for v in [&mut got, &mut want] {
        if let Some(r) = v.get_mut("result").and_then(Value::as_object_mut) {
            r.remove("operation_id");
        }
    }
    assert_eq!(got, want, "{path}");
}

fn scroll(client: &mut Client, collection: &str, body: Value) -> Value {
    let resp = client.json(
        "POST",
        &format!("/collections/{collection}/points/scroll"),
        &body,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["result"].clone()
}

fn count(client: &mut Client, collection: &str, body: Value) -> u64 {
    let resp = client.json(
        "POST",
        &format!("/collections/{collection}/points/count"),
        &body,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["result"]["count"].as_u64().expect("count")
}

#[test]
fn point_exchanges_replay_as_captured_on_both_versions() {
    for (version, dir) in VERSIONS {
        let double = start(version);
        double.seed_ai_memory();
        double.seed_from_fixture("keyed", &format!("{dir}collections/info-keyed.json"), 0);
        let mut client = Client::new(&double);
        create_plain(&mut client);
        let at = |name: &str| format!("{dir}points/{name}.json");
        replay_update(&mut client, &at("upsert-wait"));
        replay_update(&mut client, &at("upsert-nowait"));
        // The batch of points 10 and 11 (captured through `/points/batch`), as a `batch` body.
        let batch = json!({"batch": {"ids": [10, 11], "vectors": {"": [[1, 0, 0, 0], [0, 1, 0, 0]]}, "payloads": [{"k": 1}, {"k": 2}]}});
        assert_eq!(
            client
                .json("PUT", "/collections/plain/points?wait=true", &batch)
                .status,
            200
        );
        // Cosine vectors come back normalized, sparse indices sorted, numbers as sent.
        replay(&mut client, &at("scroll-int-ids"));
        replay(&mut client, &at("retrieve"));
        replay(&mut client, &at("count-filter"));
        replay(&mut client, &at("count-exact"));
        replay(&mut client, &at("count-404"));
        replay(&mut client, &at("scroll-shard-key"));
        replay(&mut client, &at("upsert-shard-key"));
        replay(&mut client, &at("upsert-wrong-dim"));
        replay(&mut client, &at("upsert-unknown-vector"));
        replay_update(&mut client, &at("delete-filter"));
        assert_eq!(
            count(&mut client, "plain", json!({"exact": true})),
            4,
            "{version}"
        );
        let left = scroll(&mut client, "plain", json!({"limit": 10}));
        let ids: Vec<&Value> = left["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["id"])
            .collect();
        assert_eq!(ids, [&json!(2), &json!(4), &json!(10), &json!(11)]);
    }
}

#[test]
fn keyed_and_shapes_collections_answer_as_captured() {
    for (version, dir) in VERSIONS {
        let double = start(version);
        double.seed_from_fixture("keyed", &format!("{dir}collections/info-keyed.json"), 0);
        double.seed_from_fixture("shapes", &format!("{dir}collections/info-shapes.json"), 0);
        let mut client = Client::new(&double);
        replay(&mut client, &format!("{dir}points/scroll-keyed-all.json"));
        let captured = fixture(&format!("{dir}points/scroll-shapes.json"));
        let point = &captured["response"]["body"]["result"]["points"][0];
        // Sent as a client would: integers for the uint8 vector, sparse indices unordered.
        let sent = json!({"points": [{"id": point["id"], "payload": point["payload"],
            "vector": {"f16": [0.5, 0.25, 1.5, 2], "u8": [1, 2, 255, 0], "s": {"indices": [1], "values": [1]}}}]});
        assert_eq!(
            client
                .json("PUT", "/collections/shapes/points", &sent)
                .status,
            200
        );
        replay(&mut client, &format!("{dir}points/scroll-shapes.json"));
    }
}

#[test]
fn filters_select_what_scroll_count_and_delete_see() {
    let double = Double::start(Config::default());
    let mut client = Client::new(&double);
    create_plain(&mut client);
    let points: Vec<Value> = (1..=20u64)
        .map(|i| {
            json!({"id": i, "vector": {"": [1, i, 0, 0]}, "payload": {
                "group": format!("g{}", i % 3), "n": i, "tags": if i % 2 == 0 { json!(["even", "x"]) } else { json!(["odd"]) },
                "meta": {"author": {"name": if i <= 5 { "ann" } else { "bob" }}, "list": [{"v": i}]},
            }})
        })
        .collect();
    double
        .upsert_records("plain", json!(points))
        .expect("upsert");
    let f = |filter: Value| {
        count(
            &mut Client::new(&double),
            "plain",
            json!({"exact": true, "filter": filter}),
        )
    };
    assert_eq!(
        f(json!({"must": [{"key": "group", "match": {"value": "g1"}}]})),
        7
    );
    assert_eq!(
        f(json!({"must": [{"key": "group", "match": {"any": ["g1", "g2"]}}]})),
        14
    );
    assert_eq!(
        f(json!({"must": [{"key": "group", "match": {"except": ["g1", "g2"]}}]})),
        6
    );
    assert_eq!(
        f(json!({"must": [{"key": "tags", "match": {"value": "even"}}]})),
        10
    );
    assert_eq!(
        f(json!({"must": [{"key": "meta.author.name", "match": {"value": "ann"}}]})),
        5
    );
    assert_eq!(
        f(json!({"must": [{"key": "meta.list[].v", "range": {"gt": 15}}]})),
        5
    );
    assert_eq!(
        f(json!({"must": [{"key": "n", "range": {"gte": 3, "lte": 4}}]})),
        2
    );
    assert_eq!(f(json!({"must": [{"has_id": [1, 2, 99]}]})), 2);
    assert_eq!(f(json!({"must": [{"is_empty": {"key": "missing"}}]})), 20);
    assert_eq!(
        f(
            json!({"should": [{"has_id": [1]}, {"must": [{"key": "n", "range": {"gt": 18}}]}], "must_not": [{"has_id": [20]}]})
        ),
        2
    );

    // Pages of a filtered scroll: only matching points, `next_page_offset` a matching id.
    let filter = json!({"must": [{"key": "group", "match": {"value": "g0"}}]});
    let first = scroll(
        &mut client,
        "plain",
        json!({"limit": 4, "filter": filter, "with_payload": ["group"]}),
    );
    let ids: Vec<u64> = first["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [3, 6, 9, 12]);
    assert_eq!(first["points"][0]["payload"], json!({"group": "g0"}));
    assert_eq!(first["next_page_offset"], 15);
    let rest = scroll(
        &mut client,
        "plain",
        json!({"limit": 4, "filter": filter, "offset": 15, "with_vector": ["bm25"]}),
    );
    assert_eq!(rest["points"].as_array().unwrap().len(), 2);
    assert_eq!(
        rest["points"][0]["vector"],
        json!({}),
        "point 15 has no bm25"
    );
    assert_eq!(rest["next_page_offset"], Value::Null);

    // Anything the double does not evaluate is a 400, never a silent match.
    for bad in [
        json!({"must": [{"key": "group", "match": {"text": "g"}}]}),
        json!({"must": [{"nested": {"key": "meta", "filter": {}}}]}),
        json!({"must": [{"key": "n", "values_count": {"gt": 1}}]}),
    ] {
        let resp = client.json(
            "POST",
            "/collections/plain/points/count",
            &json!({"filter": bad}),
        );
        assert_eq!(resp.status, 400, "{bad}");
        assert!(
            resp.json()["status"]["error"]
                .as_str()
                .unwrap()
                .contains("qdrant-double")
        );
    }

    let deleted = client.json(
        "POST",
        "/collections/plain/points/delete?wait=true",
        &json!({"filter": {"must": [{"key": "group", "match": {"value": "g0"}}]}}),
    );
    assert_eq!(deleted.json()["result"]["status"], "completed");
    assert_eq!(count(&mut client, "plain", json!({"exact": true})), 14);
    let by_ids = client.json(
        "POST",
        "/collections/plain/points/delete?wait=false",
        &json!({"points": [1, 2, 999]}),
    );
    assert_eq!(by_ids.json()["result"]["status"], "acknowledged");
    // wait=false is applied at once: the count sees it.
    assert_eq!(count(&mut client, "plain", json!({"exact": true})), 12);
}

#[test]
fn retrieve_returns_existing_points_in_the_order_asked() {
    let double = Double::start(Config::default());
    double.seed_ai_memory();
    let mut client = Client::new(&double);
    let resp = client.json(
        "POST",
        "/collections/discussions/points",
        &json!({"ids": [5, 999, 2, 5], "with_payload": false}),
    );
    let got = resp.json()["result"].clone();
    assert_eq!(got, json!([{"id": 5}, {"id": 2}]));
    // Seeded points read the same every time, with and without vectors.
    let a = scroll(
        &mut client,
        "discussions",
        json!({"limit": 3, "with_vector": true}),
    );
    let b = scroll(
        &mut client,
        "discussions",
        json!({"limit": 3, "with_vector": true}),
    );
    assert_eq!(a, b);
    assert_eq!(double.records("discussions").unwrap().len(), 30);
    assert_eq!(
        double.records("discussions").unwrap()[..3],
        a["points"].as_array().unwrap()[..]
    );
}

#[test]
fn aliases_answer_as_captured_and_go_with_their_collection() {
    for (version, dir) in VERSIONS {
        let double = start(version);
        double.seed_ai_memory();
        let mut client = Client::new(&double);
        replay(&mut client, &format!("{dir}aliases/create.json"));
        replay(&mut client, &format!("{dir}aliases/list.json"));
        replay(&mut client, &format!("{dir}aliases/of-collection.json"));
        // A collection may be read through its alias.
        assert_eq!(count(&mut client, "memories", json!({"exact": true})), 30);
        assert_eq!(client.get("/collections/memories").status, 200);
        let missing = client.json(
            "POST",
            "/collections/aliases",
            &json!({"actions": [{"create_alias": {"collection_name": "nope", "alias_name": "x"}}]}),
        );
        assert_eq!(missing.status, 404);
        let taken = client.json(
            "POST",
            "/collections/aliases",
            &json!({"actions": [{"create_alias": {"collection_name": "github", "alias_name": "conventions"}}]}),
        );
        assert_eq!(taken.status, 409);
        let renamed = client.json(
            "POST",
            "/collections/aliases",
            &json!({"actions": [{"rename_alias": {"old_alias_name": "memories", "new_alias_name": "m2"}}, {"delete_alias": {"alias_name": "absent"}}]}),
        );
        assert_eq!(renamed.status, 200);
        assert_eq!(
            double.aliases(),
            BTreeMap::from([("m2".to_string(), "discussions".to_string())])
        );
        assert_eq!(
            client
                .request("DELETE", "/collections/discussions", &[], b"")
                .status,
            200
        );
        assert_eq!(
            client.get("/aliases").json()["result"],
            json!({"aliases": []})
        );
    }
}

#[test]
fn created_collections_show_the_configs_of_both_versions() {
    for (version, dir) in VERSIONS {
        let double = start(version);
        let mut client = Client::new(&double);
        for name in [
            "named-pq-f16",
            "sparse-only",
            "uint8-manhattan",
            "custom-sharding",
        ] {
            let create = fixture(&format!("{dir}collections/create-{name}.json"));
            let resp = client.json(
                "PUT",
                &format!("/collections/{name}"),
                &create["request"]["body"],
            );
            assert_eq!(resp.status, 200, "{name}: {}", resp.text());
            let info = fixture(&format!("{dir}collections/info-{name}.json"));
            let want = &info["response"]["body"]["result"];
            let got = client.get(&format!("/collections/{name}")).json()["result"].clone();
            assert_eq!(got["config"], want["config"], "{version} {name}");
            assert_eq!(
                got.get("update_queue"),
                want.get("update_queue"),
                "{version} {name}"
            );
        }
        for name in [
            "create-400-unknown-distance",
            "create-422-invalid",
            "create-409-exists",
        ] {
            if name.ends_with("exists") {
                double.seed_ai_memory();
            }
            replay(&mut client, &format!("{dir}collections/{name}.json"));
        }
    }
}

fn download(client: &mut Client, collection: &str, name: &str) -> Vec<u8> {
    let resp = client.get(&format!("/collections/{collection}/snapshots/{name}"));
    assert_eq!(resp.status, 200);
    resp.body
}

#[test]
fn snapshots_carry_vectors_and_payloads_into_other_collections() {
    let double = Double::start(Config::default());
    let mut client = Client::new(&double);
    create_plain(&mut client);
    let points: Vec<Value> = (1..=6u64)
        .map(|i| json!({"id": i, "vector": {"": [i, 1, 2, 3], "bm25": {"indices": [9, i], "values": [0.5, 0.25]}}, "payload": {"i": i, "big": 1152921504606846977u64}}))
        .chain([json!({"id": "5c56c793-69f3-4fbf-87e6-c4bf54c28c26", "vector": {"": [0, 0, 0, 2]}, "payload": {}})])
        .collect();
    double
        .upsert_records("plain", json!(points))
        .expect("upsert");
    let original = double.records("plain").unwrap();
    assert_eq!(original.len(), 7);

    let made = client.json("POST", "/collections/plain/snapshots", &json!({}));
    let name = made.json()["result"]["name"].as_str().unwrap().to_string();
    let file = download(&mut client, "plain", &name);
    // Into a new collection name, and over an existing collection's points.
    assert_eq!(
        upload(&mut client, "copy", "", "a.snapshot", &file).status,
        200
    );
    assert_eq!(double.records("copy").unwrap(), original);
    let other = json!([{"id": 77, "vector": {"": [1, 1, 1, 1]}, "payload": {"x": 1}}]);
    let resp = client.json(
        "PUT",
        "/collections/other",
        &json!({"vectors": {"size": 4, "distance": "Cosine"}, "sparse_vectors": {"bm25": {}}}),
    );
    assert_eq!(resp.status, 200);
    double.upsert_records("other", other).unwrap();
    assert_eq!(
        upload(&mut client, "other", "", "b.snapshot", &file).status,
        200
    );
    assert_eq!(double.records("other").unwrap(), original);

    // The streamed shard snapshot carries them too, into a shard of another collection.
    let (status, _, raw) = raw_exchange(double.port(), "/collections/plain/shards/0/snapshot");
    assert_eq!(status, 200);
    let (streamed, _) = http::decode_chunked(&raw);
    let resp = client.json(
        "PUT",
        "/collections/third",
        &json!({"vectors": {"size": 4, "distance": "Cosine"}, "sparse_vectors": {"bm25": {}}}),
    );
    assert_eq!(resp.status, 200);
    let body = multipart_body("B0UNDARY", "snapshot", "s.snapshot", &streamed);
    let resp = client.request(
        "POST",
        "/collections/third/shards/0/snapshots/upload",
        &[("Content-Type", "multipart/form-data; boundary=B0UNDARY")],
        &body,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(double.records("third").unwrap(), original);
}

#[test]
fn an_old_snapshot_without_records_still_recovers() {
    let double = Double::start(Config::default());
    let mut client = Client::new(&double);
    let resp = upload(
        &mut client,
        "conventions",
        "",
        "c.snapshot",
        &real_snapshot(),
    );
    assert_eq!(resp.status, 200);
    // The real snapshot has no double points entry: an empty collection, as before.
    assert_eq!(double.point_ids("conventions"), Some(vec![]));
}
