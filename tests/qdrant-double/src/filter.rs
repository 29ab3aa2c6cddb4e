//! Qdrant's point filter (`must`, `should`, `must_not`, nested filters) over a point's id and
//! payload, as scroll, count and delete by filter use it. The semantics follow the real
//! server's condition checker: a key is a path into the payload (`a.b`, `a[]`, `a[0]`) whose
//! intermediate arrays are only entered with `[]` or an index, a leaf array matches when any
//! element matches, and a field the point lacks matches no field condition. A condition the
//! double does not evaluate (geo, text, values count, nested, datetime ranges, …) is refused
//! with a 400 rather than matched silently.

use serde_json::{Map, Value};

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    must: Vec<Condition>,
    should: Vec<Condition>,
    must_not: Vec<Condition>,
    /// `should` was given (an empty `should` list then matches nothing, as in Qdrant).
    has_should: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Filter(Filter),
    Field { key: Path, test: FieldTest },
    IsEmpty(Path),
    HasId(Vec<Value>),
}

#[derive(Debug, Clone, PartialEq)]
enum FieldTest {
    Value(Value),
    Any(Vec<Value>),
    Except(Vec<Value>),
    Range([Option<f64>; 4]),
}

/// A payload key, split into steps.
#[derive(Debug, Clone, PartialEq)]
struct Path(Vec<Step>);

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Every,
    Index(usize),
}

fn unsupported(what: &str) -> String {
    format!("Bad request: qdrant-double does not support {what} in a filter")
}

fn format_error(what: &str) -> String {
    format!("Format error in JSON body: {what}")
}

impl Filter {
    /// Parses a filter object; `null` is no filter.
    pub fn parse(value: &Value) -> Result<Option<Filter>, String> {
        match value {
            Value::Null => Ok(None),
            other => Filter::parse_object(other).map(Some),
        }
    }

    fn parse_object(value: &Value) -> Result<Filter, String> {
        let map = value
            .as_object()
            .ok_or_else(|| format_error("a filter must be an object"))?;
        for key in map.keys() {
            match key.as_str() {
                "must" | "should" | "must_not" => {}
                "min_should" => return Err(unsupported("`min_should`")),
                other => return Err(format_error(&format!("unknown filter field `{other}`"))),
            }
        }
        let list = |name: &str| -> Result<Vec<Condition>, String> {
            match map.get(name) {
                None | Some(Value::Null) => Ok(Vec::new()),
                // A single condition stands for a list of one, as in Qdrant.
                Some(Value::Array(items)) => items.iter().map(Condition::parse).collect(),
                Some(one) => Ok(vec![Condition::parse(one)?]),
            }
        };
        Ok(Filter {
            must: list("must")?,
            should: list("should")?,
            must_not: list("must_not")?,
            has_should: map.get("should").is_some_and(|v| !v.is_null()),
        })
    }

    /// Whether the point with this `id` and `payload` passes.
    pub fn matches(&self, id: &Value, payload: &Value) -> bool {
        let check = |c: &Condition| c.matches(id, payload);
        self.must.iter().all(check)
            && (!self.has_should || self.should.iter().any(check))
            && !self.must_not.iter().any(check)
    }
}

