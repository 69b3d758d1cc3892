//! A load generator for a running PANN server and dealer (issue 13,
//! docs/results/serving.md): it runs CLIENT sessions in-process
//! ([`pann_bin::service::client_session`] over [`pann_bin::party::Net`] with
//! the client's certificate directory and the default session limits) and
//! measures, for each concurrency level `c`, N requests spread over `c`
//! concurrent tokio tasks (each task takes the next request until N are
//! done). Each request is one session with K images; the records rotate
//! through the input file (request `i` of a level uses records `i*K ..
//! i*K+K` modulo the file's length).
//!
//! Per level it reports: wall time, throughput (images/s), the median, the
//! 95th percentile and the largest per-request latency (from the connection
//! to the server until the logits are known), failed requests, and wrong
//! predictions: every image's predicted class is compared with the
//! in-process fixed-point reference (the oracle of the secure computation,
//! computed once per distinct image as `reference_of` in
//! tests/common/mod.rs does: the card's PublicModel at ALPHA, its Plan,
//! ServerWeights, ClearBackend, run_plan). The client pins the digest of the
//! model the server deploys from the same card (`--expect-model`).
//!
//! It prints a markdown table on stdout and, with --json, writes the figures
//! (with every latency) as JSON. It exits 0 when every request succeeded
//! and every prediction matched the reference, 1 otherwise (after printing).
//!
//! The reference costs about half a second per record; `--reference-only`
//! computes it for every record of --input once and prints it as JSON (the
//! classes are what scripts/serving-faults.sh checks its clients against),
//! and `--reference FILE` reuses such a file (checked against the card's
//! digest at ALPHA and the input's SHA-256).
//!
//! ```text
//! cargo build --release -p pann-bin --examples --bins
//! target/release/pann certs --local /tmp/certs
//! target/release/pann-party --role dealer --listen 127.0.0.1:7002 --certs /tmp/certs/dealer &
//! target/release/pann-party --role server --listen 127.0.0.1:7001 --dealer 127.0.0.1:7002 --alpha 9 \
//!     --model models/assets/resnet20-akamaster.card.json --certs /tmp/certs/server --max-sessions 8 --queue 16 &
//! target/release/examples/load --server 127.0.0.1:7001 --dealer 127.0.0.1:7002 --certs /tmp/certs/client \
//!     --alpha 9 --concurrency 1,2,4,8 --requests 16 --images-per-request 1 --json /tmp/load.json
//! target/release/examples/load --reference-only --alpha 9 > /tmp/reference.json
//! target/release/examples/load --server 127.0.0.1:7001 --dealer 127.0.0.1:7002 --certs /tmp/certs/client \
//!     --alpha 9 --concurrency 8 --requests 64 --reference /tmp/reference.json
//! ```
//!
//! `scripts/serving.sh load` runs exactly this on loopback and writes
//! docs/results/serving-load.md and .json.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use pann_approx::{Alpha, Precision};
use pann_bin::party::{public_model_digest, Net};
use pann_bin::service::client_session;
use pann_engine::{run_plan, ClearBackend, Plan, PublicModel, SecureConfig, ServerWeights, SessionLimits};
use pann_models::{sha256_hex, ImageSet, LoadedModel};

/// Load generator: concurrent in-process client sessions against a running
/// server and dealer, every prediction checked against the fixed-point
/// reference.
#[derive(Parser, Debug)]
#[command(name = "load")]
struct Args {
    /// The server's address.
    #[arg(long, value_name = "HOST:PORT", required_unless_present = "reference_only")]
    server: Option<String>,
    /// The dealer's address.
    #[arg(long, value_name = "HOST:PORT", required_unless_present = "reference_only")]
    dealer: Option<String>,
    /// The client's certificate directory (`pann certs --local DIR` writes DIR/client).
    #[arg(long, value_name = "DIR", required_unless_present = "reference_only")]
    certs: Option<PathBuf>,
    /// The precision the server runs at (uniform alpha).
    #[arg(long, default_value = "9")]
    alpha: Alpha,
    /// CIFAR-10 binary records; requests rotate through them.
    #[arg(long, value_name = "FILE", default_value = "models/tests/data/test_batch_first64.bin")]
    input: PathBuf,
    /// The model card the server serves (for the reference and the pinned digest).
    #[arg(long, value_name = "CARD.json", default_value = "models/assets/resnet20-akamaster.card.json")]
    card: PathBuf,
    /// Concurrency levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    concurrency: Vec<usize>,
    /// Requests (sessions) per level.
    #[arg(long, default_value_t = 16)]
    requests: usize,
    /// Images per request (one batch of this size).
    #[arg(long, default_value_t = 1)]
    images_per_request: usize,
    /// The client's --timeout, in seconds (connect and each message).
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Pause between one client's requests, in milliseconds (steady, light
    /// traffic: a dealer's --pool refills in between).
    #[arg(long, default_value_t = 0)]
    pause_ms: u64,
    /// Write the figures (and every latency) here as JSON.
    #[arg(long, value_name = "OUT.json")]
    json: Option<PathBuf>,
    /// Compute the reference of every record of --input, write it as JSON
    /// to stdout (card, alpha, input, model digest, logits and class per
    /// record) and exit; connects to nobody.
    #[arg(long)]
    reference_only: bool,
    /// Take the reference from this file (written by --reference-only for
    /// the same card, alpha and input) instead of computing it.
    #[arg(long, value_name = "REF.json", conflicts_with = "reference_only")]
    reference: Option<PathBuf>,
}

