//! Names that end up in paths: collection names, snapshot file names, config file entries,
//! `--target-name`, and the names a server hands back.
//!
//! A name from a manifest or a server is hostile until checked: `../../x` joined to a folder
//! leaves it. [`SafeName`] is a name checked as one harmless path component, and its only
//! constructor checks; code that builds a path from a name takes a `SafeName`, so an unchecked
//! string cannot reach a path.
//!
//! The rule is Qdrant's own for collection names (1 to 255 bytes, none of `<>:"/\|?*`, NUL or
//! 0x1F; docs/qdrant.md, "Names"), plus what a file name needs: not `.` or `..`, and no control
//! character at all (they also reach terminals).
//!
//! [`ShardKey`] lives here too: a name the server hands back that never becomes a path, a plain
//! value shared by the Qdrant client and the (offline) manifest, neither depending on the other.

use std::fmt;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

use crate::json::Scalar;

/// The longest name, in bytes (Qdrant's limit, and a file name's on most filesystems).
pub const MAX_NAME_BYTES: usize = 255;

/// Characters Qdrant refuses in a collection name (besides NUL and 0x1F, control characters).
const FORBIDDEN: [char; 9] = ['<', '>', ':', '"', '/', '\\', '|', '?', '*'];

/// Why a name is not a safe path component.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameProblem {
    #[error("it is empty")]
    Empty,
    #[error("it is {0} bytes long; at most {MAX_NAME_BYTES} are allowed")]
    TooLong(usize),
    #[error("`.` and `..` name folders, not a collection or a file")]
    Dots,
    #[error("it contains `{0}`, which Qdrant does not allow in a name (nor aimem in a file name)")]
    Forbidden(char),
    #[error("it contains the control character {0}")]
    Control(String),
}

/// A name that failed the check, with the reason. Displays the name escaped (it may hold
/// terminal escapes).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{} is not a safe name: {problem}", shown(name))]
pub struct UnsafeName {
    pub name: String,
    pub problem: NameProblem,
}

/// Checks one name against the rule.
pub fn check(name: &str) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameProblem::TooLong(name.len()));
    }
    if name == "." || name == ".." {
        return Err(NameProblem::Dots);
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(NameProblem::Control(c.escape_unicode().to_string()));
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c)) {
        return Err(NameProblem::Forbidden(c));
    }
    Ok(())
}

/// A name checked as a single safe path component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SafeName(String);

