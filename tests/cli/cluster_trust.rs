//! Hostile-input review of the cluster paths (issue 12): where the credentials go, what is
//! deleted on whose say-so.

use std::path::PathBuf;

use qdrant_double::{Cluster, Config, Double, info_from_fixture};
use serde_json::json;

use super::support::{KEY, Run};
use super::support::{World, keyed_config};

/// A three-peer cluster holding `discussions` (3 shards, 2 replicas), plus a temporary HOME,
/// backup root and install dir.
struct Env {
    cluster: Cluster,
    world: World,
}

impl Env {
    fn new() -> Env {
        let cluster = Cluster::start(3, keyed_config());
        cluster.seed(
            "discussions",
            info_from_fixture("cluster/3-node-collection-info.json"),
            3,
            2,
            (1..=60).collect(),
        );
        Env {
            cluster,
            world: World::new(),
        }
    }

    fn root(&self) -> PathBuf {
        self.world.root()
    }

    fn run(&self, args: &[&str]) -> Run {
        self.world.run(&self.cluster.url(0), args)
    }

    /// A shard of `discussions` that peer `i` holds.
    fn shard_on(&self, i: usize) -> u32 {
        let peer = self.cluster.peer_id(i);
        let placement = self.cluster.placement("discussions").expect("placement");
        *placement
            .iter()
            .find(|(_, replicas)| replicas.iter().any(|(p, _)| *p == peer))
            .expect("a shard on the peer")
            .0
    }

    /// Asks peer `i` for a snapshot of `shard`, as a backup killed afterwards would have.
    fn make_shard_snapshot(&self, i: usize, shard: u32) -> String {
        let url = format!(
            "{}/collections/discussions/shards/{shard}/snapshots?wait=true",
            self.cluster.url(i)
        );
        let mut answer = ureq::post(&url)
            .header("api-key", KEY)
            .send_empty()
            .expect("shard snapshot");
        let text = answer.body_mut().read_to_string().expect("body");
        let body: serde_json::Value = serde_json::from_str(&text).expect("json");
        body["result"]["name"].as_str().expect("name").to_string()
    }

    /// A staging folder whose run died, with `records` after its first line.
    fn dead_run(&self, records: &[serde_json::Value]) {
        let staging = self.root().join(".aimem-staging-deadrun");
        std::fs::create_dir_all(&staging).expect("staging");
        // Written on another machine: a loopback URL alone would name that machine's own
        // server, so the journal says which cluster it was (its lowest peer id), as aimem's do.
        let lowest = (0..3)
            .map(|i| self.cluster.peer_id(i))
            .min()
            .expect("peers");
        let mut lines = vec![serde_json::json!({
            "event": "started",
            "owner": {"pid": 1, "host": "elsewhere", "started": "2026-01-01T00:00:00+00:00"},
            "server": self.cluster.url(0),
            "identity": format!("qdrant cluster with peer {lowest}"),
        })];
        lines.extend(records.iter().cloned());
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(staging.join(".aimem-journal"), text).expect("journal");
    }
}

/// A journal names the address a dead run reached a peer at; by the next run that address may
/// serve anything. The cleanup goes to the peer with the recorded id in the cluster this run
/// verified, and sends nothing (no API key) to the recorded address.
#[test]
fn a_dead_runs_shard_snapshot_is_deleted_on_the_verified_peer_never_at_the_recorded_address() {
    let env = Env::new();
    let elsewhere = Double::start(Config {
        api_key: Some(KEY.to_string()),
        ..Config::default()
    });
    let shard = env.shard_on(1);
    let left = env.make_shard_snapshot(1, shard);
    let unanswered_shard = env.shard_on(2);
    env.dead_run(&[
        serde_json::json!({
            "event": "shard_created", "collection": "discussions", "shard": shard,
            "peer_id": env.cluster.peer_id(1), "peer_url": elsewhere.url(), "snapshot": left,
        }),
        serde_json::json!({
            "event": "shard_creating", "collection": "discussions", "shard": unanswered_shard,
            "peer_id": env.cluster.peer_id(2), "peer_url": elsewhere.url(),
            "asked_at": "2026-01-01-00-00-00", "asked_before": "2026-01-01-00-03-00",
            "existing": [],
        }),
    ]);
    let run = env.run(&["backup", "--collection", "discussions"]);
    run.assert_code(0);
    assert_eq!(
        elsewhere.requests().len(),
        0,
        "the recorded address was asked: {:?}",
        elsewhere.requests()
    );
    assert!(
        !env.cluster
            .shard_snapshot_names(1, "discussions", shard)
            .contains(&left),
        "the dead run's shard snapshot is still on its peer: {}",
        run.all_output()
    );
    assert!(
        !env.root().join(".aimem-staging-deadrun").exists(),
        "the dead run's folder was kept: {}",
        run.all_output()
    );
}

/// A journal naming a peer the cluster no longer has is kept and reported: nothing is asked
/// anywhere on its say-so.
#[test]
fn a_dead_runs_shard_snapshot_on_a_peer_that_is_not_in_the_cluster_is_kept() {
    let env = Env::new();
    let elsewhere = Double::start(Config {
        api_key: Some(KEY.to_string()),
        ..Config::default()
    });
    env.dead_run(&[serde_json::json!({
        "event": "shard_created", "collection": "discussions", "shard": 0,
        "peer_id": 77, "peer_url": elsewhere.url(),
        "snapshot": "discussions-shard-0-77-2026-01-01-00-00-01.snapshot",
    })]);
    let run = env.run(&["backup", "--collection", "discussions"]);
    run.assert_code(0);
    assert_eq!(
        elsewhere.requests().len(),
        0,
        "the recorded address was asked"
    );
    assert!(
        env.root().join(".aimem-staging-deadrun").exists(),
        "the journal is the only record of that snapshot"
    );
    assert!(run.all_output().contains("peer 77"), "{}", run.all_output());
}

