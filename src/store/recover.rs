//! Moving a corrupt queue file aside, with its `-wal` and `-shm`, so a new one can be created.
//!
//! Nothing is ever deleted or overwritten: the new name carries the UTC time and, when that name
//! is taken, a counter. The `-wal` and `-shm` are moved first, so a stale WAL can never be
//! replayed into the new database.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::StoreError;

/// The side files SQLite keeps next to a WAL-mode database.
const SIDE_FILES: [&str; 2] = ["-wal", "-shm"];

/// Renames `path` (and its side files) to `<name>.corrupt-<YYYYmmddTHHMMSSZ>[.<n>]` in the same
/// directory; returns the new path of the main file.
pub(crate) fn move_aside(path: &Path, now: DateTime<Utc>) -> Result<PathBuf, StoreError> {
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    let target = free_name(path, &stamp);
    for suffix in SIDE_FILES {
        let from = with_suffix(path, suffix);
        let to = with_suffix(&target, suffix);
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::MoveAside { from, to, source }),
        }
    }
    std::fs::rename(path, &target).map_err(|source| StoreError::MoveAside {
        from: path.to_path_buf(),
        to: target.clone(),
        source,
    })?;
    Ok(target)
}

/// The first of `<name>.corrupt-<stamp>`, `<name>.corrupt-<stamp>.1`, ... for which neither the
/// file nor its side files exist.
fn free_name(path: &Path, stamp: &str) -> PathBuf {
    let base = with_suffix(path, &format!(".corrupt-{stamp}"));
    let taken = |p: &Path| {
        std::iter::once(p.to_path_buf())
            .chain(SIDE_FILES.iter().map(|s| with_suffix(p, s)))
            .any(|f| f.symlink_metadata().is_ok())
    };
    let mut candidate = base.clone();
    let mut n = 0u32;
    while taken(&candidate) {
        n += 1;
        candidate = with_suffix(&base, &format!(".{n}"));
    }
    candidate
}

/// `path` with `suffix` appended to its file name (`queue.db` + `-wal` = `queue.db-wal`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn at(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
        Ok(DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc))
    }

    #[test]
    fn moves_the_file_and_its_side_files_with_a_utc_stamp() -> TestResult {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("queue.db");
        std::fs::write(&db, b"main")?;
        std::fs::write(with_suffix(&db, "-wal"), b"wal")?;
        let moved = move_aside(&db, at("2026-11-22T10:00:01+02:00")?)?;
        assert_eq!(moved, dir.path().join("queue.db.corrupt-20261122T080001Z"));
        assert_eq!(std::fs::read(&moved)?, b"main");
        assert_eq!(std::fs::read(with_suffix(&moved, "-wal"))?, b"wal");
        assert!(!db.exists());
        assert!(!with_suffix(&db, "-wal").exists());
        Ok(())
    }

    #[test]
    fn never_overwrites_an_earlier_corrupt_file() -> TestResult {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("queue.db");
        let now = at("2026-01-02T03:04:05Z")?;
        let mut moved = Vec::new();
        for content in ["first", "second", "third"] {
            std::fs::write(&db, content)?;
            moved.push(move_aside(&db, now)?);
        }
        let names: Vec<_> = moved.iter().filter_map(|p| p.file_name()).collect();
        assert_eq!(
            names,
            [
                "queue.db.corrupt-20260102T030405Z",
                "queue.db.corrupt-20260102T030405Z.1",
                "queue.db.corrupt-20260102T030405Z.2"
            ]
        );
        for (path, content) in moved.iter().zip(["first", "second", "third"]) {
            assert_eq!(std::fs::read_to_string(path)?, content);
        }
        Ok(())
    }
}
