//! Metrics for Prometheus, against a real Pushgateway: what `backup`, `verify`, `restore`
//! and `prune` push, a failure's record, a gateway that is down, `--metrics-file`, the
//! shipped dashboard and alert rules, and `--progress json`.

use std::time::{Duration, Instant, SystemTime};

use qdrant_double::{Fault, FaultKind};

use super::pushgateway::Pushgateway;
use super::support::{TestEnv, json_stdout};

fn with_gateway(gateway: &Pushgateway) -> impl FnOnce(&mut std::process::Command) + '_ {
    move |command| {
        command.env("PUSHGATEWAY_URL", gateway.address());
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn a_backup_pushes_when_it_succeeded_how_long_it_took_its_bytes_and_records() {
    let env = TestEnv::ai_memory();
    let gateway = Pushgateway::start();
    let before = now();
    let run = env.run_with(&["backup", "--json"], with_gateway(&gateway));
    run.assert_code(0);
    let report = json_stdout(&run);
    let root = env.root().to_string_lossy().into_owned();
    let group = [
        ("job", "aimem"),
        ("operation", "backup"),
        ("root", root.as_str()),
    ];
    let value = |name: &str| {
        gateway
            .value(name, &group)
            .unwrap_or_else(|| panic!("{name} pushed: {:?}", gateway.samples()))
    };
    let success = value("aimemory_backup_last_success_timestamp_seconds");
    assert!(
        success >= before.floor() && success <= now() + 1.0,
        "{success}"
    );
    assert_eq!(value("aimemory_backup_last_run_timestamp_seconds"), success);
    assert!(value("aimemory_backup_last_run_duration_seconds") > 0.0);
    assert_eq!(value("aimemory_backup_last_run_exit_code"), 0.0);
    assert_eq!(value("aimemory_backup_last_run_success"), 1.0);
    assert_eq!(
        value("aimemory_backup_bytes"),
        report["total_size"].as_u64().unwrap() as f64
    );
    let collections = report["collections"].as_array().unwrap();
    assert_eq!(collections.len(), 5);
    assert_eq!(value("aimemory_backup_collections"), 5.0);
    for collection in collections {
        let name = collection["name"].as_str().unwrap();
        let records = gateway.value(
            "aimemory_backup_collection_records",
            &[("operation", "backup"), ("collection", name)],
        );
        assert_eq!(
            records,
            Some(collection["records"].as_u64().unwrap() as f64),
            "{name}"
        );
    }
}

#[test]
fn a_failed_backup_records_its_failure_and_leaves_the_last_success_as_it_was() {
    let env = TestEnv::ai_memory();
    let gateway = Pushgateway::start();
    env.run_with(&["backup", "--no-stream"], with_gateway(&gateway))
        .assert_code(0);
    let root = env.root().to_string_lossy().into_owned();
    let group = [("operation", "backup"), ("root", root.as_str())];
    let value = |name: &str| gateway.value(name, &group);
    let success = value("aimemory_backup_last_success_timestamp_seconds").unwrap();
    let bytes = value("aimemory_backup_bytes").unwrap();

    std::thread::sleep(Duration::from_millis(1100));
    env.double.inject(Fault::always(
        Some("POST"),
        "/collections/code-patterns/snapshots",
        FaultKind::Status {
            code: 500,
            message: "Service internal error: No space left on device".into(),
        },
    ));
    env.run_with(&["backup", "--no-stream"], with_gateway(&gateway))
        .assert_code(2);
    assert_eq!(value("aimemory_backup_last_run_success"), Some(0.0));
    assert_eq!(value("aimemory_backup_last_run_exit_code"), Some(2.0));
    let last_run = value("aimemory_backup_last_run_timestamp_seconds").unwrap();
    assert!(last_run > success, "{last_run} after {success}");
    assert_eq!(
        value("aimemory_backup_last_success_timestamp_seconds"),
        Some(success),
        "the failure left the last success as it was"
    );
    assert_eq!(value("aimemory_backup_bytes"), Some(bytes));
}

#[test]
fn a_gateway_that_is_down_or_hangs_costs_a_warning_never_the_backup() {
    let env = TestEnv::ai_memory();
    // Nothing listens on a port just freed; a listener that never answers hangs.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hanging_port = hanging.local_addr().unwrap().port();
    for gateway in [
        format!("127.0.0.1:{closed}"),
        format!("http://aimem:gateway-secret@127.0.0.1:{hanging_port}"),
    ] {
        let started = Instant::now();
        let run = env.run_with(&["backup", "--collection", "github"], |c| {
            c.env("PUSHGATEWAY_URL", &gateway);
        });
        run.assert_code(0)
            .assert_stderr_contains("metrics not pushed to the Pushgateway");
        assert!(
            !run.all_output().contains("gateway-secret"),
            "{}",
            run.stderr
        );
        // One short try: far from the minutes a hung connection could take.
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    drop(hanging);
}

#[test]
fn verify_restore_and_prune_push_under_their_own_operation() {
    let env = TestEnv::ai_memory();
    let gateway = Pushgateway::start();
    for _ in 0..2 {
        env.run_with(
            &["backup", "--collection", "github"],
            with_gateway(&gateway),
        )
        .assert_code(0);
        std::thread::sleep(Duration::from_millis(1100));
    }
    env.run_with(&["verify", "latest"], with_gateway(&gateway))
        .assert_code(0);
    env.run_with(&["restore", "latest", "--force"], with_gateway(&gateway))
        .assert_code(0);
    env.run_with(&["prune", "--keep-last", "1"], with_gateway(&gateway))
        .assert_code(0);
    let root = env.root().to_string_lossy().into_owned();
    for operation in ["backup", "verify", "restore", "prune"] {
        let group = [("operation", operation), ("root", root.as_str())];
        assert_eq!(
            gateway.value("aimemory_backup_last_run_success", &group),
            Some(1.0),
            "{operation}"
        );
    }
    let verify = [("operation", "verify"), ("root", root.as_str())];
    assert!(gateway.value("aimemory_backup_bytes", &verify).unwrap() > 0.0);
    assert_eq!(
        gateway.value(
            "aimemory_backup_collection_records",
            &[("operation", "restore"), ("collection", "github")]
        ),
        Some(30.0)
    );
    let prune = [("operation", "prune"), ("root", root.as_str())];
    assert_eq!(
        gateway.value("aimemory_backup_prune_kept_backups", &prune),
        Some(1.0)
    );
    assert_eq!(
        gateway.value("aimemory_backup_prune_deleted_backups", &prune),
        Some(1.0)
    );
    // A dry run changes nothing and proves nothing: it pushes nothing.
    let before = gateway.value("aimemory_backup_last_run_timestamp_seconds", &prune);
    std::thread::sleep(Duration::from_millis(1100));
    env.run_with(
        &["prune", "--keep-last", "1", "--dry-run"],
        with_gateway(&gateway),
    )
    .assert_code(0);
    assert_eq!(
        gateway.value("aimemory_backup_last_run_timestamp_seconds", &prune),
        before
    );
}

/// Every `aimemory_*` name in `text`.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("aimemory_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_metric_the_dashboard_and_the_alert_rules_query_is_one_aimem_pushed() {
    let env = TestEnv::ai_memory();
    let gateway = Pushgateway::start();
    for args in [
        &["backup", "--collection", "github"][..],
        &["verify", "latest"],
        &["prune", "--keep-last", "1"],
        &["restore", "latest", "--force"],
    ] {
        env.run_with(args, with_gateway(&gateway)).assert_code(0);
    }
    let pushed: std::collections::BTreeSet<String> =
        gateway.samples().into_iter().map(|s| s.name).collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "contrib/grafana/aimem-backups.json",
        "contrib/prometheus/aimem-alerts.yml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let queried = metric_names(&text);
        assert!(!queried.is_empty(), "{file} queries aimem's metrics");
        let unknown: Vec<&String> = queried.difference(&pushed).collect();
        assert!(
            unknown.is_empty(),
            "{file} queries {unknown:?}, never pushed: {pushed:?}"
        );
    }
    // The dashboard is a dashboard Grafana can load.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("contrib/grafana/aimem-backups.json")).unwrap(),
    )
    .unwrap();
    assert!(
        dashboard["panels"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/prometheus/aimem-alerts.yml");
    let output = std::process::Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .unwrap_or_else(|e| panic!("the test needs promtool: `apt-get install prometheus` ({e})"));
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_metrics_file_is_written_for_the_textfile_collector_and_keeps_the_last_success() {
    let env = TestEnv::ai_memory();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("aimem.prom");
    let file_arg = file.to_str().unwrap();
    env.run(&[
        "backup",
        "--collection",
        "github",
        "--metrics-file",
        file_arg,
    ])
    .assert_code(0);
    env.run(&["verify", "latest", "--metrics-file", file_arg])
        .assert_code(0);
    let first = std::fs::read_to_string(&file).unwrap();
    let root = env.root().to_string_lossy().into_owned();
    let success_line = first
        .lines()
        .find(|l| {
            l.starts_with("aimemory_backup_last_success_timestamp_seconds{")
                && l.contains("operation=\"backup\"")
                && l.contains(&format!("root=\"{root}\""))
        })
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    assert!(first.contains("# TYPE aimemory_backup_last_run_success gauge"));

    env.run(&[
        "backup",
        "--collection",
        "nosuch",
        "--metrics-file",
        file_arg,
    ])
    .assert_code(2);
    let after = std::fs::read_to_string(&file).unwrap();
    assert!(after.contains(&success_line), "{after}");
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("aimemory_backup_last_run_success{")
                && l.contains("operation=\"backup\"")
                && l.ends_with(" 0")),
        "{after}"
    );
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("aimemory_backup_last_run_success{")
                && l.contains("operation=\"verify\"")
                && l.ends_with(" 1")),
        "the verify's series is kept: {after}"
    );
}

