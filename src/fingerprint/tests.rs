use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qdrant")
}

/// Every `info-*.json` collection fixture (the 404 one aside), with its `result`.
fn info_fixtures() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for dir in ["collections", "cluster"] {
        for entry in std::fs::read_dir(fixture_dir().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.contains("info") || name.contains("404") || name.contains("cluster-info") {
                continue;
            }
            let exchange: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            out.push((name, exchange["response"]["body"]["result"].clone()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 13,
        "expected all info fixtures, found {}",
        out.len()
    );
    out
}

fn fixture(name: &str) -> Value {
    info_fixtures()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap()
        .1
}

#[test]
fn every_fixture_yields_a_canonical_round_trippable_fingerprint() {
    for (name, info) in info_fixtures() {
        let fp = Fingerprint::from_collection_info(&info).unwrap();
        let value = fp.as_value();
        assert_eq!(
            value["params"],
            info["config"]["params"].clone().tap_sparse(),
            "{name}: params kept whole"
        );
        assert_eq!(
            value["hnsw_config"], info["config"]["hnsw_config"],
            "{name}"
        );
        assert_eq!(
            value["quantization_config"], info["config"]["quantization_config"],
            "{name}"
        );
        let fields = info["payload_schema"].as_object().unwrap();
        let kept = value["payload_schema"].as_object().unwrap();
        assert_eq!(fields.len(), kept.len(), "{name}: one entry per index");
        for (field, index) in fields {
            assert_eq!(
                kept[field]["data_type"], index["data_type"],
                "{name}.{field}"
            );
            assert_eq!(
                kept[field].get("params"),
                index.get("params"),
                "{name}.{field}"
            );
            assert!(
                kept[field].get("points").is_none(),
                "{name}.{field}: points are volatile"
            );
        }
        // Stored and read back (as a manifest does), the bytes and digest do not move.
        let reread =
            Fingerprint::from_value(serde_json::from_str(&fp.canonical_json()).unwrap()).unwrap();
        assert_eq!(reread.canonical_json(), fp.canonical_json(), "{name}");
        assert_eq!(reread.digest(), fp.digest(), "{name}");
        assert!(
            fp.digest().starts_with("sha256:") && fp.digest().len() == 71,
            "{name}"
        );
    }
}

trait TapSparse {
    fn tap_sparse(self) -> Value;
}
impl TapSparse for Value {
    /// Params as the fingerprint keeps them: an empty `sparse_vectors` is dropped.
    fn tap_sparse(mut self) -> Value {
        if self
            .get("sparse_vectors")
            .is_some_and(|s| s.as_object().is_some_and(|m| m.is_empty()))
        {
            self.as_object_mut().unwrap().remove("sparse_vectors");
        }
        self
    }
}

#[test]
fn the_same_schema_in_another_key_order_is_byte_equal() {
    // `restored-from-upload` is the conventions snapshot uploaded into a new collection: same
    // schema, payload indexes listed in another order, different `points` counts.
    let original = Fingerprint::from_collection_info(&fixture("info-conventions.json")).unwrap();
    let restored =
        Fingerprint::from_collection_info(&fixture("info-restored-from-upload.json")).unwrap();
    assert_eq!(original.canonical_json(), restored.canonical_json());
    assert_eq!(original.digest(), restored.digest());
    assert!(diff(&original, &restored).is_empty());
}

#[test]
fn different_schemas_have_different_digests() {
    let fingerprints: Vec<(String, String)> = info_fixtures()
        .into_iter()
        .filter(|(name, _)| name != "info-restored-from-upload.json")
        .map(|(name, info)| {
            (
                name,
                Fingerprint::from_collection_info(&info).unwrap().digest(),
            )
        })
        .collect();
    for (i, (a, da)) in fingerprints.iter().enumerate() {
        for (b, db) in &fingerprints[i + 1..] {
            assert_ne!(da, db, "{a} vs {b}");
        }
    }
}

#[test]
fn create_body_recreates_the_structure_the_fixture_was_created_with() {
    let cases = [
        ("info-named-pq-f16.json", "create-named-pq-f16.json"),
        ("info-sparse-only.json", "create-sparse-only.json"),
        ("info-uint8-manhattan.json", "create-uint8-manhattan.json"),
        ("info-custom-sharding.json", "create-custom-sharding.json"),
    ];
    for (info, create) in cases {
        let fp = Fingerprint::from_collection_info(&fixture(info)).unwrap();
        let body = fp.create_collection_body();
        let exchange: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture_dir().join("collections").join(create)).unwrap(),
        )
        .unwrap();
        let sent = &exchange["request"]["body"];
        for key in [
            "vectors",
            "sparse_vectors",
            "shard_number",
            "sharding_method",
            "on_disk_payload",
            "quantization_config",
        ] {
            if let Some(value) = sent.get(key) {
                assert_eq!(body.get(key), Some(value), "{info}: {key}");
            }
        }
        if let Some(hnsw) = sent.get("hnsw_config").and_then(Value::as_object) {
            for (key, value) in hnsw {
                assert_eq!(
                    &body["hnsw_config"][key], value,
                    "{info}: hnsw_config.{key}"
                );
            }
        }
        assert!(body.get("payload_schema").is_none() && body.get("read_fan_out_factor").is_none());
    }
    // A sparse-only collection is created without a `vectors` key, as Qdrant itself was asked.
    let sparse = Fingerprint::from_collection_info(&fixture("info-sparse-only.json")).unwrap();
    assert!(sparse.create_collection_body().get("vectors").is_none());
}

