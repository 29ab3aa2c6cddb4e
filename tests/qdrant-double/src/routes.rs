//! Authentication and the REST endpoints.

use std::collections::BTreeSet;
use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::LateAnswer;
use crate::http::{BodyReader, Request, Response, ResponseBody};
use crate::multipart::{self, MultipartError};
use crate::server::{Shared, lock};
use crate::snapshot::{self, HashingWriter};
use crate::state::{self, Collection};

const JSON_LIMIT: u64 = 64 * 1024 * 1024;

/// Per-request effects of injected faults.
#[derive(Debug, Default, Clone)]
pub(crate) struct Flags {
    pub wrong_checksum: bool,
    pub upload_fail_after_clear: bool,
    pub slow_recovery: Option<(Duration, LateAnswer)>,
    pub snapshot_named: Option<String>,
    pub ignore_range: bool,
    pub changed_etag: bool,
    pub shifted_range: Option<u64>,
    pub index_never_applied: bool,
    pub late_replica_reset: Option<Duration>,
}

/// Counts one running snapshot recovery of a collection for `/metrics` while it lives, like
/// the real server's `running_snapshot_recovery.measure_scope()`.
pub(crate) struct RecoveryGuard<'s> {
    shared: &'s Shared,
    collection: String,
}

impl<'s> RecoveryGuard<'s> {
    pub fn new(shared: &'s Shared, collection: &str) -> Self {
        lock(&shared.state)
            .snapshot_telemetry
            .entry(collection.to_string())
            .or_default()
            .running_recoveries += 1;
        RecoveryGuard {
            shared,
            collection: collection.to_string(),
        }
    }
}

impl Drop for RecoveryGuard<'_> {
    fn drop(&mut self) {
        if let Some(t) = lock(&self.shared.state)
            .snapshot_telemetry
            .get_mut(&self.collection)
        {
            t.running_recoveries = t.running_recoveries.saturating_sub(1);
        }
    }
}

/// A recovery that goes on after the client got its answer (or lost its connection): the
/// connection thread runs it once the answer is out.
pub(crate) struct Deferred<'s> {
    guard: RecoveryGuard<'s>,
    path: PathBuf,
    takes: Duration,
    fail_after_clear: bool,
    /// `no_sync`, `snapshot` or `replica`.
    priority: String,
    /// Multi-peer mode: a shard snapshot's recovery, run instead of the collection's.
    shard: Option<ShardRecovery<'s>>,
}

/// A shard snapshot's recovery, run after the client got its answer (or none).
pub(crate) type ShardRecovery<'s> = Box<dyn FnOnce() -> Result<(), Failure> + 's>;

impl<'s> Deferred<'s> {
    /// A shard recovery that starts `takes` from now, counted in `/metrics` until it ends.
    pub fn shard(
        shared: &'s Shared,
        collection: &str,
        takes: Duration,
        recover: ShardRecovery<'s>,
    ) -> Self {
        Deferred {
            guard: RecoveryGuard::new(shared, collection),
            path: PathBuf::new(),
            takes,
            fail_after_clear: false,
            priority: String::new(),
            shard: Some(recover),
        }
    }

    pub fn run(self) -> Result<(), Failure> {
        std::thread::sleep(self.takes);
        let result = match self.shard {
            Some(recover) => recover(),
            None => recover_unmeasured(
                self.guard.shared,
                &self.guard.collection,
                &self.path,
                self.fail_after_clear,
                &self.priority,
            ),
        };
        drop(self.guard);
        result
    }
}

fn secs(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

pub(crate) fn ok(result: Value, started: Instant) -> Response {
    Response::json(
        200,
        &json!({"result": result, "status": "ok", "time": secs(started)}),
    )
}

pub(crate) fn error(status: u16, message: &str, started: Instant) -> Response {
    Response::json(
        status,
        &json!({"status": {"error": message}, "time": secs(started)}),
    )
}

pub(crate) fn accepted(started: Instant) -> Response {
    Response::json(202, &json!({"status": "accepted", "time": secs(started)}))
}

pub(crate) fn not_found_collection(c: &str) -> String {
    format!("Not found: Collection `{c}` doesn't exist!")
}

const FORBIDDEN_MANAGE: &str = "Forbidden: Global manage access is required";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Manage,
}

