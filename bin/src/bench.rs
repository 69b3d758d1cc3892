//! `pann bench`: measured costs of secure inference (three processes over
//! TLS on loopback), and a check of the secure predictions against the
//! plaintext fixed-point reference. Every byte and round comes from the
//! parties' channel meters; latencies are medians over batches.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use pann_approx::{Alpha, PER_LAYER_PREFIX};
use pann_engine::{run_plan, ClearBackend, Plan, PublicModel, SecureConfig, ServerWeights};
use pann_models::{ImageSet, LoadedModel};
use pann_mpc_core::{Meter, Phase};
use serde::{Deserialize, Serialize};

use crate::launch::Session;
use crate::report::{argmax, Prediction};

/// One measured configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchRow {
    /// Network name (`loopback`, `relay0`, `lan`, `wan`, ...).
    pub net: String,
    /// The uniform alpha, or `None` (written as 0) for the card's per-layer
    /// alphas (see `precision`).
    #[serde(with = "crate::report::alpha_or_zero")]
    pub alpha: Option<Alpha>,
    /// As agreed in the handshake: `"9"` or `"per-layer:4,5,..."`.
    #[serde(default)]
    pub precision: String,
    /// Images per protocol run (the client's `--batch`).
    pub batch: usize,
    /// Images classified per session.
    pub images: usize,
    /// Protocol runs (batches) measured, summed over the merged sessions.
    pub runs: usize,
    /// Per image, both directions, from the client's meter of its channel to the server.
    pub online_bytes_per_image: f64,
    /// Per image, dealer to client (party 0 expands its material locally).
    pub offline_bytes_per_image: f64,
    /// Rounds of one protocol run (a batch), online.
    pub online_rounds_per_run: f64,
    /// Per run, the larger of the two directions of the client-server link (bytes).
    pub online_max_direction_bytes_per_run: f64,
    /// Per run, the larger of the two directions of the client-dealer link
    /// in the offline phase (bytes; the dealer-to-client one in practice).
    pub offline_max_direction_bytes_per_run: f64,
    /// Offline rounds per run at the client's channel to the dealer.
    pub offline_rounds_per_run: f64,
    /// Median over runs of the online wall time of a run (s).
    pub online_s_per_run: f64,
    /// Every run's online wall time (s), over all repetitions.
    #[serde(default)]
    pub online_s_runs: Vec<f64>,
    /// Every run's offline wall time (s): the client's wait for material
    /// during the run, over all repetitions.
    #[serde(default)]
    pub offline_s_runs: Vec<f64>,
    /// Sessions (process launches) merged into this row.
    #[serde(default = "one")]
    pub sessions: usize,
    /// `online_s_per_run` per image of the batch, in milliseconds.
    pub online_ms_per_image: f64,
    /// Median over runs of the offline wall time of a run (s).
    pub offline_s_per_run: f64,
    /// Setup-phase bytes of one session, metered at the client: its channels
    /// to the server and to the dealer, both directions.
    pub setup_bytes: u64,
    /// Per layer (first run): online bytes per image (both directions) and rounds.
    pub layers: Vec<(String, f64, u64)>,
    /// Secure vs fixed-point reference, when verified.
    pub verified: Option<Verification>,
    /// Physical lower bound on this network (emulated networks only).
    pub bound: Option<Bound>,
}

