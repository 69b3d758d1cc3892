//! Helpers shared by the process-level tests: temporary directories,
//! certificates, child processes with their output in files, sessions of
//! three `pann-party` processes, and the in-process fixed-point reference.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pann_approx::Alpha;
use pann_engine::{run_plan, ClearBackend, Plan, PublicModel, SecureConfig, ServerWeights};
use pann_models::LoadedModel;

/// The `pann-party` binary of this build (see [`binary`]).
pub fn party() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| binary("pann-party"))
}

/// The `pann` binary of this build (see [`binary`]).
pub fn pann() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| binary("pann"))
}

/// A binary of the `pann-bin` package beside this test executable
/// (`target/<profile>/`). `cargo test --workspace` (what `make test` runs)
/// builds it before any test runs, since pann-bin's own tests need it; a
/// test run of this package alone may find none, or one older than the
/// sources: both are refused with the command that fixes them, rather than
/// testing a stale binary. (Cargo gives `CARGO_BIN_EXE_*` only for a
/// package's own binaries, and a nested `cargo build` would wait forever on
/// the lock the running `cargo test` holds.)
pub fn binary(name: &str) -> PathBuf {
    let path = target_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    built(&path, &["bin/src", "engine/src", "models/src", "protocols/src", "approx/src", "mpc-core/src"], "`cargo build -p pann-bin`")
}

/// Runs `pann ARGS`: whether it succeeded, and its stdout then stderr.
pub fn run_pann(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let o = Command::new(pann()).args(args).output().expect("pann runs");
    (o.status.success(), format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// An argument for [`run_pann`].
pub fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

/// `target/<profile>/`, where this test executable's `deps/` lives.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps").to_path_buf()
}

/// `path`, if it exists and is newer than every Rust source under `sources`
/// (files or directories, relative to the repository), which it is built from.
fn built(path: &Path, sources: &[&str], build: &str) -> PathBuf {
    let fix = format!("run `cargo test --workspace --all-targets` or {build} first");
    let built = std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or_else(|_| panic!("{} not found: {fix}", path.display()));
    if let Some(newer) = sources.iter().find_map(|d| newer_source(&repo().join(d), built)) {
        panic!("{} is older than {}: {fix}", path.display(), newer.display());
    }
    path.to_path_buf()
}

/// A `.rs` file at or under `path` modified after `than`, if any.
fn newer_source(path: &Path, than: std::time::SystemTime) -> Option<PathBuf> {
    if path.is_file() {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
        return (modified > than).then(|| path.to_path_buf());
    }
    for entry in std::fs::read_dir(path).ok()?.flatten() {
        let p = entry.path();
        if p.is_dir() {
            if let Some(n) = newer_source(&p, than) {
                return Some(n);
            }
        } else if p.extension().is_some_and(|e| e == "rs") && entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t > than) {
            return Some(p);
        }
    }
    None
}

pub const ALPHA: Alpha = match Alpha::new(9) {
    Ok(a) => a,
    Err(_) => panic!("9 is an alpha"),
};
/// `--timeout` given to every party where a failure is expected (seconds).
pub const TIMEOUT: u64 = 10;
/// How long the test waits for any process before killing it and failing.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// The repository root (this package is the workspace's root package).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn card() -> PathBuf {
    repo().join("models/assets/resnet20-akamaster.card.json")
}

pub fn cifar() -> PathBuf {
    repo().join("models/tests/data/test_batch_first64.bin")
}

pub fn png_image() -> PathBuf {
    repo().join("models/assets/images/00003-0.png")
}

/// A fresh temporary directory, removed on drop.
pub struct Tmp(pub PathBuf);