/// The auth middleware: `Ok(access)` or the 401 to send.
fn authenticate(shared: &Shared, req: &Request) -> Result<Access, Response> {
    let cfg = &shared.config;
    if cfg.api_key.is_none() && cfg.read_only_api_key.is_none() {
        return Ok(Access::Manage);
    }
    // Exactly `/` and `/healthz`, plus the prefixes `/readyz` and `/livez` (trailing slashes
    // are trimmed first, as the real server normalises paths before auth).
    let p = format!("/{}", req.segments.join("/"));
    if p == "/" || p == "/healthz" || p.starts_with("/readyz") || p.starts_with("/livez") {
        return Ok(Access::Manage);
    }
    let token = req.header("api-key").or_else(|| {
        req.header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
    });
    let unauthorized = |msg: &str| Response::new(401, None, msg.as_bytes().to_vec());
    let Some(token) = token else {
        return Err(unauthorized(
            "Must provide an API key or an Authorization bearer token",
        ));
    };
    if cfg.api_key.as_deref() == Some(token) {
        Ok(Access::Manage)
    } else if cfg.read_only_api_key.as_deref() == Some(token) {
        Ok(Access::Read)
    } else {
        Err(unauthorized("Invalid API key or JWT"))
    }
}

pub(crate) fn read_json(body: &mut BodyReader<'_>, allow_empty: bool) -> Result<Value, String> {
    let bytes = body
        .read_all(JSON_LIMIT)
        .map_err(|e| format!("Format error in JSON body: {e}"))?;
    if allow_empty && bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("Format error in JSON body: {e}"))
}

pub(crate) fn handle<'s>(
    shared: &'s Shared,
    req: &Request,
    body: &mut BodyReader<'_>,
    flags: Flags,
    started: Instant,
    later: &mut Option<Deferred<'s>>,
) -> Response {
    let access = match authenticate(shared, req) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let seg: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let method = req.method.to_ascii_uppercase();
    let reads = method == "GET"
        || method == "HEAD"
        || (method == "POST"
            && matches!(
                seg.as_slice(),
                ["collections", _, "points", "count" | "scroll"] | ["collections", _, "points"]
            ));
    if access == Access::Read && !reads {
        let is_upload = seg.len() == 4 && seg[2] == "snapshots" && seg[3] == "upload";
        let deferred = matches!(seg.as_slice(), ["collections", _, "snapshots", ..]);
        if is_upload {
            return Response::plain(403, FORBIDDEN_MANAGE);
        }
        if deferred && !req.wait(true) {
            // The real server checks access inside the spawned task: wait=false hides it.
            return accepted(started);
        }
        return error(403, FORBIDDEN_MANAGE, started);
    }
    // Multi-peer mode: the cluster's routes first; what they leave goes on as for one node.
    if let Some(link) = &shared.cluster {
        match crate::cluster_routes::handle(shared, link, req, body, &flags, started, later) {
            Ok(resp) => return resp,
            Err(()) => crate::cluster_routes::sync_peer(shared, link),
        }
    }

    if let Some(resp) = crate::point_routes::handle(shared, req, &seg, body, started) {
        return resp;
    }
    match (method.as_str(), seg.as_slice()) {
        ("GET", []) => Response::json(
            200,
            &json!({"title": "qdrant - vector search engine", "version": shared.config.version}),
        ),
        ("GET", ["healthz"]) | ("GET", ["livez"]) => Response::plain(200, "healthz check passed"),
        ("GET", ["readyz"]) => Response::plain(200, "all shards are ready"),
        ("GET", ["cluster"]) => ok(json!({"status": "disabled"}), started),
        ("GET", ["metrics"]) => Response::plain(200, &metrics(shared)),
        ("GET", ["telemetry"]) => ok(
            json!({
                "id": shared.process_id,
                "app": {"name": "qdrant", "version": shared.config.version},
                "collections": {"number_of_collections": lock(&shared.state).collections.len()},
                "cluster": {"enabled": shared.cluster.is_some()},
            }),
            started,
        ),
        ("GET", ["collections"]) => {
            let st = lock(&shared.state);
            let list: Vec<Value> = st
                .collections
                .keys()
                .map(|name| json!({ "name": name }))
                .collect();
            ok(json!({ "collections": list }), started)
        }
        ("GET", ["collections", c]) => {
            let mut st = lock(&shared.state);
            st.apply_due_indexes();
            let name = crate::aliases::resolve(&st.aliases, c, st.collections.contains_key(*c));
            let indexing = match st.indexing.get_mut(&name) {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    true
                }
                _ => false,
            };
            match st.collections.get(&name) {
                Some(col) => {
                    let mut info = col.info();
                    if indexing {
                        info["status"] = json!("yellow");
                    }
                    ok(
                        state::info_for_version(info, &shared.config.version),
                        started,
                    )
                }
                None => error(404, &not_found_collection(c), started),
            }
        }
        ("PUT", ["collections", c]) => create_collection(shared, c, body, started),
        ("PATCH", ["collections", c]) => update_collection(shared, c, body, started),
        ("DELETE", ["collections", c]) => {
            let mut st = lock(&shared.state);
            let removed = st.collections.remove(*c).is_some();
            crate::aliases::drop_collection(&mut st.aliases, c);
            ok(json!(removed), started)
        }
        ("GET", ["collections", c, "exists"]) => {
            let exists = lock(&shared.state).collections.contains_key(*c);
            ok(json!({ "exists": exists }), started)
        }
        ("GET", ["collections", c, "cluster"]) => {
            let state = lock(&shared.state);
            match state.collections.get(*c) {
                Some(_) if state.cluster_views.contains_key(*c) => {
                    ok(state.cluster_views[*c].clone(), started)
                }
                Some(col) => ok(col.cluster_info(shared.config.peer_id), started),
                None => error(404, &not_found_collection(c), started),
            }
        }
        ("GET", ["collections", c, "shards", shard, "snapshot"])
            if !shared.config.no_streamed_shard_snapshot =>
        {
            crate::stream_shard::single_node(shared, c, shard)
        }
        (_, ["collections", c, "shards", shard, "snapshots", rest @ ..])
            if !matches!(rest, ["upload"]) =>
        {
            crate::single_shards::stored_shard_snapshots(
                shared,
                (req, body),
                c,
                shard,
                rest,
                &flags,
                started,
            )
        }
        ("POST", ["collections", c, "shards", shard, "snapshots", "upload"]) => {
            crate::single_shards::upload_shard_snapshot(
                shared,
                (req, body),
                (c, shard),
                &flags,
                started,
                later,
            )
        }
        ("PUT", ["collections", c, "index"]) => {
            create_index(shared, req, c, body, started, flags.index_never_applied)
        }
        ("POST", ["collections", c, "snapshots"]) => {
            let mut result = create_snapshot(shared, c, flags.wrong_checksum);
            if let (Some(name), Ok(desc)) = (&flags.snapshot_named, &mut result) {
                desc["name"] = json!(name);
            }
            match (req.wait(true), result) {
                (false, _) => accepted(started),
                (true, Ok(desc)) => ok(desc, started),
                (true, Err((code, msg))) => error(code, &msg, started),
            }
        }
        ("GET", ["collections", c, "snapshots"]) => {
            match list_snapshots(shared, c, flags.wrong_checksum) {
                Ok(list) => ok(Value::Array(list), started),
                Err((code, msg)) => error(code, &msg, started),
            }
        }
        ("POST", ["collections", c, "snapshots", "upload"]) => {
            upload_snapshot(shared, req, c, body, flags, started, later)
        }
        ("PUT", ["collections", c, "snapshots", "recover"]) => {
            let result = match read_json(body, false) {
                Ok(v) => recover_snapshot(shared, c, &v, &flags),
                Err(msg) => Err((400, msg)),
            };
            match (req.wait(true), result) {
                (false, _) => accepted(started),
                (true, Ok(())) => ok(json!(true), started),
                (true, Err((code, msg))) => error(code, &msg, started),
            }
        }
        ("GET", ["collections", c, "snapshots", name]) => {
            download_snapshot(shared, req, c, name, &flags)
        }
        ("DELETE", ["collections", c, "snapshots", name]) => {
            let result = delete_snapshot(shared, c, name);
            match (req.wait(true), result) {
                (false, _) => accepted(started),
                (true, Ok(())) => ok(json!(true), started),
                (true, Err((code, msg))) => error(code, &msg, started),
            }
        }
        _ => error(
            404,
            &format!("Not found: no route for {} {}", req.method, req.raw_path),
            started,
        ),
    }
}

