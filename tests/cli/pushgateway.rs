//! A real Prometheus Pushgateway for the tests (Debian's `prometheus-pushgateway`).
//! `.ci/run` installs it when it is missing; a test that needs it fails (never skips)
//! without it, saying how to install it.
//!
//! Each gateway runs on its own port, keeps nothing on disk, and is killed when dropped.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::s3_server::{free_port, wait_listening};

pub struct Pushgateway {
    child: Child,
    pub port: u16,
}

/// One sample the gateway exposes: its labels and value.
#[derive(Debug, Clone)]
pub struct Exposed {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("AIMEM_PUSHGATEWAY") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("prometheus-pushgateway"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "the tests need a Prometheus Pushgateway: `apt-get install prometheus-pushgateway` \
             (or set AIMEM_PUSHGATEWAY to its path)"
        )
    })
}

impl Pushgateway {
    pub fn start() -> Pushgateway {
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(binary())
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                // Nothing kept or loaded: Debian's build reads a shared file by default.
                .arg("--persistence.file=")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("the pushgateway starts");
            if wait_listening(port, &mut child) {
                return Pushgateway { child, port };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the pushgateway did not start");
    }

    /// As AI Memory writes PUSHGATEWAY_URL: `host:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every `aimemory_*` sample the gateway exposes on `/metrics`.
    pub fn samples(&self) -> Vec<Exposed> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(stream, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        // HTTP/1.0: the body comes whole, not in chunks.
        body.lines()
            .filter(|line| line.starts_with("aimemory_"))
            .map(parse_line)
            .collect()
    }

    /// The value of `name` whose labels include every one of `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples()
            .into_iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }
}

/// `name{a="x",b="y"} value`, as the gateway writes it (values without quotes or commas in
/// the tests' labels, but for the root, which is a plain path).
fn parse_line(line: &str) -> Exposed {
    let (head, value) = line.rsplit_once(' ').expect("a value");
    let (name, labels) = match head.split_once('{') {
        Some((name, rest)) => {
            let inside = rest.strip_suffix('}').expect("closing brace");
            let labels = inside
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once("=\"").expect("label");
                    (key.to_string(), value.trim_end_matches('"').to_string())
                })
                .collect();
            (name.to_string(), labels)
        }
        None => (head.to_string(), BTreeMap::new()),
    };
    Exposed {
        name,
        labels,
        value: value.parse().expect("a number"),
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
