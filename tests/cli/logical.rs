//! `backup --format logical` and its restore (docs/logical-format.md): every vector and id
//! kind round-trips exactly, across Qdrant versions and layouts; `restore --filter` merges
//! one group's points back from either format; a signal rolls a logical restore back exactly;
//! an independent reader (pyarrow) reads the files as written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use qdrant_double::{Cluster, Config, Double, Fault, FaultKind};
use serde_json::{Value, json};

use super::support::{KEY, TestEnv, World, keyed_config, manifest, wait_for_request};

/// `method url` with `body` against a double; the answer's JSON (any status).
fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("api-key", KEY)
        .header("content-type", "application/json");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut answer = agent
        .run(request.body(body).expect("request"))
        .expect("answer");
    let status = answer.status().as_u16();
    let text = answer.body_mut().read_to_string().expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates `name` on `url` with `body`, which must succeed.
fn create(url: &str, name: &str, body: Value) {
    let (status, answer) = call("PUT", &format!("{url}/collections/{name}"), Some(body));
    assert_eq!(status, 200, "{answer}");
}

/// Upserts `points` into `name` on `url`, waiting.
fn upsert(url: &str, name: &str, points: Value) {
    let (status, answer) = call(
        "PUT",
        &format!("{url}/collections/{name}/points?wait=true"),
        Some(json!({ "points": points })),
    );
    assert_eq!(status, 200, "{answer}");
}

/// Every point of `name` as scroll answers it (vectors and payloads), in id order.
fn scroll_all(url: &str, name: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut offset = Value::Null;
    loop {
        let (status, answer) = call(
            "POST",
            &format!("{url}/collections/{name}/points/scroll"),
            Some(
                json!({"limit": 100, "offset": offset, "with_vector": true, "with_payload": true}),
            ),
        );
        assert_eq!(status, 200, "{answer}");
        all.extend(
            answer["result"]["points"]
                .as_array()
                .unwrap()
                .iter()
                .cloned(),
        );
        offset = answer["result"]["next_page_offset"].clone();
        if offset.is_null() {
            return all;
        }
    }
}

fn count(url: &str, name: &str) -> u64 {
    let (_, answer) = call(
        "POST",
        &format!("{url}/collections/{name}/points/count"),
        Some(json!({"exact": true})),
    );
    answer["result"]["count"].as_u64().expect("count")
}

/// A collection with every vector kind: an unnamed-free set of named vectors (float32,
/// float16, uint8), a multivector and a sparse vector.
fn shapes_body() -> Value {
    json!({
        "vectors": {
            "text": {"size": 4, "distance": "Dot"},
            "half": {"size": 4, "distance": "Dot", "datatype": "float16"},
            "bytes": {"size": 4, "distance": "Euclid", "datatype": "uint8"},
            "colbert": {"size": 2, "distance": "Dot", "multivector_config": {"comparator": "max_sim"}}
        },
        "sparse_vectors": {"bm25": {"modifier": "idf"}}
    })
}

/// Points of every id kind (0, u64::MAX, UUIDs), payload shape, and vectors present or
/// missing.
fn shapes_points() -> Vec<Value> {
    let mut points = vec![
        json!({"id": 0, "vector": {"text": [0.5, 0.25, -1.0, 2.0], "half": [0.5, 0.25, 1.5, 2.0],
               "bytes": [1.0, 2.0, 255.0, 0.0], "colbert": [[0.5, 1.0], [0.25, 0.125]],
               "bm25": {"indices": [3, 7, 4000000000u64], "values": [0.5, 0.25, 1.0]}},
               "payload": {"group_id": "proj-1", "n": 1152921504606846977u64,
                           "nested": {"a": [1, 2, {"b": null}]}, "text": "naïve ✓ \"quoted\""}}),
        json!({"id": u64::MAX, "vector": {"text": [1.0, 0.0, 0.0, 0.0], "bm25": {"indices": [], "values": []}},
               "payload": {}}),
        json!({"id": "19c3756f-402f-4856-b279-517ecd223cf2",
               "vector": {"text": [0.125, 0.125, 0.125, 0.125], "colbert": [[1.0, 2.0]]},
               "payload": {"group_id": "proj-2", "tags": ["a", "b"], "score": 0.75}}),
    ];
    for i in 1..300u64 {
        let x = (i % 16) as f64 / 8.0;
        points.push(json!({
            "id": i,
            "vector": {"text": [x, 0.5, 0.25, 1.0], "half": [0.5, x, 0.5, 0.5],
                       "bytes": [i % 256, 1, 2, 3], "bm25": {"indices": [i, i + 1], "values": [0.5, x]}},
            "payload": {"group_id": format!("proj-{}", i % 3), "n": i}
        }));
    }
    points
}

/// The backup folder a run printed on stdout.
fn folder_of(run: &super::support::Run) -> PathBuf {
    run.assert_code(0);
    PathBuf::from(run.stdout.trim())
}

