//! Points into a logical backup file: buffered column by column for one row group, which is
//! written out once it holds [`ROWS_PER_GROUP`] points (memory stays bounded by the group,
//! whatever the collection's size), then the footer with the format and the vector columns.

use std::io::Write;
use std::sync::Arc;

use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{ByteArray, ByteArrayType, FloatType, Int32Type};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;

use super::columns::{Columns, VectorKind};
use super::point::{Point, VectorValue};
use super::read::MAX_POINT_LEVELS;
use super::{FORMAT_KEY, FORMAT_VERSION, LogicalError, VECTORS_KEY};

/// Points per row group: 512 points of 768-d float32 vectors are 1.5 MiB, held until the
/// group is written (several ranges are written at once, each with its group). Fewer would
/// make footers longer: each group adds about 70 bytes per column to it.
pub const ROWS_PER_GROUP: usize = 512;

/// The rows one file should hold at most so that its footer stays well inside what the
/// reader takes ([`super::MAX_FOOTER`]), given the number of leaf columns a file of `columns`
/// has: each row group adds about 70 bytes per leaf to the footer.
pub fn rows_per_file(columns: &Columns) -> u64 {
    const FOOTER_BUDGET: u64 = 512 * 1024;
    const PER_LEAF_PER_GROUP: u64 = 100;
    let leaves = 3 + columns
        .0
        .iter()
        .map(|c| match c.kind {
            VectorKind::Sparse => 2,
            VectorKind::Dense | VectorKind::Multi => 1,
        })
        .sum::<u64>();
    (FOOTER_BUDGET / (PER_LEAF_PER_GROUP * leaves)).max(1) * ROWS_PER_GROUP as u64
}

/// A data page's size before compression: the writer holds one page of a column, encoded and
/// compressed, while it writes it.
const PAGE_BYTES: usize = 256 * 1024;

/// The levels a point's vectors take in the file, every vector column together, as the reader
/// counts them: one per value, and one per null or empty list (a sparse vector's two lists
/// each).
pub(super) fn point_levels(columns: &Columns, point: &Point) -> usize {
    let list = |values: usize| values.max(1);
    columns
        .0
        .iter()
        .map(
            |column| match (column.kind, point.vectors.get(&column.name)) {
                (VectorKind::Sparse, None) => 2,
                (_, None) => 1,
                (_, Some(VectorValue::Dense(values))) => list(values.len()),
                (_, Some(VectorValue::Sparse { indices, values })) => {
                    list(indices.len()) + list(values.len())
                }
                (_, Some(VectorValue::Multi(vectors))) => match vectors.is_empty() {
                    true => 1,
                    false => vectors.iter().map(|v| list(v.len())).sum(),
                },
            },
        )
        .fold(0, usize::saturating_add)
}

