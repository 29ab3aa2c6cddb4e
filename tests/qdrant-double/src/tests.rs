//! End-to-end tests over real sockets, with a deliberately plain std `TcpStream` client.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;

const KEY: &str = "fixture-key";
const RO_KEY: &str = "read-only-key";

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A keep-alive HTTP/1.1 client on one connection.
struct Client {
    reader: BufReader<TcpStream>,
    key: Option<String>,
}

impl Client {
    fn new(double: &Double) -> Client {
        Self::with_key(double, None)
    }

    fn with_key(double: &Double, key: Option<&str>) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", double.port())).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Client {
            reader: BufReader::new(stream),
            key: key.map(str::to_string),
        }
    }

    fn send_head(&mut self, method: &str, target: &str, headers: &[(&str, &str)]) {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if let Some(key) = &self.key {
            head.push_str(&format!("api-key: {key}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.reader
            .get_mut()
            .write_all(head.as_bytes())
            .expect("write head");
    }

    fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let len = body.len().to_string();
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if !body.is_empty() || method != "GET" {
            all.push(("Content-Length", &len));
        }
        self.send_head(method, target, &all);
        self.reader.get_mut().write_all(body).expect("write body");
        self.read_response().expect("response")
    }

    fn get(&mut self, target: &str) -> Resp {
        self.request("GET", target, &[], b"")
    }

    fn json(&mut self, method: &str, target: &str, body: &Value) -> Resp {
        let bytes = serde_json::to_vec(body).expect("json");
        self.request(
            method,
            target,
            &[("Content-Type", "application/json")],
            &bytes,
        )
    }

    /// Reads the head, then exactly Content-Length bytes (or what arrives before EOF).
    fn read_response(&mut self) -> Option<Resp> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
            let mut headers = BTreeMap::new();
            loop {
                line.clear();
                self.reader.read_line(&mut line).ok()?;
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                let (k, v) = l.split_once(':')?;
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
            if status == 100 {
                continue;
            }
            let len: usize = headers
                .get("content-length")
                .map(|v| v.parse().expect("length"))
                .unwrap_or(0);
            let mut body = Vec::new();
            let _ = (&mut self.reader).take(len as u64).read_to_end(&mut body);
            return Some(Resp {
                status,
                headers,
                body,
            });
        }
    }
}

fn fixture(path: &str) -> Value {
    let text = std::fs::read_to_string(fixtures_dir().join(path)).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

fn without_time(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("time");
    }
    v
}

/// Sends the fixture's request and checks status and body (JSON minus `time`, or exact text).
fn replay(client: &mut Client, path: &str) -> Resp {
    let f = fixture(path);
    let req = &f["request"];
    let mut target = req["path"].as_str().expect("path").to_string();
    if let Some(q) = req["query"].as_object() {
        let qs: Vec<String> = q
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        target = format!("{target}?{}", qs.join("&"));
    }
    let method = req["method"].as_str().expect("method");
    let resp = match req.get("body") {
        Some(body) => client.json(method, &target, body),
        None => client.request(method, &target, &[], b""),
    };
    let expected = &f["response"];
    assert_eq!(resp.status, expected["status"], "{path}: {}", resp.text());
    match &expected["body"] {
        Value::String(text) => {
            assert_eq!(&resp.text(), text, "{path}");
            let ct = expected["headers"]["content-type"].as_str();
            assert_eq!(resp.header("content-type"), ct, "{path}");
        }
        body => {
            assert_eq!(resp.header("content-type"), Some("application/json"));
            assert_eq!(
                without_time(resp.json()),
                without_time(body.clone()),
                "{path}"
            );
            if body.get("time").is_some() {
                assert!(resp.json()["time"].is_f64() || resp.json()["time"].is_u64());
            }
        }
    }
    resp
}

fn sha_hex(data: &[u8]) -> String {
    snapshot::hex(&Sha256::digest(data))
}

