//! `aimem restore` without needless round trips: payload indexes queued, not awaited one by one.

use std::time::Duration;

use aimem::fingerprint::Fingerprint;
use qdrant_double::{AI_MEMORY_COLLECTIONS, Config, Double, Fault, FaultKind};

use super::support::{KEY, Run, TestEnv};

/// An empty server whose index builds take a while, as a real Qdrant's do.
fn slow_index_server() -> Double {
    Double::start(Config {
        api_key: Some(KEY.to_string()),
        index_create_delay: Some(Duration::from_millis(50)),
        ..Config::default()
    })
}

fn restore_to(env: &TestEnv, server: &Double, args: &[&str]) -> Run {
    let mut all = vec!["restore"];
    all.extend_from_slice(args);
    let url = server.url();
    env.run_with(&all, |c| {
        c.env("QDRANT_URL", url);
    })
}

fn fingerprint(server: &Double, name: &str) -> Fingerprint {
    let info = server
        .collection_info(name)
        .unwrap_or_else(|| panic!("`{name}` is not on the server"));
    Fingerprint::from_collection_info(&info).expect("fingerprint")
}

#[test]
fn payload_indexes_are_queued_without_waiting_then_checked_once_all_are_sent() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    let target = slow_index_server();
    restore_to(&env, &target, &[backup.to_str().unwrap()]).assert_code(0);
    let requests = target.requests();
    for name in AI_MEMORY_COLLECTIONS {
        assert_eq!(
            fingerprint(&target, name),
            fingerprint(&env.double, name),
            "{name}"
        );
        assert_eq!(target.point_ids(name), env.double.point_ids(name), "{name}");
        let index_path = format!("/collections/{name}/index");
        let info_path = format!("/collections/{name}");
        let indexes: Vec<usize> = requests
            .iter()
            .enumerate()
            .filter(|(_, r)| r.method == "PUT" && r.path == index_path)
            .map(|(i, _)| i)
            .collect();
        let wanted = fingerprint(&env.double, name).payload_indexes().len();
        assert!(wanted > 0, "{name} has payload indexes to restore");
        assert_eq!(indexes.len(), wanted, "{name}: one request per index");
        for &i in &indexes {
            assert_eq!(
                requests[i].query.get("wait").map(String::as_str),
                Some("false"),
                "{name}: an index request waits for its build"
            );
        }
        // Every index of the collection is asked for before the first look at whether they
        // are there.
        let first_look = requests
            .iter()
            .position(|r| r.method == "GET" && r.path == info_path)
            .unwrap_or_else(|| panic!("{name}: its info was never read"));
        assert!(
            indexes.iter().all(|&i| i < first_look),
            "{name}: index requests interleaved with the checks"
        );
    }
}

#[test]
fn an_index_that_never_appears_fails_the_restore_and_rolls_it_back() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    let target = slow_index_server();
    let victim = AI_MEMORY_COLLECTIONS[0];
    target.inject(Fault::new(
        Some("PUT"),
        &format!("/collections/{victim}/index"),
        FaultKind::IndexNeverApplied,
    ));
    let run = restore_to(
        &env,
        &target,
        &[backup.to_str().unwrap(), "--request-timeout", "2"],
    );
    run.assert_code(4)
        .assert_stderr_contains("rolled back")
        .assert_stderr_contains("did not appear");
    assert!(
        target.collection_names().is_empty(),
        "fresh collections are deleted again: {:?}",
        target.collection_names()
    );
    assert!(
        !target
            .requests()
            .iter()
            .any(|r| r.path == format!("/collections/{victim}/snapshots/upload")),
        "nothing was uploaded into a collection missing an index"
    );
}
