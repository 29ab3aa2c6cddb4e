//! Test-only: what crafted inputs cost in memory (issue 17). Each test feeds a parser of
//! untrusted bytes an input that a `serde_json::Value` tree inflates a hundredfold
//! (`{"a":0},` repeated: 8 bytes of text, about 700 bytes as a tree) and checks, with the
//! allocator probe, that the parser holds at most a small multiple of the input at once,
//! whether it accepts the input or refuses it.

use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};

use crate::alloc_probe::peak_heap;
use crate::manifest::{Manifest, snapshot_archive};
use crate::qdrant::{Client, QdrantError, Timeouts, cluster::ClusterStatus};
use crate::repo::catalog;

const MIB: usize = 1024 * 1024;

/// A JSON list of `{"a":0}` about `size` bytes long.
fn repeated(size: usize) -> String {
    let mut text = String::with_capacity(size + 8);
    text.push('[');
    while text.len() + 9 < size {
        text.push_str(r#"{"a":0},"#);
    }
    text.push_str(r#"{"a":0}]"#);
    text
}

/// A double whose `GET /cluster` answers `body`.
fn cluster_answering(body: String) -> (qdrant_double::Double, Client) {
    let double = qdrant_double::Double::start(qdrant_double::Config::default());
    double.inject(qdrant_double::Fault::always(
        Some("GET"),
        "/cluster",
        qdrant_double::FaultKind::RawJson { code: 200, body },
    ));
    let client = Client::new(&double.url(), None, Timeouts::default()).expect("url");
    (double, client)
}

#[test]
fn a_cluster_answer_full_of_unread_objects_costs_less_than_itself() {
    let junk = repeated(2 * MIB);
    let body = format!(
        r#"{{"result": {{"status": "disabled", "raft_info": {junk}}}, "status": "ok", "time": 0.0}}"#
    );
    let (_double, client) = cluster_answering(body);
    let (status, peak) = peak_heap(|| client.cluster_status());
    assert_eq!(status.unwrap(), ClusterStatus::Disabled);
    assert!(peak < MIB, "{peak} bytes held for a 2 MiB answer");
}

#[test]
fn a_cluster_answer_listing_too_many_peers_is_refused_while_read() {
    let mut peers = String::new();
    let mut id = 2u64;
    while peers.len() < 2 * MIB {
        peers.push_str(&format!(r#""{id}": {{"uri": "http://10.0.0.1:6335/"}}, "#));
        id += 1;
    }
    let body = format!(
        r#"{{"result": {{"status": "enabled", "peer_id": 1, "peers": {{{peers}"1": {{"uri": "http://10.0.0.1:6335/"}}}}}}}}"#
    );
    let (_double, client) = cluster_answering(body);
    let (status, peak) = peak_heap(|| client.cluster_status());
    let err = status.unwrap_err();
    assert!(
        matches!(&err, QdrantError::InvalidResponse { detail, .. } if detail.contains("more than 1024 peers")),
        "{err}"
    );
    assert!(peak < MIB, "{peak} bytes held for a 2 MiB answer");
}

#[test]
fn an_answer_longer_than_any_real_one_is_refused_as_invalid() {
    let body = format!(
        r#"{{"result": {{"status": "disabled", "raft_info": "{}"}}}}"#,
        "x".repeat(17 * MIB)
    );
    let (_double, client) = cluster_answering(body);
    let err = client.cluster_status().unwrap_err();
    assert!(
        matches!(&err, QdrantError::AnswerTooLong { limit_mib: 16, .. }),
        "{err}"
    );
}

/// The guide's example manifest with `junk` in place of its unknown field's value.
fn manifest_with(junk: &str) -> String {
    let text = crate::manifest::tests::GUIDE_EXAMPLE.replace(r#""python_only_field": [1, 2]"#, "");
    let text = text.trim_end().strip_suffix('}').unwrap().trim_end();
    let text = text.strip_suffix(',').unwrap_or(text);
    format!("{text},\n  \"python_only_field\": {junk}\n}}\n")
}

#[test]
fn a_manifest_field_nothing_reads_costs_nothing() {
    let text = manifest_with(&repeated(2 * MIB));
    let (manifest, peak) = peak_heap(|| Manifest::parse(Utf8Path::new("m.json"), text));
    assert_eq!(manifest.unwrap().total_records(), 42);
    assert!(peak < MIB / 4, "{peak} bytes held for a 2 MiB field");
}

#[test]
fn a_schema_of_repeated_objects_is_refused_before_it_costs_a_tree() {
    let text = crate::manifest::tests::GUIDE_EXAMPLE.replace(
        r#""payload_schema": {}"#,
        &format!(
            r#""payload_schema": {{"f": {{"data_type": "keyword", "params": {}}}}}"#,
            repeated(MIB)
        ),
    );
    let size = text.len();
    let (manifest, peak) = peak_heap(|| Manifest::parse(Utf8Path::new("m.json"), text));
    let Err(err) = manifest.map(drop) else {
        panic!("a schema of {size} bytes of repeated objects was accepted")
    };
    let err = err.to_string();
    assert!(err.contains("more JSON structure"), "{err}");
    // The 40 MiB budget (an estimate above the real cost) and the excerpt of the text.
    assert!(
        peak < 48 * MIB,
        "{peak} bytes held for a {size}-byte manifest"
    );
}

#[test]
fn listing_a_root_holds_one_manifest_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    let text = manifest_with(&repeated(MIB));
    for day in 1..=4 {
        let folder = root.join(format!("2026-02-0{day}_143052"));
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("manifest.json"), &text).unwrap();
    }
    let (listed, peak) = peak_heap(|| catalog::scan(root));
    let listed = listed.unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().all(|l| l.state == catalog::State::Ok));
    // One manifest's text (1 MiB) at a time, and little besides.
    assert!(peak < 2 * MIB, "{peak} bytes held for four 1 MiB manifests");
}

/// A snapshot whose tar holds `config.json` and `payload_index.json` as given.
fn snapshot_holding(dir: &tempfile::TempDir, config: &str, payload_index: &str) -> Utf8PathBuf {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("config.json", config),
        ("payload_index.json", payload_index),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).unwrap();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, data.as_bytes()).unwrap();
    }
    let bytes = builder.into_inner().unwrap();
    let path = Utf8PathBuf::from_path_buf(dir.path().join("c.snapshot")).unwrap();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    path
}