fn multipart_body(boundary: &str, field: &str, filename: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

fn upload(client: &mut Client, collection: &str, query: &str, filename: &str, data: &[u8]) -> Resp {
    let body = multipart_body("XbOuNdArYx", "snapshot", filename, data);
    client.request(
        "POST",
        &format!("/collections/{collection}/snapshots/upload?{query}"),
        &[("Content-Type", "multipart/form-data; boundary=XbOuNdArYx")],
        &body,
    )
}

fn real_snapshot() -> Vec<u8> {
    std::fs::read(fixtures_dir().join("conventions.snapshot")).expect("snapshot fixture")
}

fn tar_entries(data: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(data);
    archive
        .entries()
        .expect("entries")
        .map(|e| {
            let mut e = e.expect("entry");
            let name = e.path().expect("path").to_string_lossy().into_owned();
            let mut content = Vec::new();
            e.read_to_end(&mut content).expect("read");
            (name, content)
        })
        .collect()
}

#[test]
fn service_endpoints() {
    let double = Double::start(Config {
        api_key: Some(KEY.into()),
        ..Config::default()
    });
    let mut c = Client::new(&double);
    replay(&mut c, "service/root.json");
    replay(&mut c, "service/healthz.json");
    replay(&mut c, "service/readyz.json");
    assert_eq!(c.get("/livez").text(), "healthz check passed");
    let mut c = Client::with_key(&double, Some(KEY));
    replay(&mut c, "cluster/status-single-node.json");
    let resp = c.get("/no/such/route/");
    assert_eq!(resp.status, 404);
    assert!(resp.json()["status"]["error"].is_string());
    assert!(resp.json().get("result").is_none());
}

#[test]
fn auth_responses() {
    let double = Double::start(Config {
        api_key: Some(KEY.into()),
        read_only_api_key: Some(RO_KEY.into()),
        ..Config::default()
    });
    let mut c = Client::new(&double);
    for (path, key) in [
        ("auth/401-no-key.json", None),
        ("auth/401-wrong-key.json", Some("<key>")),
    ] {
        let f = fixture(path);
        let mut c = Client::with_key(&double, key);
        let resp = c.get("/collections");
        assert_eq!(resp.status, 401);
        assert_eq!(resp.text(), f["response"]["body"].as_str().expect("text"));
        assert_eq!(resp.header("content-type"), None);
        assert_eq!(
            resp.header("content-length"),
            f["response"]["headers"]["content-length"].as_str()
        );
    }
    let resp = c.request(
        "GET",
        "/collections",
        &[("Authorization", "Bearer fixture-key")],
        b"",
    );
    assert_eq!(
        without_time(resp.json()),
        without_time(fixture("auth/bearer-ok.json")["response"]["body"].clone())
    );
    // Bearer is case-sensitive.
    let resp = c.request(
        "GET",
        "/collections",
        &[("Authorization", "bearer fixture-key")],
        b"",
    );
    assert_eq!(resp.status, 401);

    double.seed_ai_memory();
    let mut ro = Client::with_key(&double, Some(RO_KEY));
    assert_eq!(ro.get("/collections/discussions").status, 200);
    replay(&mut ro, "snapshots/create-403-read-only-key.json");
    replay(&mut ro, "snapshots/upload-403-read-only-key.json");
    let resp = ro.json(
        "PUT",
        "/collections/x",
        &json!({"vectors": {"size": 4, "distance": "Dot"}}),
    );
    assert_eq!(resp.status, 403);
    assert_eq!(
        resp.json()["status"]["error"],
        "Forbidden: Global manage access is required"
    );
    let resp = ro.json(
        "POST",
        "/collections/discussions/points/count",
        &json!({"exact": true}),
    );
    assert_eq!(resp.json()["result"]["count"], 30);
    let resp = upload(
        &mut ro,
        "restored",
        "wait=true",
        "x.snapshot",
        &real_snapshot(),
    );
    assert_eq!(resp.status, 403);
    assert_eq!(resp.text(), "Forbidden: Global manage access is required");
    assert_eq!(double.collection_names().len(), 5);
}

#[test]
fn collection_endpoints_match_the_fixtures() {
    let double = Double::start(Config::default());
    double.seed_ai_memory();
    let mut c = Client::new(&double);
    for path in [
        "collections/list.json",
        "collections/exists-true.json",
        "collections/exists-false.json",
        "collections/info-404.json",
        "collections/info-discussions.json",
        "collections/info-conventions.json",
        "collections/info-code-patterns.json",
        "collections/info-github.json",
        "collections/info-jira-data.json",
        "collections/create-409-exists.json",
        "collections/create-400-unknown-distance.json",
        "collections/create-422-invalid.json",
        "points/count-exact.json",
        "points/count-404.json",
        "cluster/collection-cluster-info.json",
        "snapshots/create-404.json",
        "snapshots/download-404.json",
        "collections/delete-absent.json",
    ] {
        replay(&mut c, path);
    }
    for name in [
        "named-pq-f16",
        "sparse-only",
        "uint8-manhattan",
        "custom-sharding",
    ] {
        replay(&mut c, &format!("collections/create-{name}.json"));
        replay(&mut c, &format!("collections/info-{name}.json"));
    }
    double.seed_from_fixture("colbert", "collections/info-colbert-variant.json", 10);
    let expected = fixture("collections/info-colbert-variant.json");
    assert_eq!(
        double.collection_info("colbert").as_ref(),
        Some(&expected["response"]["body"]["result"])
    );

    // Indexes.
    let keyword = replay_masked(&mut c, "index/create-keyword-wait.json");
    let integer = replay_masked(&mut c, "index/create-integer-params.json");
    assert!(integer > keyword);
    let mut info = c.get("/collections/sparse-only").json();
    let mut expected =
        fixture("collections/info-sparse-only-with-indexes.json")["response"]["body"].clone();
    info["result"]["update_queue"] = Value::Null;
    expected["result"]["update_queue"] = Value::Null;
    assert_eq!(without_time(info), without_time(expected));
    replay_masked(&mut c, "index/create-text-nowait.json");
    let info = double.collection_info("sparse-only").expect("info");
    assert_eq!(
        info["payload_schema"]["body"],
        json!({"data_type": "text", "params": {"type": "text", "tokenizer": "word", "lowercase": true}, "points": 0})
    );

    // Points.
    let resp = c.json(
        "PUT",
        "/collections/sparse-only/points?wait=true",
        &json!({"points": [{"id": 5, "vector": {}}, {"id": 9}]}),
    );
    assert_eq!(resp.json()["result"]["status"], "completed");
    c.json(
        "POST",
        "/collections/sparse-only/points/delete",
        &json!({"points": [9]}),
    );
    assert_eq!(double.point_ids("sparse-only"), Some(vec![5]));

    // Delete.
    let resp = c.request("DELETE", "/collections/sparse-only/", &[], b"");
    assert_eq!(resp.json()["result"], true);
    assert_eq!(double.collection_info("sparse-only"), None);
}

/// Replays an index fixture, ignoring `operation_id` (returned).
fn replay_masked(c: &mut Client, path: &str) -> u64 {
    let f = fixture(path);
    let req = &f["request"];
    let wait = req["query"]["wait"]
        .as_str()
        .map(|w| format!("?wait={w}"))
        .unwrap_or_default();
    let resp = c.json(
        "PUT",
        &format!("{}{wait}", req["path"].as_str().expect("path")),
        &req["body"],
    );
    assert_eq!(resp.status, 200);
    let mut got = without_time(resp.json());
    let mut want = without_time(f["response"]["body"].clone());
    let id = got["result"]["operation_id"]
        .as_u64()
        .expect("operation id");
    got["result"]["operation_id"] = json!(0);
    want["result"]["operation_id"] = json!(0);
    assert_eq!(got, want, "{path}");
    id
}

#[test]
fn snapshot_round_trip() {
    let double = Double::start(Config {
        api_key: Some(KEY.into()),
        ..Config::default()
    });
    double.seed_ai_memory();
    double.upsert_points("discussions", &[1000, 1001]);
    let mut c = Client::with_key(&double, Some(KEY));
    let resp = c.request("POST", "/collections/discussions/snapshots", &[], b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let desc = resp.json()["result"].clone();
    let name = desc["name"].as_str().expect("name").to_string();
    let prefix = format!("discussions-{}-", Config::default().peer_id);
    assert!(
        name.starts_with(&prefix) && name.ends_with(".snapshot"),
        "{name}"
    );
    assert_eq!(
        name.len(),
        prefix.len() + "2026-11-26-16-00-01.snapshot".len()
    );
    assert_eq!(desc["creation_time"].as_str().map(str::len), Some(19));
    assert_eq!(double.snapshot_names("discussions"), vec![name.clone()]);

    let list = c.get("/collections/discussions/snapshots").json();
    assert_eq!(list["result"], json!([desc]));

    let dl = c.request(
        "GET",
        &format!("/collections/discussions/snapshots/{name}"),
        &[("Accept-Encoding", "gzip")],
        b"",
    );
    assert_eq!(dl.status, 200);
    assert_eq!(dl.body.len() as u64, desc["size"].as_u64().expect("size"));
    assert_eq!(sha_hex(&dl.body), desc["checksum"]);
    assert_eq!(dl.header("content-type"), Some("application/octet-stream"));
    assert_eq!(dl.header("accept-ranges"), Some("bytes"));
    assert_eq!(dl.header("content-encoding"), None);
    assert_eq!(
        dl.header("content-disposition"),
        Some(format!("attachment; filename=\"{name}\"").as_str())
    );
    assert!(dl.header("etag").is_some());

    let entries = tar_entries(&dl.body);
    let names: Vec<&str> = entries.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "0/replica_state.json",
            "0/segments/double-points.json",
            "0/shard_config.json",
            "config.json",
            "payload_index.json",
            "shard_key_mapping.json",
            "version.info"
        ]
    );
    let config: Value = serde_json::from_slice(&entries["config.json"]).expect("config");
    let info = double.collection_info("discussions").expect("info");
    let mut expected_config = info["config"].clone();
    expected_config["uuid"] = Value::Null;
    assert_eq!(config, expected_config);
    let index: Value = serde_json::from_slice(&entries["payload_index.json"]).expect("index");
    assert_eq!(index["schema"]["type"], "keyword");
    assert_eq!(
        index["schema"]["agent_id"],
        json!({"type": "keyword", "is_tenant": true})
    );
    let replica: Value = serde_json::from_slice(&entries["0/replica_state.json"]).expect("replica");
    assert_eq!(replica["this_peer_id"], Config::default().peer_id);

    // Upload into a new name: same config, payload schema and points.
    let resp = upload(
        &mut c,
        "restored",
        &format!(
            "wait=true&priority=snapshot&checksum={}",
            desc["checksum"].as_str().expect("sum")
        ),
        "restored-upload.snapshot",
        &dl.body,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["result"], true);
    assert_eq!(
        double.collection_info("restored"),
        double.collection_info("discussions")
    );
    assert_eq!(
        double.point_ids("restored"),
        double.point_ids("discussions")
    );
    let list = c.get("/collections/restored/snapshots").json();
    assert_eq!(list["result"][0]["name"], "restored-upload.snapshot");
    assert_eq!(list["result"][0]["size"], desc["size"]);
    assert!(list["result"][0].get("checksum").is_none());

    // Into an existing compatible collection: points replaced wholesale, config kept.
    double.upsert_points("restored", &[5000]);
    let resp = upload(&mut c, "restored", "", "again.snapshot", &dl.body);
    assert_eq!(resp.json()["result"], true);
    assert_eq!(
        double.point_ids("restored"),
        double.point_ids("discussions")
    );

    // Recover from a file inside the snapshots folder.
    double.upsert_points("restored", &[6000]);
    let location = format!(
        "file://{}",
        double
            .snapshots_dir()
            .join("discussions")
            .join(&name)
            .display()
    );
    let resp = c.json(
        "PUT",
        "/collections/restored/snapshots/recover",
        &json!({"location": location}),
    );
    assert_eq!(resp.json()["result"], true, "{}", resp.text());
    assert_eq!(
        double.point_ids("restored"),
        double.point_ids("discussions")
    );
    let resp = c.json(
        "PUT",
        "/collections/restored/snapshots/recover?wait=true",
        &json!({"location": "file:///etc/passwd", "priority": "snapshot"}),
    );
    assert_eq!(resp.status, 403);
    let msg = resp.json()["status"]["error"]
        .as_str()
        .expect("msg")
        .to_string();
    assert!(
        msg.starts_with("Forbidden: Snapshot file path must be inside the snapshots directory \""),
        "{msg}"
    );

    // Delete, then 404 with the fixture's shape.
    let resp = c.request(
        "DELETE",
        &format!("/collections/discussions/snapshots/{name}?wait=true"),
        &[],
        b"",
    );
    assert_eq!(resp.json()["result"], true);
    let resp = c.request(
        "DELETE",
        &format!("/collections/discussions/snapshots/{name}?wait=true"),
        &[],
        b"",
    );
    assert_eq!(resp.status, 404);
    assert_eq!(
        without_time(resp.json()),
        json!({"status": {"error": format!("Not found: Snapshot {name} not found")}})
    );
    assert!(double.snapshot_names("discussions").is_empty());

    // wait=false: 202 without a name, the snapshot appears anyway.
    let resp = replay(&mut c, "snapshots/create-nowait.json");
    assert_eq!(resp.status, 202);
    assert_eq!(double.snapshot_names("code-patterns").len(), 1);
}

