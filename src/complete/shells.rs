//! What each shell gets at a TAB. clap_complete's registration scripts insert candidates in
//! different ways: bash puts a `COMPREPLY` word on the line as it is, and PowerShell its
//! completion text too, while zsh (`compadd`), fish and elvish quote a candidate themselves.
//! So every candidate, made by aimem's completers or by clap's own (flags, paths), goes through
//! [`insertable`]: the form that shell inserts as exactly that one word, or nothing at all.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use clap_complete::engine::{self, CompletionCandidate};
use clap_complete::env::{EnvCompleter, Shells};

/// A shell clap_complete registers aimem's completion in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

/// The shells `COMPLETE=` accepts: clap_complete's scripts, answered through [`insertable`].
pub const SHELLS: Shells<'static> = Shells(&[
    &Guarded(Shell::Bash),
    &Guarded(Shell::Elvish),
    &Guarded(Shell::Fish),
    &Guarded(Shell::Powershell),
    &Guarded(Shell::Zsh),
]);

/// `value` in the form `shell` inserts as exactly this one word, or None when there is none:
/// control characters (a vertical tab splits bash's reply, a line break ends a command),
/// direction and other invisible format characters (the line would not read as what it runs),
/// and bytes that are not UTF-8 are left out.
pub fn insertable(shell: Shell, value: &OsStr) -> Option<String> {
    let value = value.to_str()?;
    if value.is_empty() || value.chars().any(is_unwritable) {
        return None;
    }
    Some(match shell {
        Shell::Bash => bash_word(value),
        Shell::Powershell => powershell_word(value),
        // These quote what they insert: quoting here too would put the quotes in the name.
        Shell::Zsh | Shell::Fish | Shell::Elvish => value.to_string(),
    })
}

fn is_unwritable(c: char) -> bool {
    crate::terminal::is_unsafe(c) || is_format(c)
}

/// Unicode's format characters (category Cf): invisible, and some reorder what is shown.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    )
}

/// Bash inserts a reply as it is (and globs it first): every ASCII character that is not
/// plain gets a backslash, as bash's own file-name completion does. A backslash also keeps
/// the word literal inside quotes the user opened.
fn bash_word(value: &str) -> String {
    let mut word = String::with_capacity(value.len() * 2);
    for c in value.chars() {
        if c.is_ascii() && !(c.is_ascii_alphanumeric() || "_-./,+@%=".contains(c)) {
            word.push('\\');
        }
        word.push(c);
    }
    word
}

/// PowerShell inserts a completion text as it is: anything not plain goes in single quotes,
/// where only quotes are special (PowerShell takes the typographic ones as quotes too), each
/// written twice.
fn powershell_word(value: &str) -> String {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-./:".contains(c))
    {
        return value.to_string();
    }
    let mut word = String::from("'");
    for c in value.chars() {
        if matches!(c, '\'' | '\u{2018}'..='\u{201b}') {
            word.push(c);
        }
        word.push(c);
    }
    word.push('\'');
    word
}

/// The words of the line being completed, as the shell will pass them when the line runs,
/// and the index of the one under the cursor.
#[derive(Debug)]
pub struct Line {
    pub words: Vec<OsString>,
    pub index: usize,
}

static LINE: OnceLock<Line> = OnceLock::new();

/// The line being completed (set once the shell has asked).
pub fn line() -> Option<&'static Line> {
    LINE.get()
}

/// One of clap_complete's shells: its registration script, and its answer protocol with every
/// candidate passed through [`insertable`].
struct Guarded(Shell);

impl Guarded {
    fn builtin(&self) -> &'static dyn EnvCompleter {
        use clap_complete::env::{Bash, Elvish, Fish, Powershell, Zsh};
        match self.0 {
            Shell::Bash => &Bash,
            Shell::Zsh => &Zsh,
            Shell::Fish => &Fish,
            Shell::Elvish => &Elvish,
            Shell::Powershell => &Powershell,
        }
    }
}

