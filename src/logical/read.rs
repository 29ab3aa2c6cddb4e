//! A logical backup file back into points. The footer must name a format this aimem knows
//! and vector columns whose schema is exactly the file's; then each row becomes a point, a
//! row group at a time.

use std::collections::BTreeMap;
use std::fs::File;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use serde_json::Value;

use super::columns::{Columns, VectorColumn, VectorKind};
use super::point::{Point, PointId, VectorValue};
use super::{FORMAT_KEY, FORMAT_VERSION, LogicalError, VECTORS_KEY};

/// The most bytes the footer's vector columns may take as JSON.
const MAX_VECTORS_JSON: usize = 64 * 1024;
/// The most bytes a file's Parquet footer may take (aimem's are a few KiB for any number of
/// rows): a crafted file must not make the reader decode megabytes of metadata.
const MAX_FOOTER: u64 = 1024 * 1024;

/// The most bytes one column chunk may hold decompressed: a row group of 2,048 points with a
/// 4,096-d vector is 32 MiB, so this leaves room for any real collection and stops a crafted
/// footer from sizing a read after what it claims.
const MAX_COLUMN_CHUNK: i64 = 512 * 1024 * 1024;

/// An opened logical backup file.
pub struct PointsReader {
    file: SerializedFileReader<File>,
    columns: Columns,
}

impl PointsReader {
    /// Opens `file` and checks its footer and schema.
    pub fn open(file: File) -> Result<PointsReader, LogicalError> {
        check_footer_size(&file)?;
        let length = i64::try_from(file.metadata()?.len()).unwrap_or(i64::MAX);
        let file = SerializedFileReader::new(file)?;
        check_chunk_sizes(&file, length)?;
        let meta = file.metadata().file_metadata();
        let footer = |key: &str| {
            meta.key_value_metadata()
                .and_then(|kv| kv.iter().find(|k| k.key == key))
                .and_then(|k| k.value.clone())
        };
        let format = footer(FORMAT_KEY).ok_or_else(|| {
            LogicalError::Format(format!(
                "it has no `{FORMAT_KEY}` in its footer: not an aimem logical backup"
            ))
        })?;
        match format.parse::<u32>() {
            Ok(FORMAT_VERSION) => {}
            Ok(later) if later > FORMAT_VERSION => {
                return Err(LogicalError::Format(format!(
                    "it is in logical format {later}, newer than this aimem reads ({FORMAT_VERSION}): use a later aimem"
                )));
            }
            _ => {
                return Err(LogicalError::Format(format!(
                    "its logical format is {}, which no aimem wrote",
                    crate::names::shown(&format)
                )));
            }
        }
        let vectors = footer(VECTORS_KEY).unwrap_or_default();
        if vectors.len() > MAX_VECTORS_JSON {
            return Err(LogicalError::Format(format!(
                "its footer's vector list is larger than {MAX_VECTORS_JSON} bytes"
            )));
        }
        let listed: Vec<VectorColumn> = serde_json::from_str(&vectors)
            .map_err(|e| LogicalError::Format(format!("its footer's vector list: {e}")))?;
        let named: Vec<(String, VectorKind)> =
            listed.iter().map(|c| (c.name.clone(), c.kind)).collect();
        let columns = Columns::new(&named)?;
        if columns.0 != listed {
            return Err(LogicalError::Format(
                "its footer names vector columns other than format 1 gives those vectors".into(),
            ));
        }
        if *meta.schema() != *columns.schema()? {
            return Err(LogicalError::Format(
                "its columns are not those its footer describes".into(),
            ));
        }
        Ok(PointsReader { file, columns })
    }

    /// The vector columns the file has.
    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    /// The number of points (rows) the footer counts.
    pub fn rows(&self) -> u64 {
        u64::try_from(self.file.metadata().file_metadata().num_rows()).unwrap_or(0)
    }

    /// Every point, in the file's order.
    pub fn points(
        &self,
    ) -> Result<impl Iterator<Item = Result<Point, LogicalError>> + '_, LogicalError> {
        let rows = self.file.get_row_iter(None)?;
        Ok(rows.map(move |row| point(&row?, &self.columns)))
    }
}

