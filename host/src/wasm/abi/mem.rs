//! Guest memory at the ABI edge: every pointer and length a module passes is checked here, and a bad one traps the
//! VM (never the host). Data handed to the module is allocated with the module's own allocator, as the ABI requires.

use std::ops::Range;

use wasmtime::{Caller, Error, Memory};

use super::super::state::VmState;

/// Result of a hostcall: a status for the module, or a trap.
pub type Ret = wasmtime::Result<i32>;

/// Status codes (proxy-wasm ABI v0.2.1).
pub mod status {
    /// Success.
    pub const OK: i32 = 0;
    /// No such key, context, queue, function, ...
    pub const NOT_FOUND: i32 = 1;
    /// An argument is not acceptable.
    pub const BAD_ARGUMENT: i32 = 2;
    /// Input could not be parsed.
    pub const PARSE_FAILURE: i32 = 4;
    /// A queue is empty.
    pub const EMPTY: i32 = 7;
    /// Shared data changed since it was read.
    pub const CAS_MISMATCH: i32 = 8;
    /// The host could not do it.
    pub const INTERNAL_FAILURE: i32 = 10;
}

/// A trap naming the hostcall and what was wrong.
pub fn trap(call: &str, what: impl std::fmt::Display) -> Error {
    Error::msg(format!("hostcall {call}: {what}"))
}

/// The module's memory.
pub fn memory(caller: &Caller<'_, VmState>, call: &str) -> wasmtime::Result<Memory> {
    caller
        .data()
        .memory
        .ok_or_else(|| trap(call, "the module exports no `memory`"))
}

/// The byte range `[ptr, ptr + len)`, if it lies inside memory of `size` bytes.
pub fn range(size: usize, ptr: i32, len: i32, call: &str) -> wasmtime::Result<Range<usize>> {
    let (p, l) = (ptr as u32 as usize, len as u32 as usize);
    match p.checked_add(l) {
        Some(end) if end <= size => Ok(p..end),
        _ => Err(trap(
            call,
            format_args!(
                "pointer {p:#x} with length {l} is outside the module's memory ({size} bytes)"
            ),
        )),
    }
}

/// Borrows `[ptr, ptr + len)` of `data`.
pub fn slice<'a>(data: &'a [u8], ptr: i32, len: i32, call: &str) -> wasmtime::Result<&'a [u8]> {
    let r = range(data.len(), ptr, len, call)?;
    Ok(&data[r])
}

/// Checks a length the module passes against the plugin's buffer limit.
pub fn check_len(state: &VmState, len: i32, call: &str) -> wasmtime::Result<()> {
    let limit = state.plugin.limits.buffer;
    if len as u32 as usize > limit {
        return Err(trap(
            call,
            format_args!(
                "length {} is over the plugin's buffer limit of {limit} bytes (limits.maxBufferKb)",
                len as u32
            ),
        ));
    }
    Ok(())
}

/// Writes a little-endian u32 at `ptr`.
pub fn put_u32(data: &mut [u8], ptr: i32, v: u32, call: &str) -> wasmtime::Result<()> {
    let r = range(data.len(), ptr, 4, call)?;
    data[r].copy_from_slice(&v.to_le_bytes());
    Ok(())
}

/// Writes a little-endian u64 at `ptr`.
pub fn put_u64(data: &mut [u8], ptr: i32, v: u64, call: &str) -> wasmtime::Result<()> {
    let r = range(data.len(), ptr, 8, call)?;
    data[r].copy_from_slice(&v.to_le_bytes());
    Ok(())
}

