//! `s3://bucket/prefix`: where a backup root is in object storage.
//!
//! The URL is typed by a user or read from the environment, so it is checked before anything
//! is built from it: the bucket name as S3 names buckets, the prefix as `/`-separated safe
//! names (each one component that could be a folder's name: no `.`, `..`, empty segment,
//! control character or backslash), so that a key made from it can never climb out of it or
//! land in another prefix.

use std::fmt;

use crate::names;

/// The scheme a backup root in object storage is written with.
pub const SCHEME: &str = "s3://";

/// A bucket and a prefix inside it (no leading or trailing `/`; empty: the bucket's top).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    bucket: String,
    prefix: String,
}

/// Why a `s3://` URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    #[error("{0} is not an s3:// URL")]
    NotS3(String),
    #[error(
        "{0} is not a valid bucket name: 3 to 63 lower-case letters, digits, dots and \
         hyphens, starting and ending with a letter or digit"
    )]
    Bucket(String),
    #[error("the prefix {prefix} cannot name a backup root: {why}")]
    Prefix { prefix: String, why: String },
}

impl S3Location {
    /// Whether `text` is meant as an object-storage root (it starts with `s3://`).
    pub fn is_s3(text: &str) -> bool {
        text.get(..SCHEME.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(SCHEME))
    }

    /// Parses `s3://bucket` or `s3://bucket/some/prefix` (a trailing `/` is ignored).
    pub fn parse(text: &str) -> Result<S3Location, LocationError> {
        if !S3Location::is_s3(text) {
            return Err(LocationError::NotS3(names::shown(text)));
        }
        let rest = &text[SCHEME.len()..];
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(bucket)?;
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
        if !prefix.is_empty() {
            names::check_relative(prefix).map_err(|e| LocationError::Prefix {
                prefix: names::shown(prefix),
                why: e.to_string(),
            })?;
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The prefix, without a trailing `/` (empty: the bucket's top).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of `relative` (`/`-separated, already checked) under the prefix.
    pub fn key(&self, relative: &str) -> String {
        match self.prefix.is_empty() {
            true => relative.to_string(),
            false => format!("{}/{relative}", self.prefix),
        }
    }

    /// What every key under the prefix starts with (`""` or `prefix/`).
    pub fn key_prefix(&self) -> String {
        self.key("")
    }

    /// The location of the folder `name` (one safe component) inside this one.
    pub fn child(&self, name: &str) -> Result<S3Location, LocationError> {
        names::check(name).map_err(|e| LocationError::Prefix {
            prefix: names::shown(name),
            why: e.to_string(),
        })?;
        Ok(S3Location {
            bucket: self.bucket.clone(),
            prefix: self.key(name),
        })
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix.is_empty() {
            true => write!(f, "{SCHEME}{}", self.bucket),
            false => write!(f, "{SCHEME}{}/{}", self.bucket, self.prefix),
        }
    }
}

/// S3's rules for a bucket's name (the ones every compatible service accepts).
fn check_bucket(name: &str) -> Result<(), LocationError> {
    let bytes = name.as_bytes();
    let allowed = |b: &u8| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-');
    let ends = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok = (3..=63).contains(&bytes.len())
        && bytes.iter().all(allowed)
        && ends(bytes.first())
        && ends(bytes.last())
        && !name.contains("..");
    match ok {
        true => Ok(()),
        false => Err(LocationError::Bucket(names::shown(name))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_and_its_prefix_are_read() {
        let top = S3Location::parse("s3://backups").unwrap();
        assert_eq!((top.bucket(), top.prefix()), ("backups", ""));
        assert_eq!(top.key("a/manifest.json"), "a/manifest.json");
        let deep = S3Location::parse("S3://my.backups-1/aimem/prod/").unwrap();
        assert_eq!(
            (deep.bucket(), deep.prefix()),
            ("my.backups-1", "aimem/prod")
        );
        assert_eq!(deep.key("x"), "aimem/prod/x");
        assert_eq!(deep.key_prefix(), "aimem/prod/");
        assert_eq!(deep.to_string(), "s3://my.backups-1/aimem/prod");
        assert_eq!(deep.child("2026").unwrap().prefix(), "aimem/prod/2026");
    }

    #[test]
    fn hostile_urls_are_refused() {
        for bad in [
            "/tmp/x",
            "s3://",
            "s3://ab",
            "s3://UPPER",
            "s3://-bucket",
            "s3://bucket-",
            "s3://bu..cket",
            "s3://bucket_x",
            "s3://bucket/../other",
            "s3://bucket/a/./b",
            "s3://bucket//a",
            "s3://bucket/a\\b",
            "s3://bucket/a\nb",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let root = S3Location::parse("s3://bucket/a").unwrap();
        for bad in ["..", ".", "", "a/b", "a\0"] {
            assert!(root.child(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
