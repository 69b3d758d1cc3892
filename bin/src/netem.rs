//! A userspace link emulator: a TCP relay that forwards bytes in both
//! directions with a one-way propagation delay and a bandwidth limit.
//!
//! The kernel here has no `sch_netem`, so latency cannot be emulated with
//! `tc`; instead `pann bench --net lan|wan` places one relay between each pair
//! of roles (client-server, client-dealer, server-dealer) on loopback. TLS
//! runs end to end through it: the relay only forwards bytes.
//!
//! Model of one direction of a link: bytes arriving at the relay are cut into
//! pieces of at most [`PIECE`] bytes; each piece is serialised onto the link
//! at `rate` (a piece starts when the link is free and the piece has arrived)
//! and is delivered `delay` after its last bit left. The link is full duplex
//! (each direction has its own rate) and its queue is unbounded (no loss, no
//! TCP window effects): the emulated link is an optimistic one. Each
//! direction is two OS threads (reader, timed writer), so sub-millisecond
//! delays are kept to the precision of `thread::sleep`, not of a 1 ms timer
//! wheel. Its own copy and hand-off overhead is measured by `--net relay0`
//! (zero delay, no rate limit) against direct loopback.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;

/// Largest piece the relay times on its own (a read is split into pieces).
pub const PIECE: usize = 16 * 1024;

/// One emulated network.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LinkSpec {
    /// The name rows and reports carry (`lan`, `rtt10ms-200mbit`, ...).
    pub name: String,
    /// Round-trip time (twice the one-way delay the relay adds), ms.
    pub rtt_ms: f64,
    /// Bandwidth of each direction, Mbit/s (None: unlimited).
    pub rate_mbit: Option<f64>,
    /// Whether the relay is used at all (false: direct loopback).
    pub relay: bool,
}

impl LinkSpec {
    /// Direct loopback: no relay.
    pub fn loopback() -> Self {
        LinkSpec { name: "loopback".into(), rtt_ms: 0.0, rate_mbit: None, relay: false }
    }

    /// `loopback`, `relay0` (the relay with no delay and no limit: its
    /// overhead), `lan` (1 Gbit/s, 0.5 ms RTT), `wan` (100 Mbit/s, 40 ms RTT),
    /// or `RTT_MS:RATE_MBIT` (e.g. `10:200`; rate 0 = unlimited).
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "loopback" => Self::loopback(),
            "relay0" => LinkSpec { name: "relay0".into(), rtt_ms: 0.0, rate_mbit: None, relay: true },
            "lan" => LinkSpec { name: "lan".into(), rtt_ms: 0.5, rate_mbit: Some(1000.0), relay: true },
            "wan" => LinkSpec { name: "wan".into(), rtt_ms: 40.0, rate_mbit: Some(100.0), relay: true },
            other => {
                let Some((rtt, rate)) = other.split_once(':') else {
                    bail!("unknown network {other:?}: loopback, relay0, lan, wan or RTT_MS:RATE_MBIT")
                };
                let (rtt, rate): (f64, f64) = (rtt.parse()?, rate.parse()?);
                if !(rtt >= 0.0 && rate >= 0.0) {
                    bail!("network {other:?}: RTT and rate must be non-negative");
                }
                LinkSpec { name: format!("rtt{rtt}ms-{rate}mbit"), rtt_ms: rtt, rate_mbit: (rate > 0.0).then_some(rate), relay: true }
            }
        })
    }

    /// The delay the relay adds to each direction: RTT / 2.
    pub fn one_way(&self) -> Duration {
        Duration::from_secs_f64(self.rtt_ms / 2e3)
    }

    /// Seconds to serialise `bytes` onto one direction of the link.
    pub fn transfer_s(&self, bytes: f64) -> f64 {
        self.rate_mbit.map_or(0.0, |r| bytes * 8.0 / (r * 1e6))
    }

    /// One line for logs and JSON ("userspace relay: 100 Mbit/s each direction, RTT 40 ms ...").
    pub fn describe(&self) -> String {
        if !self.relay {
            return "direct loopback (no relay)".into();
        }
        let rate = self.rate_mbit.map_or("unlimited".to_string(), |r| format!("{r} Mbit/s each direction"));
        format!("userspace relay: {rate}, RTT {} ms ({} ms one way)", self.rtt_ms, self.rtt_ms / 2.0)
    }
}

