//! Points with their vectors and payloads: scroll, count, retrieve, delete and upsert, with
//! the shapes of `points/*.json` (both versions).
//!
//! The double keeps a collection's points as a set of ids; a point written by an upsert with
//! vectors also keeps its record (`Collection::records`: id, vector, payload, as the real
//! server stores them: dense values as 32-bit floats, cosine vectors normalized, sparse
//! indices sorted). A seeded point has none: reads make one up from the collection's vector
//! config, the same for the same id every time. UUID ids are kept under a number made from
//! the UUID.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::filter::{Filter, payload_or_empty};
use crate::state::Collection;

/// The number a point id is kept under: itself, or (a UUID) one made from its hex digits,
/// with the top bit set so it stays clear of the small integers tests use.
pub fn key_of(id: &Value) -> Result<u64, String> {
    if let Some(n) = id.as_u64() {
        return Ok(n);
    }
    let text = id
        .as_str()
        .filter(|s| s.len() == 36)
        .ok_or_else(|| format!("Bad request: Unable to parse point id {id}"))?;
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let high = u64::from_str_radix(&hex[..16], 16).map_err(|e| format!("Bad request: {e}"))?;
    let low = u64::from_str_radix(&hex[16..], 16).map_err(|e| format!("Bad request: {e}"))?;
    Ok((high ^ low) | (1 << 63))
}

/// What a read sees: a collection's config, the ids it reads (all, or some shards'), the
/// records, and (custom sharding in a cluster) each point's shard key.
pub struct View<'a> {
    pub config: &'a Value,
    pub ids: BTreeSet<u64>,
    pub records: &'a BTreeMap<u64, Value>,
    pub shard_keys: BTreeMap<u64, Value>,
}