#[test]
fn uploads_match_the_fixtures() {
    let double = Double::start(Config::default());
    double.seed_ai_memory();
    let mut c = Client::new(&double);
    let real = real_snapshot();
    let check = |resp: &Resp, path: &str| {
        let f = fixture(path);
        assert_eq!(
            resp.status,
            f["response"]["status"],
            "{path}: {}",
            resp.text()
        );
        match &f["response"]["body"] {
            Value::String(s) => assert_eq!(&resp.text(), s),
            body => assert_eq!(
                without_time(resp.json()),
                without_time(body.clone()),
                "{path}"
            ),
        }
    };
    let zeros = "0".repeat(64);
    let resp = upload(
        &mut c,
        "restored",
        &format!("wait=true&priority=snapshot&checksum={zeros}"),
        "restored-upload.snapshot",
        &real,
    );
    check(&resp, "snapshots/upload-wrong-checksum.json");
    assert_eq!(double.collection_info("restored"), None);

    let body = multipart_body("b0undary", "file", "x.snapshot", &real);
    let resp = c.request(
        "POST",
        "/collections/restored/snapshots/upload?wait=true",
        &[("Content-Type", "multipart/form-data; boundary=b0undary")],
        &body,
    );
    check(&resp, "snapshots/upload-missing-field.json");

    let resp = upload(
        &mut c,
        "garbage",
        "wait=true&priority=snapshot",
        "garbage.snapshot",
        b"this is not a tar archive at all",
    );
    check(&resp, "snapshots/upload-garbage.json");

    let resp = upload(
        &mut c,
        "restored",
        "wait=true&checksum=abc",
        "x.snapshot",
        &real,
    );
    assert_eq!(resp.status, 422);
    assert!(resp.json().get("result").is_none());

    let sum = fixture("snapshots/create.json")["response"]["body"]["result"]["checksum"].clone();
    let sum = sum.as_str().expect("sum");
    let resp = upload(
        &mut c,
        "restored",
        &format!("wait=true&priority=snapshot&checksum={sum}"),
        "restored-upload.snapshot",
        &real,
    );
    check(&resp, "snapshots/upload-absent-collection.json");
    let info = double.collection_info("restored").expect("restored");
    let expected =
        &fixture("collections/info-restored-from-upload.json")["response"]["body"]["result"];
    assert_eq!(info["config"], expected["config"]);
    let schema = |v: &Value| -> Value {
        let mut v = v["payload_schema"].clone();
        for (_, e) in v.as_object_mut().expect("schema").iter_mut() {
            e["points"] = json!(0);
        }
        v
    };
    assert_eq!(schema(&info), schema(expected));
    assert_eq!(double.point_ids("restored"), Some(vec![]));
    let list = c.get("/collections/restored/snapshots").json();
    let expected_list =
        fixture("snapshots/list-after-upload.json")["response"]["body"]["result"].clone();
    assert_eq!(list["result"][0]["name"], expected_list[0]["name"]);
    assert_eq!(list["result"][0]["size"], expected_list[0]["size"]);
    assert!(list["result"][0].get("checksum").is_none());

    replay(&mut c, "collections/create-uint8-manhattan.json");
    let resp = upload(
        &mut c,
        "uint8-manhattan",
        &format!("wait=true&priority=snapshot&checksum={sum}"),
        "u.snapshot",
        &real,
    );
    check(&resp, "snapshots/upload-incompatible.json");
    replay(&mut c, "collections/delete.json");
}

