//! Single-node mode: the point endpoints (`/collections/{c}/points…`) and the alias
//! endpoints over the double's own state. A collection may be named by an alias.

use std::time::Instant;

use serde_json::{Value, json};

use crate::http::{BodyReader, Request, Response};
use crate::points::{self, View};
use crate::routes::{error, not_found_collection, ok, read_json, update_result};
use crate::server::{Shared, lock};
use crate::state::State;

/// A shard key on a single node: none exists (keys need distributed mode), so any is unknown.
/// Reads and writes word it differently.
fn shard_key_error(body: &Value, prefix: &str) -> Option<String> {
    let key = match body.get("shard_key")? {
        Value::Null => return None,
        Value::Array(keys) => keys.first()?.clone(),
        key => key.clone(),
    };
    Some(format!("{prefix}: Shard key {key} not found"))
}

/// The collection name `c` stands for (an alias names its collection).
fn resolved(st: &State, c: &str) -> String {
    crate::aliases::resolve(&st.aliases, c, st.collections.contains_key(c))
}

/// `Some(answer)` for the routes of this module.
pub(crate) fn handle(
    shared: &Shared,
    req: &Request,
    seg: &[&str],
    body: &mut BodyReader<'_>,
    t: Instant,
) -> Option<Response> {
    let method = req.method.to_ascii_uppercase();
    let resp = match (method.as_str(), seg) {
        ("GET", ["aliases"]) => ok(
            crate::aliases::listed(&lock(&shared.state).aliases, None),
            t,
        ),
        ("GET", ["collections", c, "aliases"]) => {
            let st = lock(&shared.state);
            match st.collections.contains_key(*c) {
                true => ok(crate::aliases::listed(&st.aliases, Some(c)), t),
                false => error(404, &not_found_collection(c), t),
            }
        }
        ("POST", ["collections", "aliases"]) => {
            let value = match read_json(body, false) {
                Ok(v) => v,
                Err(msg) => return Some(error(400, &msg, t)),
            };
            let mut st = lock(&shared.state);
            let State {
                aliases,
                collections,
                ..
            } = &mut *st;
            match crate::aliases::change(aliases, &value, |c| collections.contains_key(c)) {
                Ok(()) => ok(json!(true), t),
                Err((code, msg)) => error(code, &msg, t),
            }
        }
        ("POST", ["collections", c, "points", op @ ("scroll" | "count")]) => {
            read(shared, c, body, t, |view, body| match *op {
                "scroll" => points::scroll(view, body),
                _ => points::count(view, body).map(|n| json!({ "count": n })),
            })
        }
        ("POST", ["collections", c, "points"]) => read(shared, c, body, t, points::retrieve),
        ("POST", ["collections", c, "points", "delete"]) => write(shared, req, c, body, t, false),
        ("PUT", ["collections", c, "points"]) => write(shared, req, c, body, t, true),
        _ => return None,
    };
    Some(resp)
}

fn read(
    shared: &Shared,
    c: &str,
    body: &mut BodyReader<'_>,
    t: Instant,
    answer: impl Fn(&View<'_>, &Value) -> Result<Value, String>,
) -> Response {
    let body = match read_json(body, true) {
        Ok(body) => body,
        Err(msg) => return error(400, &msg, t),
    };
    let st = lock(&shared.state);
    let name = resolved(&st, c);
    let Some(col) = st.collections.get(&name) else {
        return error(404, &not_found_collection(c), t);
    };
    if let Some(msg) = shard_key_error(&body, "Bad request") {
        return error(400, &msg, t);
    }
    match answer(&View::of(col), &body) {
        Ok(result) => ok(result, t),
        Err(msg) => error(400, &msg, t),
    }
}

/// An upsert or a delete; with `wait=false` it is applied at once all the same (the double
/// has no update queue), so a count right after sees it.
fn write(
    shared: &Shared,
    req: &Request,
    c: &str,
    body: &mut BodyReader<'_>,
    t: Instant,
    upsert: bool,
) -> Response {
    let body = match read_json(body, false) {
        Ok(body) => body,
        Err(msg) => return error(400, &msg, t),
    };
    let mut st = lock(&shared.state);
    let name = resolved(&st, c);
    let Some(col) = st.collections.get_mut(&name) else {
        return error(404, &not_found_collection(c), t);
    };
    if let Some(msg) = shard_key_error(&body, "Wrong input") {
        return error(400, &msg, t);
    }
    let unindexed = upsert
        && col
            .config
            .pointer("/optimizer_config/indexing_threshold")
            .and_then(Value::as_u64)
            == Some(0);
    let applied = match upsert {
        true => points::upsert(col, &body, &shared.config.version),
        false => {
            points::delete_selection(&View::of(col), &body).map(|keys| points::delete(col, &keys))
        }
    };
    match applied {
        Ok(()) => {
            if unindexed {
                let written = body["points"]
                    .as_array()
                    .or_else(|| body["batch"]["ids"].as_array())
                    .map_or(0, Vec::len) as u64;
                *st.unindexed_writes.entry(name).or_default() += written;
            }
            let result = update_result(&mut st, req);
            ok(result, t)
        }
        Err(msg) => error(400, &msg, t),
    }
}