const PARAMS: &str = r#"{"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 1}"#;

#[test]
fn snapshot_schema_files_cost_no_tree_for_what_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let junk = repeated(MIB / 2);
    let config = format!(
        r#"{{"params": {PARAMS}, "hnsw_config": {{}}, "quantization_config": null, "wal_config": {junk}}}"#
    );
    let path = snapshot_holding(
        &dir,
        &config,
        &format!(r#"{{"schema": {{}}, "x": {junk}}}"#),
    );
    let (schema, peak) = peak_heap(|| snapshot_archive::read_schema(&path));
    assert!(schema.unwrap().fingerprint().is_ok());
    // The two files' bytes (half a MiB each) and little besides.
    assert!(peak < 2 * MIB, "{peak} bytes held for two 0.5 MiB files");
}

#[test]
fn snapshot_schema_files_of_repeated_objects_are_refused_before_they_cost_a_tree() {
    let dir = tempfile::tempdir().unwrap();
    let junk = repeated(MIB / 2);
    for (config, payload_index) in [
        (
            format!(r#"{{"params": {junk}, "hnsw_config": {{}}}}"#),
            r#"{"schema": {}}"#.to_string(),
        ),
        (
            format!(r#"{{"params": {PARAMS}}}"#),
            format!(r#"{{"schema": {{"f": {junk}}}}}"#),
        ),
    ] {
        let path = snapshot_holding(&dir, &config, &payload_index);
        let (schema, peak) = peak_heap(|| snapshot_archive::read_schema(&path));
        let Err(err) = schema.map(drop) else {
            panic!("a schema file of repeated objects was accepted")
        };
        let err = err.to_string();
        assert!(err.contains("more JSON structure"), "{err}");
        assert!(peak < 12 * MIB, "{peak} bytes held for a 0.5 MiB file");
    }
}
