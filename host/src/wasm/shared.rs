//! Process-wide state plugins share across workers: key-value data with compare-and-swap, and message queues.
//!
//! Both are namespaced by plugin name (Envoy namespaces by `vm_id`; a meshwork plugin's VMs on every worker, and every
//! version of it during a hot swap, share one namespace). A set with a non-zero `cas` succeeds only if the entry still
//! has that cas; every successful set gives the entry a new one. Enqueueing wakes the queue's owner: the VM that
//! registered it last, on its own worker thread.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Mutex, RwLock,
        atomic::{AtomicU32, Ordering},
    },
};

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

/// Why a set failed.
#[derive(Debug, PartialEq, Eq)]
pub enum SetError {
    /// The entry changed since the cas was read.
    CasMismatch,
}

type Key = (String, Vec<u8>);

static DATA: RwLock<Option<HashMap<Key, (Bytes, u32)>>> = RwLock::new(None);
static CAS: AtomicU32 = AtomicU32::new(1);

fn next_cas() -> u32 {
    loop {
        let c = CAS.fetch_add(1, Ordering::Relaxed);
        if c != 0 {
            return c;
        }
    }
}

/// The value and cas of `key` in `ns`.
pub fn get(ns: &str, key: &[u8]) -> Option<(Bytes, u32)> {
    let data = DATA.read().unwrap_or_else(|p| p.into_inner());
    data.as_ref()?.get(&(ns.to_string(), key.to_vec())).cloned()
}

/// Sets `key` in `ns` to `value` if `cas` is 0 or still current.
pub fn set(ns: &str, key: &[u8], value: Bytes, cas: u32) -> Result<(), SetError> {
    let mut data = DATA.write().unwrap_or_else(|p| p.into_inner());
    let map = data.get_or_insert_with(HashMap::new);
    match map.get_mut(&(ns.to_string(), key.to_vec())) {
        Some(entry) => {
            if cas != 0 && cas != entry.1 {
                return Err(SetError::CasMismatch);
            }
            *entry = (value, next_cas());
        }
        None => {
            map.insert((ns.to_string(), key.to_vec()), (value, next_cas()));
        }
    }
    Ok(())
}

struct Queue {
    ns: String,
    name: String,
    items: VecDeque<Bytes>,
    owner: Option<UnboundedSender<u32>>,
}

static QUEUES: Mutex<Vec<Queue>> = Mutex::new(Vec::new());

/// Most items a queue holds; older ones are dropped beyond it.
pub const MAX_QUEUE_ITEMS: usize = 10_000;

/// Registers (or re-registers) queue `name` in `ns`, owned by whoever listens on `owner`; returns its id.
pub fn register_queue(ns: &str, name: &str, owner: Option<UnboundedSender<u32>>) -> u32 {
    let mut qs = QUEUES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = qs.iter().position(|q| q.ns == ns && q.name == name) {
        if owner.is_some() {
            qs[i].owner = owner;
        }
        return i as u32 + 1;
    }
    qs.push(Queue {
        ns: ns.to_string(),
        name: name.to_string(),
        items: VecDeque::new(),
        owner,
    });
    qs.len() as u32
}

/// The id of queue `name` in `ns`.
pub fn resolve_queue(ns: &str, name: &str) -> Option<u32> {
    let qs = QUEUES.lock().unwrap_or_else(|p| p.into_inner());
    qs.iter()
        .position(|q| q.ns == ns && q.name == name)
        .map(|i| i as u32 + 1)
}

/// Appends to queue `id` and tells its owner; `false` if there is no such queue.
pub fn enqueue(id: u32, item: Bytes) -> bool {
    let mut qs = QUEUES.lock().unwrap_or_else(|p| p.into_inner());
    let Some(q) = id.checked_sub(1).and_then(|i| qs.get_mut(i as usize)) else {
        return false;
    };
    if q.items.len() >= MAX_QUEUE_ITEMS {
        q.items.pop_front();
    }
    q.items.push_back(item);
    if let Some(owner) = &q.owner
        && owner.send(id).is_err()
    {
        q.owner = None;
    }
    true
}

/// There is no queue with that id.
#[derive(Debug, PartialEq, Eq)]
pub struct NoSuchQueue;

/// Takes the oldest item of queue `id`; `Ok(None)` if it is empty.
pub fn dequeue(id: u32) -> Result<Option<Bytes>, NoSuchQueue> {
    let mut qs = QUEUES.lock().unwrap_or_else(|p| p.into_inner());
    let q = id
        .checked_sub(1)
        .and_then(|i| qs.get_mut(i as usize))
        .ok_or(NoSuchQueue)?;
    Ok(q.items.pop_front())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_table() {
        let ns = "test-cas";
        set(ns, b"k", Bytes::from_static(b"1"), 0).expect("unconditional insert");
        let (v, cas) = get(ns, b"k").expect("present");
        assert_eq!(v, "1");
        // (cas to use, expected result)
        let cases = [
            (cas, Ok(())),
            (cas, Err(SetError::CasMismatch)),
            (0, Ok(())),
        ];
        for (c, want) in cases {
            assert_eq!(set(ns, b"k", Bytes::from_static(b"2"), c), want, "cas {c}");
        }
        assert_ne!(get(ns, b"k").expect("present").1, cas);
        assert_eq!(get("other-ns", b"k"), None, "namespaces are separate");
    }

    #[test]
    fn queues_deliver_in_order_and_notify_the_owner() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let id = register_queue("test-q", "q", Some(tx));
        assert_eq!(resolve_queue("test-q", "q"), Some(id));
        assert_eq!(
            register_queue("test-q", "q", None),
            id,
            "re-registering keeps the id"
        );
        assert!(enqueue(id, Bytes::from_static(b"a")));
        assert!(enqueue(id, Bytes::from_static(b"b")));
        assert_eq!(rx.try_recv(), Ok(id));
        assert_eq!(dequeue(id), Ok(Some(Bytes::from_static(b"a"))));
        assert_eq!(dequeue(id), Ok(Some(Bytes::from_static(b"b"))));
        assert_eq!(dequeue(id), Ok(None));
        assert_eq!(dequeue(9999), Err(NoSuchQueue));
        assert!(!enqueue(9999, Bytes::new()));
    }
}