/// `GET /metrics` in the Prometheus text format the real server's `TextEncoder` writes: a few
/// of its families, with the snapshot gauges per collection name that ever had a snapshot
/// created or recovered since start (a family without samples is left out, as there).
fn metrics(shared: &Shared) -> String {
    let st = lock(&shared.state);
    let mut out = String::new();
    let mut family = |name: &str, help: &str, kind: &str, samples: Vec<(String, u64)>| {
        if samples.is_empty() {
            return;
        }
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in samples {
            out.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    let label = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    family(
        "app_info",
        "information about qdrant server",
        "gauge",
        vec![(
            format!(
                "{{name=\"qdrant\",version=\"{}\"}}",
                label(&shared.config.version)
            ),
            1,
        )],
    );
    family(
        "collections_total",
        "number of collections",
        "gauge",
        vec![(String::new(), st.collections.len() as u64)],
    );
    let per_id = |pick: fn(&state::SnapshotTelemetry) -> u64| -> Vec<(String, u64)> {
        st.snapshot_telemetry
            .iter()
            .map(|(id, t)| (format!("{{id=\"{}\"}}", label(id)), pick(t)))
            .collect()
    };
    family(
        "snapshot_creation_running",
        "amount of snapshot creations that are currently running",
        "gauge",
        per_id(|t| t.running_creations),
    );
    family(
        "snapshot_recovery_running",
        "amount of snapshot recovery operations currently running",
        "gauge",
        per_id(|t| t.running_recoveries),
    );
    family(
        "snapshot_created_total",
        "total amount of snapshots created",
        "counter",
        per_id(|t| t.total_creations),
    );
    out
}

pub(crate) fn valid_collection_name(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 255
        && !c
            .chars()
            .any(|ch| "<>:\"/\\|?*".contains(ch) || ch == '\0' || ch == '\u{1f}')
}

fn create_collection(shared: &Shared, c: &str, body: &mut BodyReader<'_>, t: Instant) -> Response {
    if !valid_collection_name(c) {
        return error(
            422,
            &format!(
                "Validation error in path parameters: [name: collection name {c:?} is invalid]"
            ),
            t,
        );
    }
    let bytes = match body.read_all(JSON_LIMIT) {
        Ok(b) => b,
        Err(e) => return error(400, &format!("Format error in JSON body: {e}"), t),
    };
    let config = match state::config_from_create(&bytes) {
        Ok(config) => config,
        Err(msg) => return error(400, &msg, t),
    };
    if let Some(delay) = shared.config.collection_create_delay {
        std::thread::sleep(delay);
    }
    let mut st = lock(&shared.state);
    if st.collections.contains_key(c) {
        return error(
            409,
            &format!("Wrong input: Collection `{c}` already exists!"),
            t,
        );
    }
    st.unindexed_writes.remove(c);
    st.indexing.remove(c);
    st.collections.insert(
        c.to_string(),
        Collection {
            config,
            schema: Default::default(),
            points: BTreeSet::new(),
            empty_fields: BTreeSet::new(),
            elsewhere: Default::default(),
            records: Default::default(),
        },
    );
    ok(json!(true), t)
}

/// `PATCH /collections/{c}`: the `optimizers_config` and `hnsw_config` of an UpdateCollection
/// body change the stored config as the real server's diff does (a null leaves a setting as
/// it is); its other parts are taken and not applied. The answer is `true`, and a collection
/// with points whose indexing threshold goes from 0 to another answers `yellow` to the next
/// info reads ([`crate::Config::indexing_reads`]), as a real server does while it builds the
/// index (docs/qdrant.md, "Changing a collection's settings").
fn update_collection(shared: &Shared, c: &str, body: &mut BodyReader<'_>, t: Instant) -> Response {
    let value = match read_json(body, false) {
        Ok(v) => v,
        Err(msg) => return error(400, &msg, t),
    };
    if let Err(msg) = state::validate_update(&value) {
        return error(400, &msg, t);
    }
    let mut st = lock(&shared.state);
    let name = crate::aliases::resolve(&st.aliases, c, st.collections.contains_key(c));
    let Some(col) = st.collections.get_mut(&name) else {
        return error(404, &not_found_collection(c), t);
    };
    let threshold = |col: &Collection| {
        col.config
            .pointer("/optimizer_config/indexing_threshold")
            .and_then(Value::as_u64)
    };
    let before = threshold(col);
    state::apply_update(&mut col.config, &value);
    let starts_indexing = before == Some(0) && threshold(col).is_some_and(|t| t > 0);
    if starts_indexing && !col.points.is_empty() {
        st.indexing.insert(name, shared.config.indexing_reads);
    }
    ok(json!(true), t)
}

pub(crate) fn update_result(st: &mut state::State, req: &Request) -> Value {
    let status = if req.wait(false) {
        "completed"
    } else {
        "acknowledged"
    };
    json!({"operation_id": st.operation_id(), "status": status})
}

#[derive(Deserialize)]
struct CreateFieldIndex {
    field_name: String,
    #[serde(default, alias = "field_type")]
    field_schema: Option<Value>,
}

pub(crate) fn create_index(
    shared: &Shared,
    req: &Request,
    c: &str,
    body: &mut BodyReader<'_>,
    t: Instant,
    never_applied: bool,
) -> Response {
    let value = match read_json(body, false) {
        Ok(v) => v,
        Err(msg) => return error(400, &msg, t),
    };
    let parsed: CreateFieldIndex = match serde_json::from_value(value) {
        Ok(p) => p,
        Err(e) => return error(400, &format!("Format error in JSON body: {e}"), t),
    };
    let mut st = lock(&shared.state);
    if !st.collections.contains_key(c) {
        return error(404, &not_found_collection(c), t);
    }
    let Some(schema) = parsed.field_schema.filter(|s| !s.is_null()) else {
        return error(
            400,
            "Bad request: Can't auto-detect field type, please specify `field_schema` in the request",
            t,
        );
    };
    if let Err(msg) = state::validate_field_schema(&schema) {
        return error(400, &msg, t);
    }
    let schema = match schema {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    };
    if never_applied {
        let result = update_result(&mut st, req);
        return ok(result, t);
    }
    match shared.config.index_create_delay {
        // Queued behind the collection's earlier builds, like the real operation queue.
        Some(delay) => {
            let now = Instant::now();
            let queued_until = st
                .pending_indexes
                .iter()
                .filter(|(col, ..)| col == c)
                .map(|(.., ready)| *ready)
                .max()
                .unwrap_or(now)
                .max(now);
            let ready = queued_until + delay;
            st.pending_indexes
                .push((c.to_string(), parsed.field_name, schema, ready));
            if req.wait(false) {
                drop(st);
                std::thread::sleep(ready.saturating_duration_since(Instant::now()));
                st = lock(&shared.state);
                st.apply_due_indexes();
            }
        }
        None => {
            if let Some(col) = st.collections.get_mut(c) {
                col.schema.insert(parsed.field_name, schema);
            }
        }
    }
    let result = update_result(&mut st, req);
    ok(result, t)
}

pub(crate) type Failure = (u16, String);

pub(crate) fn wrong(sha: &str) -> String {
    let first = if sha.starts_with('0') { "1" } else { "0" };
    format!("{first}{}", &sha[1.min(sha.len())..])
}

pub(crate) fn timestamp_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

pub(crate) fn format_ts(
    t: time::OffsetDateTime,
    date_sep: char,
    mid: char,
    time_sep: char,
) -> String {
    format!(
        "{:04}{date_sep}{:02}{date_sep}{:02}{mid}{:02}{time_sep}{:02}{time_sep}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub(crate) fn creation_time(meta: &fs::Metadata) -> Option<String> {
    let t = meta.created().or_else(|_| meta.modified()).ok()?;
    Some(format_ts(t.into(), '-', 'T', ':'))
}

fn http_date(t: SystemTime) -> String {
    let t: time::OffsetDateTime = t.into();
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        &t.weekday().to_string()[..3],
        t.day(),
        &t.month().to_string()[..3],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub(crate) fn checksum_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".checksum");
    PathBuf::from(name)
}

pub(crate) fn create_snapshot(
    shared: &Shared,
    c: &str,
    wrong_checksum: bool,
) -> Result<Value, Failure> {
    let (col, filler) = {
        let st = lock(&shared.state);
        let col = st
            .collections
            .get(c)
            .cloned()
            .ok_or_else(|| (404, not_found_collection(c)))?;
        (col, st.fillers.get(c).copied().unwrap_or(0))
    };
    lock(&shared.state)
        .snapshot_telemetry
        .entry(c.to_string())
        .or_default()
        .running_creations += 1;
    let result = build_snapshot(shared, c, &col, filler, wrong_checksum);
    let mut st = lock(&shared.state);
    if let Some(t) = st.snapshot_telemetry.get_mut(c) {
        t.running_creations = t.running_creations.saturating_sub(1);
        if result.is_ok() {
            t.total_creations += 1;
        }
    }
    result
}

fn build_snapshot(
    shared: &Shared,
    c: &str,
    col: &Collection,
    filler: u64,
    wrong_checksum: bool,
) -> Result<Value, Failure> {
    let io_err = |e: std::io::Error| (500, format!("Service internal error: {e}"));
    let started = Instant::now();
    let now = timestamp_now();
    let name = format!(
        "{c}-{}-{}.snapshot",
        shared.config.peer_id,
        format_ts(now, '-', '-', '-')
    );
    fs::create_dir_all(shared.tmp_dir()).map_err(io_err)?;
    let dir = shared.snapshot_dir(c);
    fs::create_dir_all(&dir).map_err(io_err)?;
    let tmp = shared
        .tmp_dir()
        .join(format!("{name}.{}.tmp", shared.unique()));
    let written = match &shared.cluster {
        // A peer's collection snapshot holds only its local shards.
        Some(link) => crate::cluster::write_peer_snapshot(link, &tmp, c, filler),
        None => snapshot::write_snapshot(&tmp, col, shared.config.peer_id, filler),
    };
    let sha = match written {
        Ok(sha) => sha,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(e));
        }
    };
    // The snapshot appears only once its simulated build time is over, as on a real server.
    let size = fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
    crate::pace::stretch(started, size, shared.config.snapshot_create_rate);
    let dest = dir.join(&name);
    // Same-second snapshots share a name: the later one replaces the earlier, as on the real server.
    fs::rename(&tmp, &dest).map_err(io_err)?;
    let reported = if wrong_checksum { wrong(&sha) } else { sha };
    fs::write(checksum_path(&dest), &reported).map_err(io_err)?;
    let meta = fs::metadata(&dest).map_err(io_err)?;
    Ok(json!({
        "name": name,
        "creation_time": creation_time(&meta),
        "size": meta.len(),
        "checksum": reported,
    }))
}

