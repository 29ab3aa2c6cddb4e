//! Property-based fuzzing of every parser that reads untrusted bytes: `manifest.json` (and its
//! diagnostic rendering), `CHECKSUMS.sha256`, the snapshot tar walk and its schema files,
//! Qdrant's JSON answers (typed, read as they arrive) and its metrics text, and the bounded
//! `Value` builder. Each property is "no panic, and an answer (Ok or Err) in bounded time":
//! a hang shows as a test that does not finish, a panic as a failure with the shrunk input.
//!
//! The default run is small (a few seconds for all of them) so it runs with `cargo test`.
//! To fuzz longer, raise the case count:
//!
//! ```text
//! PROPTEST_CASES=20000 PROPTEST_RNG_SEED=random cargo test --release --lib fuzz
//! ```
//!
//! Without `PROPTEST_RNG_SEED` the inputs are the same every run (a fixed seed), so `cargo
//! test` never fails by chance; `random` (or a number) explores new ones.
//!
//! A failure prints the minimal (shrunk) input: turn it into a unit test next to the parser
//! with the fix. Nothing is written to disk (no regression files).

use std::io::Write;

use camino::Utf8Path;
use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::manifest::{Manifest, ManifestError, checksums, snapshot_archive};

/// The configuration: `PROPTEST_CASES` when set, else `default_cases` (kept small).
fn config(default_cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    // `cargo test` explores the same inputs every run, so CI never fails by chance; a longer
    // run picks its own seed (`PROPTEST_RNG_SEED=random`) or a given one.
    match std::env::var("PROPTEST_RNG_SEED").as_deref() {
        Err(_) => config.rng_seed = proptest::test_runner::RngSeed::Fixed(0x00a1_3e30),
        Ok("random") => config.rng_seed = proptest::test_runner::RngSeed::Random,
        Ok(_) => {}
    }
    config.failure_persistence = None;
    config
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        // Names aimem looks for, so the generated shapes reach the interesting paths.
        prop::sample::select(vec![
            "result", "status", "error", "name", "size", "checksum", "Active", "keyword",
            "integer", "params", "vectors", "shard_id", "state",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "result",
            "status",
            "error",
            "time",
            "name",
            "size",
            "checksum",
            "creation_time",
            "config",
            "params",
            "vectors",
            "sparse_vectors",
            "hnsw_config",
            "quantization_config",
            "payload_schema",
            "data_type",
            "type",
            "local_shards",
            "remote_shards",
            "shard_id",
            "state",
            "shard_number",
            "on_disk_payload",
            "schema",
        ])
        .prop_map(str::to_string),
        any::<String>(),
    ]
}

/// One way of damaging a valid input.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        byte: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    /// A long run of one byte: long lines, deep nesting, huge numbers.
    Run {
        at: usize,
        byte: u8,
        len: usize,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Truncate {
        at: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (
            any::<usize>(),
            prop::sample::select(vec![b'x', b'[', b'{', b'9', b'"', b'\n', b'/', 0xc3]),
            1usize..100_000
        )
            .prop_map(|(at, byte, len)| Mutation::Run { at, byte, len }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Flip { at, byte } => {
                if let Some(b) = bytes.get_mut(at % len) {
                    *b = *byte;
                }
            }
            Mutation::Insert { at, bytes: new } => {
                let at = (at % len).min(bytes.len());
                bytes.splice(at..at, new.iter().copied());
            }
            Mutation::Run { at, byte, len: n } => {
                let at = (at % len).min(bytes.len());
                bytes.splice(at..at, std::iter::repeat_n(*byte, *n));
            }
            Mutation::Delete { at, len: n } => {
                let at = (at % len).min(bytes.len());
                let end = (at + n).min(bytes.len());
                bytes.drain(at..end);
            }
            Mutation::Truncate { at } => bytes.truncate(at % len),
        }
    }
    bytes
}

/// Renders a diagnostic as the error handler does: an excerpt, never the whole of a long line.
fn assert_renders_small(diagnostic: &dyn miette::Diagnostic) {
    let mut out = String::new();
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    let _ = handler.render_report(&mut out, diagnostic);
    assert!(out.len() < 64 * 1024, "diagnostic of {} bytes", out.len());
}

