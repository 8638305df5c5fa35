//! Readers of `/proc`: a process's state, parent, group and start time, its
//! owner, environment and command line; the machine's boot id; who listens on
//! a TCP port.
//!
//! Plain functions, no thread of their own, std only (so the `flowlayer` CLI
//! and the terminal client can take them with the runtime records). Called by
//! the watchdog, the reaper, the runtime records and the port-owner lookup. A
//! process that ends while it is read is simply absent (`None`, `false`).

use std::os::unix::fs::MetadataExt;

/// The fields of `/proc/<pid>/stat` this crate uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `D`, `Z`, ... (field 3).
    pub state: u8,
    pub ppid: u32,
    /// Process group id.
    pub pgid: u32,
    /// Start time in clock ticks after boot (field 22): with the pid, it names
    /// one process for as long as the machine runs, since pids are reused and
    /// start times are not.
    pub start: u64,
}

impl Stat {
    /// Dead and waiting to be reaped (or being reaped).
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, b'Z' | b'X')
    }
}

/// Parses a `/proc/<pid>/stat` line. The command name is in parentheses and
/// may itself hold spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let rest = &line[line.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    Some(Stat {
        state: *f.first()?.as_bytes().first()?,
        ppid: f.get(1)?.parse().ok()?,
        pgid: f.get(2)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The start time (clock ticks after boot) of a process that is not a zombie.
pub fn live_start(pid: u32) -> Option<u64> {
    stat(pid).filter(|s| !s.is_zombie()).map(|s| s.start)
}

/// Every pid in `/proc` (processes, not threads).
pub fn pids() -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    rd.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
}

/// The owner of a process (its effective uid, as `/proc` shows it).
pub fn uid(pid: u32) -> Option<u32> {
    std::fs::metadata(format!("/proc/{pid}")).ok().map(|m| m.uid())
}

/// This process's effective uid.
pub fn own_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// This process's pid start time.
pub fn own_start() -> Option<u64> {
    live_start(std::process::id())
}

/// Whether the environment a process was started with holds `entry` (`NAME=value`)
/// exactly. Readable for the process's owner only.
pub fn environ_has(pid: u32, entry: &[u8]) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|&b| b == 0).any(|e| e == entry))
}

/// The value of `name` in the environment a process was started with.
pub fn environ_var(pid: u32, name: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|&b| b == 0).find_map(|e| {
        let v = e.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(v).into_owned())
    })
}

/// The command line, arguments joined by spaces, cut to `max` characters
/// (with `…`); the bracketed command name for a process without one.
pub fn cmdline(pid: u32, max: usize) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let line = if args.is_empty() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        format!("[{}]", comm.trim_end())
    } else {
        args.join(" ")
    };
    Some(shorten(&line, max))
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The id of this boot of the machine: start times only compare within one.
pub fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_string())
}

/// State `0A` in `/proc/net/tcp{,6}`.
const TCP_LISTEN: &str = "0A";

/// The socket inodes of `/proc/net/tcp`-format `text` that listen on `port`.
pub fn parse_listening(text: &str, port: u16) -> Vec<u64> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_ascii_whitespace().collect();
            let local = f.get(1)?;
            let p = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (p == port && *f.get(3)? == TCP_LISTEN).then(|| f.get(9)?.parse().ok()).flatten()
        })
        .filter(|&inode| inode != 0)
        .collect()
}

/// The inodes of the sockets listening on TCP `port` (IPv4 and IPv6).
pub fn listening_inodes(port: u16) -> Vec<u64> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| parse_listening(&text, port))
        .collect()
}

/// The processes owned by `uid` that hold one of `inodes` open, by their file
/// descriptors (`socket:[inode]`). Others' descriptors are not readable.
pub fn socket_holders(inodes: &[u64], uid: u32) -> Vec<u32> {
    if inodes.is_empty() {
        return Vec::new();
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let mut out = Vec::new();
    for pid in pids() {
        if self::uid(pid) != Some(uid) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|t| t.to_str().is_some_and(|t| wanted.iter().any(|w| w == t)))
        });
        if holds {
            out.push(pid);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 \
                    1000 200 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(s, Stat { state: b'S', ppid: 1, pgid: 4242, start: 987654 });
        assert!(!s.is_zombie());
        assert!(parse_stat("12 (x) Z 1").is_none());
    }

    #[test]
    fn own_stat_is_readable_and_alive() {
        let me = std::process::id();
        let s = stat(me).unwrap();
        assert!(!s.is_zombie());
        assert_eq!(live_start(me), Some(s.start));
        assert_eq!(uid(me), own_uid());
        assert!(boot_id().is_some_and(|b| b.len() == 36));
    }

    #[test]
    fn listening_sockets_are_found_by_port_and_state() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 31337 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:1538 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 31338 1 0000000000000000 20 4 30 10 -1\n\
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(parse_listening(text, 5432), vec![31337]);
        assert_eq!(parse_listening(text, 22), vec![99]);
        assert!(parse_listening(text, 80).is_empty());
    }

    #[test]
    fn a_listener_of_this_process_is_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let inodes = listening_inodes(port);
        assert_eq!(inodes.len(), 1);
        let holders = socket_holders(&inodes, own_uid().unwrap());
        assert_eq!(holders, vec![std::process::id()]);
    }

    #[test]
    fn long_command_lines_are_cut() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
        let me = cmdline(std::process::id(), 500).unwrap();
        assert!(!me.is_empty());
    }
}
