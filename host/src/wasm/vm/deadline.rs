//! The CPU-time limit of a callback, on the epoch clock.
//!
//! Every call into a VM arms a deadline of `maxCallbackTime` in epoch ticks (wall-clock, 1 ms each): checking it costs
//! the compiled code a compare at loop heads and function entries, and the call path nothing. Wall-clock time is not
//! CPU time, though: a worker descheduled on a busy machine would see its plugin's callbacks "run past" the limit
//! while using no CPU at all. So when a deadline passes, the host looks at the thread's CPU time (from the kernel's
//! `/proc/thread-self/schedstat`, read only then) and gives the callback another period; at the next deadline, a
//! callback that used at least half of that period on the CPU is interrupted, one that mostly waited gets another.
//! A callback that spins is stopped after about two limits; a callback on a starved thread is not, up to
//! [`MAX_EXTENSIONS`] periods. Without schedstat the first deadline interrupts, as a plain epoch limit would.

use wasmtime::{Store, StoreContextMut, Trap, UpdateDeadline};

use crate::wasm::state::VmState;

/// Most extra periods a callback gets while waiting for the CPU.
pub const MAX_EXTENSIONS: u32 = 50;

/// What the deadline watcher knows about the running call.
#[derive(Debug, Default, Clone, Copy)]
pub struct Watch {
    /// The thread's CPU time (ns) when the first deadline passed.
    mark: Option<u64>,
    /// Periods granted so far.
    extensions: u32,
}

/// Arming a VM's deadline for a new call.
pub trait Arm {
    /// Sets the deadline `ticks` from now and forgets the last call's watch.
    fn arm(&mut self, ticks: u64);
}

impl Arm for Store<VmState> {
    fn arm(&mut self, ticks: u64) {
        self.data_mut().watch = Watch::default();
        self.set_epoch_deadline(ticks);
    }
}

/// Installs the watcher on `store`: `ticks` per period, `limit_ns` the CPU budget of a period.
pub fn install(store: &mut Store<VmState>, ticks: u64, limit_ns: u64) {
    store.epoch_deadline_callback(move |mut cx: StoreContextMut<'_, VmState>| {
        let watch = &mut cx.data_mut().watch;
        match decide(watch, thread_cpu_ns(), limit_ns) {
            true => Ok(UpdateDeadline::Continue(ticks)),
            false => Err(Trap::Interrupt.into()),
        }
    });
}

/// Whether the callback gets another period, given the thread's CPU time now (`None`: unknown).
fn decide(watch: &mut Watch, cpu_now: Option<u64>, limit_ns: u64) -> bool {
    let Some(now) = cpu_now else {
        return false;
    };
    if watch.extensions >= MAX_EXTENSIONS {
        return false;
    }
    let busy = match watch.mark {
        // The first deadline: the wall-clock limit passed; from now on, watch the CPU.
        None => false,
        Some(mark) => now.saturating_sub(mark) >= limit_ns / 2,
    };
    if busy {
        return false;
    }
    watch.mark = Some(now);
    watch.extensions += 1;
    true
}

/// This thread's time on the CPU in ns.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_table() {
        let ms = 1_000_000;
        // (CPU time at each deadline in ms, expected decision at each)
        let cases: &[(&[Option<u64>], &[bool])] = &[
            // A spinning callback: the CPU advances a whole period between deadlines.
            (&[Some(100), Some(110)], &[true, false]),
            // A starved one: barely any CPU between deadlines.
            (
                &[Some(100), Some(101), Some(102), Some(103)],
                &[true, true, true, true],
            ),
            // Starved, then spinning.
            (&[Some(100), Some(101), Some(108)], &[true, true, false]),
            // No schedstat: the first deadline ends it.
            (&[None], &[false]),
        ];
        for (cpu, want) in cases {
            let mut w = Watch::default();
            let got: Vec<bool> = cpu
                .iter()
                .map(|c| decide(&mut w, c.map(|c| c * ms), 10 * ms))
                .collect();
            assert_eq!(&got, want, "{cpu:?}");
        }
        let mut w = Watch::default();
        let granted = (0..100)
            .take_while(|i| decide(&mut w, Some(*i), 10 * ms))
            .count();
        assert_eq!(
            granted as u32, MAX_EXTENSIONS,
            "a starved callback is still stopped eventually"
        );
    }

    #[test]
    fn this_thread_has_a_cpu_clock_that_moves() {
        let Some(before) = thread_cpu_ns() else {
            return; // no schedstat on this kernel: the watcher falls back to the wall clock
        };
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(20) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let after = thread_cpu_ns().expect("still readable");
        assert!(
            after - before >= 5_000_000,
            "20 ms of spinning shows: {} ns (x={x})",
            after - before
        );
    }
}
