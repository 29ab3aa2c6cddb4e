//! A logical backup file back into points. The footer must name a format this aimem knows
//! and vector columns whose schema is exactly the file's; then the rows are decoded into a
//! [`Chunk`] of at most [`CHUNK_ROWS`] rows, row by row across the columns, and each row is
//! handed out as a [`PointView`] that borrows from the chunk's buffers (or made into an owned
//! [`Point`]). No tree of the row is built.
//!
//! What a chunk holds is bounded, whatever the file says:
//! - each page's levels are counted from its header before the page is decompressed or a
//!   level of it decoded, and a page is refused unread when the pages fetched while one row
//!   is read, or those fetched and not decoded yet, would hold more than [`ROW_PAGE_LEVELS`]
//!   levels, every column together. A row's levels come from pages fetched for it and from
//!   the rest of pages fetched before, so at most twice that is decoded for one row, whatever
//!   its pages' headers claim (a run-length encoded page of a few bytes may claim billions);
//! - a dictionary page is refused unread: its header gives no levels to count, and the
//!   Parquet crate would make room for as many entries as it claims (up to 2^31, gigabytes
//!   from a file of kilobytes). aimem writes none (`write.rs` turns dictionaries off);
//! - a row of more than [`MAX_POINT_LEVELS`] levels is refused once read;
//! - no row is added to a chunk that holds [`CHUNK_LEVELS`] levels already.
//!
//! What is not bounded by these: the bytes of a page. Each column reader holds its current
//! page, which the Parquet crate decompresses whole into a buffer of the size the page's
//! header gives, an `i32`: up to 2 GiB a page, whatever the file's size, in a column chunk
//! the file says is compressed (one stored uncompressed, as aimem stores a dense vector's
//! values, is read as it lies in the file). The footer's checks ([`check_chunk_sizes`]) bound
//! where a column chunk's bytes lie, not what its pages decompress to.
//!
//! And a chunk's byte-array values (ids, payloads, shard keys) are slices of the pages they
//! were decoded from, not copies, so each keeps its whole page alive while the chunk holds
//! it: up to 64 pages a column (one a row of [`CHUNK_ROWS`]) beside the page being read, each
//! as big as its header says. Their bytes are not counted in [`CHUNK_LEVELS`], which counts
//! levels only: a payload of a megabyte is one level.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parquet::column::page::{Page, PageMetadata, PageReader};
use parquet::column::reader::ColumnReaderImpl;
use parquet::data_type::{ByteArray, ByteArrayType, DataType, FloatType, Int32Type};
use parquet::errors::ParquetError;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::Value;

use super::columns::{Columns, VectorColumn, VectorKind};
use super::point::{Point, PointId, VectorValue};
use super::{FORMAT_KEY, FORMAT_VERSION, LogicalError, MAX_FOOTER, VECTORS_KEY};
use crate::manifest::files::Opened;

/// The most bytes the footer's vector columns may take as JSON.
const MAX_VECTORS_JSON: usize = 64 * 1024;

/// The most bytes the footer may say one column chunk holds decompressed (a row group of 2,048
/// points with a 4,096-d vector is 32 MiB). A sanity check of the footer only: the Parquet
/// crate never sizes anything after this number (it reads a chunk's compressed bytes, which
/// must lie within the file, and decompresses each page to the size its own header gives),
/// so it bounds no memory; a footer that claims more is refused as not aimem's.
const MAX_COLUMN_CHUNK: i64 = 512 * 1024 * 1024;

/// Rows decoded at once, at most: 64 rows of a 768-d vector are 192 KiB of values (and as
/// much of levels), whatever the size of the row group.
pub const CHUNK_ROWS: usize = 64;

/// The most levels one row may take, every vector column together: one per value, and one
/// per null or empty list. Not a limit of Qdrant's but aimem's chosen bound for one point,
/// applied alike by the writer (a backup of a bigger point fails) and the reader. It is
/// generous: 8 Mi levels are 128 times the largest dense vector Qdrant takes (65,535
/// dimensions) and 32 MiB of float32 values, as much as Qdrant takes in one request by
/// default (that limit alone would allow more: as JSON a value takes 2 bytes at the least,
/// `0,`).
pub const MAX_POINT_LEVELS: usize = 8 << 20;

/// The most levels the pages fetched while one row is read may hold, every column together,
/// and the most the pages fetched and not decoded yet may hold: the row's own pages and the
/// page after each column's (a page holds whole rows, but the reader learns where a row ends
/// from the next one), each at most a point's worth, and 4 Mi for the other rows those pages
/// hold (aimem writes pages of 256 KiB, 64 Ki float values).
const ROW_PAGE_LEVELS: usize = 2 * MAX_POINT_LEVELS + (4 << 20);

/// A chunk takes no more rows once it holds this many levels, every column together (8 MiB
/// of them with their float values, a multivector's lists aside): a chunk of big rows has
/// fewer than [`CHUNK_ROWS`].
const CHUNK_LEVELS: usize = 1 << 20;

/// An opened logical backup file.
pub struct PointsReader {
    file: SerializedFileReader<Opened>,
    columns: Columns,
}

impl PointsReader {
    /// Opens `file` and checks its footer and schema.
    pub fn open(file: File) -> Result<PointsReader, LogicalError> {
        PointsReader::open_from(Opened::file(file)?)
    }

    /// [`Self::open`] of a file wherever it is (an object in a bucket, read in place).
    pub fn open_from(file: Opened) -> Result<PointsReader, LogicalError> {
        check_footer_size(&file)?;
        let length = i64::try_from(file.len()).unwrap_or(i64::MAX);
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

    /// The file's rows, [`CHUNK_ROWS`] at a time, in the file's order.
    pub fn chunks(&self) -> Chunks<'_> {
        Chunks {
            reader: self,
            group: 0,
            left: 0,
            chunk: Chunk::new(&self.columns),
            failed: false,
        }
    }

    /// Every point, in the file's order.
    pub fn points(
        &self,
    ) -> Result<impl Iterator<Item = Result<Point, LogicalError>> + '_, LogicalError> {
        let mut chunks = self.chunks();
        let mut at = 0;
        let mut loaded = false;
        Ok(std::iter::from_fn(move || {
            loop {
                if loaded && at < chunks.chunk().rows() {
                    at += 1;
                    return Some(chunks.chunk().point(at - 1).and_then(|p| p.to_point()));
                }
                match chunks.advance() {
                    Ok(true) => {
                        loaded = true;
                        at = 0;
                    }
                    Ok(false) => return None,
                    Err(e) => return Some(Err(e)),
                }
            }
        }))
    }
}