/// Parses manifest text and, when it is refused, renders the diagnostic the way `verify` and
/// the error handler do (the renderer once panicked on a long line).
fn parse_and_render_manifest(text: String) {
    match Manifest::parse(Utf8Path::new("manifest.json"), text) {
        Ok(manifest) => {
            let _ = manifest.total_records();
            let _ = manifest.is_legacy();
            let again = Manifest::parse(Utf8Path::new("m"), manifest.to_json());
            assert!(again.is_ok(), "a parsed manifest must read back");
        }
        Err(ManifestError::Invalid(invalid)) => assert_renders_small(invalid.as_ref()),
        Err(ManifestError::UnsafeName(unsafe_name)) => assert_renders_small(unsafe_name.as_ref()),
        Err(ManifestError::Inconsistent { detail, .. }) => {
            assert!(detail.len() < 1024, "a message of {} bytes", detail.len());
        }
        Err(other) => panic!("parse gave a non-parse error: {other}"),
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn manifest_parse_survives_any_text(text in any::<String>()) {
        parse_and_render_manifest(text);
    }

    #[test]
    fn manifest_parse_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        parse_and_render_manifest(String::from_utf8_lossy(&bytes).into_owned());
    }

    #[test]
    fn manifest_parse_survives_damage(mutations in prop::collection::vec(mutation(), 1..4)) {
        let bytes = mutate(crate::manifest::tests::GUIDE_EXAMPLE.as_bytes().to_vec(), &mutations);
        parse_and_render_manifest(String::from_utf8_lossy(&bytes).into_owned());
    }

    #[test]
    fn checksums_parse_survives_any_text(text in any::<String>()) {
        let _ = checksums::parse(Utf8Path::new("C"), &text);
    }

    #[test]
    fn checksums_parse_survives_damage(mutations in prop::collection::vec(mutation(), 1..4)) {
        let good = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9  manifest.json\n\
                    8429c265cc4c2dfa13dd3be91060e133b38c3017499104d2a452e8999d682fa7 *qdrant/a.snapshot\n";
        let bytes = mutate(good.as_bytes().to_vec(), &mutations);
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(entries) = checksums::parse(Utf8Path::new("C"), &text) {
            for entry in entries {
                prop_assert!(checksums::check_relative(&entry.path).is_ok());
            }
        }
    }

    #[test]
    fn qdrant_answers_never_panic(value in json_value(), text in any::<String>()) {
        let _ = crate::qdrant::error_message(&text);
        let _ = crate::qdrant::error_message(&value.to_string());
        let _ = serde_json::from_value::<crate::qdrant::types::SnapshotDescription>(value.clone());
        let _ = serde_json::from_value::<crate::qdrant::types::ServerInfo>(value.clone());
        let _ = crate::engine::backup::cluster::shards_missing_locally(&value);
        if let Ok(fingerprint) = crate::fingerprint::Fingerprint::from_collection_info(&value) {
            let _ = fingerprint.digest();
            let _ = fingerprint.payload_indexes();
            let _ = crate::fingerprint::diff(&fingerprint, &fingerprint);
        }
        if let Ok(fingerprint) = crate::fingerprint::Fingerprint::from_value(value) {
            let _ = fingerprint.digest();
        }
    }

    /// Every typed answer reads any JSON text (and any text) without panicking.
    #[test]
    fn typed_answers_read_any_text(value in json_value(), text in any::<String>()) {
        use crate::qdrant::read_json;
        use crate::qdrant::types::{Envelope, SnapshotList};
        for text in [value.to_string(), text] {
            let bytes = text.as_bytes();
            let _ = read_json::<Envelope<crate::qdrant::cluster::ClusterAnswer>>(bytes)
                .map(|e| e.result.map(crate::qdrant::cluster::ClusterAnswer::check));
            let _ = read_json::<Envelope<SnapshotList>>(bytes).map(|e| {
                e.result
                    .map(|l| l.0.into_iter().filter_map(|s| s.into_description().ok()).count())
            });
            let _ = read_json::<Envelope<crate::json::Bounded>>(bytes);
            let _ = read_json::<Envelope<crate::json::Scalar>>(bytes);
        }
    }

    /// A value within its budget is the plain parse; the budget decides exactly at the cost.
    #[test]
    fn bounded_values_are_the_plain_parse_and_the_budget_is_exact(
        value in json_value(),
        fraction in 0.0f64..1.5,
    ) {
        use crate::json::{Budget, value_from_slice};
        let text = value.to_string();
        let budget = Budget::new(usize::MAX);
        let parsed = value_from_slice(text.as_bytes(), &budget);
        let plain: Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.ok(), Some(plain));
        let cost = {
            let probe = Budget::new(1 << 30);
            value_from_slice(text.as_bytes(), &probe).map_err(|e| TestCaseError::fail(e.to_string()))?;
            (1usize << 30) - crate::json::tests::left(&probe)
        };
        let given = (cost as f64 * fraction) as usize;
        let budget = Budget::new(given);
        let parsed = value_from_slice(text.as_bytes(), &budget);
        prop_assert_eq!(parsed.is_ok(), given >= cost);
        prop_assert_eq!(budget.is_spent(), given < cost);
    }

    /// A field aimem does not know, anywhere in the manifest, changes nothing it reads.
    #[test]
    fn unknown_manifest_fields_are_skipped(value in json_value(), in_entry in any::<bool>()) {
        let mut manifest: Value = serde_json::from_str(crate::manifest::tests::GUIDE_EXAMPLE)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let plain = Manifest::parse(Utf8Path::new("m"), manifest.to_string())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let target = match in_entry {
            true => &mut manifest["collections"]["discussions"],
            false => &mut manifest,
        };
        target["an_unknown_field"] = value;
        let padded = Manifest::parse(Utf8Path::new("m"), manifest.to_string())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(padded, plain);
    }

    /// Any JSON as `config.json` and `payload_index.json`: an answer, never a panic, and an
    /// error that quotes nothing of the file.
    #[test]
    fn snapshot_schema_files_of_any_json_are_read_or_refused(
        config in json_value(),
        payload_index in json_value(),
    ) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let marker = "SECRET-MARKER-9";
        let mut config = config;
        if let Value::Object(map) = &mut config {
            map.insert(marker.into(), Value::from(marker));
        }
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in [("config.json", config.to_string()), ("payload_index.json", payload_index.to_string())] {
            let mut header = tar::Header::new_ustar();
            header.set_path(name).unwrap_or_else(|e| panic!("{e}"));
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, data.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        }
        let bytes = builder.into_inner().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("s.snapshot");
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let opened = std::fs::File::open(&path)
            .and_then(crate::manifest::files::Opened::file)
            .unwrap_or_else(|e| panic!("{e}"));
        match snapshot_archive::read_schema_from(opened) {
            Ok(schema) => {
                let _ = schema.fingerprint();
            }
            Err(e) => prop_assert!(!e.to_string().contains(marker), "{}", e),
        }
    }

    #[test]
    fn metrics_text_never_panics(text in any::<String>(), collection in any::<String>()) {
        let _ = crate::qdrant::metrics::recovery_gauge(&text, &collection);
    }

    #[test]
    fn damaged_metrics_text_never_panics(mutations in prop::collection::vec(mutation(), 1..4)) {
        let sample = "# TYPE snapshot_recovery_running gauge\n\
                      snapshot_recovery_running{id=\"discussions\",x=\"a\\\"b\"} 1\n\
                      snapshot_recovery_running{id=\"we\\\\ird\"} 0\n";
        let bytes = mutate(sample.as_bytes().to_vec(), &mutations);
        let _ = crate::qdrant::metrics::recovery_gauge(&String::from_utf8_lossy(&bytes), "discussions");
    }
}

