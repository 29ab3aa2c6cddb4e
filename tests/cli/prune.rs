//! `aimem prune`: restic-style retention over real backups, with --dry-run and the safety net.

use std::path::PathBuf;

use serde_json::json;

use super::support::*;

/// Backups named and dated as given (copies of one real backup), plus that backup removed.
fn dated_backups(env: &TestEnv, dates: &[&str]) -> Vec<PathBuf> {
    let real = env.backup(&["--collection", "conventions"]);
    let made = dates
        .iter()
        .map(|date| {
            // "2026-02-10T18:00:00" → folder "2026-02-10_180000"
            let name = format!("{}_{}", &date[..10], date[11..19].replace(':', ""));
            let dir = env.root().join(name);
            copy_dir(&real, &dir);
            edit_manifest(&dir, |m| {
                m["backup_date"] = json!(format!("{date}.000000+00:00"))
            });
            dir
        })
        .collect();
    std::fs::remove_dir_all(real).unwrap();
    made
}

const DATES: [&str; 5] = [
    "2026-02-10T18:00:00",
    "2026-02-10T06:00:00",
    "2026-02-09T12:00:00",
    "2026-02-08T12:00:00",
    "2026-02-01T12:00:00",
];

fn names(env: &TestEnv) -> Vec<String> {
    env.root_entries()
}

#[test]
fn no_policy_is_an_argument_error_and_deletes_nothing() {
    let env = TestEnv::ai_memory();
    dated_backups(&env, &DATES);
    env.run(&["prune"])
        .assert_code(1)
        .assert_stderr_contains("--keep-last");
    assert_eq!(names(&env).len(), 5);
}

#[test]
fn keep_last_with_dry_run_changes_nothing_then_prunes() {
    let env = TestEnv::ai_memory();
    dated_backups(&env, &DATES);
    let run = env.run(&["prune", "--keep-last", "2", "--dry-run"]);
    run.assert_code(0);
    assert_eq!(names(&env).len(), 5, "dry run deleted something");
    assert!(
        run.stdout.contains("would remove  2026-02-01_120000"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("keep    2026-02-10_180000  (last 2 (#1))"),
        "{}",
        run.stdout
    );

    let doc = json_stdout(&env.run(&["prune", "--keep-last", "2", "--dry-run", "--json"]));
    assert_eq!(doc["dry_run"], json!(true));
    assert_eq!(doc["removed"].as_array().unwrap().len(), 3);
    assert_eq!(names(&env).len(), 5);

    env.run(&["prune", "--keep-last", "2"]).assert_code(0);
    assert_eq!(names(&env), ["2026-02-10_060000", "2026-02-10_180000"]);
}

#[test]
fn keep_daily_keeps_the_newest_of_each_day() {
    let env = TestEnv::ai_memory();
    dated_backups(&env, &DATES);
    let doc = json_stdout(&env.run(&["prune", "--keep-daily", "2", "--json"]));
    let kept: Vec<&str> = doc["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["2026-02-10_180000", "2026-02-09_120000"]);
    assert_eq!(doc["kept"][0]["reasons"], json!(["daily (2026-02-10)"]));
    assert_eq!(names(&env), ["2026-02-09_120000", "2026-02-10_180000"]);
}

#[test]
fn keep_weekly_and_within_combine() {
    let env = TestEnv::ai_memory();
    dated_backups(&env, &DATES);
    // within 1d of the newest: both 02-10; weekly 2: 02-10 (W07) and 02-08 (W06).
    env.run(&["prune", "--keep-within", "1d", "--keep-weekly", "2"])
        .assert_code(0);
    assert_eq!(
        names(&env),
        [
            "2026-02-08_120000",
            "2026-02-10_060000",
            "2026-02-10_180000"
        ]
    );
    env.run(&["prune", "--keep-within", "soon"]).assert_code(1);
}

#[test]
fn stale_staging_folders_go_young_ones_and_damaged_folders_stay() {
    let env = TestEnv::ai_memory();
    dated_backups(&env, &DATES[..2]);
    let root = env.root();
    for name in [
        ".aimem-staging-old-1",
        ".aimem-staging-new-2",
        ".aimem-prerestore-x",
    ] {
        std::fs::create_dir(root.join(name)).unwrap();
    }
    std::fs::create_dir(root.join("2020-01-01_000000")).unwrap();
    std::fs::write(root.join("2020-01-01_000000/manifest.json"), "{").unwrap();
    for name in [".aimem-staging-old-1", ".aimem-prerestore-x"] {
        let status = std::process::Command::new("touch")
            .args(["-d", "3 days ago"])
            .arg(root.join(name))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let run = env.run(&["prune", "--keep-last", "5", "--dry-run"]);
    run.assert_code(0);
    assert!(
        run.stdout
            .contains("would remove  .aimem-staging-old-1  (incomplete"),
        "{}",
        run.stdout
    );
    assert!(root.join(".aimem-staging-old-1").exists());
    env.run(&["prune", "--keep-last", "5"]).assert_code(0);
    assert_eq!(
        names(&env),
        [
            ".aimem-prerestore-x",
            ".aimem-staging-new-2",
            "2020-01-01_000000",
            "2026-02-10_060000",
            "2026-02-10_180000"
        ]
    );
}

#[test]
fn never_deletes_the_only_backup_that_verifies_unless_forced() {
    let env = TestEnv::ai_memory();
    let made = dated_backups(&env, &DATES[..3]);
    // The newest (the one --keep-last 1 keeps) is damaged; the older ones are good.
    std::fs::write(made[0].join("qdrant/conventions.snapshot"), "garbage").unwrap();
    let run = env.run(&["prune", "--keep-last", "1"]);
    run.assert_code(2).assert_stderr_contains("--force");
    assert_eq!(names(&env).len(), 3, "refused prune deleted something");
    let doc = json_stdout(&env.run(&["prune", "--keep-last", "1", "--json"]));
    assert_eq!(doc["refused"], json!(true));
    assert_eq!(doc["removed"], json!([]));

    // Keeping two keeps a good one: allowed, and that one is named.
    let doc = json_stdout(&env.run(&["prune", "--keep-last", "2", "--dry-run", "--json"]));
    assert_eq!(doc["refused"], json!(false));
    assert_eq!(doc["verified"], json!("2026-02-10_060000"));

    env.run(&["prune", "--keep-last", "1", "--force"])
        .assert_code(0);
    assert_eq!(names(&env), ["2026-02-10_180000"]);
}
