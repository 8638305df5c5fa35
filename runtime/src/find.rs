//! What the server and its clients look for by name: the config files a
//! directory is searched for (server.md section 1), and the server binary a
//! client starts (`flowlayer up`, the terminal client's start of a stack).
//!
//! No thread of its own; std only.

use std::path::{Path, PathBuf};

/// The config names a directory is searched for, in order.
pub const CONFIG_NAMES: [&str; 4] =
    ["flowlayer.jsonc", "flowlayer.json", "flowlayer.config.jsonc", "flowlayer.config.json"];

/// The config file in `dir`, by the discovery names.
pub fn config_in(dir: &Path) -> Option<PathBuf> {
    CONFIG_NAMES.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// `flowlayer-server` next to the running program, else on the `PATH`.
pub fn server_binary() -> Option<PathBuf> {
    const NAME: &str = "flowlayer-server";
    let beside = std::env::current_exe().ok()?.parent()?.join(NAME);
    if beside.is_file() {
        return Some(beside);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(NAME)).find(|p| p.is_file())
}
