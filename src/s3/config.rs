//! Credentials, region and endpoint, found the way every AWS tool finds them.
//!
//! In order: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (with `AWS_SESSION_TOKEN`), else
//! the profile `AWS_PROFILE` (or `default`) of `~/.aws/credentials`
//! (`AWS_SHARED_CREDENTIALS_FILE`). The region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the
//! profile's `region` in `~/.aws/config` (`AWS_CONFIG_FILE`), else `us-east-1`. The endpoint:
//! `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's `endpoint_url`, else AWS's own for
//! the region. An endpoint that is an IP address or `localhost` is addressed path-style
//! (`AIMEM_S3_PATH_STYLE=1` forces it), as is a bucket whose name has a dot (a virtual host
//! `a.b.s3.amazonaws.com` would not match AWS's certificate).
//!
//! The environment is read through a function so that tests can give their own.

use std::io::Read;
use std::path::{Path, PathBuf};

use url::{Host, Url};

/// The largest credentials or config file read (a real one is a few hundred bytes).
const MAX_PROFILE_FILE: u64 = 1024 * 1024;

const DEFAULT_REGION: &str = "us-east-1";

/// Where and as whom to reach the storage service.
#[derive(Clone)]
pub struct S3Config {
    pub endpoint: Url,
    pub region: String,
    pub path_style: bool,
    /// None: anonymous requests (a public bucket, or a local test server without keys).
    pub credentials: Option<Keys>,
}

/// An access key and its secret (and a session token). Never printed: `Debug` hides them.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(***)")
    }
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// Why the configuration could not be put together.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the S3 endpoint {0} is not an http:// or https:// URL with a host")]
    Endpoint(String),
    #[error("{var} is set but {missing} is not: set both, or neither to use a profile")]
    HalfKeys {
        var: &'static str,
        missing: &'static str,
    },
    #[error("cannot read {path}: {why}")]
    File { path: String, why: String },
    #[error(
        "the AWS profile {0} is missing, or has no aws_access_key_id and aws_secret_access_key"
    )]
    Profile(String),
    #[error("the S3 region {0} is not a region name (letters, digits and hyphens)")]
    Region(String),
}

impl S3Config {
    /// The configuration the environment `var` (and the files it names) gives, for a bucket
    /// called `bucket`.
    pub fn from_env(
        var: &dyn Fn(&str) -> Option<String>,
        bucket: &str,
    ) -> Result<S3Config, ConfigError> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let home = var("HOME").map(PathBuf::from);
        let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".to_string());
        let aws_file = |env: &str, name: &str| {
            var(env)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
        };

        let credentials = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Some(Keys {
                access_key_id: id,
                secret_access_key: secret,
                session_token: var("AWS_SESSION_TOKEN"),
            }),
            (Some(_), None) => {
                return Err(ConfigError::HalfKeys {
                    var: "AWS_ACCESS_KEY_ID",
                    missing: "AWS_SECRET_ACCESS_KEY",
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::HalfKeys {
                    var: "AWS_SECRET_ACCESS_KEY",
                    missing: "AWS_ACCESS_KEY_ID",
                });
            }
            (None, None) => match aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials") {
                Some(path) => profile_keys(&path, &profile)?,
                None => None,
            },
        };

        // ~/.aws/config names a profile `[profile x]`, except the default one.
        let config_section = match profile.as_str() {
            "default" => "default".to_string(),
            other => format!("profile {other}"),
        };
        let config = match aws_file("AWS_CONFIG_FILE", "config") {
            Some(path) => read_section(&path, &config_section)?,
            None => Vec::new(),
        };
        let from_config = |key: &str| {
            config
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };

        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .or_else(|| from_config("region"))
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        let region_ok = !region.is_empty()
            && region.len() <= 64
            && region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !region_ok {
            return Err(ConfigError::Region(crate::names::shown(&region)));
        }

        let endpoint_text = var("AWS_ENDPOINT_URL_S3")
            .or_else(|| var("AWS_ENDPOINT_URL"))
            .or_else(|| from_config("endpoint_url"))
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let endpoint = Url::parse(&endpoint_text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| ConfigError::Endpoint(shown_endpoint(&endpoint_text)))?;

        let local_host = match endpoint.host() {
            Some(Host::Ipv4(_) | Host::Ipv6(_)) => true,
            Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        let forced = var("AIMEM_S3_PATH_STYLE").is_some_and(|v| v != "0");
        let path_style = forced || local_host || bucket.contains('.');

        Ok(S3Config {
            endpoint,
            region,
            path_style,
            credentials,
        })
    }
}

/// An endpoint as an error shows it: without any user info it may carry.
fn shown_endpoint(text: &str) -> String {
    match text.split_once('@') {
        Some((_, host)) => crate::names::shown(&format!("***@{host}")),
        None => crate::names::shown(text),
    }
}

/// The keys of `profile` in a credentials file; None when the file does not exist.
fn profile_keys(path: &Path, profile: &str) -> Result<Option<Keys>, ConfigError> {
    let section = match path.exists() {
        true => read_section(path, profile)?,
        false => Vec::new(),
    };
    if section.is_empty() {
        // No such profile. Only the default one may be missing (then requests go
        // anonymous, as the AWS tools' do): a profile asked for by name must exist.
        return match profile {
            "default" => Ok(None),
            named => Err(ConfigError::Profile(crate::names::shown(named))),
        };
    }
    let get = |key: &str| {
        section
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Ok(Some(Keys {
            access_key_id: id,
            secret_access_key: secret,
            session_token: get("aws_session_token").filter(|t| !t.is_empty()),
        })),
        _ => Err(ConfigError::Profile(crate::names::shown(profile))),
    }
}