/// The reference as --reference-only writes it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct RefFile {
    card: PathBuf,
    alpha: Alpha,
    input: PathBuf,
    /// SHA-256 of the input file.
    input_sha256: String,
    model_digest: String,
    classes: Vec<usize>,
    logits: Vec<Vec<f64>>,
}

/// One request's result.
#[derive(Clone, Debug)]
struct Sample {
    request: usize,
    latency_s: f64,
    ok: bool,
    /// Images whose class differs from the reference's.
    wrong: usize,
    /// Largest |secure logit - reference logit| over the request's images.
    max_logit_diff: f64,
    error: Option<String>,
}

/// One level's figures.
#[derive(Debug, serde::Serialize)]
struct Level {
    concurrency: usize,
    requests: usize,
    images_per_request: usize,
    ok: usize,
    failed: usize,
    images_ok: usize,
    wrong_predictions: usize,
    max_logit_diff: f64,
    wall_s: f64,
    throughput_images_per_s: f64,
    latency_median_s: f64,
    latency_p95_s: f64,
    latency_max_s: f64,
    latencies_s: Vec<f64>,
    errors: Vec<String>,
}

fn argmax(v: &[f64]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |p| p.0)
}

/// Nearest-rank percentile of sorted values (p in 0..=100).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The in-process fixed-point reference of each image in `raw`, one image
/// at a time, exactly as `reference_of` in tests/common/mod.rs (uniform
/// alpha). Returns the reference's model digest and the logits.
fn reference(card: &Path, alpha: Alpha, raw: &[Vec<u8>]) -> Result<(String, Vec<Vec<f64>>)> {
    let m = LoadedModel::load(card).with_context(|| format!("loading {}", card.display()))?;
    let public =
        PublicModel::new(&m.model, &m.card.input, &m.card.relu_bounds, SecureConfig::new(alpha))?.with_logit_range(m.card.logit_range)?;
    let plan = Plan::compile(Arc::new(public.clone()), 1)?;
    let weights = ServerWeights::encode(&plan, &m.model)?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let mut out = Vec::with_capacity(raw.len());
    for (i, img) in raw.iter().enumerate() {
        let mut x: Vec<f64> = m.card.input.normalise(img);
        x.resize(plan.len_of(0), 0.0);
        let mut clear = ClearBackend::new(&weights);
        let y = rt.block_on(run_plan(&plan, Some(&weights), &mut clear, plan.encode_input(&x)?, None))?;
        if !clear.in_range() {
            bail!("the reference of record {i} saw values out of range: {} openings, {} wraps", clear.out_of_range, clear.wrapped);
        }
        out.push(plan.decode_output(&y).chunks(10).next().context("no output")?.to_vec());
    }
    Ok((public.digest(), out))
}

struct Shared {
    net: Net,
    server: String,
    dealer: String,
    precision: Precision,
    digest: String,
    images: Vec<Vec<u8>>,
    refs: Vec<Vec<f64>>,
    k: usize,
}

impl Shared {
    fn records(&self, request: usize) -> Vec<usize> {
        (0..self.k).map(|j| (request * self.k + j) % self.images.len()).collect()
    }

