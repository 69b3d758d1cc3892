//! Allocator settings for the party processes.
//!
//! A protocol run allocates and frees many vectors of one to tens of MiB
//! (material, openings, layer outputs). glibc serves each from a fresh
//! `mmap` and returns it on free, so every run faults in and zeroes its
//! pages again: about a fifth of the CPU time of a batch-8 run
//! (docs/results/performance.md). Serving such buffers from the heap and
//! keeping freed memory for reuse halves the time to expand material
//! (`protocols/examples/dealer_throughput`). Memory stays bounded by the
//! session limits; freed memory above 512 MiB is still returned.

/// Apply the settings (glibc on Linux; elsewhere nothing).
pub fn keep_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called once at
    // start-up before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}
