//! Points into a logical backup file: buffered column by column for one row group, which is
//! written out once it holds [`ROWS_PER_GROUP`] points (memory stays bounded by the group,
//! whatever the collection's size), then the footer with the format and the vector columns.

use std::io::Write;
use std::sync::Arc;

use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{ByteArray, ByteArrayType, FloatType, Int32Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;

use super::columns::{Columns, VectorKind};
use super::point::{Point, VectorValue};
use super::{FORMAT_KEY, FORMAT_VERSION, LogicalError, VECTORS_KEY};

/// Points per row group: 1,024 points of 768-d float32 vectors are about 3 MiB (and as much
/// again in their levels while the group is built).
pub const ROWS_PER_GROUP: usize = 1024;

/// Writes points into a Parquet file in the logical format.
pub struct PointsWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    columns: Columns,
    group: Group,
    rows: u64,
}

/// One row group's columns, as leaf values and their levels.
#[derive(Default)]
struct Group {
    rows: usize,
    ids: Vec<ByteArray>,
    payload: Text,
    shard_key: Text,
    /// Per vector column, its leaves (a sparse vector has two).
    vectors: Vec<Vec<Leaf>>,
}

/// An optional text column: values and definition levels.
#[derive(Default)]
struct Text {
    values: Vec<ByteArray>,
    def: Vec<i16>,
}

/// A list leaf: values with their definition and repetition levels.
#[derive(Default)]
struct Leaf {
    /// Its values are `ints` (a sparse vector's indices), else `floats`.
    int: bool,
    floats: Vec<f32>,
    ints: Vec<i32>,
    def: Vec<i16>,
    rep: Vec<i16>,
}

impl<W: Write + Send> PointsWriter<W> {
    pub fn new(out: W, columns: Columns) -> Result<PointsWriter<W>, LogicalError> {
        let vectors =
            serde_json::to_string(&columns.0).map_err(|e| LogicalError::Format(e.to_string()))?;
        let props = WriterProperties::builder()
            // zstd at its fastest level: as quick as Snappy on vectors, and it shrinks the
            // payloads' JSON and the ids' text far more.
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
            // Vectors neither repeat nor sort: dictionaries and statistics would only cost.
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_max_row_group_row_count(Some(ROWS_PER_GROUP))
            .set_key_value_metadata(Some(vec![
                KeyValue::new(FORMAT_KEY.to_string(), FORMAT_VERSION.to_string()),
                KeyValue::new(VECTORS_KEY.to_string(), vectors),
            ]))
            .set_created_by(format!("aimem {}", env!("CARGO_PKG_VERSION")))
            .build();
        let file = SerializedFileWriter::new(out, columns.schema()?, Arc::new(props))?;
        let group = Group::for_columns(&columns);
        Ok(PointsWriter {
            file,
            columns,
            group,
            rows: 0,
        })
    }

    /// Adds a point; its vectors must be the columns' (a vector of another name or kind is
    /// refused, a missing one is null).
    pub fn push(&mut self, point: &Point) -> Result<(), LogicalError> {
        if let Some(name) = point
            .vectors
            .keys()
            .find(|name| !self.columns.0.iter().any(|c| &c.name == *name))
        {
            return Err(LogicalError::Format(format!(
                "point {} has vector {}, which the collection's definition does not",
                point.id.to_text(),
                crate::names::shown(name)
            )));
        }
        let group = &mut self.group;
        group
            .ids
            .push(ByteArray::from(point.id.to_text().into_bytes()));
        group.payload.push(point.payload.as_ref())?;
        group.shard_key.push(point.shard_key.as_ref())?;
        for (column, leaves) in self.columns.0.iter().zip(group.vectors.iter_mut()) {
            match (column.kind, point.vectors.get(&column.name)) {
                (_, None) => leaves.iter_mut().for_each(Leaf::null),
                (VectorKind::Dense, Some(VectorValue::Dense(values))) => {
                    leaves[0].list(values.iter().copied(), |leaf, v| leaf.floats.push(v), 1)
                }
                (VectorKind::Sparse, Some(VectorValue::Sparse { indices, values })) => {
                    if indices.len() != values.len() {
                        return Err(LogicalError::Format(format!(
                            "point {}: sparse vector {} has {} indices and {} values",
                            point.id.to_text(),
                            crate::names::shown(&column.name),
                            indices.len(),
                            values.len()
                        )));
                    }
                    let ints = indices.iter().map(|&i| i32::from_ne_bytes(i.to_ne_bytes()));
                    leaves[0].list(ints, |leaf, v| leaf.ints.push(v), 1);
                    leaves[1].list(values.iter().copied(), |leaf, v| leaf.floats.push(v), 1);
                }
                (VectorKind::Multi, Some(VectorValue::Multi(vectors))) => leaves[0].lists(vectors),
                (kind, Some(_)) => {
                    return Err(LogicalError::Format(format!(
                        "point {}: vector {} is not a {kind:?} vector as the collection's definition says",
                        point.id.to_text(),
                        crate::names::shown(&column.name)
                    )));
                }
            }
        }
        group.rows += 1;
        self.rows += 1;
        if group.rows >= ROWS_PER_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered row group out.
    fn flush(&mut self) -> Result<(), LogicalError> {
        if self.group.rows == 0 {
            return Ok(());
        }
        let group = std::mem::replace(&mut self.group, Group::for_columns(&self.columns));
        let mut writer = self.file.next_row_group()?;
        let mut leaves = group.leaves();
        while let Some(mut column) = writer.next_column()? {
            let Some(leaf) = leaves.next() else {
                return Err(LogicalError::Format("more columns than values".into()));
            };
            match leaf {
                LeafData::Ids(ids) => {
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&ids, None, None)?;
                }
                LeafData::Text(text) => {
                    column.typed::<ByteArrayType>().write_batch(
                        &text.values,
                        Some(&text.def),
                        None,
                    )?;
                }
                LeafData::Floats(leaf) => {
                    column.typed::<FloatType>().write_batch(
                        &leaf.floats,
                        Some(&leaf.def),
                        Some(&leaf.rep),
                    )?;
                }
                LeafData::Ints(leaf) => {
                    column.typed::<Int32Type>().write_batch(
                        &leaf.ints,
                        Some(&leaf.def),
                        Some(&leaf.rep),
                    )?;
                }
            }
            column.close()?;
        }
        writer.close()?;
        Ok(())
    }

