//! `aimem diff-schema`: a backup against the live server, and two backups against each other.

use std::path::Path;

use serde_json::{Value, json};

use super::support::*;

/// The conventions collection as captured, for editing.
fn conventions() -> Value {
    fixture_result("collections/info-conventions.json")
}

/// Reseeds the live `conventions` with an edited schema and diffs it against `backup`.
fn diff_after(env: &TestEnv, backup: &Path, edit: impl FnOnce(&mut Value)) -> (Run, Value) {
    let mut info = conventions();
    edit(&mut info);
    env.double.seed("conventions", info, (1..=30).collect());
    let dir = backup.to_str().unwrap();
    let run = env.run(&["diff-schema", "--json", "--collection", "conventions", dir]);
    let doc = json_stdout(&run);
    (
        env.run(&["diff-schema", "--collection", "conventions", dir]),
        doc,
    )
}

#[test]
fn an_untouched_server_is_identical() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    let run = env.run(&["diff-schema", backup.to_str().unwrap()]);
    run.assert_code(0);
    for name in qdrant_double::AI_MEMORY_COLLECTIONS {
        assert!(
            run.stdout.contains(&format!("{name}: identical")),
            "{}",
            run.stdout
        );
    }
    let run = env.run(&["diff-schema", "--json", "latest"]);
    run.assert_code(0);
    let doc = json_stdout(&run);
    assert_eq!(doc["identical"], json!(true));
    assert_eq!(doc["right"]["label"], json!("live"));
    assert_eq!(doc["collections"].as_array().unwrap().len(), 5);
}

#[test]
fn each_kind_of_live_difference_is_named_with_both_values() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit, &str, &str); 8] = [
        (
            "vector size",
            |i| i["config"]["params"]["vectors"]["size"] = json!(1024),
            "params.vectors.size: 768 (backup) vs 1024 (live)",
            "blocking",
        ),
        (
            "distance",
            |i| i["config"]["params"]["vectors"]["distance"] = json!("Dot"),
            "params.vectors.distance: Cosine (backup) vs Dot (live)",
            "blocking",
        ),
        (
            "multivector",
            |i| {
                i["config"]["params"]["vectors"]["multivector_config"] =
                    json!({"comparator": "max_sim"})
            },
            "params.vectors.multivector_config: absent (backup) vs {\"comparator\":\"max_sim\"} (live)",
            "blocking",
        ),
        (
            "sparse modifier",
            |i| i["config"]["params"]["sparse_vectors"]["bm25"]["modifier"] = json!("none"),
            "params.sparse_vectors.bm25.modifier: idf (backup) vs none (live)",
            "blocking",
        ),
        (
            "hnsw",
            |i| i["config"]["hnsw_config"]["m"] = json!(32),
            "hnsw_config.m: 16 (backup) vs 32 (live)",
            "blocking",
        ),
        (
            "quantization",
            |i| i["config"]["quantization_config"] = json!(null),
            "quantization_config: {\"scalar\":{\"always_ram\":true,\"quantile\":0.99,\"type\":\"int8\"}} (backup) vs null (live)",
            "blocking",
        ),
        (
            "added payload index",
            |i| i["payload_schema"]["priority"] = json!({"data_type": "integer", "params": {"type": "integer", "lookup": true, "range": false, "is_principal": null}, "points": 0}),
            "payload_schema.priority: absent (backup) vs integer index",
            "blocking",
        ),
        (
            "removed payload index",
            |i| {
                i["payload_schema"]
                    .as_object_mut()
                    .unwrap()
                    .remove("source_hook");
            },
            "payload_schema.source_hook: keyword index (backup) vs absent (live)",
            "blocking",
        ),
    ];
    for (what, edit, line, severity) in cases {
        let (run, doc) = diff_after(&env, &backup, edit);
        run.assert_code(2);
        assert!(
            run.stdout.contains(line),
            "{what}: stdout lacks {line:?}:\n{}",
            run.stdout
        );
        assert!(run.stdout.contains("blocks a restore"), "{what}");
        // miette renders the failure and each difference on stderr.
        run.assert_stderr_contains("aimem::diff_schema::differs");
        // (miette wraps long lines: look for the path.)
        run.assert_stderr_contains(&format!(
            "conventions: {}:",
            line.split(':').next().unwrap()
        ));
        let collection = &doc["collections"][0];
        assert_eq!(collection["status"], json!("different"), "{what}");
        assert_eq!(collection["blocking"], json!(true), "{what}");
        let differences = collection["differences"].as_array().unwrap();
        assert_eq!(differences.len(), 1, "{what}: {differences:?}");
        assert_eq!(differences[0]["severity"], json!(severity), "{what}");
        assert!(
            differences[0]["description"]
                .as_str()
                .unwrap()
                .starts_with(&line[..20]),
            "{what}"
        );
    }
}

