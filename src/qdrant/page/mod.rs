//! A scroll's answer read fast: `POST /collections/{c}/points/scroll` with every vector and
//! the payload, parsed straight from its bytes into the [`RawPage`] serde would build.
//!
//! Why: a logical backup spent half its CPU in serde_json reading vectors' numbers (each an
//! f64 first, then an f32). This reader knows the page's shape and wants f32s ([`number`]).
//!
//! Safety: it reads the shapes real servers send (Qdrant 1.16 and 1.18, `tests/fixtures`) and
//! nothing else. Whatever it does not know (a key it does not expect, an escape in a key, a
//! repeated field, an id or index serde would refuse, a number outside JSON's grammar or
//! f32's range, nesting deeper than [`MAX_DEPTH`]) makes it answer `None`, and the caller
//! hands the page to serde: every error, and every odd case, stays serde's. Payloads, shard
//! keys and the values it skips (`status`, `time`, `usage`, `order_value`) are only delimited
//! here; serde_json reads (or checks) them, so they are validated exactly as before.
//!
//! Numbers: each is the f32 serde's path gives, bit for bit (serde_json's f64, or its integer,
//! cast `as f32`; see [`number`]), crafted ones included. That is not always the f32 nearest
//! to the decimal (rounding twice can land one f32 off for a decimal within an f64 hair of a
//! point halfway between two f32s), but no f32 Qdrant writes is such a decimal (all 2^32
//! checked, see the tests), and either reader gives the same page.

mod number;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde_json::Value;

use super::points::{MAX_PAGE, RawId, RawPage, RawRecord, RawVectors};
use super::types::Envelope;
use crate::logical::columns::MAX_VECTORS;
use crate::logical::point::{PointId, VectorValue};

/// How deep a payload, a shard key or a skipped value may nest. With the page's own five
/// levels it stays far below serde_json's limit of 128, so serde reads such a value alone
/// exactly as it would within the whole page.
const MAX_DEPTH: usize = 64;

/// A scroll's answer as serde reads it (`Envelope<RawPage>`), or `None` when it is not in a
/// shape this reader knows (the caller then hands it to serde).
pub(super) fn parse(body: &[u8]) -> Option<Envelope<RawPage>> {
    let mut reader = Reader {
        bytes: body,
        at: 0,
        scratch: Vec::new(),
    };
    let page = reader.envelope()?;
    reader.end()?;
    Some(Envelope { result: Some(page) })
}

/// Where the reading is in the body. Every method consumes what it reads and answers `None`
/// when it meets something it does not know (the position is then of no further use).
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// One vector's numbers while they are read, kept from one vector to the next: each
    /// vector is then copied out at its exact length.
    scratch: Vec<f32>,
}

impl<'a> Reader<'a> {
    /// `{"result": page, "status": …, "time": …, "usage": …}`.
    fn envelope(&mut self) -> Option<RawPage> {
        let mut page = None;
        self.object(|r, key| match key {
            b"result" if page.is_none() => {
                page = Some(r.page()?);
                Some(())
            }
            b"status" | b"time" | b"usage" => r.ignored(),
            _ => None,
        })?;
        page
    }

    /// `{"points": [record…], "next_page_offset": id | null}`.
    fn page(&mut self) -> Option<RawPage> {
        let (mut points, mut next) = (None, None);
        self.object(|r, key| {
            match key {
                b"points" if points.is_none() => points = Some(r.records()?),
                b"next_page_offset" if next.is_none() => next = Some(r.nullable(Self::id)?),
                _ => return None,
            }
            Some(())
        })?;
        Some(RawPage {
            points: points?,
            next_page_offset: next.flatten().map(RawId),
        })
    }

    /// A list of at most [`MAX_PAGE`] records (serde refuses a longer one).
    fn records(&mut self) -> Option<Vec<RawRecord>> {
        let mut records = Vec::new();
        self.array(|r| {
            if records.len() == MAX_PAGE {
                return None;
            }
            records.push(r.record()?);
            Some(())
        })?;
        Some(records)
    }