    /// Writes what is buffered and the footer; returns the points written.
    pub fn finish(mut self) -> Result<(u64, W), LogicalError> {
        self.flush()?;
        let rows = self.rows;
        let out = self.file.into_inner()?;
        Ok((rows, out))
    }
}

impl Group {
    fn for_columns(columns: &Columns) -> Group {
        Group {
            vectors: columns
                .0
                .iter()
                .map(|c| match c.kind {
                    VectorKind::Sparse => vec![
                        Leaf {
                            int: true,
                            ..Leaf::default()
                        },
                        Leaf::default(),
                    ],
                    VectorKind::Dense | VectorKind::Multi => vec![Leaf::default()],
                })
                .collect(),
            ..Group::default()
        }
    }

    /// The leaves in the order of the schema's columns.
    fn leaves(self) -> impl Iterator<Item = LeafData> {
        let vectors = self
            .vectors
            .into_iter()
            .flatten()
            .map(|leaf| match leaf.int {
                true => LeafData::Ints(leaf),
                false => LeafData::Floats(leaf),
            });
        [
            LeafData::Ids(self.ids),
            LeafData::Text(self.payload),
            LeafData::Text(self.shard_key),
        ]
        .into_iter()
        .chain(vectors)
    }
}

enum LeafData {
    Ids(Vec<ByteArray>),
    Text(Text),
    Floats(Leaf),
    Ints(Leaf),
}

impl Text {
    fn push(&mut self, value: Option<&serde_json::Value>) -> Result<(), LogicalError> {
        match value {
            Some(value) => {
                let text =
                    serde_json::to_vec(value).map_err(|e| LogicalError::Format(e.to_string()))?;
                self.values.push(ByteArray::from(text));
                self.def.push(1);
            }
            None => self.def.push(0),
        }
        Ok(())
    }
}

impl Leaf {
    /// A point without this vector.
    fn null(&mut self) {
        self.def.push(0);
        self.rep.push(0);
    }

    /// A list of values under an optional column: `base` is the definition level of the
    /// column being present (its elements are one deeper).
    fn list<T>(
        &mut self,
        values: impl Iterator<Item = T>,
        mut put: impl FnMut(&mut Leaf, T),
        base: i16,
    ) {
        let mut first = true;
        for value in values {
            put(self, value);
            self.def.push(base + 1);
            self.rep.push(if first { 0 } else { 1 });
            first = false;
        }
        if first {
            // Present and empty.
            self.def.push(base);
            self.rep.push(0);
        }
    }

    /// A list of lists of floats (a multivector).
    fn lists(&mut self, vectors: &[Vec<f32>]) {
        if vectors.is_empty() {
            self.def.push(1);
            self.rep.push(0);
            return;
        }
        for (i, vector) in vectors.iter().enumerate() {
            let starts = if i == 0 { 0 } else { 1 };
            if vector.is_empty() {
                self.def.push(2);
                self.rep.push(starts);
                continue;
            }
            for (j, &value) in vector.iter().enumerate() {
                self.floats.push(value);
                self.def.push(3);
                self.rep.push(if j == 0 { starts } else { 2 });
            }
        }
    }
}
