//! The server's allocator: mimalloc, entered where it is cheapest for the layout.
//!
//! `vsess serve` uses it (see `main.rs`), and so does the benchmarks' baseline server
//! (`bench/tools`, which includes this file), so that the baseline stays the ceiling of
//! vsess's own stack.
use std::alloc::{GlobalAlloc, Layout};

/// mimalloc, through its plain entry points where they give the alignment asked for.
///
/// `mimalloc::MiMalloc` calls `mi_malloc_aligned` for every allocation. Past mimalloc's
/// small sizes (1 KiB), or when the free block at hand happens not to be aligned, that
/// takes a generic path that over-allocates (the server's buffers: read, response, TLS
/// records), 1.5k instructions a request in callgrind's S1. Every mimalloc block is
/// aligned to at least 8 bytes (block sizes are multiples of 8, and a page's first block
/// is aligned to 16), so `mi_malloc` serves any layout aligned to 8 or less, as the
/// system allocator serves those with `malloc`. Stricter alignments go to `MiMalloc`.
/// Both free with `mi_free`.
pub struct Mi;

/// The alignment every mimalloc block has.
const MI_BLOCK_ALIGN: usize = 8;

// SAFETY: `mi_malloc`, `mi_zalloc` and `mi_realloc` return blocks aligned to
// `MI_BLOCK_ALIGN` (or null), of at least the size asked for; other layouts go to
// `MiMalloc`; every block, however made, is mimalloc's and is freed with `mi_free`.
unsafe impl GlobalAlloc for Mi {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MI_BLOCK_ALIGN {
            unsafe { libmimalloc_sys::mi_malloc(layout.size()).cast() }
        } else {
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MI_BLOCK_ALIGN {
            unsafe { libmimalloc_sys::mi_zalloc(layout.size()).cast() }
        } else {
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MI_BLOCK_ALIGN {
            unsafe { libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast() }
        } else {
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // also built into bench/tools, whose crate root does not allow it
mod tests {
    use super::*;

    /// `Mi` gives every layout its alignment, zeroes what it is asked to, and keeps a
    /// block's contents when it grows or shrinks, across mimalloc's size classes.
    #[test]
    fn mi_aligns_zeroes_and_keeps_contents() {
        let mut sizes: Vec<usize> = (1..=64).collect();
        for shift in 6..=20 {
            let n = 1usize << shift;
            sizes.extend([n - 8, n - 1, n, n + 1, n + 8, n + n / 2]);
        }
        for &size in &sizes {
            for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let p = Mi.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size}, align {align}");
                    std::ptr::write_bytes(p, 0xAB, size);
                    let z = Mi.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "zeroed: size {size}, align {align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    Mi.dealloc(z, layout);
                    let grown = size * 3 + 5;
                    let q = Mi.realloc(p, layout, grown);
                    assert_eq!(
                        q as usize % align,
                        0,
                        "grown: {size} -> {grown}, align {align}"
                    );
                    assert!(std::slice::from_raw_parts(q, size)
                        .iter()
                        .all(|&b| b == 0xAB));
                    let shrunk = size / 2 + 1;
                    let r = Mi.realloc(q, Layout::from_size_align(grown, align).unwrap(), shrunk);
                    assert_eq!(
                        r as usize % align,
                        0,
                        "shrunk: {grown} -> {shrunk}, align {align}"
                    );
                    assert!(std::slice::from_raw_parts(r, shrunk)
                        .iter()
                        .all(|&b| b == 0xAB));
                    Mi.dealloc(r, Layout::from_size_align(shrunk, align).unwrap());
                }
            }
        }
    }
}