/// Reads a file's row groups chunk by chunk into one [`Chunk`] whose buffers are reused.
pub struct Chunks<'r> {
    reader: &'r PointsReader,
    /// The next row group to open.
    group: usize,
    /// Rows of the open row group not decoded yet.
    left: usize,
    chunk: Chunk,
    /// After an error nothing more is read.
    failed: bool,
}

impl Chunks<'_> {
    /// Decodes the next rows into [`Chunks::chunk`]; false at the end of the file.
    pub fn advance(&mut self) -> Result<bool, LogicalError> {
        if self.failed {
            return Ok(false);
        }
        let advanced = self.next_rows();
        if advanced.is_err() {
            self.failed = true;
        }
        advanced
    }

    /// The rows the last [`Chunks::advance`] decoded.
    pub fn chunk(&self) -> &Chunk {
        &self.chunk
    }

    fn next_rows(&mut self) -> Result<bool, LogicalError> {
        while self.left == 0 {
            let metadata = self.reader.file.metadata();
            if self.group >= metadata.num_row_groups() {
                self.chunk.rows = 0;
                return Ok(false);
            }
            let rows = metadata.row_group(self.group).num_rows();
            let group = self.reader.file.get_row_group(self.group)?;
            self.group += 1;
            self.left =
                usize::try_from(rows).map_err(|_| bad("a row group of fewer than no rows"))?;
            self.chunk.open(group.as_ref())?;
        }
        let rows = self.chunk.decode(self.left.min(CHUNK_ROWS))?;
        self.left -= rows;
        Ok(true)
    }
}

/// What the pages of the open row group may hold, shared by every column reader of it.
#[derive(Default)]
struct Budget {
    /// Levels the pages fetched for the row being read may hold still ([`ROW_PAGE_LEVELS`]
    /// a row).
    row_left: AtomicUsize,
    /// Levels of the pages fetched and not decoded yet, every column together: at most
    /// [`ROW_PAGE_LEVELS`] too, so what a row decodes of pages fetched before it is bounded.
    outstanding: AtomicUsize,
    /// A page was refused: the read's error is that.
    exceeded: AtomicBool,
    /// A dictionary page was refused: the read's error is that.
    dictionary: AtomicBool,
}

impl Budget {
    /// A row begins: its pages may hold [`ROW_PAGE_LEVELS`].
    fn new_row(&self) {
        self.row_left.store(ROW_PAGE_LEVELS, Ordering::Relaxed);
        self.exceeded.store(false, Ordering::Relaxed);
        self.dictionary.store(false, Ordering::Relaxed);
    }

    /// A page of `levels` levels is to be fetched: taken from both counts, or refused.
    fn take(&self, levels: usize) -> bool {
        let row_left = self.row_left.load(Ordering::Relaxed);
        let outstanding = self.outstanding.load(Ordering::Relaxed);
        if levels > row_left || levels > ROW_PAGE_LEVELS - outstanding.min(ROW_PAGE_LEVELS) {
            self.exceeded.store(true, Ordering::Relaxed);
            return false;
        }
        self.row_left.store(row_left - levels, Ordering::Relaxed);
        self.outstanding
            .store(outstanding + levels, Ordering::Relaxed);
        true
    }

    /// `levels` levels of the pages fetched were decoded.
    fn decoded(&self, levels: usize) {
        let outstanding = self.outstanding.load(Ordering::Relaxed);
        self.outstanding
            .store(outstanding.saturating_sub(levels), Ordering::Relaxed);
    }
}

/// A column's pages, each counted against the [`Budget`] from its header's number of levels
/// before it is decompressed: one of more than are left is refused unread, and so is any
/// dictionary page (its header gives no levels, and its entries are allocated as it claims).
struct Budgeted {
    pages: Box<dyn PageReader>,
    budget: Arc<Budget>,
}

impl PageReader for Budgeted {
    fn get_next_page(&mut self) -> parquet::errors::Result<Option<Page>> {
        let next = self.pages.peek_next_page()?;
        if next.as_ref().is_some_and(|page| page.is_dict) {
            self.budget.dictionary.store(true, Ordering::Relaxed);
            return Err(ParquetError::General(
                "a dictionary page, which aimem never writes".into(),
            ));
        }
        if let Some(levels) = next.and_then(|page| page.num_levels)
            && !self.budget.take(levels)
        {
            return Err(ParquetError::General(format!(
                "a page of {levels} levels, more than its row may take"
            )));
        }
        self.pages.get_next_page()
    }

    fn peek_next_page(&mut self) -> parquet::errors::Result<Option<PageMetadata>> {
        self.pages.peek_next_page()
    }

    fn skip_next_page(&mut self) -> parquet::errors::Result<()> {
        self.pages.skip_next_page()
    }

    fn at_record_boundary(&mut self) -> parquet::errors::Result<bool> {
        self.pages.at_record_boundary()
    }
}

