//! A runtime directory of a test's own (`XDG_RUNTIME_DIR`), shared by the
//! servers, the `flowlayer` runs and the terminal client of that test.

use super::cli::{cli, Run};
use super::{temp_dir, Opts, Server, TempDir};
use flowlayer_runtime::record::Record;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A runtime directory of a test's own, shared by the servers and the
/// `flowlayer` runs of that test; on drop, stops every server recorded in
/// it (a detached server is nobody's child).
pub struct Runtime {
    pub dir: TempDir,
}

impl Runtime {
    pub fn new(tag: &str) -> Runtime {
        let dir = temp_dir(tag);
        std::fs::set_permissions(&*dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        Runtime { dir }
    }

    pub fn xdg(&self) -> &Path {
        &self.dir
    }

    pub fn env(&self) -> [(&str, &str); 1] {
        [("XDG_RUNTIME_DIR", self.dir.to_str().unwrap())]
    }

    /// `flowlayer args` in `cwd` with this runtime directory.
    pub fn cli(&self, args: &[&str], cwd: &Path) -> Run {
        cli(args, cwd, &self.env())
    }

    pub fn records(&self) -> Vec<Record> {
        let dir = self.dir.join("flowlayer");
        let Ok(rd) = std::fs::read_dir(&dir) else { return Vec::new() };
        rd.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .filter(|r: &Record| r.is_live())
            .collect()
    }

    /// Starts `fixture` as the stack in `dir`, recorded here.
    pub fn start(&self, fixture: &str, vars: &[(&str, String)]) -> Server {
        let opts = Opts { vars, session: false, ..Opts::default() };
        let mut s = Server::start_with_env(fixture, opts, &self.env());
        s.wait_started();
        s
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for r in self.records() {
            let _ = kill(Pid::from_raw(r.pid as i32), Signal::SIGKILL);
        }
    }
}
