//! The `qdrant-double` binary prints its URL first and serves until killed (or, with
//! `--exit-on-stdin-eof`, until its stdin closes, removing its storage).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

#[test]
fn binary_prints_its_url_and_serves() {
    let parent = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_qdrant-double"))
        .args([
            "--api-key",
            "k",
            "--seed-ai-memory",
            "--filler",
            "github=1KiB",
        ])
        .arg("--storage")
        .arg(parent.path())
        .arg("--exit-on-stdin-eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let url = line.trim().to_string();
    let addr = url.strip_prefix("http://").expect("http url").to_string();

    let mut stream = TcpStream::connect(&addr).expect("connect");
    write!(
        stream,
        "GET /collections HTTP/1.1\r\nHost: x\r\napi-key: k\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#"{"name":"jira-data"}"#), "{response}");

    assert_eq!(std::fs::read_dir(parent.path()).expect("dir").count(), 1);
    drop(child.stdin.take()); // EOF on stdin: clean exit, storage removed
    let status = child.wait().expect("wait");
    assert!(status.success());
    assert_eq!(std::fs::read_dir(parent.path()).expect("dir").count(), 0);
}

#[test]
fn binary_takes_rates_and_refuses_a_zero_or_unreadable_one() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qdrant-double"))
        .args(["--create-rate", "200MiB", "--recover-rate=1G"])
        .arg("--exit-on-stdin-eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait");
    assert!(
        line.starts_with("http://127.0.0.1:"),
        "{line:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());

    for args in [["--create-rate", "0"], ["--recover-rate", "fast"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_qdrant-double"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("BYTES per second"), "{stderr}");
    }
}

#[test]
fn binary_with_peers_prints_one_url_per_peer_on_one_port() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qdrant-double"))
        .args(["--peers", "3", "--seed-ai-memory", "--exit-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let urls: Vec<String> = (0..3)
        .map(|_| {
            let mut line = String::new();
            out.read_line(&mut line).expect("line");
            line.trim().to_string()
        })
        .collect();
    let port = urls[0].rsplit(':').next().expect("port").to_string();
    for (i, url) in urls.iter().enumerate() {
        assert_eq!(url, &format!("http://127.0.0.{}:{port}", i + 1));
    }
    let addr = urls[1].strip_prefix("http://").expect("http url");
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET /collections/discussions/cluster HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"shard_count\":3"), "{response}");
    drop(child.stdin.take());
    assert!(child.wait().expect("wait").success());
}