#[test]
fn payload_indexes_use_params_when_present() {
    let fp =
        Fingerprint::from_collection_info(&fixture("info-sparse-only-with-indexes.json")).unwrap();
    let indexes = fp.payload_indexes();
    assert_eq!(
        indexes,
        vec![
            (
                "n".to_string(),
                json!({"type": "integer", "lookup": true, "range": false, "is_principal": null})
            ),
            ("tag".to_string(), json!("keyword")),
        ]
    );
}

#[test]
fn python_style_fingerprints_are_read_in_the_same_canonical_form() {
    // The guide's example manifest writes `"sparse_vectors": {}` and index entries with points.
    let python = json!({
        "params": {"vectors": {"size": 4, "distance": "Dot"}, "sparse_vectors": {}, "shard_number": 1, "on_disk_payload": true},
        "hnsw_config": {"m": 16},
        "quantization_config": null,
        "payload_schema": {"tag": {"data_type": "keyword", "points": 12}}
    });
    let fp = Fingerprint::from_value(python).unwrap();
    assert!(fp.as_value()["params"].get("sparse_vectors").is_none());
    assert_eq!(
        fp.as_value()["payload_schema"]["tag"],
        json!({"data_type": "keyword"})
    );
    assert!(Fingerprint::from_value(json!([1, 2])).is_err());
    assert!(Fingerprint::from_value(json!({"hnsw_config": {}})).is_err());
}

#[test]
fn diff_names_each_field_and_classifies_it() {
    let base = fixture("info-discussions.json");
    let backup = Fingerprint::from_collection_info(&base).unwrap();
    let mut live_info = base.clone();
    live_info["config"]["params"]["vectors"]["size"] = json!(1024);
    live_info["config"]["params"]["replication_factor"] = json!(2);
    live_info["config"]["hnsw_config"]["m"] = json!(32);
    live_info["payload_schema"]
        .as_object_mut()
        .unwrap()
        .remove("agent_id");
    live_info["payload_schema"]["extra"] = json!({"data_type": "integer", "points": 3});
    let live = Fingerprint::from_collection_info(&live_info).unwrap();
    let differences = diff(&backup, &live);
    let described: Vec<String> = differences
        .iter()
        .map(|d| d.describe("backup", "live"))
        .collect();
    assert_eq!(
        described,
        vec![
            "hnsw_config.m: 16 (backup) vs 32 (live)".to_string(),
            "params.vectors.size: 768 (backup) vs 1024 (live)".to_string(),
            "payload_schema.agent_id: keyword index {\"is_tenant\":true,\"type\":\"keyword\"} (backup) vs absent (live)".to_string(),
            "payload_schema.extra: absent (backup) vs integer index (live)".to_string(),
            "params.replication_factor: 1 (backup) vs 2 (live)".to_string(),
        ]
    );
    let severities: Vec<Severity> = differences.iter().map(|d| d.severity).collect();
    assert_eq!(
        severities,
        [
            Severity::Blocking,
            Severity::Blocking,
            Severity::Blocking,
            Severity::Blocking,
            Severity::Warning
        ]
    );
}

#[test]
fn dense_vectors_reads_named_unnamed_and_multivector_configs() {
    let colbert = Fingerprint::from_collection_info(&fixture("info-colbert-variant.json")).unwrap();
    let vectors = colbert.dense_vectors();
    assert_eq!(vectors.len(), 2);
    assert!(vectors.iter().any(|v| v.size == 128 && v.multivector));
    let uint8 = Fingerprint::from_collection_info(&fixture("info-uint8-manhattan.json")).unwrap();
    assert_eq!(
        uint8.dense_vectors(),
        vec![DenseVector {
            size: 16,
            bytes_per_dimension: 1,
            multivector: false
        }]
    );
    let sparse = Fingerprint::from_collection_info(&fixture("info-sparse-only.json")).unwrap();
    assert!(sparse.dense_vectors().is_empty());
    assert_eq!(sparse.sparse_vector_count(), 1);
}
