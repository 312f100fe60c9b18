//! Properties, shared data, shared queues and metrics.

use bytes::Bytes;
use wasmtime::{Caller, Linker};

use super::{
    super::{metrics, props, shared, state::VmState, wire},
    mem::{self, Ret, status},
};

/// Registers the hostcalls of this family.
pub fn add(l: &mut Linker<VmState>) -> wasmtime::Result<()> {
    l.func_wrap("env", "proxy_get_property", get_property)?;
    l.func_wrap("env", "proxy_set_property", set_property)?;
    l.func_wrap("env", "proxy_get_shared_data", get_shared)?;
    l.func_wrap("env", "proxy_set_shared_data", set_shared)?;
    l.func_wrap("env", "proxy_register_shared_queue", register_queue)?;
    l.func_wrap("env", "proxy_resolve_shared_queue", resolve_queue)?;
    l.func_wrap("env", "proxy_enqueue_shared_queue", enqueue)?;
    l.func_wrap("env", "proxy_dequeue_shared_queue", dequeue)?;
    l.func_wrap("env", "proxy_define_metric", define_metric)?;
    l.func_wrap("env", "proxy_get_metric", get_metric)?;
    l.func_wrap(
        "env",
        "proxy_record_metric",
        |c: Caller<'_, VmState>, id: i32, v: i64| -> Ret {
            match metric(&c, id) {
                Some(m) => {
                    m.record(v);
                    Ok(status::OK)
                }
                None => Ok(status::NOT_FOUND),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_increment_metric",
        |c: Caller<'_, VmState>, id: i32, d: i64| -> Ret {
            match metric(&c, id).map(|m| m.increment(d)) {
                Some(Ok(())) => Ok(status::OK),
                Some(Err(_)) => Ok(status::BAD_ARGUMENT),
                None => Ok(status::NOT_FOUND),
            }
        },
    )?;
    Ok(())
}

