//! Where one of the backup's files (or folders of files) goes while the backup is written.
//!
//! A local backup is built in a staging folder, and snapshots are downloaded into it by path:
//! through a partial file that a retry resumes, synced before the folder is published. A
//! backup in object storage has no folder: each file is streamed into the staging area by
//! name ([`crate::repo::Staging::create_file`]), a failed attempt is dropped (its upload
//! aborted) and a retry streams the file again from its first byte. Nothing of it touches the
//! local disk.

use std::io;
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};

use crate::repo::{NewFile, Staging};

/// A file or folder of the backup being written.
#[derive(Clone)]
pub enum Dest {
    /// A path in the local staging folder.
    Folder(Utf8PathBuf),
    /// A name in a staging area that takes files by name (`/`-separated, relative to it).
    Named {
        stage: Arc<dyn Staging>,
        relative: String,
    },
}

impl Dest {
    /// `relative` in `stage`.
    pub fn of(stage: &Arc<dyn Staging>, relative: &str) -> Dest {
        match stage.folder() {
            Some(dir) => Dest::Folder(dir.join(relative)),
            None => Dest::Named {
                stage: Arc::clone(stage),
                relative: relative.to_string(),
            },
        }
    }

    /// `name` inside this folder.
    pub fn join(&self, name: &str) -> Dest {
        match self {
            Dest::Folder(path) => Dest::Folder(path.join(name)),
            Dest::Named { stage, relative } => Dest::Named {
                stage: Arc::clone(stage),
                relative: format!("{relative}/{name}"),
            },
        }
    }

    /// The local path, for a backup built in a folder.
    pub fn path(&self) -> Option<&Utf8Path> {
        match self {
            Dest::Folder(path) => Some(path),
            Dest::Named { .. } => None,
        }
    }

    /// The local folder this file or folder is written into, whether by path or by name (an
    /// encrypted backup's files go by name into a local staging folder); none in a bucket.
    /// Its free space is what the backup must keep.
    pub fn local_folder(&self) -> Option<&Utf8Path> {
        match self {
            Dest::Folder(path) => path.parent(),
            Dest::Named { stage, .. } => stage.local_folder(),
        }
    }

    /// As messages show it.
    pub fn shown(&self) -> String {
        match self {
            Dest::Folder(path) => path.to_string(),
            Dest::Named { stage, relative } => format!("{}/{relative}", stage.location()),
        }
    }

    /// Makes this folder (private); a name needs none.
    pub fn create_dir(&self) -> io::Result<()> {
        match self {
            Dest::Folder(path) => crate::manifest::layout::create_private_dir(path),
            Dest::Named { .. } => Ok(()),
        }
    }

    /// A new file here (never over an existing one).
    pub fn create(&self) -> io::Result<Box<dyn NewFile>> {
        self.create_of(None)
    }

    /// A new file here, expected to be about `expected` bytes.
    pub fn create_of(&self, expected: Option<u64>) -> io::Result<Box<dyn NewFile>> {
        match self {
            Dest::Folder(path) => Ok(Box::new(LocalNew(crate::manifest::layout::private_file(
                path,
            )?))),
            Dest::Named { stage, relative } => stage.create_file_of(relative, expected),
        }
    }

    /// Removes this file (an attempt taken again); one not there is no error.
    pub fn remove_file(&self) -> io::Result<()> {
        match self {
            Dest::Folder(path) => match std::fs::remove_file(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
            Dest::Named { stage, relative } => stage.remove_file(relative),
        }
    }
}

/// A new local file: synced when finished.
struct LocalNew(std::fs::File);

impl io::Write for LocalNew {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl NewFile for LocalNew {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        io::Write::flush(&mut self.0)?;
        self.0.sync_all()
    }
}