fn list_snapshots(shared: &Shared, c: &str, wrong_checksum: bool) -> Result<Vec<Value>, Failure> {
    if !lock(&shared.state).collections.contains_key(c) {
        return Err((404, not_found_collection(c)));
    }
    Ok(list_snapshot_dir(&shared.snapshot_dir(c), wrong_checksum))
}

/// The `SnapshotDescription`s of the `.snapshot` files in `dir`.
pub(crate) fn list_snapshot_dir(dir: &Path, wrong_checksum: bool) -> Vec<Value> {
    let mut out = Vec::new();
    for name in crate::list_snapshot_files(dir) {
        if !name.ends_with(".snapshot") {
            continue;
        }
        let path = dir.join(&name);
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        let mut desc = json!({
            "name": name,
            "creation_time": creation_time(&meta),
            "size": meta.len(),
        });
        if let Ok(sum) = fs::read_to_string(checksum_path(&path)) {
            let sum = sum.trim();
            desc["checksum"] = json!(if wrong_checksum {
                wrong(sum)
            } else {
                sum.to_string()
            });
        }
        out.push(desc);
    }
    out
}

pub(crate) fn safe_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\'])
}

fn etag(meta: &fs::Metadata) -> String {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0u64;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default();
    format!(
        "\"{inode:x}:{:x}:{:x}:{:x}\"",
        meta.len(),
        mtime.as_secs(),
        mtime.subsec_nanos()
    )
}

