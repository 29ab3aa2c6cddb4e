//! The double's collections: configs (with Qdrant's defaults applied), payload indexes and
//! point ids, and how they render as a `CollectionInfo`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU64;

use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    /// `CollectionConfig` exactly as `GET /collections/{c}` shows it under `result.config`.
    pub config: Value,
    /// Payload indexes: field → `PayloadFieldSchema` (a type name string, or a params object
    /// with a `type` tag), as stored in a snapshot's `payload_index.json`.
    pub schema: BTreeMap<String, Value>,
    pub points: BTreeSet<u64>,
    /// Indexed fields that no point has a value for (their `points` count shows 0).
    pub empty_fields: BTreeSet<String>,
    /// Single-node mode: the shard of each point that came in through a shard snapshot upload
    /// into a shard other than 0; every other point is in shard 0.
    pub elsewhere: BTreeMap<u64, u32>,
    /// Points written by an upsert: the point as stored (id, vector, payload), by the number
    /// its id is kept under ([`crate::points`]). Snapshots carry them; a point without one
    /// (seeded) has made-up vectors and payload.
    pub records: BTreeMap<u64, Value>,
}

#[derive(Debug, Default)]
pub struct State {
    pub collections: BTreeMap<String, Collection>,
    /// Snapshot filler bytes per collection name.
    pub fillers: HashMap<String, u64>,
    /// `GET /collections/{c}/cluster` answers that replace the single-node view (a peer of a cluster).
    pub cluster_views: HashMap<String, Value>,
    pub next_operation_id: u64,
    /// Per collection name, from its first snapshot creation, stream or recovery on: what `/metrics`
    /// reports as `snapshot_*{id="c"}` (the real server's `SnapshotTelemetryCollector`, which
    /// also outlives a deleted collection).
    pub snapshot_telemetry: BTreeMap<String, SnapshotTelemetry>,
    /// Alias name → collection name.
    pub aliases: BTreeMap<String, String>,
    /// Payload indexes requested with `wait=false` and still being built (`index_create_delay`):
    /// (collection, field, schema, ready at).
    pub pending_indexes: Vec<(String, String, Value, std::time::Instant)>,
    /// Per collection name: points upserted while its `indexing_threshold` was 0 (vector
    /// indexing off), for tests ([`crate::Double::unindexed_writes`]).
    pub unindexed_writes: HashMap<String, u64>,
    /// Per collection name: how many more info reads answer `yellow`, as a real server does
    /// while it builds the vector index a `PATCH` of its indexing threshold asked for.
    pub indexing: HashMap<String, u32>,
}

/// The snapshot counters the real server keeps per collection name.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotTelemetry {
    pub running_creations: u64,
    pub running_recoveries: u64,
    pub total_creations: u64,
}

impl State {
    /// Adds the pending payload indexes whose build time has passed to their collections.
    pub fn apply_due_indexes(&mut self) {
        let now = std::time::Instant::now();
        let (due, pending): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_indexes)
            .into_iter()
            .partition(|(_, _, _, ready)| *ready <= now);
        self.pending_indexes = pending;
        for (collection, field, schema, _) in due {
            if let Some(col) = self.collections.get_mut(&collection) {
                col.schema.insert(field, schema);
            }
        }
    }

    pub fn operation_id(&mut self) -> u64 {
        let id = self.next_operation_id;
        self.next_operation_id += 1;
        id
    }
}

/// Whether the server is older than 1.17 (`Config::version`), whose answers differ a little:
/// no `update_queue` in a collection's info, no `prevent_unoptimized` optimizer setting, and
/// a vector dimension error that does not name the vector.
pub fn before_1_17(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) < (1, 17)
}

/// A `CollectionInfo` as a server of `version` shows it.
pub fn info_for_version(mut info: Value, version: &str) -> Value {
    if before_1_17(version)
        && let Value::Object(m) = &mut info
    {
        m.remove("update_queue");
        if let Some(Value::Object(opt)) = m
            .get_mut("config")
            .and_then(|c| c.get_mut("optimizer_config"))
        {
            opt.remove("prevent_unoptimized");
        }
    }
    info
}

pub fn default_hnsw() -> Value {
    json!({"m": 16, "ef_construct": 100, "full_scan_threshold": 10000, "max_indexing_threads": 0, "on_disk": false})
}