/// A double holding a 100 kB snapshot of `conventions`, a client, the snapshot's path and
/// its whole download and description.
fn a_big_conventions_snapshot() -> (Double, Client, String, Resp, Value) {
    let double = Double::start(Config::default());
    double.seed_ai_memory();
    double.set_snapshot_filler("conventions", 100_000);
    let mut c = Client::new(&double);
    let desc = c
        .request(
            "POST",
            "/collections/conventions/snapshots?wait=true",
            &[],
            b"",
        )
        .json()["result"]
        .clone();
    let name = desc["name"].as_str().expect("name");
    let path = format!("/collections/conventions/snapshots/{name}");
    let full = c.request("GET", &path, &[("Accept-Encoding", "identity")], b"");
    (double, c, path, full, desc)
}

#[test]
fn range_and_if_match() {
    let (_double, mut c, path, full, desc) = a_big_conventions_snapshot();
    let len = full.body.len();
    assert!(len > 100_000);
    let etag = full.header("etag").expect("etag").to_string();

    let part = c.request("GET", &path, &[("Range", "bytes=100-199")], b"");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, full.body[100..200]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 100-199/{len}").as_str())
    );
    assert_eq!(part.header("content-length"), Some("100"));

    let tail = c.request(
        "GET",
        &path,
        &[("Range", "bytes=5000-"), ("If-Match", &etag)],
        b"",
    );
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, full.body[5000..]);
    assert_eq!(
        tail.header("content-range"),
        Some(format!("bytes 5000-{}/{len}", len - 1).as_str())
    );

    let stale = c.request(
        "GET",
        &path,
        &[("Range", "bytes=5000-"), ("If-Match", "\"1:2:3:4\"")],
        b"",
    );
    assert_eq!(stale.status, 412);
    let beyond = c.request("GET", &path, &[("Range", &format!("bytes={len}-"))], b"");
    assert_eq!(beyond.status, 416);

    // The filler is in the archive, at its exact size.
    let entries = tar_entries(&full.body);
    assert_eq!(entries["0/segments/double-filler.bin"].len(), 100_000);
    assert_eq!(sha_hex(&full.body), desc["checksum"]);
}

#[test]
fn chunked_upload_with_expect_continue() {
    let double = Double::start(Config::default());
    let mut c = Client::new(&double);
    let body = multipart_body(
        "chunky",
        "snapshot",
        "dir/chunked.snapshot",
        &real_snapshot(),
    );
    c.send_head(
        "POST",
        "/collections/chunked/snapshots/upload?wait=true",
        &[
            ("Content-Type", "multipart/form-data; boundary=chunky"),
            ("Transfer-Encoding", "chunked"),
            ("Expect", "100-continue"),
        ],
    );
    // Wait for 100 Continue.
    let mut line = String::new();
    c.reader.read_line(&mut line).expect("continue");
    assert!(line.starts_with("HTTP/1.1 100"), "{line}");
    c.reader.read_line(&mut line).expect("blank");
    let stream = c.reader.get_mut();
    let mut sizes = [1usize, 7, 8192, 65_536, 3].iter().cycle();
    let mut rest = &body[..];
    while !rest.is_empty() {
        let n = (*sizes.next().expect("size")).min(rest.len());
        write!(stream, "{n:x};ext=1\r\n").expect("size line");
        stream.write_all(&rest[..n]).expect("chunk");
        stream.write_all(b"\r\n").expect("crlf");
        rest = &rest[n..];
    }
    stream
        .write_all(b"0\r\nX-Trailer: 1\r\n\r\n")
        .expect("last chunk");
    let resp = c.read_response().expect("response");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(double.snapshot_names("chunked"), vec!["chunked.snapshot"]);
    // The connection is still usable.
    assert_eq!(
        c.get("/collections/chunked/exists").json()["result"]["exists"],
        true
    );
    let recorded = double.requests();
    assert_eq!(recorded[0].headers["transfer-encoding"], "chunked");
    assert_eq!(recorded[0].query["wait"], "true");
    assert_eq!(recorded[1].path, "/collections/chunked/exists");
}