/// `Range: bytes=…` → `Some(Ok((start, end_inclusive)))`, `Some(Err(()))` when unsatisfiable,
/// `None` when absent or not understood (then the whole file is sent).
fn parse_range(header: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    let first = spec.split(',').next()?.trim();
    let (a, b) = first.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        return Some(Ok((len.saturating_sub(n), len - 1)));
    }
    let start: u64 = a.parse().ok()?;
    let end: u64 = if b.is_empty() {
        u64::MAX
    } else {
        b.parse().ok()?
    };
    if end < start {
        return None;
    }
    if start >= len {
        return Some(Err(()));
    }
    Some(Ok((start, end.min(len - 1))))
}

fn download_snapshot(
    shared: &Shared,
    req: &Request,
    c: &str,
    name: &str,
    flags: &Flags,
) -> Response {
    if !lock(&shared.state).collections.contains_key(c) {
        return Response::plain(404, &not_found_collection(c));
    }
    serve_snapshot_file(req, &shared.snapshot_dir(c), name, flags)
}

/// A snapshot file download from `dir` (Range, If-Match, ETag as the real server).
pub(crate) fn serve_snapshot_file(
    req: &Request,
    dir: &Path,
    name: &str,
    flags: &Flags,
) -> Response {
    let path = dir.join(name);
    let meta = match fs::metadata(&path) {
        Ok(m) if safe_name(name) && m.is_file() => m,
        _ => return Response::plain(404, &format!("Not found: Snapshot {name} not found")),
    };
    let len = meta.len();
    let mut tag = etag(&meta);
    if flags.changed_etag {
        tag = format!("\"changed-{}\"", tag.trim_matches('"'));
    }
    if let Some(if_match) = req.header("if-match").filter(|_| !flags.ignore_range) {
        let matches = if_match.trim() == "*" || if_match.split(',').any(|t| t.trim() == tag);
        if !matches {
            return Response::new(412, None, Vec::new());
        }
    }
    let mut resp = Response {
        status: 200,
        headers: Vec::new(),
        body: ResponseBody::File {
            path,
            start: 0,
            len,
        },
    };
    let range = req.header("range").filter(|_| !flags.ignore_range);
    match range.and_then(|r| parse_range(r, len)) {
        Some(Err(())) => {
            return Response::new(416, None, Vec::new())
                .header("content-range", format!("bytes */{len}"));
        }
        Some(Ok((start, end))) => {
            let start = flags
                .shifted_range
                .map_or(start, |back| start.saturating_sub(back));
            resp.status = 206;
            resp.body = ResponseBody::File {
                path: dir.join(name),
                start,
                len: end - start + 1,
            };
            resp = resp
                .header("content-encoding", "identity")
                .header("content-range", format!("bytes {start}-{end}/{len}"));
        }
        None => {}
    }
    let mut resp = resp
        .header("accept-ranges", "bytes")
        .header("etag", tag)
        .header("content-type", "application/octet-stream")
        .header(
            "content-disposition",
            format!("attachment; filename=\"{name}\""),
        );
    if let Ok(modified) = meta.modified() {
        resp = resp.header("last-modified", http_date(modified));
    }
    resp
}

