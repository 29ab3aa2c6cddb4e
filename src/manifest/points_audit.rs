//! `verify`'s checks of a logical backup's points (docs/logical-format.md), beside
//! [`super::snapshot_archive`] for snapshots: each Parquet file opened inside the backup,
//! its footer and columns against the collection's recorded definition, every row decoded, and
//! the rows counted against the manifest.

use super::audit::{Finding, Kind};
use super::files::BackupFiles;
use super::points::PointsRecord;
use crate::logical::columns::Columns;
use crate::logical::read::PointsReader;

/// Reads the `index`th file of collection `collection`'s points whole. `open_problem_reported`:
/// the checksum check has already said the file cannot be opened.
pub fn deep_check_points_file(
    collection: &str,
    record: &PointsRecord,
    index: usize,
    files: &dyn BackupFiles,
    open_problem_reported: bool,
) -> Option<Finding> {
    let recorded = record.files.get(index)?;
    let file = recorded.file.as_str();
    let finding = |kind, problem: String| Some(Finding::new(file, kind, problem));
    let opened = match files.open(file) {
        Ok(opened) => opened,
        Err(_) if open_problem_reported => return None,
        Err(e) => return finding(Kind::Unreadable, format!("cannot be read ({e})")),
    };
    let reader = match PointsReader::open_from(opened) {
        Ok(reader) => reader,
        Err(e) => {
            return finding(
                Kind::PointsDamaged,
                format!("not a readable points file: {e}"),
            );
        }
    };
    let params = record
        .definition
        .config
        .get("params")
        .cloned()
        .unwrap_or_default();
    match Columns::of_params(&params) {
        Ok(expected) if expected == *reader.columns() => {}
        Ok(_) => {
            return finding(
                Kind::SchemaMismatch,
                format!("its vector columns are not those of `{collection}`'s recorded definition"),
            );
        }
        Err(e) => {
            return finding(
                Kind::SchemaMismatch,
                format!("`{collection}`'s recorded definition has no usable vectors: {e}"),
            );
        }
    }
    if reader.rows() != recorded.rows {
        return finding(
            Kind::PointsDamaged,
            format!(
                "{} rows, the manifest says {}",
                reader.rows(),
                recorded.rows
            ),
        );
    }
    let points = match reader.points() {
        Ok(points) => points,
        Err(e) => return finding(Kind::PointsDamaged, format!("cannot be decoded: {e}")),
    };
    let mut decoded = 0u64;
    for point in points {
        if let Err(e) = point {
            return finding(
                Kind::PointsDamaged,
                format!("row {decoded} cannot be decoded: {e}"),
            );
        }
        decoded += 1;
    }
    if decoded != recorded.rows {
        return finding(
            Kind::PointsDamaged,
            format!(
                "{decoded} rows decoded, the manifest says {}",
                recorded.rows
            ),
        );
    }
    None
}

/// The rows of every file against the collection's recorded count (its range, when it kept
/// changing while it was read).
pub fn rows_against_records(
    collection: &str,
    record: &PointsRecord,
    records: (u64, u64),
) -> Option<Finding> {
    let rows = record.rows();
    let (low, high) = records;
    if (low..=high).contains(&rows) {
        return None;
    }
    Some(Finding::new(
        super::MANIFEST_FILE,
        Kind::PointsDamaged,
        format!(
            "the points files of `{collection}` hold {rows} rows, the manifest records {}",
            match low == high {
                true => low.to_string(),
                false => format!("between {low} and {high}"),
            }
        ),
    ))
}
