//! A JSON-lines file that rotates itself: by size (before a record would pass `max_bytes`)
//! and by age (`max_age_secs` after the file was started), keeping `keep` rotated files as
//! `PATH.1` (newest) to `PATH.N`, logrotate's own naming. Written by hand: the rotation
//! crates do size or time but not both with a count, or no fsync and file mode control.
//! Files are created with mode 0600 and never opened through a symlink.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::config::{
    DEFAULT_FSYNC_INTERVAL_SECS, DEFAULT_KEEP, DEFAULT_MAX_AGE_SECS, DEFAULT_MAX_BYTES,
    FsyncPolicy, OutputConfig,
};

/// The file settings of one output.
#[derive(Clone, Debug)]
pub struct FileSettings {
    pub path: PathBuf,
    /// 0: never by size.
    pub max_bytes: u64,
    pub max_age: Option<Duration>,
    pub keep: u32,
    pub fsync: FsyncPolicy,
    pub fsync_interval: Duration,
}

impl FileSettings {
    /// From a validated entry (a file entry always has a path).
    pub fn from_config(c: &OutputConfig) -> FileSettings {
        FileSettings {
            path: c.path.clone().unwrap_or_default(),
            max_bytes: c.max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
            max_age: match c.max_age_secs.unwrap_or(DEFAULT_MAX_AGE_SECS) {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            keep: c.keep.unwrap_or(DEFAULT_KEEP),
            fsync: c.fsync.unwrap_or(FsyncPolicy::Interval),
            fsync_interval: Duration::from_secs(
                c.fsync_interval_secs.unwrap_or(DEFAULT_FSYNC_INTERVAL_SECS),
            ),
        }
    }
}

/// Refuses a file whose directory is missing, not a directory, or writable by others than
/// its owner (anyone who can write there can swap the file for a link), and a path that is a
/// symlink or not a regular file. Checked at start and before a reload takes new outputs.
pub fn preflight(path: &Path) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let meta = std::fs::metadata(dir).map_err(|e| {
        format!(
            "output file {}: directory {}: {e} (create it, mode 0700 or 0750)",
            path.display(),
            dir.display()
        )
    })?;
    if !meta.is_dir() {
        return Err(format!(
            "output file {}: {} is not a directory",
            path.display(),
            dir.display()
        ));
    }
    let mode = meta.permissions().mode();
    // A sticky world-writable directory (/tmp) only lets owners replace their own files.
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(format!(
            "output file {}: directory {} is writable by other users (mode {:04o}); \
             run: chmod go-w {}",
            path.display(),
            dir.display(),
            mode & 0o7777,
            dir.display()
        ));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => Err(format!(
            "output file {} exists and is not a regular file (links are not followed)",
            path.display()
        )),
        _ => Ok(()),
    }
}

pub struct RotatingFile {
    s: FileSettings,
    file: Option<File>,
    size: u64,
    /// When the current file was started (its birth time, else when we opened it).
    started: SystemTime,
    /// Bytes written since the last fsync.
    dirty: bool,
    last_sync: Instant,
    pub rotations: u64,
}

