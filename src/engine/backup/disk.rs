//! Free disk space and the estimate of how much a backup will need.

use camino::Utf8Path;

use crate::fingerprint::Fingerprint;

/// Bytes available to an unprivileged writer on the filesystem holding `path`.
pub fn free_space(path: &Utf8Path) -> std::io::Result<u64> {
    if let Some(fake) = seam::fake_free_space() {
        return Ok(fake);
    }
    let stat = rustix::fs::statvfs(path.as_std_path())?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Test seam: `AIMEM_TEST_FREE_SPACE=N` pretends the output filesystem has N bytes free, so the
/// tests can drive the "not enough space" paths without filling a disk.
///
/// It exists only in debug builds (the ones `cargo test` runs the CLI tests against): an
/// environment variable that switches off a safety check must not be in what ships. The
/// release build has neither the variable's name nor the code that reads it;
/// `tests/cli/servers.rs` checks the release binary for the name under `cargo test --release`.
#[cfg(debug_assertions)]
mod seam {
    pub fn fake_free_space() -> Option<u64> {
        std::env::var("AIMEM_TEST_FREE_SPACE")
            .ok()
            .and_then(|v| v.parse().ok())
    }
}

#[cfg(not(debug_assertions))]
mod seam {
    pub fn fake_free_space() -> Option<u64> {
        None
    }
}

/// True when a write failed because the disk or the user's quota is full (ENOSPC, EDQUOT),
/// looking through the io::Errors that wrap others (a transfer's sink, a temp file's persist).
/// Such a failure exits with the documented disk-space status (3) wherever files are written.
pub fn is_out_of_space(error: &std::io::Error) -> bool {
    let full = [rustix::io::Errno::NOSPC, rustix::io::Errno::DQUOT]
        .iter()
        .any(|errno| error.raw_os_error() == Some(errno.raw_os_error()));
    if full || error.kind() == std::io::ErrorKind::StorageFull {
        return true;
    }
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<std::io::Error>())
        .is_some_and(is_out_of_space)
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
    fn a_full_disk_or_quota_is_out_of_space_however_wrapped() {
        let enospc = std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let edquot = std::io::Error::from_raw_os_error(rustix::io::Errno::DQUOT.raw_os_error());
        assert!(is_out_of_space(&enospc));
        assert!(is_out_of_space(&edquot));
        assert!(is_out_of_space(&std::io::Error::from(
            std::io::ErrorKind::StorageFull
        )));
        let wrapped = std::io::Error::other(enospc);
        assert!(is_out_of_space(&wrapped));
        let efbig = std::io::Error::from_raw_os_error(rustix::io::Errno::FBIG.raw_os_error());
        assert!(!is_out_of_space(&efbig));
        assert!(!is_out_of_space(&std::io::Error::from(
            std::io::ErrorKind::PermissionDenied
        )));
    }

    /// A real ENOSPC: every write to /dev/full fails with it (Linux).
    #[test]
    fn writing_to_dev_full_is_out_of_space() {
        use std::io::Write;
        let Ok(mut full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let error = full.write_all(b"x").unwrap_err();
        assert!(is_out_of_space(&error), "{error:?}");
    }

    /// In release builds the free-space seam does not exist: the variable is ignored.
    #[cfg(not(debug_assertions))]
    #[test]
    fn the_release_build_ignores_the_free_space_seam() {
        // SAFETY: no other test of this crate reads or writes this variable.
        unsafe { std::env::set_var("AIMEM_TEST_FREE_SPACE", "1") };
        assert_eq!(seam::fake_free_space(), None);
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