    async fn one(&self, request: usize) -> Sample {
        let recs = self.records(request);
        let imgs: Vec<Vec<u8>> = recs.iter().map(|&r| self.images[r].clone()).collect();
        let t0 = Instant::now();
        let res = client_session(&self.net, &self.server, &self.dealer, &self.precision, Some(&self.digest), &imgs, self.k).await;
        let latency_s = t0.elapsed().as_secs_f64();
        match res {
            Ok((out, _, _)) => {
                let mut wrong = 0;
                let mut diff = 0f64;
                if out.logits.len() != recs.len() {
                    return Sample {
                        request,
                        latency_s,
                        ok: false,
                        wrong: 0,
                        max_logit_diff: f64::NAN,
                        error: Some(format!("{} logits for {} images", out.logits.len(), recs.len())),
                    };
                }
                for (l, &r) in out.logits.iter().zip(&recs) {
                    let want = &self.refs[r];
                    if argmax(l) != argmax(want) {
                        wrong += 1;
                    }
                    for (a, b) in l.iter().zip(want) {
                        diff = diff.max((a - b).abs());
                    }
                }
                Sample { request, latency_s, ok: true, wrong, max_logit_diff: diff, error: None }
            }
            Err(e) => Sample { request, latency_s, ok: false, wrong: 0, max_logit_diff: 0.0, error: Some(format!("{e:#}")) },
        }
    }
}

async fn level(shared: Arc<Shared>, c: usize, n: usize, pause: Duration) -> Level {
    let next = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..c {
        let (shared, next, samples) = (Arc::clone(&shared), Arc::clone(&next), Arc::clone(&samples));
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if i >= c && !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                let s = shared.one(i).await;
                if let Some(e) = &s.error {
                    eprintln!("load: c={c} request {i}: failed after {:.2} s: {e}", s.latency_s);
                }
                samples.lock().unwrap_or_else(|p| p.into_inner()).push(s);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            eprintln!("load: a client task failed: {e}");
        }
    }
    let wall_s = t0.elapsed().as_secs_f64();
    let mut samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|p| p.into_inner()));
    samples.sort_by_key(|s| s.request);
    let ok: Vec<&Sample> = samples.iter().filter(|s| s.ok).collect();
    let mut lat: Vec<f64> = ok.iter().map(|s| s.latency_s).collect();
    lat.sort_by(f64::total_cmp);
    let images_ok = ok.len() * shared.k;
    Level {
        concurrency: c,
        requests: n,
        images_per_request: shared.k,
        ok: ok.len(),
        // A task that panicked leaves no sample: count it failed.
        failed: n - ok.len(),
        images_ok,
        wrong_predictions: ok.iter().map(|s| s.wrong).sum(),
        max_logit_diff: ok.iter().map(|s| s.max_logit_diff).fold(0.0, f64::max),
        wall_s,
        throughput_images_per_s: images_ok as f64 / wall_s,
        latency_median_s: median(&lat),
        latency_p95_s: percentile(&lat, 95.0),
        latency_max_s: lat.last().copied().unwrap_or(f64::NAN),
        latencies_s: samples.iter().filter(|s| s.ok).map(|s| s.latency_s).collect(),
        errors: samples.iter().filter_map(|s| s.error.clone()).collect(),
    }
}

