//! Reading untrusted JSON in bounded memory.
//!
//! A `serde_json::Value` costs far more than its text: each non-empty object is a B-tree node of
//! about 630 bytes, so `{"a":0},` (8 bytes) becomes about 700. Parsing a crafted file or answer
//! into a `Value` tree multiplies its size by up to a hundred. So aimem reads untrusted JSON
//! into typed structs that keep only what they use, skipping the rest unread
//! ([`serde::de::IgnoredAny`]) and bounding every list while it is read ([`at_most`]). Where
//! open-ended JSON must be kept (a collection's config in a schema fingerprint), the `Value` is
//! built against a [`Budget`]: each node's memory is charged as it is built, and the parse
//! stops once the budget is spent, before the memory is.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How deep a kept `Value` may nest (serde_json stops at 128 on its own; real configs use 5).
pub const MAX_DEPTH: usize = 64;

/// The budget of one `Value` read outside [`within`]: a collection info of real Qdrant costs
/// under 100 KiB.
pub const DEFAULT_BUDGET: usize = 8 * 1024 * 1024;

// What building a `Value` allocates, as charged (close to the real figures on 64-bit, rounded
// up): every value is a 32-byte enum in its parent; a string adds its bytes; a list adds a
// slot per element (and room to grow); a non-empty object adds its B-tree node and, per
// entry, its key and a share of further nodes.
const VALUE: usize = 32;
const ALLOCATION: usize = 16;
const LIST_SLOT: usize = 32;
const OBJECT_NODE: usize = 640;
const OBJECT_ENTRY: usize = 64;

/// What kept `Value`s may still allocate, in bytes (an estimate, see the module comment).
#[derive(Debug)]
pub struct Budget {
    left: Cell<usize>,
    total: usize,
    spent: Cell<bool>,
}

impl Budget {
    pub fn new(bytes: usize) -> Budget {
        Budget {
            left: Cell::new(bytes),
            total: bytes,
            spent: Cell::new(false),
        }
    }

    /// What is left of a budget of `total` (see [`within`]): a spent one reports `total`.
    fn remainder(left: usize, total: usize) -> Budget {
        Budget {
            left: Cell::new(left),
            total,
            spent: Cell::new(false),
        }
    }

    /// Whether a parse stopped because this budget ran out.
    pub fn is_spent(&self) -> bool {
        self.spent.get()
    }

    fn left(&self) -> usize {
        self.left.get()
    }

    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        match self.left.get().checked_sub(bytes) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.spent.set(true);
                Err(E::custom(over_budget(self.total)))
            }
        }
    }
}

/// The error text of a spent budget.
pub fn over_budget(total: usize) -> String {
    format!(
        "more JSON structure than aimem keeps in memory (over {} KiB once parsed); no real \
         Qdrant file or answer holds that much",
        total / 1024
    )
}

/// A seed that builds a `Value` within a budget.
pub struct BoundedSeed<'a> {
    budget: &'a Budget,
    depth: usize,
}

impl<'a> BoundedSeed<'a> {
    pub fn new(budget: &'a Budget) -> BoundedSeed<'a> {
        BoundedSeed { budget, depth: 0 }
    }
}

impl<'de> DeserializeSeed<'de> for BoundedSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom(format!(
                "JSON nested deeper than {MAX_DEPTH} levels"
            )));
        }
        self.budget.charge(VALUE)?;
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BoundedSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.charge(v.len() + ALLOCATION)?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.charge(v.len() + ALLOCATION)?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.budget.charge(ALLOCATION)?;
        let mut items = Vec::new();
        loop {
            self.budget.charge(LIST_SLOT)?;
            let seed = BoundedSeed {
                budget: self.budget,
                depth: self.depth + 1,
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => break,
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.is_empty() {
                self.budget.charge(OBJECT_NODE)?;
            }
            self.budget.charge(OBJECT_ENTRY + key.len() + ALLOCATION)?;
            let seed = BoundedSeed {
                budget: self.budget,
                depth: self.depth + 1,
            };
            let value = map.next_value_seed(seed)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Parses `bytes` into a `Value` within `budget`.
pub fn value_from_slice(bytes: &[u8], budget: &Budget) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = BoundedSeed::new(budget).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// The budget of a [`within`]: what is left of `total`, and whether a parse ran out of it.
#[derive(Clone, Copy)]
struct Shared {
    left: usize,
    total: usize,
    spent: bool,
}

thread_local! {
    /// The budget of the [`within`] running on this thread: what is left, and whether a parse
    /// ran out of it.
    static SHARED: Cell<Option<Shared>> = const { Cell::new(None) };
}

/// Runs `read`, during which every [`Bounded`] value (and every field read with
/// [`bounded_value`] and its kin) is built on `budget`: the schemas of a manifest, say,
/// together rather than each on its own. Afterwards `budget` holds what is left.
pub fn within<R>(budget: &Budget, read: impl FnOnce() -> R) -> R {
    let outer = SHARED.with(|s| {
        s.replace(Some(Shared {
            left: budget.left(),
            total: budget.total,
            spent: false,
        }))
    });
    let result = read();
    if let Some(shared) = SHARED.with(|s| s.replace(outer)) {
        budget.left.set(shared.left);
        if shared.spent {
            budget.spent.set(true);
        }
    }
    result
}

/// Builds one `Value` on the budget of the [`within`] running, else on its own
/// [`DEFAULT_BUDGET`].
fn shared_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    let shared = SHARED.with(Cell::get);
    let budget = match shared {
        Some(shared) => Budget::remainder(shared.left, shared.total),
        None => Budget::new(DEFAULT_BUDGET),
    };
    let result = BoundedSeed::new(&budget).deserialize(deserializer);
    if let Some(shared) = shared {
        SHARED.with(|s| {
            s.set(Some(Shared {
                left: budget.left(),
                spent: shared.spent || budget.is_spent(),
                ..shared
            }))
        });
    }
    result
}

/// `T` read only from a JSON object: a derived struct would also take a list of its fields in
/// order, which no Qdrant file is.
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Object<T>, D::Error> {
        struct Only<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Only<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        deserializer.deserialize_map(Only(PhantomData))
    }
}

