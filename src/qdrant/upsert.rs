//! Points written into a collection: `PUT /collections/{c}/points` (docs/qdrant.md,
//! "Points"), its JSON body written point by point into a buffer the caller keeps
//! ([`UpsertBody`]), from a logical backup's decoded rows ([`UpsertBody::push`]) or from
//! points aimem holds ([`UpsertBody::push_point`]), through the one writer of a point's JSON.
//! A restore that sends thousands of upserts reuses a few buffers instead of building points,
//! then a body, for each.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::de::IgnoredAny;
use serde::ser::{SerializeSeq, Serializer};
use serde_json::Value;
use ureq::http::{HeaderValue, Method};

use super::types::Envelope;
use super::{Client, Parse, QdrantError, collection_path, strip_query};
use crate::logical::LogicalError;
use crate::logical::point::{Point, PointId, VectorValue};
use crate::logical::read::{PointView, VectorView};

impl Client {
    /// `PUT /collections/{name}/points?wait=…`: writes `points` (all under `shard_key` in a
    /// custom-sharded collection). With `wait` the answer comes once they are applied;
    /// without, once they are queued.
    pub fn upsert_points(
        &self,
        name: &str,
        points: &[Point],
        shard_key: Option<&Value>,
        wait: bool,
    ) -> Result<(), QdrantError> {
        let path = collection_path(name, &format!("/points?wait={wait}"));
        let mut body = UpsertBody::default();
        body.reset(shard_key.cloned());
        for point in points {
            body.push_point(point).map_err(|e| self.invalid(&path, e))?;
        }
        body.finish().map_err(|e| self.invalid(&path, e))?;
        let _: Envelope<IgnoredAny> = self.json_bytes(Method::PUT, &path, body.buffer)?;
        Ok(())
    }

    /// `PUT /collections/{name}/points?wait=…` with `body` as it is (see [`UpsertBody`]).
    pub fn upsert_body(
        &self,
        name: &str,
        body: &UpsertBody,
        wait: bool,
    ) -> Result<(), QdrantError> {
        let path = collection_path(name, &format!("/points?wait={wait}"));
        self.send_borrowed(Method::PUT, &path, body.bytes())
    }

    /// Sends the JSON `body`, borrowed (the caller keeps its buffer), and reads the answer's
    /// envelope: [`Client::json_bytes`] for a body that is not given away.
    fn send_borrowed(&self, method: Method, path: &str, body: &[u8]) -> Result<(), QdrantError> {
        let mut request = self.request(method.clone(), path, Some(body))?;
        request
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        let what = format!("{method} {}", strip_query(path));
        self.exchange_json_parsed::<Envelope<IgnoredAny>, _>(
            method,
            path,
            request,
            &what,
            self.timeouts.request,
            Parse::Streamed,
        )
        .map(drop)
    }
}

/// The body of one upsert, `{"points": [{"id", "vector": {name: …}, "payload"}],
/// "shard_key"?}`, written point by point into a buffer that is kept for the next one.
#[derive(Debug, Default)]
pub struct UpsertBody {
    buffer: Vec<u8>,
    points: usize,
    shard_key: Option<Value>,
    finished: bool,
}

/// One vector as an upsert writes it, borrowed from a decoded row or from a point.
#[derive(Clone, Copy)]
enum Vector<'a> {
    Dense(&'a [f32]),
    /// Indices as Parquet keeps them (`i32`: the bits of Qdrant's unsigned 32-bit indices).
    SparseBits {
        indices: &'a [i32],
        values: &'a [f32],
    },
    Sparse {
        indices: &'a [u32],
        values: &'a [f32],
    },
    /// A decoded multivector: its vectors as ranges of `values`.
    Ranges {
        values: &'a [f32],
        lists: &'a [Range<usize>],
    },
    Lists(&'a [Vec<f32>]),
}

impl<'a> From<VectorView<'a>> for Vector<'a> {
    fn from(view: VectorView<'a>) -> Self {
        match view {
            VectorView::Dense(values) => Vector::Dense(values),
            VectorView::Sparse { indices, values } => Vector::SparseBits { indices, values },
            VectorView::Multi { values, lists } => Vector::Ranges { values, lists },
        }
    }
}