pub fn default_optimizer() -> Value {
    json!({
        "deleted_threshold": 0.2, "vacuum_min_vector_number": 1000, "default_segment_number": 0,
        "max_segment_size": null, "memmap_threshold": null, "indexing_threshold": 10000,
        "flush_interval_sec": 5, "max_optimization_threads": null, "prevent_unoptimized": null
    })
}

pub fn default_wal() -> Value {
    json!({"wal_capacity_mb": 32, "wal_segments_ahead": 0, "wal_retain_closed": 1})
}

// Typed mirror of the parts of Qdrant's `CreateCollection` that are validated, so that serde
// produces the very same error messages (and positions) as the real server.

#[derive(Deserialize)]
#[allow(dead_code)] // fields exist for validation only
struct CreateCollection {
    #[serde(default)]
    vectors: Option<VectorsConfig>,
    #[serde(default)]
    shard_number: Option<u32>,
    #[serde(default)]
    sharding_method: Option<ShardingMethod>,
    #[serde(default)]
    replication_factor: Option<u32>,
    #[serde(default)]
    write_consistency_factor: Option<u32>,
    #[serde(default)]
    on_disk_payload: Option<bool>,
    #[serde(default)]
    hnsw_config: Option<Map<String, Value>>,
    #[serde(default)]
    wal_config: Option<Map<String, Value>>,
    #[serde(default, alias = "optimizer_config")]
    optimizers_config: Option<Map<String, Value>>,
    #[serde(default, alias = "quantization")]
    quantization_config: Option<Value>,
    #[serde(default)]
    sparse_vectors: Option<Map<String, Value>>,
    #[serde(default)]
    strict_mode_config: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
enum VectorsConfig {
    Single(VectorParams),
    Multi(BTreeMap<String, VectorParams>),
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct VectorParams {
    size: NonZeroU64,
    distance: Distance,
    #[serde(default)]
    datatype: Option<Datatype>,
}

#[derive(Deserialize)]
enum Distance {
    Cosine,
    Euclid,
    Dot,
    Manhattan,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Datatype {
    Float32,
    Uint8,
    Float16,
    Turbo4,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ShardingMethod {
    Auto,
    Custom,
}

/// Drops `null` members of an object (recursively into nested objects).
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `base` with the non-null members of `diff` applied.
fn merge(base: Value, diff: Option<&Value>) -> Value {
    let mut base = base;
    if let (Value::Object(b), Some(Value::Object(d))) = (&mut base, diff) {
        for (k, v) in d {
            if !v.is_null() {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    base
}

/// The parts of a `PATCH /collections/{c}` body the double applies, checked as the real
/// server's parser does: each an object, the indexing threshold an unsigned integer.
pub fn validate_update(body: &Value) -> Result<(), String> {
    let Value::Object(body) = body else {
        return Err("Format error in JSON body: expected an object".into());
    };
    for key in ["optimizers_config", "hnsw_config"] {
        match body.get(key) {
            None | Some(Value::Null) | Some(Value::Object(_)) => {}
            Some(other) => {
                return Err(format!(
                    "Format error in JSON body: {key}: invalid type: {other}, expected struct"
                ));
            }
        }
    }
    match body
        .get("optimizers_config")
        .and_then(|o| o.get("indexing_threshold"))
    {
        None | Some(Value::Null) => Ok(()),
        Some(t) if t.is_u64() => Ok(()),
        Some(t) => Err(format!(
            "Format error in JSON body: optimizers_config.indexing_threshold: invalid value: {t}, expected usize"
        )),
    }
}

/// Applies a checked `PATCH /collections/{c}` body to a stored config: each setting it gives
/// (not null) replaces the stored one.
pub fn apply_update(config: &mut Value, body: &Value) {
    for (given, stored) in [
        ("optimizers_config", "optimizer_config"),
        ("hnsw_config", "hnsw_config"),
    ] {
        let merged = merge(config[stored].clone(), body.get(given));
        config[stored] = merged;
    }
}

/// Turns a `PUT /collections/{c}` body into the stored `CollectionConfig`, or the error message
/// of a 400 (`Format error in JSON body: …`).
pub fn config_from_create(body: &[u8]) -> Result<Value, String> {
    let format_err = |e: serde_json::Error| format!("Format error in JSON body: {e}");
    serde_json::from_slice::<CreateCollection>(body).map_err(format_err)?;
    let raw: Value = serde_json::from_slice(body).map_err(format_err)?;
    let get = |k: &str| raw.get(k).filter(|v| !v.is_null());

    let vectors = match get("vectors") {
        Some(Value::Object(m)) if m.contains_key("size") => strip_nulls(&Value::Object(m.clone())),
        Some(Value::Object(m)) => Value::Object(
            m.iter()
                .map(|(name, params)| (name.clone(), strip_nulls(params)))
                .collect(),
        ),
        _ => json!({}),
    };
    let mut params = Map::new();
    params.insert("vectors".into(), vectors);
    params.insert(
        "shard_number".into(),
        get("shard_number").cloned().unwrap_or(json!(1)),
    );
    if let Some(m) = get("sharding_method") {
        params.insert("sharding_method".into(), m.clone());
    }
    for (key, default) in [
        ("replication_factor", json!(1)),
        ("write_consistency_factor", json!(1)),
        ("on_disk_payload", json!(true)),
    ] {
        params.insert(key.into(), get(key).cloned().unwrap_or(default));
    }
    if let Some(sparse) = get("sparse_vectors") {
        params.insert("sparse_vectors".into(), strip_nulls(sparse));
    }

    let mut config = Map::new();
    config.insert("params".into(), Value::Object(params));
    config.insert(
        "hnsw_config".into(),
        merge(default_hnsw(), get("hnsw_config")),
    );
    let optimizers = get("optimizers_config").or_else(|| get("optimizer_config"));
    config.insert(
        "optimizer_config".into(),
        merge(default_optimizer(), optimizers),
    );
    config.insert("wal_config".into(), merge(default_wal(), get("wal_config")));
    config.insert(
        "quantization_config".into(),
        get("quantization_config")
            .or_else(|| get("quantization"))
            .map(strip_nulls)
            .unwrap_or(Value::Null),
    );
    for key in ["strict_mode_config", "metadata"] {
        if let Some(v) = get(key) {
            config.insert(key.into(), v.clone());
        }
    }
    Ok(Value::Object(config))
}

/// A snapshot's `config.json` (`CollectionConfigInternal`) → the stored `CollectionConfig`:
/// drops `uuid` and the `read_fan_out_*` params, like the real create-from-snapshot path.
pub fn config_from_snapshot(internal: &Value) -> Value {
    let mut config = internal.clone();
    if let Value::Object(m) = &mut config {
        m.remove("uuid");
        for key in ["strict_mode_config", "metadata"] {
            if m.get(key).is_some_and(Value::is_null) {
                m.remove(key);
            }
        }
        if let Some(Value::Object(p)) = m.get_mut("params") {
            p.remove("read_fan_out_factor");
            p.remove("read_fan_out_delay_ms");
        }
    }
    config
}

/// The stored `CollectionConfig` → a snapshot's `config.json` (adds `"uuid": null`).
pub fn config_for_snapshot(config: &Value) -> Value {
    let mut internal = config.clone();
    if let Value::Object(m) = &mut internal {
        m.insert("uuid".into(), Value::Null);
    }
    internal
}

/// `payload_schema` entry of a `CollectionInfo` → stored `PayloadFieldSchema`.
pub fn schema_from_info(entry: &Value) -> Value {
    match entry.get("params") {
        Some(params @ Value::Object(_)) => strip_nulls(params),
        _ => entry.get("data_type").cloned().unwrap_or(Value::Null),
    }
}

/// Stored `PayloadFieldSchema` → `payload_schema` entry of a `CollectionInfo`.
pub fn schema_to_info(schema: &Value, points: u64) -> Value {
    match schema {
        Value::Object(params) => {
            let data_type = params.get("type").cloned().unwrap_or(Value::Null);
            let mut params = params.clone();
            if data_type == "integer" {
                for key in ["lookup", "range", "is_principal"] {
                    params.entry(key).or_insert(Value::Null);
                }
            }
            json!({"data_type": data_type, "params": params, "points": points})
        }
        other => json!({"data_type": other, "points": points}),
    }
}

/// Validates a `field_schema` of `PUT /collections/{c}/index`.
pub fn validate_field_schema(schema: &Value) -> Result<(), String> {
    const TYPES: [&str; 8] = [
        "keyword", "integer", "float", "geo", "text", "bool", "datetime", "uuid",
    ];
    let ty = match schema {
        Value::String(s) => s.as_str(),
        Value::Object(m) => m.get("type").and_then(Value::as_str).unwrap_or(""),
        _ => "",
    };
    if TYPES.contains(&ty) {
        Ok(())
    } else {
        Err(
            "Format error in JSON body: data did not match any variant of untagged enum PayloadFieldSchema"
                .to_string(),
        )
    }
}

impl Collection {
    pub fn from_info(info: &Value, points: BTreeSet<u64>) -> Collection {
        let schema = info
            .get("payload_schema")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), schema_from_info(v)))
                    .collect()
            })
            .unwrap_or_default();
        // A field counted 0 in a collection that has points: no point carries it.
        let has_points = info["points_count"].as_u64() != Some(0);
        let empty_fields = info
            .get("payload_schema")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| has_points && v["points"].as_u64() == Some(0))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        Collection {
            config: info.get("config").cloned().unwrap_or(Value::Null),
            schema,
            points,
            empty_fields,
            elsewhere: BTreeMap::new(),
            records: BTreeMap::new(),
        }
    }

