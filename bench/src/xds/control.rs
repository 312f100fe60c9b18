//! The harness's side of the control-plane process ([`super::server`]): starting it pinned, reading its event
//! lines, asking it to apply the directory, and reading its CPU time and memory.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::procfs;
use crate::sys;

/// An event line of the control-plane process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Serving xDS on this address.
    Ready(SocketAddr),
    /// The file source applied mesh version `version`; views were rebuilt at `at`.
    Polled {
        /// The source's version (1 = the first load).
        version: u64,
        /// `CLOCK_MONOTONIC` ns after the rebuild.
        at: u64,
    },
    /// An `apply` finished: `set_mesh` ran from `start` to `end`, after loading the directory for `load_ns`.
    Applied {
        /// Before `set_mesh`.
        start: u64,
        /// After `set_mesh`.
        end: u64,
        /// Reading and translating the directory.
        load_ns: u64,
    },
}

/// Parses one event line.
pub fn parse_event(line: &str) -> Option<Event> {
    let mut words = line.split_whitespace();
    let kind = words.next()?;
    let mut num = || words.next()?.parse::<u64>().ok();
    match kind {
        "ready" => line
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
            .map(Event::Ready),
        "polled" => Some(Event::Polled {
            version: num()?,
            at: num()?,
        }),
        "applied" => Some(Event::Applied {
            start: num()?,
            end: num()?,
            load_ns: num()?,
        }),
        _ => None,
    }
}

/// The running control-plane process; killed on drop.
pub struct ControlProc {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Event>,
    /// Where xDS is served.
    pub addr: SocketAddr,
}

impl ControlProc {
    /// Starts `meshwork-bench xds-server` on `dir`, pinned to `cpus` when given, and waits until it serves.
    pub fn start(
        dir: &Path,
        poll: Duration,
        settle: Duration,
        cpus: Option<&[usize]>,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating this executable")?;
        let mut cmd = Command::new(exe);
        cmd.arg("xds-server")
            .arg("--dir")
            .arg(dir)
            .arg("--poll-ms")
            .arg(poll.as_millis().to_string())
            .arg("--settle-ms")
            .arg(settle.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(log)
                    .with_context(|| format!("creating {}", log.display()))?,
            );
        if let Some(cpus) = cpus {
            sys::pin_command(&mut cmd, cpus);
        }
        let mut child = cmd.spawn().context("starting the control-plane process")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, events) = mpsc::channel();
        std::thread::Builder::new()
            .name("control-events".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(event) = parse_event(&line)
                        && tx.send(event).is_err()
                    {
                        return;
                    }
                }
            })
            .context("starting the event reader")?;
        let mut proc = ControlProc {
            child,
            stdin,
            events,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        proc.addr = proc
            .next(Duration::from_secs(120), |e| match e {
                Event::Ready(addr) => Some(*addr),
                _ => None,
            })
            .with_context(|| format!("the control plane did not start (log: {})", log.display()))?;
        Ok(proc)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time used so far, ns.
    pub fn cpu_ns(&self) -> anyhow::Result<u64> {
        procfs::cpu_ns(self.pid())
    }

    /// `(VmRSS, VmHWM)` in KiB.
    pub fn memory_kib(&self) -> anyhow::Result<(u64, u64)> {
        procfs::memory_kib(self.pid())
    }

    /// Asks for an `apply` and returns `(set_mesh start, set_mesh end, load ns)`.
    pub fn apply(&mut self, timeout: Duration) -> anyhow::Result<(u64, u64, u64)> {
        let stdin = self
            .stdin
            .as_mut()
            .context("the control plane's input is closed")?;
        stdin.write_all(b"apply\n")?;
        stdin.flush()?;
        self.next(timeout, |e| match e {
            Event::Applied {
                start,
                end,
                load_ns,
            } => Some((*start, *end, *load_ns)),
            _ => None,
        })
    }

    /// Waits until the file source has applied version `version`; returns when.
    pub fn polled(&mut self, version: u64, timeout: Duration) -> anyhow::Result<u64> {
        self.next(timeout, |e| match e {
            Event::Polled { version: v, at } if *v >= version => Some(*at),
            _ => None,
        })
    }

    /// The first event `pick` accepts within `timeout`, skipping others.
    fn next<T>(
        &mut self,
        timeout: Duration,
        pick: impl Fn(&Event) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    if let Some(found) = pick(&event) {
                        return Ok(found);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!("no answer from the control plane within {timeout:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait()?;
                    bail!("the control plane exited ({status:?})")
                }
            }
        }
    }

    /// Closes its input (it stops) and waits for it, killing it after 10 s.
    pub fn stop(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for ControlProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_event_lines() {
        let table = [
            (
                "ready 127.0.0.1:15010",
                Some(Event::Ready(SocketAddr::from(([127, 0, 0, 1], 15010)))),
            ),
            ("polled 3 42", Some(Event::Polled { version: 3, at: 42 })),
            (
                "applied 1 2 3",
                Some(Event::Applied {
                    start: 1,
                    end: 2,
                    load_ns: 3,
                }),
            ),
            ("applied 1 2", None),
            ("polled x 1", None),
            ("ready nowhere", None),
            ("hello", None),
            ("", None),
        ];
        for (line, want) in table {
            assert_eq!(parse_event(line), want, "{line:?}");
        }
    }
}