/// Writes `bytes` as a snapshot file and reads its schema: any answer is fine, a panic is not.
fn walk_snapshot(dir: &tempfile::TempDir, bytes: &[u8]) {
    let path = dir.path().join("s.snapshot");
    let mut file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
    file.write_all(bytes).unwrap_or_else(|e| panic!("{e}"));
    drop(file);
    let opened = std::fs::File::open(&path)
        .and_then(crate::manifest::files::Opened::file)
        .unwrap_or_else(|e| panic!("{e}"));
    if let Ok(schema) = snapshot_archive::read_schema_from(opened) {
        let _ = schema.fingerprint();
    }
}

fn real_snapshot() -> Vec<u8> {
    let path = Utf8Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/qdrant/conventions.snapshot");
    std::fs::read(path).unwrap_or_else(|e| panic!("{e}"))
}

/// A damage aimed at tar headers: a field of the header at block `block` overwritten.
fn header_damage() -> impl Strategy<Value = (usize, usize, Vec<u8>)> {
    (
        0usize..20,
        // name, size, checksum, type flag, ustar magic, GNU sparse map / isextended
        prop::sample::select(vec![0usize, 124, 148, 156, 257, 386, 482]),
        prop::collection::vec(
            prop::sample::select(vec![
                b'0', b'7', b'x', b' ', 0, 0x80, 0xff, b'L', b'S', b'1',
            ]),
            1..12,
        ),
    )
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn tar_walk_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        walk_snapshot(&dir, &bytes);
    }

    #[test]
    fn tar_walk_survives_damage(mutations in prop::collection::vec(mutation(), 1..3)) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        walk_snapshot(&dir, &mutate(real_snapshot(), &mutations));
    }

    #[test]
    fn tar_walk_survives_damaged_headers(damage in prop::collection::vec(header_damage(), 1..4)) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut bytes = real_snapshot();
        let blocks = bytes.len() / 512;
        for (block, field, new) in damage {
            let at = (block % blocks) * 512 + field;
            for (i, b) in new.iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at + i) {
                    *slot = *b;
                }
            }
            // Keep the checksum right (unless it is the damage), so the walk reads the
            // damaged fields instead of stopping at the checksum.
            let start = (block % blocks) * 512;
            if field != 148 {
                let header = &mut bytes[start..start + 512];
                header[148..156].copy_from_slice(b"        ");
                let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
                header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            }
        }
        walk_snapshot(&dir, &bytes);
    }
}

mod cluster;
mod completion;
mod url;