/// A JSON value kept whole, built within a budget (see [`within`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(transparent)]
pub struct Bounded(pub Value);

impl<'de> Deserialize<'de> for Bounded {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Bounded, D::Error> {
        shared_value(deserializer).map(Bounded)
    }
}

/// `deserialize_with` for a kept `Value` field.
pub fn bounded_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    shared_value(deserializer)
}

/// `deserialize_with` for an optional kept `Value` field (`null` is `None`).
pub fn bounded_option<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    Option::<Bounded>::deserialize(deserializer).map(|v| v.map(|b| b.0))
}

/// `deserialize_with` for a JSON object of kept values.
pub fn bounded_object<'de, D, M>(deserializer: D) -> Result<M, D::Error>
where
    D: Deserializer<'de>,
    M: FromIterator<(String, Value)>,
{
    match shared_value(deserializer)? {
        Value::Object(map) => Ok(map.into_iter().collect()),
        other => Err(de::Error::invalid_type(
            unexpected(&other),
            &"a JSON object",
        )),
    }
}

fn unexpected(value: &Value) -> de::Unexpected<'static> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("a number"),
        Value::String(_) => de::Unexpected::Other("a string"),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

/// `deserialize_with` for a list of at most `N` items: the item after the `N`th is an error,
/// before it is read.
pub fn at_most<'de, D, T, const N: usize>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_seq(AtMost::<T, N>(PhantomData))
}

struct AtMost<T, const N: usize>(PhantomData<T>);

impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for AtMost<T, N> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list of at most {N} items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            if items.len() == N {
                return Err(de::Error::custom(format!(
                    "a list of more than {N} items, more than aimem accepts"
                )));
            }
            items.push(item);
        }
        Ok(items)
    }
}

/// The number of items of a list, read without keeping them; anything else counts 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count(pub usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Count, D::Error> {
        struct Counter;
        impl<'de> Visitor<'de> for Counter {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Count, A::Error> {
                IgnoredAny.visit_map(map).map(|_| Count(0))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_str<E>(self, _: &str) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_unit<E>(self) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_none<E>(self) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Count, D::Error> {
                d.deserialize_any(self)
            }
        }
        deserializer.deserialize_any(Counter)
    }
}

/// Strings longer than this are not kept by [`Scalar`]: no field aimem reads that way needs more.
pub const MAX_SCALAR_TEXT: usize = 4096;

/// One JSON value read for a scalar field: what it is, never a tree. Lists and objects are
/// skipped unread; this is how a field whose type a hostile server may change is read
/// without failing the whole answer (as `Value::as_u64` and its kin did).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Scalar {
    #[default]
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Text(String),
    /// A string longer than [`MAX_SCALAR_TEXT`] (its length).
    LongText(usize),
    List,
    Object,
}