#[test]
fn fault_kinds() {
    let double = Double::start(Config::default());
    double.seed_ai_memory();
    let mut c = Client::new(&double);

    double.inject(Fault::new(
        Some("GET"),
        "/collections",
        FaultKind::Status {
            code: 503,
            message: "Service unavailable: injected".into(),
        },
    ));
    let resp = c.get("/collections");
    assert_eq!(resp.status, 503);
    assert_eq!(
        without_time(resp.json()),
        json!({"status": {"error": "Service unavailable: injected"}})
    );
    assert_eq!(c.get("/collections").status, 200);

    double.inject(Fault::new(
        None,
        "/collections",
        FaultKind::PlainStatus {
            code: 502,
            body: "bad gateway".into(),
        },
    ));
    let resp = c.get("/collections");
    assert_eq!((resp.status, resp.text().as_str()), (502, "bad gateway"));
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    double.inject(Fault::new(None, "/collections", FaultKind::DropConnection));
    c.send_head("GET", "/collections", &[]);
    assert!(c.read_response().is_none());
    let mut c = Client::new(&double);

    double.inject(Fault::new(
        None,
        "/exists",
        FaultKind::Delay(Duration::from_millis(300)),
    ));
    let t = Instant::now();
    assert_eq!(c.get("/collections/github/exists").status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    // Wrong checksum on create and on list.
    double.inject(Fault::new(
        Some("POST"),
        "/snapshots",
        FaultKind::WrongChecksum,
    ));
    let desc = c
        .request("POST", "/collections/github/snapshots", &[], b"")
        .json()["result"]
        .clone();
    let name = desc["name"].as_str().expect("name").to_string();
    let path = format!("/collections/github/snapshots/{name}");
    let file = c.get(&path);
    assert_ne!(sha_hex(&file.body), desc["checksum"]);
    assert_eq!(desc["checksum"].as_str().map(str::len), Some(64));

    double.inject(
        Fault::new(
            Some("POST"),
            "/collections/jira-data/snapshots",
            FaultKind::Status {
                code: 500,
                message: "x".into(),
            },
        )
        .times(0),
    );
    let good = c
        .request("POST", "/collections/jira-data/snapshots", &[], b"")
        .json()["result"]
        .clone();
    double.inject(Fault::new(
        Some("GET"),
        "/collections/jira-data/snapshots",
        FaultKind::WrongChecksum,
    ));
    let listed = c.get("/collections/jira-data/snapshots").json()["result"][0]["checksum"].clone();
    assert_ne!(listed, good["checksum"]);
    let listed = c.get("/collections/jira-data/snapshots").json()["result"][0]["checksum"].clone();
    assert_eq!(listed, good["checksum"]);

    // Truncated download: full Content-Length, fewer bytes, then EOF.
    double.inject(Fault::new(
        Some("GET"),
        &name,
        FaultKind::TruncateBody { after_bytes: 1000 },
    ));
    let resp = c.get(&path).clone_partial();
    assert_eq!(resp.0, file.body.len().to_string());
    assert_eq!(resp.1.len(), 1000);
    assert_eq!(resp.1, file.body[..1000]);
    let mut c = Client::new(&double);

    // Stalled download: everything arrives, late.
    double.inject(Fault::new(
        Some("GET"),
        &name,
        FaultKind::StallBody {
            after_bytes: 2000,
            stall: Duration::from_millis(400),
        },
    ));
    let t = Instant::now();
    let resp = c.get(&path);
    assert!(t.elapsed() >= Duration::from_millis(400));
    assert_eq!(resp.body, file.body);

    // Destructive upload failure.
    let snapshot = c.get(&path).body;
    double.inject(Fault::new(
        Some("POST"),
        "/upload",
        FaultKind::UploadFailAfterClear,
    ));
    let resp = upload(&mut c, "github", "wait=true", "g.snapshot", &snapshot);
    assert_eq!(resp.status, 500);
    let msg = resp.json()["status"]["error"]
        .as_str()
        .expect("msg")
        .to_string();
    assert!(msg.starts_with("Service internal error: "), "{msg}");
    assert_eq!(double.point_ids("github"), Some(vec![]));
    let resp = upload(&mut c, "github", "wait=true", "g.snapshot", &snapshot);
    assert_eq!(resp.status, 200);
    assert_eq!(double.point_ids("github"), Some((1..=30).collect()));

    double.inject(Fault::always(
        None,
        "/",
        FaultKind::Status {
            code: 500,
            message: "down".into(),
        },
    ));
    assert_eq!(c.get("/").status, 500);
    assert_eq!(c.get("/").status, 500);
    double.clear_faults();
    assert_eq!(c.get("/").status, 200);
}

trait Partial {
    fn clone_partial(self) -> (String, Vec<u8>);
}

impl Partial for Resp {
    /// (announced Content-Length, bytes received)
    fn clone_partial(self) -> (String, Vec<u8>) {
        (
            self.header("content-length").unwrap_or("").to_string(),
            self.body,
        )
    }
}

#[test]
fn same_second_snapshots_overwrite_and_drop_cleans_up() {
    let double = Double::start(Config::default());
    double.seed_ai_memory();
    let dir = double.snapshots_dir();
    let mut c = Client::new(&double);
    let mut names = Vec::new();
    for _ in 0..3 {
        let r = c
            .request("POST", "/collections/conventions/snapshots", &[], b"")
            .json();
        names.push(r["result"]["name"].as_str().expect("name").to_string());
    }
    names.sort();
    names.dedup();
    assert_eq!(double.snapshot_names("conventions"), names);
    drop(double);
    assert!(!dir.exists());
}

#[test]
fn round_trip_keeps_fields_without_values_and_multi_shard_configs() {
    let double = Double::start(Config::default());
    double.seed_ai_memory();
    let mut c = Client::new(&double);
    replay(&mut c, "collections/create-named-pq-f16.json");
    double.upsert_points("named-pq-f16", &[7, 8]);
    for source in ["github", "named-pq-f16"] {
        let desc = c
            .request(
                "POST",
                &format!("/collections/{source}/snapshots"),
                &[],
                b"",
            )
            .json()["result"]
            .clone();
        let name = desc["name"].as_str().expect("name");
        let file = c.get(&format!("/collections/{source}/snapshots/{name}"));
        let copy = format!("{source}-copy");
        let resp = upload(&mut c, &copy, "wait=true", name, &file.body);
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(
            double.collection_info(&copy),
            double.collection_info(source)
        );
        assert_eq!(double.point_ids(&copy), double.point_ids(source));
    }
    let github = double.collection_info("github").expect("github");
    let expected = fixture("collections/info-github.json");
    assert_eq!(github, expected["response"]["body"]["result"]);
}

#[test]
fn metrics_show_snapshot_gauges_and_a_slow_recovery_outlives_its_client() {
    let double = Double::start(Config {
        api_key: Some(KEY.into()),
        ..Config::default()
    });
    double.seed_ai_memory();
    assert_eq!(Client::new(&double).get("/metrics").status, 401);
    let mut c = Client::with_key(&double, Some(KEY));
    let text = c.get("/metrics").text();
    assert!(text.contains("collections_total 5\n"), "{text}");
    assert!(
        !text.contains("snapshot_recovery_running"),
        "no snapshot activity yet"
    );
    let resp = c.request("POST", "/collections/discussions/snapshots", &[], b"");
    assert_eq!(resp.status, 200);
    let text = c.get("/metrics").text();
    assert!(
        text.contains("# TYPE snapshot_recovery_running gauge\n"),
        "{text}"
    );
    assert!(text.contains("snapshot_recovery_running{id=\"discussions\"} 0\n"));
    assert!(text.contains("snapshot_created_total{id=\"discussions\"} 1\n"));

    double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::SlowRecovery {
            takes: Duration::from_millis(500),
            answer: crate::LateAnswer::Drop,
        },
    ));
    double.upsert_points("conventions", &[77]);
    let mut up = Client::with_key(&double, Some(KEY));
    let sum = sha_hex(&real_snapshot());
    let body = multipart_body("XbOuNdArYx", "snapshot", "late.snapshot", &real_snapshot());
    up.send_head(
        "POST",
        &format!("/collections/conventions/snapshots/upload?checksum={sum}"),
        &[
            ("content-type", "multipart/form-data; boundary=XbOuNdArYx"),
            ("content-length", &body.len().to_string()),
        ],
    );
    up.reader.get_mut().write_all(&body).expect("body");
    assert!(up.read_response().is_none(), "the connection is dropped");
    assert_eq!(double.recoveries_running(), 1);
    let text = c.get("/metrics").text();
    assert!(
        text.contains("snapshot_recovery_running{id=\"conventions\"} 1\n"),
        "{text}"
    );
    assert!(double.wait_for_recoveries(Duration::from_secs(10)));
    assert!(!double.point_ids("conventions").unwrap().contains(&77));
}

