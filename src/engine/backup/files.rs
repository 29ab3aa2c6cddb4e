//! The non-Qdrant parts of a backup: config files, logs, the AI Memory version and flags.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;

use crate::manifest::checksums::{Entry, HashingWriter};
use crate::manifest::layout::{CONFIG_DIR, LOGS_DIR};
use crate::repo::Staging;

/// The config files a backup carries: (path in the backup's `config/`, path under the install dir).
pub const CONFIG_FILES: [(&str, &str); 4] = [
    ("settings.json", ".claude/settings.json"),
    (".env", ".env"),
    ("docker/.env", "docker/.env"),
    ("docker/.env.secrets", "docker/.env.secrets"),
];

/// The feature flags recorded in the manifest (diagnostic only).
pub const RUNTIME_FLAGS: [&str; 3] = [
    "COLBERT_RERANKING_ENABLED",
    "HYBRID_SEARCH_ENABLED",
    "BM25_SPARSE_ENABLED",
];

/// A file copied into the backup.
#[derive(Debug)]
pub struct Copied {
    /// Relative to the backup folder.
    pub checksum: Entry,
    pub size: u64,
}

/// The most a file read from the install dir for the manifest (`version.txt`,
/// `docker/.env`) may hold: they are a few lines.
const SMALL_FILE_LIMIT: u64 = 1024 * 1024;

/// Opens a file of the install dir for reading: links are followed (users link their `.env`),
/// but only a regular file is read, and opening never blocks (a FIFO planted there would hang
/// the backup).
pub fn open_regular(path: &Utf8Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        rustix::fs::OFlags::NONBLOCK.bits() as i32,
    );
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{path} is not a regular file"
        )));
    }
    Ok(file)
}

/// A small text file of the install dir, bounded.
pub fn read_small(path: &Utf8Path) -> std::io::Result<String> {
    let file = open_regular(path)?;
    let bytes = crate::manifest::confined::read_bounded(file, SMALL_FILE_LIMIT, path.as_str())?;
    String::from_utf8(bytes).map_err(std::io::Error::other)
}

/// Copies `from` to `relative` in the backup being written, byte for byte, readable by its
/// owner only, hashing on the way; synced before return.
pub fn copy_private(
    from: &Utf8Path,
    staging: &dyn Staging,
    relative: &str,
) -> std::io::Result<Copied> {
    let mut source = open_regular(from)?;
    let target = staging.create_file(relative)?;
    let mut writer = HashingWriter::new(target);
    std::io::copy(&mut source, &mut writer)?;
    writer.flush()?;
    let (sha256, size, file) = writer.finish();
    file.finish()?;
    Ok(Copied {
        checksum: Entry {
            sha256,
            path: relative.to_string(),
        },
        size,
    })
}

/// Copies the config files that exist under `install` into the backup's `config/`.
/// Returns the manifest's `config_files` list and the copies.
pub fn copy_config_files(
    install: &Utf8Path,
    staging: &dyn Staging,
) -> Result<Vec<(String, Copied)>, (String, std::io::Error)> {
    let mut copied = Vec::new();
    for (name, source) in CONFIG_FILES {
        let from = install.join(source);
        if !from.is_file() {
            continue;
        }
        let relative = format!("{CONFIG_DIR}/{name}");
        let copy = copy_private(&from, staging, &relative).map_err(|e| (name.to_string(), e))?;
        copied.push((name.to_string(), copy));
    }
    Ok(copied)
}

/// Every regular file under `<install>/logs`, with its path relative to that folder.
/// Links are not followed: a backup holds the files, not what they point at.
pub fn log_files(install: &Utf8Path) -> std::io::Result<Vec<(Utf8PathBuf, String)>> {
    let root = install.join(LOGS_DIR);
    let mut found = Vec::new();
    if !root.is_dir() {
        return Ok(found);
    }
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in dir.read_dir_utf8()? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path().to_owned());
            } else if kind.is_file() {
                let relative = entry
                    .path()
                    .strip_prefix(&root)
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default();
                found.push((entry.path().to_owned(), relative));
            }
        }
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(found)
}

/// The AI Memory version: `--version`, else `<install>/version.txt`, else None.
pub fn ai_memory_version(flag: Option<&str>, install: &Utf8Path) -> Option<String> {
    if let Some(version) = flag.map(str::trim).filter(|v| !v.is_empty()) {
        return Some(version.to_string());
    }
    read_small(&install.join("version.txt"))
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The runtime flags from the environment, else from `<install>/docker/.env`.
pub fn runtime_flags(install: &Utf8Path) -> BTreeMap<String, Value> {
    let dotenv = read_small(&install.join("docker/.env"))
        .map(|t| parse_dotenv(&t))
        .unwrap_or_default();
    RUNTIME_FLAGS
        .iter()
        .filter_map(|flag| {
            let value = std::env::var(flag)
                .ok()
                .or_else(|| dotenv.get(*flag).cloned())?;
            Some((flag.to_string(), Value::String(value)))
        })
        .collect()
}

/// `KEY=value` lines of a .env file (comments, `export` and quotes handled).
pub fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (key, value) = line.split_once('=')?;
            let value = value.trim();
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            Some((key.trim().to_string(), unquoted.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_lines_are_read_like_docker_compose_does() {
        let parsed = parse_dotenv("# c\nA=1\nexport B=\"two\"\nC='3'\n\nbad line\nD = x \n");
        assert_eq!(parsed["A"], "1");
        assert_eq!(parsed["B"], "two");
        assert_eq!(parsed["C"], "3");
        assert_eq!(parsed["D"], "x");
        assert!(!parsed.contains_key("bad line"));
    }

    #[test]
    fn version_comes_from_the_flag_then_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let install = Utf8Path::from_path(dir.path()).unwrap();
        assert_eq!(ai_memory_version(None, install), None);
        std::fs::write(install.join("version.txt"), "2.4.1\n").unwrap();
        assert_eq!(ai_memory_version(None, install).as_deref(), Some("2.4.1"));
        assert_eq!(
            ai_memory_version(Some("9.9"), install).as_deref(),
            Some("9.9")
        );
    }
}
