//! The allocator policy, chosen deliberately for a gateway that runs for years: glibc's
//! malloc (no new dependency, no C build on ARM), with
//! - at most [`ARENAS`] arenas ([`limit_arenas`], at start, before any thread): glibc gives each
//!   thread that contends for memory its own arena, each keeping its own freed pages, so RSS
//!   grows with the thread count (tokio workers, the broker and store threads, the blocking
//!   pool) for no speed a gateway's load can use. An explicit `MALLOC_ARENA_MAX` in the
//!   environment (systemd unit, operator) wins;
//! - freed memory returned every 10 s ([`trim`], called by the broker's thread): glibc keeps
//!   what a burst freed (clients that left, a drained queue, a big config's parse) for reuse,
//!   and trims by itself only the top of the main arena.
//!
//! The crate's only `unsafe` code is here (the lint is `deny`, not `forbid`, for these calls).

/// Arenas when the environment does not say.
pub const ARENAS: i32 = 2;

/// Limits glibc's malloc arenas to [`ARENAS`] unless `MALLOC_ARENA_MAX` is set. Call first in
/// `main`, before any thread starts. Elsewhere than glibc, nothing.
#[allow(unsafe_code)]
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes no pointers; called before any other thread exists, it only sets
    // a parameter of the allocator under the allocator's own lock.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Returns the free pages of every malloc arena to the system (glibc; elsewhere nothing).
#[allow(unsafe_code)]
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only rearranges the allocator's free lists,
    // under the allocator's own locks; any thread may call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