/// A Parquet file ends with its footer's length (4 bytes, little-endian) and `PAR1`: that
/// length is checked against [`MAX_FOOTER`] before the footer is read.
fn check_footer_size(file: &File) -> Result<(), LogicalError> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    if len < 12 {
        return Err(LogicalError::Format(
            "it is too short to be a Parquet file".into(),
        ));
    }
    let mut tail = [0u8; 8];
    file.read_exact_at(&mut tail, len - 8)?;
    if &tail[4..] != b"PAR1" {
        return Err(LogicalError::Format(
            "it does not end as a Parquet file does".into(),
        ));
    }
    let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer > MAX_FOOTER {
        return Err(LogicalError::Format(format!(
            "its Parquet footer says it is {footer} bytes, more than the {MAX_FOOTER} aimem reads"
        )));
    }
    Ok(())
}

/// Every column chunk lies within the file and holds at most [`MAX_COLUMN_CHUNK`] bytes
/// decompressed, as the footer says: checked before any is read.
fn check_chunk_sizes(file: &SerializedFileReader<File>, length: i64) -> Result<(), LogicalError> {
    for group in file.metadata().row_groups() {
        for chunk in group.columns() {
            let (start, size) = chunk.byte_range();
            let end = start.checked_add(size);
            let inside = end.is_some_and(|end| i64::try_from(end).is_ok_and(|end| end <= length));
            if !inside
                || chunk.compressed_size() < 0
                || !(0..=MAX_COLUMN_CHUNK).contains(&chunk.uncompressed_size())
            {
                return Err(LogicalError::Format(format!(
                    "its footer gives column {} a size or place that does not fit the file",
                    chunk.column_path()
                )));
            }
        }
    }
    Ok(())
}

/// The point a row holds (its fields are in the schema's order).
fn point(row: &Row, columns: &Columns) -> Result<Point, LogicalError> {
    let bad = |what: &str| LogicalError::Format(format!("a row has {what}"));
    let mut fields = row.get_column_iter().map(|(_, field)| field);
    let id = match fields.next() {
        Some(Field::Str(text)) => PointId::from_text(text)
            .ok_or_else(|| bad("an id that is neither an integer nor a UUID"))?,
        _ => return Err(bad("no id")),
    };
    let mut json = |what: &str| -> Result<Option<Value>, LogicalError> {
        match fields.next() {
            Some(Field::Null) => Ok(None),
            Some(Field::Str(text)) => serde_json::from_str(text)
                .map(Some)
                .map_err(|e| bad(&format!("a {what} that is not JSON ({e})"))),
            Some(Field::Bytes(bytes)) => serde_json::from_slice(bytes.data())
                .map(Some)
                .map_err(|e| bad(&format!("a {what} that is not JSON ({e})"))),
            _ => Err(bad(&format!("no {what}"))),
        }
    };
    let payload = json("payload")?;
    let shard_key = json("shard key")?;
    let mut vectors = BTreeMap::new();
    for column in &columns.0 {
        let field = fields
            .next()
            .ok_or_else(|| bad("fewer vector columns than its footer lists"))?;
        if let Some(vector) = vector(field, column.kind).ok_or_else(|| {
            bad(&format!(
                "a vector {} that is not {:?}",
                crate::names::shown(&column.name),
                column.kind
            ))
        })? {
            vectors.insert(column.name.clone(), vector);
        }
    }
    Ok(Point {
        id,
        payload,
        shard_key,
        vectors,
    })
}

/// A vector column's field: `Some(None)` when the point has no such vector, `None` when the
/// field is not of `kind`'s shape.
fn vector(field: &Field, kind: VectorKind) -> Option<Option<VectorValue>> {
    if let Field::Null = field {
        return Some(None);
    }
    let value = match kind {
        VectorKind::Dense => VectorValue::Dense(floats(field)?),
        VectorKind::Multi => match field {
            Field::ListInternal(list) => VectorValue::Multi(
                list.elements()
                    .iter()
                    .map(floats)
                    .collect::<Option<Vec<_>>>()?,
            ),
            _ => return None,
        },
        VectorKind::Sparse => {
            let Field::Group(group) = field else {
                return None;
            };
            let mut parts = group.get_column_iter().map(|(_, f)| f);
            let indices = match parts.next()? {
                Field::ListInternal(list) => list
                    .elements()
                    .iter()
                    .map(|f| match f {
                        Field::UInt(i) => Some(*i),
                        _ => None,
                    })
                    .collect::<Option<Vec<u32>>>()?,
                _ => return None,
            };
            let values = floats(parts.next()?)?;
            VectorValue::Sparse { indices, values }
        }
    };
    Some(Some(value))
}

fn floats(field: &Field) -> Option<Vec<f32>> {
    match field {
        Field::ListInternal(list) => list
            .elements()
            .iter()
            .map(|f| match f {
                Field::Float(v) => Some(*v),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}