/// Writes points into a Parquet file in the logical format.
pub struct PointsWriter<W: Write + Send> {
    file: SerializedFileWriter<Counted<W>>,
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

/// A list leaf: its values, and what its levels are made of. A dense or sparse vector's leaf
/// keeps each row's list length and makes the levels as it is written, a chunk of rows at a
/// time (kept whole, they would take as much memory as the vectors themselves); a
/// multivector's leaf keeps its levels.
#[derive(Default)]
struct Leaf {
    /// Its values are `ints` (a sparse vector's indices), else `floats`.
    int: bool,
    /// A multivector's leaf: `def` and `rep` hold its levels, `lengths` is unused.
    multi: bool,
    floats: Vec<f32>,
    ints: Vec<i32>,
    /// Per row, its list's length (`None`: the row has no such vector).
    lengths: Vec<Option<u32>>,
    def: Vec<i16>,
    rep: Vec<i16>,
}

/// Values written per call while a list leaf's levels are made (their levels' buffers stay
/// this small).
const LEVELS_CHUNK: usize = 64 * 1024;

impl Leaf {
    /// Writes the leaf's `values` through `write` (a typed column writer's `write_batch`),
    /// with its levels.
    fn write_to<V>(
        &self,
        values: &[V],
        mut write: impl FnMut(&[V], &[i16], &[i16]) -> Result<usize, ParquetError>,
    ) -> Result<(), LogicalError> {
        if self.multi {
            write(values, &self.def, &self.rep)?;
            return Ok(());
        }
        let (mut def, mut rep) = (Vec::new(), Vec::new());
        let mut written = 0usize;
        let mut taken = 0usize;
        for length in &self.lengths {
            // Every row starts a new list: its first level repeats nothing.
            rep.push(0);
            match *length {
                // A row without the vector.
                None => def.push(0),
                // A row with an empty list: the column is there, no element is.
                Some(0) => def.push(1),
                Some(n) => {
                    let n = n as usize;
                    def.extend(std::iter::repeat_n(2, n));
                    rep.extend(std::iter::repeat_n(1, n - 1));
                    taken += n;
                }
            }
            if def.len() >= LEVELS_CHUNK {
                write(values.get(written..taken).ok_or_else(short)?, &def, &rep)?;
                written = taken;
                def.clear();
                rep.clear();
            }
        }
        if !def.is_empty() {
            write(values.get(written..taken).ok_or_else(short)?, &def, &rep)?;
            written = taken;
        }
        match written == values.len() {
            true => Ok(()),
            false => Err(short()),
        }
    }
}

/// The file's writer, counting what reaches it (the footer's length is what the file grew by
/// when it was finished).
struct Counted<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A list leaf whose lengths and values disagree (never, as `push` builds them).
fn short() -> LogicalError {
    LogicalError::Format("a vector column's lengths and values disagree".into())
}

impl<W: Write + Send> PointsWriter<W> {
    pub fn new(out: W, columns: Columns) -> Result<PointsWriter<W>, LogicalError> {
        let vectors =
            serde_json::to_string(&columns.0).map_err(|e| LogicalError::Format(e.to_string()))?;
        let props = WriterProperties::builder()
            // zstd at its fastest level: it shrinks the payloads' JSON and the ids' text.
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
            // Vectors neither repeat nor sort: dictionaries and statistics would only cost.
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_max_row_group_row_count(Some(ROWS_PER_GROUP))
            .set_data_page_size_limit(PAGE_BYTES)
            .set_key_value_metadata(Some(vec![
                KeyValue::new(FORMAT_KEY.to_string(), FORMAT_VERSION.to_string()),
                KeyValue::new(VECTORS_KEY.to_string(), vectors),
            ]))
            .set_created_by(format!("aimem {}", env!("CARGO_PKG_VERSION")));
        // A dense vector's values are stored as they are: zstd makes random floats only 7%
        // smaller, for a tenth of a backup's CPU.
        let props = columns
            .0
            .iter()
            .filter(|c| c.kind == VectorKind::Dense)
            .fold(props, |props, c| {
                props.set_column_compression(
                    parquet::schema::types::ColumnPath::new(vec![
                        c.column.clone(),
                        "list".into(),
                        "element".into(),
                    ]),
                    Compression::UNCOMPRESSED,
                )
            })
            .build();
        let out = Counted {
            inner: out,
            written: 0,
        };
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
    /// refused, a missing one is null), and take at most [`MAX_POINT_LEVELS`] levels, as the
    /// reader takes (a bigger point is refused: a backup of it could not be restored).
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
        // A point the reader would refuse is refused here: the backup fails now, not its
        // restore.
        let levels = point_levels(&self.columns, point);
        if levels > MAX_POINT_LEVELS {
            return Err(LogicalError::Unrestorable(format!(
                "point {}: its vectors take {levels} values and lists, more than the \
                 {MAX_POINT_LEVELS} aimem restores of one point",
                point.id.to_text()
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
                    let leaf = &mut leaves[0];
                    if leaf.floats.capacity() == 0 {
                        // A group's worth at once (up to 16 MiB): doubling as it fills would
                        // leave up to a third of it unused, and copy it on the way.
                        leaf.floats
                            .reserve_exact((ROWS_PER_GROUP * values.len()).min(1 << 22));
                    }
                    leaf.list(values.iter().copied(), |leaf, v| leaf.floats.push(v))
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
                    leaves[0].list(ints, |leaf, v| leaf.ints.push(v));
                    leaves[1].list(values.iter().copied(), |leaf, v| leaf.floats.push(v));
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
        let mut writer = self.file.next_row_group()?;
        let mut leaves = self.group.leaves();
        while let Some(mut column) = writer.next_column()? {
            let Some(leaf) = leaves.next() else {
                return Err(LogicalError::Format("more columns than values".into()));
            };
            match leaf {
                LeafData::Ids(ids) => {
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(ids, None, None)?;
                }
                LeafData::Text(text) => {
                    column.typed::<ByteArrayType>().write_batch(
                        &text.values,
                        Some(&text.def),
                        None,
                    )?;
                }
                LeafData::Floats(leaf) => {
                    let typed = column.typed::<FloatType>();
                    leaf.write_to(&leaf.floats, |v, d, r| {
                        typed.write_batch(v, Some(d), Some(r))
                    })?;
                }
                LeafData::Ints(leaf) => {
                    let typed = column.typed::<Int32Type>();
                    leaf.write_to(&leaf.ints, |v, d, r| typed.write_batch(v, Some(d), Some(r)))?;
                }
            }
            column.close()?;
        }
        drop(leaves);
        writer.close()?;
        // Its buffers are kept for the next group: allocated once per file, not per group.
        self.group.clear();
        Ok(())
    }

    /// Writes what is buffered and the footer; returns the points written.
    pub fn finish(mut self) -> Result<(u64, W), LogicalError> {
        self.flush()?;
        let before = self.file.bytes_written() as u64;
        let out = self.file.into_inner()?;
        // A footer the reader would refuse (a file of more rows than `rows_per_file`, as a
        // huge shard key's) fails the backup now rather than its restore.
        let footer = out.written.saturating_sub(before);
        if footer > super::MAX_FOOTER {
            return Err(LogicalError::Format(format!(
                "its Parquet footer would be {footer} bytes, more than the {} aimem reads back: {} points are too many for one file",
                super::MAX_FOOTER,
                self.rows
            )));
        }
        Ok((self.rows, out.inner))
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
                    VectorKind::Dense => vec![Leaf::default()],
                    VectorKind::Multi => vec![Leaf {
                        multi: true,
                        ..Leaf::default()
                    }],
                })
                .collect(),
            ..Group::default()
        }
    }

    /// The leaves in the order of the schema's columns.
    fn leaves(&self) -> impl Iterator<Item = LeafData<'_>> {
        let vectors = self.vectors.iter().flatten().map(|leaf| match leaf.int {
            true => LeafData::Ints(leaf),
            false => LeafData::Floats(leaf),
        });
        [
            LeafData::Ids(&self.ids),
            LeafData::Text(&self.payload),
            LeafData::Text(&self.shard_key),
        ]
        .into_iter()
        .chain(vectors)
    }