impl SafeName {
    /// The only way to make one: checks `name`.
    pub fn new(name: &str) -> Result<SafeName, UnsafeName> {
        match check(name) {
            Ok(()) => Ok(SafeName(name.to_string())),
            Err(problem) => Err(UnsafeName {
                name: name.to_string(),
                problem,
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<name>.snapshot`: the file a collection's snapshot is kept in.
    pub fn snapshot_file(&self) -> String {
        format!("{}.snapshot", self.0)
    }

    /// `dir/<name>.snapshot`.
    pub fn snapshot_path(&self, dir: &Utf8Path) -> Utf8PathBuf {
        dir.join(self.snapshot_file())
    }
}

impl std::ops::Deref for SafeName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SafeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SafeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for SafeName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for SafeName {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<SafeName> for String {
    fn eq(&self, other: &SafeName) -> bool {
        *self == other.0
    }
}

impl From<SafeName> for String {
    fn from(name: SafeName) -> String {
        name.0
    }
}

/// Checks a relative path (a config file entry such as `docker/.env`): every component must be
/// a safe name, so the whole stays inside the folder it is joined to.
pub fn check_relative(path: &str) -> Result<(), UnsafeName> {
    if path.is_empty() {
        return Err(UnsafeName {
            name: path.to_string(),
            problem: NameProblem::Empty,
        });
    }
    for part in path.split('/') {
        check(part).map_err(|problem| UnsafeName {
            name: path.to_string(),
            problem,
        })?;
    }
    Ok(())
}

/// A clap value parser for options that name a collection (`--target-name`, `--collection`).
pub fn parse_collection_arg(value: &str) -> Result<String, String> {
    check(value)
        .map(|()| value.to_string())
        .map_err(|problem| format!("{} cannot be a collection name: {problem}", shown(value)))
}

/// For serde `deserialize_with`: a string field that must be a safe name (a name a server
/// hands back). The error becomes part of the "Qdrant sent a response aimem does not
/// understand" report, which names the server as the problem.
pub fn deserialize_safe<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
    let name = <String as serde::Deserialize>::deserialize(deserializer)?;
    SafeName::new(&name)
        .map(String::from)
        .map_err(serde::de::Error::custom)
}

/// A name as it may be shown: quoted, with control characters escaped; one longer than any
/// valid name is cut (a hostile manifest's 60 KB name would fill the screen and the log).
pub fn shown(name: &str) -> String {
    const SHOWN_CHARS: usize = 300;
    let count = name.chars().count();
    if count <= SHOWN_CHARS {
        return format!("`{}`", name.escape_debug());
    }
    let start: String = name.chars().take(SHOWN_CHARS / 2).collect();
    format!("`{}...` ({count} characters)", start.escape_debug())
}

/// A shard key string longer than this is not a sane answer (nor a sane manifest entry).
const MAX_KEY_LEN: usize = 1024;

/// A custom-sharding shard key: Qdrant allows a keyword or an unsigned integer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum ShardKey {
    Number(u64),
    Keyword(String),
}

// By hand rather than `untagged`, which would buffer any value (a crafted tree too) before
// trying each form.
impl<'de> Deserialize<'de> for ShardKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ShardKey, D::Error> {
        struct Key;
        impl serde::de::Visitor<'_> for Key {
            type Value = ShardKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a shard key (a string or an unsigned integer)")
            }
            fn visit_u64<E>(self, v: u64) -> Result<ShardKey, E> {
                Ok(ShardKey::Number(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<ShardKey, E> {
                Ok(ShardKey::Keyword(v.to_string()))
            }
        }
        deserializer.deserialize_any(Key)
    }
}

impl ShardKey {
    /// A key from a scalar read off a server's answer, refusing what Qdrant never sends.
    pub fn from_scalar(value: &Scalar) -> Result<ShardKey, String> {
        match value {
            Scalar::Unsigned(n) => Ok(ShardKey::Number(*n)),
            Scalar::Signed(n) => Err(format!("shard key {n} is not an unsigned integer")),
            Scalar::Float(n) => Err(format!("shard key {n} is not an unsigned integer")),
            Scalar::Text(s) if s.len() <= MAX_KEY_LEN && !s.chars().any(char::is_control) => {
                Ok(ShardKey::Keyword(s.clone()))
            }
            Scalar::Text(_) | Scalar::LongText(_) => {
                Err("a shard key string is too long or holds control characters".to_string())
            }
            other => Err(format!(
                "a shard key must be a string or a number, not {}",
                other.kind()
            )),
        }
    }

    /// A key from any JSON value, refusing what Qdrant never sends.
    pub fn from_value(value: &Value) -> Result<ShardKey, String> {
        match value {
            Value::Number(n) => n
                .as_u64()
                .map(ShardKey::Number)
                .ok_or_else(|| format!("shard key {n} is not an unsigned integer")),
            Value::String(s) if s.len() <= MAX_KEY_LEN && !s.chars().any(char::is_control) => {
                Ok(ShardKey::Keyword(s.clone()))
            }
            Value::String(_) => {
                Err("a shard key string is too long or holds control characters".to_string())
            }
            other => Err(format!(
                "a shard key must be a string or a number, not {other}"
            )),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            ShardKey::Number(n) => json!(n),
            ShardKey::Keyword(s) => json!(s),
        }
    }
}

impl std::fmt::Display for ShardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShardKey::Number(n) => write!(f, "{n}"),
            ShardKey::Keyword(s) => write!(f, "{}", shown(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_in_a_shown_name_are_escaped() {
        assert_eq!(shown("a\u{1b}b"), "`a\\u{1b}b`");
    }

    #[test]
    fn ordinary_names_pass() {
        for name in [
            "discussions",
            "code-patterns",
            "jira_data.v2",
            "é ü 漢字",
            "a..b",
            ".hidden",
            "x".repeat(255).as_str(),
        ] {
            assert_eq!(check(name), Ok(()), "{name}");
            assert_eq!(SafeName::new(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn names_that_would_leave_a_folder_or_confuse_a_terminal_fail() {
        let cases: [(&str, NameProblem); 10] = [
            ("", NameProblem::Empty),
            (".", NameProblem::Dots),
            ("..", NameProblem::Dots),
            ("../../../tmp/x", NameProblem::Forbidden('/')),
            ("a/b", NameProblem::Forbidden('/')),
            ("a\\b", NameProblem::Forbidden('\\')),
            ("a:b", NameProblem::Forbidden(':')),
            ("a\0b", NameProblem::Control("\\u{0}".into())),
            ("a\u{1b}]0;x\u{7}", NameProblem::Control("\\u{1b}".into())),
            ("line\nbreak", NameProblem::Control("\\u{a}".into())),
        ];
        for (name, problem) in cases {
            assert_eq!(check(name), Err(problem), "{name:?}");
            assert!(SafeName::new(name).is_err());
        }
        assert_eq!(check(&"x".repeat(256)), Err(NameProblem::TooLong(256)));
        for c in ['<', '>', '"', '|', '?', '*', '\u{1f}', '\u{7f}', '\u{9b}'] {
            assert!(check(&format!("a{c}b")).is_err(), "{c:?}");
        }
    }

    #[test]
    fn a_shown_name_never_carries_a_control_character() {
        let err = SafeName::new("evil\u{1b}[2J").unwrap_err();
        let text = err.to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.contains("evil\\u{1b}[2J"), "{text}");
    }

    #[test]
    fn relative_config_paths_are_checked_component_by_component() {
        assert!(check_relative("settings.json").is_ok());
        assert!(check_relative("docker/.env.secrets").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "docker/../../x",
            "docker//x",
            "./x",
            "docker/",
            "a\\b",
        ] {
            assert!(check_relative(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_built_from_a_safe_name_stay_in_their_folder() {
        let dir = Utf8Path::new("/backups/.aimem-prerestore-x");
        let name = SafeName::new("discussions").unwrap();
        let path = name.snapshot_path(dir);
        assert_eq!(path, dir.join("discussions.snapshot"));
        assert_eq!(path.parent(), Some(dir));
    }

    #[test]
    fn a_server_snapshot_name_is_checked_while_parsing() {
        #[derive(serde::Deserialize)]
        struct Described {
            #[serde(deserialize_with = "deserialize_safe")]
            name: String,
        }
        let ok: Described = serde_json::from_str(r#"{"name":"c-1-2026.snapshot"}"#).unwrap();
        assert_eq!(ok.name, "c-1-2026.snapshot");
        for bad in [
            r#"{"name":".."}"#,
            r#"{"name":"../../x"}"#,
            r#"{"name":"a\u001bb"}"#,
        ] {
            let err = serde_json::from_str::<Described>(bad).err().unwrap();
            assert!(err.to_string().contains("is not a safe name"), "{err}");
        }
    }

    #[test]
    fn a_name_longer_than_any_valid_one_is_shown_cut() {
        let long = "\u{fffd}".repeat(21_250);
        let text = shown(&long);
        assert!(text.chars().count() < 200, "{text}");
        assert!(text.ends_with("(21250 characters)"), "{text}");
        let longest_valid = "x".repeat(255);
        assert_eq!(shown(&longest_valid), format!("`{longest_valid}`"));
    }

    #[test]
    fn the_argument_parser_names_the_problem() {
        assert_eq!(parse_collection_arg("github"), Ok("github".to_string()));
        let err = parse_collection_arg("../x").unwrap_err();
        assert!(err.contains("`../x`") && err.contains('/'), "{err}");
    }
}

/// The prefix of the temporary collections a selective restore loads a backup into.
pub const TEMPORARY_PREFIX: &str = "aimem-merge-";

/// True for a name aimem gives a temporary collection: [`TEMPORARY_PREFIX`] then 1 to 64
/// lowercase letters, digits and `-`. Only such a collection is ever deleted from a journal.
pub fn is_temporary_collection(name: &str) -> bool {
    name.strip_prefix(TEMPORARY_PREFIX).is_some_and(|rest| {
        (1..=64).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

#[cfg(test)]
mod temporary_tests {
    use super::*;

    #[test]
    fn only_aimems_temporary_names_count_as_temporary() {
        assert!(is_temporary_collection("aimem-merge-20261207-ab12cd"));
        for other in [
            "aimem-merge-",
            "memories",
            "aimem-merge-../x",
            "aimem-merge-UPPER",
            "x-aimem-merge-1",
        ] {
            assert!(!is_temporary_collection(other), "{other}");
        }
    }
}
