//! The last step before text reaches a terminal: control characters from any input are escaped.
//!
//! Names, manifest fields, file names and the server's own messages can carry `ESC`, `BEL`
//! and friends; printed raw, they rewrite the terminal's title, clear the screen or hide text.
//! Everything aimem prints for a person goes through [`escape`]: the `Ui` methods, the report
//! lines on stdout, and every diagnostic (through [`Escaped`], which escapes each message,
//! help, label and quoted source line of a report before miette renders it). JSON output
//! needs nothing: serde_json escapes control characters itself.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use miette::{
    Diagnostic, LabeledSpan, MietteError, MietteHandler, MietteHandlerOpts, MietteSpanContents,
    ReportHandler, Severity, SourceCode, SourceSpan, SpanContents,
};

/// True for a character that must not reach a terminal as it is: C0 controls (ESC, BEL, CR…),
/// DEL, the C1 range (U+0080–U+009F, where 8-bit terminals find CSI and OSC), and the
/// invisible direction and line controls that make text read differently from what it is.
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every unsafe character written as `\u{1b}`; line breaks and tabs are kept (the
/// text aimem composes is laid out with them).
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_except(text, &['\n', '\t'])
}

/// Like [`escape`], for one value in a line (a table cell): line breaks are escaped too, so a
/// value cannot forge lines of its own.
pub fn escape_line(text: &str) -> Cow<'_, str> {
    escape_except(text, &[])
}

fn escape_except<'t>(text: &'t str, kept: &[char]) -> Cow<'t, str> {
    let needs = |c: char| is_unsafe(c) && !kept.contains(&c);
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Same-length cleaning for quoted source text: miette's labels point at byte offsets, so each
/// unsafe character (and each byte that is not UTF-8) becomes as many `?` as it had bytes.
fn clean_same_length(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for chunk in data.utf8_chunks() {
        for c in chunk.valid().chars() {
            if is_unsafe(c) && !matches!(c, '\n' | '\r' | '\t') {
                out.extend(std::iter::repeat_n(b'?', c.len_utf8()));
            } else {
                let mut buffer = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            }
        }
        out.extend(std::iter::repeat_n(b'?', chunk.invalid().len()));
    }
    out
}

/// aimem's own symbols and their ASCII words, for output that is not on a terminal: a log
/// file or a mail from cron gets ASCII only (data such as a collection's name stays as it is).
const SYMBOLS: [(char, &str); 6] = [
    ('✓', "OK"),
    ('✗', "FAIL"),
    ('⚠', "WARNING"),
    ('→', "->"),
    ('…', "..."),
    ('—', "-"),
];

/// `text` with aimem's own symbols written in ASCII (see [`SYMBOLS`]).
pub fn ascii_symbols(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| SYMBOLS.iter().any(|(s, _)| *s == c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match SYMBOLS.iter().find(|(s, _)| *s == c) {
            Some((_, word)) => out.push_str(word),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// How diagnostics look: set once by `main` (colour is decided there).
static HANDLER_OPTIONS: OnceLock<bool> = OnceLock::new();

/// The options every diagnostic is rendered with. Lines are never wrapped: a wrapped line
/// breaks commands, flags and paths (miette splits words at hyphens and inside quoted paths),
/// and a command broken across lines cannot be pasted; the terminal wraps long lines itself.
/// Box-drawing characters only on a terminal: off one (a log file, cron's mail) the report is
/// ASCII, even with `--color always`.
pub fn handler_options(colors: bool) -> MietteHandlerOpts {
    use std::io::IsTerminal;
    MietteHandlerOpts::new()
        .color(colors)
        .unicode(colors && std::io::stderr().is_terminal())
        .terminal_links(false)
        .wrap_lines(false)
}

/// Records the colour choice for [`Escaped`] reports (the first call wins).
pub fn set_colors(colors: bool) {
    let _ = HANDLER_OPTIONS.set(colors);
}

fn handler() -> MietteHandler {
    handler_options(HANDLER_OPTIONS.get().copied().unwrap_or(false)).build()
}

/// A diagnostic (and its whole chain of causes and related diagnostics) with every piece of
/// text escaped, rendered by miette with [`handler_options`] through `{:?}`.
pub struct Escaped<'a> {
    node: Node<'a>,
    cause: Option<Box<Escaped<'a>>>,
    related: Vec<Escaped<'a>>,
    source: Option<CleanSource>,
}

enum Node<'a> {
    Diagnostic(&'a dyn Diagnostic),
    Error(&'a (dyn std::error::Error + 'static)),
}

impl<'a> Escaped<'a> {
    pub fn new(diagnostic: &'a dyn Diagnostic) -> Escaped<'a> {
        let cause = diagnostic
            .diagnostic_source()
            .map(|d| Box::new(Escaped::new(d)))
            .or_else(|| diagnostic.source().map(|e| Box::new(Escaped::error(e))));
        Escaped {
            node: Node::Diagnostic(diagnostic),
            cause,
            related: diagnostic
                .related()
                .map(|related| related.map(Escaped::new).collect())
                .unwrap_or_default(),
            source: diagnostic.source_code().and_then(CleanSource::new),
        }
    }

    fn error(error: &'a (dyn std::error::Error + 'static)) -> Escaped<'a> {
        Escaped {
            node: Node::Error(error),
            cause: error.source().map(|e| Box::new(Escaped::error(e))),
            related: Vec::new(),
            source: None,
        }
    }

    fn diagnostic(&self) -> Option<&'a dyn Diagnostic> {
        match self.node {
            Node::Diagnostic(d) => Some(d),
            Node::Error(_) => None,
        }
    }
}

