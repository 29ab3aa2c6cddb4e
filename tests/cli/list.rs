//! `aimem list`: good, legacy, incomplete and damaged backups in one root, newest first.

use std::path::PathBuf;

use serde_json::json;

use super::support::*;

/// A root with one backup of each state (and restore's hidden folder, which is not listed).
fn mixed_root(env: &TestEnv) -> PathBuf {
    let good = env.backup(&[]);
    let root = env.root();
    let legacy = root.join("2020-01-02_000000");
    copy_dir(&good, &legacy);
    edit_manifest(&legacy, |m| {
        m["backup_date"] = json!("2020-01-02T00:00:00.000000+00:00");
        for (_, c) in m["collections"].as_object_mut().unwrap() {
            c.as_object_mut().unwrap().remove("schema");
        }
    });
    let damaged = root.join("2020-01-01_000000");
    copy_dir(&good, &damaged);
    std::fs::write(damaged.join("manifest.json"), "{ \"backup_date\": ").unwrap();
    copy_dir(&good, &root.join(".aimem-staging-2030-01-01_000000-99"));
    std::fs::remove_file(root.join(".aimem-staging-2030-01-01_000000-99/manifest.json")).unwrap();
    copy_dir(&good, &root.join(".aimem-prerestore-conventions-1"));
    good
}

#[test]
fn lists_every_state_newest_first() {
    let env = TestEnv::ai_memory();
    let good = mixed_root(&env);
    let good_name = good.file_name().unwrap().to_str().unwrap().to_string();

    let run = env.run(&["list", "--json"]);
    run.assert_code(0);
    let doc = json_stdout(&run);
    let rows = doc["backups"].as_array().unwrap();
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (".aimem-staging-2030-01-01_000000-99", "incomplete"),
            (good_name.as_str(), "ok"),
            ("2020-01-02_000000", "legacy"),
            ("2020-01-01_000000", "damaged"),
        ]
    );
    let ok = &rows[1];
    assert_eq!(ok["collections"].as_array().unwrap().len(), 5);
    assert_eq!(ok["records"], json!(150));
    assert_eq!(ok["qdrant_version"], json!("1.18.3"));
    assert!(ok["size_bytes"].as_u64().unwrap() > 0);
    assert_eq!(ok["verification"], json!(null));
    assert!(
        rows[3]["problem"]
            .as_str()
            .unwrap()
            .contains("manifest.json")
    );

    // The table, for a person: one row per backup, in the same order.
    let run = env.run(&["list"]);
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{}", run.stdout);
    assert_eq!(lines.len(), 5, "{}", run.stdout);
    assert!(lines[2].starts_with(&good_name) && lines[2].contains(" ok"));
    assert!(lines[4].contains("damaged"));
    assert!(!run.stdout.contains("prerestore"));
}

#[test]
fn verify_adds_the_checksum_result_per_backup() {
    let env = TestEnv::ai_memory();
    let good = mixed_root(&env);
    // Damage a second good backup: list must say which one failed and go on.
    let bad = env.root().join("2021-01-01_000000");
    copy_dir(&good, &bad);
    std::fs::write(bad.join("qdrant/github.snapshot"), "garbage").unwrap();
    let run = env.run(&["list", "--verify", "--json"]);
    run.assert_code(0);
    let doc = json_stdout(&run);
    let by_name = |name: &str| {
        doc["backups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()
            .clone()
    };
    let good_name = good.file_name().unwrap().to_str().unwrap();
    assert_eq!(by_name(good_name)["verification"]["ok"], json!(true));
    let bad_row = by_name("2021-01-01_000000");
    assert_eq!(bad_row["verification"]["ok"], json!(false));
    assert!(bad_row["verification"]["problems"].as_u64().unwrap() >= 1);
    assert_eq!(
        by_name("2020-01-02_000000")["verification"]["legacy"],
        json!(true)
    );
    assert_eq!(by_name("2020-01-01_000000")["verification"], json!(null));

    let run = env.run(&["list", "--verify"]);
    run.assert_code(0);
    assert!(run.stdout.lines().next().unwrap().contains("VERIFIED"));
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("2021-01-01_000000") && l.contains("FAILED")),
        "{}",
        run.stdout
    );
}

#[test]
fn an_empty_root_lists_nothing_and_an_absent_one_is_an_error() {
    let env = TestEnv::new();
    // An absent root is most likely a typo: exit 1, not an empty listing.
    env.run(&["list"])
        .assert_code(1)
        .assert_stderr_contains("does not exist");
    std::fs::create_dir(env.root()).unwrap();
    let run = env.run(&["list"]);
    run.assert_code(0);
    assert!(run.stdout.contains("No backups"), "{}", run.stdout);
    let run = env.run(&["list", "--json"]);
    run.assert_code(0);
    assert_eq!(json_stdout(&run)["backups"], json!([]));
}

#[test]
fn a_folder_whose_name_is_not_utf8_is_listed_as_damaged() {
    use std::os::unix::ffi::OsStrExt;
    let env = TestEnv::ai_memory();
    env.backup(&[]);
    let odd = env
        .root()
        .join(std::ffi::OsStr::from_bytes(b"2026-01-01_00000\xff"));
    std::fs::create_dir(&odd).unwrap();
    let run = env.run(&["list"]);
    run.assert_code(0);
    assert!(run.stdout.contains("damaged"), "{}", run.stdout);
    // prune never touches it.
    env.run(&["prune", "--keep-last", "1"]).assert_code(0);
    assert!(odd.exists());
}