#[test]
fn progress_json_is_one_object_a_line_naming_each_collection_then_a_summary() {
    let env = TestEnv::ai_memory();
    let run = env.run(&["backup", "--progress", "json", "--json"]);
    run.assert_code(0);
    // stdout is still the one document.
    let report = json_stdout(&run);
    let events: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}")))
        .collect();
    assert!(
        events
            .iter()
            .all(|e| e["type"].is_string() && e["time"].is_string())
    );
    assert_eq!(events[0]["type"], "start");
    assert_eq!(events[0]["command"], "backup");
    for collection in report["collections"].as_array().unwrap() {
        let name = &collection["name"];
        let of = |kind: &str| {
            events
                .iter()
                .filter(|e| e["type"] == kind && e["collection"] == *name)
                .count()
        };
        assert_eq!(of("phase_started"), 1, "{name}");
        assert_eq!(of("phase_finished"), 1, "{name}");
        assert!(of("progress") >= 1, "{name}");
    }
    let progress = events.iter().find(|e| e["type"] == "progress").unwrap();
    assert!(progress["bytes_done"].is_u64());
    let summary = events.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["bytes"], report["total_size"]);
    assert_eq!(summary["collections"].as_array().unwrap().len(), 5);

    // A failure is an event too, and still nothing but JSON.
    let failed = env.run(&["verify", "/nowhere", "--progress", "json"]);
    failed.assert_code(1);
    let events: Vec<serde_json::Value> = failed
        .stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let error = events
        .iter()
        .find(|e| e["type"] == "error")
        .expect("an error event");
    assert_eq!(error["exit_code"], 1);
    assert_eq!(events.last().unwrap()["ok"], false);
}
