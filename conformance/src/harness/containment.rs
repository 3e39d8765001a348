//! Containment of a node's whole process tree, so that stopping a node stops everything it
//! started and a run leaves nothing behind.
//!
//! A subject is any program, and real ones fork: a wrapper script that runs the node as its
//! child, a node that spawns workers, a daemon that double-forks and calls `setsid`. Killing the
//! process the harness spawned leaves all of those running, holding ports and data directories
//! that the next run then trips over. Three nets catch them, from the strongest:
//!
//! 1. **A cgroup v2 per node**, where the machine lets this process create one (root, or a
//!    delegated subtree): the node is moved into it right after it starts, every process it
//!    forks afterwards is born inside it whatever session or group it moves to, and
//!    `cgroup.kill` ends them all at once (Linux 5.14+).
//! 2. **Its own process group** (`process_group(0)`), always: catches forks that did not call
//!    `setsid`/`setpgid`, and lets pause and resume stop and continue the whole group.
//! 3. **An environment tag** (`CONVERGE_NODE_TAG`), always: a value unique to this node start,
//!    inherited by every descendant that does not scrub its environment; `/proc` is scanned for it
//!    on stop. It catches what escaped both other nets (a fork that raced the move into the
//!    cgroup, a `setsid` daemon on a machine without cgroups).
//!
//! The process running the harness also makes itself a *child subreaper*, so descendants
//! orphaned by a killed node are re-parented to it rather than to init, and it reaps them.
//!
//! # Invariants
//! - After [`Contained::stop`] and [`Contained::reap`] return, no process that carried the node's tag or sat in its
//!   cgroup or group is alive, except one that both scrubbed its environment and escaped the
//!   group on a machine without cgroups (said in docs/protocol.md), and every such process that
//!   was re-parented to the harness has been reaped.
//! - Every wait here is bounded; a cgroup directory this module created is removed once empty.

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The environment variable that tags a node's processes.
pub const TAG_VAR: &str = "CONVERGE_NODE_TAG";

/// How long a stop waits for killed processes to be gone (to be reaped, to leave the cgroup).
const GONE_WAIT: Duration = Duration::from_secs(2);
/// Passes of the tag scan: a process found alive is killed and the scan repeated, since one may
/// have forked between the scan and its kill.
const SCAN_PASSES: usize = 8;

/// Backends created by this process, so that two backends' cgroups never share a name.
static BACKENDS: AtomicU64 = AtomicU64::new(0);

/// Where one backend's node cgroups live, if the machine gives this process cgroups.
#[derive(Debug)]
pub struct Containment {
    /// `…/converge-<pid>-<n>`: created by this backend, removed when it is dropped.
    cgroup_base: Option<PathBuf>,
    /// What makes this backend's tags unique in the machine.
    tag_prefix: String,
}

impl Containment {
    /// Containment with a cgroup per node where the machine allows it.
    pub fn new() -> Self {
        let mut containment = Containment::without_cgroups();
        containment.cgroup_base = cgroup_base(&containment.tag_prefix);
        containment
    }

    /// Containment by process group and tag only, as on a machine without cgroups.
    pub fn without_cgroups() -> Self {
        // Re-parent orphaned descendants to this process so they can be reaped; failing to
        // become a subreaper (not Linux, a seccomp filter) only leaves their reaping to init.
        let _ = nix::sys::prctl::set_child_subreaper(true);
        let n = BACKENDS.fetch_add(1, Ordering::Relaxed);
        Containment {
            cgroup_base: None,
            tag_prefix: format!("converge-{}-{n}", std::process::id()),
        }
    }

    /// Whether nodes get a cgroup each.
    pub fn has_cgroups(&self) -> bool {
        self.cgroup_base.is_some()
    }

    /// Prepares a node start: the tag for its environment, and its cgroup if there are any.
    pub fn prepare(&self, node: usize, start: u64) -> Contained {
        let name = format!("n{node}-{start}");
        let cgroup = self.cgroup_base.as_ref().and_then(|base| {
            let dir = base.join(&name);
            std::fs::create_dir(&dir).ok().map(|()| dir)
        });
        Contained {
            tag: format!("{}-{name}", self.tag_prefix),
            cgroup,
            pid: None,
            seen: BTreeSet::new(),
        }
    }
}

impl Default for Containment {
    fn default() -> Self {
        Containment::new()
    }
}

