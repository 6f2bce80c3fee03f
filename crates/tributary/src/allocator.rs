//! The process's allocator: mimalloc, with freed memory kept for a while before it goes back to
//! the operating system.
//!
//! The collector allocates and frees small strings and buffers per event on every core;
//! mimalloc's per-thread free lists cut that cost measurably against the system allocator (see
//! docs/performance.md, bench ingest). The lake writer builds tens of megabytes of Arrow columns,
//! frees them at each flush and builds them again: with mimalloc's default purge delay (1 s)
//! those pages went back to the kernel between flushes and every new buffer faulted them in
//! again, zeroed (`bench pipeline`: 3.5× the page faults, 18 % more CPU). Twenty seconds spans
//! several flushes, and memory a burst needed is still returned soon after it.

/// mimalloc as the global allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (the Rust bindings name only some
/// options); a test checks it by its default.
const PURGE_DELAY_OPTION: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays with the process before it is returned (ms).
const PURGE_DELAY_MS: std::ffi::c_long = 20_000;

/// Sets the purge delay, unless `MIMALLOC_PURGE_DELAY` in the environment chose one.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option; mimalloc reads options atomically at any time.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY_OPTION, PURGE_DELAY_MS) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_number_is_the_purge_delay() {
        // mimalloc's documented default purge delay is 1000 ms; no other option defaults to it.
        // SAFETY: reads one integer option.
        let default = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY_OPTION) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(default, 1000);
        }
        tune();
        // SAFETY: as above.
        let now = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY_OPTION) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(now, PURGE_DELAY_MS);
        }
    }
}