impl Tmp {
    pub fn new(name: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("pann-bin-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        Tmp(d)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    format!("127.0.0.1:{}", l.local_addr().expect("local addr").port())
}

/// `pann certs --local dir`: one directory per role, each with its own key
/// and its peers' certificates only.
pub fn make_certs(dir: &Path) -> PathBuf {
    let st = Command::new(pann()).args(["certs", "--local"]).arg(dir).stdout(Stdio::null()).status().expect("run pann certs");
    assert!(st.success(), "pann certs failed: {st}");
    for (role, peers) in [("server", ["client", "dealer"]), ("client", ["server", "dealer"]), ("dealer", ["server", "client"])] {
        let mut want: Vec<String> = vec![format!("{role}.crt"), format!("{role}.key")];
        want.extend(peers.iter().map(|p| format!("{p}.crt")));
        want.sort();
        let mut found: Vec<String> =
            std::fs::read_dir(dir.join(role)).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        found.sort();
        assert_eq!(found, want, "the {role}'s directory");
    }
    dir.to_path_buf()
}

/// A child process with its stdout and stderr in files; killed on drop.
pub struct Proc {
    pub name: String,
    pub child: Option<Child>,
    pub out: PathBuf,
    pub err: PathBuf,
}

/// How a process ended.
#[derive(Debug)]
pub struct Ended {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub secs: f64,
}

impl Ended {
    pub fn failed_mentioning(&self, who: &str, words: &[&str]) {
        assert!(!self.status.success(), "the {who} should have failed; stderr:\n{}", self.stderr);
        let low = self.stderr.to_lowercase();
        for w in words {
            assert!(low.contains(&w.to_lowercase()), "the {who}'s stderr should mention {w:?}:\n{}", self.stderr);
        }
        assert!(!low.contains("panicked"), "the {who} panicked:\n{}", self.stderr);
    }
    pub fn failed_mentioning_one_of(&self, who: &str, alternatives: &[&str]) {
        assert!(!self.status.success(), "the {who} should have failed; stderr:\n{}", self.stderr);
        let low = self.stderr.to_lowercase();
        assert!(
            alternatives.iter().any(|w| low.contains(&w.to_lowercase())),
            "the {who}'s stderr should mention one of {alternatives:?}:\n{}",
            self.stderr
        );
        assert!(!low.contains("panicked"), "the {who} panicked:\n{}", self.stderr);
    }
    /// Neither output names any of `words` (secrets of another role).
    pub fn never_mentions(&self, who: &str, words: &[&str]) {
        for w in words {
            for (stream, text) in [("stderr", &self.stderr), ("stdout", &self.stdout)] {
                assert!(!text.to_lowercase().contains(&w.to_lowercase()), "the {who}'s {stream} mentions {w:?}:\n{text}");
            }
        }
    }
    pub fn succeeded(&self, who: &str) {
        assert!(self.status.success(), "the {who} failed ({}); stderr:\n{}\nstdout:\n{}", self.status, self.stderr, self.stdout);
    }
}

impl Proc {
    pub fn spawn(dir: &Path, name: &str, cmd: &mut Command) -> Proc {
        let out = dir.join(format!("{name}.stdout"));
        let err = dir.join(format!("{name}.stderr"));
        cmd.env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::from(File::create(&out).expect("stdout file")))
            .stderr(Stdio::from(File::create(&err).expect("stderr file")));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawning the {name}: {e}"));
        Proc { name: name.into(), child: Some(child), out, err }
    }

    pub fn stderr_now(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Wait until the process exits; kill it and fail the test after `deadline`.
    pub fn wait(&mut self, started: Instant, deadline: Duration) -> Ended {
        let child = self.child.as_mut().expect("still running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Ended {
                    status,
                    stdout: std::fs::read_to_string(&self.out).unwrap_or_default(),
                    stderr: self.stderr_now(),
                    secs: started.elapsed().as_secs_f64(),
                };
            }
            if started.elapsed() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                panic!("the {} hung: still running after {:?}; stderr so far:\n{}", self.name, deadline, self.stderr_now());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait (at most `deadline`) for `text` to appear on the process's stderr.
    pub fn wait_for_stderr(&self, text: &str, deadline: Duration) {
        self.wait_for_stderr_times(text, 1, deadline);
    }

    /// Wait until stderr holds `text` at least `times` times.
    pub fn wait_for_stderr_times(&self, text: &str, times: usize, deadline: Duration) {
        let t0 = Instant::now();
        while self.stderr_now().matches(text).count() < times {
            assert!(t0.elapsed() < deadline, "the {} never printed {text:?} {times} time(s); stderr:\n{}", self.name, self.stderr_now());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.child = None;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Addresses and certificates of one session.
pub struct Session {
    pub dir: Tmp,
    pub certs: PathBuf,
    pub server: String,
    pub dealer: String,
    /// `--timeout` of every party.
    pub timeout: u64,
}

impl Session {
    pub fn new(name: &str) -> Session {
        let dir = Tmp::new(name);
        let certs = make_certs(&dir.path().join("certs"));
        Session { dir, certs, server: free_addr(), dealer: free_addr(), timeout: TIMEOUT }
    }

    /// A session that must succeed: a longer `--timeout`, so that a loaded
    /// machine does not turn a slow phase into a failure (the server waits
    /// through the client's offline phase, the dealer through its online one).
    pub fn patient(name: &str) -> Session {
        Session { timeout: 60, ..Session::new(name) }
    }

    /// `pann-party --role ROLE` with ROLE's directory under `certs`.
    pub fn party(&self, role: &str, certs: &Path) -> Command {
        let mut c = Command::new(party());
        c.args(["--role", role, "--timeout", &self.timeout.to_string(), "--certs"])
            .arg(certs.join(role))
            .arg("--report")
            .arg(self.report_path(role));
        // One session per process, as before the roles became services.
        if role != "client" {
            c.args(["--sessions", "1"]);
        }
        c
    }

    pub fn report_path(&self, role: &str) -> PathBuf {
        self.dir.path().join(format!("{role}.json"))
    }

    pub fn dealer(&self) -> Proc {
        Proc::spawn(self.dir.path(), "dealer", self.party("dealer", &self.certs).args(["--listen", &self.dealer]))
    }

    pub fn server(&self, card: &Path, alpha: Alpha) -> Proc {
        self.server_with(card, alpha, &[])
    }

    /// A server with `args` after the common ones (limits, ...).
    pub fn server_with(&self, card: &Path, alpha: Alpha, args: &[&str]) -> Proc {
        let mut c = self.party("server", &self.certs);
        c.args(["--listen", &self.server, "--dealer", &self.dealer, "--alpha", &alpha.to_string(), "--model"]).arg(card).args(args);
        Proc::spawn(self.dir.path(), "server", &mut c)
    }

    /// A dealer with `args` after the common ones.
    pub fn dealer_with(&self, args: &[&str]) -> Proc {
        Proc::spawn(self.dir.path(), "dealer", self.party("dealer", &self.certs).args(["--listen", &self.dealer]).args(args))
    }

    /// A client with `args` after the common ones (input, alpha, ...).
    pub fn client_with(&self, certs: &Path, args: &[&str], input: &[&Path]) -> Proc {
        let mut c = self.party("client", certs);
        c.args(["--connect", &self.server, "--dealer", &self.dealer]).args(args).arg("--input").args(input);
        Proc::spawn(self.dir.path(), "client", &mut c)
    }

    pub fn report(&self, role: &str) -> serde_json::Value {
        let p = self.report_path(role);
        let b = std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
        serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
    }
}

/// Wait for all three; returns (dealer, server, client).
pub fn wait_all(d: &mut Proc, s: &mut Proc, c: &mut Proc, t0: Instant) -> (Ended, Ended, Ended) {
    let ce = c.wait(t0, DEADLINE);
    let se = s.wait(t0, DEADLINE);
    let de = d.wait(t0, DEADLINE);
    for (who, e) in [("client", &ce), ("server", &se), ("dealer", &de)] {
        eprintln!("--- {who}: {} after {:.1} s; stderr:\n{}", e.status, e.secs, e.stderr.trim_end());
    }
    (de, se, ce)
}

/// The in-process fixed-point reference (the oracle of the secure
/// computation) on raw images, with the card's bounds, in batches of `batch`.
pub fn reference(raw: &[Vec<u8>], batch: usize) -> (String, Vec<Vec<f64>>) {
    reference_of(&card(), Some(ALPHA), raw, batch)
}

/// As [`reference`] for any card, at uniform `alpha` or (None) at the card's per-layer alphas.
pub fn reference_of(card: &Path, alpha: Option<Alpha>, raw: &[Vec<u8>], batch: usize) -> (String, Vec<Vec<f64>>) {
    let m = LoadedModel::load(card).expect("the model loads");
    let public = PublicModel::new(&m.model, &m.card.input, &m.card.relu_bounds, SecureConfig::new(alpha.unwrap_or(m.card.default_alpha)))
        .expect("public model");
    let public = if alpha.is_none() { public.with_alphas(m.card.relu_alphas.clone()).expect("alphas") } else { public };
    let public = public.with_logit_range(m.card.logit_range).expect("logit range");
    let plan = Plan::compile(Arc::new(public.clone()), batch).expect("plan");
    let weights = ServerWeights::encode(&plan, &m.model).expect("weights");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut out = Vec::new();
    for chunk in raw.chunks(batch) {
        let mut x: Vec<f64> = chunk.iter().flat_map(|r| m.card.input.normalise(r)).collect();
        x.resize(plan.len_of(0), 0.0);
        let mut clear = ClearBackend::new(&weights);
        let y = rt.block_on(run_plan(&plan, Some(&weights), &mut clear, plan.encode_input(&x).expect("encode"), None)).expect("reference");
        assert!(clear.in_range(), "the reference saw values out of range: {} openings, {} wraps", clear.out_of_range, clear.wrapped);
        out.extend(plan.decode_output(&y).chunks(10).take(chunk.len()).map(|c| c.to_vec()));
    }
    (public.digest(), out)
}

pub fn argmax(v: &[f64]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("non-empty").0
}

/// The client's report against the reference: same classes, logits within 2e-2.
pub fn check_predictions(report: &serde_json::Value, reference: &[Vec<f64>], labels: &[Option<u8>]) {
    let preds = report["predictions"].as_array().expect("the client's report has predictions");
    assert_eq!(preds.len(), reference.len());
    for (i, (p, r)) in preds.iter().zip(reference).enumerate() {
        let logits: Vec<f64> = serde_json::from_value(p["logits"].clone()).expect("logits");
        assert_eq!(logits.len(), 10);
        let class = p["class"].as_u64().expect("class") as usize;
        assert_eq!(class, argmax(r), "image {i}: secure class {class}, reference {}", argmax(r));
        assert_eq!(class, argmax(&logits));
        for (a, b) in logits.iter().zip(r) {
            assert!((a - b).abs() < 2e-2, "image {i}: secure logit {a} vs reference {b}");
        }
        assert_eq!(p["label"].as_u64().map(|l| l as u8), labels[i], "image {i}: label");
    }
}

/// Nothing the client learns appears in the server's or the dealer's report.
pub fn check_no_outputs(report: &serde_json::Value, who: &str) {
    let text = report.to_string();
    assert!(report.get("predictions").is_none() && !text.contains("logits"), "the {who}'s report holds outputs: {text:.400}");
}
