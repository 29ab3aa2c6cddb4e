//! Single-node mode: `POST /collections/{c}/shards/{id}/snapshots/upload` (docs/qdrant.md,
//! "Shard snapshots"), so shard files (a cluster's, or a single node's streamed ones) can be
//! restored into one node: the shard's points are replaced by the snapshot's
//! ([`crate::state::Collection::replace_shard`]). And the stored shard snapshots (create,
//! list, download, delete), which a single node serves as a cluster peer does.

use std::io::BufWriter;
use std::time::Instant;

use serde_json::json;

use crate::http::{BodyReader, Request, Response};
use crate::multipart::{self, MultipartError};
use crate::routes::{self, Failure, Flags, accepted, error, not_found_collection, ok};
use crate::server::{Shared, lock};
use crate::snapshot::{self, HashingWriter};

/// `…/shards/{id}/snapshots[/{name}]` but the upload: create (`POST`), list (`GET`),
/// download (`GET name`), delete (`DELETE name`), as a cluster peer answers them.
pub(crate) fn stored_shard_snapshots(
    shared: &Shared,
    (req, _body): (&Request, &mut BodyReader<'_>),
    c: &str,
    shard: &str,
    rest: &[&str],
    flags: &Flags,
    t: Instant,
) -> Response {
    let answer = |result: Result<serde_json::Value, Failure>| match (req.wait(true), result) {
        (false, _) => accepted(t),
        (true, Ok(v)) => ok(v, t),
        (true, Err((code, msg))) => error(code, &msg, t),
    };
    let id = match local_shard(shared, c, shard) {
        Ok(id) => id,
        Err((code, msg)) => return error(code, &msg, t),
    };
    let dir = shared.snapshot_dir(c).join("shards").join(id.to_string());
    match (req.method.as_str(), rest) {
        ("POST", []) => answer(create(shared, c, id, flags)),
        ("GET", []) => ok(
            serde_json::Value::Array(routes::list_snapshot_dir(&dir, flags.wrong_checksum)),
            t,
        ),
        ("GET", [name]) => routes::serve_snapshot_file(req, &dir, name, flags),
        ("DELETE", [name]) => {
            answer(routes::delete_snapshot_file(&dir, name).map(|()| json!(true)))
        }
        _ => error(
            404,
            &format!("Not found: no route for {} {}", req.method, req.raw_path),
            t,
        ),
    }
}

/// The shard id, if the collection has that shard (custom sharding: none).
fn local_shard(shared: &Shared, c: &str, shard: &str) -> Result<u32, Failure> {
    let shard_number = match lock(&shared.state).collections.get(c) {
        Some(col) if !col.custom_sharding() => col.shard_number(),
        Some(_) => 0,
        None => return Err((404, not_found_collection(c))),
    };
    shard
        .parse::<u32>()
        .ok()
        .filter(|s| u64::from(*s) < shard_number)
        .ok_or_else(|| (404, format!("Not found: Shard {shard} is not found")))
}

/// Builds shard `id`'s snapshot in its folder, as a cluster peer does.
fn create(shared: &Shared, c: &str, id: u32, flags: &Flags) -> Result<serde_json::Value, Failure> {
    let io_err = |e: std::io::Error| (500, format!("Service internal error: {e}"));
    let (col, filler) = {
        let mut st = lock(&shared.state);
        st.snapshot_telemetry.entry(c.to_string()).or_default();
        let col = st
            .collections
            .get(c)
            .cloned()
            .ok_or_else(|| (404, not_found_collection(c)))?;
        (col, st.fillers.get(c).copied().unwrap_or(0))
    };
    let peer = shared.config.peer_id;
    let name = format!(
        "{c}-shard-{id}-{}.snapshot",
        routes::format_ts(routes::timestamp_now(), '-', '-', '-')
    );
    let dir = shared.snapshot_dir(c).join("shards").join(id.to_string());
    std::fs::create_dir_all(shared.tmp_dir()).map_err(io_err)?;
    std::fs::create_dir_all(&dir).map_err(io_err)?;
    let tmp = shared
        .tmp_dir()
        .join(format!("{name}.{}.tmp", shared.unique()));
    let cluster = crate::stream_shard::as_cluster(&col, id, peer);
    let sha =
        crate::cluster::write_shard_snapshot(&tmp, &cluster, id, peer, filler).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err(e)
        })?;
    let dest = dir.join(&name);
    std::fs::rename(&tmp, &dest).map_err(io_err)?;
    let reported = match flags.wrong_checksum {
        true => routes::wrong(&sha),
        false => sha,
    };
    std::fs::write(routes::checksum_path(&dest), &reported).map_err(io_err)?;
    if let Some(t) = lock(&shared.state).snapshot_telemetry.get_mut(c) {
        t.total_creations += 1;
    }
    let meta = std::fs::metadata(&dest).map_err(io_err)?;
    Ok(json!({
        "name": name,
        "creation_time": routes::creation_time(&meta),
        "size": meta.len(),
        "checksum": reported,
    }))
}

