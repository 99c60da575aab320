//! The spool file (format: `crate::fleet::spool`). The event loop appends records through
//! [`Spool::append`] (one `write` per loop turn, under a mutex shared with the fleet thread);
//! the fleet thread reads them back with its own descriptor, appends its `S`/`A` lines and
//! compacts the file. Bounded: [`MAX_BYTES`]; what does not fit is counted and dropped.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::fleet::alert::{Numbered, Record};
use crate::fleet::spool::{self as fmt, Scanned};

/// At most 32 MiB on disk: about 450,000 waiting alerts (a record line is ~70 bytes), more
/// than a day of 1.2's worst case (every port of a /16 scanned) and a 10,000-source flood
/// forty times over.
pub const MAX_BYTES: u64 = 32 << 20;

/// The writer's side, shared between the event loop and the fleet thread.
pub struct Spool {
    path: PathBuf,
    file: File,
    /// The spool's id (in every alert's `portsentry_records`).
    pub id: String,
    next_seq: u64,
    /// Bytes in the file (as written through this handle; only this process writes it).
    pub len: u64,
    /// Records dropped because the spool was full, not yet logged.
    pub dropped: u64,
    /// Records in the file not yet done (the thread lowers it as it marks them).
    pub waiting: u64,
}

/// What opening found.
pub struct Opened {
    /// The spool, ready for appending.
    pub spool: Spool,
    /// What the file held.
    pub scanned: Scanned,
    /// Bytes of a torn tail cut off.
    pub torn_bytes: u64,
    /// The old file had no readable header: it was moved aside, to this path.
    pub set_aside: Option<PathBuf>,
}

fn random_id() -> String {
    let mut b = [0u8; 8];
    let ok = File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    if !ok {
        // No /dev/urandom: the time and pid still make a collision unlikely.
        b = (super::super::clock::epoch_ms() as u64 ^ u64::from(std::process::id()) << 40)
            .to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Writes a new spool (header only, new id) over `path`, atomically (`sys::atomic`).
fn fresh(path: &Path) -> io::Result<(File, String, u64)> {
    let id = random_id();
    let head = fmt::header(&id);
    crate::sys::atomic::write(path, head.as_bytes(), 0o600)?;
    Ok((open_append(path)?, id, head.len() as u64))
}

impl Spool {
    /// Opens (or creates) the spool: reads it whole, cuts a torn tail off.
    pub fn open(path: &Path) -> io::Result<Opened> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let scanned = fmt::scan(&bytes);
        let mut set_aside = None;
        let (file, id, len) = match &scanned.id {
            Some(id) => {
                let f = OpenOptions::new().write(true).open(path)?;
                if scanned.valid_len < bytes.len() {
                    f.set_len(scanned.valid_len as u64)?;
                    f.sync_data()?;
                }
                drop(f);
                (open_append(path)?, id.clone(), scanned.valid_len as u64)
            }
            None => {
                if !bytes.is_empty() {
                    let bad = path.with_extension("spool.bad");
                    std::fs::rename(path, &bad)?;
                    set_aside = Some(bad);
                }
                fresh(path)?
            }
        };
        let torn_bytes = if scanned.id.is_some() {
            (bytes.len() - scanned.valid_len) as u64
        } else {
            0
        };
        Ok(Opened {
            spool: Spool {
                path: path.to_path_buf(),
                file,
                id,
                next_seq: scanned.next_seq,
                len,
                dropped: 0,
                waiting: scanned.waiting,
            },
            scanned,
            torn_bytes,
            set_aside,
        })
    }

    /// The spool file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `records` in one write (the loop's flush). Records that would take the file
    /// past [`MAX_BYTES`] are counted in `dropped` instead. Returns how many were written.
    pub fn append(&mut self, records: &[Record]) -> io::Result<usize> {
        let mut text = String::with_capacity(records.len() * 80);
        let mut n = 0;
        for r in records {
            let line = fmt::record_line(&Numbered {
                seq: self.next_seq,
                record: *r,
            });
            if self.len + (text.len() + line.len()) as u64 > MAX_BYTES {
                self.dropped += 1;
                continue;
            }
            text.push_str(&line);
            self.next_seq += 1;
            n += 1;
        }
        self.write(&text)?;
        self.waiting += n as u64;
        Ok(n)
    }

    /// Appends marker lines (the thread's `S`/`A`); they may take the file past the bound by
    /// a few bytes, never a record.
    pub fn write(&mut self, text: &str) -> io::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        self.file.write_all(text.as_bytes())?;
        self.len += text.len() as u64;
        Ok(())
    }

    /// The number the next record gets (tests check numbering across compaction).
    #[cfg(test)]
    pub fn next_seq_for_tests(&self) -> u64 {
        self.next_seq
    }

    /// fdatasync: what was written is on disk.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Starts over with an empty spool and a new id (everything was delivered).
    pub fn reset(&mut self) -> io::Result<()> {
        let (file, id, len) = fresh(&self.path)?;
        self.file = file;
        self.id = id;
        self.len = len;
        self.next_seq = 1;
        self.waiting = 0;
        Ok(())
    }

    /// Keeps the same id and numbers but drops the bytes before `from` (all done): the
    /// header, then the file from `from` on. Returns the new offset of `from`.
    pub fn cut_before(&mut self, from: u64) -> io::Result<u64> {
        let mut src = File::open(&self.path)?;
        src.seek(SeekFrom::Start(from))?;
        let head = fmt::header(&self.id);
        crate::sys::atomic::write_with(&self.path, 0o600, |f| {
            f.write_all(head.as_bytes())?;
            io::copy(&mut src, f).map(|_| ())
        })?;
        self.file = open_append(&self.path)?;
        self.len = std::fs::metadata(&self.path)?.len();
        Ok(head.len() as u64)
    }
}