#[test]
fn operational_settings_are_warnings_that_still_differ() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    let (run, doc) = diff_after(&env, &backup, |i| {
        i["config"]["params"]["replication_factor"] = json!(2)
    });
    run.assert_code(2);
    assert!(run.stdout.contains("warnings only:"), "{}", run.stdout);
    assert!(!run.stdout.contains("blocks a restore"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("params.replication_factor: 1 (backup) vs 2 (live)")
    );
    assert_eq!(doc["collections"][0]["blocking"], json!(false));
    assert_eq!(
        doc["collections"][0]["differences"][0]["severity"],
        json!("warning")
    );
}

#[test]
fn collections_absent_on_the_server_are_said_so() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    let other = TestEnv::new();
    other
        .double
        .seed_from_fixture("conventions", "collections/info-conventions.json", 3);
    let run = env.run_with(&["diff-schema", backup.to_str().unwrap()], |c| {
        c.env("QDRANT_URL", other.double.url());
    });
    run.assert_code(0);
    assert!(
        run.stdout.contains("conventions: identical"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("github: absent on server"),
        "{}",
        run.stdout
    );
}

#[test]
fn two_backups_are_compared_offline() {
    let env = TestEnv::ai_memory();
    let a = env.backup(&[]);
    let b = env.root().join("2020-01-01_000000");
    copy_dir(&a, &b);
    let offline = |args: &[&str]| {
        env.run_with(args, |c| {
            c.env("QDRANT_URL", "http://127.0.0.1:1");
        })
    };
    let (a_dir, b_dir) = (a.to_str().unwrap(), b.to_str().unwrap());
    offline(&["diff-schema", a_dir, b_dir]).assert_code(0);

    edit_manifest(&b, |m| {
        m["collections"]["github"]["schema"]["params"]["vectors"]["size"] = json!(1024);
        m["collections"]
            .as_object_mut()
            .unwrap()
            .remove("jira-data");
    });
    let run = offline(&["diff-schema", a_dir, b_dir]);
    run.assert_code(2);
    let a_name = a.file_name().unwrap().to_str().unwrap();
    assert!(
        run.stdout
            .contains(&format!("({a_name}) vs 1024 (2020-01-01_000000)")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("jira-data: only in {a_name}")),
        "{}",
        run.stdout
    );
    let doc = json_stdout(&offline(&["diff-schema", "--json", a_dir, b_dir]));
    assert_eq!(doc["identical"], json!(false));
    let statuses: Vec<(&str, &str)> = doc["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert!(statuses.contains(&("github", "different")));
    assert!(statuses.contains(&("jira-data", "only_in_left")));
    assert!(statuses.contains(&("conventions", "identical")));
}

#[test]
fn exit_codes_for_unreachable_servers_and_bad_arguments() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    let dir = backup.to_str().unwrap();
    env.run_with(&["diff-schema", dir], |c| {
        c.env("QDRANT_URL", "http://127.0.0.1:1");
    })
    .assert_code(3)
    .assert_stderr_contains("cannot reach Qdrant");
    env.run(&["diff-schema", "--collection", "nope", dir])
        .assert_code(1);
    env.run(&["diff-schema", "/nonexistent"]).assert_code(1);
}

#[test]
fn a_legacy_backup_has_nothing_to_compare() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    edit_manifest(&backup, |m| {
        m["collections"]["conventions"]
            .as_object_mut()
            .unwrap()
            .remove("schema");
    });
    let run = env.run(&["diff-schema", backup.to_str().unwrap()]);
    run.assert_code(2);
    assert!(
        run.stdout.contains("no schema fingerprint"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_folder_that_is_not_a_backup_is_an_argument_error() {
    let env = TestEnv::ai_memory();
    let not_a_backup = env.tmp.path().join("empty");
    std::fs::create_dir_all(&not_a_backup).unwrap();
    let run = env.run(&["diff-schema", not_a_backup.to_str().unwrap()]);
    run.assert_code(1).assert_stderr_contains("manifest.json");
}

/// Each way `diff-schema` stops has its documented exit status: a wrong argument 1, a schema
/// difference 2, a server that does not answer 3.
#[test]
fn each_way_diff_schema_stops_has_its_exit_status() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    let dir = backup.to_str().unwrap();

    let run = env.run(&["diff-schema", "--collection", "nowhere", dir]);
    run.assert_code(1)
        .assert_stderr_contains("no collection `nowhere` in the backup")
        .assert_stderr_contains("The backup holds: conventions.");

    let empty = env.root().join("not-a-backup");
    std::fs::create_dir_all(&empty).unwrap();
    env.run(&["diff-schema", empty.to_str().unwrap()])
        .assert_code(1);

    let mut info = conventions();
    info["config"]["params"]["vectors"]["size"] = json!(1024);
    env.double.seed("conventions", info, (1..=30).collect());
    env.run(&["diff-schema", dir]).assert_code(2);

    // Nothing listens on port 9 of the loopback.
    env.run(&["diff-schema", "--url", "http://127.0.0.1:9", dir])
        .assert_code(3);
}
