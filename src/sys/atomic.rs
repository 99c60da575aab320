//! The one way files that others read are replaced (STYLE §18): write a temp file beside the
//! target, fsync it, rename it over the target, fsync the directory. Readers see the old
//! file or the new one, never a part; a crash at any point leaves one of the two (and at
//! worst a stray temp file, named `.NAME.PID.N.tmp`). Used for the pid file, the rewritten
//! blocked files, the ignore file and its static list, METRICS_FILE and `report --html`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Replace `path` with `bytes`, mode `mode` (not filtered by the umask).
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_with(path, mode, |f| f.write_all(bytes))
}

/// Replace `path` with what `fill` writes into the temp file (for contents streamed from
/// elsewhere, e.g. the fleet spool cut short), mode `mode`.
pub fn write_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let base = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?
        .to_string_lossy();
    let (tmp, mut file) = create_temp(dir, &base)?;
    let written = fill(&mut file)
        // Explicit chmod: the create mode is filtered by the umask.
        .and_then(|()| file.set_permissions(fs::Permissions::from_mode(mode)))
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

fn create_temp(dir: &Path, base: &str) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    let mut attempt = 0u32;
    loop {
        let tmp = dir.join(format!(".{base}.{pid}.{attempt}.tmp"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_with_the_mode_asked_and_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, "old contents, longer than the new\n").unwrap();
        write(&p, b"new\n", 0o640).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        let m = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(m, 0o640);
        write(&d.path().join("g"), b"", 0o644).unwrap();
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // A directory that does not exist: an error, nothing written.
        assert!(write(&d.path().join("no/such/f"), b"x", 0o644).is_err());
        assert!(write(Path::new("/"), b"x", 0o644).is_err());
    }

    #[test]
    fn a_temp_name_in_use_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let taken = d.path().join(format!(".f.{}.0.tmp", std::process::id()));
        std::fs::write(&taken, "someone else's").unwrap();
        write(&d.path().join("f"), b"x", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&taken).unwrap(), "someone else's");
        assert_eq!(std::fs::read_to_string(d.path().join("f")).unwrap(), "x");
    }
}