fn delete_snapshot(shared: &Shared, c: &str, name: &str) -> Result<(), Failure> {
    if !lock(&shared.state).collections.contains_key(c) {
        return Err((404, not_found_collection(c)));
    }
    delete_snapshot_file(&shared.snapshot_dir(c), name)
}

/// Deletes a snapshot file (and its checksum sidecar) from `dir`.
pub(crate) fn delete_snapshot_file(dir: &Path, name: &str) -> Result<(), Failure> {
    let path = dir.join(name);
    if !safe_name(name) || !path.is_file() {
        return Err((404, format!("Not found: Snapshot {name} not found")));
    }
    fs::remove_file(&path).map_err(|e| (500, format!("Service internal error: {e}")))?;
    let _ = fs::remove_file(checksum_path(&path));
    Ok(())
}

fn upload_snapshot<'s>(
    shared: &'s Shared,
    req: &Request,
    c: &str,
    body: &mut BodyReader<'_>,
    flags: Flags,
    t: Instant,
    later: &mut Option<Deferred<'s>>,
) -> Response {
    let checksum = req.query("checksum").map(str::to_string);
    if let Some(sum) = &checksum
        && (sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return error(
            422,
            "Validation error in query parameters: [checksum: invalid SHA256 hash]",
            t,
        );
    }
    let priority = req.query("priority").unwrap_or("snapshot").to_string();
    if !["no_sync", "snapshot", "replica"].contains(&priority.as_str()) {
        return error(
            400,
            &format!(
                "Format error in query parameters: unknown variant `{priority}`, expected one of `no_sync`, `snapshot`, `replica`"
            ),
            t,
        );
    }
    if !valid_collection_name(c) {
        return error(
            422,
            &format!(
                "Validation error in path parameters: [collection_name: collection name {c:?} is invalid]"
            ),
            t,
        );
    }
    let Some(boundary) = req.header("content-type").and_then(multipart::boundary) else {
        return Response::plain(400, "Could not find boundary in Content-Type header");
    };

    // Spool the field to a temp file, hashing on the way.
    let spool = fs::create_dir_all(shared.upload_dir())
        .and_then(|()| tempfile::NamedTempFile::new_in(shared.upload_dir()));
    let spool = match spool {
        Ok(f) => f,
        Err(e) => return error(500, &format!("Service internal error: {e}"), t),
    };
    let mut writer = HashingWriter::new(BufWriter::with_capacity(256 * 1024, spool.as_file()));
    let field = multipart::extract_field(&mut *body, &boundary, "snapshot", &mut writer);
    let (buffered, sha) = writer.finish();
    let flushed = buffered.into_inner().map_err(|e| e.into_error());
    let field = match (field, flushed) {
        (Ok(field), Ok(_)) => field,
        (Err(MultipartError::MissingField), _) => {
            return Response::plain(400, "Required field is missing: snapshot");
        }
        (Err(MultipartError::Malformed(msg)), _) => return Response::plain(400, &msg),
        (Err(MultipartError::Io(e)), _) | (_, Err(e)) => {
            return Response::plain(400, &format!("Multipart stream is incomplete: {e}"));
        }
    };
    if let Some(sum) = &checksum
        && !sum.trim().eq_ignore_ascii_case(&sha)
    {
        return error(
            400,
            &format!("Checksum mismatch: expected {sha}, actual {sum}"),
            t,
        );
    }
    let filename = field
        .filename
        .as_deref()
        .and_then(|f| f.rsplit(['/', '\\']).next())
        .filter(|f| safe_name(f))
        .map(str::to_string)
        .unwrap_or_else(|| {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            format!("{nanos:032x}{:04x}", shared.unique())
        });
    let dir = shared.snapshot_dir(c);
    let dest = dir.join(&filename);
    let moved = fs::create_dir_all(&dir)
        .map_err(|e| e.to_string())
        .and_then(|()| spool.persist(&dest).map(|_| ()).map_err(|e| e.to_string()));
    if let Err(e) = moved {
        return error(500, &format!("Service internal error: {e}"), t);
    }
    if let Some((takes, answer)) = flags.slow_recovery {
        let job = Deferred {
            guard: RecoveryGuard::new(shared, c),
            path: dest,
            takes,
            fail_after_clear: flags.upload_fail_after_clear,
            priority: priority.clone(),
            shard: None,
        };
        let result = match answer {
            LateAnswer::Wait => job.run(),
            LateAnswer::Drop => {
                *later = Some(job);
                return Response::dropped();
            }
            LateAnswer::Gateway { code, body } => {
                *later = Some(job);
                return Response::plain(code, &body);
            }
        };
        return match (req.wait(true), result) {
            (false, _) => accepted(t),
            (true, Ok(())) => ok(json!(true), t),
            (true, Err((code, msg))) => error(code, &msg, t),
        };
    }
    let result = recover_from_file(shared, c, &dest, flags.upload_fail_after_clear, &priority);
    match (req.wait(true), result) {
        (false, _) => accepted(t),
        (true, Ok(())) => ok(json!(true), t),
        (true, Err((code, msg))) => error(code, &msg, t),
    }
}

