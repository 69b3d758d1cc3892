//! The server and the dealer as long-running services, as real processes
//! over pinned TLS on loopback (reduced versions of docs/results/serving.md):
//! concurrent clients, sequential sessions on one server process with its
//! memory, faulty clients, a dealer restart, a full server, SIGTERM.
//!
//! Every wait has a deadline after which the children are killed and the
//! test fails; every loop is bounded.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use pann_models::ImageSet;
use pann_mpc_core::AbortCode;

/// A dealer and a server running as services (no `--sessions`).
struct Service {
    s: Session,
    dealer: Proc,
    server: Proc,
    metrics: String,
}

impl Service {
    fn start(name: &str, server_args: &[&str]) -> Service {
        Service::start_with(name, server_args, &[])
    }

    fn start_with(name: &str, server_args: &[&str], dealer_args: &[&str]) -> Service {
        let s = Session::patient(name);
        let dealer = spawn_dealer(&s, dealer_args);
        let metrics = free_addr();
        let mut c = role(&s, "server");
        c.args(["--listen", &s.server, "--dealer", &s.dealer, "--alpha", "9", "--metrics", &metrics, "--model"])
            .arg(card())
            .args(server_args);
        let server = Proc::spawn(s.dir.path(), "server", &mut c);
        server.wait_for_stderr("listening on", DEADLINE);
        Service { s, dealer, server, metrics }
    }

    /// A client for records `first..first + count` of the shipped CIFAR
    /// file, with its own report `NAME.json`.
    fn client(&self, name: &str, first: usize, count: usize, batch: usize) -> Proc {
        client(&self.s, name, first, count, batch)
    }

    fn metric(&self, line: &str) -> u64 {
        let text = scrape(&self.metrics);
        let prefix = format!("{line}{{role=\"server\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line} in\n{text}"))
    }

    /// SIGTERM both; each must exit 0 within `within`.
    fn stop(mut self, within: Duration) {
        for p in [&self.server, &self.dealer] {
            signal(p, "-TERM");
        }
        let t0 = Instant::now();
        let se = self.server.wait(t0, within);
        let de = self.dealer.wait(t0, within);
        se.succeeded("server");
        de.succeeded("dealer");
        assert!(se.stderr.contains("stopped after"), "the server's last words:\n{}", se.stderr);
    }
}

fn role(s: &Session, role: &str) -> Command {
    let mut c = Command::new(party());
    c.args(["--role", role, "--timeout", &s.timeout.to_string(), "--certs"])
        .arg(s.certs.join(role))
        .arg("--report")
        .arg(s.dir.path().join(format!("{role}.jsonl")));
    c
}

fn spawn_dealer(s: &Session, args: &[&str]) -> Proc {
    let d = Proc::spawn(s.dir.path(), "dealer", role(s, "dealer").args(["--listen", &s.dealer]).args(args));
    d.wait_for_stderr("listening on", DEADLINE);
    d
}

fn client(s: &Session, name: &str, first: usize, count: usize, batch: usize) -> Proc {
    let mut c = Command::new(party());
    c.args(["--role", "client", "--timeout", &s.timeout.to_string(), "--certs"])
        .arg(s.certs.join("client"))
        .arg("--report")
        .arg(s.dir.path().join(format!("{name}.json")))
        .args(["--connect", &s.server, "--dealer", &s.dealer, "--alpha", "9"])
        .args(["--first", &first.to_string(), "--count", &count.to_string(), "--batch", &batch.to_string(), "--input"])
        .arg(cifar());
    Proc::spawn(s.dir.path(), name, &mut c)
}

fn signal(p: &Proc, sig: &str) {
    let pid = p.child.as_ref().expect("running").id().to_string();
    assert!(Command::new("kill").args([sig, &pid]).status().expect("kill").success());
}

fn alive(p: &mut Proc) -> bool {
    p.child.as_mut().is_some_and(|c| c.try_wait().expect("try_wait").is_none())
}

/// The metrics page, over plain HTTP.
fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.0 200 OK"), "{out}");
    out
}

/// Resident memory of a process, in bytes (Linux).
fn rss(p: &Proc) -> u64 {
    let pid = p.child.as_ref().expect("running").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn records() -> ImageSet {
    ImageSet::read_file(cifar()).expect("shipped records")
}

/// A client's report against the in-process fixed-point reference.
fn check(s: &Session, name: &str, first: usize, count: usize, batch: usize) {
    let data = records();
    let raw: Vec<Vec<u8>> = (first..first + count).map(|i| data.image(i).to_vec()).collect();
    let labels: Vec<Option<u8>> = (first..first + count).map(|i| Some(data.labels[i])).collect();
    let (_, want) = reference(&raw, batch);
    let path: PathBuf = s.dir.path().join(format!("{name}.json"));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("client report")).expect("JSON");
    check_predictions(&report, &want, &labels);
}

