//! A fresh collection's payload indexes, built without a round trip per index: every index is
//! queued with `wait=false`, then the collection's info is polled once for all of them. A real
//! Qdrant acknowledges a queued index at once and reports a build that fails later only by the
//! index's absence, so an index that never shows up within the request timeout is an error
//! (and the restore is rolled back like after any other failed step).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::act::StepError;
use crate::qdrant::{Client, QdrantError};
use crate::signals::StopFlag;

/// The first pause between polls; it doubles up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const LONGEST_PAUSE: Duration = Duration::from_millis(500);

/// Queues every index of `indexes` on `collection`, then waits until each is in its
/// `payload_schema`, at most the client's request timeout.
pub fn build(
    client: &Client,
    stop: &StopFlag,
    collection: &str,
    indexes: &[(String, Value)],
) -> Result<(), StepError> {
    let failed = |source: QdrantError| match source {
        QdrantError::Interrupted => StepError::Interrupted,
        source => StepError::Qdrant {
            step: "creating a payload index on",
            collection: collection.to_string(),
            source,
        },
    };
    for (field, schema) in indexes {
        client
            .queue_payload_index(collection, field, schema)
            .map_err(failed)?;
    }
    let limit = client.request_timeout();
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        let info = client.collection_info(collection).map_err(failed)?;
        let missing = missing_fields(&info, indexes);
        if missing.is_empty() {
            return Ok(());
        }
        if stop.requested().is_some() {
            return Err(StepError::Interrupted);
        }
        if started.elapsed() >= limit {
            return Err(StepError::Check {
                collection: collection.to_string(),
                detail: format!(
                    "Qdrant acknowledged the payload index(es) {} but they did not appear (with the type asked for) within {} s",
                    missing
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    limit.as_secs()
                ),
            });
        }
        std::thread::sleep(pause.min(limit.saturating_sub(started.elapsed())));
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// The fields of `indexes` that the collection info's `payload_schema` lacks, or holds with
/// another type than asked: someone else's index on the field (Qdrant replaces it with the
/// queued one, so until then the asked-for index is not there either).
fn missing_fields<'a>(info: &Value, indexes: &'a [(String, Value)]) -> Vec<&'a str> {
    let present = info.get("payload_schema").and_then(Value::as_object);
    indexes
        .iter()
        .filter(|(field, schema)| {
            let live = present.and_then(|p| p.get(field.as_str()));
            live.is_none_or(|live| !same_type(live, schema))
        })
        .map(|(field, _)| field.as_str())
        .collect()
}

/// True when the live index (`{"data_type": …}`) is of the type asked for (`"keyword"`, or
/// `{"type": "keyword", …}`). An answer without a type is taken at its word: Qdrant names it.
fn same_type(live: &Value, asked: &Value) -> bool {
    let asked = asked
        .as_str()
        .or_else(|| asked.get("type").and_then(Value::as_str));
    match (live.get("data_type").and_then(Value::as_str), asked) {
        (Some(live), Some(asked)) => live.eq_ignore_ascii_case(asked),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_fields_absent_from_the_payload_schema_are_missing() {
        let wanted = vec![
            ("a".to_string(), json!("keyword")),
            ("b".to_string(), json!("integer")),
        ];
        let info = json!({"payload_schema": {"a": {"data_type": "keyword", "points": 0}}});
        assert_eq!(missing_fields(&info, &wanted), vec!["b"]);
        assert_eq!(missing_fields(&json!({}), &wanted), vec!["a", "b"]);
        let all = json!({"payload_schema": {"a": {}, "b": {}}});
        assert!(missing_fields(&all, &wanted).is_empty());
    }

    #[test]
    fn an_index_of_another_type_than_asked_is_missing() {
        let wanted = vec![
            ("a".to_string(), json!("keyword")),
            ("b".to_string(), json!({"type": "integer", "range": true})),
        ];
        let other = json!({"payload_schema": {
            "a": {"data_type": "integer", "points": 0},
            "b": {"data_type": "keyword", "points": 0},
        }});
        assert_eq!(missing_fields(&other, &wanted), vec!["a", "b"]);
        let right = json!({"payload_schema": {
            "a": {"data_type": "keyword", "points": 0},
            "b": {"data_type": "integer", "params": {"type": "integer"}, "points": 0},
        }});
        assert!(missing_fields(&right, &wanted).is_empty());
    }
}