fn parquet_files(backup: &Path, collection: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(backup.join("qdrant").join(collection))
        .expect("points folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_vector_and_id_kind_round_trips_exactly_through_a_logical_backup() {
    let env = TestEnv::new();
    let url = env.double.url();
    create(&url, "shapes", shapes_body());
    upsert(&url, "shapes", Value::Array(shapes_points()));
    let before = scroll_all(&url, "shapes");
    assert_eq!(before.len(), 302);

    let backup = folder_of(&env.run(&["backup", "--format", "logical", "--collection", "shapes"]));
    let entry = &manifest(&backup)["collections"]["shapes"];
    assert!(entry.get("snapshot_file").is_none(), "{entry}");
    assert_eq!(entry["points"]["format"], 1);
    assert_eq!(entry["records"], 302);
    let files = entry["points"]["files"].as_array().unwrap();
    let rows: u64 = files.iter().map(|f| f["rows"].as_u64().unwrap()).sum();
    assert_eq!(rows, 302);
    assert_eq!(
        files.len(),
        parquet_files(&backup, "shapes").len(),
        "every file listed"
    );
    env.run(&["verify", backup.to_str().unwrap()])
        .assert_code(0);

    let (status, _) = call("DELETE", &format!("{url}/collections/shapes"), None);
    assert_eq!(status, 200);
    env.run(&["restore", backup.to_str().unwrap(), "--force"])
        .assert_code(0);
    assert_eq!(scroll_all(&url, "shapes"), before);
}

#[test]
fn pyarrow_reads_the_backup_files_as_aimem_wrote_them() {
    let env = TestEnv::new();
    let url = env.double.url();
    create(&url, "shapes", shapes_body());
    upsert(&url, "shapes", Value::Array(shapes_points()));
    let backup = folder_of(&env.run(&["backup", "--format", "logical", "--collection", "shapes"]));
    let files: Vec<String> = parquet_files(&backup, "shapes")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    // An independent reader: a test that fails, not skips, without it (.ci/run installs it).
    let script = r#"
import json, sys
import pyarrow.parquet as pq
ids, rows = [], 0
for path in sys.argv[1:]:
    table = pq.read_table(path)
    rows += table.num_rows
    meta = json.loads(table.schema.metadata[b"aimem.logical.vectors"])
    assert [c["column"] for c in meta] == table.column_names[3:], (meta, table.column_names)
    for row in table.to_pylist():
        ids.append(row["id"])
        if row["id"] == "0":
            assert json.loads(row["payload"])["n"] == 1152921504606846977
            assert row["vector_bm25"]["indices"] == [3, 7, 4000000000], row["vector_bm25"]
            assert row["vector_colbert"] == [[0.5, 1.0], [0.25, 0.125]]
            assert row["vector_bytes"] == [1.0, 2.0, 255.0, 0.0]
print(json.dumps({"rows": rows, "ids": sorted(ids)}))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pyarrow could not read the files: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(read["rows"], 302);
    let ids = read["ids"].as_array().unwrap();
    assert!(ids.contains(&json!(u64::MAX.to_string())));
    assert!(ids.contains(&json!("19c3756f-402f-4856-b279-517ecd223cf2")));
}

#[test]
fn a_logical_backup_of_a_1_16_3_server_restores_into_a_1_18_3_server() {
    let old = Double::start(Config {
        api_key: Some(KEY.to_string()),
        ..Config::v1_16_3()
    });
    old.seed_ai_memory();
    let new = Double::start(keyed_config());
    let world = World::new();
    let backup = world.backup_with(&old.url(), &["--format", "logical"]);
    // A snapshot backup this old would be refused on 1.18.3 without --allow-version-skew; the
    // points go anywhere.
    world
        .run(&new.url(), &["restore", &backup, "--force"])
        .assert_code(0);
    for name in qdrant_double::AI_MEMORY_COLLECTIONS {
        assert_eq!(
            scroll_all(&new.url(), name),
            scroll_all(&old.url(), name),
            "{name}"
        );
        let info = new.collection_info(name).unwrap();
        let was = old.collection_info(name).unwrap();
        assert_eq!(
            info["payload_schema"]
                .as_object()
                .map(|m| m.keys().collect::<Vec<_>>()),
            was["payload_schema"]
                .as_object()
                .map(|m| m.keys().collect::<Vec<_>>()),
            "{name}: payload indexes"
        );
    }
}

#[test]
fn a_single_node_logical_backup_restores_into_a_cluster_with_another_shard_number() {
    let env = TestEnv::new();
    let url = env.double.url();
    create(&url, "shapes", shapes_body());
    upsert(&url, "shapes", Value::Array(shapes_points()));
    let before = scroll_all(&url, "shapes");
    let backup = folder_of(&env.run(&["backup", "--format", "logical", "--collection", "shapes"]));
    let cluster = Cluster::start(3, keyed_config());
    let world = World::new();
    world
        .run(
            &cluster.url(0),
            &[
                "restore",
                backup.to_str().unwrap(),
                "--force",
                "--shard-number",
                "6",
                "--replication-factor",
                "2",
            ],
        )
        .assert_code(0);
    let (_, info) = call(
        "GET",
        &format!("{}/collections/shapes", cluster.url(1)),
        None,
    );
    assert_eq!(info["result"]["config"]["params"]["shard_number"], 6);
    assert_eq!(info["result"]["config"]["params"]["replication_factor"], 2);
    for peer in 0..3 {
        assert_eq!(count(&cluster.url(peer), "shapes"), 302, "peer {peer}");
    }
    assert_eq!(scroll_all(&cluster.url(2), "shapes"), before);
}

#[test]
fn layout_flags_are_refused_for_a_snapshot_backup_before_anything_changes() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    let run = env.run(&[
        "restore",
        backup.to_str().unwrap(),
        "--force",
        "--shard-number",
        "2",
    ]);
    run.assert_code(2)
        .assert_stderr_contains("logical backups only");
}

/// Points of two groups, the first deleted "by mistake" after the backup.
fn groups(url: &str) {
    create(
        url,
        "memories",
        json!({"vectors": {"size": 4, "distance": "Dot"}}),
    );
    let points: Vec<Value> = (1..=40u64)
        .map(|i| {
            json!({"id": i, "vector": [i as f64, 0.5, 0.25, 1.0],
                   "payload": {"group_id": if i % 2 == 0 { "proj-1" } else { "proj-2" }, "n": i}})
        })
        .collect();
    upsert(url, "memories", Value::Array(points));
}

fn merge_from(format: &str) {
    let env = TestEnv::new();
    let url = env.double.url();
    groups(&url);
    let at_backup = scroll_all(&url, "memories");
    let backup = folder_of(&env.run(&["backup", "--format", format, "--collection", "memories"]));
    // The mistake: one group deleted. Then life goes on: a point written after the backup,
    // and a point outside the filter changed.
    let (status, _) = call(
        "POST",
        &format!("{url}/collections/memories/points/delete?wait=true"),
        Some(json!({"filter": {"must": [{"key": "group_id", "match": {"value": "proj-1"}}]}})),
    );
    assert_eq!(status, 200);
    upsert(
        &url,
        "memories",
        json!([
            {"id": 1000, "vector": [1.0, 1.0, 1.0, 1.0], "payload": {"group_id": "proj-1", "new": true}},
            {"id": 1, "vector": [9.0, 9.0, 9.0, 9.0], "payload": {"group_id": "proj-2", "changed": true}}
        ]),
    );
    let filter = r#"{"must": [{"key": "group_id", "match": {"value": "proj-1"}}]}"#;
    let dry = env.run(&[
        "restore",
        backup.to_str().unwrap(),
        "--collection",
        "memories",
        "--filter",
        filter,
        "--dry-run",
        "--json",
    ]);
    dry.assert_code(0);
    let report: Value = serde_json::from_str(&dry.stdout).expect("json");
    assert_eq!(report["merge"]["matched"], 20, "{report}");
    assert_eq!(report["merge"]["existing"], 0, "{report}");
    assert_eq!(count(&url, "memories"), 21, "a dry run changes nothing");

    env.run(&[
        "restore",
        backup.to_str().unwrap(),
        "--collection",
        "memories",
        "--filter",
        filter,
        "--force",
    ])
    .assert_code(0);
    let now = scroll_all(&url, "memories");
    let by_id = |points: &[Value], id: u64| points.iter().find(|p| p["id"] == id).cloned();
    for id in (2..=40).step_by(2) {
        assert_eq!(by_id(&now, id), by_id(&at_backup, id), "point {id} is back");
    }
    assert_eq!(
        by_id(&now, 1).unwrap()["payload"]["changed"],
        true,
        "outside the filter: untouched"
    );
    assert!(
        by_id(&now, 1000).is_some(),
        "written after the backup: kept"
    );
    assert_eq!(now.len(), 41);
    let left: Vec<String> = env
        .double
        .collection_names()
        .into_iter()
        .filter(|c| c.starts_with("aimem-merge-"))
        .collect();
    assert!(left.is_empty(), "temporary collections left: {left:?}");
}

