//! Names that become paths (issue 9, findings 1 and 2): hostile names in a manifest, in
//! arguments or from a server are refused before use, and working folders are new, private
//! and unpredictable.

use std::path::{Path, PathBuf};

use qdrant_double::{Fault, FaultKind};
use serde_json::{Value, json};

use super::support::*;

/// Names that would leave a folder, or are not file names at all. The traversals land inside
/// the test's own temporary folder, so a failure here cannot harm the machine.
const HOSTILE: [&str; 6] = [
    "../../escaped",
    "../../../escaped",
    "a/b",
    "..",
    ".",
    "evil\u{1b}]0;title\u{7}",
];

/// Every file and folder under `dir`, links not followed, as paths relative to it.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            if path.symlink_metadata().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The test's world outside the backup under attack (the double's storage lives elsewhere).
fn outside(env: &TestEnv, backup: &Path) -> Vec<PathBuf> {
    tree(env.tmp.path())
        .into_iter()
        .filter(|p| !env.tmp.path().join(p).starts_with(backup))
        .collect()
}

/// `stderr` once miette's wrapping (and its `|` gutter) is ignored.
fn squashed(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '|' && *c != '│')
        .collect()
}

#[track_caller]
fn says(run: &Run, text: &str) {
    assert!(
        squashed(&run.stderr).contains(&squashed(text)),
        "stderr lacks {text:?}:\n{}",
        run.stderr
    );
}

/// Changes the manifest of `backup` by `edit` (checksums refreshed, so only the name is wrong).
fn with_manifest(backup: &Path, original: &Value, edit: impl FnOnce(&mut Value)) {
    let mut value = original.clone();
    edit(&mut value);
    edit_manifest(backup, |m| *m = value);
}

/// A collection entry renamed to `name` (key, name, or both).
fn rename_collection(m: &mut Value, name: &str, key: bool, field: bool) {
    let collections = m["collections"].as_object_mut().unwrap();
    let (old, mut entry) = collections
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    collections.remove(&old);
    if field {
        entry["name"] = json!(name);
    }
    collections.insert(if key { name.to_string() } else { old }, entry);
}

/// Runs every subcommand that reads the manifest and checks each refuses it up front, names
/// the entry, and touches nothing outside the backup (nor the server).
#[track_caller]
fn refused_everywhere(env: &TestEnv, backup: &Path, entry: &str) {
    let dir = backup.to_str().unwrap();
    let before = outside(env, backup);
    env.double.clear_requests();

    let run = env.run(&["restore", dir, "--force"]);
    run.assert_code(2);
    says(&run, "is not a safe name");
    says(&run, entry);
    assert!(
        env.double.requests().is_empty(),
        "restore talked to the server: {:?}",
        env.double.requests()
    );
    assert!(
        !run.all_output().contains('\u{1b}'),
        "a raw escape reached the terminal"
    );

    let run = env.run(&["verify", dir]);
    run.assert_code(2);
    says(&run, "is not a safe name");

    let run = env.run(&["diff-schema", dir]);
    run.assert_code(2);
    says(&run, "is not a safe name");
    assert!(
        env.double.requests().is_empty(),
        "diff-schema talked to the server"
    );

    let run = env.run(&["list", "--json"]);
    run.assert_code(0);
    let doc = json_stdout(&run);
    let row = doc["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"].as_str() == backup.file_name().unwrap().to_str())
        .unwrap_or_else(|| panic!("not listed: {doc}"));
    assert_eq!(row["state"], json!("damaged"), "{row}");
    assert!(
        row["problem"]
            .as_str()
            .unwrap_or("")
            .contains("is not a safe name"),
        "{row}"
    );

    // prune never takes it for a backup it may use or delete.
    env.run(&["prune", "--keep-last", "5"]).assert_code(0);
    assert!(backup.join("manifest.json").is_file());

    assert_eq!(
        outside(env, backup),
        before,
        "files appeared outside the backup"
    );
}

