//! Commands printed for a person to paste into a shell.
//!
//! Every argument that comes from data (a collection name, a path, a URL) is quoted by
//! [`quote`], so pasting the command runs exactly that command whatever the name holds
//! (`$(…)`, backticks, quotes, spaces). Shell syntax that is meant (a `$QDRANT_API_KEY`
//! expansion, a pipe) can only come from string literals in aimem's own code.

use std::borrow::Cow;
use std::fmt;

/// Bytes that mean nothing to a POSIX shell in an argument: such words are printed as they are.
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"_-./:,+=@%".contains(&byte)
}

/// `word` as one POSIX shell word: unchanged when plain, else in single quotes, with each
/// embedded `'` written as `'\''`. Inside single quotes nothing is special to the shell.
pub fn quote(word: &str) -> Cow<'_, str> {
    if !word.is_empty() && word.bytes().all(is_plain) {
        return Cow::Borrowed(word);
    }
    Cow::Owned(format!("'{}'", word.replace('\'', r"'\''")))
}

/// A curl `-F` value that sends the file at `path` as the form field `field`. curl itself
/// splits such a value at `;` and `,` (and reads `"`): a path holding any of them is put in
/// double quotes, with `"` and `\` escaped, as curl's manual says.
pub fn curl_form_file(field: &str, path: &str) -> String {
    if path.contains([';', ',', '"', '\\']) || path.starts_with(' ') || path.ends_with(' ') {
        let escaped = path.replace('\\', r"\\").replace('"', "\\\"");
        format!("{field}=@\"{escaped}\"")
    } else {
        format!("{field}=@{path}")
    }
}

/// A command line built word by word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine(String);

impl CommandLine {
    /// Starts with the program's name (a literal: never data).
    pub fn new(program: &'static str) -> CommandLine {
        CommandLine(program.to_string())
    }

    /// One argument, quoted as needed.
    pub fn arg(mut self, word: &str) -> CommandLine {
        self.0.push(' ');
        self.0.push_str(&quote(word));
        self
    }

    /// Shell syntax meant as it is (`"api-key: $QDRANT_API_KEY"`, `|`): only literals.
    pub fn raw(mut self, syntax: &'static str) -> CommandLine {
        self.0.push(' ');
        self.0.push_str(syntax);
        self
    }

    /// This command piped into `next`.
    pub fn pipe(mut self, next: CommandLine) -> CommandLine {
        self.0.push_str(" | ");
        self.0.push_str(&next.0);
        self
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `sh` makes of `line`: its words (printed by printf, each ended by a NUL).
    fn words(line: &str) -> Vec<String> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\0' {line}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}");
        String::from_utf8(out.stdout)
            .unwrap()
            .split_terminator('\0')
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn plain_words_stay_as_they_are() {
        assert_eq!(quote("code-patterns"), "code-patterns");
        assert_eq!(quote("/tmp/b/x.snapshot"), "/tmp/b/x.snapshot");
        assert_eq!(quote("snapshot=@/a/b"), "snapshot=@/a/b");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn anything_else_reaches_the_program_unchanged() {
        for hostile in [
            "$(touch PWNED)",
            "`id`",
            "it's",
            "a b",
            "'",
            "''\\'",
            "x; rm -rf ~",
            "$HOME",
            "new\nline",
            "*",
            "~",
            "a&b|c>d<e",
            "!x",
        ] {
            assert_eq!(
                words(&quote(hostile)),
                vec![hostile.to_string()],
                "{hostile}"
            );
        }
    }

    #[test]
    fn curl_form_values_keep_separators_in_the_path() {
        assert_eq!(curl_form_file("snapshot", "/a/b"), "snapshot=@/a/b");
        assert_eq!(
            curl_form_file("snapshot", "/a;b,c\"d\\e"),
            "snapshot=@\"/a;b,c\\\"d\\\\e\""
        );
    }

    #[test]
    fn a_command_line_quotes_only_its_arguments() {
        let line = CommandLine::new("curl")
            .arg("-X")
            .arg("DELETE")
            .raw("-H \"api-key: $QDRANT_API_KEY\"")
            .arg("http://h/collections/a%20b")
            .pipe(CommandLine::new("grep").arg("-F").arg("id=\"a b\""));
        assert_eq!(
            line.to_string(),
            "curl -X DELETE -H \"api-key: $QDRANT_API_KEY\" http://h/collections/a%20b | grep -F 'id=\"a b\"'"
        );
    }
}
