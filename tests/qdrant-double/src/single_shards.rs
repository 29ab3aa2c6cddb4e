//! Single-node mode: `POST /collections/{c}/shards/{id}/snapshots/upload` (docs/qdrant.md,
//! "Shard snapshots"), so shard files (a cluster's, or a single node's streamed ones) can be
//! restored into one node: the shard's points are replaced by the snapshot's
//! ([`crate::state::Collection::replace_shard`]).

use std::io::BufWriter;
use std::time::Instant;

use serde_json::json;

use crate::http::{BodyReader, Request, Response};
use crate::multipart::{self, MultipartError};
use crate::routes::{error, not_found_collection, ok};
use crate::server::{Shared, lock};
use crate::snapshot::{self, HashingWriter};

/// With `fail_after_clear` ([`crate::FaultKind::UploadFailAfterClear`]) the shard's points
/// are cleared and the recovery fails, as a real one that broke half way.
pub(crate) fn upload_shard_snapshot(
    shared: &Shared,
    (req, body): (&Request, &mut BodyReader<'_>),
    c: &str,
    shard: &str,
    fail_after_clear: bool,
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
    match lock(&shared.state).collections.get_mut(c) {
        Some(col) if fail_after_clear => {
            col.replace_shard(shard as u32, Default::default());
            return error(
                500,
                &format!(
                    "Service internal error: failed to recover shard {shard} of collection {c} from the snapshot (injected by qdrant-double)"
                ),
                t,
            );
        }
        Some(col) => col.replace_shard(shard as u32, parsed.points),
        None => return error(404, &not_found_collection(c), t),
    }
    ok(json!(true), t)
}