    /// Empty again, its buffers kept.
    fn clear(&mut self) {
        self.rows = 0;
        self.ids.clear();
        for text in [&mut self.payload, &mut self.shard_key] {
            text.values.clear();
            text.def.clear();
        }
        for leaf in self.vectors.iter_mut().flatten() {
            leaf.floats.clear();
            leaf.ints.clear();
            leaf.lengths.clear();
            leaf.def.clear();
            leaf.rep.clear();
        }
    }
}

enum LeafData<'g> {
    Ids(&'g [ByteArray]),
    Text(&'g Text),
    Floats(&'g Leaf),
    Ints(&'g Leaf),
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
        if self.multi {
            self.def.push(0);
            self.rep.push(0);
        } else {
            self.lengths.push(None);
        }
    }

    /// A list of values (a dense vector, a sparse vector's indices or values).
    fn list<T>(
        &mut self,
        values: impl ExactSizeIterator<Item = T>,
        mut put: impl FnMut(&mut Leaf, T),
    ) {
        // (A list longer than u32 cannot come in a page; were it to, `write_to` would find
        // the lengths and values disagree.)
        let length = u32::try_from(values.len()).unwrap_or(u32::MAX);
        for value in values {
            put(self, value);
        }
        self.lengths.push(Some(length));
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