#[test]
fn a_manifest_with_an_unsafe_collection_name_is_refused_up_front_by_every_subcommand() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "discussions"]);
    let original = manifest(&backup);
    for name in HOSTILE {
        // The key and the name agree, as a forger would make them.
        with_manifest(&backup, &original, |m| {
            rename_collection(m, name, true, true)
        });
        refused_everywhere(&env, &backup, "a key of collections");
        // Only the `name` field: still refused.
        with_manifest(&backup, &original, |m| {
            rename_collection(m, name, false, true)
        });
        refused_everywhere(&env, &backup, ".name");
    }
}

#[test]
fn a_manifest_with_an_unsafe_snapshot_file_or_config_entry_is_refused_up_front() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "discussions"]);
    let original = manifest(&backup);
    for name in HOSTILE {
        with_manifest(&backup, &original, |m| {
            m["collections"]["discussions"]["snapshot_file"] = json!(name);
        });
        refused_everywhere(&env, &backup, ".snapshot_file");
    }
    for entry in [
        "../../escaped",
        "docker/../../escaped",
        "/etc/passwd",
        "docker//.env",
        "a\u{7}b",
    ] {
        with_manifest(&backup, &original, |m| {
            m["config_files"] = json!(["settings.json", entry]);
        });
        refused_everywhere(&env, &backup, "config_files[1]");
    }
}

#[test]
fn a_target_name_that_is_not_a_plain_name_is_refused_before_anything_happens() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "discussions"]);
    let dir = backup.to_str().unwrap();
    for name in ["../x", "..", "a/b", "x\u{1b}[2J"] {
        env.double.clear_requests();
        let run = env.run(&[
            "restore",
            dir,
            "--collection",
            "discussions",
            "--target-name",
            name,
            "--force",
        ]);
        run.assert_code(1);
        says(&run, "cannot be a collection name");
        assert!(
            env.double.requests().is_empty(),
            "{name:?}: the server was asked"
        );
    }
    assert!(
        env.double
            .collection_names()
            .iter()
            .all(|c| !c.contains('/') && c != "..")
    );
}

#[test]
fn a_server_listing_an_unsafe_collection_name_makes_backup_refuse_cleanly() {
    for name in ["a/b", "..", "x\u{1b}]0;t\u{7}"] {
        let env = TestEnv::new();
        env.double
            .seed_from_fixture("discussions", "collections/info-discussions.json", 3);
        // Qdrant would not create these; a double (or an impostor) serves them anyway.
        env.double
            .seed_from_fixture(name, "collections/info-discussions.json", 3);
        let before = tree(env.tmp.path());
        let run = env.run(&["backup", "--all"]);
        run.assert_code(2);
        says(&run, "lists a collection named");
        says(&run, "check that the URL points at the real Qdrant");
        assert!(
            !run.all_output().contains('\u{1b}'),
            "a raw escape reached the terminal"
        );
        let snapshots: Vec<String> = env
            .double
            .requests()
            .into_iter()
            .filter(|r| r.path.contains("/snapshots"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(snapshots.is_empty(), "{name:?}: {snapshots:?}");
        assert_eq!(
            tree(env.tmp.path()),
            before,
            "{name:?}: the backup left something behind"
        );
    }
}

#[test]
fn a_server_naming_its_snapshot_dot_dot_is_refused_and_the_collection_survives() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/discussions/snapshots",
        FaultKind::SnapshotNamed("..".to_string()),
    ));
    let run = env.run(&["backup", "--no-stream", "--collection", "discussions"]);
    run.assert_code(2);
    says(&run, "is not a safe name");
    assert!(
        env.double.collection_info("discussions").is_some(),
        "the collection was deleted"
    );
    let touched: Vec<String> = env
        .double
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE" || (r.method == "GET" && r.path.contains("/snapshots/")))
        .map(|r| format!("{} {}", r.method, r.path))
        .filter(|r| r.contains(".."))
        .collect();
    assert!(touched.is_empty(), "{touched:?}");
    // The snapshot it really made (under its real name) is found, but nothing proves it is
    // this run's rather than one taken meanwhile: it is kept and reported, never deleted on a
    // guess, and the journal left for the next backup names it.
    assert_eq!(env.server_snapshots(), 1);
    says(
        &run,
        "aimem deletes only what it can prove is its own, so it is kept",
    );
    let kept = env.root_entries();
    assert!(
        kept.len() == 1 && kept[0].starts_with(".aimem-staging-"),
        "{kept:?}"
    );
}