#[test]
fn one_server_and_one_dealer_serve_concurrent_and_sequential_clients_with_flat_memory() {
    let mut svc = Service::start("concurrent", &["--max-sessions", "3"]);
    let t0 = Instant::now();
    // Three clients at once, each with its own images and batch.
    let jobs = [("c1", 0, 2, 1), ("c2", 2, 2, 2), ("c3", 4, 3, 3)];
    let mut clients: Vec<Proc> = jobs.iter().map(|&(n, f, k, b)| svc.client(n, f, k, b)).collect();
    for (c, &(n, f, k, b)) in clients.iter_mut().zip(&jobs) {
        c.wait(t0, DEADLINE).succeeded(n);
        check(&svc.s, n, f, k, b);
    }
    // Sequential sessions on the same processes; memory at the start and the end.
    let sequential = 30;
    let mut first_rss = 0;
    for i in 0..sequential {
        let name = format!("seq{i}");
        let mut c = svc.client(&name, 8 + i, 1, 1);
        c.wait(Instant::now(), DEADLINE).succeeded(&name);
        if i == 1 {
            first_rss = rss(&svc.server);
        }
    }
    check(&svc.s, &format!("seq{}", sequential - 1), 8 + sequential - 1, 1, 1);
    // The server kept its link to the dealer: the sequential sessions came
    // over links that had served a session before, not over new connections.
    let reused = svc.dealer.stderr_now().matches("on the server's link").count();
    assert!(reused >= sequential, "{reused} session(s) reused a link:\n{}", svc.dealer.stderr_now());
    let last_rss = rss(&svc.server);
    eprintln!("server RSS after session 2: {:.1} MB, after session {sequential}: {:.1} MB", first_rss as f64 / 1e6, last_rss as f64 / 1e6);
    assert!(
        last_rss as f64 <= first_rss as f64 * 1.25,
        "server memory grew from {first_rss} to {last_rss} bytes over {sequential} sessions"
    );
    assert!(alive(&mut svc.server) && alive(&mut svc.dealer));
    assert_eq!(svc.metric("pann_sessions_completed_total"), 3 + sequential as u64);
    assert_eq!(svc.metric("pann_sessions_failed_total"), 0);
    assert_eq!(svc.metric("pann_sessions_in_flight"), 0);
    // One JSON line per session, each with its id.
    let lines = std::fs::read_to_string(svc.s.dir.path().join("server.jsonl")).expect("server report");
    let ids: std::collections::BTreeSet<String> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line")["session"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), 3 + sequential);
    svc.stop(Duration::from_secs(40));
}

#[test]
fn the_server_survives_faulty_clients_and_serves_the_next_one() {
    let mut svc = Service::start("faults", &["--max-sessions", "2"]);
    // Not TLS at all: bytes that are no handshake.
    let mut junk = std::net::TcpStream::connect(&svc.s.server).expect("connect");
    junk.write_all(&[0x16, 3, 1, 0xff, 0xff, 1, 2, 3]).unwrap();
    drop(junk);
    // A client that disagrees on the precision.
    let mut bad = Command::new(party());
    bad.args(["--role", "client", "--timeout", "10", "--certs"])
        .arg(svc.s.certs.join("client"))
        .args(["--connect", &svc.s.server, "--dealer", &svc.s.dealer, "--alpha", "10", "--input"])
        .arg(cifar());
    let be = Proc::spawn(svc.s.dir.path(), "alpha10", &mut bad).wait(Instant::now(), DEADLINE);
    be.failed_mentioning("client", &["alpha"]);
    // A client killed in the middle of its session (once admitted: a slow
    // start must not turn it into a client that never came).
    let mut victim = client(&svc.s, "victim", 0, 16, 1);
    svc.server.wait_for_stderr_times("admitted a batch", 1, DEADLINE);
    std::thread::sleep(Duration::from_millis(1000));
    victim.kill();
    // A frozen client: its session ends at the server's timeout, not later.
    let mut frozen = client(&svc.s, "frozen", 0, 16, 1);
    svc.server.wait_for_stderr_times("admitted a batch", 2, DEADLINE);
    std::thread::sleep(Duration::from_millis(1000));
    signal(&frozen, "-STOP");
    // Meanwhile, and after, good clients are served.
    let mut good = client(&svc.s, "good", 3, 2, 2);
    good.wait(Instant::now(), DEADLINE).succeeded("client after the faults");
    check(&svc.s, "good", 3, 2, 2);
    frozen.kill();
    assert!(alive(&mut svc.server), "the server died:\n{}", svc.server.stderr_now());
    // The killed and the frozen sessions count as failed (the mismatched
    // client is refused before admission), once the server has seen the
    // frozen one's end: it may still be on its way.
    let t0 = Instant::now();
    let mut failed = svc.metric("pann_sessions_failed_total");
    while failed < 2 && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
        failed = svc.metric("pann_sessions_failed_total");
    }
    assert!(failed >= 2, "the killed and the frozen sessions count as failed: {failed}");
    svc.stop(Duration::from_secs(40));
}

