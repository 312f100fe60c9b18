//! Shared-data counters (decimal `u64` strings) updated with a CAS retry loop.

use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

use crate::util;

/// Most attempts an increment makes before giving up.
const MAX_TRIES: u32 = 1000;

fn parse(value: Option<&[u8]>) -> u64 {
    value
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Current value of `key`, 0 if it is missing or not a number.
pub fn read(key: &str) -> u64 {
    match hostcalls::get_shared_data(key) {
        Ok((value, _)) => parse(value.as_deref()),
        Err(_) => 0,
    }
}

/// Creates `key` as `0` if it does not exist yet, so that later increments
/// always carry a CAS value.
pub fn ensure(key: &str) {
    if let Ok((None, _)) = hostcalls::get_shared_data(key)
        && let Err(status) = hostcalls::set_shared_data(key, Some(b"0"), None)
    {
        util::warn(&format!("probe: initialising shared key {key}: {status:?}"));
    }
}

/// Adds one to `key` and returns the new value; `None` if the host failed
/// or the CAS kept mismatching for [`MAX_TRIES`] attempts.
pub fn increment(key: &str) -> Option<u64> {
    for _ in 0..MAX_TRIES {
        let (value, cas) = hostcalls::get_shared_data(key).ok()?;
        let new = parse(value.as_deref()).wrapping_add(1);
        match hostcalls::set_shared_data(key, Some(new.to_string().as_bytes()), cas) {
            Ok(()) => return Some(new),
            Err(Status::CasMismatch) => continue,
            Err(status) => {
                util::warn(&format!("probe: incrementing {key}: {status:?}"));
                return None;
            }
        }
    }
    util::warn(&format!("probe: incrementing {key}: CAS kept mismatching"));
    None
}