impl Condition {
    fn parse(value: &Value) -> Result<Condition, String> {
        let map = value.as_object().ok_or_else(|| {
            format_error("data did not match any variant of untagged enum Condition")
        })?;
        if map.contains_key("must") || map.contains_key("should") || map.contains_key("must_not") {
            return Filter::parse_object(value).map(Condition::Filter);
        }
        if let Some(ids) = map.get("has_id") {
            let ids = ids
                .as_array()
                .ok_or_else(|| format_error("`has_id` must be a list of point ids"))?;
            let ids = ids.iter().map(normal_id).collect::<Result<Vec<_>, _>>()?;
            return Ok(Condition::HasId(ids));
        }
        if let Some(field) = map.get("is_empty") {
            let key = field["key"]
                .as_str()
                .ok_or_else(|| format_error("`is_empty` needs a `key`"))?;
            return Path::parse(key).map(Condition::IsEmpty);
        }
        for other in ["is_null", "has_vector", "nested"] {
            if map.contains_key(other) {
                return Err(unsupported(&format!("`{other}`")));
            }
        }
        let Some(key) = map.get("key").and_then(Value::as_str) else {
            return Err(format_error(
                "data did not match any variant of untagged enum Condition",
            ));
        };
        let key = Path::parse(key)?;
        let given: Vec<&str> = map
            .iter()
            .filter(|(k, v)| k.as_str() != "key" && !v.is_null())
            .map(|(k, _)| k.as_str())
            .collect();
        let test = match given.as_slice() {
            ["match"] => parse_match(&map["match"])?,
            ["range"] => parse_range(&map["range"])?,
            [] => return Err(unsupported("a field condition without `match` or `range`")),
            [one] => return Err(unsupported(&format!("`{one}`"))),
            _ => return Err(unsupported("more than one test in one field condition")),
        };
        Ok(Condition::Field { key, test })
    }

    fn matches(&self, id: &Value, payload: &Value) -> bool {
        match self {
            Condition::Filter(filter) => filter.matches(id, payload),
            Condition::HasId(ids) => normal_id(id).is_ok_and(|id| ids.contains(&id)),
            Condition::IsEmpty(path) => path.values(payload).iter().all(|v| match v {
                Value::Null => true,
                Value::Array(items) => items.is_empty(),
                _ => false,
            }),
            Condition::Field { key, test } => key.values(payload).iter().any(|value| match value {
                Value::Array(items) => items.iter().any(|item| test.check(item)),
                one => test.check(one),
            }),
        }
    }
}

/// A point id as the filter compares it (UUIDs lower-case and hyphenated).
fn normal_id(id: &Value) -> Result<Value, String> {
    match id {
        Value::Number(n) if n.is_u64() => Ok(id.clone()),
        Value::String(s) => Ok(Value::String(s.to_ascii_lowercase())),
        other => Err(format_error(&format!("invalid point id {other}"))),
    }
}

fn parse_match(value: &Value) -> Result<FieldTest, String> {
    let map = value
        .as_object()
        .ok_or_else(|| format_error("data did not match any variant of untagged enum Match"))?;
    let one_of = |list: &Value| -> Result<Vec<Value>, String> {
        let items = list.as_array().ok_or_else(|| {
            format_error("data did not match any variant of untagged enum AnyVariants")
        })?;
        let strings = items.iter().all(Value::is_string);
        let integers = items.iter().all(|v| v.is_i64() || v.is_u64());
        match strings || integers {
            true => Ok(items.clone()),
            false => Err(format_error(
                "data did not match any variant of untagged enum AnyVariants",
            )),
        }
    };
    if let Some(v) = map.get("value") {
        return match v {
            Value::String(_) | Value::Bool(_) => Ok(FieldTest::Value(v.clone())),
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(FieldTest::Value(v.clone())),
            _ => Err(format_error(
                "data did not match any variant of untagged enum ValueVariants",
            )),
        };
    }
    if let Some(list) = map.get("any") {
        return one_of(list).map(FieldTest::Any);
    }
    if let Some(list) = map.get("except") {
        return one_of(list).map(FieldTest::Except);
    }
    for other in ["text", "text_any", "phrase"] {
        if map.contains_key(other) {
            return Err(unsupported(&format!("`match.{other}`")));
        }
    }
    Err(format_error(
        "data did not match any variant of untagged enum Match",
    ))
}

fn parse_range(value: &Value) -> Result<FieldTest, String> {
    let map = value.as_object().ok_or_else(|| {
        format_error("data did not match any variant of untagged enum RangeInterface")
    })?;
    let mut bounds = [None; 4];
    for (i, name) in ["gt", "gte", "lt", "lte"].iter().enumerate() {
        match map.get(*name) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => bounds[i] = n.as_f64(),
            Some(Value::String(_)) => return Err(unsupported("datetime ranges")),
            Some(_) => {
                return Err(format_error(
                    "data did not match any variant of untagged enum RangeInterface",
                ));
            }
        }
    }
    if let Some(other) = map
        .keys()
        .find(|k| !["gt", "gte", "lt", "lte"].contains(&k.as_str()))
    {
        return Err(format_error(&format!("unknown range field `{other}`")));
    }
    Ok(FieldTest::Range(bounds))
}