impl Drop for Containment {
    fn drop(&mut self) {
        if let Some(base) = &self.cgroup_base {
            // Node cgroups were removed as their nodes stopped; an empty directory left by a
            // start that failed is removed here with the base.
            if let Ok(entries) = std::fs::read_dir(base) {
                for entry in entries.flatten() {
                    if entry.path().is_dir() {
                        let _ = std::fs::remove_dir(entry.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(base);
        }
    }
}

/// One node start's containment.
#[derive(Debug)]
pub struct Contained {
    tag: String,
    cgroup: Option<PathBuf>,
    /// The node's pid (also its process group), once started.
    pid: Option<i32>,
    /// What a stop killed besides the node, to reap.
    seen: BTreeSet<i32>,
}

impl Contained {
    /// The tag's environment variable and value, to set on the node's command.
    pub fn env(&self) -> (&'static str, &str) {
        (TAG_VAR, &self.tag)
    }

    /// Records the started node and moves it into its cgroup. Call it right after the spawn:
    /// what the node forks before the move is left to the other two nets.
    pub fn started(&mut self, pid: u32) {
        let Ok(pid) = i32::try_from(pid) else { return };
        self.pid = Some(pid);
        if let Some(dir) = &self.cgroup
            && std::fs::write(dir.join("cgroup.procs"), pid.to_string()).is_err()
        {
            // Not allowed after all (a delegated tree with other rules): fall back.
            let _ = std::fs::remove_dir(dir);
            self.cgroup = None;
        }
    }

    /// Whether the node runs in a cgroup of its own.
    pub fn in_cgroup(&self) -> bool {
        self.cgroup.is_some()
    }

    /// Sends `signal` to the node's process group (pause and resume).
    pub fn signal_group(&self, signal: Signal) {
        if let Some(pid) = self.pid {
            // The group may already be gone; nothing to signal then.
            let _ = killpg(Pid::from_raw(pid), signal);
        }
    }

    /// Kills everything the node started, the node itself included. The caller then reaps the
    /// node (its `Child`) and calls [`Contained::reap`].
    pub fn stop(&mut self) {
        let group = self.pid.unwrap_or(0);
        // Noted before anything is killed: a killed process's environment is gone once it is a
        // zombie, and its zombie must still be reaped.
        self.seen.extend(members(&self.tag, group));
        if let Some(dir) = &self.cgroup {
            self.seen.extend(cgroup_pids(dir));
            // Kills every process in the cgroup, including those forked while it runs.
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
        }
        if let Some(pid) = self.pid {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for _ in 0..SCAN_PASSES {
            let found = members(&self.tag, group);
            if found.is_empty() {
                break;
            }
            for &pid in &found {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            self.seen.extend(found);
        }
        if let Some(pid) = self.pid {
            // The node is the caller's to reap, through its `Child`.
            self.seen.remove(&pid);
        }
    }

    /// Reaps what [`Contained::stop`] killed, once the node itself is reaped: its children are
    /// re-parented to this process (the subreaper) only when it is gone. Waits boundedly for
    /// each to be gone, and removes the node's cgroup.
    pub fn reap(&mut self) {
        let deadline = Instant::now() + GONE_WAIT;
        let mut left: Vec<i32> = std::mem::take(&mut self.seen).into_iter().collect();
        loop {
            // A killed process that is this process's child is reaped here; one that is not
            // (yet) — its parent still dying, or init's — is waited for until it is gone.
            left.retain(|&pid| {
                let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
                Path::new(&format!("/proc/{pid}")).exists()
            });
            if left.is_empty() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(dir) = self.cgroup.take() {
            while !cgroup_pids(&dir).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

/// The pids listed in a cgroup's `cgroup.procs` (none if it cannot be read).
fn cgroup_pids(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// The live processes (not zombies) whose environment carries `tag` or whose process group is
/// `group`, this process excluded.
fn members(tag: &str, group: i32) -> Vec<i32> {
    let needle = format!("{TAG_VAR}={tag}\0");
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            let Some((state, pgrp)) = state_and_group(pid) else {
                return false;
            };
            state != "Z"
                && ((group > 0 && pgrp == group)
                    || std::fs::read(format!("/proc/{pid}/environ"))
                        .is_ok_and(|env| contains(&env, needle.as_bytes())))
        })
        .collect()
}

/// A process's state letter (`Z` for a zombie) and process group, from its `stat`.
fn state_and_group(pid: i32) -> Option<(String, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold any byte, so it
    // ends at the last `)`: state, parent, process group, ...
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.to_string();
    let _parent = rest.next()?;
    let group = rest.next()?.parse().ok()?;
    Some((state, group))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    // An environment block starts with a variable; matching after a NUL or at the start keeps
    // `XCONVERGE_NODE_TAG=` from matching.
    haystack
        .windows(needle.len())
        .enumerate()
        .any(|(i, w)| w == needle && (i == 0 || haystack[i - 1] == 0))
}

/// Creates this backend's cgroup directory under the process's own cgroup v2, if the machine
/// has a cgroup v2 hierarchy this process may create groups in and kill them with
/// `cgroup.kill`.
fn cgroup_base(tag_prefix: &str) -> Option<PathBuf> {
    let mount = cgroup2_mount()?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let parent = mount.join(own.trim_start_matches('/'));
    let base = parent.join(tag_prefix);
    std::fs::create_dir(&base).ok()?;
    if base.join("cgroup.kill").exists() {
        Some(base)
    } else {
        // A kernel before 5.14: no atomic kill, so no point.
        let _ = std::fs::remove_dir(&base);
        None
    }
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on a unified system,
/// `/sys/fs/cgroup/unified` on a hybrid one).
fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        // Fields: id, parent, major:minor, root, mount point, options, optional fields, "-",
        // file system type, source, super options.
        let (before, after) = line.split_once(" - ")?;
        (after.split_whitespace().next()? == "cgroup2")
            .then(|| before.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_matches_only_as_a_whole_variable() {
        let needle = b"CONVERGE_NODE_TAG=a-1\0";
        assert!(contains(b"CONVERGE_NODE_TAG=a-1\0PATH=/bin\0", needle));
        assert!(contains(b"PATH=/bin\0CONVERGE_NODE_TAG=a-1\0", needle));
        assert!(!contains(b"XCONVERGE_NODE_TAG=a-1\0", needle));
        assert!(!contains(b"CONVERGE_NODE_TAG=a-12\0", needle));
    }
}
