//! Single-node mode: points with their vectors and payloads, as scroll answers them and an
//! upsert writes them (shapes after `points/scroll-*.json` and `points/upsert-*.json`).
//!
//! The double keeps a collection's points as a set of ids; a point written by an upsert with
//! vectors also keeps its record (`Collection::records`: id, vector, payload, as sent). A
//! seeded point has none: scroll makes one up from the collection's vector config, the same
//! for the same id every time. UUID ids are kept under a number made from the UUID.

use serde_json::{Map, Value, json};

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

/// Upsert: every point's record kept, its id made a member.
pub fn upsert(col: &mut Collection, body: &Value) -> Result<(), String> {
    let points = body["points"]
        .as_array()
        .ok_or("Bad request: qdrant-double understands only a `points` list")?;
    if points.is_empty() {
        return Err("Bad request: Empty update request".into());
    }
    for point in points {
        let key = key_of(&point["id"])?;
        col.points.insert(key);
        col.records.insert(key, point.clone());
    }
    Ok(())
}

/// One page of a scroll: `limit` points from `offset` on, in the order Qdrant keeps them
/// (integer ids, then UUIDs), with `next_page_offset`.
pub fn scroll(col: &Collection, body: &Value) -> Result<Value, String> {
    let limit = body["limit"].as_u64().unwrap_or(10) as usize;
    let with_vector = body["with_vector"].as_bool().unwrap_or(false);
    let with_payload = body["with_payload"].as_bool().unwrap_or(true);
    let mut ordered: Vec<(bool, Value, u64)> = col
        .points
        .iter()
        .map(|&key| {
            let id = col
                .records
                .get(&key)
                .map(|r| r["id"].clone())
                .unwrap_or_else(|| json!(key));
            (id.is_string(), id, key)
        })
        .collect();
    ordered.sort_by_key(|p| (p.0, order_key(&p.1)));
    let start = match body.get("offset").filter(|o| !o.is_null()) {
        Some(offset) => {
            let key = key_of(offset)?;
            ordered
                .iter()
                .position(|p| p.2 == key)
                .unwrap_or(ordered.len())
        }
        None => 0,
    };
    let page: Vec<Value> = ordered
        .iter()
        .skip(start)
        .take(limit)
        .map(|(_, id, key)| record(col, id, *key, with_vector, with_payload))
        .collect();
    let next = ordered
        .get(start + limit)
        .map_or(Value::Null, |(_, id, _)| id.clone());
    Ok(json!({ "points": page, "next_page_offset": next }))
}

fn order_key(id: &Value) -> String {
    match id {
        Value::Number(n) => format!("{:020}", n.as_u64().unwrap_or(0)),
        other => other.as_str().unwrap_or_default().to_string(),
    }
}

/// A point as scroll answers it.
fn record(col: &Collection, id: &Value, key: u64, with_vector: bool, with_payload: bool) -> Value {
    let stored = col.records.get(&key);
    let mut out = Map::new();
    out.insert("id".into(), id.clone());
    if with_payload {
        let payload = stored
            .map(|r| r["payload"].clone())
            .unwrap_or_else(|| json!({"group_id": format!("proj-{}", key % 5), "n": key}));
        out.insert("payload".into(), payload);
    }
    if with_vector {
        let vectors = stored
            .map(|r| named(&r["vector"]))
            .unwrap_or_else(|| made_up(col, key));
        out.insert("vector".into(), shaped(col, vectors));
    }
    Value::Object(out)
}

/// A stored `vector` in the named form (`""` for a bare list).
fn named(vector: &Value) -> Map<String, Value> {
    match vector {
        Value::Object(map) => map.clone(),
        other => Map::from_iter([(String::new(), other.clone())]),
    }
}

/// As Qdrant answers: a bare list when the collection has only its unnamed dense vector.
fn shaped(col: &Collection, vectors: Map<String, Value>) -> Value {
    let params = &col.config["params"];
    let only_unnamed = params["vectors"].get("size").is_some()
        && params["sparse_vectors"]
            .as_object()
            .is_none_or(Map::is_empty);
    match (only_unnamed, vectors.get("")) {
        (true, Some(vector)) if vectors.len() == 1 => vector.clone(),
        _ => Value::Object(vectors),
    }
}

/// The same vectors for the same id every time, from the collection's vector config.
fn made_up(col: &Collection, key: u64) -> Map<String, Value> {
    let params = &col.config["params"];
    let mut vectors = Map::new();
    let dense = |name: &str, config: &Value| -> (String, Value) {
        let size = config["size"].as_u64().unwrap_or(4);
        let whole = config["datatype"] == "uint8";
        let one = |k: u64| -> Value {
            let step = (key.wrapping_mul(31).wrapping_add(k * 7)) % 16;
            match whole {
                true => json!(step as f64),
                false => json!(step as f64 / 16.0),
            }
        };
        let vector = match config
            .get("multivector_config")
            .is_some_and(|m| !m.is_null())
        {
            true => json!([
                (0..size).map(one).collect::<Vec<_>>(),
                (0..size).map(|k| one(k + 1)).collect::<Vec<_>>()
            ]),
            false => json!((0..size).map(one).collect::<Vec<_>>()),
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
