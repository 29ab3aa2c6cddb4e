//! The logical backup format (docs/logical-format.md): a collection's points as rows of an
//! Apache Parquet file, readable without aimem (pyarrow, DuckDB, polars, Spark) and restorable
//! into any Qdrant, whatever its version or shard layout.
//!
//! - [`point`]: a point as aimem holds it between the server and the file.
//! - [`columns`]: which columns a collection's points take, and the Parquet schema.
//! - [`write`]: points into a file, row group by row group (memory bounded by the group).
//! - [`read`]: a file back into points, checked against the columns it says it has.
//!
//! The format has a number ([`FORMAT_VERSION`]), written into every file's footer: a reader
//! refuses a file of a later format instead of misreading it.

pub mod columns;
pub mod point;
pub mod read;
pub mod write;

/// The version of the column layout documented in docs/logical-format.md.
pub const FORMAT_VERSION: u32 = 1;

/// The most bytes a file's Parquet footer may take: aimem's writer keeps its files' footers
/// far below it (`write::rows_per_file`), and its reader refuses a longer one, so a crafted
/// file cannot make it decode megabytes of metadata.
pub const MAX_FOOTER: u64 = 1024 * 1024;

/// The footer key holding [`FORMAT_VERSION`].
pub const FORMAT_KEY: &str = "aimem.logical.format";
/// The footer key holding the vector columns ([`columns::Columns`]) as JSON.
pub const VECTORS_KEY: &str = "aimem.logical.vectors";

/// Why a logical backup file cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum LogicalError {
    #[error("{0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is not one aimem can read as a logical backup: what is wrong with it.
    #[error("{0}")]
    Format(String),
    /// A point could not be written as JSON.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// A point aimem's reader would refuse, so a backup of it could not be restored: which,
    /// and why.
    #[error("{0}")]
    Unrestorable(String),
}

