//! Running the `flowlayer` command in tests: to completion, or in the
//! background with its output in a file (for `logs -f`).

use super::{flowlayer, wait_until};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished `flowlayer` run gave.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:?}"))
    }
}

fn command(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(flowlayer());
    cmd.args(args).current_dir(cwd).env_remove("NO_COLOR").env_remove("FLOWLAYER_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `flowlayer args` in `cwd` to completion; kills it after 30 s.
pub fn cli(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Run {
    let mut child = command(args, cwd, env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flowlayer");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("flowlayer {args:?} did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `flowlayer` running in the background, its stdout and stderr in files;
/// killed when dropped.
pub struct Background {
    pub child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Background {
    pub fn start(args: &[&str], cwd: &Path, env: &[(&str, &str)], tag: &str) -> Background {
        let out = cwd.join(format!("{tag}.out"));
        let err = cwd.join(format!("{tag}.err"));
        let child = command(args, cwd, env)
            .stdin(Stdio::null())
            .stdout(File::create(&out).expect("stdout file"))
            .stderr(File::create(&err).expect("stderr file"))
            .spawn()
            .expect("spawn flowlayer");
        Background { child, out, err }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits until stdout satisfies `pred`.
    pub fn wait_stdout(&self, what: &str, pred: impl Fn(&str) -> bool) {
        wait_until(Duration::from_secs(20), what, || pred(&self.stdout()));
    }

    /// Waits for the exit; its code.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st.code().unwrap_or(-1);
            }
            if Instant::now() >= deadline {
                panic!("flowlayer did not exit; stderr: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- flowlayer stderr:\n{}", self.stderr());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