#[test]
fn configured_rates_stretch_snapshot_creation_and_recovery_to_their_size() {
    let rate = std::num::NonZeroU64::new(1 << 20).expect("non-zero"); // 1 MiB/s
    let source = Double::start(Config {
        api_key: Some(KEY.into()),
        snapshot_create_rate: Some(rate),
        ..Config::default()
    });
    source.seed_ai_memory();
    source.set_snapshot_filler("discussions", 600 << 10);
    let mut c = Client::with_key(&source, Some(KEY));
    let started = Instant::now();
    let resp = c.request("POST", "/collections/discussions/snapshots", &[], b"");
    let took = started.elapsed();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let desc = resp.json()["result"].clone();
    let size = desc["size"].as_u64().expect("size");
    assert!(size > 600 << 10, "{size}");
    let at_least = crate::pace::work_time(size, rate);
    assert!(
        took >= at_least,
        "creation took {took:?}, expected >= {at_least:?}"
    );

    let name = desc["name"].as_str().expect("name");
    let data = c
        .get(&format!("/collections/discussions/snapshots/{name}"))
        .body;
    assert_eq!(data.len() as u64, size);

    let target = Double::start(Config {
        api_key: Some(KEY.into()),
        snapshot_recover_rate: Some(rate),
        ..Config::default()
    });
    let mut t = Client::with_key(&target, Some(KEY));
    let started = Instant::now();
    let resp = upload(&mut t, "restored", "wait=true", "big.snapshot", &data);
    let took = started.elapsed();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        took >= at_least,
        "recovery took {took:?}, expected >= {at_least:?}"
    );
    assert_eq!(target.collection_names(), vec!["restored".to_string()]);
}

/// The faults for resumed downloads: a server that ignores ranges, a file whose ETag changed,
/// a 206 for another range, a cut at a share of the body; and the count of bytes served.
#[test]
fn range_faults_and_served_bytes() {
    let (double, mut c, path, full, _) = a_big_conventions_snapshot();
    let len = full.body.len();
    let etag = full.header("etag").expect("etag").to_string();
    let ranged = [("Range", "bytes=5000-"), ("If-Match", etag.as_str())];

    double.inject(Fault::new(Some("GET"), &path, FaultKind::IgnoreRange));
    let ignored = c.request("GET", &path, &ranged, b"");
    assert_eq!(ignored.status, 200);
    assert_eq!(ignored.body, full.body);

    double.inject(Fault::new(Some("GET"), &path, FaultKind::ChangedEtag));
    assert_eq!(c.request("GET", &path, &ranged, b"").status, 412);

    double.inject(Fault::new(
        Some("GET"),
        &path,
        FaultKind::ShiftedRange { back: 1000 },
    ));
    let shifted = c.request("GET", &path, &ranged, b"");
    assert_eq!(shifted.status, 206);
    assert_eq!(shifted.body, full.body[4000..]);
    assert_eq!(
        shifted.header("content-range"),
        Some(format!("bytes 4000-{}/{len}", len - 1).as_str())
    );

    double.inject(Fault::new(
        Some("GET"),
        &path,
        FaultKind::TruncateBodyAtPercent { percent: 50 },
    ));
    let cut = c.request("GET", &path, &[], b"");
    assert_eq!(cut.body.len(), len / 2);
    // The connection closed after the cut, so every answer on it has been counted.
    assert_eq!(
        double.body_bytes_served("GET", &path) as usize,
        2 * len + (len - 4000) + len / 2
    );
    assert_eq!(double.body_bytes_served("DELETE", &path), 0);
}