fn recover_snapshot(shared: &Shared, c: &str, body: &Value, flags: &Flags) -> Result<(), Failure> {
    let location = body["location"].as_str().ok_or_else(|| {
        (
            400,
            "Format error in JSON body: missing field `location`".to_string(),
        )
    })?;
    let Some(path) = location.strip_prefix("file://") else {
        let scheme = location.split("://").next().unwrap_or(location);
        if scheme == "http" || scheme == "https" {
            return Err((
                400,
                format!(
                    "Bad request: qdrant-double cannot download {location}; upload the file instead"
                ),
            ));
        }
        return Err((
            400,
            format!("Bad request: URL {location} with scheme {scheme} is not supported"),
        ));
    };
    let path = PathBuf::from(crate::http::percent_decode(path));
    let root = shared.snapshots_root();
    let _ = fs::create_dir_all(&root);
    let root = root.canonicalize().unwrap_or(root);
    let inside = path.canonicalize().map(|p| p.starts_with(&root));
    match inside {
        Ok(true) => {}
        Ok(false) => {
            return Err((
                403,
                format!(
                    "Forbidden: Snapshot file path must be inside the snapshots directory {:?}",
                    root.display().to_string()
                ),
            ));
        }
        Err(_) => {
            return Err((
                400,
                format!(
                    "Bad request: Snapshot file {:?} does not exist",
                    path.display().to_string()
                ),
            ));
        }
    }
    if let Some(expected) = body["checksum"].as_str() {
        let actual = snapshot::sha256_file(&path)
            .map_err(|e| (500, format!("Service internal error: {e}")))?;
        if !expected.trim().eq_ignore_ascii_case(&actual) {
            return Err((
                400,
                format!(
                    "Wrong input: Snapshot checksum mismatch: expected {expected}, got {actual}"
                ),
            ));
        }
    }
    let priority = body["priority"].as_str().unwrap_or("snapshot");
    recover_from_file(shared, c, &path, flags.upload_fail_after_clear, priority)
}

