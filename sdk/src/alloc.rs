//! A fast allocator for filters: size classes with free lists, for the many small, short-lived allocations a filter
//! makes per request (header names and values, property strings, the buffers the host hands over through
//! `proxy_on_memory_allocate`).
//!
//! A filter runs on one thread and its memory never shrinks, so the classic general-purpose allocator that
//! `wasm32-wasip1` links (dlmalloc, with coalescing and bins) pays for work a filter does not need. Here a block of
//! up to [`MAX_SMALL`] bytes comes from its class's free list, or is cut from a 64 KiB chunk; freeing it pushes it
//! back on the list. That is a handful of instructions each way. Larger or over-aligned blocks go to the system
//! allocator. Freed small blocks stay with their class for reuse (a filter's peak of small objects stays reserved).
//!
//! [`main!`](crate::main) installs it as the global allocator of a filter built for wasm32 (without threads);
//! a filter that wants its own allocator declares its entry point with `proxy_wasm::main!` instead.

/// The largest request served from the size classes; larger ones go to the system allocator.
pub const MAX_SMALL: usize = 2048;

/// The alignment every small block has.
pub const ALIGN: usize = 16;

/// Number of size classes: 16-byte steps up to 256 bytes, then powers of two up to [`MAX_SMALL`].
pub const CLASSES: usize = 16 + 3;

/// The size class of a request of `size` bytes aligned to `align`, or `None` for the system allocator.
pub fn class_of(size: usize, align: usize) -> Option<usize> {
    if align > ALIGN || size > MAX_SMALL {
        return None;
    }
    let size = size.max(1);
    Some(match size {
        ..=256 => (size - 1) / 16,
        257..=512 => 16,
        513..=1024 => 17,
        _ => 18,
    })
}

/// The bytes of every block in class `class`.
pub fn class_size(class: usize) -> usize {
    match class {
        0..16 => (class + 1) * 16,
        c => 512 << (c - 16),
    }
}

#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
pub use imp::Alloc;

#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[allow(
    unsafe_code,
    reason = "a global allocator is the guest side of the ABI's memory contract (proxy_on_memory_allocate)"
)]
mod imp {
    use std::{
        alloc::{GlobalAlloc, Layout, System},
        cell::UnsafeCell,
        ptr::{self, null_mut},
    };

    use super::{ALIGN, CLASSES, class_of, class_size};

    /// Bytes requested from the system allocator at a time for small blocks.
    const CHUNK: usize = 64 * 1024;

    struct State {
        /// Head of each class's free list; a free block holds the address of the next.
        free: [*mut u8; CLASSES],
        /// The unused rest of the current chunk.
        bump: *mut u8,
        end: *mut u8,
    }

    /// The allocator; see the [module docs](super).
    pub struct Alloc {
        state: UnsafeCell<State>,
    }

    impl Alloc {
        /// An allocator with nothing reserved yet.
        pub const fn new() -> Self {
            Alloc {
                state: UnsafeCell::new(State {
                    free: [null_mut(); CLASSES],
                    bump: null_mut(),
                    end: null_mut(),
                }),
            }
        }
    }

    impl Default for Alloc {
        fn default() -> Self {
            Self::new()
        }
    }

    // SAFETY: compiled only for wasm without the atomics feature, where a module has exactly one thread, so the
    // state is never reached from two threads.
    unsafe impl Sync for Alloc {}