#[test]
fn filter_merges_one_groups_deleted_points_back_from_a_logical_backup() {
    merge_from("logical");
}

#[test]
fn filter_merges_one_groups_deleted_points_back_from_a_snapshot_backup() {
    merge_from("snapshot");
}

#[test]
fn a_filter_that_is_not_a_json_object_is_refused_before_anything_changes() {
    let env = TestEnv::new();
    groups(&env.double.url());
    let backup = env.backup(&["--format", "logical", "--collection", "memories"]);
    for bad in ["[1, 2]", "{not json", "\"must\""] {
        env.run(&[
            "restore",
            backup.to_str().unwrap(),
            "--collection",
            "memories",
            "--filter",
            bad,
            "--force",
        ])
        .assert_code(1)
        .assert_stderr_contains("not a Qdrant filter");
    }
    assert_eq!(env.double.collection_names(), ["memories"]);
}

#[test]
fn a_logical_restore_stopped_by_a_signal_puts_the_collection_back_exactly() {
    let env = TestEnv::new();
    let url = env.double.url();
    groups(&url);
    let backup = env.backup(&["--format", "logical", "--collection", "memories"]);
    // What the collection holds when the restore starts: not what the backup holds.
    upsert(
        &url,
        "memories",
        json!([{"id": 777, "vector": [7.0, 7.0, 7.0, 7.0], "payload": {"group_id": "later"}}]),
    );
    let before = scroll_all(&url, "memories");
    env.double.inject(Fault::always(
        Some("PUT"),
        "/collections/memories/points",
        FaultKind::Delay(Duration::from_millis(400)),
    ));
    env.double.clear_requests();
    let (code, stderr) = terminated_while_writing(
        &env,
        &["restore", backup.to_str().unwrap(), "--force"],
        Duration::ZERO,
    );
    assert_eq!(code, Some(143), "{stderr}");
    assert!(stderr.contains("rolled back"), "{stderr}");
    assert_eq!(scroll_all(&url, "memories"), before);
}

/// Runs `aimem args`, sends it SIGTERM `after` its first upsert into `memories` arrived, and
/// returns its exit code and stderr (the double's faults cleared after).
fn terminated_while_writing(
    env: &TestEnv,
    args: &[&str],
    after: Duration,
) -> (Option<i32>, String) {
    let command = env.command(args);
    terminated_at(
        &env.double,
        command,
        "PUT",
        "/collections/memories/points",
        after,
    )
}

/// Spawns `command`, sends it SIGTERM `after` a `method` request of `path` reached `double`,
/// and returns its exit code and stderr (`double`'s faults cleared after).
fn terminated_at(
    double: &Double,
    mut command: std::process::Command,
    method: &str,
    path: &str,
    after: Duration,
) -> (Option<i32>, String) {
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for_request(double, method, |p| p == path);
    std::thread::sleep(after);
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("output");
    double.clear_faults();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn verify_finds_a_damaged_points_file_and_a_crafted_file_name() {
    let env = TestEnv::new();
    groups(&env.double.url());
    let backup = env.backup(&["--format", "logical", "--collection", "memories"]);
    let files = parquet_files(&backup, "memories");
    // Damage one file's structure (a stretch cut out of its first column chunk, the ids) and
    // make the checksums agree: only decoding it finds the damage. (Flipped bits inside a
    // dense vector's values, which are stored raw, would decode: only the checksums catch
    // those.)
    let damaged = &files[0];
    let mut bytes = std::fs::read(damaged).unwrap();
    bytes.drain(16..144);
    std::fs::write(damaged, &bytes).unwrap();
    let sha = super::support::sha256_hex(damaged);
    super::support::edit_manifest(&backup, |m| {
        m["collections"]["memories"]["points"]["files"][0]["sha256"] = json!(sha);
    });
    let run = env.run(&["verify", backup.to_str().unwrap(), "--json"]);
    run.assert_code(2);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let kinds: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"points_damaged"), "{report}");

    super::support::edit_manifest(&backup, |m| {
        m["collections"]["memories"]["points"]["files"][0]["file"] = json!("../../outside.parquet");
    });
    let run = env.run(&["restore", backup.to_str().unwrap(), "--force"]);
    run.assert_code(2).assert_stderr_contains("expected");
}

#[test]
fn list_shows_each_backups_format() {
    let env = TestEnv::new();
    groups(&env.double.url());
    env.backup(&["--format", "logical", "--collection", "memories"]);
    let run = env.run(&["list", "--json"]);
    run.assert_code(0);
    let rows: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(rows["backups"][0]["format"], "logical", "{rows}");
    let table = env.run(&["list"]);
    table.assert_code(0);
    assert!(table.stdout.contains("FORMAT") && table.stdout.contains("logical"));
}

#[test]
fn a_merge_stopped_by_a_signal_puts_the_live_points_back_and_deletes_the_added() {
    let env = TestEnv::new();
    let url = env.double.url();
    create(
        &url,
        "memories",
        json!({"vectors": {"size": 4, "distance": "Dot"}}),
    );
    let points: Vec<Value> = (1..=600u64)
        .map(|i| {
            json!({"id": i, "vector": [i as f64, 0.5, 0.25, 1.0],
                   "payload": {"group_id": if i % 2 == 0 { "proj-1" } else { "proj-2" }}})
        })
        .collect();
    upsert(&url, "memories", Value::Array(points));
    let backup = env.backup(&["--format", "logical", "--collection", "memories"]);
    let (status, _) = call(
        "POST",
        &format!("{url}/collections/memories/points/delete?wait=true"),
        Some(json!({"filter": {"must": [{"key": "group_id", "match": {"value": "proj-1"}}]}})),
    );
    assert_eq!(status, 200);
    // One point of the group exists again, changed: the merge overwrites it.
    upsert(
        &url,
        "memories",
        json!([{"id": 2, "vector": [2.0, 2.0, 2.0, 2.0], "payload": {"group_id": "proj-1", "rewritten": true}}]),
    );
    let before = scroll_all(&url, "memories");
    env.double.inject(Fault::always(
        Some("PUT"),
        "/collections/memories/points",
        FaultKind::Delay(Duration::from_millis(500)),
    ));
    env.double.clear_requests();
    // The first page is written (the request is answered after the delay); stop during the
    // second.
    let (code, stderr) = terminated_while_writing(
        &env,
        &[
            "restore",
            backup.to_str().unwrap(),
            "--collection",
            "memories",
            "--filter",
            r#"{"must": [{"key": "group_id", "match": {"value": "proj-1"}}]}"#,
            "--force",
        ],
        Duration::from_millis(700),
    );
    assert_eq!(code, Some(143), "{stderr}");
    assert!(stderr.contains("the merge undone"), "{stderr}");
    assert_eq!(scroll_all(&url, "memories"), before);
    assert_eq!(env.double.collection_names(), ["memories"]);
}