/// A relay listening on loopback and forwarding every accepted connection to
/// `target`. Stops accepting when dropped (open connections run to their end).
pub struct Relay {
    /// Where the relay listens (127.0.0.1, a free port): connect here instead of the target.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

impl Relay {
    /// Listen on a free loopback port and forward each connection to
    /// `target` through the link `spec` (a reader and a timed writer thread
    /// per direction; the target may start listening up to 60 s later).
    pub fn start(target: SocketAddr, spec: &LinkSpec) -> Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (spec, stop2) = (spec.clone(), stop.clone());
        thread::Builder::new().name("relay-accept".into()).spawn(move || {
            for inbound in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(inbound) = inbound else { continue };
                let spec = spec.clone();
                let _ = thread::Builder::new().name("relay-conn".into()).spawn(move || {
                    if let Some(outbound) = connect_patiently(target, Duration::from_secs(60)) {
                        pipe_both(inbound, outbound, &spec);
                    }
                });
            }
        })?;
        Ok(Relay { addr, stop })
    }
}

/// The target may not listen yet (the roles start together): retry.
fn connect_patiently(target: SocketAddr, patience: Duration) -> Option<TcpStream> {
    let until = Instant::now() + patience;
    loop {
        match TcpStream::connect(target) {
            Ok(s) => return Some(s),
            Err(_) if Instant::now() < until => thread::sleep(Duration::from_millis(20)),
            Err(_) => return None,
        }
    }
}

fn pipe_both(a: TcpStream, b: TcpStream, spec: &LinkSpec) {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else { return };
    let s2 = spec.clone();
    let t = thread::spawn(move || pipe(a2, b2, &s2));
    pipe(b, a, spec);
    let _ = t.join();
}

/// One direction: `src` -> `dst` through the emulated link.
fn pipe(src: TcpStream, mut dst: TcpStream, spec: &LinkSpec) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let mut reader = match src.try_clone() {
        Ok(r) => r,
        Err(_) => return,
    };
    let rd = thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let now = Instant::now();
                    for piece in buf[..n].chunks(PIECE) {
                        if tx.send((now, piece.to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    let delay = spec.one_way();
    let bytes_per_s = spec.rate_mbit.map(|r| r * 1e6 / 8.0);
    let mut link_free = Instant::now();
    for (arrived, piece) in rx {
        let release = match bytes_per_s {
            Some(rate) => {
                let start = link_free.max(arrived);
                link_free = start + Duration::from_secs_f64(piece.len() as f64 / rate);
                link_free + delay
            }
            None => arrived + delay,
        };
        let now = Instant::now();
        if release > now {
            thread::sleep(release - now);
        }
        if dst.write_all(&piece).is_err() {
            let _ = src.shutdown(Shutdown::Read);
            break;
        }
    }
    let _ = dst.shutdown(Shutdown::Write);
    let _ = rd.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names() {
        assert_eq!(LinkSpec::parse("wan").unwrap().rate_mbit, Some(100.0));
        assert_eq!(LinkSpec::parse("lan").unwrap().rtt_ms, 0.5);
        let c = LinkSpec::parse("10:0").unwrap();
        assert_eq!((c.rtt_ms, c.rate_mbit, c.relay), (10.0, None, true));
        assert!(LinkSpec::parse("moon").is_err());
    }

    /// Echo through a relay: a ping-pong costs at least one RTT, and a bulk
    /// transfer at least bytes / rate.
    #[test]
    fn delay_and_rate_are_applied() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = echo.local_addr().unwrap();
        thread::spawn(move || {
            for s in echo.incoming().flatten() {
                thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let mut w = s;
                    let _ = std::io::copy(&mut r, &mut w);
                });
            }
        });
        let spec = LinkSpec::parse("20:80").unwrap();
        let relay = Relay::start(target, &spec).unwrap();
        let mut c = TcpStream::connect(relay.addr).unwrap();
        c.set_nodelay(true).unwrap();
        let t0 = Instant::now();
        c.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        c.read_exact(&mut one).unwrap();
        let rtt = t0.elapsed().as_secs_f64();
        assert!((0.020..0.2).contains(&rtt), "ping-pong took {rtt} s");
        // 1 MB each way at 80 Mbit/s: 0.1 s of serialisation (directions overlap) + RTT.
        let data = vec![7u8; 1_000_000];
        let t0 = Instant::now();
        let mut w = c.try_clone().unwrap();
        let wr = thread::spawn(move || w.write_all(&data).unwrap());
        let mut back = vec![0u8; 1_000_000];
        c.read_exact(&mut back).unwrap();
        wr.join().unwrap();
        let t = t0.elapsed().as_secs_f64();
        assert!((0.1 + 0.02 - 0.005..1.5).contains(&t), "1 MB echo took {t} s");
    }
}