    /// `{"id", "payload"?, "vector"?, "shard_key"?, "order_value"?}`.
    fn record(&mut self) -> Option<RawRecord> {
        let (mut id, mut payload, mut vector, mut shard_key) = (None, None, None, None);
        self.object(|r, key| {
            match key {
                b"id" if id.is_none() => id = Some(r.id()?),
                b"payload" if payload.is_none() => payload = Some(r.nullable(Self::json)?),
                b"vector" if vector.is_none() => vector = Some(r.nullable(Self::vectors)?),
                b"shard_key" if shard_key.is_none() => shard_key = Some(r.nullable(Self::json)?),
                b"order_value" => r.ignored()?,
                _ => return None,
            }
            Some(())
        })?;
        Some(RawRecord {
            id: RawId(id?),
            payload: payload.flatten(),
            vector: vector.flatten().map(RawVectors),
            shard_key: shard_key.flatten(),
        })
    }

    /// A point id: an unsigned integer that fits a u64, or a UUID string (checked as the
    /// serde path checks it).
    fn id(&mut self) -> Option<PointId> {
        if self.peek()? != b'"' {
            return self.unsigned().map(PointId::Num);
        }
        let text = std::str::from_utf8(self.plain_string()?).ok()?;
        match PointId::from_text(text)? {
            id @ PointId::Uuid(_) => Some(id),
            PointId::Num(_) => None,
        }
    }

    /// A point's vectors: a list (the unnamed vector alone) or an object of named vectors.
    fn vectors(&mut self) -> Option<BTreeMap<String, VectorValue>> {
        if self.peek()? == b'[' {
            return Some(BTreeMap::from([(String::new(), self.list()?)]));
        }
        let mut vectors = BTreeMap::new();
        self.object(|r, name| {
            let name = std::str::from_utf8(name).ok()?;
            // A repeated name: serde keeps the last; this reader leaves that to serde.
            if vectors.len() >= MAX_VECTORS || vectors.contains_key(name) {
                return None;
            }
            let vector = match r.peek()? {
                b'[' => r.list()?,
                _ => r.sparse()?,
            };
            vectors.insert(name.to_owned(), vector);
            Some(())
        })?;
        Some(vectors)
    }

    /// A list of numbers (dense) or of lists of numbers (multivector), told by its first
    /// element; `[]` is an empty dense vector, as serde reads it.
    fn list(&mut self) -> Option<VectorValue> {
        let open = self.at;
        self.eat(b'[')?;
        let first = self.peek()?;
        self.at = open;
        if first != b'[' {
            return self.numbers().map(VectorValue::Dense);
        }
        let mut vectors = Vec::new();
        self.array(|r| {
            vectors.push(r.numbers()?);
            Some(())
        })?;
        Some(VectorValue::Multi(vectors))
    }

    /// `{"indices": [u32…], "values": [number…]}`, as many of each.
    fn sparse(&mut self) -> Option<VectorValue> {
        let (mut indices, mut values) = (None, None);
        self.object(|r, key| {
            match key {
                b"indices" if indices.is_none() => indices = Some(r.indices()?),
                b"values" if values.is_none() => values = Some(r.numbers()?),
                _ => return None,
            }
            Some(())
        })?;
        let (indices, values) = (indices?, values?);
        (indices.len() == values.len()).then_some(VectorValue::Sparse { indices, values })
    }

    fn indices(&mut self) -> Option<Vec<u32>> {
        let mut indices = Vec::new();
        self.array(|r| {
            indices.push(u32::try_from(r.unsigned()?).ok()?);
            Some(())
        })?;
        Some(indices)
    }

    /// A list of numbers, each the f32 serde's path reads.
    fn numbers(&mut self) -> Option<Vec<f32>> {
        let mut values = std::mem::take(&mut self.scratch);
        values.clear();
        let read = self.array(|r| {
            r.skip_whitespace();
            let (value, len) = number::f32_prefix(&r.bytes[r.at..])?;
            r.at += len;
            values.push(value);
            Some(())
        });
        let vector = read.map(|()| values.clone());
        self.scratch = values;
        vector
    }