impl EnvCompleter for Guarded {
    fn name(&self) -> &'static str {
        self.builtin().name()
    }

    fn is(&self, name: &str) -> bool {
        self.builtin().is(name)
    }

    fn write_registration(
        &self,
        var: &str,
        name: &str,
        bin: &str,
        completer: &str,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        self.builtin()
            .write_registration(var, name, bin, completer, buf)
    }

    /// As clap_complete's own answer for the shell (same index, separators and help), but
    /// on dequoted words and with [`insertable`] forms.
    fn write_complete(
        &self,
        cmd: &mut clap::Command,
        args: Vec<OsString>,
        current_dir: Option<&Path>,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        let shell = self.0;
        let index = match shell {
            Shell::Fish | Shell::Powershell => args.len().saturating_sub(1),
            Shell::Bash | Shell::Zsh | Shell::Elvish => std::env::var("_CLAP_COMPLETE_INDEX")
                .ok()
                .and_then(|i| i.parse().ok())
                .unwrap_or_default(),
        };
        let mut words: Vec<OsString> = args.into_iter().map(|w| dequoted(shell, w)).collect();
        if shell == Shell::Zsh && words.len() == index {
            words.push(OsString::new());
        }
        let _ = LINE.set(Line {
            words: words.clone(),
            index,
        });
        let candidates = engine::complete(cmd, words, index, current_dir)?;
        let offered = candidates
            .iter()
            .filter_map(|c| Some((insertable(shell, c.get_value())?, help_line(c))));
        let separator = std::env::var("_CLAP_IFS").unwrap_or_else(|_| "\n".into());
        for (i, (word, help)) in offered.enumerate() {
            match shell {
                Shell::Bash | Shell::Elvish => {
                    if i != 0 {
                        write!(buf, "{separator}")?;
                    }
                    write!(buf, "{word}")?;
                }
                Shell::Zsh => {
                    if i != 0 {
                        write!(buf, "{separator}")?;
                    }
                    // `_describe` reads `value:help`.
                    let word = word.replace('\\', r"\\").replace(':', r"\:");
                    write!(buf, "{word}")?;
                    if let Some(help) = help {
                        write!(buf, ":{}", help.replace('\\', r"\\"))?;
                    }
                }
                Shell::Fish | Shell::Powershell => {
                    write!(buf, "{word}")?;
                    if let Some(help) = help {
                        write!(buf, "\t{help}")?;
                    }
                    writeln!(buf)?;
                }
            }
        }
        Ok(())
    }
}

/// A candidate's help as one line without control characters (a tab or a line break would
/// be read as the start of another field or candidate).
fn help_line(candidate: &CompletionCandidate) -> Option<String> {
    let help = candidate.get_help()?.to_string();
    let first = help.lines().next().unwrap_or_default();
    Some(crate::terminal::escape_line(first).into_owned())
}