/// With [`crate::FaultKind::UploadFailAfterClear`] the shard's points are cleared and the
/// recovery fails, as a real one that broke half way; with [`crate::FaultKind::SlowRecovery`]
/// the recovery takes that long, counted in `/metrics` (real 1.16.3 and 1.18.3 count a shard
/// upload's recovery in `snapshot_recovery_running`), and may go on after the answer.
pub(crate) fn upload_shard_snapshot<'s>(
    shared: &'s Shared,
    (req, body): (&Request, &mut BodyReader<'_>),
    (c, shard): (&str, &str),
    flags: &Flags,
    t: Instant,
    later: &mut Option<routes::Deferred<'s>>,
) -> Response {
    let fail_after_clear = flags.upload_fail_after_clear;
    let shard_number = match lock(&shared.state).collections.get(c) {
        Some(col) if !col.custom_sharding() => col.shard_number(),
        Some(_) => 0,
        None => return error(404, &not_found_collection(c), t),
    };
    let Some(shard) = shard.parse::<u64>().ok().filter(|s| *s < shard_number) else {
        return error(404, &format!("Not found: Shard {shard} is not found"), t);
    };
    let Some(boundary) = req.header("content-type").and_then(multipart::boundary) else {
        return Response::plain(400, "Could not find boundary in Content-Type header");
    };
    let spool = std::fs::create_dir_all(shared.upload_dir())
        .and_then(|()| tempfile::NamedTempFile::new_in(shared.upload_dir()));
    let spool = match spool {
        Ok(f) => f,
        Err(e) => return error(500, &format!("Service internal error: {e}"), t),
    };
    let mut writer = HashingWriter::new(BufWriter::new(spool.as_file()));
    let field = multipart::extract_field(&mut *body, &boundary, "snapshot", &mut writer);
    let (buffered, sha) = writer.finish();
    let flushed = buffered.into_inner().map_err(|e| e.into_error());
    match (field, flushed) {
        (Ok(_), Ok(_)) => {}
        (Err(MultipartError::MissingField), _) => {
            return Response::plain(400, "Required field is missing: snapshot");
        }
        (Err(MultipartError::Malformed(msg)), _) => return Response::plain(400, &msg),
        (Err(MultipartError::Io(e)), _) | (_, Err(e)) => {
            return Response::plain(400, &format!("Multipart stream is incomplete: {e}"));
        }
    }
    if let Some(sum) = req.query("checksum")
        && !sum.trim().eq_ignore_ascii_case(&sha)
    {
        return error(
            400,
            &format!("Checksum mismatch: expected {sha}, actual {sum}"),
            t,
        );
    }
    let parsed = match snapshot::read_snapshot(spool.path()) {
        Ok(parsed) => parsed,
        Err(msg) => return error(500, &msg, t),
    };
    let id = shard as u32;
    if let Some((takes, answer)) = flags.slow_recovery.clone() {
        let collection = c.to_string();
        let (points, records) = (parsed.points, parsed.records);
        let recover: routes::ShardRecovery<'s> =
            Box::new(
                move || match lock(&shared.state).collections.get_mut(&collection) {
                    Some(col) if fail_after_clear => {
                        col.replace_shard(id, Default::default(), Default::default());
                        Err((
                            500,
                            "Service internal error: recovery failed (injected)".to_string(),
                        ))
                    }
                    Some(col) => {
                        col.replace_shard(id, points, records);
                        Ok(())
                    }
                    None => Err((404, not_found_collection(&collection))),
                },
            );
        let job = routes::Deferred::shard(shared, c, takes, recover);
        let result = match answer {
            crate::LateAnswer::Wait => job.run(),
            crate::LateAnswer::Drop => {
                *later = Some(job);
                return Response::dropped();
            }
            crate::LateAnswer::Gateway { code, body } => {
                *later = Some(job);
                return Response::plain(code, &body);
            }
        };
        return match result {
            Ok(()) => ok(json!(true), t),
            Err((code, msg)) => error(code, &msg, t),
        };
    }
    let running = routes::RecoveryGuard::new(shared, c);
    let recovered = match lock(&shared.state).collections.get_mut(c) {
        Some(col) if fail_after_clear => {
            col.replace_shard(id, Default::default(), Default::default());
            Err((
                500,
                format!(
                    "Service internal error: failed to recover shard {shard} of collection {c} from the snapshot (injected by qdrant-double)"
                ),
            ))
        }
        Some(col) => {
            col.replace_shard(id, parsed.points, parsed.records);
            Ok(())
        }
        None => Err((404, not_found_collection(c))),
    };
    // The state's lock is free again: the guard takes it to count the recovery as over.
    drop(running);
    match recovered {
        Ok(()) => ok(json!(true), t),
        Err((code, msg)) => error(code, &msg, t),
    }
}
