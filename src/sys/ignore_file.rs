//! The ignore file, kept in memory and re-read only when it changes. 1.2 re-reads it on every
//! event so edits apply at once (§5.1); a `stat` per hit gives the same live updates without
//! parsing the file each time, and at most one `stat` per millisecond keeps a flood of hits
//! (tens of thousands a second) from paying one each. Bad lines are warned about once per
//! change, never fatal.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::ignore::{self, IgnoreList};
use crate::report;

use super::log::Logger;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    mtime: i64,
    mtime_ns: i64,
    len: u64,
}

pub struct IgnoreFile {
    path: PathBuf,
    /// None: never read; Some(None): missing; Some(Some(s)): read at stamp s.
    stamp: Option<Option<Stamp>>,
    list: IgnoreList,
    /// When the file was last looked at (clock ms).
    checked: Option<u64>,
}

impl IgnoreFile {
    pub fn new(path: &Path) -> IgnoreFile {
        IgnoreFile {
            path: path.to_path_buf(),
            stamp: None,
            list: IgnoreList::default(),
            checked: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current list, re-read first if the file changed since the last call.
    pub fn refresh(&mut self, log: &mut Logger) -> &IgnoreList {
        let ms = super::clock::now_ms();
        if self.checked == Some(ms) {
            return &self.list;
        }
        self.checked = Some(ms);
        let now = std::fs::metadata(&self.path).ok().map(|m| Stamp {
            dev: m.dev(),
            ino: m.ino(),
            mtime: m.mtime(),
            mtime_ns: m.mtime_nsec(),
            len: m.len(),
        });
        if self.stamp != Some(now) {
            self.stamp = Some(now);
            match std::fs::read(&self.path) {
                Ok(bytes) => {
                    let (list, warnings) = ignore::parse(&bytes);
                    for w in warnings {
                        log.log(&report::ignore_file_entry_ignored(
                            &self.path, w.line, &w.reason,
                        ));
                    }
                    self.list = list;
                }
                Err(_) => {
                    // 1.2: "cannot open ignore file. Blocking host anyway." (§5.1), logged
                    // here once per change instead of on every event.
                    log.log(&report::cannot_open_ignore_file());
                    self.list = IgnoreList::default();
                }
            }
        }
        &self.list
    }
}
