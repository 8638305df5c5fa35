//! One server per config: an exclusive `flock` on `config-<key>.lock` in the
//! runtime directory, held for the server's whole life.
//!
//! Runs on the main thread at boot. The kernel gives the lock to exactly one
//! of two servers started at the same instant, and takes it back when its
//! holder dies however it dies, so a killed server never leaves a stale lock.
//! The key is a hash of the config's canonical path, so every way of naming
//! one file (relative, through a symlink) is the same stack.

use std::fs::File;
use std::path::{Path, PathBuf};

/// `config-<16 hex digits>`: FNV-1a (64 bits) of the canonical config path.
/// Not a secret, only a short file name; a collision would merely make two
/// configs one stack, at odds of one in 2^64.
pub fn config_key(canonical: &Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in canonical.as_os_str().as_encoded_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("config-{h:016x}")
}

pub fn lock_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.lock"))
}

/// What trying the lock found.
pub enum Claim {
    /// Ours until the file is dropped (or the process ends).
    Held(File),
    /// Another live process holds it.
    Taken,
}

/// Tries the lock without waiting.
pub fn try_claim(dir: &Path, key: &str) -> std::io::Result<Claim> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path(dir, key))?;
    match file.try_lock() {
        Ok(()) => Ok(Claim::Held(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Claim::Taken),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_stable_and_differs_per_path() {
        let a = config_key(Path::new("/home/me/app/flowlayer.jsonc"));
        assert_eq!(a, config_key(Path::new("/home/me/app/flowlayer.jsonc")));
        assert_ne!(a, config_key(Path::new("/home/me/app2/flowlayer.jsonc")));
        assert_eq!(a.len(), "config-".len() + 16);
    }

    #[test]
    fn a_second_claim_on_the_same_config_is_refused_until_the_first_is_dropped() {
        let d = std::env::temp_dir().join(format!("fl-unit-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let Claim::Held(first) = try_claim(&d, "k").unwrap() else { panic!("free lock refused") };
        assert!(matches!(try_claim(&d, "k").unwrap(), Claim::Taken));
        assert!(matches!(try_claim(&d, "other").unwrap(), Claim::Held(_)));
        drop(first);
        assert!(matches!(try_claim(&d, "k").unwrap(), Claim::Held(_)));
        std::fs::remove_dir_all(d).unwrap();
    }
}
