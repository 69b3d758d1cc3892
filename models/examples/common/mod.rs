//! Helpers shared by the accuracy examples (`card_accuracy`,
//! `pann_accuracy`): progress on long evaluations and the date of a report.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Run `f` with a counter of images done; a line on stderr every 30 s
/// (log-friendly) and one at the end.
pub fn with_progress<T>(label: &str, total: usize, f: impl FnOnce(&AtomicUsize) -> T) -> T {
    let counter = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let printer = {
        let (counter, stop, label) = (counter.clone(), stop.clone(), label.to_string());
        std::thread::spawn(move || {
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                k += 1;
                if k.is_multiple_of(60) {
                    let d = counter.load(Ordering::Relaxed);
                    eprintln!("  {label}: {d}/{total} images ({:.0}/s)", d as f64 / start.elapsed().as_secs_f64().max(1e-9));
                }
            }
        })
    };
    let out = f(&counter);
    stop.store(true, Ordering::Relaxed);
    let _ = printer.join();
    eprintln!("  {label}: {total} images in {:.1} s", start.elapsed().as_secs_f64());
    out
}

/// The current UTC date and time, from `date` ("unknown" if it fails).
pub fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}