impl<'a> From<&'a VectorValue> for Vector<'a> {
    fn from(value: &'a VectorValue) -> Self {
        match value {
            VectorValue::Dense(values) => Vector::Dense(values),
            VectorValue::Sparse { indices, values } => Vector::Sparse { indices, values },
            VectorValue::Multi(vectors) => Vector::Lists(vectors),
        }
    }
}

/// A point's payload: JSON text checked to be one value, or a value.
enum Payload<'a> {
    Text(Option<&'a [u8]>),
    Value(Option<&'a Value>),
}

impl UpsertBody {
    /// Empties the body for points of `shard_key` (custom sharding), keeping the buffer.
    pub fn reset(&mut self, shard_key: Option<Value>) {
        self.buffer.clear();
        self.points = 0;
        self.shard_key = shard_key;
        self.finished = false;
    }

    /// The points it holds.
    pub fn len(&self) -> usize {
        self.points
    }

    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// The shard key its points go to.
    pub fn shard_key(&self) -> Option<&Value> {
        self.shard_key.as_ref()
    }

    /// Adds a decoded row's point. Its payload text was checked to be one JSON value when it
    /// was read, so it goes in as it is. A vector whose levels and values disagree fails (the
    /// body is then to be reset): a point is never sent without it.
    pub fn push(&mut self, point: &PointView<'_>) -> Result<(), LogicalError> {
        let vectors = point
            .vectors()
            .map(|vector| vector.map(|(name, view)| (name, Vector::from(view))));
        self.push_parts(&point.id, vectors, Payload::Text(point.payload))
    }

    /// Adds a decoded row's point as [`UpsertBody::push`] does, unless the body holds points
    /// already and would then pass `budget` bytes: then the body is left as it was and the
    /// answer is false (the point is for the next body). A point alone may pass it.
    pub fn push_within(
        &mut self,
        point: &PointView<'_>,
        budget: usize,
    ) -> Result<bool, LogicalError> {
        let (len, points) = (self.buffer.len(), self.points);
        self.push(point)?;
        if points > 0 && self.buffer.len() > budget {
            self.buffer.truncate(len);
            self.points = points;
            return Ok(false);
        }
        Ok(true)
    }

    /// Adds `point`.
    pub fn push_point(&mut self, point: &Point) -> Result<(), LogicalError> {
        let vectors = vectors_of(&point.vectors).map(Ok);
        self.push_parts(&point.id, vectors, Payload::Value(point.payload.as_ref()))
    }

    /// Adds a point as Qdrant's JSON writes it: named vectors (`""` for the unnamed one, the
    /// form every collection takes), and an empty payload for a point without one, as Qdrant
    /// gives it.
    fn push_parts<'v>(
        &mut self,
        id: &PointId,
        vectors: impl Iterator<Item = Result<(&'v str, Vector<'v>), LogicalError>>,
        payload: Payload<'_>,
    ) -> Result<(), LogicalError> {
        let out = &mut self.buffer;
        let start = out.len();
        out.extend_from_slice(match self.points {
            0 => b"{\"points\":[{\"id\":".as_slice(),
            _ => b",{\"id\":".as_slice(),
        });
        match id {
            PointId::Num(n) => serde_json::to_writer(&mut *out, n)?,
            PointId::Uuid(u) => serde_json::to_writer(&mut *out, u)?,
        }
        out.extend_from_slice(b",\"vector\":{");
        for (index, vector) in vectors.enumerate() {
            let (name, vector) = vector?;
            if index > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, name)?;
            out.push(b':');
            write_vector(out, vector)?;
        }
        out.extend_from_slice(b"},\"payload\":");
        match payload {
            Payload::Text(Some(text)) => out.extend_from_slice(text),
            Payload::Value(Some(value)) => serde_json::to_writer(&mut *out, value)?,
            Payload::Text(None) | Payload::Value(None) => out.extend_from_slice(b"{}"),
        }
        out.push(b'}');
        self.points += 1;
        // The buffer is kept and filled again: it grows by an eighth when the next points may
        // not fit, not by doubling, so it settles just above one body's size.
        let point = out.len() - start;
        if out.capacity() - out.len() < 2 * point {
            out.reserve_exact(out.capacity() / 8 + 2 * point);
        }
        Ok(())
    }

    /// Closes the body (once); [`UpsertBody::bytes`] is then the whole request body.
    pub fn finish(&mut self) -> Result<(), serde_json::Error> {
        if self.finished {
            return Ok(());
        }
        let out = &mut self.buffer;
        if self.points == 0 {
            out.extend_from_slice(b"{\"points\":[");
        }
        out.push(b']');
        if let Some(key) = &self.shard_key {
            out.extend_from_slice(b",\"shard_key\":");
            serde_json::to_writer(&mut *out, key)?;
        }
        out.push(b'}');
        self.finished = true;
        Ok(())
    }

    /// The body as written so far (whole once [`UpsertBody::finish`]ed).
    pub fn bytes(&self) -> &[u8] {
        &self.buffer
    }
}