    pub fn shard_number(&self) -> u64 {
        self.config["params"]["shard_number"].as_u64().unwrap_or(1)
    }

    pub fn custom_sharding(&self) -> bool {
        self.config["params"]["sharding_method"] == "custom"
    }

    fn has_dense_vectors(&self) -> bool {
        self.config["params"]["vectors"]
            .as_object()
            .is_some_and(|m| !m.is_empty())
    }

    /// `result` of `GET /collections/{c}`.
    pub fn info(&self) -> Value {
        let points = self.points.len() as u64;
        let segments = if self.custom_sharding() {
            0
        } else {
            2 * self.shard_number()
        };
        let payload_schema: Map<String, Value> = self
            .schema
            .iter()
            .map(|(k, v)| {
                let n = if self.empty_fields.contains(k) {
                    0
                } else {
                    points
                };
                (k.clone(), schema_to_info(v, n))
            })
            .collect();
        json!({
            "status": "green",
            "optimizer_status": "ok",
            "indexed_vectors_count": if self.has_dense_vectors() { points } else { 0 },
            "points_count": points,
            "segments_count": segments,
            "config": self.config,
            "payload_schema": payload_schema,
            "update_queue": {"length": 0},
        })
    }

    /// Single-node mode: the points of shard `id` ([`Collection::elsewhere`]).
    pub fn shard_points(&self, id: u32) -> BTreeSet<u64> {
        self.points
            .iter()
            .copied()
            .filter(|p| self.elsewhere.get(p).copied().unwrap_or(0) == id)
            .collect()
    }