/// Every name the old code gave a pre-restore folder from `at` on for `seconds` seconds (in
/// UTC and in local time: aimem runs with a clean environment).
fn predictable_prerestore_names(seconds: i64) -> Vec<String> {
    aimem::localtime::init();
    let local = aimem::localtime::now();
    let utc = time::OffsetDateTime::now_utc();
    let mut names = Vec::new();
    for start in [local, utc] {
        for s in -2..seconds {
            let name = format!(
                ".aimem-prerestore-{}",
                aimem::manifest::layout::folder_name(start + time::Duration::seconds(s))
            );
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

#[test]
fn a_link_planted_at_a_predictable_pre_restore_folder_is_never_followed() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "discussions"]);
    env.double.upsert_points("discussions", &[1001, 1002]);
    let victim = env.tmp.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("discussions.snapshot"), "precious").unwrap();
    std::fs::write(victim.join(".partial-keep"), "precious too").unwrap();
    // Links at every name the restore could have picked in the next two minutes.
    let planted = predictable_prerestore_names(120);
    for name in &planted {
        std::os::unix::fs::symlink(&victim, env.root().join(name)).unwrap();
    }
    fail_restore_and_rollback(&env);
    let run = env.run(&["restore", backup.to_str().unwrap(), "--force"]);
    run.assert_code(5);
    // Compared as bytes without printing them: an overwritten file holds a whole snapshot.
    for (file, content) in [
        ("discussions.snapshot", "precious"),
        (".partial-keep", "precious too"),
    ] {
        let now = std::fs::read(victim.join(file)).unwrap_or_default();
        assert!(
            now == content.as_bytes(),
            "{file} in the victim folder was overwritten or deleted"
        );
    }
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 2);
    // The kept snapshot is in a real, private folder of its own, which the help names.
    let kept: Vec<PathBuf> = std::fs::read_dir(env.root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(".aimem-prerestore-")
                && !p.symlink_metadata().unwrap().file_type().is_symlink()
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(!planted.contains(&kept[0].file_name().unwrap().to_str().unwrap().to_string()));
    assert_eq!(mode(&kept[0]), 0o700);
    let local = kept[0].join("discussions.snapshot");
    assert!(local.is_file());
    says(&run, local.to_str().unwrap());
}