/// An owned point's vectors, by name.
fn vectors_of(vectors: &BTreeMap<String, VectorValue>) -> impl Iterator<Item = (&str, Vector<'_>)> {
    vectors
        .iter()
        .map(|(name, value)| (name.as_str(), Vector::from(value)))
}

/// Writes `vector` as Qdrant takes it: a list of numbers, `{"indices", "values"}`, or a list
/// of lists.
fn write_vector(out: &mut Vec<u8>, vector: Vector<'_>) -> Result<(), serde_json::Error> {
    match vector {
        Vector::Dense(values) => serde_json::to_writer(&mut *out, values),
        Vector::SparseBits { indices, values } => write_sparse(out, &Unsigned(indices), values),
        Vector::Sparse { indices, values } => write_sparse(out, indices, values),
        Vector::Ranges { values, lists } => {
            serde_json::to_writer(&mut *out, &Multi { values, lists })
        }
        Vector::Lists(vectors) => serde_json::to_writer(&mut *out, vectors),
    }
}

fn write_sparse(
    out: &mut Vec<u8>,
    indices: &(impl serde::Serialize + ?Sized),
    values: &[f32],
) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b"{\"indices\":");
    serde_json::to_writer(&mut *out, indices)?;
    out.extend_from_slice(b",\"values\":");
    serde_json::to_writer(&mut *out, values)?;
    out.push(b'}');
    Ok(())
}

/// Sparse indices as Parquet keeps them (`i32`), written as the unsigned numbers they are.
struct Unsigned<'a>(&'a [i32]);

impl serde::Serialize for Unsigned<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for &index in self.0 {
            seq.serialize_element(&(index as u32))?;
        }
        seq.end()
    }
}

/// A multivector: its vectors as ranges of `values`.
struct Multi<'a> {
    values: &'a [f32],
    lists: &'a [Range<usize>],
}

