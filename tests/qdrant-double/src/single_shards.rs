//! Single-node mode: `POST /collections/{c}/shards/{id}/snapshots/upload` (docs/qdrant.md,
//! "Shard snapshots"), so a cluster backup's shard files can be restored into one node. A
//! single node keeps one point set per collection (no per-shard membership): a shard snapshot
//! adds its points, which is what the recovery of a shard into a fresh collection amounts to.

use std::io::BufWriter;
use std::time::Instant;

use serde_json::json;

use crate::http::{BodyReader, Request, Response};
use crate::multipart::{self, MultipartError};
use crate::routes::{error, not_found_collection, ok};
use crate::server::{Shared, lock};
use crate::snapshot::{self, HashingWriter};

pub(crate) fn upload_shard_snapshot(
    shared: &Shared,
    req: &Request,
    c: &str,
    shard: &str,
    body: &mut BodyReader<'_>,
    t: Instant,
) -> Response {
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
    let _ = shard;
    match lock(&shared.state).collections.get_mut(c) {
        Some(col) => col.points.extend(parsed.points),
        None => return error(404, &not_found_collection(c), t),
    }
    ok(json!(true), t)
}