/// Lower bound of the online phase of a run on an emulated network:
/// serialisation of the busier direction of the client-server link at the
/// link rate + rounds x one-way delay + the local compute of the same
/// configuration measured on direct loopback in the same invocation.
///
/// Rounds are counted by each party's channel as "a receive after a send";
/// the two parties mostly send at the same time and then wait for each
/// other, so a round costs one one-way delay on the critical path, not a
/// full RTT. The RTT form (`online_bound_rtt_s`, rounds x RTT) is recorded
/// too, as the issue states it; measured runs beat it, which shows it is not
/// a lower bound for this protocol.
///
/// The offline phase has no rounds: the dealer streams correlated
/// randomness ahead of the client (during setup and the previous run's
/// online phase), so its per-run wait is not bounded by bytes / rate; only
/// the transfer time of its bytes is recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Bound {
    /// Round-trip time of the emulated link (ms).
    pub rtt_ms: f64,
    /// Rate of each direction of the link (Mbit/s; `None`: unlimited).
    pub rate_mbit: Option<f64>,
    /// Local compute: online s/run of the same configuration on direct loopback.
    pub online_compute_s: f64,
    /// The busier direction's online bytes per run / rate (s).
    pub online_transfer_s: f64,
    /// rounds x RTT / 2.
    pub online_rounds_s: f64,
    /// compute + transfer + rounds x RTT / 2 (s).
    pub online_bound_s: f64,
    /// Measured online s/run over the bound.
    pub online_ratio: f64,
    /// compute + transfer + rounds x RTT (the form).
    pub online_bound_rtt_s: f64,
    /// Measured online s/run over `online_bound_rtt_s`.
    pub online_ratio_rtt: f64,
    /// The emulator's own overhead on this configuration: the `relay0` run
    /// (relay, no delay, no limit) minus direct loopback, when measured.
    pub relay_overhead_s: Option<f64>,
    /// Measured over (bound + relay overhead).
    pub online_ratio_with_relay_overhead: Option<f64>,
    /// Offline bytes (dealer to client) / rate, per run.
    pub offline_transfer_s: f64,
}

impl Bound {
    /// Bound for `row` (measured on `link`) given `reference`, the same
    /// configuration on direct loopback, and `relay0`, through the relay with
    /// no delay and no rate limit.
    pub fn new(row: &BenchRow, reference: &BenchRow, relay0: Option<&BenchRow>, link: &crate::netem::LinkSpec) -> Bound {
        let rtt = link.rtt_ms / 1e3;
        let transfer = link.transfer_s(row.online_max_direction_bytes_per_run);
        let rounds = row.online_rounds_per_run * rtt / 2.0;
        let bound = reference.online_s_per_run + transfer + rounds;
        let bound_rtt = reference.online_s_per_run + transfer + row.online_rounds_per_run * rtt;
        let overhead = relay0.map(|r| r.online_s_per_run - reference.online_s_per_run);
        Bound {
            rtt_ms: link.rtt_ms,
            rate_mbit: link.rate_mbit,
            online_compute_s: reference.online_s_per_run,
            online_transfer_s: transfer,
            online_rounds_s: rounds,
            online_bound_s: bound,
            online_ratio: row.online_s_per_run / bound,
            online_bound_rtt_s: bound_rtt,
            online_ratio_rtt: row.online_s_per_run / bound_rtt,
            relay_overhead_s: overhead,
            online_ratio_with_relay_overhead: overhead.map(|o| row.online_s_per_run / (bound + o.max(0.0))),
            offline_transfer_s: link.transfer_s(row.offline_max_direction_bytes_per_run),
        }
    }
}

/// Secure predictions against the fixed-point reference (`--verify`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Verification {
    /// Images whose secure prediction is the reference's.
    pub same_prediction: usize,
    /// Images compared.
    pub images: usize,
    /// Largest |secure logit - reference logit| over all images and classes.
    pub max_abs_logit_diff: f64,
    /// Fraction of the images the secure run classifies correctly (first
    /// session only when rows are merged).
    pub secure_accuracy: f64,
    /// Fraction the reference classifies correctly (first session only when merged).
    pub reference_accuracy: f64,
}

fn one() -> usize {
    1
}

