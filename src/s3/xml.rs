//! The little of S3's XML that aimem reads: error bodies and listing pages. Hand-read rather
//! than through a schema, because compatible services differ in what they leave out (some
//! list objects without an `ETag`); every text is bounded and stripped of control
//! characters, and a listed key is read only from a listing made with `encoding-type=url`
//! (so it holds no markup).

/// The `Code` and `Message` of an S3 error body (`<Error><Code>…</Code>…`), each cut to a
/// sane length; empty when the body has none (HEAD answers have no body).
pub fn code_and_message(body: &str) -> (String, String) {
    (element(body, "Code", 64), element(body, "Message", 300))
}

pub fn element(body: &str, name: &str, max: usize) -> String {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let Some(start) = body.find(&open).map(|i| i + open.len()) else {
        return String::new();
    };
    let Some(len) = body[start..].find(&close) else {
        return String::new();
    };
    let text = unescape(&body[start..start + len]);
    let text: String = text.chars().filter(|c| !c.is_control()).take(max).collect();
    text
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// One page of a `ListObjectsV2` answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<Listed>,
    /// Common prefixes, still URL-encoded.
    pub prefixes: Vec<String>,
    /// The token of the next page, when the listing is truncated.
    pub next: Option<String>,
}

/// One object of a listing page, as the page gives it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Still URL-encoded.
    pub key: String,
    pub size: u64,
    /// As written (RFC 3339); empty when absent.
    pub modified: String,
    /// The object's version tag, quotes included; empty when absent.
    pub etag: String,
}

/// An ETag is a quoted digest (a multipart upload's adds `-<parts>`): far below this.
const MAX_ETAG: usize = 256;

/// Reads a listing page; None when it is not one (no `ListBucketResult`).
pub fn list_page(body: &str) -> Option<ListPage> {
    if !body.contains("<ListBucketResult") {
        return None;
    }
    let mut page = ListPage::default();
    for contents in sections(body, "Contents") {
        // A key longer than S3 allows is no key: the listing is refused, never cut.
        if element(contents, "Key", MAX_KEY + 1).chars().count() > MAX_KEY {
            return None;
        }
        let key = element(contents, "Key", MAX_KEY);
        let size = element(contents, "Size", 32).parse().ok()?;
        page.objects.push(Listed {
            key,
            size,
            modified: element(contents, "LastModified", 64),
            etag: element(contents, "ETag", MAX_ETAG),
        });
    }
    for common in sections(body, "CommonPrefixes") {
        if element(common, "Prefix", MAX_KEY + 1).chars().count() > MAX_KEY {
            return None;
        }
        page.prefixes.push(element(common, "Prefix", MAX_KEY));
    }
    let truncated = element(body, "IsTruncated", 8) == "true";
    let next = element(body, "NextContinuationToken", 4096);
    page.next = (truncated && !next.is_empty()).then_some(next);
    Some(page)
}

/// S3's longest key is 1,024 bytes; URL-encoding makes it at most three times as long.
const MAX_KEY: usize = 3 * 1024;

/// The inner text of every `<name>…</name>` of `body`, in order.
fn sections<'a>(body: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut found = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find(&open) {
        let inner = &rest[start + open.len()..];
        let Some(end) = inner.find(&close) else {
            break;
        };
        found.push(&inner[..end]);
        rest = &inner[end + close.len()..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_page_is_read_with_or_without_etags() {
        let body = "<?xml version=\"1.0\"?><ListBucketResult><IsTruncated>true</IsTruncated>\
            <Contents><Key>a%2Fb</Key><Size>12</Size><LastModified>2026-12-07T10:00:00Z</LastModified></Contents>\
            <Contents><Key>c</Key><ETag>\"x\"</ETag><Size>0</Size></Contents>\
            <CommonPrefixes><Prefix>d/</Prefix></CommonPrefixes>\
            <NextContinuationToken>tok</NextContinuationToken></ListBucketResult>";
        let page = list_page(body).unwrap();
        let objects: Vec<(String, u64, String, String)> = page
            .objects
            .iter()
            .map(|o| (o.key.clone(), o.size, o.modified.clone(), o.etag.clone()))
            .collect();
        assert_eq!(
            objects,
            [
                (
                    "a%2Fb".to_string(),
                    12,
                    "2026-12-07T10:00:00Z".to_string(),
                    String::new()
                ),
                ("c".to_string(), 0, String::new(), "\"x\"".to_string())
            ]
        );
        assert_eq!(page.prefixes, ["d/"]);
        assert_eq!(page.next.as_deref(), Some("tok"));
        assert!(list_page("<Error/>").is_none());
        let long_key = format!(
            "<ListBucketResult><Contents><Key>{}</Key><Size>1</Size></Contents></ListBucketResult>",
            "k".repeat(MAX_KEY + 1)
        );
        assert!(
            list_page(&long_key).is_none(),
            "a key longer than S3's is refused, not cut"
        );
        let bad_size = "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents>";
        assert!(list_page(bad_size).is_none());
        let last = "<ListBucketResult><IsTruncated>false</IsTruncated>\
                    <NextContinuationToken>t</NextContinuationToken></ListBucketResult>";
        assert_eq!(list_page(last).unwrap().next, None);
    }

    #[test]
    fn an_error_body_gives_its_code_and_message() {
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>\
                    <Message>The bucket &amp; co\u{1b}[31m</Message></Error>";
        assert_eq!(
            code_and_message(body),
            (
                "NoSuchBucket".to_string(),
                "The bucket & co[31m".to_string()
            )
        );
        assert_eq!(code_and_message(""), (String::new(), String::new()));
        assert_eq!(
            code_and_message("<Code>cut"),
            (String::new(), String::new())
        );
        let long = format!("<Code>{}</Code>", "x".repeat(10_000));
        assert_eq!(code_and_message(&long).0.len(), 64);
    }
}