    /// An unsigned integer as serde reads one into a u64: digits only, no leading zero
    /// (serde makes a sign, a fraction or an exponent a float, which an id or index is not).
    fn unsigned(&mut self) -> Option<u64> {
        self.skip_whitespace();
        let rest = &self.bytes[self.at..];
        let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (digits, after) = rest.split_at(len);
        if len == 0
            || (digits[0] == b'0' && len > 1)
            || matches!(after.first(), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        let value = digits.iter().try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;
        self.at += len;
        Some(value)
    }

    /// `null` (as `None`), or what `read` reads.
    fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            let null = self.bytes.get(self.at..self.at + 4)? == b"null";
            self.at += 4;
            return null.then_some(None);
        }
        read(self).map(Some)
    }

    /// Any JSON value, read by serde_json itself once delimited here.
    fn json(&mut self) -> Option<Value> {
        serde_json::from_slice(self.extent()?).ok()
    }

    /// A value nobody keeps, checked as serde checks a value it skips.
    fn ignored(&mut self) -> Option<()> {
        serde_json::from_slice::<IgnoredAny>(self.extent()?)
            .ok()
            .map(drop)
    }

    /// The bytes of the value that starts here, consumed. This only finds where it ends
    /// (following strings and their escapes, at most [`MAX_DEPTH`] levels deep): serde then
    /// checks that they are one value.
    fn extent(&mut self) -> Option<&'a [u8]> {
        self.skip_whitespace();
        let start = self.at;
        match *self.bytes.get(self.at)? {
            b'"' => self.skip_string()?,
            b'[' | b'{' => self.skip_nested()?,
            // A number or a literal: up to what may follow a value.
            _ => {
                while let Some(b) = self.bytes.get(self.at) {
                    if matches!(b, b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t') {
                        break;
                    }
                    self.at += 1;
                }
            }
        }
        Some(&self.bytes[start..self.at])
    }

    /// Past the string that starts here (at its opening quote).
    fn skip_string(&mut self) -> Option<()> {
        self.at += 1;
        loop {
            let rest = self.bytes.get(self.at..)?;
            self.at += rest.iter().position(|&b| b == b'"' || b == b'\\')?;
            if self.bytes[self.at] == b'"' {
                self.at += 1;
                return Some(());
            }
            // A backslash and the byte it escapes (`\u` is followed by plain hex digits).
            self.at += 2;
        }
    }

    /// Past the object or list that starts here, to its closing bracket.
    fn skip_nested(&mut self) -> Option<()> {
        let mut depth = 0;
        loop {
            match *self.bytes.get(self.at)? {
                b'"' => {
                    self.skip_string()?;
                    continue;
                }
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return None;
                    }
                }
                b']' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        self.at += 1;
                        return Some(());
                    }
                }
                _ => {}
            }
            self.at += 1;
        }
    }

    /// An object, its keys plain strings: `each` reads the value of each key in turn.
    fn object(&mut self, mut each: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let key = self.plain_string()?;
            self.eat(b':')?;
            each(self, key)?;
            if self.after_element(b'}')? {
                return Some(());
            }
        }
    }

    /// A list: `each` reads each element in turn.
    fn array(&mut self, mut each: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            each(self)?;
            if self.after_element(b']')? {
                return Some(());
            }
        }
    }

    /// After an element of a list or object: a comma (`false`, more follow) or the `close`
    /// bracket (`true`, consumed).
    fn after_element(&mut self, close: u8) -> Option<bool> {
        let next = self.peek()?;
        self.at += 1;
        match next {
            b',' => Some(false),
            _ => (next == close).then_some(true),
        }
    }

    /// A string without escapes or control characters, as its bytes (any other, serde would
    /// decode or refuse: this reader leaves it to serde). Not checked as UTF-8 here.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.at;
        let rest = &self.bytes[start..];
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        self.at += len + 1;
        Some(&rest[..len])
    }

    /// Consumes `byte`, after any whitespace.
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The next byte after any whitespace (not consumed).
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// Nothing but whitespace is left.
    fn end(&mut self) -> Option<()> {
        self.skip_whitespace();
        (self.at == self.bytes.len()).then_some(())
    }
}