impl FieldTest {
    /// One (non-array) stored value against the test, as Qdrant's `check_match`.
    fn check(&self, stored: &Value) -> bool {
        let as_int = |v: &Value| v.as_i64().map(i128::from).or(v.as_u64().map(i128::from));
        let same = |want: &Value| match (stored, want) {
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Number(_), Value::Number(_)) => {
                as_int(stored).is_some() && as_int(stored) == as_int(want)
            }
            _ => false,
        };
        match self {
            FieldTest::Value(want) => same(want),
            FieldTest::Any(list) => list.iter().any(same),
            FieldTest::Except(list) => match stored {
                Value::Null => false,
                Value::String(_) if list.iter().all(Value::is_string) => !list.iter().any(same),
                // A float is no integer of the list; an integer not in it passes too.
                Value::Number(_) if !list.iter().all(Value::is_string) => !list.iter().any(same),
                _ => true,
            },
            FieldTest::Range([gt, gte, lt, lte]) => stored.as_f64().is_some_and(|x| {
                gt.is_none_or(|b| x > b)
                    && gte.is_none_or(|b| x >= b)
                    && lt.is_none_or(|b| x < b)
                    && lte.is_none_or(|b| x <= b)
            }),
        }
    }
}

impl Path {
    fn parse(key: &str) -> Result<Path, String> {
        let bad = || format_error(&format!("invalid payload key `{key}`"));
        let mut steps = Vec::new();
        for part in key.split('.') {
            let (name, mut rest) = match part.find('[') {
                Some(at) => (&part[..at], &part[at..]),
                None => (part, ""),
            };
            if name.is_empty() || name.contains(['"', ']']) {
                return Err(bad());
            }
            steps.push(Step::Key(name.to_string()));
            while !rest.is_empty() {
                let close = rest.find(']').ok_or_else(bad)?;
                let inside = &rest[1..close];
                steps.push(match inside {
                    "" => Step::Every,
                    n => Step::Index(n.parse().map_err(|_| bad())?),
                });
                rest = &rest[close + 1..];
                if !rest.is_empty() && !rest.starts_with('[') {
                    return Err(bad());
                }
            }
        }
        Ok(Path(steps))
    }

    /// Every value the path reaches in `payload` (none when it reaches nothing).
    fn values<'a>(&self, payload: &'a Value) -> Vec<&'a Value> {
        let mut out = Vec::new();
        walk(&self.0, payload, &mut out);
        out
    }
}

fn walk<'a>(steps: &[Step], value: &'a Value, out: &mut Vec<&'a Value>) {
    let Some((step, rest)) = steps.split_first() else {
        out.push(value);
        return;
    };
    match (step, value) {
        (Step::Key(key), Value::Object(map)) => {
            if let Some(next) = map.get(key) {
                walk(rest, next, out);
            }
        }
        (Step::Index(i), Value::Array(items)) => {
            if let Some(next) = items.get(*i) {
                walk(rest, next, out);
            }
        }
        (Step::Every, Value::Array(items)) => {
            for item in items {
                walk(rest, item, out);
            }
        }
        _ => {}
    }
}