impl RotatingFile {
    pub fn new(s: FileSettings) -> RotatingFile {
        RotatingFile {
            s,
            file: None,
            size: 0,
            started: SystemTime::now(),
            dirty: false,
            last_sync: Instant::now(),
            rotations: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.s.path
    }

    /// Opens (or creates, 0600) the file for appending; nothing when it is open.
    fn open(&mut self, now: SystemTime) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            let f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&self.s.path)?;
            let meta = f.metadata()?;
            if meta.mode() & 0o077 != 0 {
                tracing::warn!(
                    target: "sentinel::output",
                    "{} is readable by other users (mode {:04o}); chmod 600 it",
                    self.s.path.display(),
                    meta.mode() & 0o7777
                );
            }
            self.size = meta.len();
            self.started = if self.size == 0 {
                now
            } else {
                meta.created().unwrap_or(now).min(now)
            };
            self.last_sync = Instant::now();
            self.file = Some(f);
        }
        // Just set when it was None.
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("file not open"))
    }

    /// Appends one line (with its newline), rotating first when due.
    pub fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.write_line_at(line, SystemTime::now())
    }

    pub fn write_line_at(&mut self, line: &[u8], now: SystemTime) -> std::io::Result<()> {
        self.open(now)?;
        let len = line.len() as u64;
        let too_big = self.s.max_bytes > 0 && self.size > 0 && self.size + len > self.s.max_bytes;
        let too_old = self.s.max_age.is_some_and(|a| {
            self.size > 0 && now.duration_since(self.started).unwrap_or_default() >= a
        });
        if too_big || too_old {
            self.rotate(now)?;
        }
        let f = self.open(now)?;
        f.write_all(line)?;
        self.size += len;
        self.dirty = true;
        match self.s.fsync {
            FsyncPolicy::Record => self.sync()?,
            FsyncPolicy::Interval if self.last_sync.elapsed() >= self.s.fsync_interval => {
                self.sync()?
            }
            _ => {}
        }
        Ok(())
    }

    /// Called when idle: a pending interval fsync, and an age rotation of a quiet file.
    pub fn tick(&mut self) -> std::io::Result<()> {
        self.tick_at(SystemTime::now())
    }

    pub fn tick_at(&mut self, now: SystemTime) -> std::io::Result<()> {
        if self.s.fsync == FsyncPolicy::Interval
            && self.dirty
            && self.last_sync.elapsed() >= self.s.fsync_interval
        {
            self.sync()?;
        }
        let old = self.file.is_some()
            && self.size > 0
            && self
                .s
                .max_age
                .is_some_and(|a| now.duration_since(self.started).unwrap_or_default() >= a);
        if old {
            self.rotate(now)?;
        }
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if let Some(f) = &self.file
            && self.dirty
        {
            f.sync_data()?;
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// PATH.N-1 -> PATH.N ... PATH -> PATH.1, beyond `keep` deleted; a new PATH next write.
    fn rotate(&mut self, now: SystemTime) -> std::io::Result<()> {
        if self.s.fsync != FsyncPolicy::Never {
            self.sync()?;
        }
        self.file = None;
        let numbered = |n: u32| {
            let mut p = self.s.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        remove_beyond(&self.s.path, self.s.keep)?;
        for n in (1..self.s.keep).rev() {
            match std::fs::rename(numbered(n), numbered(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.s.path, numbered(1))?;
        self.rotations += 1;
        self.size = 0;
        self.started = now;
        Ok(())
    }

    /// Puts what was written on disk (at the end, and before a reopen).
    pub fn close(&mut self) {
        if self.s.fsync != FsyncPolicy::Never
            && let Err(e) = self.sync()
        {
            tracing::warn!(target: "sentinel::output", "fsync {}: {e}", self.s.path.display());
        }
        self.file = None;
    }
}

/// Deletes `PATH.N` for N >= keep (the last one is about to be overwritten, and a smaller
/// `keep` than before leaves higher numbers behind).
fn remove_beyond(path: &Path, keep: u32) -> std::io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Ok(());
    };
    let prefix = format!("{name}.");
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let n = entry
            .file_name()
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix).map(str::to_string))
            .and_then(|s| s.parse::<u32>().ok());
        if n.is_some_and(|n| n >= keep) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, max_bytes: u64, max_age: Option<u64>, keep: u32) -> FileSettings {
        FileSettings {
            path: dir.join("out.jsonl"),
            max_bytes,
            max_age: max_age.map(Duration::from_secs),
            keep,
            fsync: FsyncPolicy::Record,
            fsync_interval: Duration::from_secs(5),
        }
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rotates_by_size_keeping_n_files_newest_first() {
        let d = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::new(settings(d.path(), 30, None, 2));
        // 10 bytes a line: three lines fill a file, the fourth starts the next.
        for i in 0..10 {
            f.write_line(format!("line {i:03}\n").as_bytes()).unwrap();
        }
        assert_eq!(files(d.path()), ["out.jsonl", "out.jsonl.1", "out.jsonl.2"]);
        assert_eq!(read(&d.path().join("out.jsonl")), "line 009\n");
        assert_eq!(
            read(&d.path().join("out.jsonl.1")),
            "line 006\nline 007\nline 008\n"
        );
        assert_eq!(
            read(&d.path().join("out.jsonl.2")),
            "line 003\nline 004\nline 005\n"
        );
        assert_eq!(f.rotations, 3);
        // Mode 0600, for the current file and the rotated ones alike.
        for name in files(d.path()) {
            let m = std::fs::metadata(d.path().join(&name)).unwrap().mode();
            assert_eq!(m & 0o777, 0o600, "{name}");
        }
    }

    #[test]
    fn a_line_longer_than_the_limit_gets_a_file_of_its_own() {
        let d = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::new(settings(d.path(), 10, None, 3));
        f.write_line(b"short\n").unwrap();
        f.write_line(b"a line of thirty bytes, long.\n").unwrap();
        f.write_line(b"next\n").unwrap();
        assert_eq!(read(&d.path().join("out.jsonl.2")), "short\n");
        assert_eq!(
            read(&d.path().join("out.jsonl.1")),
            "a line of thirty bytes, long.\n"
        );
        assert_eq!(read(&d.path().join("out.jsonl")), "next\n");
    }

    #[test]
    fn rotates_by_age_when_writing_and_when_idle() {
        let d = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::new(settings(d.path(), 0, Some(60), 5));
        let t0 = SystemTime::now();
        f.write_line_at(b"a\n", t0).unwrap();
        f.write_line_at(b"b\n", t0 + Duration::from_secs(59))
            .unwrap();
        assert_eq!(files(d.path()), ["out.jsonl"]);
        f.write_line_at(b"c\n", t0 + Duration::from_secs(60))
            .unwrap();
        assert_eq!(read(&d.path().join("out.jsonl.1")), "a\nb\n");
        assert_eq!(read(&d.path().join("out.jsonl")), "c\n");
        // Quiet: the tick rotates a file that got old, and never an empty one.
        f.tick_at(t0 + Duration::from_secs(100)).unwrap();
        assert_eq!(read(&d.path().join("out.jsonl")), "c\n");
        f.tick_at(t0 + Duration::from_secs(120)).unwrap();
        assert_eq!(read(&d.path().join("out.jsonl.1")), "c\n");
        assert_eq!(read(&d.path().join("out.jsonl.2")), "a\nb\n");
        assert!(!d.path().join("out.jsonl").exists());
        f.tick_at(t0 + Duration::from_secs(999)).unwrap();
        assert!(!d.path().join("out.jsonl.3").exists(), "nothing to rotate");
    }

    #[test]
    fn appends_to_an_existing_file_and_drops_numbers_beyond_keep() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("out.jsonl"), "old\n").unwrap();
        std::fs::write(d.path().join("out.jsonl.7"), "ancient\n").unwrap();
        let mut f = RotatingFile::new(settings(d.path(), 8, None, 1));
        f.write_line(b"new\n").unwrap();
        assert_eq!(read(&d.path().join("out.jsonl")), "old\nnew\n");
        f.write_line(b"newer\n").unwrap();
        assert_eq!(files(d.path()), ["out.jsonl", "out.jsonl.1"]);
        assert_eq!(read(&d.path().join("out.jsonl.1")), "old\nnew\n");
    }

    #[test]
    fn a_renamed_file_is_left_alone_until_reopened() {
        // logrotate's way: rename, then SIGHUP; until the reopen the agent writes on in
        // the renamed file (the same open file), after it in a new one.
        let d = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::new(settings(d.path(), 0, None, 1));
        f.write_line(b"one\n").unwrap();
        std::fs::rename(d.path().join("out.jsonl"), d.path().join("moved")).unwrap();
        f.write_line(b"two\n").unwrap();
        f.close();
        f.write_line(b"three\n").unwrap();
        assert_eq!(read(&d.path().join("moved")), "one\ntwo\n");
        assert_eq!(read(&d.path().join("out.jsonl")), "three\n");
    }

    #[test]
    fn preflight_refuses_unsafe_places() {
        let d = tempfile::tempdir().unwrap();
        let ok = d.path().join("a.jsonl");
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        preflight(&ok).unwrap();
        assert!(
            preflight(&d.path().join("missing/a.jsonl"))
                .unwrap_err()
                .contains("directory")
        );
        std::os::unix::fs::symlink("/etc/passwd", &ok).unwrap();
        assert!(preflight(&ok).unwrap_err().contains("not a regular file"));
        let open = d.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            preflight(&open.join("a"))
                .unwrap_err()
                .contains("chmod go-w")
        );
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        preflight(&open.join("a")).unwrap();
        // Never opened through a link either.
        let mut f = RotatingFile::new(FileSettings {
            path: ok.clone(),
            ..settings(d.path(), 0, None, 1)
        });
        assert!(f.write_line(b"x\n").is_err());
    }
}