#[test]
fn a_setting_the_target_does_not_know_stops_the_restore_unless_allowed() {
    let new = Double::start(keyed_config());
    create(
        &new.url(),
        "tuned",
        json!({"vectors": {"size": 4, "distance": "Dot"},
               "optimizers_config": {"deleted_threshold": 0.3, "prevent_unoptimized": true}}),
    );
    upsert(
        &new.url(),
        "tuned",
        json!([{"id": 1, "vector": [1.0, 0.5, 0.25, 0.125], "payload": {}}]),
    );
    let world = World::new();
    let backup = world.backup_with(
        &new.url(),
        &["--format", "logical", "--collection", "tuned"],
    );
    let old = Double::start(Config {
        api_key: Some(KEY.to_string()),
        ..Config::v1_16_3()
    });
    let refused = world.run(&old.url(), &["restore", &backup, "--force"]);
    refused
        .assert_code(4)
        .assert_stderr_contains("optimizer_config.prevent_unoptimized")
        .assert_stderr_contains("--allow-unknown-settings");
    assert!(
        old.collection_names().is_empty(),
        "the collection it created is deleted"
    );
    world
        .run(
            &old.url(),
            &["restore", &backup, "--force", "--allow-unknown-settings"],
        )
        .assert_code(0)
        .assert_stderr_contains("does not know optimizer_config.prevent_unoptimized");
    assert_eq!(count(&old.url(), "tuned"), 1);
    let info = old.collection_info("tuned").unwrap();
    assert_eq!(info["config"]["optimizer_config"]["deleted_threshold"], 0.3);
}

