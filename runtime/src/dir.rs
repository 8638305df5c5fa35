//! Where the runtime directory is (stacks.md section 1): `$XDG_RUNTIME_DIR/flowlayer/`,
//! else `flowlayer-<uid>/` in the temp directory (`$TMPDIR`, else `/tmp`).
//!
//! No thread of its own; std only, so the CLI and the terminal client can share
//! it. The server creates the directory (0700); readers only look. Either way a
//! directory is used only when it is a real directory (not a symlink), owned by
//! this user and writable by no one else: anything else could be someone
//! else's trap in a shared `/tmp`.

use std::fmt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The directory's own name under `$XDG_RUNTIME_DIR`.
pub const DIR_NAME: &str = "flowlayer";

/// Why a candidate directory cannot be used.
#[derive(Debug)]
pub enum DirError {
    /// `$XDG_RUNTIME_DIR` is set but not an absolute path.
    NotAbsolute(PathBuf),
    /// It does not exist and could not be created (or, for a reader, does not exist).
    Create {
        path: PathBuf,
        error: std::io::Error,
    },
    NotADirectory(PathBuf),
    /// Owned by another user (`owner`), or this user's id cannot be read.
    NotOurs {
        path: PathBuf,
        owner: u32,
    },
    /// Group or world writable (`mode`, octal permission bits).
    Writable {
        path: PathBuf,
        mode: u32,
    },
}

impl fmt::Display for DirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirError::NotAbsolute(p) => {
                write!(f, "XDG_RUNTIME_DIR \"{}\" is not an absolute path", p.display())
            }
            DirError::Create { path, error } => write!(f, "{}: {error}", path.display()),
            DirError::NotADirectory(p) => write!(f, "{}: not a directory", p.display()),
            DirError::NotOurs { path, owner } => {
                write!(f, "{}: owned by uid {owner}, not by this user", path.display())
            }
            DirError::Writable { path, mode } => {
                write!(f, "{}: writable by others (mode {mode:o})", path.display())
            }
        }
    }
}

/// The candidates, in order: `$XDG_RUNTIME_DIR/flowlayer`, then
/// `<temp dir>/flowlayer-<uid>`. An unusable `$XDG_RUNTIME_DIR` is reported
/// as the first entry of the errors.
pub fn candidates() -> (Vec<PathBuf>, Vec<DirError>) {
    let mut dirs = Vec::new();
    let mut errors = Vec::new();
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(x) if Path::new(&x).is_absolute() => dirs.push(Path::new(&x).join(DIR_NAME)),
        Some(x) => errors.push(DirError::NotAbsolute(PathBuf::from(x))),
        None => {}
    }
    let uid = crate::procfs::own_uid().unwrap_or(u32::MAX);
    dirs.push(std::env::temp_dir().join(format!("flowlayer-{uid}")));
    (dirs, errors)
}

/// Checks that `path` is a directory of ours that no one else can write.
pub fn check(path: &Path) -> Result<(), DirError> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|error| DirError::Create { path: path.to_path_buf(), error })?;
    if !meta.is_dir() {
        return Err(DirError::NotADirectory(path.to_path_buf()));
    }
    if Some(meta.uid()) != crate::procfs::own_uid() {
        return Err(DirError::NotOurs { path: path.to_path_buf(), owner: meta.uid() });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(DirError::Writable { path: path.to_path_buf(), mode });
    }
    Ok(())
}

/// Creates `path` (mode 0700, its parent must exist) unless it exists, then checks it.
pub fn ensure(path: &Path) -> Result<(), DirError> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(DirError::Create { path: path.to_path_buf(), error }),
    }
    check(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fl-unit-dir-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_new_directory_is_created_private() {
        let base = scratch("new");
        let d = base.join(DIR_NAME);
        ensure(&d).unwrap();
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        ensure(&d).unwrap();
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn writable_by_others_symlinks_and_files_are_refused() {
        let base = scratch("bad");
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(ensure(&open), Err(DirError::Writable { mode: 0o777, .. })));
        let link = base.join("link");
        std::os::unix::fs::symlink(&open, &link).unwrap();
        assert!(matches!(ensure(&link), Err(DirError::NotADirectory(_))));
        let file = base.join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(ensure(&file), Err(DirError::NotADirectory(_))));
        let below_file = file.join(DIR_NAME);
        let e = ensure(&below_file).unwrap_err();
        assert!(e.to_string().starts_with(&below_file.display().to_string()), "{e}");
        std::fs::remove_dir_all(base).unwrap();
    }
}