impl Scalar {
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Scalar::Unsigned(n) => Some(*n),
            Scalar::Signed(n) => u64::try_from(*n).ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Scalar::Null)
    }

    /// What kind of value it is, for messages (never its content).
    pub fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "a boolean",
            Scalar::Unsigned(_) | Scalar::Signed(_) | Scalar::Float(_) => "a number",
            Scalar::Text(_) | Scalar::LongText(_) => "a string",
            Scalar::List => "a list",
            Scalar::Object => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Signed(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Unsigned(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(match v.len() {
                    n if n > MAX_SCALAR_TEXT => Scalar::LongText(n),
                    _ => Scalar::Text(v.to_string()),
                })
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| Scalar::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar, A::Error> {
                IgnoredAny.visit_map(map).map(|_| Scalar::Object)
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// Whether the first byte that is not white space opens an object: typed structs also accept
/// a list of their fields in order, which no file aimem reads is.
pub fn is_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What `budget` has left.
    pub(crate) fn left(budget: &Budget) -> usize {
        budget.left()
    }

    fn repeated(n: usize) -> String {
        format!("[{}]", vec![r#"{"a":0}"#; n].join(","))
    }

    #[test]
    fn a_value_within_its_budget_is_the_plain_parse() {
        let text = r#"{"params": {"vectors": {"size": 768, "distance": "Cosine"}}, "x": [1, -2, 0.5, "é", null, true]}"#;
        let budget = Budget::new(DEFAULT_BUDGET);
        let value = value_from_slice(text.as_bytes(), &budget).unwrap();
        assert_eq!(value, serde_json::from_str::<Value>(text).unwrap());
        assert!(!budget.is_spent());
    }

    /// `{"a":0}` repeated costs about a hundred times its text as a `Value`: the budget stops
    /// the parse (the charge is a lower bound of what the tree would really take).
    #[test]
    fn repeated_small_objects_spend_the_budget_before_the_memory() {
        let text = repeated(20_000); // 160 KB of text, about 14 MB as a Value
        let budget = Budget::new(1024 * 1024);
        let err = value_from_slice(text.as_bytes(), &budget).unwrap_err();
        assert!(budget.is_spent());
        assert!(err.to_string().contains("more JSON structure"), "{err}");
        let budget = Budget::new(64 * 1024 * 1024);
        assert!(value_from_slice(text.as_bytes(), &budget).is_ok());
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 2), "]".repeat(MAX_DEPTH + 2));
        let err = value_from_slice(deep.as_bytes(), &Budget::new(DEFAULT_BUDGET)).unwrap_err();
        assert!(err.to_string().contains("deeper"), "{err}");
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(value_from_slice(fine.as_bytes(), &Budget::new(DEFAULT_BUDGET)).is_ok());
    }

    #[test]
    fn values_read_within_one_budget_share_it() {
        #[derive(Deserialize)]
        struct Two {
            a: Bounded,
            b: Bounded,
        }
        let one = repeated(500);
        let text = format!(r#"{{"a": {one}, "b": {one}}}"#);
        let cost = {
            let budget = Budget::new(DEFAULT_BUDGET);
            value_from_slice(one.as_bytes(), &budget).unwrap();
            DEFAULT_BUDGET - budget.left()
        };
        // Each fits alone; together they do not.
        let budget = Budget::new(cost + cost / 2);
        let shared = within(&budget, || serde_json::from_str::<Two>(&text));
        // The error names the whole budget, not what was left of it for `b`.
        let error = shared.err().unwrap().to_string();
        let whole = format!("over {} KiB", (cost + cost / 2) / 1024);
        assert!(error.contains(&whole), "{error}");
        assert!(budget.is_spent());
        let budget = Budget::new(2 * cost + 64);
        let shared = within(&budget, || serde_json::from_str::<Two>(&text)).unwrap();
        assert_eq!(shared.a, shared.b);
        assert!(!budget.is_spent());
        assert_eq!(budget.left(), 64);
        // Outside `within` each value has its own.
        assert!(serde_json::from_str::<Two>(&text).is_ok());
    }

    #[test]
    fn lists_are_cut_at_their_bound_while_read() {
        #[derive(Deserialize, Debug)]
        struct Listed {
            #[serde(deserialize_with = "at_most::<_, _, 3>")]
            items: Vec<u32>,
        }
        assert_eq!(
            serde_json::from_str::<Listed>(r#"{"items": [1, 2, 3]}"#)
                .unwrap()
                .items,
            [1, 2, 3]
        );
        let err = serde_json::from_str::<Listed>(r#"{"items": [1, 2, 3, 4]}"#).unwrap_err();
        assert!(err.to_string().contains("more than 3"), "{err}");
        // The cut happens at the 4th item: what follows is never read.
        let err = serde_json::from_str::<Listed>(r#"{"items": [1, 2, 3, 4, oops"#).unwrap_err();
        assert!(err.to_string().contains("more than 3"), "{err}");
    }

    #[test]
    fn scalars_and_counts_skip_trees() {
        let s: Scalar = serde_json::from_str(&repeated(10)).unwrap();
        assert_eq!(s, Scalar::List);
        let s: Scalar = serde_json::from_str(r#"{"x": [1, {"y": 2}]}"#).unwrap();
        assert_eq!(s, Scalar::Object);
        let s: Scalar = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(s.as_u64(), Some(u64::MAX));
        let s: Scalar = serde_json::from_str("-1").unwrap();
        assert_eq!(s.as_u64(), None);
        let long = format!("\"{}\"", "x".repeat(MAX_SCALAR_TEXT + 1));
        let s: Scalar = serde_json::from_str(&long).unwrap();
        assert_eq!(s, Scalar::LongText(MAX_SCALAR_TEXT + 1));
        assert_eq!(s.as_str(), None);
        let c: Count = serde_json::from_str(&repeated(7)).unwrap();
        assert_eq!(c, Count(7));
        let c: Count = serde_json::from_str(r#"{"a": 1}"#).unwrap();
        assert_eq!(c, Count(0));
    }
}