/// `points` written into a temporary file with `columns` (tests of the reader and of what
/// reads it).
#[cfg(test)]
pub(crate) fn written_file(
    columns: columns::Columns,
    points: &[point::Point],
) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut writer = write::PointsWriter::new(file.reopen().unwrap(), columns).unwrap();
    for point in points {
        writer.push(point).unwrap();
    }
    let (rows, _) = writer.finish().unwrap();
    assert_eq!(rows, points.len() as u64);
    file
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::columns::{Columns, VectorKind};
    use super::point::{Point, PointId, VectorValue};
    use super::read::PointsReader;
    use super::write::{PointsWriter, ROWS_PER_GROUP};

    fn columns() -> Columns {
        Columns::new(&[
            ("".into(), VectorKind::Dense),
            ("f16".into(), VectorKind::Dense),
            ("bm25".into(), VectorKind::Sparse),
            ("colbert".into(), VectorKind::Multi),
            ("odd name/ü".into(), VectorKind::Dense),
        ])
        .unwrap()
    }

    /// Every vector kind and id kind, present, empty and missing, with payloads of any shape.
    fn points() -> Vec<Point> {
        let mut points = Vec::new();
        for i in 0..(ROWS_PER_GROUP as u64 + 5) {
            let mut vectors = BTreeMap::new();
            vectors.insert(
                "".into(),
                VectorValue::Dense(vec![i as f32, -0.5, 1e-30, f32::MAX]),
            );
            if i % 3 != 0 {
                vectors.insert("f16".into(), VectorValue::Dense(vec![0.5, 0.25, 1.5, 2.0]));
            }
            vectors.insert(
                "bm25".into(),
                VectorValue::Sparse {
                    indices: (0..(i % 4) as u32)
                        .map(|k| k * 1000 + u32::MAX / 2)
                        .collect(),
                    values: (0..(i % 4)).map(|k| k as f32 / 3.0).collect(),
                },
            );
            if i % 5 != 1 {
                let multi = match i % 4 {
                    0 => vec![],
                    1 => vec![vec![]],
                    _ => vec![vec![1.0, 2.0], vec![], vec![3.0, 4.0, 5.0]],
                };
                vectors.insert("colbert".into(), VectorValue::Multi(multi));
            }
            if i % 2 == 0 {
                vectors.insert("odd name/ü".into(), VectorValue::Dense(vec![]));
            }
            points.push(Point {
                id: match i % 2 {
                    0 => PointId::Num(if i == 0 { u64::MAX } else { i }),
                    _ => PointId::Uuid(format!("19c3756f-402f-4856-b279-{i:012x}")),
                },
                payload: match i % 3 {
                    0 => None,
                    1 => Some(json!({})),
                    _ => Some(json!({"group_id": format!("proj-{i}"), "n": i, "nested": {"a": [1, "x", null, 2.5]}, "text": "ü\u{0}\"quote"})),
                },
                shard_key: (i % 7 == 0).then(|| json!(if i % 2 == 0 { json!("tenant-a") } else { json!(7) })),
                vectors,
            });
        }
        points
    }

    fn written(points: &[Point]) -> tempfile::NamedTempFile {
        super::written_file(columns(), points)
    }

    #[test]
    fn a_file_of_the_most_rows_a_range_gets_has_a_footer_the_reader_takes() {
        // Many columns make the footer grow fastest: each row group adds to it per column.
        let names: Vec<(String, VectorKind)> = (0..60)
            .map(|i| (format!("v{i}"), VectorKind::Dense))
            .collect();
        let columns = Columns::new(&names).unwrap();
        let rows = super::write::rows_per_file(&columns);
        assert!(rows >= ROWS_PER_GROUP as u64, "{rows}");
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut writer = PointsWriter::new(file.reopen().unwrap(), columns.clone()).unwrap();
        let vectors: BTreeMap<String, VectorValue> = names
            .iter()
            .map(|(name, _)| (name.clone(), VectorValue::Dense(vec![0.5])))
            .collect();
        for i in 0..rows {
            let point = Point {
                id: PointId::Num(i),
                payload: None,
                shard_key: None,
                vectors: vectors.clone(),
            };
            writer.push(&point).unwrap();
        }
        writer.finish().unwrap();
        let bytes = std::fs::read(file.path()).unwrap();
        let tail = &bytes[bytes.len() - 8..bytes.len() - 4];
        let footer = u32::from_le_bytes(tail.try_into().unwrap()) as u64;
        // Within the budget `rows_per_file` aims at, with room to spare under the bound.
        assert!(footer <= super::MAX_FOOTER / 2, "{footer}");
        assert!(
            footer >= super::MAX_FOOTER / 8,
            "{footer}: the estimate is far off"
        );
    }

    /// The writer takes a point of as many levels as the reader takes, and refuses one more: a
    /// backup never holds a point its restore would refuse.
    #[test]
    fn a_point_the_reader_would_refuse_is_refused_by_the_writer() {
        use super::read::MAX_POINT_LEVELS;
        let columns = Columns::new(&[
            ("".into(), VectorKind::Dense),
            ("s".into(), VectorKind::Sparse),
            ("m".into(), VectorKind::Multi),
        ])
        .unwrap();
        // Without `s` and `m`: three levels (null), the rest the dense vector's values.
        let point = |id: u64, levels: usize| Point {
            id: PointId::Num(id),
            payload: None,
            shard_key: None,
            vectors: [("".to_string(), VectorValue::Dense(vec![0.5; levels - 3]))].into(),
        };
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut writer = PointsWriter::new(file.reopen().unwrap(), columns.clone()).unwrap();
        let refused = writer
            .push(&point(8, MAX_POINT_LEVELS + 1))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            refused.as_deref(),
            Some(&*format!(
                "point 8: its vectors take {} values and lists, more than the {MAX_POINT_LEVELS} \
                 aimem restores of one point",
                MAX_POINT_LEVELS + 1
            ))
        );
        let biggest = point(7, MAX_POINT_LEVELS);
        writer.push(&biggest).unwrap();
        assert_eq!(writer.finish().unwrap().0, 1);
        let reader = PointsReader::open(file.reopen().unwrap()).unwrap();
        let back: Vec<Point> = reader.points().unwrap().collect::<Result<_, _>>().unwrap();
        assert!(back == [biggest], "the biggest point did not read back");
    }

    #[test]
    fn a_points_levels_are_one_a_value_and_one_a_null_or_empty_list() {
        let columns = Columns::new(&[
            ("".into(), VectorKind::Dense),
            ("s".into(), VectorKind::Sparse),
            ("m".into(), VectorKind::Multi),
        ])
        .unwrap();
        let levels = |vectors: Vec<(&str, VectorValue)>| {
            let point = Point {
                id: PointId::Num(1),
                payload: None,
                shard_key: None,
                vectors: vectors
                    .into_iter()
                    .map(|(n, v)| (n.to_string(), v))
                    .collect(),
            };
            super::write::point_levels(&columns, &point)
        };
        // Null: one level a list (a sparse vector has two).
        assert_eq!(levels(vec![]), 1 + 2 + 1);
        let sparse = VectorValue::Sparse {
            indices: vec![1, 2, 3],
            values: vec![0.5; 3],
        };
        let empty = VectorValue::Sparse {
            indices: vec![],
            values: vec![],
        };
        assert_eq!(
            levels(vec![("", VectorValue::Dense(vec![])), ("s", empty)]),
            1 + 2 + 1
        );
        assert_eq!(
            levels(vec![("", VectorValue::Dense(vec![1.0; 5])), ("s", sparse)]),
            5 + 6 + 1
        );
        assert_eq!(levels(vec![("m", VectorValue::Multi(vec![]))]), 1 + 2 + 1);
        let multi = VectorValue::Multi(vec![vec![], vec![1.0, 2.0], vec![]]);
        assert_eq!(levels(vec![("m", multi)]), 1 + 2 + 4);
    }

    #[test]
    fn every_vector_and_id_kind_round_trips_exactly() {
        let points = points();
        let file = written(&points);
        let reader = PointsReader::open(file.reopen().unwrap()).unwrap();
        assert_eq!(reader.rows(), points.len() as u64);
        assert_eq!(reader.columns(), &columns());
        let back: Vec<Point> = reader.points().unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(back.len(), points.len());
        for (read, wrote) in back.iter().zip(&points) {
            assert_eq!(read, wrote);
        }
    }

    #[test]
    fn a_file_read_in_place_over_the_network_reads_as_the_local_one() {
        use crate::manifest::files::{Opened, ReadAt};
        use std::sync::atomic::{AtomicUsize, Ordering};

        /// The file's bytes, read at offsets a little at a time, each read counted.
        struct Remote(Vec<u8>, AtomicUsize);
        impl ReadAt for Remote {
            fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
                self.1.fetch_add(1, Ordering::Relaxed);
                let start = (offset as usize).min(self.0.len());
                let n = buf.len().min(4096).min(self.0.len() - start);
                buf[..n].copy_from_slice(&self.0[start..start + n]);
                Ok(n)
            }
        }

        let points = points();
        let file = written(&points);
        let bytes = std::fs::read(file.path()).unwrap();
        let remote = std::sync::Arc::new(Remote(bytes.clone(), AtomicUsize::new(0)));
        let opened = Opened::at(remote.clone(), bytes.len() as u64);
        let reader = PointsReader::open_from(opened).unwrap();
        assert_eq!(reader.rows(), points.len() as u64);
        let back: Vec<Point> = reader.points().unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(back, points);
        assert!(
            remote.1.load(Ordering::Relaxed) > 0,
            "read through the source"
        );

        // Cut short, it is refused as a local file would be.
        let cut = std::sync::Arc::new(Remote(
            bytes[..bytes.len() - 3].to_vec(),
            AtomicUsize::new(0),
        ));
        let opened = Opened::at(cut, bytes.len() as u64 - 3);
        assert!(PointsReader::open_from(opened).is_err());
    }

    #[test]
    fn a_vector_the_definition_lacks_or_of_another_kind_is_refused() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut writer = PointsWriter::new(file.reopen().unwrap(), columns()).unwrap();
        let mut point = points().remove(1);
        point
            .vectors
            .insert("other".into(), VectorValue::Dense(vec![1.0]));
        assert!(writer.push(&point).is_err());
        let mut point = points().remove(1);
        point
            .vectors
            .insert("bm25".into(), VectorValue::Dense(vec![1.0]));
        assert!(writer.push(&point).is_err());
    }

    #[test]
    fn a_file_of_a_later_format_or_another_tool_is_refused() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let schema = columns().schema().unwrap();
        for footer in [None, Some("2"), Some("x")] {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_key_value_metadata(footer.map(|f| {
                    vec![parquet::file::metadata::KeyValue::new(
                        super::FORMAT_KEY.to_string(),
                        f.to_string(),
                    )]
                }))
                .build();
            let writer = parquet::file::writer::SerializedFileWriter::new(
                file.reopen().unwrap(),
                schema.clone(),
                std::sync::Arc::new(props),
            )
            .unwrap();
            writer.close().unwrap();
            let refused = PointsReader::open(file.reopen().unwrap())
                .err()
                .map(|e| e.to_string());
            assert!(refused.is_some(), "{footer:?}");
        }
    }

    #[test]
    fn a_footer_larger_than_any_aimem_writes_is_refused_unread() {
        let file = written(&points()[..3]);
        let mut bytes = std::fs::read(file.path()).unwrap();
        let at = bytes.len() - 8;
        bytes[at..at + 4].copy_from_slice(&(64u32 * 1024 * 1024).to_le_bytes());
        std::fs::write(file.path(), &bytes).unwrap();
        let refused = PointsReader::open(file.reopen().unwrap())
            .err()
            .map(|e| e.to_string());
        assert!(refused.is_some_and(|e| e.contains("footer")));
        std::fs::write(file.path(), b"not parquet").unwrap();
        assert!(PointsReader::open(file.reopen().unwrap()).is_err());
    }

    /// pyarrow, a reader aimem has nothing to do with, reads the file as it is: the ids, the
    /// payload JSON, every vector column in its shape. Missing pyarrow fails the test: it is a
    /// test tool `.ci/run` installs.
    #[test]
    fn pyarrow_reads_the_file_as_written() {
        let points = points();
        let file = written(&points);
        let script = r#"
import json, sys
import pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
rows = table.to_pylist()
meta = table.schema.metadata
print(json.dumps({
    "names": table.column_names,
    "format": meta[b"aimem.logical.format"].decode(),
    "rows": len(rows),
    "row1": rows[1],
    "row2": rows[2],
    "row3_indices": rows[3]["vector_bm25"]["indices"],
}))
"#;
        let out = std::process::Command::new("python3")
            .args(["-c", script, file.path().to_str().unwrap()])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "pyarrow failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            seen["names"],
            json!([
                "id",
                "payload",
                "shard_key",
                "vector",
                "vector_f16",
                "vector_bm25",
                "vector_colbert",
                "vector_4"
            ])
        );
        assert_eq!(seen["format"], "1");
        assert_eq!(seen["rows"], points.len());
        let row1 = &seen["row1"];
        assert_eq!(row1["id"], "19c3756f-402f-4856-b279-000000000001");
        assert_eq!(row1["payload"], "{}");
        // As float32 again (JSON text of a float64 need not parse back to the very same bits).
        let dense: Vec<f32> = row1["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(dense, [1.0, -0.5, 1e-30, f32::MAX]);
        assert_eq!(row1["vector_bm25"]["indices"], json!([u32::MAX / 2]));
        // Unsigned: an index past 2^31 reads as itself, not negative.
        assert_eq!(
            seen["row3_indices"],
            json!([u32::MAX / 2, u32::MAX / 2 + 1000, u32::MAX / 2 + 2000])
        );
        assert_eq!(row1["vector_colbert"], json!(null));
        assert_eq!(row1["vector_4"], json!(null));
        let row2 = &seen["row2"];
        assert_eq!(row2["id"], "2");
        let payload: serde_json::Value =
            serde_json::from_str(row2["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload, points[2].payload.clone().unwrap());
        assert_eq!(
            row2["vector_colbert"],
            json!([[1.0, 2.0], [], [3.0, 4.0, 5.0]])
        );
        assert_eq!(row2["vector_4"], json!([]));
    }
}

#[cfg(test)]
mod size_tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::columns::{Columns, VectorKind};
    use super::point::{Point, PointId, VectorValue};
    use super::write::PointsWriter;

    /// The file is no bigger than the raw float32 vectors plus the payloads' JSON: the
    /// levels and the footer cost less than compression saves on the payloads.
    #[test]
    fn the_file_is_no_bigger_than_raw_vectors_and_payload_json() {
        let columns = Columns::new(&[
            ("".into(), VectorKind::Dense),
            ("bm25".into(), VectorKind::Sparse),
        ])
        .unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut writer = PointsWriter::new(file.reopen().unwrap(), columns).unwrap();
        let mut raw = 0u64;
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            seed
        };
        for i in 0..3000u64 {
            let dense: Vec<f32> = (0..768)
                .map(|_| (next() as f32 / u32::MAX as f32) - 0.5)
                .collect();
            let indices: Vec<u32> = (0..12).map(|_| next() % 30_000).collect();
            let values: Vec<f32> = (0..12).map(|_| next() as f32 / u32::MAX as f32).collect();
            let payload = json!({
                "group_id": format!("proj-{}", i % 10),
                "type": "session",
                "content": format!("schema guideline vector rust decision {i} refactor session qdrant snapshot"),
                "timestamp": "2026-02-03T14:30:52Z",
                "decay_score": (i as f64) / 3000.0,
            });
            raw += 768 * 4 + 12 * 8 + serde_json::to_vec(&payload).unwrap().len() as u64;
            let mut vectors = BTreeMap::new();
            vectors.insert("".into(), VectorValue::Dense(dense));
            vectors.insert("bm25".into(), VectorValue::Sparse { indices, values });
            writer
                .push(&Point {
                    id: PointId::Num(i),
                    payload: Some(payload),
                    shard_key: None,
                    vectors,
                })
                .unwrap();
        }
        writer.finish().unwrap();
        let size = file.as_file().metadata().unwrap().len();
        assert!(size <= raw, "{size} bytes for {raw} raw");
    }
}
