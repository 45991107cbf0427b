//! Files and folders only their owner can read: 0600 files in 0700 folders.
//!
//! Everything the gateway writes that holds a secret or an identifying value (the store and its
//! `-wal`/`-shm`, key files, certificates' private keys, the reference receiver's intake file,
//! the files of a destination that receives identifying values and their temporary files) is
//! created through here, so that it never exists, even for a moment, with the process umask's
//! usual 0644: on a shared server any local account could otherwise read PHI or a key. The mode
//! is given at creation (`open(2)`, `mkdir(2)`), not by a `chmod` afterwards, which would leave
//! a window. Existing files and folders are left as they are (an operator may have set them up
//! on purpose); `pnp-gateway check` warns about those others can read ([`others_can_read`]).
//!
//! On other platforms than Unix the modes do not apply and these are the plain operations.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Options that create a file 0600 (owner read/write); add `write`, `create`, `append`...
pub fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Creates `dir` and any missing parents 0700; folders that exist keep their mode.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Creates (or truncates) `path`, 0600 if it is new, and writes `bytes` to it; missing parent
/// folders are created 0700.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_dir_all(d)?;
    }
    let mut f = options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(bytes)
}

/// Creates `path` empty and 0600 unless it exists (then it is left as it is): for a file that
/// another library (SQLite) then opens and fills.
pub fn touch(path: &Path) -> io::Result<()> {
    match options().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens `path` for appending, creating it 0600.
pub fn append(path: &Path) -> io::Result<File> {
    options().create(true).append(true).open(path)
}

/// The permission bits (`0o644`) of `path` when its group or others may read it; `None` when
/// only the owner may, or when it does not exist (or on other platforms than Unix).
pub fn others_can_read(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o044 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_0600_in_folders_0700_existing_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a/b/secret");
        write(&f, b"x").unwrap();
        assert_eq!(mode(&f), 0o600);
        assert_eq!(mode(&d.path().join("a")), 0o700);
        assert_eq!(mode(&d.path().join("a/b")), 0o700);
        assert_eq!(others_can_read(&f), None);

        let open = d.path().join("open");
        std::fs::write(&open, b"x").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        touch(&open).unwrap();
        assert_eq!(mode(&open), 0o644, "an existing file is left as it is");
        assert_eq!(others_can_read(&open), Some(0o644));
        assert_eq!(others_can_read(&d.path().join("missing")), None);
    }
}
