//! The WASI preview-1 functions proxy-wasm modules import, sandboxed: the environment is only `vmConfig.env`, stdout
//! and stderr go to the log, there is no filesystem, and `proc_exit` ends the VM (a trap) rather than the proxy.

use std::time::{Instant, SystemTime};

use wasmtime::{Caller, Linker};

use super::{super::state::VmState, mem};

const SUCCESS: i32 = 0;
const BADF: i32 = 8;
const INVAL: i32 = 28;
const NOTSUP: i32 = 58;

/// Registers the WASI functions under both module names modules use.
pub fn add(l: &mut Linker<VmState>) -> wasmtime::Result<()> {
    for m in ["wasi_snapshot_preview1", "wasi_unstable"] {
        l.func_wrap(m, "environ_sizes_get", environ_sizes_get)?;
        l.func_wrap(m, "environ_get", environ_get)?;
        l.func_wrap(
            m,
            "args_sizes_get",
            |mut c: Caller<'_, VmState>, argc: i32, size: i32| {
                let mem = mem::memory(&c, "args_sizes_get")?;
                let data = mem.data_mut(&mut c);
                mem::put_u32(data, argc, 0, "args_sizes_get")?;
                mem::put_u32(data, size, 0, "args_sizes_get")?;
                wasmtime::Result::<i32>::Ok(SUCCESS)
            },
        )?;
        l.func_wrap(
            m,
            "args_get",
            |_: Caller<'_, VmState>, _: i32, _: i32| -> i32 { SUCCESS },
        )?;
        l.func_wrap(m, "fd_write", fd_write)?;
        l.func_wrap(
            m,
            "fd_read",
            |_: Caller<'_, VmState>, _: i32, _: i32, _: i32, _: i32| -> i32 { BADF },
        )?;
        l.func_wrap(m, "fd_close", |_: Caller<'_, VmState>, _: i32| -> i32 {
            BADF
        })?;
        l.func_wrap(
            m,
            "fd_seek",
            |_: Caller<'_, VmState>, _: i32, _: i64, _: i32, _: i32| -> i32 { BADF },
        )?;
        l.func_wrap(
            m,
            "fd_fdstat_get",
            |_: Caller<'_, VmState>, _: i32, _: i32| -> i32 { BADF },
        )?;
        l.func_wrap(
            m,
            "fd_prestat_get",
            |_: Caller<'_, VmState>, _: i32, _: i32| -> i32 { BADF },
        )?;
        l.func_wrap(
            m,
            "fd_prestat_dir_name",
            |_: Caller<'_, VmState>, _: i32, _: i32, _: i32| -> i32 { BADF },
        )?;
        l.func_wrap(m, "sched_yield", |_: Caller<'_, VmState>| -> i32 {
            SUCCESS
        })?;
        l.func_wrap(
            m,
            "poll_oneoff",
            |_: Caller<'_, VmState>, _: i32, _: i32, _: i32, _: i32| -> i32 { NOTSUP },
        )?;
        l.func_wrap(m, "clock_time_get", clock_time_get)?;
        l.func_wrap(m, "random_get", random_get)?;
        l.func_wrap(
            m,
            "proc_exit",
            |c: Caller<'_, VmState>, code: i32| -> wasmtime::Result<()> {
                Err(mem::trap(
                    "proc_exit",
                    format_args!("plugin `{}` exited with code {code}", c.data().plugin.name),
                ))
            },
        )?;
    }
    Ok(())
}

fn environ_sizes_get(mut c: Caller<'_, VmState>, count: i32, size: i32) -> wasmtime::Result<i32> {
    let call = "environ_sizes_get";
    let env = &c.data().plugin.env;
    let n = env.len() as u32;
    let bytes: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mem = mem::memory(&c, call)?;
    let data = mem.data_mut(&mut c);
    mem::put_u32(data, count, n, call)?;
    mem::put_u32(data, size, bytes as u32, call)?;
    Ok(SUCCESS)
}

fn environ_get(mut c: Caller<'_, VmState>, ptrs: i32, buf: i32) -> wasmtime::Result<i32> {
    let call = "environ_get";
    let plugin = c.data().plugin.clone();
    let mem = mem::memory(&c, call)?;
    let data = mem.data_mut(&mut c);
    let mut at = buf as u32;
    for (i, (k, v)) in plugin.env.iter().enumerate() {
        mem::put_u32(data, ptrs + 4 * i as i32, at, call)?;
        let entry = format!("{k}={v}\0");
        let r = mem::range(data.len(), at as i32, entry.len() as i32, call)?;
        data[r].copy_from_slice(entry.as_bytes());
        at += entry.len() as u32;
    }
    Ok(SUCCESS)
}

fn fd_write(
    mut c: Caller<'_, VmState>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    written: i32,
) -> wasmtime::Result<i32> {
    let call = "fd_write";
    if fd != 1 && fd != 2 {
        return Ok(BADF);
    }
    let mem = mem::memory(&c, call)?;
    let data = mem.data(&c);
    let list = mem::slice(data, iovs, iovs_len.saturating_mul(8), call)?;
    let mut text = Vec::new();
    for iov in list.chunks_exact(8) {
        let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
        let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
        mem::check_len(c.data(), len, call)?;
        text.extend_from_slice(mem::slice(data, ptr, len, call)?);
    }
    let plugin = &*c.data().plugin.name;
    let line = String::from_utf8_lossy(&text);
    let line = line.trim_end();
    if !line.is_empty() {
        match fd {
            1 => tracing::info!(target: "meshwork::wasm::plugin", plugin, "{line}"),
            _ => tracing::error!(target: "meshwork::wasm::plugin", plugin, "{line}"),
        }
    }
    let n = text.len() as u32;
    mem::put_u32(mem.data_mut(&mut c), written, n, call)?;
    Ok(SUCCESS)
}

fn clock_time_get(
    mut c: Caller<'_, VmState>,
    clock: i32,
    _precision: i64,
    ret: i32,
) -> wasmtime::Result<i32> {
    let call = "clock_time_get";
    let ns = match clock {
        0 => SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        1..=3 => monotonic_ns(),
        _ => return Ok(INVAL),
    };
    let mem = mem::memory(&c, call)?;
    mem::put_u64(mem.data_mut(&mut c), ret, ns, call)?;
    Ok(SUCCESS)
}

fn monotonic_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn random_get(mut c: Caller<'_, VmState>, buf: i32, len: i32) -> wasmtime::Result<i32> {
    let call = "random_get";
    if len as u32 > 64 * 1024 {
        return Ok(INVAL);
    }
    let mem = mem::memory(&c, call)?;
    let data = mem.data_mut(&mut c);
    let r = mem::range(data.len(), buf, len, call)?;
    // The OS's randomness (modules seed hash tables and may derive ids from it); rare calls, so no state is kept.
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut data[r.clone()]));
    if filled.is_err() {
        data[r].iter_mut().for_each(|b| *b = fastrand::u8(..));
    }
    Ok(SUCCESS)
}