impl BenchRow {
    /// Add the runs of another session of the same configuration (same
    /// metered bytes and rounds); medians are over all runs.
    pub fn merge(&mut self, other: &BenchRow) {
        self.online_s_runs.extend(&other.online_s_runs);
        self.offline_s_runs.extend(&other.offline_s_runs);
        self.runs += other.runs;
        self.sessions += other.sessions;
        self.online_s_per_run = median(self.online_s_runs.clone());
        self.online_ms_per_image = 1e3 * self.online_s_per_run / self.batch as f64;
        self.offline_s_per_run = median(self.offline_s_runs.clone());
        if let (Some(a), Some(b)) = (&mut self.verified, &other.verified) {
            a.same_prediction += b.same_prediction;
            a.images += b.images;
            a.max_abs_logit_diff = a.max_abs_logit_diff.max(b.max_abs_logit_diff);
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// The public model at uniform `alpha`, or (`None`) at the card's own alphas.
pub fn public_model(loaded: &LoadedModel, alpha: Option<Alpha>) -> Result<PublicModel> {
    let c = &loaded.card;
    if let Some(a) = alpha {
        c.check_alpha(a)?;
    }
    let public = PublicModel::new(&loaded.model, &c.input, &c.relu_bounds, SecureConfig::new(alpha.unwrap_or(c.default_alpha)))?;
    let public = public.with_logit_range(c.logit_range)?;
    Ok(if alpha.is_none() { public.with_alphas(c.relu_alphas.clone())? } else { public })
}

/// Logits of the fixed-point reference (the plan on clear ring values).
pub fn reference_logits(loaded: &LoadedModel, alpha: Option<Alpha>, data: &ImageSet, first: usize, count: usize) -> Result<Vec<Vec<f64>>> {
    let public = public_model(loaded, alpha)?;
    let plan = Plan::compile(Arc::new(public), 1)?;
    let weights = ServerWeights::encode(&plan, &loaded.model)?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let classes = plan.network().output_shape().len();
    (first..first + count)
        .map(|i| {
            let x = plan.encode_input(&loaded.card.input.normalise(data.image(i)))?;
            let mut clear = ClearBackend::new(&weights);
            let y = rt.block_on(run_plan(&plan, Some(&weights), &mut clear, x, None))?;
            anyhow::ensure!(
                clear.in_range(),
                "image {i}: {} opened values left the admissible range, {} values wrapped",
                clear.out_of_range,
                clear.wrapped
            );
            Ok(plan.decode_output(&y)[..classes].to_vec())
        })
        .collect()
}

/// Measure one (alpha, batch) configuration.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    dir: &Path,
    card: &Path,
    data_path: &Path,
    alpha: Option<Alpha>,
    batch: usize,
    first: usize,
    count: usize,
    verify: bool,
    insecure_tcp: bool,
    link: &crate::netem::LinkSpec,
) -> Result<BenchRow> {
    let precision = public_model(&LoadedModel::load(card)?, alpha)?.precision();
    let session = Session {
        dir,
        card,
        precision: precision.clone(),
        input: data_path,
        first,
        count,
        batch,
        insecure_tcp,
        quiet: true,
        timeout: Duration::from_secs(600),
        link: Some(link),
    };
    let report = session.run().with_context(|| format!("secure run at precision {precision}, batch {batch}"))?;
    let server: Meter = serde_json::from_value(report["meters"]["server"].clone())?;
    let dealer: Meter = serde_json::from_value(report["meters"]["dealer"].clone())?;
    let batches = report["batches"].as_array().cloned().unwrap_or_default();
    let runs = batches.len().max(1);
    let field = |k: &str| batches.iter().filter_map(|b| b[k].as_f64()).collect::<Vec<_>>();
    let online = server.phase_total(Phase::Online);
    let offline = dealer.phase_total(Phase::Offline);
    let n = count as f64;
    let per_run = online.rounds as f64 / runs as f64;
    let steps: Vec<(String, f64)> =
        serde_json::from_value(batches.first().map(|b| b["steps"].clone()).unwrap_or_default()).unwrap_or_default();
    let labels: std::collections::BTreeMap<String, pann_mpc_core::meter::Cost> = server.labels(Phase::Online).into_iter().collect();
    let layers = steps
        .iter()
        .filter_map(|(name, _)| labels.get(name).map(|c| (name.clone(), c.bytes() as f64 / n, c.rounds / runs as u64)))
        .collect();
    let online_s = median(field("online_s"));
    let verified = if verify {
        let loaded = LoadedModel::load(card)?;
        let data = ImageSet::read_file(data_path)?;
        let reference = reference_logits(&loaded, alpha, &data, first, count)?;
        let preds: Vec<Prediction> = serde_json::from_value(report["predictions"].clone())?;
        let mut v = Verification {
            same_prediction: 0,
            images: preds.len(),
            max_abs_logit_diff: 0.0,
            secure_accuracy: 0.0,
            reference_accuracy: 0.0,
        };
        let (mut sc, mut rc) = (0usize, 0usize);
        for (i, (p, r)) in preds.iter().zip(&reference).enumerate() {
            let label = data.labels[first + i] as usize;
            v.same_prediction += usize::from(p.class == Some(argmax(r)));
            sc += usize::from(p.class == Some(label));
            rc += usize::from(argmax(r) == label);
            let d = p.logits.iter().zip(r).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            v.max_abs_logit_diff = v.max_abs_logit_diff.max(d);
        }
        v.secure_accuracy = sc as f64 / preds.len().max(1) as f64;
        v.reference_accuracy = rc as f64 / preds.len().max(1) as f64;
        Some(v)
    } else {
        None
    };
    Ok(BenchRow {
        net: link.name.clone(),
        alpha,
        precision: precision.to_string(),
        batch,
        images: count,
        runs,
        online_bytes_per_image: online.bytes() as f64 / n,
        offline_bytes_per_image: offline.bytes() as f64 / n,
        online_rounds_per_run: per_run,
        online_max_direction_bytes_per_run: online.bytes_sent.max(online.bytes_recv) as f64 / runs as f64,
        offline_max_direction_bytes_per_run: offline.bytes_sent.max(offline.bytes_recv) as f64 / runs as f64,
        offline_rounds_per_run: offline.rounds as f64 / runs as f64,
        online_s_per_run: online_s,
        online_s_runs: field("online_s"),
        offline_s_runs: field("offline_s"),
        sessions: 1,
        online_ms_per_image: 1e3 * online_s / batch as f64,
        offline_s_per_run: median(field("offline_s")),
        setup_bytes: server.phase_total(Phase::Setup).bytes() + dealer.phase_total(Phase::Setup).bytes(),
        layers,
        verified,
        bound: None,
    })
}

/// The machine and code a result was measured on.
pub fn provenance() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_default();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    serde_json::json!({
        "loadavg_at_start": loadavg,
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "commit": commit,
        "date": date,
    })
}

/// Markdown table of rows.
pub fn markdown(rows: &[BenchRow]) -> String {
    let mut s = String::from(
        "| net | alpha | batch | images | online MB/image | online rounds/run | online s/run (median) | online bound s/run | measured/bound | measured/(rounds x RTT form) | measured/(bound + relay overhead) | offline MB/image | offline s/run (wait at the client) | same prediction as reference | max abs logit diff |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let (same, diff) = match &r.verified {
            Some(v) => (format!("{} / {}", v.same_prediction, v.images), format!("{:.4}", v.max_abs_logit_diff)),
            None => ("-".into(), "-".into()),
        };
        let (ob, or, fb, fr) = match &r.bound {
            Some(b) => (
                format!("{:.3}", b.online_bound_s),
                format!("{:.2}", b.online_ratio),
                format!("{:.2}", b.online_ratio_rtt),
                b.online_ratio_with_relay_overhead.map_or("-".into(), |x| format!("{x:.2}")),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        s += &format!(
            "| {} | {} | {} | {} | {:.2} | {:.0} | {:.3} | {} | {} | {} | {} | {:.2} | {:.3} | {} | {} |\n",
            r.net,
            match r.alpha {
                None => format!("per-layer ({})", r.precision.trim_start_matches(PER_LAYER_PREFIX)),
                Some(a) => a.to_string(),
            },
            r.batch,
            r.images,
            r.online_bytes_per_image / 1e6,
            r.online_rounds_per_run,
            r.online_s_per_run,
            ob,
            or,
            fb,
            fr,
            r.offline_bytes_per_image / 1e6,
            r.offline_s_per_run,
            same,
            diff
        );
    }
    s
}

/// Default data: the CIFAR-10 test set beside the checkout, if present.
pub fn default_data() -> Option<PathBuf> {
    let p = PathBuf::from("../shared/data/cifar-10-jpeg/test_batch.bin");
    p.exists().then_some(p)
}