/// The recovery shared by upload and recover, counted in `/metrics` while it runs.
pub(crate) fn recover_from_file(
    shared: &Shared,
    c: &str,
    path: &Path,
    fail_after_clear: bool,
    priority: &str,
) -> Result<(), Failure> {
    let _running = RecoveryGuard::new(shared, c);
    recover_unmeasured(shared, c, path, fail_after_clear, priority)
}

fn recover_unmeasured(
    shared: &Shared,
    c: &str,
    path: &Path,
    fail_after_clear: bool,
    priority: &str,
) -> Result<(), Failure> {
    if let Some(link) = &shared.cluster {
        return crate::cluster_routes::recover_collection(
            shared,
            link,
            c,
            path,
            fail_after_clear,
            priority,
        );
    }
    let started = Instant::now();
    let parsed = snapshot::read_snapshot(path).map_err(|msg| (500, msg))?;
    // The collection changes only once the simulated recovery time is over.
    let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    crate::pace::stretch(started, size, shared.config.snapshot_recover_rate);
    if !parsed.config["params"].is_object() {
        return Err((500, snapshot::MALFORMED.to_string()));
    }
    let mut st = lock(&shared.state);
    match st.collections.get_mut(c) {
        Some(existing) => {
            let ours = &existing.config["params"];
            let theirs = &parsed.config["params"];
            if ours["vectors"] != theirs["vectors"] {
                return Err((
                    400,
                    format!(
                        "Wrong input: Snapshot is not compatible with existing collection: Collection vectors: {} Snapshot Vectors: {}",
                        state::debug_vectors(&ours["vectors"]),
                        state::debug_vectors(&theirs["vectors"])
                    ),
                ));
            }
            if ours["shard_number"] != theirs["shard_number"] {
                return Err((
                    400,
                    format!(
                        "Wrong input: Snapshot is not compatible with existing collection: Collection shard number: {} Snapshot shard number: {}",
                        ours["shard_number"], theirs["shard_number"]
                    ),
                ));
            }
            existing.points.clear();
            existing.records.clear();
            if fail_after_clear {
                return Err((
                    500,
                    "Service internal error: failed to restore shard 0 of the collection from the snapshot (injected by qdrant-double); the shard was cleared and is now Dead".to_string(),
                ));
            }
            existing.points = parsed.points;
            existing.records = parsed.records;
            existing.elsewhere.clear();
            existing.empty_fields = parsed.empty_fields;
        }
        None => {
            st.collections.insert(
                c.to_string(),
                Collection {
                    config: state::config_from_snapshot(&parsed.config),
                    schema: parsed.schema,
                    points: parsed.points,
                    empty_fields: parsed.empty_fields,
                    elsewhere: Default::default(),
                    records: parsed.records,
                },
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=100-199", 1000), Some(Ok((100, 199))));
        assert_eq!(parse_range("bytes=100-", 1000), Some(Ok((100, 999))));
        assert_eq!(parse_range("bytes=-10", 1000), Some(Ok((990, 999))));
        assert_eq!(parse_range("bytes=900-5000", 1000), Some(Ok((900, 999))));
        assert_eq!(parse_range("bytes=1000-", 1000), Some(Err(())));
        assert_eq!(parse_range("bytes=5-1", 1000), None);
        assert_eq!(parse_range("items=1-2", 1000), None);
    }

    #[test]
    fn wrong_checksums_stay_hex() {
        let sha = "0".repeat(64);
        let w = wrong(&sha);
        assert_ne!(w, sha);
        assert_eq!(w.len(), 64);
    }
}