/// Hands `bytes` to the module: allocates with its allocator, copies, and writes pointer and size at the two return
/// addresses. Empty data is returned as a null pointer and size 0, as proxy-wasm-cpp-host does.
pub fn give(
    caller: &mut Caller<'_, VmState>,
    bytes: &[u8],
    ret_ptr: i32,
    ret_size: i32,
    call: &str,
) -> wasmtime::Result<()> {
    let mem = memory(caller, call)?;
    // Check the return slots before allocating, so a bad pointer costs the module no memory.
    range(mem.data_size(&*caller), ret_ptr, 4, call)?;
    range(mem.data_size(&*caller), ret_size, 4, call)?;
    let ptr = if bytes.is_empty() {
        0
    } else {
        let limit = caller.data().plugin.limits.buffer;
        if bytes.len() > limit {
            return Err(trap(
                call,
                format_args!(
                    "{} bytes are over the plugin's buffer limit of {limit} bytes",
                    bytes.len()
                ),
            ));
        }
        // Taken out for the call and put back, not cloned: a clone of a typed function copies its registered type
        // (an atomic count up and down on every hostcall that returns data).
        let malloc = caller
            .data_mut()
            .malloc
            .take()
            .ok_or_else(|| trap(call, "the module exports no allocator"))?;
        let called = malloc.call(&mut *caller, bytes.len() as i32);
        caller.data_mut().malloc = Some(malloc);
        let ptr = called?;
        if ptr == 0 {
            return Err(trap(
                call,
                format_args!("the module could not allocate {} bytes", bytes.len()),
            ));
        }
        let data = mem.data_mut(&mut *caller);
        let r = range(data.len(), ptr, bytes.len() as i32, call)?;
        data[r].copy_from_slice(bytes);
        ptr
    };
    let data = mem.data_mut(&mut *caller);
    put_u32(data, ret_ptr, ptr as u32, call)?;
    put_u32(data, ret_size, bytes.len() as u32, call)
}

/// Runs `f` with a scratch buffer from the VM's state and hands what it wrote to the module (see [`give`]). `f`
/// returns `false` to report `NotFound` instead.
pub fn give_with(
    caller: &mut Caller<'_, VmState>,
    ret_ptr: i32,
    ret_size: i32,
    call: &str,
    f: impl FnOnce(&VmState, &mut Vec<u8>) -> bool,
) -> Ret {
    let mut scratch = std::mem::take(&mut caller.data_mut().scratch);
    scratch.clear();
    let found = f(caller.data(), &mut scratch);
    let r = if found {
        give(caller, &scratch, ret_ptr, ret_size, call).map(|()| status::OK)
    } else {
        Ok(status::NOT_FOUND)
    };
    scratch.clear();
    if scratch.capacity() <= 64 * 1024 {
        caller.data_mut().scratch = scratch;
    }
    r
}

/// Copies `[ptr, ptr + len)` out of the module's memory, checking it against the buffer limit.
pub fn read(
    caller: &mut Caller<'_, VmState>,
    ptr: i32,
    len: i32,
    call: &str,
) -> wasmtime::Result<Vec<u8>> {
    check_len(caller.data(), len, call)?;
    let mem = memory(caller, call)?;
    Ok(slice(mem.data(&*caller), ptr, len, call)?.to_vec())
}

/// A short string the module passed (a header name, a property path, a foreign function's name and arguments),
/// copied out of its memory without a heap allocation when it fits on the stack.
pub enum Key {
    /// Up to [`Key::INLINE`] bytes.
    Inline([u8; Key::INLINE], usize),
    /// Longer.
    Heap(Vec<u8>),
}

impl Key {
    /// The most bytes kept on the stack.
    pub const INLINE: usize = 128;
}

impl std::ops::Deref for Key {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Key::Inline(b, n) => &b[..*n],
            Key::Heap(v) => v,
        }
    }
}

/// [`read`] for short strings: the same checks, no allocation up to [`Key::INLINE`] bytes.
pub fn read_key(
    caller: &mut Caller<'_, VmState>,
    ptr: i32,
    len: i32,
    call: &str,
) -> wasmtime::Result<Key> {
    check_len(caller.data(), len, call)?;
    let mem = memory(caller, call)?;
    let bytes = slice(mem.data(&*caller), ptr, len, call)?;
    Ok(match bytes.len() {
        n if n <= Key::INLINE => {
            let mut b = [0; Key::INLINE];
            b[..n].copy_from_slice(bytes);
            Key::Inline(b, n)
        }
        _ => Key::Heap(bytes.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_table() {
        // (memory size, ptr, len, ok)
        let cases = [
            (100, 0, 0, true),
            (100, 0, 100, true),
            (100, 100, 0, true),
            (100, 99, 2, false),
            (100, -1, 1, false),
            (100, 0, -1, false),
            (100, 0xFFFF_FF00u32 as i32, 16, false),
            (65536, 65532, 4, true),
        ];
        for (size, ptr, len, ok) in cases {
            assert_eq!(range(size, ptr, len, "t").is_ok(), ok, "{size} {ptr} {len}");
        }
    }
}