impl Iterator for Budgeted {
    type Item = parquet::errors::Result<Page>;

    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

fn bad(what: &str) -> LogicalError {
    LogicalError::Format(format!("a row has {what}"))
}

/// One leaf column of the open row group: its reader and the levels and values of the
/// chunk's rows.
struct Leaf<T: DataType> {
    reader: Option<ColumnReaderImpl<T>>,
    def: Vec<i16>,
    rep: Vec<i16>,
    values: Vec<T::T>,
}

impl<T: DataType> Leaf<T> {
    fn new() -> Self {
        Leaf {
            reader: None,
            def: Vec::new(),
            rep: Vec::new(),
            values: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.def.clear();
        self.rep.clear();
        self.values.clear();
    }

    /// The levels decoded (a required column's values are its levels).
    fn levels(&self) -> usize {
        self.def.len().max(self.values.len())
    }

    /// Decodes the next row (record) after those decoded; a column that holds no more fails,
    /// and so does one whose pages are more than the `budget` left to the row.
    fn decode_row(&mut self, column: &str, budget: &Budget) -> Result<(), LogicalError> {
        let reader = self
            .reader
            .as_mut()
            .ok_or_else(|| bad(&format!("no {column}")))?;
        let read = reader.read_records(
            1,
            Some(&mut self.def),
            Some(&mut self.rep),
            &mut self.values,
        );
        match read {
            Ok((records, _, levels)) => {
                budget.decoded(levels);
                match records {
                    1 => Ok(()),
                    _ => Err(bad(&format!("no {column}"))),
                }
            }
            Err(_) if budget.dictionary.load(Ordering::Relaxed) => {
                Err(LogicalError::Format(format!(
                    "its {column} has a dictionary page, which aimem never writes (refused unread)"
                )))
            }
            Err(_) if budget.exceeded.load(Ordering::Relaxed) => Err(bad(&format!(
                "more than {ROW_PAGE_LEVELS} levels in the pages of its {column} and the \
                 columns before it, far more than any Qdrant point has"
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

/// The typed reader of column `index` of a row group, whose physical type the schema check
/// has fixed, its pages counted against `budget`.
fn typed<T: DataType>(
    group: &dyn parquet::file::reader::RowGroupReader,
    index: usize,
    budget: &Arc<Budget>,
) -> Result<ColumnReaderImpl<T>, LogicalError> {
    let descr = group.metadata().column(index).column_descr_ptr();
    if descr.physical_type() != T::get_physical_type() {
        return Err(LogicalError::Format(format!(
            "its column {index} is not of the type its schema gives"
        )));
    }
    let pages = Budgeted {
        pages: group.get_column_page_reader(index)?,
        budget: Arc::clone(budget),
    };
    Ok(ColumnReaderImpl::<T>::new(descr, Box::new(pages)))
}

/// One vector column of a [`Chunk`]: its leaves in the open row group, and where each row's
/// vector lies in them.
struct ChunkVector {
    column: VectorColumn,
    leaves: VectorLeaves,
}

/// The leaves of one vector column, each with its rows' lists.
enum VectorLeaves {
    Dense {
        values: Leaf<FloatType>,
        rows: Lists,
    },
    /// Its indices (boxed: a column reader is large) and values.
    Sparse {
        indices: Box<Leaf<Int32Type>>,
        index_rows: Lists,
        values: Leaf<FloatType>,
        value_rows: Lists,
    },
    Multi {
        values: Leaf<FloatType>,
        rows: Nested,
    },
}

impl ChunkVector {
    fn new(column: &VectorColumn) -> ChunkVector {
        let leaves = match column.kind {
            VectorKind::Dense => VectorLeaves::Dense {
                values: Leaf::new(),
                rows: Lists::default(),
            },
            VectorKind::Sparse => VectorLeaves::Sparse {
                indices: Box::new(Leaf::new()),
                index_rows: Lists::default(),
                values: Leaf::new(),
                value_rows: Lists::default(),
            },
            VectorKind::Multi => VectorLeaves::Multi {
                values: Leaf::new(),
                rows: Nested::default(),
            },
        };
        ChunkVector {
            column: column.clone(),
            leaves,
        }
    }

    /// Opens its leaves in row group `group`, from leaf column `*leaf` on (moved past them).
    fn open(
        &mut self,
        group: &dyn parquet::file::reader::RowGroupReader,
        leaf: &mut usize,
        budget: &Arc<Budget>,
    ) -> Result<(), LogicalError> {
        match &mut self.leaves {
            VectorLeaves::Dense { values, .. } | VectorLeaves::Multi { values, .. } => {
                values.reader = Some(typed(group, *leaf, budget)?);
                *leaf += 1;
            }
            VectorLeaves::Sparse {
                indices, values, ..
            } => {
                indices.reader = Some(typed(group, *leaf, budget)?);
                values.reader = Some(typed(group, *leaf + 1, budget)?);
                *leaf += 2;
            }
        }
        Ok(())
    }

    fn clear(&mut self) {
        match &mut self.leaves {
            VectorLeaves::Dense { values, .. } | VectorLeaves::Multi { values, .. } => {
                values.clear();
            }
            VectorLeaves::Sparse {
                indices, values, ..
            } => {
                indices.clear();
                values.clear();
            }
        }
    }

    /// Decodes the next row of its leaves; returns the levels they hold now.
    fn decode_row(&mut self, budget: &Budget) -> Result<usize, LogicalError> {
        let name = format!("vector {}", crate::names::shown(&self.column.name));
        match &mut self.leaves {
            VectorLeaves::Dense { values, .. } | VectorLeaves::Multi { values, .. } => {
                values.decode_row(&name, budget)?;
                Ok(values.levels())
            }
            VectorLeaves::Sparse {
                indices, values, ..
            } => {
                indices.decode_row(&name, budget)?;
                values.decode_row(&name, budget)?;
                Ok(indices.levels() + values.levels())
            }
        }
    }

    /// Splits its leaves' levels into the `rows` rows decoded, checked against its kind.
    fn split(&mut self, rows: usize) -> Result<(), LogicalError> {
        let name = crate::names::shown(&self.column.name);
        let decoded = match &mut self.leaves {
            VectorLeaves::Dense { values, rows } => {
                rows.split(&values.def, &values.rep, values.values.len())?;
                rows.rows.len()
            }
            VectorLeaves::Sparse {
                indices,
                index_rows,
                values,
                value_rows,
            } => {
                index_rows.split(&indices.def, &indices.rep, indices.values.len())?;
                value_rows.split(&values.def, &values.rep, values.values.len())?;
                // A sparse vector is null in both its lists or in neither, and has as many
                // values as indices.
                for (i, v) in index_rows.rows.iter().zip(&value_rows.rows) {
                    match (i, v) {
                        (None, None) => {}
                        (Some(i), Some(v)) if i.len() == v.len() => {}
                        (Some(i), Some(v)) => {
                            return Err(bad(&format!(
                                "a sparse vector {name} of {} indices and {} values",
                                i.len(),
                                v.len()
                            )));
                        }
                        _ => return Err(bad(&format!("a vector {name} that is not Sparse"))),
                    }
                }
                index_rows.rows.len()
            }
            VectorLeaves::Multi { values, rows } => {
                rows.split(&values.def, &values.rep, values.values.len())?;
                rows.rows.len()
            }
        };
        if decoded != rows {
            return Err(bad(&format!(
                "a vector {name} that is not {:?}",
                self.column.kind
            )));
        }
        Ok(())
    }

    /// Row `row`'s vector: `None` when the row has none (null); an error when its levels and
    /// values disagree.
    fn view(&self, row: usize) -> Result<Option<VectorView<'_>>, LogicalError> {
        let name = self.column.name.as_str();
        let view = match &self.leaves {
            VectorLeaves::Dense { values, rows } => match row_range(&rows.rows, row)? {
                None => return Ok(None),
                Some(range) => VectorView::Dense(values_at(&values.values, range, name)?),
            },
            VectorLeaves::Sparse {
                indices,
                index_rows,
                values,
                value_rows,
            } => match (
                row_range(&index_rows.rows, row)?,
                row_range(&value_rows.rows, row)?,
            ) {
                (None, None) => return Ok(None),
                (Some(i), Some(v)) if i.len() == v.len() => VectorView::Sparse {
                    indices: values_at(&indices.values, i, name)?,
                    values: values_at(&values.values, v, name)?,
                },
                _ => {
                    return Err(bad(&format!(
                        "a sparse vector {} whose indices and values disagree",
                        crate::names::shown(name)
                    )));
                }
            },
            VectorLeaves::Multi { values, rows } => match row_range(&rows.rows, row)? {
                None => return Ok(None),
                Some(range) => {
                    let lists = values_at(&rows.lists, range, name)?;
                    for list in lists {
                        values_at(&values.values, list.clone(), name)?;
                    }
                    VectorView::Multi {
                        values: &values.values,
                        lists,
                    }
                }
            },
        };
        Ok(Some(view))
    }
}

/// Where each row's list lies in a leaf's values: `None` for a null row.
#[derive(Default)]
struct Lists {
    rows: Vec<Option<Range<usize>>>,
}

impl Lists {
    /// Splits the levels of a list column whose elements are required (max definition level
    /// 2, repetition 1) into rows: definition 0 is a null row, 1 an empty list, 2 an element.
    fn split(&mut self, def: &[i16], rep: &[i16], values: usize) -> Result<(), LogicalError> {
        self.rows.clear();
        if def.len() != rep.len() {
            return Err(bad("a list whose levels do not fit its schema"));
        }
        let mut at = 0;
        for (&d, &r) in def.iter().zip(rep) {
            match (r, d) {
                (0, 0) => self.rows.push(None),
                (0, 1) => self.rows.push(Some(at..at)),
                (0, 2) => {
                    self.rows.push(Some(at..at + 1));
                    at += 1;
                }
                (1, 2) => match self.rows.last_mut() {
                    Some(Some(range)) if range.end == at => {
                        range.end += 1;
                        at += 1;
                    }
                    _ => return Err(bad("a list whose levels do not fit its schema")),
                },
                _ => return Err(bad("a list whose levels do not fit its schema")),
            }
        }
        if at != values {
            return Err(bad("a list whose levels do not fit its values"));
        }
        Ok(())
    }
}

/// A multivector column's rows: each row's range of `lists`, each list's range of values.
#[derive(Default)]
struct Nested {
    rows: Vec<Option<Range<usize>>>,
    lists: Vec<Range<usize>>,
}

impl Nested {
    /// Levels of `optional list<required list<required float>>`: definition 0 a null row, 1 an
    /// empty outer list, 2 an empty inner list, 3 a value; repetition 0 a new row, 1 a new
    /// inner list, 2 the next value of the inner list.
    fn split(&mut self, def: &[i16], rep: &[i16], values: usize) -> Result<(), LogicalError> {
        self.rows.clear();
        self.lists.clear();
        let misfit = || bad("a multivector whose levels do not fit its schema");
        if def.len() != rep.len() {
            return Err(misfit());
        }
        let mut at = 0;
        for (&d, &r) in def.iter().zip(rep) {
            match r {
                0 => self.rows.push(match d {
                    0 => None,
                    _ => Some(self.lists.len()..self.lists.len()),
                }),
                1 | 2 => {}
                _ => return Err(misfit()),
            }
            if d == 0 {
                if r != 0 {
                    return Err(misfit());
                }
                continue;
            }
            let row = match self.rows.last_mut() {
                Some(Some(row)) => row,
                _ => return Err(misfit()),
            };
            match (r, d) {
                (0, 1) => {}
                (0 | 1, 2 | 3) => {
                    if r == 1 && row.start == row.end {
                        return Err(misfit());
                    }
                    let take = usize::from(d == 3);
                    self.lists.push(at..at + take);
                    at += take;
                    row.end = self.lists.len();
                }
                (2, 3) => match self.lists.last_mut() {
                    Some(list)
                        if list.end == at && row.start < row.end && list.start < list.end =>
                    {
                        list.end += 1;
                        at += 1;
                    }
                    _ => return Err(misfit()),
                },
                _ => return Err(misfit()),
            }
        }
        if at != values {
            return Err(bad("a multivector whose levels do not fit its values"));
        }
        Ok(())
    }
}

/// Rows of a file decoded column by column: ids, payloads, shard keys and vectors, each
/// row read through [`Chunk::point`].
pub struct Chunk {
    rows: usize,
    ids: Leaf<ByteArrayType>,
    payloads: Leaf<ByteArrayType>,
    keys: Leaf<ByteArrayType>,
    /// Per row, the index of its payload (and shard key) among the values, if it has one.
    payload_at: Vec<Option<usize>>,
    key_at: Vec<Option<usize>>,
    vectors: Vec<ChunkVector>,
    /// What the pages of the row being read may hold, every column together.
    budget: Arc<Budget>,
}

impl Chunk {
    fn new(columns: &Columns) -> Chunk {
        Chunk {
            budget: Arc::default(),
            rows: 0,
            ids: Leaf::new(),
            payloads: Leaf::new(),
            keys: Leaf::new(),
            payload_at: Vec::new(),
            key_at: Vec::new(),
            vectors: columns.0.iter().map(ChunkVector::new).collect(),
        }
    }

    /// Opens every column of row group `group` (their leaves in the schema's order).
    fn open(
        &mut self,
        group: &dyn parquet::file::reader::RowGroupReader,
    ) -> Result<(), LogicalError> {
        // The previous group's pages are dropped with their readers.
        self.budget.outstanding.store(0, Ordering::Relaxed);
        let budget = &self.budget;
        self.ids.reader = Some(typed(group, 0, budget)?);
        self.payloads.reader = Some(typed(group, 1, budget)?);
        self.keys.reader = Some(typed(group, 2, budget)?);
        let mut leaf = 3;
        for vector in &mut self.vectors {
            vector.open(group, &mut leaf, budget)?;
        }
        Ok(())
    }

    /// Decodes up to `most` rows, row by row across the columns, and fewer when they reach
    /// [`CHUNK_LEVELS`]; returns how many.
    fn decode(&mut self, most: usize) -> Result<usize, LogicalError> {
        self.rows = 0;
        self.ids.clear();
        self.payloads.clear();
        self.keys.clear();
        for vector in &mut self.vectors {
            vector.clear();
        }
        let mut rows = 0;
        let (mut levels, mut vector_levels) = (0, 0);
        while rows < most && levels < CHUNK_LEVELS {
            self.budget.new_row();
            let budget = &self.budget;
            self.ids.decode_row("id", budget)?;
            self.payloads.decode_row("payload", budget)?;
            self.keys.decode_row("shard key", budget)?;
            let mut vectors = 0;
            for vector in &mut self.vectors {
                vectors += vector.decode_row(budget)?;
            }
            let ids = self.ids.levels() + self.payloads.levels() + self.keys.levels();
            if vectors - vector_levels > MAX_POINT_LEVELS {
                return Err(bad(&format!(
                    "vectors of more than {MAX_POINT_LEVELS} values and lists, which no Qdrant \
                     point has"
                )));
            }
            (levels, vector_levels) = (ids + vectors, vectors);
            rows += 1;
        }
        present(
            &self.payloads.def,
            &mut self.payload_at,
            self.payloads.values.len(),
        )?;
        present(&self.keys.def, &mut self.key_at, self.keys.values.len())?;
        for vector in &mut self.vectors {
            vector.split(rows)?;
        }
        self.rows = rows;
        Ok(rows)
    }

    /// The number of rows decoded.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Row `row` (below [`Chunk::rows`]): its id, payload and shard key checked.
    pub fn point(&self, row: usize) -> Result<PointView<'_>, LogicalError> {
        let id = self
            .ids
            .values
            .get(row)
            .and_then(|id| std::str::from_utf8(id.data()).ok())
            .and_then(PointId::from_text)
            .ok_or_else(|| bad("an id that is neither an integer nor a UUID"))?;
        let payload = json_at(row, &self.payload_at, &self.payloads.values, "payload")?;
        let shard_key = json_at(row, &self.key_at, &self.keys.values, "shard key")?
            .map(serde_json::from_slice::<Value>)
            .transpose()
            .map_err(|e| bad(&format!("a shard key that is not JSON ({e})")))?;
        Ok(PointView {
            chunk: self,
            row,
            id,
            payload,
            shard_key,
        })
    }
}

/// Row `row`'s value of an optional JSON column, checked to be one whole JSON value and
/// nothing after it: what goes into a request is never more than a value.
fn json_at<'v>(
    row: usize,
    at: &[Option<usize>],
    values: &'v [ByteArray],
    what: &str,
) -> Result<Option<&'v [u8]>, LogicalError> {
    let Some(index) = at.get(row).copied().flatten() else {
        return Ok(None);
    };
    let text = values.get(index).map(ByteArray::data).unwrap_or_default();
    serde_json::from_slice::<Checked>(text)
        .map(|_| Some(text))
        .map_err(|e| bad(&format!("a {what} that is not JSON ({e})")))
}

/// A JSON value checked as serde_json checks one it builds, without building it: valid UTF-8,
/// no lone surrogate in an escape, nesting no deeper than its limit. (Skipping a value with
/// `IgnoredAny` checks none of these, and the text goes to the server as it is.)
struct Checked;

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Checked, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> serde::de::Visitor<'de> for CheckedVisitor {
    type Value = Checked;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// For a column of optional values (max definition level 1, no repetition): each row's index
/// among the values.
fn present(def: &[i16], at: &mut Vec<Option<usize>>, values: usize) -> Result<(), LogicalError> {
    at.clear();
    let mut next = 0;
    for &d in def {
        at.push(match d {
            0 => None,
            1 => {
                next += 1;
                Some(next - 1)
            }
            _ => return Err(bad("a value whose levels do not fit its schema")),
        });
    }
    if next != values {
        return Err(bad("a value whose levels do not fit its schema"));
    }
    Ok(())
}

/// One row of a [`Chunk`], borrowed: the id, the payload and shard key checked as one JSON
/// value each, the vectors as slices of the chunk's values.
pub struct PointView<'c> {
    chunk: &'c Chunk,
    row: usize,
    pub id: PointId,
    /// The payload's JSON text (`None`: the point has none).
    pub payload: Option<&'c [u8]>,
    /// A custom-sharded collection's point: its shard key.
    pub shard_key: Option<Value>,
}

/// One vector of a [`PointView`].
#[derive(Debug, Clone, Copy)]
pub enum VectorView<'c> {
    Dense(&'c [f32]),
    /// Indices as Parquet stores them (the bits of Qdrant's unsigned 32-bit indices).
    Sparse {
        indices: &'c [i32],
        values: &'c [f32],
    },
    /// The vectors of a multivector: ranges of `values`.
    Multi {
        values: &'c [f32],
        lists: &'c [Range<usize>],
    },
}

/// Row `row`'s range of a list column's values: `None` for a null row. A row the chunk does
/// not have is an error (never, as [`Chunk::decode`] checks every column's rows).
fn row_range(
    rows: &[Option<Range<usize>>],
    row: usize,
) -> Result<Option<Range<usize>>, LogicalError> {
    rows.get(row)
        .cloned()
        .ok_or_else(|| bad("a vector column shorter than the others"))
}

/// `values[range]`, or the error of a vector whose levels point outside its values (never, as
/// [`Lists::split`] and [`Nested::split`] check them).
fn values_at<'v, T>(
    values: &'v [T],
    range: Range<usize>,
    name: &str,
) -> Result<&'v [T], LogicalError> {
    values.get(range).ok_or_else(|| {
        bad(&format!(
            "a vector {} whose levels point outside its values",
            crate::names::shown(name)
        ))
    })
}

impl<'c> PointView<'c> {
    /// The vectors the point has, by name (`""`: the unnamed one), in the file's order. A
    /// vector the row does not have (null) is not there; one whose levels and values disagree
    /// is an error, never a point with a vector missing.
    pub fn vectors(
        &self,
    ) -> impl Iterator<Item = Result<(&'c str, VectorView<'c>), LogicalError>> + '_ {
        let row = self.row;
        self.chunk.vectors.iter().filter_map(move |vector| {
            // Left out only when the row has none (null); an error is handed out.
            let view = vector.view(row).transpose()?;
            Some(view.map(|view| (vector.column.name.as_str(), view)))
        })
    }

