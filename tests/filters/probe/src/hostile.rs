//! Hostile behaviour injected into the callback named by `fail_in`: trap,
//! spin forever, exhaust memory, abuse raw hostcalls, or reject.

use std::hint::black_box;

use proxy_wasm::types::{BufferType, MapType};

use crate::config::{Callback, Config, FailHow};
use crate::raw::{self, Abuse, Target};
use crate::util;

const MIB: usize = 1 << 20;

/// What an injection that returned (did not trap or hang) left behind.
#[derive(Debug, Default)]
pub struct Injected {
    /// `fail_how: reject`: the callback should report failure if it can.
    pub reject: bool,
    /// `(hostcall, status)` for every abusive hostcall the host answered.
    pub statuses: Vec<(&'static str, u32)>,
}

/// Misbehaves as configured if `at` is the `fail_in` callback, otherwise does
/// nothing. `trap`, `loop` and `memory` never return.
pub fn inject(cfg: &Config, at: Callback) -> Injected {
    if cfg.fail_in != Some(at) {
        return Injected::default();
    }
    let name = at.name();
    match cfg.fail_how {
        FailHow::Trap => panic!("probe: trap in {name}"),
        FailHow::Loop => spin(),
        FailHow::Memory => exhaust_memory(name),
        FailHow::Reject => {
            if !matches!(at, Callback::VmStart | Callback::Configure) {
                util::warn(&format!("probe: fail_how=reject has no effect in {name}"));
            }
            Injected {
                reject: true,
                statuses: Vec::new(),
            }
        }
        FailHow::BadPointer => abuse(cfg, at, Abuse::BadPointer),
        FailHow::HugeLength => abuse(cfg, at, Abuse::HugeLength),
    }
}

fn abuse(cfg: &Config, at: Callback, how: Abuse) -> Injected {
    let statuses = raw::abuse(cfg.bad_call, how, target(at));
    for (call, status) in &statuses {
        util::info(&format!(
            "probe: {call} with {how:?} in {} returned status {status}",
            at.name()
        ));
    }
    Injected {
        reject: false,
        statuses,
    }
}

/// The header map and buffer that make sense for a callback.
fn target(at: Callback) -> Target {
    let (map, buffer) = match at {
        Callback::VmStart => (MapType::HttpRequestHeaders, BufferType::VmConfiguration),
        Callback::Configure | Callback::ContextCreate | Callback::Tick | Callback::QueueReady => {
            (MapType::HttpRequestHeaders, BufferType::PluginConfiguration)
        }
        Callback::RequestHeaders | Callback::RequestBody | Callback::HttpCallResponse => {
            (MapType::HttpRequestHeaders, BufferType::HttpRequestBody)
        }
        Callback::ResponseHeaders | Callback::ResponseBody | Callback::Log => {
            (MapType::HttpResponseHeaders, BufferType::HttpResponseBody)
        }
    };
    Target {
        map_type: map as u32,
        buffer_type: buffer as u32,
    }
}

/// Spins forever in a loop the optimizer cannot remove.
fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = counter.wrapping_add(1);
        black_box(counter);
    }
}

/// Keeps 1 MiB chunks filled with a non-zero byte until allocation fails,
/// then frees them (so the panic message can still be logged) and traps.
fn exhaust_memory(name: &str) -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = Vec::new();
        if chunk.try_reserve_exact(MIB).is_err() || hoard.try_reserve(1).is_err() {
            let held = hoard.len();
            drop(hoard);
            panic!("probe: memory exhausted in {name} after {held} MiB");
        }
        chunk.resize(MIB, 0xA5);
        hoard.push(black_box(chunk));
        black_box(&hoard);
    }
}
