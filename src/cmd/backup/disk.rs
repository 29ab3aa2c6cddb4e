//! Free disk space and the estimate of how much a backup will need.

use camino::Utf8Path;

use crate::fingerprint::Fingerprint;

/// Test seam: pretend the output filesystem has this many bytes free. Lets the tests drive
/// the "not enough space" path without filling a disk; never set it in production.
const FAKE_FREE_ENV: &str = "AIMEM_TEST_FREE_SPACE";

/// Bytes available to an unprivileged writer on the filesystem holding `path`.
pub fn free_space(path: &Utf8Path) -> std::io::Result<u64> {
    if let Some(fake) = std::env::var(FAKE_FREE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Ok(fake);
    }
    let stat = rustix::fs::statvfs(path.as_std_path())?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Bytes a snapshot holds beyond its points: tar headers, config, WAL, segment metadata.
const PER_COLLECTION_OVERHEAD: u64 = 1024 * 1024;
/// What a point's payload and its indexes take, on average, in an AI Memory collection.
const PAYLOAD_PER_POINT: u64 = 2 * 1024;
/// Non-zero entries assumed per sparse vector (BM25 over a short text), at 8 bytes each.
const SPARSE_BYTES_PER_VECTOR: u64 = 128 * 8;
/// Vectors assumed per point in a multivector (ColBERT: one per token).
const MULTIVECTOR_TOKENS: u64 = 64;

/// Estimates a snapshot's size from the collection's vector config and its exact point count.
///
/// Snapshots are uncompressed copies of the segments, so the size follows the stored vectors
/// (dimension × datatype width, times the token count for multivectors), their quantized
/// copies, the HNSW links, sparse vectors and payload. It errs on the large side.
pub fn estimate_snapshot_size(fingerprint: &Fingerprint, points: u64) -> u64 {
    let schema = fingerprint.as_value();
    let m = schema
        .pointer("/hnsw_config/m")
        .and_then(|v| v.as_u64())
        .unwrap_or(16);
    let quantized = schema
        .get("quantization_config")
        .is_some_and(|q| !q.is_null());
    let mut per_point = PAYLOAD_PER_POINT;
    for vector in fingerprint.dense_vectors() {
        let copies = if vector.multivector {
            MULTIVECTOR_TOKENS
        } else {
            1
        };
        let raw = vector.size * vector.bytes_per_dimension * copies;
        // int8 scalar quantization keeps one byte per dimension; the others less.
        let quantized_copy = if quantized { vector.size * copies } else { 0 };
        // Level-0 HNSW links: 2·m neighbour ids of 4 bytes.
        let links = 2 * m * 4;
        per_point += raw + quantized_copy + links;
    }
    per_point += fingerprint.sparse_vector_count() as u64 * SPARSE_BYTES_PER_VECTOR;
    PER_COLLECTION_OVERHEAD + points.saturating_mul(per_point)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_fingerprint(name: &str) -> Fingerprint {
        let path = format!(
            "{}/tests/fixtures/qdrant/collections/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let exchange: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        Fingerprint::from_collection_info(&exchange["response"]["body"]["result"]).unwrap()
    }

    #[test]
    fn the_estimate_covers_the_real_fixture_snapshot() {
        // conventions.snapshot: 30 points, 760,832 bytes on a real Qdrant 1.18.3.
        let estimate = estimate_snapshot_size(&fixture_fingerprint("info-conventions.json"), 30);
        assert!(estimate >= 760_832, "{estimate}");
        assert!(
            estimate < 4 * 760_832,
            "an estimate, not a flat guess: {estimate}"
        );
    }

    #[test]
    fn the_estimate_grows_with_points_and_dimensions() {
        let small = fixture_fingerprint("info-uint8-manhattan.json");
        let big = fixture_fingerprint("info-discussions.json");
        assert!(estimate_snapshot_size(&big, 1000) > estimate_snapshot_size(&small, 1000));
        assert!(estimate_snapshot_size(&big, 2000) > estimate_snapshot_size(&big, 1000));
        // 1M 768-d float vectors are at least 3 GB on disk.
        assert!(estimate_snapshot_size(&big, 1_000_000) > 3_000_000_000);
    }
}