    /// The point, owned (its payload parsed).
    pub fn to_point(&self) -> Result<Point, LogicalError> {
        let payload = self
            .payload
            .map(serde_json::from_slice::<Value>)
            .transpose()
            .map_err(|e| bad(&format!("a payload that is not JSON ({e})")))?;
        let vectors = self
            .vectors()
            .map(|vector| {
                let (name, view) = vector?;
                let value = match view {
                    VectorView::Dense(values) => VectorValue::Dense(values.to_vec()),
                    VectorView::Sparse { indices, values } => VectorValue::Sparse {
                        indices: indices.iter().map(|&i| i as u32).collect(),
                        values: values.to_vec(),
                    },
                    VectorView::Multi { values, lists } => VectorValue::Multi(
                        lists
                            .iter()
                            .map(|list| values_at(values, list.clone(), name).map(<[f32]>::to_vec))
                            .collect::<Result<_, _>>()?,
                    ),
                };
                Ok((name.to_string(), value))
            })
            .collect::<Result<BTreeMap<_, _>, LogicalError>>()?;
        Ok(Point {
            id: self.id.clone(),
            payload,
            shard_key: self.shard_key.clone(),
            vectors,
        })
    }
}

/// A Parquet file ends with its footer's length (4 bytes, little-endian) and `PAR1`: that
/// length is checked against [`MAX_FOOTER`] before the footer is read.
fn check_footer_size(file: &Opened) -> Result<(), LogicalError> {
    let len = file.len();
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
fn check_chunk_sizes(file: &SerializedFileReader<Opened>, length: i64) -> Result<(), LogicalError> {
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

/// Parquet reads a file at offsets: its footer, then each column chunk from where it starts.
/// Each reader it asks for has a position of its own.
impl parquet::file::reader::Length for Opened {
    fn len(&self) -> u64 {
        Opened::len(self)
    }
}

impl parquet::file::reader::ChunkReader for Opened {
    type T = Box<dyn std::io::Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let reader = self.reader_from(start);
        Ok(match self.is_local() {
            // A page header is decoded a few bytes at a time: buffered, as Parquet's own
            // reader of a file is.
            true => Box::new(std::io::BufReader::new(reader)),
            // Unbuffered, so that the stream stops exactly at the page's data, which is read
            // next (get_bytes) through the same open request instead of a new one.
            false => Box::new(reader),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        // Asked for by the footer's sizes, which check_chunk_sizes bounded: never past the end.
        let end = start.checked_add(length as u64);
        if end.is_none_or(|end| end > Opened::len(self)) {
            return Err(parquet::errors::ParquetError::EOF(format!(
                "{length} bytes at {start} lie past the end of the file"
            )));
        }
        let mut buffer = vec![0u8; length];
        self.read_exact_at(&mut buffer, start)?;
        Ok(buffer.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cells of one leaf column of a crafted file: values, then definition and repetition
    /// levels.
    pub(crate) enum Cells {
        Text(Vec<&'static str>, Option<Vec<i16>>),
        Ints(Vec<i32>, Vec<i16>, Vec<i16>),
        Floats(Vec<f32>, Vec<i16>, Vec<i16>),
    }

    /// A file in the logical format's schema and footer for `columns`, of one row group whose
    /// leaves hold `leaves` as they are: what aimem's writer would refuse to write.
    pub(crate) fn crafted(columns: &Columns, leaves: Vec<Cells>) -> tempfile::NamedTempFile {
        crafted_with(columns, leaves, false)
    }

    /// [`crafted`], with the Parquet writer's dictionaries on (`dictionary`) or off (as
    /// aimem writes).
    fn crafted_with(
        columns: &Columns,
        leaves: Vec<Cells>,
        dictionary: bool,
    ) -> tempfile::NamedTempFile {
        use parquet::file::metadata::KeyValue;
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        let file = tempfile::NamedTempFile::new().unwrap();
        // A page ends after each batch of 1,024 levels that completes a row.
        let props = WriterProperties::builder()
            .set_data_page_row_count_limit(1)
            .set_dictionary_enabled(dictionary)
            .set_key_value_metadata(Some(vec![
                KeyValue::new(FORMAT_KEY.to_string(), FORMAT_VERSION.to_string()),
                KeyValue::new(
                    VECTORS_KEY.to_string(),
                    serde_json::to_string(&columns.0).unwrap(),
                ),
            ]))
            .build();
        let schema = columns.schema().unwrap();
        let mut writer =
            SerializedFileWriter::new(file.reopen().unwrap(), schema, std::sync::Arc::new(props))
                .unwrap();
        let mut group = writer.next_row_group().unwrap();
        for leaf in leaves {
            let mut column = group.next_column().unwrap().unwrap();
            match leaf {
                Cells::Text(values, def) => {
                    let values: Vec<ByteArray> = values.into_iter().map(ByteArray::from).collect();
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&values, def.as_deref(), None)
                        .unwrap();
                }
                Cells::Ints(values, def, rep) => {
                    column
                        .typed::<Int32Type>()
                        .write_batch(&values, Some(&def), Some(&rep))
                        .unwrap();
                }
                Cells::Floats(values, def, rep) => {
                    column
                        .typed::<FloatType>()
                        .write_batch(&values, Some(&def), Some(&rep))
                        .unwrap();
                }
            }
            column.close().unwrap();
        }
        group.close().unwrap();
        writer.close().unwrap();
        file
    }

    /// Two points with a sparse vector `s` whose first row has `values` values for its two
    /// indices.
    fn sparse_file(values: Vec<f32>, def: Vec<i16>, rep: Vec<i16>) -> tempfile::NamedTempFile {
        let columns = Columns::new(&[("s".into(), VectorKind::Sparse)]).unwrap();
        crafted(
            &columns,
            vec![
                Cells::Text(vec!["1", "2"], None),
                Cells::Text(vec![], Some(vec![0, 0])),
                Cells::Text(vec![], Some(vec![0, 0])),
                // [1, 2], [3]
                Cells::Ints(vec![1, 2, 3], vec![2, 2, 2], vec![0, 1, 0]),
                Cells::Floats(values, def, rep),
            ],
        )
    }

    #[test]
    fn a_sparse_vector_of_more_indices_than_values_is_refused() {
        let read = |file: tempfile::NamedTempFile| {
            let reader = PointsReader::open(file.reopen().unwrap()).unwrap();
            reader.points().unwrap().collect::<Result<Vec<_>, _>>()
        };
        let points = read(sparse_file(
            vec![0.5, 0.75, 0.25],
            vec![2, 2, 2],
            vec![0, 1, 0],
        ))
        .unwrap();
        assert_eq!(
            points[0].vectors["s"],
            VectorValue::Sparse {
                indices: vec![1, 2],
                values: vec![0.5, 0.75]
            }
        );
        // [0.5], [0.25]: the first row has two indices and one value.
        let refused = read(sparse_file(vec![0.5, 0.25], vec![2, 2], vec![0, 0]))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            refused.as_deref(),
            Some("a row has a sparse vector `s` of 2 indices and 1 values")
        );
    }

    /// A file of one point whose multivector `m` is `lists` empty lists: one level each, and
    /// run-length encoded, a page of a few bytes however many.
    fn empty_lists(lists: usize) -> tempfile::NamedTempFile {
        let columns = Columns::new(&[("m".into(), VectorKind::Multi)]).unwrap();
        let mut rep = vec![1; lists];
        rep[0] = 0;
        crafted(
            &columns,
            vec![
                Cells::Text(vec!["1"], None),
                Cells::Text(vec![], Some(vec![0])),
                Cells::Text(vec![], Some(vec![0])),
                Cells::Floats(vec![], vec![2; lists], rep),
            ],
        )
    }

    /// The levels of a multivector row of `lists` empty lists, appended to `def` and `rep`.
    fn empty_row(lists: usize, def: &mut Vec<i16>, rep: &mut Vec<i16>) {
        def.extend(std::iter::repeat_n(2, lists));
        rep.push(0);
        rep.extend(std::iter::repeat_n(1, lists - 1));
    }

    /// Pages fetched for earlier rows count until they are decoded: row 1 may not fetch a
    /// page that, with what row 0 fetched for row 2, holds more than a row may take.
    #[test]
    fn pages_fetched_and_not_decoded_yet_count_against_later_rows() {
        let columns = Columns::new(&[
            ("a".into(), VectorKind::Multi),
            ("b".into(), VectorKind::Multi),
        ])
        .unwrap();
        let big = ROW_PAGE_LEVELS / 2 + 1000;
        // `a`: one page of rows 1, 1 and `big` levels, fetched for row 0. `b`: a page a row
        // (2,000 levels, 2,000, `big`), each fetched for the row before to see where it ends.
        let (mut a_def, mut a_rep, mut b_def, mut b_rep) = Default::default();
        for (a, b) in [(1, 2000), (1, 2000), (big, big)] {
            empty_row(a, &mut a_def, &mut a_rep);
            empty_row(b, &mut b_def, &mut b_rep);
        }
        let file = crafted(
            &columns,
            vec![
                Cells::Text(vec!["1", "2", "3"], None),
                Cells::Text(vec![], Some(vec![0; 3])),
                Cells::Text(vec![], Some(vec![0; 3])),
                Cells::Floats(vec![], a_def, a_rep),
                Cells::Floats(vec![], b_def, b_rep),
            ],
        );
        let (read, peak) = read_all(&file);
        let refused = read.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            refused.contains("levels in the pages of its vector `b`"),
            "{refused}"
        );
        assert!(peak < 1 << 20, "{peak} bytes");
    }

    /// Reads every point of `file`, and the most heap that took.
    fn read_all(file: &tempfile::NamedTempFile) -> (Result<Vec<Point>, LogicalError>, usize) {
        let reader = PointsReader::open(file.reopen().unwrap()).unwrap();
        crate::alloc_probe::peak_heap(|| reader.points().unwrap().collect())
    }

    #[test]
    fn a_page_of_more_levels_than_a_row_may_take_is_refused_unread() {
        let file = empty_lists(ROW_PAGE_LEVELS + 1);
        assert!(file.as_file().metadata().unwrap().len() < 4096);
        let (read, peak) = read_all(&file);
        let refused = read.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            refused.contains("levels in the pages of its vector `m`"),
            "{refused}"
        );
        // Its levels would take 68 MiB.
        assert!(peak < 1 << 20, "{peak} bytes");
    }

    /// The zigzag varint of `n`, as Thrift's compact protocol writes an `i32`.
    fn compact_i32(n: i32) -> Vec<u8> {
        let mut zigzag = ((n << 1) ^ (n >> 31)) as u32;
        let mut out = Vec::new();
        loop {
            let byte = (zigzag & 0x7f) as u8;
            zigzag >>= 7;
            if zigzag == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    /// A dictionary page is refused before it is read: its header's count of entries (here
    /// raised to a million, in a file of 100 KB) would size the Parquet crate's dictionary.
    #[test]
    fn a_dictionary_page_is_refused_unread() {
        let columns = Columns::new(&[("v".into(), VectorKind::Dense)]).unwrap();
        let rows = 10_000;
        let text = (0..rows)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let ids: Vec<&'static str> = Box::leak(text.into_boxed_str()).split(',').collect();
        let file = crafted_with(
            &columns,
            vec![
                Cells::Text(ids, None),
                Cells::Text(vec![], Some(vec![0; rows])),
                Cells::Text(vec![], Some(vec![0; rows])),
                Cells::Floats(vec![], vec![0; rows], vec![0; rows]),
            ],
            true,
        );
        // The id column's dictionary page: its header's count of entries, 10,000, becomes
        // 1,048,575 (a varint of the same three bytes), 32 MiB of entries to make room for.
        let offset = {
            let reader = SerializedFileReader::new(file.reopen().unwrap()).unwrap();
            let chunk = reader.metadata().row_group(0).column(0).clone();
            usize::try_from(chunk.dictionary_page_offset().expect("a dictionary page")).unwrap()
        };
        let mut bytes = std::fs::read(file.path()).unwrap();
        assert!(bytes.len() < 200_000, "{} bytes", bytes.len());
        let mut count = vec![0x15];
        count.extend(compact_i32(10_000));
        let header = &bytes[offset..offset + 64];
        let found: Vec<usize> = (0..header.len() - count.len())
            .filter(|&at| header[at..].starts_with(&count))
            .collect();
        assert_eq!(found.len(), 1, "{header:?}");
        let raised = compact_i32((1 << 20) - 1);
        assert_eq!(raised.len(), count.len() - 1);
        let at = offset + found[0] + 1;
        bytes[at..at + raised.len()].copy_from_slice(&raised);
        std::fs::write(file.path(), &bytes).unwrap();
        let (read, peak) = read_all(&file);
        let refused = read.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            refused,
            "its id has a dictionary page, which aimem never writes (refused unread)"
        );
        assert!(peak < 1 << 20, "{peak} bytes");
    }

    #[test]
    fn a_row_of_more_levels_than_a_point_may_take_is_refused() {
        let (read, _) = read_all(&empty_lists(MAX_POINT_LEVELS + 1));
        let refused = read.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            refused.contains(&format!("vectors of more than {MAX_POINT_LEVELS} values")),
            "{refused}"
        );
        let (read, _) = read_all(&empty_lists(3));
        assert_eq!(
            read.unwrap()[0].vectors["m"],
            VectorValue::Multi(vec![vec![]; 3])
        );
    }

    /// Rows of 100,000 values: a chunk stops taking them at [`CHUNK_LEVELS`].
    #[test]
    fn a_chunk_of_big_rows_holds_fewer_rows() {
        let columns = Columns::new(&[("".into(), VectorKind::Dense)]).unwrap();
        let points: Vec<Point> = (0..15u64)
            .map(|i| Point {
                id: PointId::Num(i),
                payload: None,
                shard_key: None,
                vectors: [("".to_string(), VectorValue::Dense(vec![i as f32; 100_000]))].into(),
            })
            .collect();
        let file = crate::logical::written_file(columns, &points);
        let reader = PointsReader::open(file.reopen().unwrap()).unwrap();
        let mut chunks = reader.chunks();
        let mut sizes = Vec::new();
        let mut back = Vec::new();
        while chunks.advance().unwrap() {
            sizes.push(chunks.chunk().rows());
            for row in 0..chunks.chunk().rows() {
                back.push(chunks.chunk().point(row).unwrap().to_point().unwrap());
            }
        }
        // 11 rows and their ids, payloads and keys pass 1 Mi levels.
        assert_eq!(sizes, [11, 4]);
        assert_eq!(back, points);
    }

    /// A chunk of one row, id 1, whose dense vector `v` takes values `range` of `values`.
    fn chunk_of_one_row(range: Range<usize>, values: Vec<f32>) -> Chunk {
        let columns = Columns::new(&[("v".into(), VectorKind::Dense)]).unwrap();
        let mut chunk = Chunk::new(&columns);
        chunk.rows = 1;
        chunk.ids.values = vec![ByteArray::from("1")];
        chunk.payload_at = vec![None];
        chunk.key_at = vec![None];
        let VectorLeaves::Dense { values: leaf, rows } = &mut chunk.vectors[0].leaves else {
            unreachable!()
        };
        leaf.values = values;
        rows.rows = vec![Some(range)];
        chunk
    }

    /// A vector whose levels point outside its values is an error, never a point without it.
    #[test]
    fn a_vector_outside_its_values_is_an_error_not_a_point_without_it() {
        let chunk = chunk_of_one_row(0..2, vec![1.0, 2.0]);
        let point = chunk.point(0).unwrap().to_point().unwrap();
        assert_eq!(point.vectors["v"], VectorValue::Dense(vec![1.0, 2.0]));
        let chunk = chunk_of_one_row(0..4, vec![1.0, 2.0]);
        let view = chunk.point(0).unwrap();
        let vectors: Vec<_> = view.vectors().collect();
        assert_eq!(vectors.len(), 1);
        assert!(vectors[0].is_err());
        assert!(
            view.to_point()
                .is_err_and(|e| e.to_string().contains("outside its values"))
        );
        let mut body = crate::qdrant::upsert::UpsertBody::default();
        assert!(body.push(&view).is_err());
    }

    /// The data pages of each column chunk of row group `group` of `file`, by leaf.
    fn data_pages(file: &std::path::Path, group: usize) -> Vec<usize> {
        let reader = SerializedFileReader::new(File::open(file).unwrap()).unwrap();
        let group = reader.get_row_group(group).unwrap();
        (0..group.num_columns())
            .map(|leaf| {
                let pages = group.get_column_page_reader(leaf).unwrap();
                pages
                    .map(|page| page.unwrap())
                    .filter(|page| page.page_type() != parquet::basic::PageType::DICTIONARY_PAGE)
                    .count()
            })
            .collect()
    }

    /// Column chunks of several data pages, whose pages and chunks of rows begin at different
    /// rows, read back exactly: a dense, a sparse and a multivector's leaves and the payloads
    /// each span several pages in both row groups.
    #[test]
    fn column_chunks_of_several_pages_read_back_exactly() {
        use crate::logical::write::ROWS_PER_GROUP;
        let columns = Columns::new(&[
            ("".into(), VectorKind::Dense),
            ("bm25".into(), VectorKind::Sparse),
            ("colbert".into(), VectorKind::Multi),
        ])
        .unwrap();
        let rows = 2 * ROWS_PER_GROUP as u64 - 1;
        let points: Vec<Point> = (0..rows)
            .map(|i| {
                let mut vectors = BTreeMap::new();
                let x = i as f32;
                vectors.insert(
                    "".into(),
                    VectorValue::Dense((0..768).map(|k| x + k as f32 / 1024.0).collect()),
                );
                // Lengths that vary, so no page boundary falls on a regular row.
                let n = 100 + (i % 97) as u32;
                vectors.insert(
                    "bm25".into(),
                    VectorValue::Sparse {
                        indices: (0..n).map(|k| k * 3 + i as u32).collect(),
                        values: (0..n).map(|k| k as f32 + x).collect(),
                    },
                );
                if i % 5 != 3 {
                    let lists = 1 + (i % 4) as usize;
                    vectors.insert(
                        "colbert".into(),
                        VectorValue::Multi((0..lists).map(|l| vec![x + l as f32; 128]).collect()),
                    );
                }
                Point {
                    id: PointId::Num(i * 7),
                    payload: Some(serde_json::json!({"n": i, "text": format!("{i:0>600}")})),
                    shard_key: None,
                    vectors,
                }
            })
            .collect();
        let file = crate::logical::written_file(columns, &points);
        for group in 0..2 {
            let pages = data_pages(file.path(), group);
            // id, payload, shard key, dense, sparse indices and values, multivector.
            assert_eq!(pages.len(), 7);
            for leaf in [1, 3, 4, 5, 6] {
                assert!(pages[leaf] >= 2, "group {group}, leaf {leaf}: {pages:?}");
            }
        }
        let reader = PointsReader::open(file.reopen().unwrap()).unwrap();
        let back: Vec<Point> = reader.points().unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(back.len(), points.len());
        for (read, wrote) in back.iter().zip(&points) {
            assert_eq!(read, wrote);
        }
    }

    #[test]
    fn a_json_cell_is_checked_as_a_built_value_would_be() {
        let cell = |text: &[u8]| {
            let values = vec![ByteArray::from(text.to_vec())];
            json_at(0, &[Some(0)], &values, "payload").map(|v| v.map(<[u8]>::to_vec))
        };
        let fine = br#"{"a":[1,-2.5,"\u00fc\ud83d\ude00",true,null,{"b":{}}]}"#;
        assert_eq!(cell(fine).unwrap().as_deref(), Some(&fine[..]));
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for bad in [
            &br#"{"a":"\ud800"}"#[..],
            b"{\"a\":\"\xff\"}",
            deep.as_bytes(),
            b"{\"a\":1} 2",
        ] {
            assert!(cell(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn list_levels_split_into_rows() {
        let mut lists = Lists::default();
        // null, [], [a], [b, c]
        lists.split(&[0, 1, 2, 2, 2], &[0, 0, 0, 0, 1], 3).unwrap();
        assert_eq!(lists.rows, [None, Some(0..0), Some(0..1), Some(1..3)]);
        // A continuation with no row before it, or levels that miss values.
        assert!(lists.split(&[2], &[1], 1).is_err());
        assert!(lists.split(&[2, 2], &[0, 0], 1).is_err());
        assert!(lists.split(&[3], &[0], 1).is_err());
    }

    #[test]
    fn multivector_levels_split_into_rows_and_lists() {
        let mut nested = Nested::default();
        // null; []; [[]]; [[a, b], [], [c]]
        nested
            .split(&[0, 1, 2, 3, 3, 2, 3], &[0, 0, 0, 0, 2, 1, 1], 3)
            .unwrap();
        assert_eq!(nested.rows, [None, Some(0..0), Some(0..1), Some(1..4)]);
        assert_eq!(nested.lists, [0..0, 0..2, 2..2, 2..3]);
        // A second list in a row that has none, a value after an empty list.
        assert!(nested.split(&[1, 2], &[0, 1], 0).is_err());
        assert!(nested.split(&[2, 3], &[0, 2], 1).is_err());
    }
}
