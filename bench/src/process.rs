//! Child processes (upstream and proxies): spawning pinned, waiting for readiness,
//! reading peak RSS, stopping; plus temp dirs and free ports.

use std::fs;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::sys;

/// How long a child gets to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a child gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/meshwork-bench-<pid>-<n>-<label>`.
    pub fn new(label: &str) -> io::Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("meshwork-bench-{}-{n}-{label}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path)?;
        }
        fs::create_dir_all(&path)?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A free TCP port on 127.0.0.1 (bound to port 0, then released).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running child process, killed on drop if still running.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr appended to `log`, pinned to `cpus` when given.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        log: &Path,
        cpus: Option<&[usize]>,
    ) -> anyhow::Result<Self> {
        let out = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        if let Some(cpus) = cpus {
            sys::pin_command(&mut cmd, cpus);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has already exited, including the tail of its log.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited early ({status}); last output:\n{}",
                self.name,
                self.log_tail(2048)
            );
        }
        Ok(())
    }

    /// Waits until `addr` accepts TCP connections (and the process is still alive).
    pub fn wait_for_port(&mut self, addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not accept connections on {addr} within {timeout:?}; last output:\n{}",
                    self.name,
                    self.log_tail(2048)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Peak resident set size (VmHWM) so far, in KiB.
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_vmhwm_kib(&status).with_context(|| format!("no VmHWM line in {path}"))
    }

    /// CPU time the process has used so far, user and system, in seconds
    /// (`utime + stime` of `/proc/PID/stat`, in clock ticks, usually 10 ms).
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let path = format!("/proc/{}/stat", self.pid());
        let stat = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let ticks = parse_cpu_ticks(&stat).with_context(|| format!("no utime/stime in {path}"))?;
        #[expect(
            clippy::cast_precision_loss,
            reason = "clock ticks of a benchmark run are far below 2^52"
        )]
        Ok(ticks as f64 / sys::clock_ticks_per_second())
    }

    /// SIGTERM, then SIGKILL after a grace period; reaps the process.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let _ = sys::terminate(self.pid());
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// The last `max` bytes of the process's output.
    pub fn log_tail(&self, max: u64) -> String {
        let read = || -> io::Result<String> {
            let mut f = fs::File::open(&self.log)?;
            let len = f.metadata()?.len();
            f.seek(SeekFrom::Start(len.saturating_sub(max)))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            Ok(String::from_utf8_lossy(&buf).into_owned())
        };
        read().unwrap_or_else(|e| format!("(log {} unreadable: {e})", self.log.display()))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Extracts the `VmHWM` value (KiB) from the text of `/proc/PID/status`.
pub fn parse_vmhwm_kib(status: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix("VmHWM:")?;
        let mut parts = rest.split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") | None => Some(value),
            Some(_) => None,
        }
    })
}

/// `utime + stime` (fields 14 and 15, in clock ticks) from the text of `/proc/PID/stat`.
/// The command name (field 2) may hold spaces and parentheses, so fields are counted
/// from its last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Runs `cmd` (killed after 10 s) and returns its stdout and stderr together, for
/// `--version`-style probes with short output.
pub fn output_of(cmd: &mut Command) -> io::Result<String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait()?.is_none() {
        if Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            return Err(io::Error::new(io::ErrorKind::TimedOut, "command timed out"));
        }
        thread::sleep(Duration::from_millis(10));
    }
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut text)?;
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut text)?;
    }
    Ok(text)
}

/// Finds an executable called `name` in `PATH`, then in `/usr/sbin` and `/usr/local/sbin`.
pub fn find_executable(name: &str) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vmhwm() {
        let cases: &[(&str, Option<u64>)] = &[
            (
                "Name:\tnginx\nVmPeak:\t   20000 kB\nVmHWM:\t    5432 kB\nVmRSS:\t    5000 kB\n",
                Some(5432),
            ),
            ("VmHWM: 1 kB", Some(1)),
            ("VmHWM:\t123", Some(123)),
            ("VmRSS:\t5000 kB\n", None),
            ("VmHWM:\tlots kB\n", None),
            ("VmHWM:\t12 MB\n", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_vmhwm_kib(input), *want, "{input:?}");
        }
    }

    #[test]
    fn parses_cpu_ticks() {
        let cases: &[(&str, Option<u64>)] = &[
            (
                "4242 (meshwork) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 3 0",
                Some(287),
            ),
            (
                "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0",
                Some(11),
            ),
            ("7 (x) R 1 7 7 0 -1 0 0 0 0 0 5", None),
            ("7 (x) R 1 7 7 0 -1 0 0 0 0 0 five 6", None),
            ("no parenthesis", None),
            ("", None),
        ];
        for (stat, want) in cases {
            assert_eq!(parse_cpu_ticks(stat), *want, "{stat:?}");
        }
    }

    #[test]
    fn own_process_has_vmhwm() -> io::Result<()> {
        let status = fs::read_to_string("/proc/self/status")?;
        assert!(parse_vmhwm_kib(&status).is_some_and(|kib| kib > 0));
        Ok(())
    }

    #[test]
    fn temp_dir_is_removed_on_drop() -> io::Result<()> {
        let dir = TempDir::new("test")?;
        let path = dir.path().to_owned();
        assert!(path.is_dir());
        drop(dir);
        assert!(!path.exists());
        Ok(())
    }
}