fn get_property(
    mut c: Caller<'_, VmState>,
    ptr: i32,
    len: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Ret {
    let call = "proxy_get_property";
    let path = mem::read_key(&mut c, ptr, len, call)?;
    mem::give_with(&mut c, ret_ptr, ret_size, call, |state, out| {
        let mut segments: [&[u8]; 8] = [&[]; 8];
        let mut n = 0;
        for seg in wire::path_segments(&path) {
            // Envoy's attribute paths have at most a handful of segments; a longer one names nothing.
            let Some(slot) = segments.get_mut(n) else {
                return false;
            };
            *slot = seg;
            n += 1;
        }
        let segments = &segments[..n];
        let stream = state.stream().map(|s| s.borrow());
        match props::get(segments, stream.as_deref(), &state.plugin) {
            Some(v) => {
                out.extend_from_slice(&v);
                true
            }
            None => false,
        }
    })
}

fn set_property(mut c: Caller<'_, VmState>, kp: i32, kl: i32, vp: i32, vl: i32) -> Ret {
    let call = "proxy_set_property";
    let key = mem::read(&mut c, kp, kl, call)?;
    let value = mem::read(&mut c, vp, vl, call)?;
    let key = key.strip_suffix(b"\0").map(<[u8]>::to_vec).unwrap_or(key);
    if let Some(stream) = c.data().stream() {
        let mut s = stream.borrow_mut();
        s.properties.retain(|(k, _)| *k != key);
        s.properties.push((key, value));
    }
    Ok(status::OK)
}

fn ns(c: &Caller<'_, VmState>) -> String {
    c.data().plugin.name.to_string()
}

fn get_shared(
    mut c: Caller<'_, VmState>,
    kp: i32,
    kl: i32,
    ret_ptr: i32,
    ret_size: i32,
    ret_cas: i32,
) -> Ret {
    let call = "proxy_get_shared_data";
    let key = mem::read(&mut c, kp, kl, call)?;
    let Some((value, cas)) = shared::get(&ns(&c), &key) else {
        return Ok(status::NOT_FOUND);
    };
    let mem = mem::memory(&c, call)?;
    mem::put_u32(mem.data_mut(&mut c), ret_cas, cas, call)?;
    mem::give(&mut c, &value, ret_ptr, ret_size, call)?;
    Ok(status::OK)
}

fn set_shared(mut c: Caller<'_, VmState>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32) -> Ret {
    let call = "proxy_set_shared_data";
    let key = mem::read(&mut c, kp, kl, call)?;
    let value = mem::read(&mut c, vp, vl, call)?;
    match shared::set(&ns(&c), &key, Bytes::from(value), cas as u32) {
        Ok(()) => Ok(status::OK),
        Err(shared::SetError::CasMismatch) => Ok(status::CAS_MISMATCH),
    }
}

fn register_queue(mut c: Caller<'_, VmState>, np: i32, nl: i32, ret_id: i32) -> Ret {
    let call = "proxy_register_shared_queue";
    let name = mem::read(&mut c, np, nl, call)?;
    let name = String::from_utf8_lossy(&name).into_owned();
    // The owner gets `on_queue_ready` on its own worker; the canary (no worker) only reserves the id.
    let owner = match (c.data().worker.is_some(), c.data().me.clone()) {
        (true, me) => {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
            tokio::task::spawn_local(async move {
                while let Some(id) = rx.recv().await {
                    let Some(vm) = me.upgrade() else { return };
                    if vm.on_queue_ready(id).is_err() {
                        return;
                    }
                }
            });
            Some(tx)
        }
        _ => None,
    };
    let id = shared::register_queue(&ns(&c), &name, owner);
    let mem = mem::memory(&c, call)?;
    mem::put_u32(mem.data_mut(&mut c), ret_id, id, call)?;
    Ok(status::OK)
}

fn resolve_queue(
    mut c: Caller<'_, VmState>,
    vp: i32,
    vl: i32,
    np: i32,
    nl: i32,
    ret_id: i32,
) -> Ret {
    let call = "proxy_resolve_shared_queue";
    let vm_id = mem::read(&mut c, vp, vl, call)?;
    let name = mem::read(&mut c, np, nl, call)?;
    // An empty vm_id means this plugin's own namespace; otherwise it names another plugin.
    let namespace = match vm_id.is_empty() {
        true => ns(&c),
        false => String::from_utf8_lossy(&vm_id).into_owned(),
    };
    let Some(id) = shared::resolve_queue(&namespace, &String::from_utf8_lossy(&name)) else {
        return Ok(status::NOT_FOUND);
    };
    let mem = mem::memory(&c, call)?;
    mem::put_u32(mem.data_mut(&mut c), ret_id, id, call)?;
    Ok(status::OK)
}

fn enqueue(mut c: Caller<'_, VmState>, id: i32, vp: i32, vl: i32) -> Ret {
    let value = mem::read(&mut c, vp, vl, "proxy_enqueue_shared_queue")?;
    match shared::enqueue(id as u32, Bytes::from(value)) {
        true => Ok(status::OK),
        false => Ok(status::NOT_FOUND),
    }
}

fn dequeue(mut c: Caller<'_, VmState>, id: i32, ret_ptr: i32, ret_size: i32) -> Ret {
    let call = "proxy_dequeue_shared_queue";
    match shared::dequeue(id as u32) {
        Err(shared::NoSuchQueue) => Ok(status::NOT_FOUND),
        Ok(None) => Ok(status::EMPTY),
        Ok(Some(item)) => {
            mem::give(&mut c, &item, ret_ptr, ret_size, call)?;
            Ok(status::OK)
        }
    }
}

fn define_metric(mut c: Caller<'_, VmState>, kind: i32, np: i32, nl: i32, ret_id: i32) -> Ret {
    let call = "proxy_define_metric";
    let name = mem::read(&mut c, np, nl, call)?;
    let Some(kind) = metrics::Kind::from_abi(kind) else {
        return Ok(status::BAD_ARGUMENT);
    };
    let index = metrics::define(&c.data().plugin.name, kind, &String::from_utf8_lossy(&name));
    let Some(metric) = metrics::get(index) else {
        return Ok(status::BAD_ARGUMENT);
    };
    let state = c.data_mut();
    let id = match state.metrics.iter().position(|m| std::ptr::eq(*m, metric)) {
        Some(p) => p,
        None => {
            state.metrics.push(metric);
            state.metrics.len() - 1
        }
    };
    let mem = mem::memory(&c, call)?;
    mem::put_u32(mem.data_mut(&mut c), ret_id, id as u32 + 1, call)?;
    Ok(status::OK)
}

fn metric(c: &Caller<'_, VmState>, id: i32) -> Option<&'static metrics::Metric> {
    let i = (id as u32 as usize).checked_sub(1)?;
    c.data().metrics.get(i).copied()
}

fn get_metric(mut c: Caller<'_, VmState>, id: i32, ret: i32) -> Ret {
    let call = "proxy_get_metric";
    let Some(m) = metric(&c, id) else {
        return Ok(status::NOT_FOUND);
    };
    let v = match m.kind {
        metrics::Kind::Histogram => m.count(),
        _ => m.value() as u64,
    };
    let mem = mem::memory(&c, call)?;
    mem::put_u64(mem.data_mut(&mut c), ret, v, call)?;
    Ok(status::OK)
}
