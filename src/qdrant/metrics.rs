//! `GET /metrics`: the one gauge a restore needs, how many snapshot recoveries of a collection
//! the server is running (docs/qdrant.md, "Recovery metrics"). Prometheus text format; the key
//! is needed.

use ureq::http::Method;

use super::{Client, METRICS_BODY_LIMIT, QdrantError};

/// The gauge's name; the server may put a configured prefix before it.
const RECOVERY_GAUGE: &str = "snapshot_recovery_running";

impl Client {
    /// The `snapshot_recovery_running{id="<collection>"}` gauge of `GET /metrics`.
    ///
    /// The server lists every collection that had a snapshot created or recovered since it
    /// started; one not listed while others are has none running (0). An exposition without
    /// the gauge at all (Qdrant before 1.16, metrics on their own port) is an error: nothing
    /// can be confirmed from it.
    pub fn snapshot_recoveries_running(&self, collection: &str) -> Result<u64, QdrantError> {
        let path = "/metrics";
        let request = self.request::<Vec<u8>>(Method::GET, path, None)?;
        let what = "reading the server's metrics";
        let (response, exchange) = self.send(path, request, what, self.timeouts.request, 0)?;
        let response = self.check_status(Method::GET, path, response, &exchange)?;
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .with_config()
            .limit(METRICS_BODY_LIMIT)
            .read_to_string()
            .map_err(|e| self.ureq_error(what, e, self.timeouts.request))
            .inspect_err(|e| exchange.failed(e))?;
        exchange.done(status, text.len() as u64);
        recovery_gauge(&text, collection).map_err(|detail| self.invalid(path, detail))
    }
}

/// Reads the recovery gauge for `collection` out of a Prometheus text exposition.
pub(crate) fn recovery_gauge(text: &str, collection: &str) -> Result<u64, String> {
    let mut family_seen = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            if words.next() == Some("TYPE") && words.next().is_some_and(is_gauge_name) {
                family_seen = true;
            }
            continue;
        }
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        if !is_gauge_name(&line[..name_end]) {
            continue;
        }
        family_seen = true;
        let rest = &line[name_end..];
        let (labels, value) = match rest.strip_prefix('{') {
            Some(inner) => {
                split_labels(inner).ok_or_else(|| format!("unreadable line `{line}`"))?
            }
            None => (Vec::new(), rest),
        };
        if !labels.iter().any(|(k, v)| k == "id" && v == collection) {
            continue;
        }
        let value = value.split_whitespace().next().unwrap_or("");
        return match value.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v.round() as u64),
            _ => Err(format!("unreadable value in `{line}`")),
        };
    }
    match family_seen {
        true => Ok(0),
        false => Err(format!("no `{RECOVERY_GAUGE}` gauge in the metrics")),
    }
}

fn is_gauge_name(name: &str) -> bool {
    name.ends_with(RECOVERY_GAUGE)
}

/// `k="v",k2="v2"} rest` → the labels (unescaped) and `rest`.
fn split_labels(inner: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut chars = inner.char_indices().peekable();
    loop {
        while chars
            .next_if(|(_, c)| *c == ',' || c.is_whitespace())
            .is_some()
        {}
        let (start, c) = chars.next()?;
        if c == '}' {
            return Some((labels, &inner[start + 1..]));
        }
        let mut key = String::from(c);
        loop {
            let (_, c) = chars.next()?;
            if c == '=' {
                break;
            }
            key.push(c);
        }
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()?.1 {
                '"' => break,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                other => value.push(other),
            }
        }
        labels.push((key.trim().to_string(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# HELP collections_total number of collections\n\
        # TYPE collections_total gauge\n\
        collections_total 2\n\
        # HELP snapshot_recovery_running amount of snapshot recovery operations currently running\n\
        # TYPE snapshot_recovery_running gauge\n\
        snapshot_recovery_running{id=\"discussions\"} 1\n\
        snapshot_recovery_running{id=\"we\\\"ird,name\"} 0\n";

    #[test]
    fn reads_the_collection_s_gauge() {
        assert_eq!(recovery_gauge(SAMPLE, "discussions"), Ok(1));
        assert_eq!(recovery_gauge(SAMPLE, "we\"ird,name"), Ok(0));
        // Listed family, collection not in it: nothing of it has run since the server started.
        assert_eq!(recovery_gauge(SAMPLE, "github"), Ok(0));
        let prefixed = SAMPLE.replace("snapshot_recovery", "qdrant_snapshot_recovery");
        assert_eq!(recovery_gauge(&prefixed, "discussions"), Ok(1));
    }

    #[test]
    fn no_gauge_or_a_bad_value_confirms_nothing() {
        assert!(recovery_gauge("collections_total 2\n", "discussions").is_err());
        assert!(recovery_gauge("<html>nginx</html>", "discussions").is_err());
        assert!(
            recovery_gauge(
                "snapshot_recovery_running{id=\"discussions\"} NaN\n",
                "discussions"
            )
            .is_err()
        );
    }
}