#[test]
fn index_builds_take_the_configured_delay_and_wait_false_only_acknowledges() {
    let double = Double::start(Config {
        api_key: Some(KEY.into()),
        collection_create_delay: Some(Duration::from_millis(50)),
        index_create_delay: Some(Duration::from_millis(200)),
        ..Config::default()
    });
    let mut c = Client::with_key(&double, Some(KEY));
    replay(&mut c, "collections/create-sparse-only.json");
    // wait=true: the answer comes once the index is there.
    let resp = c.json(
        "PUT",
        "/collections/sparse-only/index?wait=true",
        &json!({"field_name": "tag", "field_schema": "keyword"}),
    );
    assert_eq!(resp.json()["result"]["status"], "completed");
    let info = c.get("/collections/sparse-only").json();
    assert!(info["result"]["payload_schema"]["tag"].is_object());
    // wait=false: acknowledged at once; the index shows up later.
    let resp = c.json(
        "PUT",
        "/collections/sparse-only/index?wait=false",
        &json!({"field_name": "n", "field_schema": "integer"}),
    );
    assert_eq!(resp.json()["result"]["status"], "acknowledged");
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.get("/collections/sparse-only").json()["result"]["payload_schema"]["n"].is_null() {
        assert!(Instant::now() < deadline, "the queued index never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A build that fails in the queue: acknowledged, never there.
    double.inject(Fault::new(
        Some("PUT"),
        "/collections/sparse-only/index",
        FaultKind::IndexNeverApplied,
    ));
    let resp = c.json(
        "PUT",
        "/collections/sparse-only/index?wait=false",
        &json!({"field_name": "lost", "field_schema": "keyword"}),
    );
    assert_eq!(resp.json()["result"]["status"], "acknowledged");
    std::thread::sleep(Duration::from_millis(400));
    let info = double.collection_info("sparse-only").expect("info");
    assert!(info["payload_schema"].get("lost").is_none());
}

/// One `Connection: close` request, read to the end of the connection: status, headers and
/// the raw bytes after the head.
fn raw_exchange(port: u16, target: &str) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let head = format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("head");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn plain_double(config: Config) -> Double {
    let double = Double::start(config);
    double.seed_from_fixture("plain", "collections/info-discussions.json", 30);
    double
}

const STREAM_0: &str = "/collections/plain/shards/0/snapshot";

#[test]
fn a_shard_streams_as_a_chunked_tar_and_nothing_is_stored() {
    let double = plain_double(Config::default());
    let (status, headers, raw) = raw_exchange(double.port(), STREAM_0);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&raw));
    let want = fixture("snapshots/stream-shard-0.json")["response"]["headers"].clone();
    assert_eq!(
        headers.get("transfer-encoding"),
        Some(&"chunked".to_string())
    );
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        want["content-type"].as_str()
    );
    assert_eq!(headers.get("content-length"), None);
    assert_eq!(headers.get("content-encoding"), None);
    // `attachment; filename="plain-shard-0-2026-12-06-23-34-12.snapshot"`
    let disposition = &headers["content-disposition"];
    let real = want["content-disposition"].as_str().expect("fixture");
    assert_eq!(disposition.len(), real.len(), "{disposition}");
    assert!(
        disposition.starts_with("attachment; filename=\"plain-shard-0-")
            && disposition.ends_with(".snapshot\""),
        "{disposition}"
    );
    let (body, terminated) = http::decode_chunked(&raw);
    assert!(terminated, "no terminating chunk");
    let entries = tar_entries(&body);
    let names: BTreeSet<String> = entries
        .keys()
        .map(|n| n.trim_end_matches('/').to_string())
        .collect();
    for name in [
        "replica_state.json",
        "shard_config.json",
        snapshot::POINTS_ENTRY,
        "wal",
    ] {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with("0/")), "{names:?}");
    let replica: Value = serde_json::from_slice(&entries["replica_state.json"]).expect("json");
    assert_eq!(replica["this_peer_id"], json!(Config::default().peer_id));
    assert_eq!(replica["is_local"], json!(true));
    let spool = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(spool.path(), &body).expect("write");
    let parsed = snapshot::read_snapshot(spool.path()).expect("parse");
    assert_eq!(parsed.points, (1..=30).collect());

    assert!(double.snapshot_names("plain").is_empty());
    assert_eq!(
        files_under(&double.snapshots_dir()),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(double.body_bytes_served("GET", STREAM_0), body.len() as u64);

    // The streamed archive is a shard snapshot: it uploads back into a shard.
    double.seed_from_fixture("copy", "collections/info-discussions.json", 0);
    let mut c = Client::new(&double);
    let form = multipart_body("XbOuNdArYx", "snapshot", "s.snapshot", &body);
    let resp = c.request(
        "POST",
        "/collections/copy/shards/0/snapshots/upload",
        &[("Content-Type", "multipart/form-data; boundary=XbOuNdArYx")],
        &form,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(double.point_ids("copy"), Some((1..=30).collect()));
}

#[test]
fn streaming_an_unknown_shard_or_collection_is_a_plain_404() {
    let double = plain_double(Config::default());
    let mut c = Client::new(&double);
    replay(&mut c, "snapshots/stream-shard-404.json");
    let resp = c.get("/collections/nope/shards/0/snapshot");
    assert_eq!(resp.status, 404);
    assert_eq!(resp.text(), "Not found: Collection `nope` doesn't exist!");
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    // A one-shard collection has only shard 0.
    let resp = c.get("/collections/plain/shards/1/snapshot");
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (404, "Not found: shard 1 not found")
    );
    assert!(files_under(&double.snapshots_dir()).is_empty());
}

