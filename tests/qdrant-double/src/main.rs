//! `qdrant-double [--port N] [--api-key K] [--read-only-api-key K] [--seed-ai-memory]
//! [--filler COLLECTION=BYTES]… [--create-rate BYTES] [--recover-rate BYTES]
//! [--collection-create-delay MS] [--index-create-delay MS] [--storage DIR]
//! [--exit-on-stdin-eof] [--cut-first-download-at PERCENT] [--report-served]
//! [--no-streamed-shard-snapshot] [--peers N]`
//!
//! Starts the double, prints its URL on the first stdout line, and serves until killed.
//! A killed process cannot remove its storage dir (snapshots can be big): pass
//! `--storage DIR` to keep it somewhere you clean, or `--exit-on-stdin-eof` and close the
//! child's stdin to stop it cleanly.
//!
//! `--create-rate` / `--recover-rate` (bytes per second, e.g. `200MiB`) simulate a real
//! server's time to build a snapshot / recover one: at least `size / rate` each. Off by default.
//! `--collection-create-delay` / `--index-create-delay` (milliseconds) simulate the time to
//! create a collection / build one payload index (a real Qdrant 1.18.3 takes 0.4–0.8 s for a
//! collection and its indexes). An index asked for with `wait=false` is acknowledged at once
//! and appears in `payload_schema` after the delay. Off by default.
//!
//! `--cut-first-download-at PERCENT` closes the first snapshot download after that share of
//! its body; `--report-served` prints, when stdin closes, one `served <bytes> <METHOD> <path>` line per
//! answer (the response body bytes sent), for benchmarks of resumed downloads.
//!
//! `--no-streamed-shard-snapshot` answers `GET /collections/{c}/shards/{id}/snapshot` (the
//! streamed shard snapshot) as a server without that route: 404.
//!
//! `--peers N` (N ≥ 2) starts a cluster of N peers instead (see `qdrant_double::Cluster`):
//! one URL per line, peer 0 first, all on one port (`127.0.0.{i+1}:PORT`). With
//! `--seed-ai-memory`, each AI Memory collection gets N shards of replication 2.

use std::io::Write;
use std::num::NonZeroU64;
use std::process::ExitCode;

use qdrant_double::{Cluster, Config, Double};

const USAGE: &str = "usage: qdrant-double [--port N] [--api-key K] [--read-only-api-key K] [--seed-ai-memory] [--filler COLLECTION=BYTES[K|M|G|KiB|MiB|GiB]]... [--create-rate BYTES] [--recover-rate BYTES] [--collection-create-delay MS] [--index-create-delay MS] [--storage DIR] [--exit-on-stdin-eof] [--cut-first-download-at PERCENT] [--report-served] [--no-streamed-shard-snapshot] [--peers N]";

fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, mult) = [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ]
    .iter()
    .find_map(|(suffix, mult)| t.strip_suffix(suffix).map(|n| (n, *mult)))
    .unwrap_or((t, 1));
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

fn main() -> ExitCode {
    let mut config = Config::default();
    let mut port = 0u16;
    let mut seed = false;
    let mut fillers = Vec::new();
    let mut storage: Option<std::path::PathBuf> = None;
    let mut exit_on_eof = false;
    let mut cut_at: Option<u8> = None;
    let mut report_served = false;
    let mut peers = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next());
        match flag.as_str() {
            "--port" => match value().and_then(|v| v.parse().ok()) {
                Some(p) => port = p,
                None => return usage("--port needs a number"),
            },
            "--api-key" => config.api_key = value(),
            "--read-only-api-key" => config.read_only_api_key = value(),
            "--seed-ai-memory" => seed = true,
            "--exit-on-stdin-eof" => exit_on_eof = true,
            "--storage" => match value() {
                Some(dir) => storage = Some(dir.into()),
                None => return usage("--storage needs a directory"),
            },
            "--create-rate" | "--recover-rate" => {
                let rate = value()
                    .as_deref()
                    .and_then(parse_bytes)
                    .and_then(NonZeroU64::new);
                match (flag.as_str(), rate) {
                    ("--create-rate", Some(r)) => config.snapshot_create_rate = Some(r),
                    (_, Some(r)) => config.snapshot_recover_rate = Some(r),
                    (_, None) => return usage(&format!("{flag} needs BYTES per second, not 0")),
                }
            }
            "--collection-create-delay" | "--index-create-delay" => {
                let Some(delay) = value()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(std::time::Duration::from_millis)
                else {
                    return usage(&format!("{flag} needs milliseconds"));
                };
                match flag.as_str() {
                    "--collection-create-delay" => config.collection_create_delay = Some(delay),
                    _ => config.index_create_delay = Some(delay),
                }
            }
            "--filler" => {
                let spec = value().unwrap_or_default();
                match spec
                    .split_once('=')
                    .and_then(|(c, b)| Some((c.to_string(), parse_bytes(b)?)))
                {
                    Some(f) => fillers.push(f),
                    None => return usage("--filler needs COLLECTION=BYTES"),
                }
            }
            "--cut-first-download-at" => match value().and_then(|v| v.parse().ok()) {
                Some(p) if p <= 100 => cut_at = Some(p),
                _ => return usage("--cut-first-download-at needs a percentage (0-100)"),
            },
            "--report-served" => report_served = true,
            "--no-streamed-shard-snapshot" => config.no_streamed_shard_snapshot = true,
            "--peers" => match value().and_then(|v| v.parse().ok()) {
                Some(n) if (1..=254).contains(&n) => peers = n,
                _ => return usage("--peers needs a number of peers (1-254)"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other}")),
        }
    }
    if peers > 1 {
        if port != 0 || storage.is_some() || cut_at.is_some() || report_served {
            return usage(
                "--peers does not go with --port, --storage, --cut-first-download-at or --report-served",
            );
        }
        return run_cluster(peers, config, seed, &fillers, exit_on_eof);
    }
    let double = match Double::start_in(config, port, storage.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("qdrant-double: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if seed {
        double.seed_ai_memory();
    }
    for (collection, bytes) in fillers {
        double.set_snapshot_filler(&collection, bytes);
    }
    if let Some(percent) = cut_at {
        double.inject(qdrant_double::Fault::new(
            Some("GET"),
            "/snapshots/",
            qdrant_double::FaultKind::TruncateBodyAtPercent { percent },
        ));
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{}", double.url());
    let _ = out.flush();
    if exit_on_eof {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        if report_served {
            for (method, path, bytes) in double.served() {
                let _ = writeln!(out, "served {bytes} {method} {path}");
            }
            let _ = out.flush();
        }
        drop(double);
        return ExitCode::SUCCESS;
    }
    loop {
        std::thread::park();
    }
}

/// `--peers N`: a cluster instead of one double.
fn run_cluster(
    peers: usize,
    config: Config,
    seed: bool,
    fillers: &[(String, u64)],
    exit_on_eof: bool,
) -> ExitCode {
    let cluster = Cluster::start(peers, config);
    if seed {
        cluster.seed_ai_memory(peers as u32, 2);
    }
    for i in 0..cluster.len() {
        for (collection, bytes) in fillers {
            cluster.peer(i).set_snapshot_filler(collection, *bytes);
        }
    }
    let mut out = std::io::stdout();
    for url in cluster.urls() {
        let _ = writeln!(out, "{url}");
    }
    let _ = out.flush();
    if exit_on_eof {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        drop(cluster);
        return ExitCode::SUCCESS;
    }
    loop {
        std::thread::park();
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("qdrant-double: {msg}\n{USAGE}");
    ExitCode::from(2)
}
