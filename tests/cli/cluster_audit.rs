//! verify, list and diff-schema on cluster backups (issue 12), against the double's
//! multi-peer mode.

use std::io::Write;
use std::path::{Path, PathBuf};

use qdrant_double::{Cluster, Config, info_from_fixture};
use serde_json::{Value, json};

use super::support::{KEY, Run, edit_manifest, json_stdout, manifest, sha256_hex};
use super::support::{World, keyed_config};

/// A cluster of doubles plus a temporary HOME, backup root and install dir.
struct ClusterEnv {
    cluster: Cluster,
    world: World,
}

impl ClusterEnv {
    fn new(peers: usize) -> ClusterEnv {
        let cluster = Cluster::start(peers, keyed_config());
        ClusterEnv {
            cluster,
            world: World::new(),
        }
    }

    /// `aimem` pointed at peer 0 of the cluster.
    fn run(&self, args: &[&str]) -> Run {
        self.world.run(&self.cluster.url(0), args)
    }

    fn seed(&self, shard_number: u32) {
        self.cluster.seed(
            "discussions",
            info_from_fixture("cluster/3-node-collection-info.json"),
            shard_number,
            2,
            (1..=600).collect(),
        );
    }

    /// A fresh backup of `discussions` (three shards, two replicas each).
    fn backup(&self) -> PathBuf {
        self.seed(3);
        let run = self.run(&["backup", "--collection", "discussions"]);
        run.assert_code(0);
        PathBuf::from(run.stdout.trim())
    }
}

fn shard_path(backup: &Path, id: u32) -> PathBuf {
    backup.join(format!("qdrant/discussions/shard-{id}.snapshot"))
}

/// After a test changed shard `id`'s file on purpose: the manifest and CHECKSUMS.sha256 are
/// made to agree with it, so only the deep check can see the damage.
fn reseal_shard(backup: &Path, id: u32) {
    let path = shard_path(backup, id);
    let size = std::fs::metadata(&path).expect("shard").len();
    let sha = sha256_hex(&path);
    edit_manifest(backup, |m| {
        let entry = &mut m["collections"]["discussions"];
        let shards = entry["cluster"]["shards"].as_array_mut().expect("shards");
        let shard = shards
            .iter_mut()
            .find(|s| s["shard_id"] == id)
            .expect("shard");
        shard["size_bytes"] = json!(size);
        shard["sha256"] = json!(sha);
        let total: u64 = shards
            .iter()
            .map(|s| s["size_bytes"].as_u64().expect("size"))
            .sum();
        entry["size_bytes"] = json!(total);
    });
}

/// The problems of `verify --json` about shard `id` of `discussions`.
fn shard_problems(report: &Value, id: u32) -> Vec<Value> {
    report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter(|p| p["shard"] == id && p["collection"] == "discussions")
        .cloned()
        .collect()
}

/// A tar with the given entries (name, bytes); a name ending in `/` is a directory.
fn tar_of(path: &Path, entries: &[(&str, &[u8])]) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).expect("create"));
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        if name.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            header.set_mode(0o755);
            header.set_cksum();
            builder
                .append_data(&mut header, name, std::io::empty())
                .expect("dir");
        } else {
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name, *bytes)
                .expect("file");
        }
    }
    builder.into_inner().expect("tar").flush().expect("flush");
}

