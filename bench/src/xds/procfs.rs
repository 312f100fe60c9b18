//! The control plane's resource use, read from `/proc` of its process: CPU time (nanosecond `schedstat` of every
//! thread) and memory (`VmRSS`, `VmHWM`).

use std::fs;

use anyhow::Context as _;

/// CPU time used so far by every live thread of `pid`, in nanoseconds (`/proc/PID/task/*/schedstat`, first field:
/// time spent on a CPU). Nanosecond resolution, unlike the 10 ms ticks of `/proc/PID/stat`; the control plane's
/// threads live as long as it does, so no exited thread's time is lost.
pub fn cpu_ns(pid: u32) -> anyhow::Result<u64> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0u64;
    for task in fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let path = task?.path().join("schedstat");
        // A thread that exits between the listing and the read has nothing left to count.
        if let Ok(text) = fs::read_to_string(&path) {
            total +=
                parse_schedstat_ns(&text).with_context(|| format!("parsing {}", path.display()))?;
        }
    }
    Ok(total)
}

/// `(VmRSS, VmHWM)` of `pid` in KiB.
pub fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |key| status_kib(&status, key).with_context(|| format!("no {key} in {path}"));
    Ok((field("VmRSS")?, field("VmHWM")?))
}

/// The first field of a `schedstat` line: nanoseconds on a CPU.
fn parse_schedstat_ns(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// The value in KiB of `key` (`VmRSS`, `VmHWM`, ...) in the text of `/proc/PID/status`.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let mut parts = rest.split_whitespace();
        let value = parts.next()?.parse().ok()?;
        matches!(parts.next(), Some("kB") | None).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schedstat_and_status() {
        let schedstat = [
            ("102144 1886643 2\n", Some(102_144)),
            ("", None),
            ("x 1 2", None),
        ];
        for (text, want) in schedstat {
            assert_eq!(parse_schedstat_ns(text), want, "{text:?}");
        }
        let status = "Name:\tx\nVmHWM:\t    5432 kB\nVmRSS:\t    5000 kB\nVmRSSx:\t1 kB\n";
        let table = [
            ("VmRSS", Some(5000)),
            ("VmHWM", Some(5432)),
            ("VmSwap", None),
            ("Vm", None),
        ];
        for (key, want) in table {
            assert_eq!(status_kib(status, key), want, "{key}");
        }
        assert_eq!(status_kib("VmRSS:\t12 MB\n", "VmRSS"), None);
    }

    #[test]
    fn reads_this_process() -> anyhow::Result<()> {
        let pid = std::process::id();
        let before = cpu_ns(pid)?;
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        // Sleeping switches the thread out, which brings its counted time up to date.
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert!(cpu_ns(pid)? > before, "{x}");
        let (rss, hwm) = memory_kib(pid)?;
        assert!(rss > 0 && hwm >= rss, "{rss} {hwm}");
        Ok(())
    }
}