/// Waits until every peer sees every replica of `name` Active (a new shard key's replicas
/// initialize first, and take no reads meanwhile).
fn wait_active(cluster: &Cluster, name: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let active = |url: &str| {
        let (_, view) = call("GET", &format!("{url}/collections/{name}/cluster"), None);
        let result = &view["result"];
        ["local_shards", "remote_shards"].iter().all(|side| {
            result[side]
                .as_array()
                .is_some_and(|shards| shards.iter().all(|s| s["state"] == "Active"))
        })
    };
    while !cluster.urls().iter().all(|url| active(url)) {
        assert!(std::time::Instant::now() < deadline, "{name} never settled");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_custom_sharded_collection_keeps_its_shard_keys_and_each_keys_points() {
    let source = Cluster::start(3, keyed_config());
    let url = source.url(0);
    create(
        &url,
        "tenants",
        json!({"vectors": {"size": 4, "distance": "Dot"}, "sharding_method": "custom",
               "replication_factor": 2}),
    );
    for key in ["tenant-a", "tenant-b"] {
        let (status, answer) = call(
            "PUT",
            &format!("{url}/collections/tenants/shards?wait=true"),
            Some(json!({"shard_key": key})),
        );
        assert_eq!(status, 200, "{answer}");
    }
    wait_active(&source, "tenants");
    for (key, ids) in [("tenant-a", 1..=30u64), ("tenant-b", 31..=40u64)] {
        let points: Vec<Value> = ids
            .map(|i| json!({"id": i, "vector": [i as f64, 1.0, 0.5, 0.25], "payload": {"n": i}}))
            .collect();
        let (status, answer) = call(
            "PUT",
            &format!("{url}/collections/tenants/points?wait=true"),
            Some(json!({"points": points, "shard_key": key})),
        );
        assert_eq!(status, 200, "{answer}");
    }
    let world = World::new();
    let backup = world.backup_with(&url, &["--format", "logical", "--collection", "tenants"]);
    assert_eq!(
        manifest(Path::new(&backup))["collections"]["tenants"]["records"],
        40
    );
    let definition =
        &manifest(Path::new(&backup))["collections"]["tenants"]["points"]["definition"];
    assert_eq!(definition["shard_keys"], json!(["tenant-a", "tenant-b"]));
    assert_eq!(definition["key_records"], json!([30, 10]));

    let target = Cluster::start(2, keyed_config());
    world
        .run(&target.url(0), &["restore", &backup, "--force"])
        .assert_code(0);
    for (key, expected) in [("tenant-a", 30), ("tenant-b", 10)] {
        let (_, answer) = call(
            "POST",
            &format!("{}/collections/tenants/points/count", target.url(1)),
            Some(json!({"exact": true, "shard_key": key})),
        );
        assert_eq!(answer["result"]["count"], expected, "{key}: {answer}");
    }
    let restored = scroll_all(&target.url(1), "tenants");
    assert_eq!(restored.len(), 40, "every point, whichever peer is asked");
    // Again over the collection, which holds another point meanwhile: emptied key by key
    // (Qdrant refuses a delete without a key there), the backup's points exactly.
    let (status, answer) = call(
        "PUT",
        &format!("{}/collections/tenants/points?wait=true", target.url(0)),
        Some(
            json!({"points": [{"id": 999, "vector": [1.0, 1.0, 1.0, 1.0], "payload": {}}],
                    "shard_key": "tenant-a"}),
        ),
    );
    assert_eq!(status, 200, "{answer}");
    world
        .run(&target.url(0), &["restore", &backup, "--force"])
        .assert_code(0);
    assert_eq!(scroll_all(&target.url(1), "tenants"), restored);
}

#[test]
fn a_collection_read_in_several_id_ranges_comes_back_whole_with_no_point_twice() {
    let env = TestEnv::new();
    let url = env.double.url();
    create(
        &url,
        "big",
        json!({"vectors": {"size": 4, "distance": "Dot"}}),
    );
    // Integers and UUIDs, so a range boundary can fall on either side of their border.
    let points: Vec<Value> = (0..1500u64)
        .map(|i| {
            let id = match i % 3 {
                0 => json!(format!("{:08x}-0000-4000-8000-{:012x}", i, i)),
                _ => json!(i * 7),
            };
            json!({"id": id, "vector": [i as f64, 1.0, 0.5, 0.25], "payload": {"n": i}})
        })
        .collect();
    for chunk in points.chunks(500) {
        upsert(&url, "big", Value::Array(chunk.to_vec()));
    }
    let before = scroll_all(&url, "big");
    let backup = env.backup(&["--format", "logical", "--collection", "big", "--jobs", "1"]);
    let files = manifest(&backup)["collections"]["big"]["points"]["files"].clone();
    assert_eq!(files.as_array().unwrap().len(), 4, "{files}");
    let rows: u64 = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, 1500);
    let (status, _) = call("DELETE", &format!("{url}/collections/big"), None);
    assert_eq!(status, 200);
    env.run(&["restore", backup.to_str().unwrap(), "--force"])
        .assert_code(0);
    assert_eq!(scroll_all(&url, "big"), before);
}

/// Of `requests`, the reads of collection `name`'s info before the first count of its points
/// (the check's, after the wait for its index).
fn reads_before_the_check(requests: &[qdrant_double::RecordedRequest], name: &str) -> usize {
    let counted = requests
        .iter()
        .position(|r| r.method == "POST" && r.path == format!("/collections/{name}/points/count"))
        .expect("the check's count");
    requests[..counted]
        .iter()
        .filter(|r| r.method == "GET" && r.path == format!("/collections/{name}"))
        .count()
}

/// Whether the double received a `PATCH` of collection `name`'s settings.
fn patched(double: &Double, name: &str) -> bool {
    double
        .requests()
        .iter()
        .any(|r| r.method == "PATCH" && r.path == format!("/collections/{name}"))
}

/// A collection of `points` 4-d points whose recorded indexing threshold is 1 KiB (64 of its
/// points), and one of 300 points with the default threshold (10,000 KiB, never reached).
fn indexed_and_small(url: &str, points: u64) {
    create(
        url,
        "indexed",
        json!({"vectors": {"size": 4, "distance": "Dot"},
               "optimizers_config": {"indexing_threshold": 1}}),
    );
    create(
        url,
        "small",
        json!({"vectors": {"size": 4, "distance": "Dot"}}),
    );
    let some = |n: u64| -> Value {
        (0..n)
            .map(|i| json!({"id": i, "vector": [i as f64, 0.5, 0.25, 1.0], "payload": {"n": i}}))
            .collect()
    };
    upsert(url, "indexed", some(points));
    upsert(url, "small", some(300));
}

#[test]
fn a_collection_qdrant_would_index_is_loaded_with_indexing_off_and_ends_with_its_threshold() {
    let env = TestEnv::new();
    let url = env.double.url();
    indexed_and_small(&url, 300);
    let before = scroll_all(&url, "indexed");
    let backup = env.backup(&["--format", "logical", "--all"]);
    for name in ["indexed", "small"] {
        let (status, _) = call("DELETE", &format!("{url}/collections/{name}"), None);
        assert_eq!(status, 200);
    }
    env.double.clear_requests();
    env.run(&["restore", backup.to_str().unwrap(), "--force"])
        .assert_code(0);

    // Every point went in while its indexing was off, then the recorded threshold came back.
    assert_eq!(env.double.unindexed_writes("indexed"), 300);
    let info = env.double.collection_info("indexed").unwrap();
    assert_eq!(info["config"]["optimizer_config"]["indexing_threshold"], 1);
    assert_eq!(scroll_all(&url, "indexed"), before);
    let requests = env.double.requests();
    let last_upsert = requests
        .iter()
        .rposition(|r| r.method == "PUT" && r.path == "/collections/indexed/points")
        .expect("upserts");
    let patch = requests
        .iter()
        .position(|r| r.method == "PATCH" && r.path == "/collections/indexed")
        .expect("the threshold set back");
    assert!(
        patch > last_upsert,
        "the threshold came back after the load"
    );
    // The double answers yellow to the first read after the change: the wait read on until
    // green, and only then did the check read the collection and count its points.
    let reads = reads_before_the_check(&requests[patch..], "indexed");
    assert!(
        reads >= 3,
        "{reads} reads between the change and the check's count: the yellow one, the green one \
         that ended the wait and the check's own"
    );

    // One whose vectors never reach a segment's threshold is created as recorded.
    assert_eq!(env.double.unindexed_writes("small"), 0);
    assert!(
        !requests
            .iter()
            .any(|r| r.method == "PATCH" && r.path == "/collections/small")
    );
    let info = env.double.collection_info("small").unwrap();
    assert_eq!(
        info["config"]["optimizer_config"]["indexing_threshold"],
        10000
    );
}

#[test]
fn a_collection_whose_threshold_cannot_be_set_back_is_rolled_back() {
    let env = TestEnv::new();
    let url = env.double.url();
    indexed_and_small(&url, 100);
    let backup = env.backup(&["--format", "logical", "--collection", "indexed"]);
    let (status, _) = call("DELETE", &format!("{url}/collections/indexed"), None);
    assert_eq!(status, 200);
    env.double.inject(Fault::always(
        Some("PATCH"),
        "/collections/indexed",
        FaultKind::Status {
            code: 500,
            message: "Service internal error: no".into(),
        },
    ));
    let run = env.run(&["restore", backup.to_str().unwrap(), "--force"]);
    env.double.clear_faults();
    run.assert_code(4)
        .assert_stderr_contains("setting the indexing threshold of")
        .assert_stderr_contains("rolled back");
    assert_eq!(env.double.collection_names(), ["small"]);
}

#[test]
fn a_collection_restored_into_a_cluster_is_waited_for_until_every_peer_built_its_index() {
    let env = TestEnv::new();
    let url = env.double.url();
    indexed_and_small(&url, 200);
    let before = scroll_all(&url, "indexed");
    let backup = folder_of(&env.run(&["backup", "--format", "logical", "--collection", "indexed"]));
    let cluster = Cluster::start(3, keyed_config());
    let world = World::new();
    world
        .run(
            &cluster.url(0),
            &[
                "restore",
                backup.to_str().unwrap(),
                "--force",
                "--shard-number",
                "1",
            ],
        )
        .assert_code(0)
        .assert_stderr_contains("its vector index built once its points are in");
    // The peers share one state in the double, so any peer shows the threshold; what tells the
    // wait read every peer is what each answered after the change: each built its own index
    // (yellow), and each was read until green.
    let statuses = cluster
        .statuses_since_indexing("indexed")
        .expect("the threshold came back");
    for peer in cluster.peer_ids() {
        let seen = statuses.get(&peer).cloned().unwrap_or_default();
        let green = seen.iter().position(|s| s == "green");
        assert!(
            seen.first().is_some_and(|s| s == "yellow") && green.is_some(),
            "peer {peer} answered {seen:?} after the change"
        );
    }
    for peer in 0..3 {
        let (_, info) = call(
            "GET",
            &format!("{}/collections/indexed", cluster.url(peer)),
            None,
        );
        assert_eq!(
            info["result"]["config"]["optimizer_config"]["indexing_threshold"], 1,
            "peer {peer}"
        );
    }
    assert_eq!(scroll_all(&cluster.url(2), "indexed"), before);
}

/// What a restore killed (`kill -9`) between its load and setting the threshold back leaves: the
/// collection created with its indexing off (threshold 0) and part of its points.
fn left_by_a_killed_restore(url: &str) {
    let (status, _) = call("DELETE", &format!("{url}/collections/indexed"), None);
    assert_eq!(status, 200);
    create(
        url,
        "indexed",
        json!({"vectors": {"size": 4, "distance": "Dot"},
               "optimizers_config": {"indexing_threshold": 0}}),
    );
    let points: Vec<Value> = (0..50u64)
        .map(|i| json!({"id": i, "vector": [1.0, 1.0, 1.0, 1.0], "payload": {}}))
        .collect();
    upsert(url, "indexed", Value::Array(points));
}

#[test]
fn an_overwrite_gives_back_a_threshold_a_killed_restore_left_at_0_and_leaves_a_right_one_alone() {
    let env = TestEnv::new();
    let url = env.double.url();
    indexed_and_small(&url, 300);
    let before = scroll_all(&url, "indexed");
    let backup = env.backup(&["--format", "logical", "--all"]);
    left_by_a_killed_restore(&url);
    env.double.clear_requests();
    env.run(&["restore", backup.to_str().unwrap(), "--force"])
        .assert_code(0)
        .assert_stderr_contains("had its indexing threshold at 0");

    let info = env.double.collection_info("indexed").unwrap();
    assert_eq!(info["config"]["optimizer_config"]["indexing_threshold"], 1);
    assert_eq!(scroll_all(&url, "indexed"), before);
    let requests = env.double.requests();
    let patches: Vec<usize> = (0..requests.len())
        .filter(|&i| requests[i].method == "PATCH" && requests[i].path == "/collections/indexed")
        .collect();
    assert_eq!(patches.len(), 1, "set once, and not set back");
    let reads = reads_before_the_check(&requests[patches[0]..], "indexed");
    assert!(
        reads >= 3,
        "{reads} reads: the wait for the index did not run"
    );
    // Its threshold is the recorded one already: not touched.
    assert!(!patched(&env.double, "small"));
    let info = env.double.collection_info("small").unwrap();
    assert_eq!(
        info["config"]["optimizer_config"]["indexing_threshold"],
        10000
    );
}

/// A threshold the existing collection was given on purpose is its own, as its other settings
/// are: an overwrite keeps it, and its check passes.
#[test]
fn an_overwrite_keeps_a_threshold_other_than_0_that_the_collection_has() {
    let env = TestEnv::new();
    let url = env.double.url();
    indexed_and_small(&url, 300);
    let before = scroll_all(&url, "indexed");
    let backup = env.backup(&["--format", "logical", "--collection", "indexed"]);
    let (status, _) = call(
        "PATCH",
        &format!("{url}/collections/indexed"),
        Some(json!({"optimizers_config": {"indexing_threshold": 5}})),
    );
    assert_eq!(status, 200);
    env.double.clear_requests();
    let run = env.run(&["restore", backup.to_str().unwrap(), "--force"]);
    run.assert_code(0);
    assert!(!run.stderr.contains("indexing threshold"), "{}", run.stderr);
    assert!(!patched(&env.double, "indexed"));
    let info = env.double.collection_info("indexed").unwrap();
    assert_eq!(info["config"]["optimizer_config"]["indexing_threshold"], 5);
    assert_eq!(scroll_all(&url, "indexed"), before);
}

#[test]
fn a_definition_whose_threshold_is_0_or_unset_is_loaded_as_it_is_and_never_patched() {
    let env = TestEnv::new();
    let url = env.double.url();
    indexed_and_small(&url, 300);
    create(
        &url,
        "off",
        json!({"vectors": {"size": 4, "distance": "Dot"},
               "optimizers_config": {"indexing_threshold": 0}}),
    );
    let points: Vec<Value> = (0..300u64)
        .map(|i| json!({"id": i, "vector": [i as f64, 0.5, 0.25, 1.0], "payload": {}}))
        .collect();
    upsert(&url, "off", Value::Array(points));
    let backup = env.backup(&[
        "--format",
        "logical",
        "--collection",
        "off",
        "--collection",
        "indexed",
    ]);
    // A definition without a threshold of its own (big enough to be indexed were it 1).
    super::support::edit_manifest(&backup, |m| {
        let config = &mut m["collections"]["indexed"]["points"]["definition"]["config"];
        assert_eq!(config["optimizer_config"]["indexing_threshold"], 1);
        config["optimizer_config"]["indexing_threshold"] = Value::Null;
    });
    for name in ["off", "indexed"] {
        let (status, _) = call("DELETE", &format!("{url}/collections/{name}"), None);
        assert_eq!(status, 200);
    }
    env.double.clear_requests();
    env.run(&["restore", backup.to_str().unwrap(), "--force"])
        .assert_code(0);
    // Created as recorded: indexing off for good, and the server's default.
    assert_eq!(env.double.unindexed_writes("off"), 300);
    assert_eq!(env.double.unindexed_writes("indexed"), 0);
    let threshold = |name: &str| {
        env.double.collection_info(name).unwrap()["config"]["optimizer_config"]
            ["indexing_threshold"]
            .clone()
    };
    assert_eq!(threshold("off"), 0);
    assert_eq!(threshold("indexed"), 10000);
    // Over themselves: nothing to set either.
    env.run(&["restore", backup.to_str().unwrap(), "--force"])
        .assert_code(0);
    assert!(!patched(&env.double, "off"));
    assert!(!patched(&env.double, "indexed"));
    assert_eq!(
        (threshold("off"), threshold("indexed")),
        (json!(0), json!(10000))
    );
}

#[test]
fn a_restore_stopped_before_it_set_the_threshold_back_deletes_what_it_created() {
    let env = TestEnv::new();
    let url = env.double.url();
    indexed_and_small(&url, 300);
    let backup = env.backup(&["--format", "logical", "--collection", "indexed"]);
    let (status, _) = call("DELETE", &format!("{url}/collections/indexed"), None);
    assert_eq!(status, 200);
    env.double.inject(Fault::always(
        Some("PUT"),
        "/collections/indexed/points",
        FaultKind::Delay(Duration::from_millis(400)),
    ));
    env.double.clear_requests();
    let command = env.command(&["restore", backup.to_str().unwrap(), "--force"]);
    let (code, stderr) = terminated_at(
        &env.double,
        command,
        "PUT",
        "/collections/indexed/points",
        Duration::ZERO,
    );
    assert_eq!(code, Some(143), "{stderr}");
    assert!(stderr.contains("rolled back"), "{stderr}");
    // Nothing half-made: no collection left with its indexing off.
    assert_eq!(env.double.collection_names(), ["small"]);
    assert!(!patched(&env.double, "indexed"));
}

#[test]
fn a_restore_stopped_after_it_set_an_existing_clusters_threshold_sets_it_back() {
    let env = TestEnv::new();
    indexed_and_small(&env.double.url(), 200);
    let backup = env.backup(&["--format", "logical", "--collection", "indexed"]);
    // Every peer builds its index for as long as the test lasts.
    let cluster = Cluster::start(
        3,
        Config {
            indexing_reads: 1_000_000,
            ..keyed_config()
        },
    );
    let url = cluster.url(0);
    create(
        &url,
        "indexed",
        json!({"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 1,
               "replication_factor": 2, "optimizers_config": {"indexing_threshold": 0}}),
    );
    wait_active(&cluster, "indexed");
    let points: Vec<Value> = (0..50u64)
        .map(|i| json!({"id": i, "vector": [1.0, 1.0, 1.0, 1.0], "payload": {}}))
        .collect();
    upsert(&url, "indexed", Value::Array(points));
    let before = scroll_all(&url, "indexed");
    let world = World::new();
    let command = world.command(&url, &["restore", backup.to_str().unwrap(), "--force"]);
    // Stopped while it waits for the index the threshold it set asked for.
    let (code, stderr) = terminated_at(
        cluster.peer(0),
        command,
        "PATCH",
        "/collections/indexed",
        Duration::from_millis(500),
    );
    assert_eq!(code, Some(143), "{stderr}");
    assert!(
        stderr.contains("its indexing threshold set back to 0"),
        "{stderr}"
    );
    assert!(stderr.contains("rolled back"), "{stderr}");
    // Recovering the shards would not have put the collection's settings back.
    for peer in 0..3 {
        let (_, info) = call(
            "GET",
            &format!("{}/collections/indexed", cluster.url(peer)),
            None,
        );
        assert_eq!(
            info["result"]["config"]["optimizer_config"]["indexing_threshold"], 0,
            "peer {peer}"
        );
    }
    assert_eq!(scroll_all(&url, "indexed"), before);
}

/// On a single node too: the pre-restore snapshot recovered into the existing collection keeps
/// the collection's configuration (docs/qdrant.md, "Uploads and recovery"), so the rollback
/// sets the threshold back itself, once the points are back.
#[test]
fn a_restore_stopped_after_it_set_an_existing_collections_threshold_sets_it_back() {
    // The index is built for as long as the test lasts: the restore waits for it.
    let env = TestEnv::with_config(Config {
        indexing_reads: 1_000_000,
        ..keyed_config()
    });
    let url = env.double.url();
    indexed_and_small(&url, 200);
    let backup = env.backup(&["--format", "logical", "--collection", "indexed"]);
    left_by_a_killed_restore(&url);
    let before = scroll_all(&url, "indexed");
    env.double.clear_requests();
    let command = env.command(&["restore", backup.to_str().unwrap(), "--force"]);
    let (code, stderr) = terminated_at(
        &env.double,
        command,
        "PATCH",
        "/collections/indexed",
        Duration::from_millis(500),
    );
    assert_eq!(code, Some(143), "{stderr}");
    assert!(
        stderr.contains("its indexing threshold set back to 0"),
        "{stderr}"
    );
    assert!(stderr.contains("rolled back"), "{stderr}");
    let info = env.double.collection_info("indexed").unwrap();
    assert_eq!(info["config"]["optimizer_config"]["indexing_threshold"], 0);
    assert_eq!(scroll_all(&url, "indexed"), before);
    let requests = env.double.requests();
    let upload = requests
        .iter()
        .position(|r| r.method == "POST" && r.path == "/collections/indexed/snapshots/upload")
        .expect("the pre-restore snapshot uploaded");
    let set_back = requests
        .iter()
        .rposition(|r| r.method == "PATCH" && r.path == "/collections/indexed")
        .expect("a PATCH");
    assert!(
        set_back > upload,
        "the threshold was set back before the points"
    );
}

#[test]
fn a_filters_temporary_collection_is_loaded_with_indexing_as_it_is() {
    let env = TestEnv::new();
    let url = env.double.url();
    create(
        &url,
        "memories",
        json!({"vectors": {"size": 4, "distance": "Dot"},
               "optimizers_config": {"indexing_threshold": 1}}),
    );
    let points: Vec<Value> = (1..=300u64)
        .map(|i| {
            json!({"id": i, "vector": [i as f64, 0.5, 0.25, 1.0],
                   "payload": {"group_id": if i % 2 == 0 { "proj-1" } else { "proj-2" }}})
        })
        .collect();
    upsert(&url, "memories", Value::Array(points));
    let before = scroll_all(&url, "memories");
    let backup = env.backup(&["--format", "logical", "--collection", "memories"]);
    let filter = r#"{"must": [{"key": "group_id", "match": {"value": "proj-1"}}]}"#;
    let (status, _) = call(
        "POST",
        &format!("{url}/collections/memories/points/delete?wait=true"),
        Some(json!({"filter": serde_json::from_str::<Value>(filter).unwrap()})),
    );
    assert_eq!(status, 200);
    env.double.clear_requests();
    env.run(&[
        "restore",
        backup.to_str().unwrap(),
        "--collection",
        "memories",
        "--filter",
        filter,
        "--force",
    ])
    .assert_code(0);
    assert_eq!(scroll_all(&url, "memories"), before);
    let requests = env.double.requests();
    let temporary = requests
        .iter()
        .find(|r| r.method == "PUT" && r.path.starts_with("/collections/aimem-"))
        .map(|r| r.path["/collections/".len()..].to_string())
        .expect("the temporary collection created");
    assert!(!temporary.contains('/'), "{temporary}");
    // Its 150 points would reach the recorded threshold: still loaded as recorded.
    assert_eq!(env.double.unindexed_writes(&temporary), 0, "{temporary}");
    assert!(!patched(&env.double, &temporary), "{temporary}");
}

/// Upserts are cut by their bodies' bytes too (8 MiB), not only at 256 points: points with
/// big payloads, which would make one body past Qdrant's request limit (32 MiB by default, not
/// enforced by the double), go in several, and a point bigger than that goes alone.
#[test]
fn points_with_big_payloads_are_upserted_in_bodies_of_at_most_8_mib() {
    const BUDGET: u64 = 8 << 20;
    const BIG: usize = (8 << 20) + (512 << 10);
    let env = TestEnv::new();
    let url = env.double.url();
    create(
        &url,
        "big",
        json!({"vectors": {"size": 4, "distance": "Dot"}}),
    );
    // Ten points of 600 KiB, the seventh of 8.5 MiB: 14 MiB, one scroll page of the backup.
    let points: Vec<Value> = (1..=11u64)
        .map(|i| {
            let size = if i == 7 { BIG } else { 600 << 10 };
            json!({"id": i, "vector": [i as f64, 0.5, 0.25, 1.0],
                   "payload": {"text": "x".repeat(size)}})
        })
        .collect();
    env.double
        .upsert_records("big", Value::Array(points))
        .unwrap();
    let before = env.double.records("big").unwrap();
    let backup = env.backup(&["--format", "logical", "--collection", "big"]);
    let (status, _) = call("DELETE", &format!("{url}/collections/big"), None);
    assert_eq!(status, 200);
    env.double.clear_requests();
    env.run(&["restore", backup.to_str().unwrap(), "--force"])
        .assert_code(0);
    assert!(
        env.double.records("big").unwrap() == before,
        "points differ"
    );
    let sizes: Vec<u64> = env
        .double
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path == "/collections/big/points")
        .map(|r| r.headers["content-length"].parse().unwrap())
        .collect();
    // 3.5 MiB; the big point alone; 2.3 MiB.
    assert_eq!(sizes.len(), 3, "{sizes:?}");
    assert!(sizes[0] <= BUDGET && sizes[2] <= BUDGET, "{sizes:?}");
    let alone = BIG as u64..BIG as u64 + 4096;
    assert!(
        alone.contains(&sizes[1]),
        "{sizes:?}: the big point not alone"
    );
}