    /// Single-node mode: shard `id` recovered from a snapshot holding `points`: its old
    /// points go, these come in as its own (as a real shard recovery replaces the shard).
    pub fn replace_shard(&mut self, id: u32, points: BTreeSet<u64>, records: BTreeMap<u64, Value>) {
        for old in self.shard_points(id) {
            self.points.remove(&old);
            self.elsewhere.remove(&old);
            self.records.remove(&old);
        }
        for point in points {
            // A point id another shard holds too would be two points in Qdrant; here one.
            self.points.insert(point);
            if let Some(record) = records.get(&point) {
                self.records.insert(point, record.clone());
            }
            match id {
                0 => self.elsewhere.remove(&point),
                _ => self.elsewhere.insert(point, id),
            };
        }
    }

    /// `result` of `GET /collections/{c}/cluster` on a single node.
    pub fn cluster_info(&self, peer_id: u64) -> Value {
        let shards = if self.custom_sharding() {
            0
        } else {
            self.shard_number()
        };
        let local: Vec<Value> = (0..shards)
            .map(|id| {
                let count = self.shard_points(id as u32).len();
                json!({"shard_id": id, "points_count": count, "state": "Active"})
            })
            .collect();
        json!({
            "peer_id": peer_id,
            "shard_count": shards,
            "local_shards": local,
            "remote_shards": [],
            "shard_transfers": [],
        })
    }
}

/// Rust `Debug`-like rendering of `params.vectors`, for the incompatible-snapshot message.
pub fn debug_vectors(vectors: &Value) -> String {
    fn opt(v: Option<&Value>, f: impl Fn(&Value) -> String) -> String {
        match v {
            Some(v) if !v.is_null() => format!("Some({})", f(v)),
            _ => "None".to_string(),
        }
    }
    fn capitalize(s: &str) -> String {
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect())
            .unwrap_or_default()
    }
    fn params(p: &Value) -> String {
        format!(
            "VectorParams {{ size: {}, distance: {}, hnsw_config: {}, quantization_config: {}, on_disk: {}, datatype: {}, multivector_config: {} }}",
            p["size"],
            p["distance"].as_str().unwrap_or(""),
            opt(p.get("hnsw_config"), Value::to_string),
            opt(p.get("quantization_config"), Value::to_string),
            opt(p.get("on_disk"), Value::to_string),
            opt(p.get("datatype"), |v| capitalize(v.as_str().unwrap_or(""))),
            opt(p.get("multivector_config"), Value::to_string),
        )
    }
    match vectors.as_object() {
        Some(m) if m.contains_key("size") => format!("Single({})", params(vectors)),
        Some(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k:?}: {}", params(v)))
                .collect();
            format!("Multi({{{}}})", inner.join(", "))
        }
        None => "Multi({})".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures_dir;