fn main() -> Result<()> {
    let a = Args::parse();
    if a.concurrency.is_empty() || a.concurrency.contains(&0) {
        bail!("--concurrency needs positive levels, e.g. 1,2,4,8");
    }
    if a.requests == 0 || a.images_per_request == 0 {
        bail!("--requests and --images-per-request must be positive");
    }
    let data = ImageSet::read_file(&a.input).with_context(|| format!("reading {}", a.input.display()))?;
    if data.is_empty() {
        bail!("{} holds no records", a.input.display());
    }
    let images: Vec<Vec<u8>> = (0..data.len()).map(|i| data.image(i).to_vec()).collect();
    let digest = public_model_digest(&a.card, Some(a.alpha))?;
    let input_sha256 = sha256_hex(&std::fs::read(&a.input).with_context(|| format!("reading {}", a.input.display()))?);
    if a.reference_only {
        let t = Instant::now();
        let (ref_digest, logits) = reference(&a.card, a.alpha, &images)?;
        eprintln!("load: fixed-point reference of {} record(s) in {:.1} s", images.len(), t.elapsed().as_secs_f64());
        if digest != ref_digest {
            bail!("the reference's model digest {ref_digest} differs from the served model's {digest}");
        }
        let r = RefFile {
            card: a.card,
            alpha: a.alpha,
            input: a.input,
            input_sha256,
            model_digest: digest,
            classes: logits.iter().map(|l| argmax(l)).collect(),
            logits,
        };
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    let (Some(server), Some(dealer), Some(certs)) = (a.server.clone(), a.dealer.clone(), a.certs.clone()) else {
        bail!("--server, --dealer and --certs are needed");
    };
    // The distinct records any level uses.
    let used = (a.requests * a.images_per_request).min(images.len());
    let mut refs = match &a.reference {
        Some(path) => {
            let r: RefFile = serde_json::from_slice(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
                .with_context(|| format!("parsing {}", path.display()))?;
            if r.model_digest != digest || r.alpha != a.alpha || r.input_sha256 != input_sha256 || r.logits.len() < used {
                bail!(
                    "{} is the reference of {} record(s) of input {} (SHA-256 {}) and model {} at alpha {}; this run needs {used} of input {} (SHA-256 {input_sha256}) and model {digest} at alpha {}",
                    path.display(),
                    r.logits.len(),
                    r.input.display(),
                    r.input_sha256,
                    r.model_digest,
                    r.alpha,
                    a.input.display(),
                    a.alpha
                );
            }
            eprintln!("load: the fixed-point reference of {used} record(s) from {}", path.display());
            r.logits
        }
        None => {
            let t = Instant::now();
            let (ref_digest, refs) = reference(&a.card, a.alpha, &images[..used])?;
            eprintln!("load: fixed-point reference of {used} record(s) in {:.1} s", t.elapsed().as_secs_f64());
            if digest != ref_digest {
                bail!("the reference's model digest {ref_digest} differs from the served model's {digest}");
            }
            refs
        }
    };
    let images = images[..used].to_vec();
    refs.truncate(used);
    let shared = Arc::new(Shared {
        net: Net {
            certs: Some(certs),
            timeout: Duration::from_secs(a.timeout),
            keepalive: Some(Duration::from_secs(5)),
            limits: SessionLimits::default(),
        },
        server: server.clone(),
        dealer: dealer.clone(),
        precision: a.alpha.into(),
        digest: digest.clone(),
        images,
        refs,
        k: a.images_per_request,
    });
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let max_c = *a.concurrency.iter().max().unwrap_or(&1);
    // A worker thread per concurrent client (a session computes on its
    // task's thread), at least one per core.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(max_c.max(cores)).enable_all().build()?;
    let mut levels = Vec::new();
    for &c in &a.concurrency {
        eprintln!("load: concurrency {c}: {} request(s) of {} image(s)", a.requests, a.images_per_request);
        let l = rt.block_on(level(Arc::clone(&shared), c, a.requests, Duration::from_millis(a.pause_ms)));
        eprintln!(
            "load: concurrency {c}: {} ok, {} failed, {} wrong, {:.1} s, {:.3} images/s, median {:.3} s, p95 {:.3} s",
            l.ok, l.failed, l.wrong_predictions, l.wall_s, l.throughput_images_per_s, l.latency_median_s, l.latency_p95_s
        );
        levels.push(l);
    }
    println!("| concurrency | requests | images/request | ok | failed | wrong predictions | max abs logit diff | wall s | images/s | median latency s | p95 latency s | max latency s |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for l in &levels {
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.2e} | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} |",
            l.concurrency,
            l.requests,
            l.images_per_request,
            l.ok,
            l.failed,
            l.wrong_predictions,
            l.max_logit_diff,
            l.wall_s,
            l.throughput_images_per_s,
            l.latency_median_s,
            l.latency_p95_s,
            l.latency_max_s
        );
    }
    if let Some(path) = &a.json {
        let v = serde_json::json!({
            "server": server,
            "dealer": dealer,
            "alpha": a.alpha,
            "card": a.card,
            "model_digest": digest,
            "input": a.input,
            "distinct_records": used,
            "client_timeout_s": a.timeout,
            "cores": cores,
            "percentile_method": "nearest rank over successful requests; median is the midpoint of the two middle values for an even count",
            "levels": levels,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&v)?).with_context(|| format!("writing {}", path.display()))?;
    }
    let failed: usize = levels.iter().map(|l| l.failed).sum();
    let wrong: usize = levels.iter().map(|l| l.wrong_predictions).sum();
    if failed > 0 || wrong > 0 {
        eprintln!("load: {failed} failed request(s), {wrong} wrong prediction(s)");
        std::process::exit(1);
    }
    Ok(())
}
