//! The harness's only direct OS calls: CPU affinity (for its own threads and,
//! through `pre_exec`, for child processes), timer slack, the monotonic clock, the
//! clock-tick rate of `/proc` CPU times and SIGTERM.
//!
//! This is the one module allowed to use `unsafe`; every block carries a
//! `SAFETY:` comment. Everything else in the crate stays safe.

#![allow(
    unsafe_code,
    reason = "sched_{get,set}affinity, prctl, clock_gettime, sysconf and kill are libc calls; pre_exec is an unsafe API"
)]

use std::io;
use std::os::unix::process::CommandExt as _;
use std::process::Command;

/// An empty `cpu_set_t`.
fn empty_set() -> libc::cpu_set_t {
    // SAFETY: `cpu_set_t` is a plain bit array; all-zero bytes is the valid empty set.
    unsafe { std::mem::zeroed() }
}

/// Builds a `cpu_set_t` holding exactly `cpus` (ids past `CPU_SETSIZE` are ignored).
fn set_of(cpus: &[usize]) -> libc::cpu_set_t {
    let mut set = empty_set();
    let limit = usize::try_from(libc::CPU_SETSIZE).unwrap_or(1024);
    for &cpu in cpus.iter().filter(|&&c| c < limit) {
        // SAFETY: `cpu` is below CPU_SETSIZE and `set` is a valid, exclusively borrowed set.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    set
}

/// The CPUs the calling thread may run on, in ascending order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let mut set = empty_set();
    // SAFETY: `set` is a valid, writable `cpu_set_t` of exactly the size passed; pid 0 is
    // the calling thread.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let limit = usize::try_from(libc::CPU_SETSIZE).unwrap_or(1024);
    // SAFETY: every index is below CPU_SETSIZE and `set` is a valid set.
    Ok((0..limit)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Restricts the calling thread (and threads/processes it creates afterwards) to `cpus`.
pub fn pin_current_thread(cpus: &[usize]) -> io::Result<()> {
    let set = set_of(cpus);
    // SAFETY: `set` is a valid `cpu_set_t` of exactly the size passed; pid 0 is the
    // calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the child spawned by `cmd` run only on `cpus` (set between fork and exec).
pub fn pin_command(cmd: &mut Command, cpus: &[usize]) {
    let set = set_of(cpus);
    let hook = move || {
        // SAFETY: `set` was built before fork and is only read here; sched_setaffinity is
        // a plain syscall, safe to call between fork and exec (no allocation, no locks).
        let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY: the hook only performs one async-signal-safe syscall on data captured by value.
    unsafe { cmd.pre_exec(hook) };
}

/// Asks the kernel to wake this thread's sleeps as precisely as possible (timer slack
/// of 1 ns instead of the default 50 µs). Best effort: failure only costs precision.
pub fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and touches no memory of ours.
    let _ = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process on the machine, so that a timestamp taken in a
/// child process (the control plane of `meshwork-bench xds`) and one taken here can be subtracted.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of the CPU times in
/// `/proc/PID/stat`; 100 when the call fails (the value on every Linux platform).
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf takes a constant and touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    #[expect(
        clippy::cast_precision_loss,
        reason = "the tick rate is a small number (100)"
    )]
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Sends SIGTERM to process `pid`.
pub fn terminate(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: kill has no memory-safety preconditions; `pid` is a child we spawned and
    // have not yet reaped, so it cannot have been recycled.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_cpus_is_nonempty_and_sorted() -> io::Result<()> {
        let cpus = allowed_cpus()?;
        assert!(!cpus.is_empty());
        assert!(cpus.windows(2).all(|w| w[0] < w[1]));
        Ok(())
    }

    #[test]
    fn clock_ticks_are_linux_ones() {
        let ticks = clock_ticks_per_second();
        assert!((1.0..=10_000.0).contains(&ticks), "{ticks}");
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = monotonic_ns();
        assert!(a > 0 && b >= a + 2_000_000, "{a} {b}");
    }
}
