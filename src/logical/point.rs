//! A point as a logical backup holds it: its id, payload, shard key and vectors, in the shapes
//! Qdrant's scroll answers them (docs/logical-format.md).

use std::collections::BTreeMap;

use serde_json::Value;

/// A point id: an unsigned integer or a UUID (hyphenated, lower case, as Qdrant answers it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PointId {
    Num(u64),
    Uuid(String),
}

impl PointId {
    /// The `id` column's text: the integer in decimal, the UUID as is. A UUID never reads as
    /// an integer, so the text tells the kind.
    pub fn to_text(&self) -> String {
        match self {
            PointId::Num(n) => n.to_string(),
            PointId::Uuid(u) => u.clone(),
        }
    }

    /// Reads the `id` column's text back; `None` for text that is neither kind.
    pub fn from_text(text: &str) -> Option<PointId> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().ok().map(PointId::Num);
        }
        is_uuid(text).then(|| PointId::Uuid(text.to_string()))
    }

    /// As Qdrant's JSON writes it.
    pub fn to_json(&self) -> Value {
        match self {
            PointId::Num(n) => Value::from(*n),
            PointId::Uuid(u) => Value::from(u.as_str()),
        }
    }
}

/// Eight, four, four, four and twelve lower-case hex digits, joined by hyphens.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, len)| {
            g.len() == len && g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

/// One vector of a point.
#[derive(Debug, Clone, PartialEq)]
pub enum VectorValue {
    /// A dense vector (float32, float16 and uint8 collections alike: Qdrant answers their
    /// values as numbers, each exact in a float32).
    Dense(Vec<f32>),
    /// A sparse vector: indices and their values, in the server's order.
    Sparse { indices: Vec<u32>, values: Vec<f32> },
    /// A multivector: several dense vectors of one size.
    Multi(Vec<Vec<f32>>),
}

/// A point: what one row of a logical backup holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub id: PointId,
    /// The payload object (`None`: the point has none).
    pub payload: Option<Value>,
    /// The shard key of a custom-sharded collection's point.
    pub shard_key: Option<Value>,
    /// By vector name (`""`: the unnamed vector). A point may lack a named vector.
    pub vectors: BTreeMap<String, VectorValue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_kind_through_text() {
        for id in [
            PointId::Num(0),
            PointId::Num(u64::MAX),
            PointId::Uuid("19c3756f-402f-4856-b279-517ecd223cf2".into()),
        ] {
            assert_eq!(PointId::from_text(&id.to_text()), Some(id));
        }
        for bad in [
            "",
            "-1",
            "18446744073709551616",
            "19C3756F-402F-4856-B279-517ECD223CF2",
            "x",
        ] {
            assert_eq!(PointId::from_text(bad), None, "{bad}");
        }
    }
}