/// `word` as the shell will pass it when the line runs, so that what is typed narrows the
/// candidates: `extra\ o` and `'extra o` both mean `extra o`. A word the shell would expand
/// (`$`, globs, `~`) stays as typed, and then matches nothing. Elvish and PowerShell pass
/// words already parsed.
pub(crate) fn dequoted(shell: Shell, word: OsString) -> OsString {
    let style = match shell {
        Shell::Bash | Shell::Zsh => Style::Posix,
        Shell::Fish => Style::Fish,
        Shell::Elvish | Shell::Powershell => return word,
    };
    match word.to_str().and_then(|w| meaning(w, style)) {
        Some(meant) => meant.into(),
        None => word,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Posix,
    Fish,
}

/// The literal value of `word`, or None if the shell would expand part of it. The user is
/// still typing: a quote left open runs to the end, a lone trailing backslash is dropped.
fn meaning(word: &str, style: Style) -> Option<String> {
    if word.starts_with('~') {
        return None;
    }
    let mut meant = String::with_capacity(word.len());
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                // In fish `\n`, `\x41` or `\u00e9` are other characters.
                Some(next) if style == Style::Fish && next.is_ascii_alphanumeric() => {
                    return None;
                }
                Some(next) => meant.push(next),
                None => {}
            },
            '\'' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\'' => break,
                        '\\' if style == Style::Fish
                            && matches!(chars.peek(), Some('\\' | '\'')) =>
                        {
                            meant.extend(chars.next());
                        }
                        c => meant.push(c),
                    }
                }
            }
            '"' => {
                let escaped: &[char] = match style {
                    Style::Posix => &['$', '`', '"', '\\'],
                    Style::Fish => &['$', '"', '\\'],
                };
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' if chars.peek().is_some_and(|n| escaped.contains(n)) => {
                            meant.extend(chars.next());
                        }
                        '$' | '`' => return None,
                        c => meant.push(c),
                    }
                }
            }
            '$' | '`' | '*' | '?' | '[' | '{' | '(' | ')' | ';' | '&' | '|' | '<' | '>' => {
                return None;
            }
            c => meant.push(c),
        }
    }
    Some(meant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bash(value: &str) -> Option<String> {
        insertable(Shell::Bash, OsStr::new(value))
    }

    /// What `sh` makes of `word`: its words.
    fn sh_words(word: &str) -> Vec<String> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\0' {word}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{word}");
        String::from_utf8(out.stdout)
            .unwrap()
            .split_terminator('\0')
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_bash_word_is_the_name_and_nothing_else() {
        for name in [
            "github",
            "a$(touch PWNED)",
            "`id`",
            "it's \"x\"",
            "a b\tc",
            "{a,b}",
            "~root",
            "#x",
            "x;y&z|w",
            "[ab]*?",
            "é ü 漢字",
            "!x",
            "a\\b",
        ] {
            if name.contains('\t') {
                assert_eq!(bash(name), None);
                continue;
            }
            let word = bash(name).unwrap();
            assert_eq!(sh_words(&word), [name], "{name:?} as {word}");
        }
        assert_eq!(
            bash("/b/2026-01-30_020000").unwrap(),
            "/b/2026-01-30_020000"
        );
        assert_eq!(bash("--collection=a b").unwrap(), r"--collection=a\ b");
    }

    #[test]
    fn invisible_and_control_characters_leave_a_name_out_in_every_shell() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::Powershell,
        ] {
            for name in [
                "a\u{b}b",
                "a\nb",
                "a\tb",
                "a\u{1b}[2J",
                "a\u{85}",
                "evil\u{202e}txt",
                "a\u{2066}b\u{2069}",
                "zero\u{200b}width",
                "bom\u{feff}",
                "tag\u{e0041}",
                "",
            ] {
                assert_eq!(
                    insertable(shell, OsStr::new(name)),
                    None,
                    "{shell:?} {name:?}"
                );
            }
            assert!(
                insertable(shell, OsStr::new("é ü 漢字")).is_some(),
                "{shell:?}"
            );
        }
    }

    #[test]
    fn shells_that_quote_themselves_get_the_name() {
        for shell in [Shell::Zsh, Shell::Fish, Shell::Elvish] {
            let name = "a$(touch X) it's";
            assert_eq!(insertable(shell, OsStr::new(name)).unwrap(), name);
        }
    }

    #[test]
    fn powershell_gets_single_quotes_with_every_quote_doubled() {
        let ps = |v: &str| insertable(Shell::Powershell, OsStr::new(v)).unwrap();
        assert_eq!(ps("github"), "github");
        assert_eq!(ps("--collection"), "--collection");
        assert_eq!(ps("a$(calc)"), "'a$(calc)'");
        assert_eq!(ps("it's"), "'it''s'");
        assert_eq!(ps("it\u{2019}s `x`"), "'it\u{2019}\u{2019}s `x`'");
    }

    #[test]
    fn typed_words_mean_what_the_shell_will_pass() {
        let posix = |w: &str| meaning(w, Style::Posix);
        assert_eq!(posix("extra\\ o").as_deref(), Some("extra o"));
        assert_eq!(posix("'extra o").as_deref(), Some("extra o"));
        assert_eq!(posix("\"it's \\$x\\").as_deref(), Some("it's $x\\"));
        assert_eq!(posix("a\\$\\(b").as_deref(), Some("a$(b"));
        assert_eq!(posix("ab\\").as_deref(), Some("ab"));
        for expanded in [
            "$HOME", "a$(b)", "\"$x\"", "`id`", "~/x", "*", "a[b]", "{a,b}",
        ] {
            assert_eq!(posix(expanded), None, "{expanded}");
        }
        let fish = |w: &str| meaning(w, Style::Fish);
        assert_eq!(fish("extra\\ o").as_deref(), Some("extra o"));
        assert_eq!(fish("'it\\'s").as_deref(), Some("it's"));
        assert_eq!(fish("a\\$\\(b").as_deref(), Some("a$(b"));
        assert_eq!(fish("a\\nb"), None);
        assert_eq!(fish("(cmd)"), None);
    }
}