    impl State {
        /// A block of class `class`: from its free list, else cut from the chunk (a new chunk when it runs out).
        ///
        /// # Safety
        /// Single-threaded access to `self`; `class < CLASSES`.
        unsafe fn take(&mut self, class: usize) -> *mut u8 {
            let head = self.free[class];
            if !head.is_null() {
                // SAFETY: every pointer on a free list is a freed block of this class, at least 16 bytes and
                // 16-aligned, whose first word the push below wrote.
                self.free[class] = unsafe { ptr::read(head.cast::<*mut u8>()) };
                return head;
            }
            let size = class_size(class);
            if (self.end as usize) - (self.bump as usize) < size {
                // The rest of the old chunk is too small for this class: hand it out to smaller classes later is
                // not worth the bookkeeping; it is at most one block's worth.
                // SAFETY: a non-zero size and a valid power-of-two alignment.
                let chunk =
                    unsafe { System.alloc(Layout::from_size_align_unchecked(CHUNK, ALIGN)) };
                if chunk.is_null() {
                    return null_mut();
                }
                self.bump = chunk;
                // SAFETY: `chunk` is the start of CHUNK bytes.
                self.end = unsafe { chunk.add(CHUNK) };
            }
            let block = self.bump;
            // SAFETY: the check above left at least `size` bytes between bump and end.
            self.bump = unsafe { self.bump.add(size) };
            block
        }

        /// Returns `block` to class `class`.
        ///
        /// # Safety
        /// Single-threaded access; `block` came from `take(class)` and is no longer used.
        unsafe fn give(&mut self, block: *mut u8, class: usize) {
            // SAFETY: a block is at least 16 bytes and 16-aligned, so its first word can hold the link.
            unsafe { ptr::write(block.cast::<*mut u8>(), self.free[class]) };
            self.free[class] = block;
        }
    }

    // SAFETY: small blocks are 16-aligned and at least as large as the request (class_of/class_size); each is handed
    // out once until freed; larger or over-aligned requests go to `System` with their own layout, and dealloc/realloc
    // route by the same class_of, so a block returns to where it came from.
    unsafe impl GlobalAlloc for Alloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            match class_of(layout.size(), layout.align()) {
                // SAFETY: one thread (see `Sync`); `c < CLASSES`.
                Some(c) => unsafe { (*self.state.get()).take(c) },
                // SAFETY: the caller's layout, as GlobalAlloc requires.
                None => unsafe { System.alloc(layout) },
            }
        }

        unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
            match class_of(layout.size(), layout.align()) {
                // SAFETY: the caller passes the layout it allocated with, so `block` is of class `c`.
                Some(c) => unsafe { (*self.state.get()).give(block, c) },
                // SAFETY: allocated by `System` with this layout.
                None => unsafe { System.dealloc(block, layout) },
            }
        }

        unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let old = class_of(layout.size(), layout.align());
            let new = class_of(new_size, layout.align());
            match (old, new) {
                // Still fits its block.
                (Some(a), Some(b)) if a == b => block,
                // Both outside the classes: the system allocator may grow in place.
                // SAFETY: allocated by `System` with `layout`.
                (None, None) => unsafe { System.realloc(block, layout, new_size) },
                _ => {
                    // SAFETY: the new layout keeps the caller's valid alignment and a non-zero size.
                    let new_layout =
                        unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                    // SAFETY: as `alloc`.
                    let moved = unsafe { self.alloc(new_layout) };
                    if !moved.is_null() {
                        // SAFETY: both blocks hold at least the smaller size and do not overlap.
                        unsafe {
                            ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                            self.dealloc(block, layout);
                        }
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_table() {
        // (size, align, class)
        let cases = [
            (0, 1, Some(0)),
            (1, 1, Some(0)),
            (16, 8, Some(0)),
            (17, 1, Some(1)),
            (256, 16, Some(15)),
            (257, 1, Some(16)),
            (512, 1, Some(16)),
            (513, 4, Some(17)),
            (2048, 1, Some(18)),
            (2049, 1, None),
            (8, 32, None),
        ];
        for (size, align, want) in cases {
            assert_eq!(class_of(size, align), want, "{size} {align}");
        }
    }

    #[test]
    fn every_request_fits_its_class() {
        for size in 0..=MAX_SMALL {
            let c = class_of(size, 1).expect("small");
            assert!(c < CLASSES, "{size}");
            assert!(class_size(c) >= size.max(16), "{size} in class {c}");
            assert_eq!(class_size(c) % ALIGN, 0, "class {c} keeps blocks aligned");
            if c > 0 {
                assert!(
                    class_size(c - 1) < size,
                    "{size} is in the smallest class that fits"
                );
            }
        }
    }
}
