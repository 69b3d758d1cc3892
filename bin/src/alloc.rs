//! Allocator settings for the party processes.
//!
//! A protocol run allocates and frees many vectors of one to tens of MiB
//! (material, openings, layer outputs). glibc serves each from a fresh
//! `mmap` and returns it on free, so every run faults in and zeroes its
//! pages again: about a fifth of the CPU time of a batch-8 run
//! (docs/results/performance.md). Serving buffers below 64 MiB from the heap
//! keeps their pages for reuse and halves the time to expand material
//! (`protocols/examples/dealer_throughput`).
//!
//! The cost is memory kept after it is freed: a heap's free top above 64 MiB
//! still goes back at once, but free pages inside the heaps (one per thread
//! arena) stay until [`release_free_memory`], which the services call
//! whenever no session is in flight.

/// Apply the settings (glibc on Linux; elsewhere nothing). Returns whether
/// they took effect. Call once, first thing in `main`, before other threads
/// exist.
pub fn keep_large_buffers() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other
    // threads allocate.
    unsafe {
        // The trim threshold is set only if the mmap threshold was accepted:
        // alone it would pin the mmap threshold at its default instead.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Give the free pages of every heap back to the operating system (glibc;
/// elsewhere nothing). Takes milliseconds: call it when idle.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn settings_apply_and_memory_can_be_released() {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(super::keep_large_buffers());
        let v = vec![1u8; 8 << 20];
        drop(v);
        super::release_free_memory();
    }
}