    fn fixture(path: &str) -> Value {
        let text = std::fs::read_to_string(fixtures_dir().join(path)).expect("fixture");
        serde_json::from_str(&text).expect("fixture json")
    }

    #[test]
    fn create_bodies_give_the_configs_the_real_server_shows() {
        for name in [
            "named-pq-f16",
            "sparse-only",
            "uint8-manhattan",
            "custom-sharding",
        ] {
            let create = fixture(&format!("collections/create-{name}.json"));
            let info = fixture(&format!("collections/info-{name}.json"));
            let body = serde_json::to_vec(&create["request"]["body"]).expect("body");
            let config = config_from_create(&body).expect("valid body");
            let expected = &info["response"]["body"]["result"]["config"];
            assert_eq!(&config, expected, "{name}");
        }
        // The colbert variant's per-vector HNSW diff and multivector config survive too.
        let info = fixture("collections/info-colbert-variant.json");
        let expected = &info["response"]["body"]["result"]["config"];
        let body = json!({
            "vectors": expected["params"]["vectors"],
            "sparse_vectors": expected["params"]["sparse_vectors"],
            "hnsw_config": {"on_disk": expected["hnsw_config"]["on_disk"]},
            "quantization_config": expected["quantization_config"],
        });
        let config = config_from_create(&serde_json::to_vec(&body).expect("body")).expect("ok");
        assert_eq!(&config, expected);
    }

    #[test]
    fn invalid_vectors_give_the_real_format_errors() {
        for name in ["create-400-unknown-distance", "create-422-invalid"] {
            let f = fixture(&format!("collections/{name}.json"));
            let body = serde_json::to_vec(&f["request"]["body"]).expect("body");
            let err = config_from_create(&body).expect_err("invalid");
            assert_eq!(err, f["response"]["body"]["status"]["error"], "{name}");
        }
    }

    #[test]
    fn payload_schema_round_trips_and_integer_params_are_completed() {
        let info = fixture("collections/info-sparse-only-with-indexes.json");
        let result = &info["response"]["body"]["result"];
        let col = Collection::from_info(result, BTreeSet::new());
        assert_eq!(col.schema["tag"], json!("keyword"));
        assert_eq!(
            col.schema["n"],
            json!({"type": "integer", "lookup": true, "range": false})
        );
        assert_eq!(col.info()["payload_schema"], result["payload_schema"]);
        assert_eq!(col.info()["config"], result["config"]);
    }

    #[test]
    fn incompatible_message_matches_the_real_one() {
        let f = fixture("snapshots/upload-incompatible.json");
        let expected = f["response"]["body"]["status"]["error"]
            .as_str()
            .expect("message");
        let msg = format!(
            "Wrong input: Snapshot is not compatible with existing collection: Collection vectors: {} Snapshot Vectors: {}",
            debug_vectors(&json!({"size": 16, "distance": "Manhattan", "datatype": "uint8"})),
            debug_vectors(&json!({"size": 768, "distance": "Cosine"})),
        );
        assert_eq!(msg, expected);
    }
}