#[test]
fn an_older_server_has_no_streamed_shard_snapshot() {
    let double = plain_double(Config {
        no_streamed_shard_snapshot: true,
        ..Config::default()
    });
    let mut c = Client::new(&double);
    let resp = c.get(STREAM_0);
    assert_eq!(resp.status, 404);
    assert_eq!(
        resp.json()["status"]["error"],
        json!(format!("Not found: no route for GET {STREAM_0}"))
    );
    // The stored shard snapshots are still there (the upload route answers).
    let resp = c.request(
        "POST",
        "/collections/plain/shards/0/snapshots/upload",
        &[],
        b"",
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
}

#[test]
fn body_faults_cut_or_stall_a_streamed_shard() {
    let double = plain_double(Config::default());
    double.set_snapshot_filler("plain", 300_000);
    let (_, _, raw) = raw_exchange(double.port(), STREAM_0);
    let (full, terminated) = http::decode_chunked(&raw);
    assert!(terminated);
    assert!(full.len() > 300_000);

    // Cut: the body bytes asked for, then the connection closes with no `0` chunk.
    double.inject(Fault::new(
        Some("GET"),
        "/shards/0/snapshot",
        FaultKind::TruncateBody {
            after_bytes: 100_000,
        },
    ));
    let (status, headers, raw) = raw_exchange(double.port(), STREAM_0);
    assert_eq!(status, 200);
    assert_eq!(headers.get("content-length"), None);
    let (cut, terminated) = http::decode_chunked(&raw);
    assert!(
        !terminated,
        "a cut stream must not end with the terminating chunk"
    );
    assert_eq!(cut.len(), 100_000);
    assert_eq!(cut[..], full[..100_000]);
    assert!(!raw.ends_with(b"0\r\n\r\n"));
    let served = double.served();
    assert_eq!(served.last().map(|s| s.2), Some(100_000));

    // A percentage cut measures the stream first.
    double.inject(Fault::new(
        Some("GET"),
        "/shards/0/snapshot",
        FaultKind::TruncateBodyAtPercent { percent: 50 },
    ));
    let (_, _, raw) = raw_exchange(double.port(), STREAM_0);
    let (cut, terminated) = http::decode_chunked(&raw);
    assert!(!terminated);
    assert_eq!(cut.len(), full.len() / 2);

    // Stall: the stream waits half-way, then ends normally.
    double.inject(Fault::new(
        Some("GET"),
        "/shards/0/snapshot",
        FaultKind::StallBody {
            after_bytes: 1000,
            stall: Duration::from_millis(400),
        },
    ));
    let started = Instant::now();
    let (_, _, raw) = raw_exchange(double.port(), STREAM_0);
    assert!(started.elapsed() >= Duration::from_millis(400));
    let (stalled, terminated) = http::decode_chunked(&raw);
    assert!(terminated);
    assert_eq!(stalled.len(), full.len());
    assert!(files_under(&double.snapshots_dir()).is_empty());
}

#[test]
fn a_configured_create_rate_paces_the_stream() {
    let double = plain_double(Config {
        snapshot_create_rate: NonZeroU64::new(1 << 20),
        ..Config::default()
    });
    double.set_snapshot_filler("plain", 400 << 10);
    let started = Instant::now();
    let (status, _, raw) = raw_exchange(double.port(), STREAM_0);
    assert_eq!(status, 200);
    let (body, terminated) = http::decode_chunked(&raw);
    assert!(terminated);
    assert!(body.len() > 400 << 10);
    assert!(
        started.elapsed() >= Duration::from_millis(390),
        "{:?}",
        started.elapsed()
    );
}

/// Scroll and upsert answer as `points/scroll-*.json` and `points/upsert-*.json`: a bare list
/// for a collection with only its unnamed vector, a named object otherwise, pages joined by
/// `next_page_offset`, an upserted point back as sent, an empty upsert refused.
#[test]
fn scroll_and_upsert_answer_as_the_real_server_does() {
    let double = Double::start(Config::default());
    let plain = json!({"config": {"params": {"vectors": {"size": 4, "distance": "Cosine"}}}});
    double.seed("plain", plain, (1..=3).collect());
    double.seed_ai_memory();
    let mut client = Client::new(&double);
    let page = client
        .json(
            "POST",
            "/collections/plain/points/scroll",
            &json!({"limit": 2, "with_vector": true}),
        )
        .json();
    let points = page["result"]["points"].as_array().unwrap().clone();
    assert_eq!(points.len(), 2);
    assert!(points[0]["vector"].is_array(), "{page}");
    assert_eq!(page["result"]["next_page_offset"], 3);
    let rest = client
        .json(
            "POST",
            "/collections/plain/points/scroll",
            &json!({"limit": 2, "with_vector": true, "offset": 3}),
        )
        .json();
    assert_eq!(rest["result"]["points"][0]["id"], 3);
    assert_eq!(rest["result"]["next_page_offset"], Value::Null);

    let named = client
        .json(
            "POST",
            "/collections/github/points/scroll",
            &json!({"limit": 1, "with_vector": true}),
        )
        .json();
    let vector = &named["result"]["points"][0]["vector"];
    assert_eq!(vector[""].as_array().map(Vec::len), Some(768), "{named}");
    assert!(vector["bm25"]["indices"].is_array());

    let point = json!({"id": "19c3756f-402f-4856-b279-517ecd223cf2", "vector": {"": [1, 0, 0, 0]}, "payload": {"k": 1}});
    let written = client.json(
        "PUT",
        "/collections/plain/points?wait=true",
        &json!({"points": [point]}),
    );
    assert_eq!(written.status, 200);
    let all = client
        .json(
            "POST",
            "/collections/plain/points/scroll",
            &json!({"limit": 10, "with_vector": true}),
        )
        .json();
    let last = all["result"]["points"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["id"], "19c3756f-402f-4856-b279-517ecd223cf2");
    assert_eq!(last["payload"], json!({"k": 1}));
    // Stored as 32-bit floats, as the real server answers them.
    assert_eq!(last["vector"], json!([1.0, 0.0, 0.0, 0.0]));
    let empty = client.json(
        "PUT",
        "/collections/plain/points?wait=true",
        &json!({"points": []}),
    );
    assert_eq!(empty.status, 400);
    assert!(empty.text().contains("Empty update request"));
}

#[path = "points_tests.rs"]
mod points_tests;

/// `PATCH /collections/{c}` answers `true` as the real server does, keeps the settings it gets
/// (a null leaves one as it is), answers `yellow` once after a threshold of 0 comes back on a
/// collection with points, and counts the points written while indexing was off.
#[test]
fn collection_settings_change_and_unindexed_writes() {
    let double = Double::start(Config::default());
    let mut c = Client::new(&double);
    let create = json!({"vectors": {"size": 2, "distance": "Dot"},
                        "optimizers_config": {"indexing_threshold": 0}});
    assert_eq!(c.json("PUT", "/collections/c", &create).status, 200);
    let points =
        json!({"points": [{"id": 1, "vector": [1.0, 0.5]}, {"id": 2, "vector": [0.5, 1.0]}]});
    assert_eq!(
        c.json("PUT", "/collections/c/points?wait=true", &points)
            .status,
        200
    );
    assert_eq!(double.unindexed_writes("c"), 2);

    let change = json!({"optimizers_config": {"indexing_threshold": 20, "deleted_threshold": null},
                        "hnsw_config": {"m": 8}});
    let answer = c.json("PATCH", "/collections/c", &change);
    assert_eq!(answer.status, 200);
    let answer = answer.json();
    assert_eq!(answer["result"], true);
    assert_eq!(answer["status"], "ok");
    assert!(answer["time"].is_number());
    let info = c.get("/collections/c").json();
    assert_eq!(info["result"]["status"], "yellow");
    let config = &info["result"]["config"];
    assert_eq!(config["optimizer_config"]["indexing_threshold"], 20);
    assert_eq!(config["optimizer_config"]["deleted_threshold"], 0.2);
    assert_eq!(config["hnsw_config"]["m"], 8);
    assert_eq!(c.get("/collections/c").json()["result"]["status"], "green");
    assert_eq!(
        c.json("PUT", "/collections/c/points?wait=true", &points)
            .status,
        200
    );
    assert_eq!(double.unindexed_writes("c"), 2);

    let bad = json!({"optimizers_config": {"indexing_threshold": -1}});
    assert_eq!(c.json("PATCH", "/collections/c", &bad).status, 400);
    assert_eq!(c.json("PATCH", "/collections/absent", &change).status, 404);
}