fn boxed<'b>(text: impl fmt::Display) -> Box<dyn fmt::Display + 'b> {
    Box::new(escape(&text.to_string()).into_owned())
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self.node {
            Node::Diagnostic(d) => d.to_string(),
            Node::Error(e) => e.to_string(),
        };
        f.write_str(&escape(&text))
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.diagnostic().is_none() {
            return fmt::Display::fmt(self, f);
        }
        handler().debug(self, f)
    }
}

impl std::error::Error for Escaped<'_> {}

impl Diagnostic for Escaped<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic()?.code().map(boxed)
    }

    fn severity(&self) -> Option<Severity> {
        self.diagnostic()?.severity()
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic()?.help().map(boxed)
    }

    fn url<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic()?.url().map(boxed)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let labels = self.diagnostic()?.labels()?;
        Some(Box::new(labels.map(|label| {
            let text = label.label().map(|l| escape(l).into_owned());
            match label.primary() {
                true => LabeledSpan::new_primary_with_span(text, *label.inner()),
                false => LabeledSpan::new_with_span(text, *label.inner()),
            }
        })))
    }

    fn related<'b>(&'b self) -> Option<Box<dyn Iterator<Item = &'b dyn Diagnostic> + 'b>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(self.related.iter().map(|r| r as &dyn Diagnostic)))
    }

    fn diagnostic_source(&self) -> Option<&dyn Diagnostic> {
        self.cause.as_deref().map(|c| c as &dyn Diagnostic)
    }
}

/// A diagnostic's source text, cleaned once (same length, so the labels still fit).
struct CleanSource {
    name: Option<String>,
    language: Option<String>,
    text: Vec<u8>,
    /// Where the text starts in the original file (0, 0 unless the source is an excerpt, like a
    /// long manifest line's), so the rendered position stays the real one.
    first_line: usize,
    first_column: usize,
}

impl CleanSource {
    fn new(source: &dyn SourceCode) -> Option<CleanSource> {
        // An empty span with unlimited context is the whole text.
        let whole = source
            .read_span(&SourceSpan::from((0, 0)), usize::MAX, usize::MAX)
            .ok()?;
        Some(CleanSource {
            name: whole.name().map(|name| escape(name).into_owned()),
            language: whole.language().map(str::to_string),
            text: clean_same_length(whole.data()),
            first_line: whole.line(),
            first_column: whole.column(),
        })
    }
}

impl SourceCode for CleanSource {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        let line = inner.line() + self.first_line;
        let column = match inner.line() {
            0 => inner.column() + self.first_column,
            _ => inner.column(),
        };
        let contents = match &self.name {
            Some(name) => MietteSpanContents::new_named(
                name.clone(),
                inner.data(),
                *inner.span(),
                line,
                column,
                inner.line_count(),
            ),
            None => MietteSpanContents::new(
                inner.data(),
                *inner.span(),
                line,
                column,
                inner.line_count(),
            ),
        };
        Ok(Box::new(match &self.language {
            Some(language) => contents.with_language(language.clone()),
            None => contents,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_symbols_become_ascii_and_data_stays() {
        assert_eq!(
            ascii_symbols("✓ a → b… ⚠ ✗ — é"),
            "OK a -> b... WARNING FAIL - é"
        );
        assert!(matches!(ascii_symbols("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn control_characters_are_escaped_and_text_kept() {
        assert_eq!(escape("plain text, é ✓"), "plain text, é ✓");
        assert_eq!(
            escape("\u{1b}]0;pwned\u{7}\u{1b}[2J"),
            "\\u{1b}]0;pwned\\u{7}\\u{1b}[2J"
        );
        assert_eq!(escape("a\u{9b}b\u{7f}c\rd"), "a\\u{9b}b\\u{7f}c\\u{d}d");
        assert_eq!(escape("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(escape("two\nlines\tand a tab"), "two\nlines\tand a tab");
        assert_eq!(escape_line("two\nlines"), "two\\u{a}lines");
    }

    #[test]
    fn source_text_is_cleaned_in_place() {
        let dirty = "{\"a\": \u{1b}[2J, \u{9b}\u{202e}}\r\n".as_bytes();
        let clean = clean_same_length(dirty);
        assert_eq!(clean.len(), dirty.len());
        assert_eq!(
            String::from_utf8(clean).unwrap(),
            "{\"a\": ?[2J, ?????}\r\n"
        );
        assert_eq!(clean_same_length(b"a\xffb"), b"a?b");
    }

    #[derive(Debug, thiserror::Error, Diagnostic)]
    #[error("bad value {value}")]
    #[diagnostic(code(test::bad), help("the value was {value}"))]
    struct Bad {
        value: String,
        #[source_code]
        source_code: miette::NamedSource<String>,
        #[label("here: {value}")]
        span: SourceSpan,
        #[related]
        related: Vec<Inner>,
        #[source]
        cause: std::io::Error,
    }

    #[derive(Debug, thiserror::Error, Diagnostic)]
    #[error("inner {0}")]
    struct Inner(String);

    #[test]
    fn every_part_of_a_report_is_escaped() {
        let evil = "\u{1b}]0;x\u{7}";
        let text = format!("{{\"k\": {evil}}}\n");
        let bad = Bad {
            value: evil.to_string(),
            source_code: miette::NamedSource::new(format!("m{evil}.json"), text),
            span: SourceSpan::from((6, 1)),
            related: vec![Inner(evil.to_string())],
            cause: std::io::Error::other(evil.to_string()),
        };
        let shown = format!("{:?}", Escaped::new(&bad));
        assert!(
            !shown.chars().any(|c| c == '\u{1b}' || c == '\u{7}'),
            "{shown:?}"
        );
        for part in ["bad value", "the value was", "here:", "inner", "\"k\""] {
            assert!(shown.contains(part), "{part} missing: {shown}");
        }
    }
}