/// A shard snapshot laid out as a real Qdrant writes it (docs/qdrant.md, "Snapshot archive
/// layout"): the shard's directory at the archive top, no collection config.json.
fn real_layout_shard(path: &Path, this_peer: u64, is_local: bool) {
    let state = json!({"is_local": is_local, "this_peer_id": this_peer,
                       "peers": {this_peer.to_string(): "Active"}})
    .to_string();
    let segment = vec![7u8; 3000];
    tar_of(
        path,
        &[
            ("segments/", b""),
            (
                "segments/5a1c3d0e-0000-4000-8000-000000000000.tar",
                &segment,
            ),
            ("wal/", b""),
            ("newest_clocks.json", br#"{"clocks":[]}"#),
            ("replica_state.json", state.as_bytes()),
            ("shard_config.json", br#"{"type":"ReplicaSet"}"#),
        ],
    );
}

#[test]
fn a_fresh_cluster_backup_verifies_with_its_shard_files_read() {
    let env = ClusterEnv::new(3);
    let backup = env.backup();
    let run = env.run(&["verify", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(0);
    let report = json_stdout(&run);
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["deep"], true);
    let human = env.run(&["verify", backup.to_str().expect("utf-8")]);
    human.assert_code(0);
    assert!(human.stdout.contains("OK"), "{}", human.stdout);
}

#[test]
fn a_corrupted_shard_file_is_named_by_its_shard() {
    let env = ClusterEnv::new(3);
    let backup = env.backup();
    let path = shard_path(&backup, 1);
    let mut bytes = std::fs::read(&path).expect("shard");
    bytes[700] ^= 0xff;
    std::fs::write(&path, bytes).expect("write");
    let run = env.run(&["verify", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(2);
    let report = json_stdout(&run);
    let problems = shard_problems(&report, 1);
    assert!(
        problems.iter().any(|p| p["kind"] == "mismatch"),
        "{report:#}"
    );
    let human = env.run(&["verify", backup.to_str().expect("utf-8")]);
    human.assert_code(2);
    assert!(
        human.stdout.contains("(shard 1 of `discussions`)"),
        "{}",
        human.stdout
    );
}

#[test]
fn a_missing_shard_file_is_named_by_its_shard() {
    let env = ClusterEnv::new(3);
    let backup = env.backup();
    std::fs::remove_file(shard_path(&backup, 2)).expect("remove");
    let run = env.run(&["verify", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(2);
    let report = json_stdout(&run);
    let problems = shard_problems(&report, 2);
    assert!(
        problems.iter().any(|p| p["kind"] == "missing"),
        "{report:#}"
    );
}

#[test]
fn a_truncated_shard_tar_is_caught_by_the_deep_check_even_with_matching_checksums() {
    let env = ClusterEnv::new(3);
    let backup = env.backup();
    let path = shard_path(&backup, 0);
    let bytes = std::fs::read(&path).expect("shard");
    std::fs::write(&path, &bytes[..bytes.len() - 1536]).expect("truncate");
    reseal_shard(&backup, 0);
    let run = env.run(&["verify", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(2);
    let report = json_stdout(&run);
    let problems = shard_problems(&report, 0);
    assert_eq!(problems.len(), 1, "{report:#}");
    assert_eq!(problems[0]["kind"], "snapshot_damaged", "{report:#}");
    assert!(
        problems[0]["problem"]
            .as_str()
            .expect("text")
            .contains("truncated"),
        "{report:#}"
    );
    assert_eq!(report["problems"].as_array().expect("problems").len(), 1);
    // --no-deep does not read archives: the files themselves agree with the manifest.
    let shallow = env.run(&["verify", "--no-deep", backup.to_str().expect("utf-8")]);
    shallow.assert_code(0);
}

#[test]
fn a_shard_list_that_disagrees_with_shard_number_names_the_missing_shard() {
    let env = ClusterEnv::new(3);
    let backup = env.backup();
    // The manifest forgets shard 2 (its file stays, listed): the shard list no longer covers
    // shard_number 3.
    edit_manifest(&backup, |m| {
        let entry = &mut m["collections"]["discussions"];
        let shards = entry["cluster"]["shards"].as_array_mut().expect("shards");
        shards.retain(|s| s["shard_id"] != 2);
        let total: u64 = shards
            .iter()
            .map(|s| s["size_bytes"].as_u64().expect("size"))
            .sum();
        entry["size_bytes"] = json!(total);
    });
    let run = env.run(&["verify", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(2);
    let report = json_stdout(&run);
    let problems = shard_problems(&report, 2);
    assert!(
        problems.iter().all(|p| p["kind"] == "placement_mismatch"),
        "{report:#}"
    );
    // Missing from the shard list, and its file, still there, is in no shard list.
    assert!(
        problems.iter().any(|p| p["file"] == "manifest.json"
            && p["problem"]
                .as_str()
                .expect("text")
                .contains("missing from the shard list, but shard_number is 3")),
        "{report:#}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p["file"] == "qdrant/discussions/shard-2.snapshot"),
        "{report:#}"
    );
    assert_eq!(problems.len(), 2, "{report:#}");
}

#[test]
fn a_shard_beyond_shard_number_is_named() {
    let env = ClusterEnv::new(3);
    let backup = env.backup();
    // shard_number says 2 (schema and record agree), but the list has shard 2 too.
    edit_manifest(&backup, |m| {
        let entry = &mut m["collections"]["discussions"];
        entry["cluster"]["shard_number"] = json!(2);
    });
    let run = env.run(&["verify", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(2);
    let report = json_stdout(&run);
    let problems = shard_problems(&report, 2);
    assert!(
        problems.iter().any(|p| p["problem"]
            .as_str()
            .expect("text")
            .contains("shard_number is 2")),
        "{report:#}"
    );
    assert!(
        report["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .any(|p| p["problem"]
                .as_str()
                .expect("text")
                .contains("shard_number is 2, its schema says 3")),
        "{report:#}"
    );
}

#[test]
fn a_shard_snapshot_in_the_real_layout_passes_the_deep_check() {
    let env = ClusterEnv::new(3);
    let backup = env.backup();
    let source =
        manifest(&backup)["collections"]["discussions"]["cluster"]["shards"][1]["source_peer"]
            .as_u64()
            .expect("source peer");
    real_layout_shard(&shard_path(&backup, 1), source, true);
    reseal_shard(&backup, 1);
    let run = env.run(&["verify", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(0);
}

#[test]
fn a_shard_file_taken_on_another_peer_or_without_data_is_named() {
    let env = ClusterEnv::new(3);
    let backup = env.backup();
    let shards = manifest(&backup)["collections"]["discussions"]["cluster"]["shards"].clone();
    let source = shards[1]["source_peer"].as_u64().expect("source peer");
    real_layout_shard(&shard_path(&backup, 1), source + 1, true);
    reseal_shard(&backup, 1);
    let run = env.run(&["verify", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(2);
    let report = json_stdout(&run);
    let problems = shard_problems(&report, 1);
    assert_eq!(problems.len(), 1, "{report:#}");
    assert_eq!(problems[0]["kind"], "placement_mismatch");
    assert!(
        problems[0]["problem"]
            .as_str()
            .expect("text")
            .contains(&format!("the manifest says peer {source}")),
        "{report:#}"
    );

    real_layout_shard(&shard_path(&backup, 1), source, false);
    reseal_shard(&backup, 1);
    let run = env.run(&["verify", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(2);
    let report = json_stdout(&run);
    let problems = shard_problems(&report, 1);
    assert_eq!(problems.len(), 1, "{report:#}");
    assert!(
        problems[0]["problem"]
            .as_str()
            .expect("text")
            .contains("is_local"),
        "{report:#}"
    );

    // A collection snapshot put in a shard file's place is no shard snapshot.
    tar_of(
        &shard_path(&backup, 1),
        &[
            ("0/shard_config.json", br#"{"type":"ReplicaSet"}"#),
            ("config.json", br#"{"params":{}}"#),
        ],
    );
    reseal_shard(&backup, 1);
    let run = env.run(&["verify", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(2);
    let report = json_stdout(&run);
    let problems = shard_problems(&report, 1);
    assert_eq!(problems[0]["kind"], "snapshot_damaged", "{report:#}");
}

#[test]
fn list_shows_a_cluster_backup_as_such() {
    let env = ClusterEnv::new(3);
    let backup = env.backup();
    let run = env.run(&["list", "--json", "--verify"]);
    run.assert_code(0);
    let listing = json_stdout(&run);
    let rows = listing["backups"].as_array().expect("backups");
    assert_eq!(rows.len(), 1, "{listing:#}");
    let row = &rows[0];
    assert_eq!(row["path"], backup.to_str().expect("utf-8"));
    assert_eq!(row["state"], "ok", "{row:#}");
    assert_eq!(row["records"], 600, "{row:#}");
    assert_eq!(row["cluster"], json!({"peers": 3, "shards": 3}), "{row:#}");
    assert_eq!(row["verification"]["ok"], true, "{row:#}");

    let human = env.run(&["list"]);
    human.assert_code(0);
    let mut lines = human.stdout.lines();
    assert!(
        lines
            .next()
            .expect("header")
            .trim_end()
            .ends_with("CLUSTER"),
        "{}",
        human.stdout
    );
    assert!(
        lines
            .next()
            .expect("row")
            .trim_end()
            .ends_with("3 peers, 3 shards"),
        "{}",
        human.stdout
    );
}

#[test]
fn prune_treats_cluster_backups_like_any_other() {
    let env = ClusterEnv::new(3);
    let older = env.backup();
    // Backup folder names carry the time to the second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let run = env.run(&["backup", "--collection", "discussions"]);
    run.assert_code(0);
    let newer = PathBuf::from(run.stdout.trim());
    assert_ne!(older, newer);
    env.run(&["prune", "--keep-last", "1", "--force"])
        .assert_code(0);
    assert!(!older.exists(), "the older cluster backup is pruned");
    assert!(newer.exists(), "the newest is kept");
    env.run(&["verify", newer.to_str().expect("utf-8")])
        .assert_code(0);
}

fn custom_keys(env: &ClusterEnv, keys: [&str; 2]) {
    env.cluster.seed_custom(
        "discussions",
        info_from_fixture("cluster/3-node-collection-info.json"),
        1,
        2,
        &[
            (json!(keys[0]), (1..=10).collect()),
            (json!(keys[1]), (11..=20).collect()),
        ],
    );
}

/// The result for `discussions` in `diff-schema --json`.
fn discussions_result(report: &Value) -> Value {
    report["collections"]
        .as_array()
        .expect("collections")
        .iter()
        .find(|c| c["name"] == "discussions")
        .cloned()
        .expect("discussions")
}

#[test]
fn diff_schema_against_the_same_cluster_reports_no_difference_and_its_layout() {
    let env = ClusterEnv::new(3);
    let backup = env.backup();
    let run = env.run(&["diff-schema", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(0);
    let report = json_stdout(&run);
    assert_eq!(report["identical"], true, "{report:#}");
    let result = discussions_result(&report);
    assert_eq!(result["status"], "identical");
    let layout = &result["layout"];
    assert_eq!(layout["differences"], json!([]), "{report:#}");
    assert_eq!(layout["information"], json!([]), "{report:#}");
    for side in ["left", "right"] {
        assert_eq!(layout[side]["shard_number"], 3, "{report:#}");
        assert_eq!(layout[side]["replication_factor"], 2, "{report:#}");
        assert_eq!(layout[side]["peers"], 3, "{report:#}");
        assert_eq!(
            layout[side]["placement"]
                .as_object()
                .expect("placement")
                .len(),
            3,
            "{report:#}"
        );
    }
    assert_eq!(layout["left"]["placement"], layout["right"]["placement"]);
}

#[test]
fn diff_schema_reports_a_cluster_collection_with_another_shard_number() {
    let env = ClusterEnv::new(3);
    let backup = env.backup();
    env.seed(4);
    let run = env.run(&["diff-schema", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(2);
    let report = json_stdout(&run);
    let result = discussions_result(&report);
    assert_eq!(result["blocking"], true);
    let layout = &result["layout"];
    let differences = layout["differences"].as_array().expect("differences");
    assert!(
        differences
            .iter()
            .any(|d| d["path"] == "cluster.shard_number"
                && d["left"] == 3
                && d["right"] == 4
                && d["severity"] == "blocking"),
        "{report:#}"
    );
    assert!(
        layout["information"]
            .as_array()
            .expect("information")
            .iter()
            .any(|i| i.as_str().expect("text").contains("placement of shard 3")),
        "{report:#}"
    );
    let human = env.run(&["diff-schema", backup.to_str().expect("utf-8")]);
    human.assert_code(2);
    assert!(
        human
            .stdout
            .contains("cluster.shard_number: 3 (backup) vs 4 (live)"),
        "{}",
        human.stdout
    );
}

#[test]
fn diff_schema_reports_shard_keys_created_in_another_order() {
    let env = ClusterEnv::new(3);
    custom_keys(&env, ["eu", "us"]);
    let run = env.run(&["backup", "--collection", "discussions"]);
    run.assert_code(0);
    let backup = PathBuf::from(run.stdout.trim());
    env.run(&["diff-schema", backup.to_str().expect("utf-8")])
        .assert_code(0);
    // The same keys, created the other way round: their shard ids swap.
    custom_keys(&env, ["us", "eu"]);
    let run = env.run(&["diff-schema", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(2);
    let report = json_stdout(&run);
    let result = discussions_result(&report);
    assert_eq!(
        result["differences"],
        json!([]),
        "the fingerprints agree: {report:#}"
    );
    assert_eq!(
        result["layout"]["differences"],
        json!([{"path": "cluster.shard_keys", "severity": "blocking",
                 "left": ["eu", "us"], "right": ["us", "eu"],
                 "description": "cluster.shard_keys: [\"eu\",\"us\"] (backup) vs [\"us\",\"eu\"] (live)"}]),
        "{report:#}"
    );
}

#[test]
fn diff_schema_of_a_cluster_backup_against_a_single_node_says_what_differs_in_layout() {
    let env = ClusterEnv::new(3);
    let backup = env.backup();
    let single = qdrant_double::Double::start(Config {
        api_key: Some(KEY.to_string()),
        ..Config::default()
    });
    single.seed(
        "discussions",
        info_from_fixture("cluster/3-node-collection-info.json"),
        (1..=600).collect(),
    );
    let run = env.world.run(
        &single.url(),
        &["diff-schema", "--json", backup.to_str().expect("utf-8")],
    );
    let report = json_stdout(&run);
    let layout = &discussions_result(&report)["layout"];
    assert_eq!(layout["right"]["peers"], 1, "{report:#}");
    assert!(layout["right"].get("placement").is_none(), "{report:#}");
    assert_eq!(
        layout["information"],
        json!(["backup is a 3-peer cluster, live is a single node"]),
        "{report:#}"
    );
}

#[test]
fn a_listed_shard_file_the_manifest_does_not_know_is_named() {
    let env = ClusterEnv::new(3);
    let backup = env.backup();
    let stray = backup.join("qdrant/discussions/shard-7.snapshot");
    std::fs::copy(shard_path(&backup, 0), &stray).expect("copy");
    let mut checksums =
        std::fs::read_to_string(backup.join("CHECKSUMS.sha256")).expect("checksums");
    checksums.push_str(&format!(
        "{}  qdrant/discussions/shard-7.snapshot\n",
        sha256_hex(&stray)
    ));
    std::fs::write(backup.join("CHECKSUMS.sha256"), checksums).expect("write");
    let run = env.run(&["verify", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(2);
    let report = json_stdout(&run);
    let problems = shard_problems(&report, 7);
    assert_eq!(problems.len(), 1, "{report:#}");
    assert_eq!(problems[0]["file"], "qdrant/discussions/shard-7.snapshot");
    assert_eq!(problems[0]["kind"], "placement_mismatch");
}

#[test]
fn shard_counts_that_do_not_add_up_are_information_not_damage() {
    let env = ClusterEnv::new(3);
    let backup = env.backup();
    edit_manifest(&backup, |m| {
        let shard = &mut m["collections"]["discussions"]["cluster"]["shards"][0];
        shard["records"] = json!(shard["records"].as_u64().expect("records") + 5);
    });
    let run = env.run(&["verify", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(0);
    let report = json_stdout(&run);
    let information = report["information"].as_array().expect("information");
    assert_eq!(information.len(), 1, "{report:#}");
    assert_eq!(information[0]["kind"], "records_differ");
    assert!(
        information[0]["problem"]
            .as_str()
            .expect("text")
            .contains("add up to 605, its exact count at backup time was 600"),
        "{report:#}"
    );
    let human = env.run(&["verify", backup.to_str().expect("utf-8")]);
    human.assert_code(0);
    assert!(
        human.stdout.lines().any(|l| l.starts_with(
            "note: manifest.json: `discussions`: its shards' point counts add up to 605"
        )),
        "{}",
        human.stdout
    );
}

#[test]
fn a_shard_file_whose_collection_config_disagrees_with_the_fingerprint_is_named() {
    let env = ClusterEnv::new(3);
    let backup = env.backup();
    let entry = manifest(&backup)["collections"]["discussions"].clone();
    let source = entry["cluster"]["shards"][2]["source_peer"]
        .as_u64()
        .expect("source peer");
    let state = json!({"is_local": true, "this_peer_id": source,
                       "peers": {source.to_string(): "Active"}})
    .to_string();
    // The manifest's schema but for the vector size.
    let schema = &entry["schema"];
    let mut params = schema["params"].clone();
    params["vectors"]["size"] = json!(3);
    let config = json!({"params": params, "hnsw_config": schema["hnsw_config"],
                        "quantization_config": schema["quantization_config"]})
    .to_string();
    tar_of(
        &shard_path(&backup, 2),
        &[
            ("replica_state.json", state.as_bytes()),
            ("shard_config.json", br#"{"type":"ReplicaSet"}"#),
            ("config.json", config.as_bytes()),
        ],
    );
    reseal_shard(&backup, 2);
    let run = env.run(&["verify", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(2);
    let report = json_stdout(&run);
    let problems = shard_problems(&report, 2);
    assert_eq!(problems.len(), 1, "{report:#}");
    assert_eq!(problems[0]["kind"], "schema_mismatch", "{report:#}");
    assert!(
        problems[0]["problem"].as_str().expect("text").contains(
            "(1 difference, 1 blocking): params.vectors.size: 768 (manifest) vs 3 (snapshot)"
        ),
        "{report:#}"
    );
}

#[test]
fn a_fresh_custom_sharded_backup_verifies_and_lists_its_key_shards() {
    let env = ClusterEnv::new(3);
    custom_keys(&env, ["eu", "us"]);
    let run = env.run(&["backup", "--collection", "discussions"]);
    run.assert_code(0);
    let backup = PathBuf::from(run.stdout.trim());
    let run = env.run(&["verify", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(0);
    assert_eq!(json_stdout(&run)["ok"], true);
    let listing = json_stdout(&env.run(&["list", "--json"]));
    assert_eq!(
        listing["backups"][0]["cluster"],
        json!({"peers": 3, "shards": 2}),
        "{listing:#}"
    );

    // Shard 1 recorded under the other key: the archive's key mapping says otherwise.
    edit_manifest(&backup, |m| {
        let cluster = &mut m["collections"]["discussions"]["cluster"];
        let keys = cluster["shard_keys"].clone();
        cluster["shards"][0]["shard_key"] = keys[1].clone();
        cluster["shards"][1]["shard_key"] = keys[0].clone();
    });
    let run = env.run(&["verify", "--json", backup.to_str().expect("utf-8")]);
    run.assert_code(2);
    let report = json_stdout(&run);
    for id in [0, 1] {
        let problems = shard_problems(&report, id);
        assert_eq!(problems.len(), 1, "{report:#}");
        assert_eq!(problems[0]["kind"], "placement_mismatch", "{report:#}");
        assert!(
            problems[0]["problem"]
                .as_str()
                .expect("text")
                .contains("its archive maps"),
            "{report:#}"
        );
    }
}

#[test]
fn diff_schema_against_a_cluster_with_a_peer_down_names_the_peer() {
    let mut env = ClusterEnv::new(3);
    let backup = env.backup();
    let down = env.cluster.peer_id(2);
    env.cluster.stop_peer(2);
    let run = env.run(&["diff-schema", backup.to_str().expect("utf-8")]);
    run.assert_code(3);
    assert!(
        run.stderr.contains(&down.to_string()),
        "stderr names peer {down}:\n{}",
        run.stderr
    );
}

/// A peer address whose collection view speaks for another peer is refused: its placement
/// would not be this cluster's.
#[test]
fn diff_schema_refuses_a_peer_whose_collection_view_speaks_for_another_peer() {
    let env = ClusterEnv::new(3);
    let backup = env.backup();
    // Peer 1's address answers the view as a peer that is not the one discovered there.
    let mut view = super::support::fixture_result("cluster/3-node-collection-cluster-peer1.json");
    view["peer_id"] = json!(7);
    let body = json!({"result": view, "status": "ok", "time": 0.0001}).to_string();
    env.cluster.peer(1).inject(qdrant_double::Fault::always(
        Some("GET"),
        "/collections/discussions/cluster",
        qdrant_double::FaultKind::PlainStatus { code: 200, body },
    ));
    let run = env.run(&["diff-schema", backup.to_str().expect("utf-8")]);
    run.assert_stderr_contains("answered as peer");
    assert_ne!(run.code, 0, "{run:?}");
}

/// A cluster backup stripped of its checksums file and of the fields that mark aimem's
/// backups is still never taken for a Python-script backup, and a shard file changed in place
/// (same size) is caught by the digest the manifest records for it: verify and restore agree.
#[test]
fn a_stripped_cluster_backup_is_never_legacy_and_its_recorded_digests_are_checked() {
    let env = ClusterEnv::new(3);
    let dir = env.backup();
    let backup = dir.to_str().expect("utf-8").to_string();
    let dir = dir.as_path();
    edit_manifest(dir, |m| {
        let top = m.as_object_mut().expect("object");
        top.remove("aimem_version");
        top.remove("qdrant_version");
        for entry in m["collections"]
            .as_object_mut()
            .expect("collections")
            .values_mut()
        {
            let entry = entry.as_object_mut().expect("entry");
            entry.remove("schema");
            entry.remove("sha256");
            entry.remove("schema_digest");
            entry.remove("records_max");
        }
    });
    std::fs::remove_file(dir.join("CHECKSUMS.sha256")).expect("remove checksums");
    // The same length, other bytes.
    let shard = shard_path(dir, 1);
    let mut bytes = std::fs::read(&shard).expect("shard");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&shard, &bytes).expect("write");

    let verify = env.run(&["verify", &backup, "--json"]);
    verify.assert_code(2);
    let report = json_stdout(&verify);
    let problems = report["problems"].as_array().expect("problems");
    assert!(
        problems
            .iter()
            .any(|p| p["file"] == "qdrant/discussions/shard-1.snapshot" && p["kind"] == "mismatch"),
        "{report:#}"
    );
    assert!(
        problems.iter().any(|p| p["kind"] == "checksums_missing"
            && p["problem"]
                .as_str()
                .is_some_and(|t| t.contains("cluster backup"))),
        "{report:#}"
    );
    let target = Cluster::start(3, keyed_config());
    env.world
        .run(&target.url(0), &["restore", &backup, "--force"])
        .assert_code(2)
        .assert_stderr_contains("cluster backup");
    assert!(target.collection_names().is_empty());
}