#[test]
fn after_a_dealer_restart_the_server_serves_again() {
    let mut svc = Service::start("dealerrestart", &[]);
    let mut c = svc.client("before", 0, 1, 1);
    c.wait(Instant::now(), DEADLINE).succeeded("client before the restart");
    svc.dealer.kill();
    // Without a dealer a session fails with a clear error, and the server stays.
    let mut c = svc.client("during", 1, 1, 1);
    let ce = c.wait(Instant::now(), DEADLINE);
    ce.failed_mentioning_one_of("client", &["dealer", AbortCode::PeerFailed.text()]);
    svc.server.wait_for_stderr("cannot be reached", DEADLINE);
    // Its kept link died with the dealer: it tried a fresh one.
    assert!(svc.server.stderr_now().contains("reconnecting"), "{}", svc.server.stderr_now());
    assert!(alive(&mut svc.server), "the server died with the dealer:\n{}", svc.server.stderr_now());
    svc.dealer = spawn_dealer(&svc.s, &[]);
    let mut c = svc.client("after", 2, 2, 2);
    c.wait(Instant::now(), DEADLINE).succeeded("client after the restart");
    check(&svc.s, "after", 2, 2, 2);
    svc.stop(Duration::from_secs(40));
}

#[test]
fn a_full_server_says_busy_and_sigterm_lets_the_session_in_flight_finish() {
    let mut svc = Service::start("busy", &["--max-sessions", "1", "--queue", "0"]);
    let mut long = svc.client("long", 0, 6, 1);
    svc.server.wait_for_stderr("admitted", DEADLINE);
    let mut second = svc.client("second", 6, 1, 1);
    let se = second.wait(Instant::now(), DEADLINE);
    se.failed_mentioning("client", &[AbortCode::Busy.text()]);
    assert_eq!(svc.metric("pann_sessions_busy_total"), 1);
    // SIGTERM while the long session runs: it still completes, then the
    // server exits 0 (the dealer too).
    signal(&svc.server, "-TERM");
    long.wait(Instant::now(), DEADLINE).succeeded("the session in flight at SIGTERM");
    check(&svc.s, "long", 0, 6, 1);
    let t0 = Instant::now();
    let sv = svc.server.wait(t0, Duration::from_secs(40));
    sv.succeeded("server");
    assert!(sv.stderr.contains("stopping: no new sessions"), "{}", sv.stderr);
    signal(&svc.dealer, "-TERM");
    svc.dealer.wait(t0, Duration::from_secs(40)).succeeded("dealer");
}

#[test]
fn a_dealer_with_a_pool_serves_later_sessions_from_material_made_ahead() {
    let svc = Service::start_with("pool", &[], &["--pool", "2"]);
    // The first session of its kind is made live; the pool then fills.
    let mut c = svc.client("first", 0, 1, 1);
    c.wait(Instant::now(), DEADLINE).succeeded("first client");
    let t0 = Instant::now();
    while !svc.dealer.stderr_now().contains("material from the pool") {
        let mut c = svc.client("pooled", 1, 1, 1);
        c.wait(Instant::now(), DEADLINE).succeeded("pooled client");
        check(&svc.s, "pooled", 1, 1, 1);
        assert!(t0.elapsed() < Duration::from_secs(60), "no session was served from the pool:\n{}", svc.dealer.stderr_now());
    }
    svc.stop(Duration::from_secs(40));
}

/// A connection that completes TLS but never asks for anything holds no
/// session slot: with one slot and no queue, a real client is still served
/// (a client whose session does hold the slot makes the next one Busy: the
/// test above).
#[test]
fn an_idle_connection_holds_no_session_slot() {
    use pann_mpc_core::transport::{load_peer_cert, tls_connect, TlsIdentity, TlsPeers};
    use pann_mpc_core::{ChannelConfig, Role};
    let svc = Service::start("idle", &["--max-sessions", "1", "--queue", "0"]);
    let dir = svc.s.certs.join("client");
    let id = TlsIdentity::load(dir.join("client.crt"), dir.join("client.key")).unwrap();
    let peers = TlsPeers::new(&id, vec![(Role::Server, load_peer_cert(dir.join("server.crt")).unwrap())]).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cfg = ChannelConfig::default().with_timeout(Duration::from_secs(30)).with_connect_timeout(Duration::from_secs(30));
    let _idle = rt.block_on(tls_connect(svc.s.server.clone(), cfg, &peers)).expect("TLS to the server");
    let mut c = svc.client("real", 0, 1, 1);
    c.wait(Instant::now(), DEADLINE).succeeded("a client beside an idle connection");
    check(&svc.s, "real", 0, 1, 1);
    svc.stop(Duration::from_secs(40));
}