impl<'a> View<'a> {
    /// A single node's collection, every point.
    pub fn of(col: &'a Collection) -> View<'a> {
        View {
            config: &col.config,
            ids: col.points.clone(),
            records: &col.records,
            shard_keys: BTreeMap::new(),
        }
    }

    fn id(&self, key: u64) -> Value {
        self.records
            .get(&key)
            .map(|r| r["id"].clone())
            .unwrap_or_else(|| json!(key))
    }

    fn payload(&self, key: u64) -> Value {
        match self.records.get(&key) {
            Some(r) => payload_or_empty(r.get("payload")),
            None => seeded_payload(key),
        }
    }

    /// The points in the order Qdrant keeps them (integer ids, then UUIDs) that pass `filter`.
    fn ordered(&self, filter: Option<&Filter>) -> Vec<(Value, u64)> {
        let mut out: Vec<(Value, u64)> = self
            .ids
            .iter()
            .map(|&key| (self.id(key), key))
            .filter(|(id, key)| filter.is_none_or(|f| f.matches(id, &self.payload(*key))))
            .collect();
        out.sort_by_key(|(id, _)| order_key(id));
        out
    }

    /// The point as a read answers it.
    fn record(&self, id: &Value, key: u64, wanted: &Wanted) -> Value {
        let stored = self.records.get(&key);
        let mut out = Map::new();
        out.insert("id".into(), id.clone());
        if let Some(payload) = wanted.payload.select(&self.payload(key)) {
            out.insert("payload".into(), payload);
        }
        if wanted.vectors != Vectors::None {
            let all = stored
                .map(|r| named(&r["vector"]))
                .unwrap_or_else(|| made_up(self.config, key));
            let vector = match &wanted.vectors {
                Vectors::Names(names) => shaped(
                    all.into_iter()
                        .filter(|(name, _)| names.contains(name))
                        .collect(),
                ),
                _ => shaped(all),
            };
            out.insert("vector".into(), vector);
        }
        if let Some(shard_key) = self.shard_keys.get(&key) {
            out.insert("shard_key".into(), shard_key.clone());
        }
        Value::Object(out)
    }

    /// Keys of the points that pass `filter`.
    pub fn matching(&self, filter: &Filter) -> Vec<u64> {
        self.ordered(Some(filter))
            .into_iter()
            .map(|(_, k)| k)
            .collect()
    }
}

/// What a seeded point carries as payload.
pub fn seeded_payload(key: u64) -> Value {
    json!({"group_id": format!("proj-{}", key % 5), "n": key})
}

fn order_key(id: &Value) -> (bool, String) {
    match id {
        Value::Number(n) => (false, format!("{:020}", n.as_u64().unwrap_or(0))),
        other => (
            true,
            other.as_str().unwrap_or_default().to_ascii_lowercase(),
        ),
    }
}

/// `filter` of a request body.
pub fn filter_of(body: &Value) -> Result<Option<Filter>, String> {
    Filter::parse(body.get("filter").unwrap_or(&Value::Null))
}

#[derive(Debug, Clone, PartialEq)]
enum Vectors {
    None,
    All,
    Names(BTreeSet<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Payload {
    None,
    All,
    Include(Vec<String>),
    Exclude(Vec<String>),
}

impl Payload {
    fn select(&self, payload: &Value) -> Option<Value> {
        let map = payload.as_object().cloned().unwrap_or_default();
        match self {
            Payload::None => None,
            Payload::All => Some(Value::Object(map)),
            Payload::Include(keys) => Some(Value::Object(
                map.into_iter().filter(|(k, _)| keys.contains(k)).collect(),
            )),
            Payload::Exclude(keys) => Some(Value::Object(
                map.into_iter().filter(|(k, _)| !keys.contains(k)).collect(),
            )),
        }
    }
}

/// What a read returns of each point (`with_vector`, `with_payload`).
#[derive(Debug, Clone, PartialEq)]
struct Wanted {
    vectors: Vectors,
    payload: Payload,
}

fn wanted(body: &Value, config: &Value) -> Result<Wanted, String> {
    let vectors = match body.get("with_vector").unwrap_or(&Value::Null) {
        Value::Null | Value::Bool(false) => Vectors::None,
        Value::Bool(true) => Vectors::All,
        Value::Array(names) => {
            let names: BTreeSet<String> = names
                .iter()
                .map(|n| n.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    "Format error in JSON body: data did not match any variant of untagged enum WithVector".to_string()
                })?;
            if let Some(unknown) = names.iter().find(|n| !vector_names(config).contains(*n)) {
                return Err(format!(
                    "Wrong input: Not existing vector name error: {unknown}"
                ));
            }
            Vectors::Names(names)
        }
        _ => {
            return Err(
                "Format error in JSON body: data did not match any variant of untagged enum WithVector"
                    .into(),
            );
        }
    };
    let strings = |v: &Value| -> Result<Vec<String>, String> {
        let keys: Option<Vec<String>> = v
            .as_array()
            .map(|a| a.iter().map(|k| k.as_str().map(str::to_string)).collect())
            .unwrap_or(None);
        let keys = keys.ok_or_else(|| {
            "Format error in JSON body: data did not match any variant of untagged enum WithPayloadInterface".to_string()
        })?;
        match keys.iter().any(|k| k.contains(['.', '['])) {
            true => {
                Err("Bad request: qdrant-double selects top-level payload keys only".to_string())
            }
            false => Ok(keys),
        }
    };
    let payload = match body.get("with_payload").unwrap_or(&Value::Null) {
        Value::Null | Value::Bool(true) => Payload::All,
        Value::Bool(false) => Payload::None,
        list @ Value::Array(_) => Payload::Include(strings(list)?),
        Value::Object(m) if m.contains_key("include") => Payload::Include(strings(&m["include"])?),
        Value::Object(m) if m.contains_key("exclude") => Payload::Exclude(strings(&m["exclude"])?),
        _ => {
            return Err(
                "Format error in JSON body: data did not match any variant of untagged enum WithPayloadInterface"
                    .into(),
            );
        }
    };
    Ok(Wanted { vectors, payload })
}

/// One page of a scroll: `limit` points that pass the filter from `offset` (inclusive) on, in
/// id order, with `next_page_offset`.
pub fn scroll(view: &View<'_>, body: &Value) -> Result<Value, String> {
    let limit = match body.get("limit").unwrap_or(&Value::Null) {
        Value::Null => 10,
        v => match v.as_u64() {
            Some(n) if n >= 1 => n as usize,
            _ => {
                return Err(
                    "Validation error in JSON body: [limit: value 0 invalid, must be 1 or larger]"
                        .into(),
                );
            }
        },
    };
    let wanted = wanted(body, view.config)?;
    let filter = filter_of(body)?;
    let ordered = view.ordered(filter.as_ref());
    let start = match body.get("offset").filter(|o| !o.is_null()) {
        Some(offset) => {
            key_of(offset)?;
            let from = order_key(offset);
            ordered
                .iter()
                .position(|(id, _)| order_key(id) >= from)
                .unwrap_or(ordered.len())
        }
        None => 0,
    };
    let page: Vec<Value> = ordered
        .iter()
        .skip(start)
        .take(limit)
        .map(|(id, key)| view.record(id, *key, &wanted))
        .collect();
    let next = ordered
        .get(start + limit)
        .map_or(Value::Null, |(id, _)| id.clone());
    Ok(json!({ "points": page, "next_page_offset": next }))
}

/// `count` of a count request: exact, over the points that pass the filter.
pub fn count(view: &View<'_>, body: &Value) -> Result<usize, String> {
    let filter = filter_of(body)?;
    Ok(match filter {
        Some(f) => view.matching(&f).len(),
        None => view.ids.len(),
    })
}

/// The points of `ids` that exist, in the order asked (each once).
pub fn retrieve(view: &View<'_>, body: &Value) -> Result<Value, String> {
    let ids = body["ids"]
        .as_array()
        .ok_or("Format error in JSON body: missing field `ids`")?;
    let mut wanted = wanted(body, view.config)?;
    // Retrieve's default is no vector, as scroll's.
    if body.get("with_vector").is_none() {
        wanted.vectors = Vectors::None;
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for id in ids {
        let key = key_of(id)?;
        if view.ids.contains(&key) && seen.insert(key) {
            out.push(view.record(&view.id(key), key, &wanted));
        }
    }
    Ok(Value::Array(out))
}

/// The keys a delete selects: `{"points": [ids]}` or `{"filter": …}`.
pub fn delete_selection(view: &View<'_>, body: &Value) -> Result<Vec<u64>, String> {
    match (body.get("points"), body.get("filter")) {
        (Some(Value::Array(ids)), _) => ids.iter().map(key_of).collect(),
        (_, Some(f)) if !f.is_null() => {
            let filter = Filter::parse(f)?.ok_or("Format error in JSON body: missing filter")?;
            Ok(view.matching(&filter))
        }
        _ => Err(
            "Format error in JSON body: data did not match any variant of untagged enum PointsSelector"
                .into(),
        ),
    }
}

/// Removes the points of `keys` from a single node's collection.
pub fn delete(col: &mut Collection, keys: &[u64]) {
    for key in keys {
        col.points.remove(key);
        col.records.remove(key);
        col.elsewhere.remove(key);
    }
}

/// The points of an upsert body (`points` list or `batch`), as the server stores them, each
/// with the number its id is kept under. Points without a `vector` are the double's id-only
/// points (`None`). Vectors are checked against the collection's config when it has one.
pub fn prepare_upsert(
    config: &Value,
    body: &Value,
    version: &str,
) -> Result<Vec<(u64, Option<Value>)>, String> {
    let points = match (body.get("points"), body.get("batch")) {
        (Some(Value::Array(points)), _) => points.clone(),
        (_, Some(batch)) => from_batch(batch)?,
        _ => {
            return Err(
                "Format error in JSON body: data did not match any variant of untagged enum PointInsertOperations"
                    .into(),
            );
        }
    };
    if points.is_empty() {
        return Err("Bad request: Empty update request".into());
    }
    let mut out = Vec::new();
    for point in points {
        let key = key_of(&point["id"])?;
        let Some(vector) = point.get("vector") else {
            out.push((key, None));
            continue;
        };
        let vector = stored_vectors(config, vector, version)?;
        let mut record = Map::new();
        record.insert("id".into(), point["id"].clone());
        record.insert("vector".into(), vector);
        record.insert("payload".into(), payload_or_empty(point.get("payload")));
        out.push((key, Some(Value::Object(record))));
    }
    Ok(out)
}

/// A single node's upsert: every point's record kept, its id made a member.
pub fn upsert(col: &mut Collection, body: &Value, version: &str) -> Result<(), String> {
    for (key, record) in prepare_upsert(&col.config, body, version)? {
        col.points.insert(key);
        match record {
            Some(record) => col.records.insert(key, record),
            None => col.records.remove(&key),
        };
    }
    Ok(())
}

/// `{"ids", "vectors", "payloads"}` → a `points` list.
fn from_batch(batch: &Value) -> Result<Vec<Value>, String> {
    let ids = batch["ids"]
        .as_array()
        .ok_or("Format error in JSON body: missing field `ids`")?;
    let mut points: Vec<Map<String, Value>> = ids
        .iter()
        .map(|id| Map::from_iter([("id".to_string(), id.clone())]))
        .collect();
    let per_point = |name: &str, list: &Value, points: &mut Vec<Map<String, Value>>| {
        for (point, item) in points.iter_mut().zip(list.as_array().into_iter().flatten()) {
            let vector = point.entry("vector").or_insert_with(|| json!({}));
            vector[name] = item.clone();
        }
    };
    match &batch["vectors"] {
        Value::Object(named) => {
            for (name, list) in named {
                per_point(name, list, &mut points);
            }
        }
        list @ Value::Array(_) => per_point("", list, &mut points),
        _ => {}
    }
    for (point, payload) in points
        .iter_mut()
        .zip(batch["payloads"].as_array().into_iter().flatten())
    {
        point.insert("payload".into(), payload.clone());
    }
    Ok(points.into_iter().map(Value::Object).collect())
}

/// The names a collection's vectors go by (`""` for the unnamed one).
fn vector_names(config: &Value) -> BTreeSet<String> {
    let params = &config["params"];
    let mut names = BTreeSet::new();
    match params["vectors"].as_object() {
        Some(m) if m.contains_key("size") => {
            names.insert(String::new());
        }
        Some(m) => names.extend(m.keys().cloned()),
        None => {}
    }
    if let Some(sparse) = params["sparse_vectors"].as_object() {
        names.extend(sparse.keys().cloned());
    }
    names
}

/// The dense config of vector `name`, if the collection has one.
fn dense_config<'c>(config: &'c Value, name: &str) -> Option<&'c Value> {
    let vectors = &config["params"]["vectors"];
    match vectors.get("size") {
        Some(_) => (name.is_empty()).then_some(vectors),
        None => vectors.get(name),
    }
}

/// A point's `vector` as stored: named form, each value as the server keeps it.
fn stored_vectors(config: &Value, vector: &Value, version: &str) -> Result<Value, String> {
    let named = named(vector);
    // Without a vector config (a collection seeded without one) the point is kept as sent.
    if !config["params"]["vectors"].is_object() {
        return Ok(Value::Object(named));
    }
    let mut out = Map::new();
    for (name, value) in named {
        let is_sparse = config["params"]["sparse_vectors"].get(&name).is_some();
        let stored = match (dense_config(config, &name), is_sparse) {
            (Some(params), _) => dense(params, &name, &value, version)?,
            (None, true) => sparse(&value)?,
            (None, false) => {
                return Err(format!(
                    "Wrong input: Not existing vector name error: {name}"
                ));
            }
        };
        out.insert(name, stored);
    }
    Ok(Value::Object(out))
}

fn dim_error(expected: u64, got: usize, name: &str, version: &str) -> String {
    // 1.16 does not name the vector.
    match crate::state::before_1_17(version) {
        true => format!("Wrong input: Vector dimension error: expected dim: {expected}, got {got}"),
        false => format!(
            "Wrong input: Vector dimension error: expected dim: {expected}, got {got} for vector '{name}'"
        ),
    }
}

/// A dense vector or multivector as stored: 32-bit floats (whole numbers for uint8), cosine
/// vectors of floats normalized.
fn dense(params: &Value, name: &str, value: &Value, version: &str) -> Result<Value, String> {
    let size = params["size"].as_u64().unwrap_or(0);
    let multi = params
        .get("multivector_config")
        .is_some_and(|m| !m.is_null());
    let uint8 = params["datatype"] == "uint8";
    let cosine = params["distance"] == "Cosine" && !uint8;
    let one = |list: &Value| -> Result<Value, String> {
        let items = list.as_array().ok_or_else(|| {
            "Wrong input: Conversion between sparse and regular vectors failed".to_string()
        })?;
        let mut values = items
            .iter()
            .map(|v| v.as_f64().map(|x| x as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or("Format error in JSON body: a vector holds numbers only")?;
        if values.len() as u64 != size {
            return Err(dim_error(size, values.len(), name, version));
        }
        if uint8 {
            values = values.iter().map(|x| x.clamp(0.0, 255.0).trunc()).collect();
        }
        if cosine {
            values = cosine_normalized(values);
        }
        Ok(Value::Array(values.into_iter().map(f32_json).collect()))
    };
    match multi {
        true => {
            let rows = value
                .as_array()
                .filter(|rows| rows.iter().all(Value::is_array))
                .ok_or("Wrong input: a multivector is a list of vectors")?;
            Ok(Value::Array(
                rows.iter().map(one).collect::<Result<_, _>>()?,
            ))
        }
        false => one(value),
    }
}

/// Qdrant's cosine preprocessing: divided by its length unless already (nearly) unit length.
/// The check sums in 64 bits, so that a vector read back from the double (already
/// normalized) is never changed again by rounding, however long it is.
fn cosine_normalized(values: Vec<f32>) -> Vec<f32> {
    let exact: f64 = values.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
    if exact < f64::from(f32::EPSILON) || (exact - 1.0).abs() <= 1.0e-6 {
        return values;
    }
    let length = (values.iter().map(|x| x * x).sum::<f32>()).sqrt();
    values.into_iter().map(|x| x / length).collect()
}

/// A 32-bit float as the server's JSON writes it (its shortest decimal form).
fn f32_json(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .map_or(Value::Null, |f| json!(f))
}

/// A sparse vector as stored: indices sorted, values as 32-bit floats.
fn sparse(value: &Value) -> Result<Value, String> {
    let indices = value["indices"].as_array();
    let values = value["values"].as_array();
    let (Some(indices), Some(values)) = (indices, values) else {
        return Err("Wrong input: Conversion between sparse and regular vectors failed".into());
    };
    if indices.len() != values.len() {
        return Err(
            "Validation error in JSON body: sparse vector indices and values must have the same length"
                .into(),
        );
    }
    let mut pairs: Vec<(u32, f32)> = indices
        .iter()
        .zip(values)
        .map(|(i, v)| {
            Some((
                u32::try_from(i.as_u64()?).ok()?,
                v.as_f64().map(|x| x as f32)?,
            ))
        })
        .collect::<Option<_>>()
        .ok_or("Format error in JSON body: invalid sparse vector")?;
    pairs.sort_by_key(|(i, _)| *i);
    Ok(json!({
        "indices": pairs.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        "values": pairs.into_iter().map(|(_, v)| f32_json(v)).collect::<Vec<_>>(),
    }))
}

/// A stored `vector` in the named form (`""` for a bare list).
fn named(vector: &Value) -> Map<String, Value> {
    match vector {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        other => Map::from_iter([(String::new(), other.clone())]),
    }
}

/// As Qdrant answers a point's vectors: a bare list (or list of lists) when all it has is
/// the unnamed dense vector, else the named form. (A point of a collection with named or
/// sparse vectors too that lacks them comes back bare as well.)
fn shaped(vectors: Map<String, Value>) -> Value {
    match vectors.get("") {
        Some(dense @ Value::Array(_)) if vectors.len() == 1 => dense.clone(),
        _ => Value::Object(vectors),
    }
}

/// The same vectors for the same id every time, from the collection's vector config.
fn made_up(config: &Value, key: u64) -> Map<String, Value> {
    let params = &config["params"];
    let mut vectors = Map::new();
    let dense = |name: &str, config: &Value| -> (String, Value) {
        let size = config["size"].as_u64().unwrap_or(4);
        let whole = config["datatype"] == "uint8";
        // Cosine vectors as the server keeps them: normalized, so that they upsert back equal.
        let cosine = config["distance"] == "Cosine" && !whole;
        let row = |shift: u64| -> Value {
            let values: Vec<f32> = (0..size)
                .map(|k| {
                    let step = (key.wrapping_mul(31).wrapping_add((k + shift) * 7)) % 16;
                    match whole {
                        true => step as f32,
                        false => step as f32 / 16.0,
                    }
                })
                .collect();
            let values = match cosine {
                true => cosine_normalized(values),
                false => values,
            };
            Value::Array(values.into_iter().map(f32_json).collect())
        };
        let vector = match config
            .get("multivector_config")
            .is_some_and(|m| !m.is_null())
        {
            true => json!([row(0), row(1)]),
            false => row(0),
        };
        (name.to_string(), vector)
    };
    match params["vectors"].as_object() {
        Some(map) if map.contains_key("size") => {
            let (name, vector) = dense("", &params["vectors"]);
            vectors.insert(name, vector);
        }
        Some(map) => {
            for (name, config) in map {
                let (name, vector) = dense(name, config);
                vectors.insert(name, vector);
            }
        }
        None => {}
    }
    if let Some(sparse) = params["sparse_vectors"].as_object() {
        for name in sparse.keys() {
            let first = key % 1000;
            vectors.insert(
                name.clone(),
                json!({"indices": [first, first + 7], "values": [0.5, 0.25]}),
            );
        }
    }
    vectors
}