/// Rewrites the one points file of `collection` in `backup` with `rows` (an id, and its sparse
/// vector `s` as indices and values), in the file's own schema and footer, and makes the
/// manifest and the checksums agree: a file aimem's writer would refuse to write.
fn rewrite_sparse_points(backup: &Path, collection: &str, rows: &[(&str, Vec<i32>, Vec<f32>)]) {
    use parquet::data_type::{ByteArray, ByteArrayType, FloatType, Int32Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::writer::SerializedFileWriter;
    let files = parquet_files(backup, collection);
    assert_eq!(files.len(), 1, "{files:?}");
    let path = &files[0];
    let (schema, footer) = {
        let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
        let meta = reader.metadata().file_metadata();
        (
            meta.schema_descr().root_schema_ptr(),
            meta.key_value_metadata().cloned(),
        )
    };
    // As aimem writes it: without dictionaries, which its reader refuses.
    let props = WriterProperties::builder()
        .set_dictionary_enabled(false)
        .set_key_value_metadata(footer)
        .build();
    let out = std::fs::File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(out, schema, std::sync::Arc::new(props)).unwrap();
    let mut group = writer.next_row_group().unwrap();
    // id; payload and shard key (none); the vector's indices and values, each a list a row.
    let ids: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(r.0)).collect();
    let none = vec![0i16; rows.len()];
    let list_levels = |lengths: Vec<usize>| {
        let (mut def, mut rep) = (Vec::new(), Vec::new());
        for n in lengths {
            for k in 0..n {
                def.push(2);
                rep.push(i16::from(k > 0));
            }
        }
        (def, rep)
    };
    let indices: Vec<i32> = rows.iter().flat_map(|r| r.1.clone()).collect();
    let (indices_def, indices_rep) = list_levels(rows.iter().map(|r| r.1.len()).collect());
    let values: Vec<f32> = rows.iter().flat_map(|r| r.2.clone()).collect();
    let (values_def, values_rep) = list_levels(rows.iter().map(|r| r.2.len()).collect());
    for leaf in 0..5 {
        let mut column = group.next_column().unwrap().expect("a column");
        match leaf {
            0 => column
                .typed::<ByteArrayType>()
                .write_batch(&ids, None, None),
            1 | 2 => column
                .typed::<ByteArrayType>()
                .write_batch(&[], Some(&none), None),
            3 => column.typed::<Int32Type>().write_batch(
                &indices,
                Some(&indices_def),
                Some(&indices_rep),
            ),
            _ => column.typed::<FloatType>().write_batch(
                &values,
                Some(&values_def),
                Some(&values_rep),
            ),
        }
        .unwrap();
        column.close().unwrap();
    }
    assert!(group.next_column().unwrap().is_none(), "more columns");
    group.close().unwrap();
    writer.close().unwrap();
    let sha = super::support::sha256_hex(path);
    let size = std::fs::metadata(path).unwrap().len();
    super::support::edit_manifest(backup, |m| {
        let file = &mut m["collections"][collection]["points"]["files"][0];
        file["sha256"] = json!(sha);
        file["size_bytes"] = json!(size);
    });
}