/// `--url` credentials reach the derived peers (the common deployment shares them), but
/// nothing aimem prints or writes shows them: not the output, the JSON report, the verbose
/// log, the manifest, nor the error naming a peer that is down.
#[test]
fn url_credentials_inherited_by_derived_peers_are_never_shown_or_written() {
    let mut env = Env::new();
    let secret = "hunter2pw";
    let url = env
        .cluster
        .url(0)
        .replacen("http://", &format!("http://backupuser:{secret}@"), 1);
    let run_with_url = |env: &Env, args: &[&str]| env.world.run(&url, args);
    let run = run_with_url(
        &env,
        &["-vvv", "backup", "--collection", "discussions", "--json"],
    );
    run.assert_code(0);
    for text in [run.stdout.as_str(), run.stderr.as_str()] {
        assert!(!text.contains(secret) && !text.contains(KEY), "{text}");
    }
    let mut written = Vec::new();
    for entry in std::fs::read_dir(env.root()).expect("root") {
        let folder = entry.expect("entry").path();
        for file in ["manifest.json", "CHECKSUMS.sha256"] {
            written.push(std::fs::read_to_string(folder.join(file)).expect("written file"));
        }
    }
    // The peers were reached with the credentials (shown as `***@`), so they were there to leak.
    assert!(
        written
            .iter()
            .any(|m| m.contains("\"peers\"") && m.contains("http://***@127.0.0.3:")),
        "a cluster manifest: {written:?}"
    );
    for text in &written {
        assert!(
            !text.contains(secret) && !text.contains("backupuser"),
            "{text}"
        );
    }

    env.cluster.stop_peer(2);
    let down = run_with_url(&env, &["backup", "--collection", "discussions"]);
    down.assert_code(1);
    assert!(
        down.stderr.contains(&env.cluster.peer_id(2).to_string()),
        "{}",
        down.stderr
    );
    assert!(!down.all_output().contains(secret), "{}", down.all_output());
}

/// A server that says it is part of a cluster, in an answer aimem refuses (here a peer
/// address with a space), is not a single node: treating it as one would back up or restore
/// a cluster through one peer. The run stops and says why.
#[test]
fn a_cluster_answer_aimem_refuses_is_an_error_not_a_single_node() {
    let env = Env::new();
    let me = env.cluster.peer_id(0);
    let body = json!({"result": {"status": "enabled", "peer_id": me,
        "peers": {me.to_string(): {"uri": "http://a b:6335/"}}}, "status": "ok", "time": 0.0});
    env.cluster.peer(0).inject(qdrant_double::Fault::new(
        Some("GET"),
        "/cluster",
        qdrant_double::FaultKind::RawJson {
            code: 200,
            body: body.to_string(),
        },
    ));
    let run = env.run(&["backup", "--collection", "discussions"]);
    run.assert_code(1)
        .assert_stderr_contains("whether it is part of a cluster");
}

/// QDRANT_PEERS is split at commas, so a password holding one is cut in two, and neither half
/// looks like a URL with credentials: no message may quote either half.
#[test]
fn a_peer_url_cut_by_a_comma_in_its_password_is_refused_without_quoting_it() {
    let env = Env::new();
    let peers: Vec<String> = (0..3)
        .map(|i| {
            env.cluster
                .url(i)
                .replacen("http://", "http://backupuser:hunter,2secret@", 1)
        })
        .collect();
    let run = env.world.run_with(
        &env.cluster.url(0),
        &["backup", "--collection", "discussions"],
        |command| {
            command.env("QDRANT_PEERS", peers.join(","));
        },
    );
    run.assert_code(1);
    let said = run.all_output();
    for part in ["backupuser", "hunter", "2secret"] {
        assert!(!said.contains(part), "{part} shown: {said}");
    }
    assert!(said.contains("--peer"), "{said}");
}

/// A P2P URI with user info (a hostile or odd server): the REST address takes only its host,
/// and the user info is never written to the manifest.
#[test]
fn user_info_in_a_p2p_uri_is_never_written() {
    let env = Env::new();
    let me = env.cluster.peer_id(0);
    let port = env.cluster.port() + 2;
    let peers: serde_json::Map<String, serde_json::Value> = (0..3)
        .map(|i| {
            (
                env.cluster.peer_id(i).to_string(),
                json!({"uri": format!("http://p2puser:p2psecret@127.0.0.{}:{port}/", i + 1)}),
            )
        })
        .collect();
    let body = json!({"result": {"status": "enabled", "peer_id": me, "peers": peers},
                      "status": "ok", "time": 0.0});
    env.cluster.peer(0).inject(qdrant_double::Fault::new(
        Some("GET"),
        "/cluster",
        qdrant_double::FaultKind::RawJson {
            code: 200,
            body: body.to_string(),
        },
    ));
    let run = env.run(&["backup", "--collection", "discussions"]);
    run.assert_code(0);
    assert!(
        !run.all_output().contains("p2psecret"),
        "{}",
        run.all_output()
    );
    let folder = std::fs::read_dir(env.root())
        .expect("root")
        .next()
        .expect("a backup")
        .expect("entry")
        .path();
    let manifest = std::fs::read_to_string(folder.join("manifest.json")).expect("manifest");
    assert!(manifest.contains("127.0.0.2"), "{manifest}");
    assert!(
        !manifest.contains("p2psecret") && !manifest.contains("p2puser"),
        "{manifest}"
    );
}