/// The thread's reading side.
pub struct Reader {
    file: File,
}

impl Reader {
    /// Opens the spool for reading.
    pub fn open(path: &Path) -> io::Result<Reader> {
        Ok(Reader {
            file: File::open(path)?,
        })
    }

    /// Bytes from `off` up to `end`, at most `max`.
    pub fn read_at(&self, off: u64, end: u64, max: usize) -> io::Result<Vec<u8>> {
        let want = usize::try_from(end.saturating_sub(off))
            .unwrap_or(max)
            .min(max);
        let mut buf = vec![0u8; want];
        let mut got = 0;
        while got < want {
            match self.file.read_at(&mut buf[got..], off + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::mode::Mode;
    use crate::fleet::alert::Scan;

    fn rec(i: u32) -> Record {
        Record {
            epoch_ms: 1_000 + i64::from(i),
            ip: std::net::IpAddr::V4(i.into()),
            port: 1,
            mode: Mode::Udp,
            scan: Scan::Udp,
            ban_s: 60,
        }
    }

    #[test]
    fn records_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("crowdsec.spool");
        let o = Spool::open(&p).unwrap();
        let mut s = o.spool;
        assert_eq!((o.scanned.waiting, o.set_aside.is_some()), (0, false));
        s.append(&[rec(1), rec(2)]).unwrap();
        s.write(&fmt::done_line(1, 1)).unwrap();
        let id = s.id.clone();
        drop(s);
        // A torn write after it.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"R 3 1003 0.0.0.3 1 udp ud").unwrap();
        let o = Spool::open(&p).unwrap();
        assert_eq!(o.spool.id, id);
        assert_eq!(
            (o.scanned.waiting, o.scanned.next_seq, o.torn_bytes),
            (1, 3, 25)
        );
        let mut s = o.spool;
        s.append(&[rec(3)]).unwrap();
        let o = Spool::open(&p).unwrap();
        assert_eq!(
            (
                o.scanned.waiting,
                o.scanned.next_seq,
                o.torn_bytes,
                o.scanned.bad_lines
            ),
            (2, 4, 0, 0)
        );
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode_bits(),
            0o600
        );
    }

    trait Bits {
        fn mode_bits(&self) -> u32;
    }
    impl Bits for std::fs::Permissions {
        fn mode_bits(&self) -> u32 {
            use std::os::unix::fs::PermissionsExt;
            self.mode() & 0o777
        }
    }

    #[test]
    fn a_full_spool_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.spool");
        let mut s = Spool::open(&p).unwrap().spool;
        s.len = MAX_BYTES - 60;
        let n = s.append(&[rec(1), rec(2), rec(3)]).unwrap();
        assert_eq!((n, s.dropped), (1, 2));
    }

    #[test]
    fn reset_and_cut_keep_what_waits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.spool");
        let mut s = Spool::open(&p).unwrap().spool;
        s.append(&[rec(1), rec(2), rec(3)]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let sc = fmt::scan(&bytes);
        let (recs, _) = fmt::records_after(&bytes[sc.first_waiting.unwrap()..], &sc.done, 10);
        let third = (sc.first_waiting.unwrap() + recs[2].1) as u64;
        let at = s.cut_before(third).unwrap();
        let o = Spool::open(&p).unwrap();
        assert_eq!((o.scanned.waiting, o.scanned.next_seq), (1, 4));
        assert_eq!(o.scanned.first_waiting, Some(at as usize));
        let old = s.id.clone();
        s.reset().unwrap();
        assert_ne!(s.id, old);
        let o = Spool::open(&p).unwrap();
        assert_eq!((o.scanned.waiting, o.scanned.next_seq), (0, 1));
        // A file with no header is set aside, not trusted.
        std::fs::write(&p, b"garbage\n").unwrap();
        let o = Spool::open(&p).unwrap();
        assert_eq!(o.set_aside, Some(p.with_extension("spool.bad")));
        assert!(p.with_extension("spool.bad").exists());
    }
}