#[test]
fn a_sparse_vector_of_more_indices_than_values_fails_verify_and_the_restore() {
    let env = TestEnv::new();
    let url = env.double.url();
    create(&url, "sparse", json!({"sparse_vectors": {"s": {}}}));
    upsert(
        &url,
        "sparse",
        json!([{"id": 1, "vector": {"s": {"indices": [1, 2], "values": [0.5, 0.25]}}, "payload": {}},
               {"id": 2, "vector": {"s": {"indices": [3], "values": [1.0]}}, "payload": {}}]),
    );
    let backup = env.backup(&["--format", "logical", "--collection", "sparse"]);
    // As the backup wrote it, the rewritten file restores.
    rewrite_sparse_points(
        &backup,
        "sparse",
        &[
            ("1", vec![1, 2], vec![0.5, 0.25]),
            ("2", vec![3], vec![1.0]),
        ],
    );
    env.run(&["verify", backup.to_str().unwrap()])
        .assert_code(0);
    // The first point's two indices with one value.
    rewrite_sparse_points(
        &backup,
        "sparse",
        &[("1", vec![1, 2], vec![0.5]), ("2", vec![3], vec![1.0])],
    );
    let run = env.run(&["verify", backup.to_str().unwrap(), "--json"]);
    run.assert_code(2);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let problem = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "points_damaged")
        .cloned()
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        problem
            .to_string()
            .contains("sparse vector `s` of 2 indices and 1 values"),
        "{problem}"
    );
    let (status, _) = call("DELETE", &format!("{url}/collections/sparse"), None);
    assert_eq!(status, 200);
    env.run(&["restore", backup.to_str().unwrap(), "--force"])
        .assert_code(4)
        .assert_stderr_contains("loading the points of `sparse`")
        .assert_stderr_contains("sparse vector `s` of 2 indices and 1 values")
        .assert_stderr_contains("rolled back");
    assert!(env.double.collection_names().is_empty());
}

