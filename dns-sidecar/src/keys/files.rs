//! The two files in `KEYS_DIR`, replaced atomically: a temporary file in the same directory is
//! written, flushed to disk and renamed over the target, so the bastion (which re-reads them
//! every 2 s) sees the old text or the new, never half of it. A file is only replaced when its
//! text changed.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub const AUTHORIZED: &str = "authorized_keys";
pub const REVOKED: &str = "revoked_keys";

/// Readable by the bastion whatever its uid (it runs as the same 65532, but be safe).
const MODE: u32 = 0o644;

/// Distinct temporary names within one process.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

/// Write `text` to `dir/name` unless the file already holds exactly it. `Ok(true)` when it
/// was replaced.
pub fn replace_if_changed(dir: &Path, name: &str, text: &str) -> io::Result<bool> {
    let target = dir.join(name);
    match fs::read(&target) {
        Ok(current) if current == text.as_bytes() => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let tmp = temporary(dir, name);
    let written = write_synced(&tmp, text).and_then(|()| fs::rename(&tmp, &target));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename itself reaches the disk with the directory.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(true)
}

fn temporary(dir: &Path, name: &str) -> PathBuf {
    let n = NEXT_TMP.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

fn write_synced(path: &Path, text: &str) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .open(path)?;
    // The umask may have narrowed the mode at creation.
    f.set_permissions(fs::Permissions::from_mode(MODE))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// `KEYS_DIR` must be a directory we can write to: checked once at start, with the fix.
pub fn check_dir(dir: &Path) -> Result<(), String> {
    let meta = fs::metadata(dir).map_err(|e| {
        format!(
            "KEYS_DIR: {}: {e}; mount the task volume shared with the bastion there",
            dir.display()
        )
    })?;
    if !meta.is_dir() {
        return Err(format!("KEYS_DIR: {} is not a directory", dir.display()));
    }
    let probe = temporary(dir, "probe");
    write_synced(&probe, "").map_err(|e| {
        format!(
            "KEYS_DIR: cannot write in {}: {e}; the volume must be writable by this \
             container's user",
            dir.display()
        )
    })?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn tempdir() -> PathBuf {
        let n = NEXT_TMP.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("keys-files-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_only_on_change_with_mode_0644_and_no_leftovers() {
        let dir = tempdir();
        assert!(replace_if_changed(&dir, AUTHORIZED, "a\n").unwrap());
        let first = fs::metadata(dir.join(AUTHORIZED)).unwrap();
        assert_eq!(first.mode() & 0o777, 0o644);
        assert!(!replace_if_changed(&dir, AUTHORIZED, "a\n").unwrap());
        let same = fs::metadata(dir.join(AUTHORIZED)).unwrap();
        assert_eq!(
            first.ino(),
            same.ino(),
            "an unchanged text must not be rewritten"
        );
        assert!(replace_if_changed(&dir, AUTHORIZED, "b\n").unwrap());
        let replaced = fs::metadata(dir.join(AUTHORIZED)).unwrap();
        assert_ne!(
            first.ino(),
            replaced.ino(),
            "replaced by a rename, not rewritten in place"
        );
        assert_eq!(fs::read_to_string(dir.join(AUTHORIZED)).unwrap(), "b\n");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(AUTHORIZED)]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempdir();
        assert!(replace_if_changed(&dir, REVOKED, "old\n").unwrap());
        // A directory in the way of the rename: the write fails, the old file stays.
        let blocked = tempdir();
        fs::create_dir(blocked.join(REVOKED)).unwrap();
        fs::write(blocked.join(REVOKED).join("x"), "").unwrap();
        assert!(replace_if_changed(&blocked, REVOKED, "new\n").is_err());
        assert_eq!(
            fs::read_dir(&blocked).unwrap().count(),
            1,
            "no temporary left behind"
        );
        assert_eq!(fs::read_to_string(dir.join(REVOKED)).unwrap(), "old\n");
        assert!(check_dir(&dir).is_ok());
        assert!(check_dir(&dir.join(REVOKED))
            .unwrap_err()
            .contains("not a directory"));
        assert!(check_dir(&dir.join("missing"))
            .unwrap_err()
            .starts_with("KEYS_DIR:"));
        fs::remove_dir_all(dir).unwrap();
        fs::remove_dir_all(blocked).unwrap();
    }
}