/// The payload as the filter sees it: an object, or an empty one.
pub fn payload_or_empty(payload: Option<&Value>) -> Value {
    match payload {
        Some(p @ Value::Object(_)) => p.clone(),
        _ => Value::Object(Map::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn passes(filter: Value, payload: Value) -> bool {
        Filter::parse(&filter)
            .expect("valid")
            .expect("some")
            .matches(&json!(7), &payload)
    }

    #[test]
    fn match_value_any_except_on_scalars_and_arrays() {
        let p = json!({"tag": "a", "tags": ["x", "y"], "n": 3, "f": 3.0, "ok": true});
        assert!(passes(
            json!({"must": [{"key": "tag", "match": {"value": "a"}}]}),
            p.clone()
        ));
        assert!(passes(
            json!({"must": [{"key": "tags", "match": {"value": "y"}}]}),
            p.clone()
        ));
        assert!(passes(
            json!({"must": [{"key": "n", "match": {"value": 3}}]}),
            p.clone()
        ));
        // A float is not an integer match, as in Qdrant.
        assert!(!passes(
            json!({"must": [{"key": "f", "match": {"value": 3}}]}),
            p.clone()
        ));
        assert!(passes(
            json!({"must": [{"key": "ok", "match": {"value": true}}]}),
            p.clone()
        ));
        assert!(passes(
            json!({"must": [{"key": "tag", "match": {"any": ["b", "a"]}}]}),
            p.clone()
        ));
        assert!(!passes(
            json!({"must": [{"key": "tag", "match": {"except": ["a"]}}]}),
            p.clone()
        ));
        // An array passes `except` when one element is outside the list.
        assert!(passes(
            json!({"must": [{"key": "tags", "match": {"except": ["x"]}}]}),
            p.clone()
        ));
        assert!(!passes(
            json!({"must": [{"key": "tags", "match": {"except": ["x", "y"]}}]}),
            p.clone()
        ));
        // A missing field matches no field condition, `except` included.
        assert!(!passes(
            json!({"must": [{"key": "nope", "match": {"except": ["x"]}}]}),
            p
        ));
    }

    #[test]
    fn paths_ranges_is_empty_has_id_and_nesting() {
        let p = json!({"a": {"b": 5, "list": [{"c": 1}, {"c": 2}]}, "empty": [], "none": null});
        assert!(passes(
            json!({"must": {"key": "a.b", "range": {"gte": 5, "lt": 6}}}),
            p.clone()
        ));
        assert!(!passes(
            json!({"must": {"key": "a.b", "range": {"gt": 5}}}),
            p.clone()
        ));
        assert!(passes(
            json!({"must": {"key": "a.list[].c", "match": {"value": 2}}}),
            p.clone()
        ));
        assert!(passes(
            json!({"must": {"key": "a.list[1].c", "match": {"value": 2}}}),
            p.clone()
        ));
        // No `[]`: an array in the middle of a path is not entered.
        assert!(!passes(
            json!({"must": {"key": "a.list.c", "match": {"value": 2}}}),
            p.clone()
        ));
        for key in ["empty", "none", "missing"] {
            assert!(
                passes(json!({"must": {"is_empty": {"key": key}}}), p.clone()),
                "{key}"
            );
        }
        assert!(!passes(
            json!({"must": {"is_empty": {"key": "a.b"}}}),
            p.clone()
        ));
        assert!(passes(json!({"must": {"has_id": [1, 7]}}), p.clone()));
        assert!(passes(
            json!({"should": [{"has_id": [1]}, {"must": [{"key": "a.b", "match": {"value": 5}}]}]}),
            p.clone()
        ));
        assert!(!passes(
            json!({"must_not": [{"key": "a.b", "match": {"value": 5}}]}),
            p.clone()
        ));
        assert!(!passes(json!({"should": []}), p));
    }

    #[test]
    fn what_the_double_does_not_evaluate_is_refused() {
        for filter in [
            json!({"must": [{"key": "t", "match": {"text": "x"}}]}),
            json!({"must": [{"key": "t", "geo_radius": {"center": {"lon": 0, "lat": 0}, "radius": 1}}]}),
            json!({"must": [{"nested": {"key": "a", "filter": {}}}]}),
            json!({"must": [{"key": "t", "range": {"gte": "2024-01-01T00:00:00Z"}}]}),
            json!({"must": [{"is_null": {"key": "t"}}]}),
            json!({"min_should": {"conditions": [], "min_count": 1}}),
            json!({"must": [{"key": "t"}]}),
            json!({"must": [{"bogus": 1}]}),
        ] {
            let err = Filter::parse(&filter).expect_err("refused");
            assert!(
                err.starts_with("Bad request") || err.starts_with("Format error"),
                "{err}"
            );
        }
    }
}
