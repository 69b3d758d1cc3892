//! Opt-in operational metrics of a long-running role in the Prometheus text
//! format (`--metrics HOST:PORT`): any HTTP request on that port is answered
//! with the current values. Nothing secret is counted: sessions, traffic,
//! rounds and latencies are public to the peers anyway.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use pann_mpc_core::meter::Cost;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Upper bounds of the session latency histogram, in seconds.
const BUCKETS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Counters of one role, shared by its sessions.
pub struct Metrics {
    role: &'static str,
    started: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    busy: AtomicU64,
    in_flight: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_recv: AtomicU64,
    rounds: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_sum_us: AtomicU64,
    /// Sessions waiting for a slot (server) or halves waiting for their
    /// partner (dealer).
    waiting: AtomicU64,
    /// Dealer: sessions of material prepared ahead (`--pool`).
    pool: AtomicU64,
}

impl Metrics {
    /// All counters at zero; `role` labels every series (`role="server"`).
    pub fn new(role: &'static str) -> Arc<Metrics> {
        Arc::new(Metrics {
            role,
            started: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            bytes_recv: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            buckets: Default::default(),
            latency_sum_us: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            pool: AtomicU64::new(0),
        })
    }

    /// A session took a slot (counted as started and in flight).
    pub fn started(&self) {
        self.started.fetch_add(1, Relaxed);
        self.in_flight.fetch_add(1, Relaxed);
    }

    /// A session that [`Metrics::started`] ended after `secs`, with `cost`
    /// summed over its channels.
    pub fn ended(&self, ok: bool, secs: f64, cost: Cost) {
        self.in_flight.fetch_sub(1, Relaxed);
        if ok { &self.completed } else { &self.failed }.fetch_add(1, Relaxed);
        self.bytes_sent.fetch_add(cost.bytes_sent, Relaxed);
        self.bytes_recv.fetch_add(cost.bytes_recv, Relaxed);
        self.rounds.fetch_add(cost.rounds, Relaxed);
        if ok {
            for (b, le) in self.buckets.iter().zip(BUCKETS) {
                if secs <= le {
                    b.fetch_add(1, Relaxed);
                }
            }
            self.latency_sum_us.fetch_add((secs * 1e6) as u64, Relaxed);
        }
    }

    /// A client turned away because every session slot was taken.
    pub fn busy(&self) {
        self.busy.fetch_add(1, Relaxed);
    }

    /// Change the number waiting (server: clients queued for a slot;
    /// dealer: halves waiting for their partner) by `delta`.
    pub fn waiting(&self, delta: i64) {
        add(&self.waiting, delta);
    }

    /// Change the number of sessions of material in the dealer's pool by `delta`.
    pub fn pool(&self, delta: i64) {
        add(&self.pool, delta);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let role = self.role;
        let mut counter = |name: &str, help: &str, v: u64, kind: &str| {
            let _ = writeln!(s, "# HELP pann_{name} {help}\n# TYPE pann_{name} {kind}\npann_{name}{{role=\"{role}\"}} {v}");
        };
        counter(
            "sessions_started_total",
            "Sessions started (connections accepted into a session slot).",
            self.started.load(Relaxed),
            "counter",
        );
        counter("sessions_completed_total", "Sessions that ended successfully.", self.completed.load(Relaxed), "counter");
        counter("sessions_failed_total", "Sessions that ended with an error.", self.failed.load(Relaxed), "counter");
        counter("sessions_busy_total", "Clients turned away because every session slot was taken.", self.busy.load(Relaxed), "counter");
        counter("sessions_in_flight", "Sessions running now.", self.in_flight.load(Relaxed), "gauge");
        counter(
            "sessions_waiting",
            "Server: clients queued for a slot; dealer: session halves waiting for their partner.",
            self.waiting.load(Relaxed),
            "gauge",
        );
        counter("pool_sessions", "Dealer: sessions of material prepared ahead (--pool).", self.pool.load(Relaxed), "gauge");
        counter("bytes_sent_total", "Framed bytes sent by ended sessions.", self.bytes_sent.load(Relaxed), "counter");
        counter("bytes_received_total", "Framed bytes received by ended sessions.", self.bytes_recv.load(Relaxed), "counter");
        counter("rounds_total", "Communication rounds of ended sessions.", self.rounds.load(Relaxed), "counter");
        let _ = writeln!(s, "# HELP pann_session_seconds Wall time of successful sessions.\n# TYPE pann_session_seconds histogram");
        for (b, le) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(s, "pann_session_seconds_bucket{{role=\"{role}\",le=\"{le}\"}} {}", b.load(Relaxed));
        }
        let n = self.completed.load(Relaxed);
        let _ = writeln!(s, "pann_session_seconds_bucket{{role=\"{role}\",le=\"+Inf\"}} {n}");
        let _ = writeln!(s, "pann_session_seconds_sum{{role=\"{role}\"}} {}", self.latency_sum_us.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(s, "pann_session_seconds_count{{role=\"{role}\"}} {n}");
        s
    }
}

fn add(gauge: &AtomicU64, delta: i64) {
    if delta >= 0 {
        gauge.fetch_add(delta as u64, Relaxed);
    } else {
        gauge.fetch_sub(delta.unsigned_abs(), Relaxed);
    }
}

/// Answer every connection on `listener` with the metrics (HTTP/1.0, then
/// close). A client gets 2 s to send its request line; the request itself is
/// not interpreted beyond being read.
pub async fn serve_metrics(listener: TcpListener, m: Arc<Metrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            // Out of descriptors, say: wait instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let m = Arc::clone(&m);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
            let body = m.render();
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body.as_bytes()).await?;
                stream.shutdown().await
            })
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_sessions_and_fills_the_histogram_cumulatively() {
        let m = Metrics::new("server");
        m.started();
        m.ended(true, 0.3, Cost { bytes_sent: 10, bytes_recv: 20, msgs_sent: 1, msgs_recv: 1, rounds: 3 });
        m.started();
        m.ended(false, 1.0, Cost::default());
        m.busy();
        let t = m.render();
        for line in [
            "pann_sessions_started_total{role=\"server\"} 2",
            "pann_sessions_completed_total{role=\"server\"} 1",
            "pann_sessions_failed_total{role=\"server\"} 1",
            "pann_sessions_busy_total{role=\"server\"} 1",
            "pann_sessions_in_flight{role=\"server\"} 0",
            "pann_bytes_sent_total{role=\"server\"} 10",
            "pann_rounds_total{role=\"server\"} 3",
            "pann_session_seconds_bucket{role=\"server\",le=\"0.25\"} 0",
            "pann_session_seconds_bucket{role=\"server\",le=\"0.5\"} 1",
            "pann_session_seconds_bucket{role=\"server\",le=\"+Inf\"} 1",
            "pann_session_seconds_count{role=\"server\"} 1",
        ] {
            assert!(t.contains(line), "missing {line:?} in\n{t}");
        }
    }
}