impl serde::Serialize for Multi<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.lists.len()))?;
        for list in self.lists {
            let values = self.values.get(list.clone()).ok_or_else(|| {
                serde::ser::Error::custom("a multivector's list lies outside its values")
            })?;
            seq.serialize_element(values)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::logical::columns::{Columns, VectorKind};
    use crate::logical::point::{Point, VectorValue};
    use crate::logical::read::PointsReader;
    use crate::logical::write::PointsWriter;

    /// A multivector's list outside its values fails the body, not sends an empty vector.
    #[test]
    fn a_multivector_list_outside_its_values_fails() {
        let values = [1.0f32, 2.0];
        let fits = [0..1, 1..2];
        let json = serde_json::to_string(&Multi {
            values: &values,
            lists: &fits,
        });
        assert_eq!(json.unwrap(), "[[1.0],[2.0]]");
        let outside = [0..1, 1..3];
        let json = serde_json::to_string(&Multi {
            values: &values,
            lists: &outside,
        });
        assert!(json.is_err_and(|e| e.to_string().contains("outside its values")));
    }

    /// A point that would take a body past its budget is left out of it, the body as it was;
    /// alone in a body, a point may pass it.
    #[test]
    fn a_point_past_the_budget_is_left_for_the_next_body() {
        let columns = Columns::new(&[("".into(), VectorKind::Dense)]).unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut writer = PointsWriter::new(file.reopen().unwrap(), columns).unwrap();
        for i in 0..2u64 {
            writer
                .push(&Point {
                    id: PointId::Num(i),
                    payload: Some(json!({"text": "x".repeat(100)})),
                    shard_key: None,
                    vectors: [("".to_string(), VectorValue::Dense(vec![0.5; 8]))].into(),
                })
                .unwrap();
        }
        writer.finish().unwrap();
        let reader = PointsReader::open(file.reopen().unwrap()).unwrap();
        let mut chunks = reader.chunks();
        assert!(chunks.advance().unwrap());
        let chunk = chunks.chunk();
        let (first, second) = (chunk.point(0).unwrap(), chunk.point(1).unwrap());
        let mut body = UpsertBody::default();
        // Alone, past a budget of one byte.
        assert!(body.push_within(&first, 1).unwrap());
        let alone = body.bytes().to_vec();
        assert!(!body.push_within(&second, alone.len() + 100).unwrap());
        assert_eq!((body.len(), body.bytes()), (1, &alone[..]));
        body.finish().unwrap();
        let sent: Value = serde_json::from_slice(body.bytes()).unwrap();
        assert_eq!(sent["points"].as_array().map(Vec::len), Some(1));
        // Within a budget it fits, it goes in.
        let mut body = UpsertBody::default();
        assert!(body.push_within(&first, usize::MAX).unwrap());
        assert!(body.push_within(&second, usize::MAX).unwrap());
        assert_eq!(body.len(), 2);
    }

    /// A body written from the file's rows is the JSON of the points themselves.
    #[test]
    fn a_body_is_the_json_of_the_points_read() {
        let columns = Columns::new(&[
            ("".into(), VectorKind::Dense),
            ("bm25".into(), VectorKind::Sparse),
            ("colbert".into(), VectorKind::Multi),
        ])
        .unwrap();
        let points: Vec<Point> = (0..5u64)
            .map(|i| {
                let mut vectors = BTreeMap::new();
                vectors.insert("".into(), VectorValue::Dense(vec![i as f32, 0.1, -2.5e-8]));
                vectors.insert(
                    "bm25".into(),
                    VectorValue::Sparse {
                        indices: vec![3, u32::MAX - 1],
                        values: vec![0.5, 1.0],
                    },
                );
                if i % 2 == 0 {
                    vectors.insert(
                        "colbert".into(),
                        VectorValue::Multi(vec![vec![1.0, 2.0], vec![], vec![3.0]]),
                    );
                }
                Point {
                    id: match i {
                        0 => PointId::Uuid("19c3756f-402f-4856-b279-517ecd223cf2".into()),
                        _ => PointId::Num(u64::MAX - i),
                    },
                    payload: (i != 1)
                        .then(|| json!({"n": 1152921504606846977u64, "t": "é\"", "f": 0.1})),
                    shard_key: None,
                    vectors,
                }
            })
            .collect();
        let file = crate::logical::written_file(columns, &points);
        let reader = PointsReader::open(file.reopen().unwrap()).unwrap();
        let mut chunks = reader.chunks();
        let mut body = UpsertBody::default();
        body.reset(Some(json!("tenant-a")));
        while chunks.advance().unwrap() {
            for row in 0..chunks.chunk().rows() {
                body.push(&chunks.chunk().point(row).unwrap()).unwrap();
            }
        }
        body.finish().unwrap();
        body.finish().unwrap();
        let sent: Value = serde_json::from_slice(body.bytes()).unwrap();
        // Floats as float32 text (as Qdrant's own JSON and serde write them), then read.
        let floats = |v: &[f32]| -> Value {
            serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
        };
        let expected: Vec<Value> = points
            .iter()
            .map(|p| {
                let vectors: serde_json::Map<String, Value> = p
                    .vectors
                    .iter()
                    .map(|(name, v)| {
                        let v = match v {
                            VectorValue::Dense(d) => floats(d),
                            VectorValue::Sparse { indices, values } => {
                                json!({"indices": indices, "values": floats(values)})
                            }
                            VectorValue::Multi(m) => {
                                Value::Array(m.iter().map(|v| floats(v)).collect())
                            }
                        };
                        (name.clone(), v)
                    })
                    .collect();
                json!({"id": p.id.to_json(), "vector": vectors,
                       "payload": p.payload.clone().unwrap_or(json!({}))})
            })
            .collect();
        assert_eq!(sent, json!({"points": expected, "shard_key": "tenant-a"}));
        assert_eq!(body.len(), 5);
        // The same points held by aimem are written byte for byte the same.
        let mut owned = UpsertBody::default();
        owned.reset(Some(json!("tenant-a")));
        for point in &points {
            owned.push_point(point).unwrap();
        }
        owned.finish().unwrap();
        assert_eq!(
            String::from_utf8_lossy(owned.bytes()),
            String::from_utf8_lossy(body.bytes())
        );
        body.reset(None);
        body.finish().unwrap();
        assert_eq!(body.bytes(), b"{\"points\":[]}");
    }
}
