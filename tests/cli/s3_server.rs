//! A real S3 server for the tests: `s3s-fs` (crates.io), an S3 protocol server that keeps a
//! bucket's objects as files in a folder. `.ci/run` installs it when it is missing; a test
//! that needs it fails (never skips) without it, saying how to install it.
//!
//! Each server runs with its own folder, keys and port, and is killed when dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "AIMEMTESTACCESSKEY";
pub const SECRET_KEY: &str = "aimem-test-secret-key-0123456789";

pub struct S3Server {
    child: Child,
    pub port: u16,
    /// The folder the server keeps its buckets in: one sub-folder per bucket.
    pub root: tempfile::TempDir,
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("AIMEM_S3S_FS") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("s3s-fs"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "the tests need the S3 server s3s-fs: `cargo install s3s-fs --version 0.14.1 \
             --features binary --locked` (or set AIMEM_S3S_FS to its path)"
        )
    })
}

impl S3Server {
    /// A server with one empty bucket, `bucket`, that wants [`ACCESS_KEY`] and [`SECRET_KEY`].
    pub fn start(bucket: &str) -> S3Server {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(bucket)).unwrap();
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(binary())
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(root.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .env("RUST_LOG", "error")
                .spawn()
                .expect("s3s-fs starts");
            if wait_listening(port, &mut child) {
                return S3Server { child, port, root };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("s3s-fs did not start");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment aimem reads to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }

    /// Where the object `key` of `bucket` is kept on disk.
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.path().join(bucket).join(key)
    }

    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.path().join(bucket)
    }

    /// Every object of `bucket`, relative, `/`-separated, sorted (the server keeps its own
    /// bookkeeping beside the buckets, not in them).
    pub fn objects(&self, bucket: &str) -> Vec<String> {
        let mut found = Vec::new();
        walk(&self.bucket_dir(bucket), "", &mut found);
        found.sort();
        found
    }
}

impl S3Server {
    /// How many parts of unfinished multipart uploads the server holds.
    pub fn pending_parts(&self) -> usize {
        std::fs::read_dir(self.root.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".upload_id-"))
            .count()
    }
}

fn walk(dir: &Path, prefix: &str, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = format!("{prefix}{name}");
        if entry.path().is_dir() {
            walk(&entry.path(), &format!("{path}/"), found);
        } else {
            found.push(path);
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on (for a server the tests start).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits up to 10 s for `child` to listen on `port`; false when it exited or never did.
pub fn wait_listening(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