/// The `key = value` lines of `[section]` in an INI file (empty when the file or the section
/// is missing).
fn read_section(path: &Path, section: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let file_error = |why: String| ConfigError::File {
        path: crate::names::shown(&path.to_string_lossy()),
        why,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(file_error(e.to_string())),
    };
    let mut text = String::new();
    file.take(MAX_PROFILE_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| file_error(e.to_string()))?;
    if text.len() as u64 > MAX_PROFILE_FILE {
        return Err(file_error(format!(
            "it is larger than {} bytes",
            MAX_PROFILE_FILE
        )));
    }
    let mut inside = false;
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside {
            if let Some((key, value)) = line.split_once('=') {
                found.push((key.trim().to_string(), value.trim().to_string()));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)], bucket: &str) -> Result<S3Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        S3Config::from_env(&|name| map.get(name).cloned(), bucket)
    }

    #[test]
    fn keys_region_and_endpoint_come_from_the_environment() {
        let c = config(
            &[
                ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "secretsecret"),
                ("AWS_SESSION_TOKEN", "token"),
                ("AWS_DEFAULT_REGION", "eu-west-3"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ],
            "bucket",
        )
        .unwrap();
        let keys = c.credentials.clone().unwrap();
        assert_eq!(keys.access_key_id, "AKIAEXAMPLE");
        assert_eq!(keys.session_token.as_deref(), Some("token"));
        assert_eq!(c.region, "eu-west-3");
        assert_eq!(c.endpoint.as_str(), "http://127.0.0.1:9000/");
        assert!(c.path_style, "an IP endpoint is path-style");
        assert!(!format!("{c:?}").contains("secretsecret"));

        let aws = config(&[("AWS_REGION", "us-west-2")], "plain").unwrap();
        assert_eq!(aws.endpoint.as_str(), "https://s3.us-west-2.amazonaws.com/");
        assert!(!aws.path_style);
        assert!(aws.credentials.is_none());
        assert!(config(&[], "with.dot").unwrap().path_style);
        assert!(
            config(&[("AIMEM_S3_PATH_STYLE", "1")], "plain")
                .unwrap()
                .path_style
        );
        let s3 = config(
            &[
                ("AWS_ENDPOINT_URL", "http://ignored:1"),
                ("AWS_ENDPOINT_URL_S3", "http://localhost:8014"),
            ],
            "b",
        )
        .unwrap();
        assert_eq!(s3.endpoint.as_str(), "http://localhost:8014/");
        assert!(s3.path_style);
    }

    #[test]
    fn a_profile_gives_keys_region_and_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let aws = dir.path().join(".aws");
        std::fs::create_dir(&aws).unwrap();
        std::fs::write(
            aws.join("credentials"),
            "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n\n\
             [work]\n# comment\naws_access_key_id=W\naws_secret_access_key = WS\n\
             aws_session_token = WT\n[broken]\naws_access_key_id = B\n",
        )
        .unwrap();
        std::fs::write(
            aws.join("config"),
            "[default]\nregion = eu-north-1\n[profile work]\nregion = ap-south-1\n\
             endpoint_url = https://minio.example:9000\n",
        )
        .unwrap();
        let home = dir.path().to_str().unwrap();
        let default = config(&[("HOME", home)], "b").unwrap();
        assert_eq!(default.credentials.unwrap().access_key_id, "D");
        assert_eq!(default.region, "eu-north-1");
        let work = config(&[("HOME", home), ("AWS_PROFILE", "work")], "b").unwrap();
        let keys = work.credentials.unwrap();
        assert_eq!(
            (keys.access_key_id.as_str(), keys.session_token.as_deref()),
            ("W", Some("WT"))
        );
        assert_eq!(work.region, "ap-south-1");
        assert_eq!(work.endpoint.as_str(), "https://minio.example:9000/");
        assert!(matches!(
            config(&[("HOME", home), ("AWS_PROFILE", "broken")], "b"),
            Err(ConfigError::Profile(_))
        ));
        // A profile asked for by name must exist (the default one may be missing).
        assert!(matches!(
            config(&[("HOME", home), ("AWS_PROFILE", "typo")], "b"),
            Err(ConfigError::Profile(_))
        ));
        let nowhere = tempfile::tempdir().unwrap();
        let home_without = nowhere.path().to_str().unwrap();
        assert!(
            config(&[("HOME", home_without)], "b")
                .unwrap()
                .credentials
                .is_none()
        );
        assert!(config(&[("HOME", home_without), ("AWS_PROFILE", "work")], "b").is_err());
        // The environment's keys win over the profile's.
        let env = config(
            &[
                ("HOME", home),
                ("AWS_ACCESS_KEY_ID", "E"),
                ("AWS_SECRET_ACCESS_KEY", "ES"),
            ],
            "b",
        )
        .unwrap();
        assert_eq!(env.credentials.unwrap().access_key_id, "E");
    }

    #[test]
    fn bad_settings_are_refused_without_showing_secrets() {
        assert!(matches!(
            config(&[("AWS_ACCESS_KEY_ID", "A")], "b"),
            Err(ConfigError::HalfKeys { .. })
        ));
        let bad = config(&[("AWS_ENDPOINT_URL", "ftp://user:hunter22@host")], "b").unwrap_err();
        assert!(!bad.to_string().contains("hunter22"), "{bad}");
        assert!(config(&[("AWS_REGION", "eu west")], "b").is_err());
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("credentials");
        std::fs::write(&big, vec![b'#'; (MAX_PROFILE_FILE + 10) as usize]).unwrap();
        let too_big = config(
            &[("AWS_SHARED_CREDENTIALS_FILE", big.to_str().unwrap())],
            "b",
        );
        assert!(matches!(too_big, Err(ConfigError::File { .. })));
    }
}