#[test]
fn points_with_big_payloads_are_read_in_smaller_pages() {
    // 300 points of 100 KB payloads: a page of 256 would be 25 MB, past the 16 MiB aimem reads.
    let env = TestEnv::new();
    let url = env.double.url();
    create(
        &url,
        "big",
        json!({"vectors": {"size": 2, "distance": "Cosine"}}),
    );
    for batch in 0..3u64 {
        let points: Vec<Value> = (0..100u64)
            .map(|i| {
                let id = batch * 100 + i + 1;
                json!({"id": id, "vector": [1.0, id as f32], "payload": {"text": "x".repeat(100_000), "n": id}})
            })
            .collect();
        upsert(&url, "big", Value::Array(points));
    }
    let before = scroll_all(&url, "big");
    assert_eq!(before.len(), 300);
    let run = env.run(&["-v", "backup", "--format", "logical", "--collection", "big"]);
    run.assert_code(0);
    assert!(
        run.all_output().contains("too long"),
        "the page was asked again smaller"
    );
    let backup = folder_of(&run);
    assert_eq!(manifest(&backup)["collections"]["big"]["records"], 300);
    let (status, _) = call("DELETE", &format!("{url}/collections/big"), None);
    assert_eq!(status, 200);
    env.run(&["restore", backup.to_str().unwrap(), "--force"])
        .assert_code(0);
    assert_eq!(scroll_all(&url, "big"), before);
}