#[test]
fn two_restores_of_one_backup_in_the_same_second_use_folders_of_their_own() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "discussions"]);
    // The post-restore check fails (one record more than the snapshot holds), so each restore
    // rolls back from its own pre-restore copy.
    edit_manifest(&backup, |m| {
        m["collections"]["discussions"]["records"] = json!(31)
    });
    let other = TestEnv::ai_memory();
    for server in [&env.double, &other.double] {
        server.upsert_points("discussions", &[1001, 1002]);
    }
    let before = env.double.point_ids("discussions").unwrap();
    // The second one's upload answers late: its rollback comes after the first has finished
    // and cleaned up after itself.
    other.double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::Delay(std::time::Duration::from_secs(4)),
    ));
    // Started together at the start of a second: the old, per-second names were the same.
    while time::OffsetDateTime::now_utc().millisecond() > 50 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let dir = backup.to_str().unwrap();
    let spawn = |mut command: std::process::Command| {
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn(env.command(&["restore", dir, "--force"]));
    let mut second = env.command(&["restore", dir, "--force"]);
    second.env("QDRANT_URL", other.double.url());
    let second = spawn(second);
    let first = to_run(first.wait_with_output().unwrap());
    let second = to_run(second.wait_with_output().unwrap());
    first.assert_code(4);
    second.assert_code(4);
    assert_eq!(env.double.point_ids("discussions").unwrap(), before);
    assert_eq!(other.double.point_ids("discussions").unwrap(), before);
    let left: Vec<String> = env
        .root_entries()
        .into_iter()
        .filter(|n| n.starts_with(".aimem-prerestore-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_link_planted_at_a_staging_folder_name_is_never_followed() {
    let env = TestEnv::ai_memory();
    std::fs::create_dir_all(env.root()).unwrap();
    let victim = env.tmp.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    // Held at its first question to the server, long enough to plant links at the names the
    // old code would pick: the final name and the process id.
    env.double.inject(Fault::new(
        Some("GET"),
        "/collections",
        FaultKind::Delay(std::time::Duration::from_secs(2)),
    ));
    let child = env
        .command(&["backup", "--collection", "discussions"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    aimem::localtime::init();
    let starts = [aimem::localtime::now(), time::OffsetDateTime::now_utc()];
    for start in starts {
        for s in -2..60 {
            let name = aimem::manifest::layout::folder_name(start + time::Duration::seconds(s));
            let link = env.root().join(format!(".aimem-staging-{name}-{pid}"));
            if link.symlink_metadata().is_err() {
                std::os::unix::fs::symlink(&victim, link).unwrap();
            }
        }
    }
    let run = to_run(child.wait_with_output().unwrap());
    run.assert_code(0);
    let made = PathBuf::from(run.stdout.trim());
    assert!(!made.symlink_metadata().unwrap().file_type().is_symlink());
    assert!(made.join("manifest.json").is_file());
    assert_eq!(
        std::fs::read_dir(&victim).unwrap().count(),
        0,
        "wrote through a link"
    );
}

#[test]
fn a_foreign_snapshot_with_an_unsafe_name_is_left_out_of_the_list() {
    let env = TestEnv::ai_memory();
    let client = aimem::qdrant::Client::new(
        &env.double.url(),
        Some(KEY.to_string()),
        aimem::qdrant::Timeouts::default(),
    )
    .unwrap();
    let ours = client.create_snapshot("discussions").unwrap();
    // A file someone put in the server's snapshot folder by hand.
    let folder = env.double.snapshots_dir().join("discussions");
    std::fs::write(folder.join("x\u{1b}]0;t\u{7}.snapshot"), "foreign").unwrap();
    let listed: Vec<String> = client
        .list_snapshots("discussions")
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(listed, [ours.name]);
}

/// Two entries restoring into one collection: the second would overwrite what the first
/// restored and take the pre-restore copy of that, losing the server's data for good.
#[test]
fn two_entries_restoring_into_one_collection_are_refused_before_any_change() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "discussions"]);
    env.double.upsert_points("discussions", &[9001, 9002]);
    let live = env.double.point_ids("discussions").unwrap();
    let original = manifest(&backup);
    with_manifest(&backup, &original, |m| {
        let mut twin = m["collections"]["discussions"].clone();
        twin["records"] = json!(999);
        m["collections"]["zz"] = twin;
    });
    env.double.clear_requests();
    let dir = backup.to_str().unwrap();
    let run = env.run(&["restore", dir, "--force"]);
    run.assert_code(2);
    says(&run, "an entry's name must be its key");
    assert!(
        env.double.requests().is_empty(),
        "restore talked to the server"
    );
    assert_eq!(env.double.point_ids("discussions").unwrap(), live);
    env.run(&["verify", dir]).assert_code(2);

    // A twin under its own name but the same snapshot file.
    with_manifest(&backup, &original, |m| {
        let mut twin = m["collections"]["discussions"].clone();
        twin["name"] = json!("zz");
        m["collections"]["zz"] = twin;
    });
    let run = env.run(&["restore", dir, "--force"]);
    run.assert_code(2);
    says(&run, "which another entry uses too");
    assert_eq!(env.double.point_ids("discussions").unwrap(), live);
}

/// A backup in a folder other users may change: the pre-restore snapshots go to the user's
/// own state folder, where no one can swap the working folder for a link.
#[test]
fn pre_restore_snapshots_of_a_backup_in_a_shared_folder_go_to_a_private_one() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "discussions"]);
    let shared = env.tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let moved = shared.join(backup.file_name().unwrap());
    std::fs::rename(&backup, &moved).unwrap();
    fail_restore_and_rollback(&env);
    let run = env.run(&["restore", moved.to_str().unwrap(), "--force"]);
    run.assert_code(5);
    says(&run, "other users can change");
    let state = env.tmp.path().join("home/.local/state/aimem");
    let kept: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        kept.iter().any(|n| n.starts_with(".aimem-prerestore-")),
        "{kept:?}"
    );
    let beside: Vec<_> = std::fs::read_dir(&shared)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".aimem-prerestore-"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
}
