//! Mixed precision from the command line: the metered cost of a ReLU per
//! alpha, the metered cost of a whole inference, `pann plan` (per-layer
//! alphas into a card) and `pann frontier` (accuracy against online bytes).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pann_approx::{Alpha, Precision};
use pann_engine::{client_session, dealer_session, server_session, PublicModel, SecureConfig};
use pann_models::planner::{Explored, Objective, PlanOutcome, Planner, ReluCost};
use pann_models::{ImageSet, LoadedModel, PlainExecutor, ReluMode};
use pann_mpc_core::ring::R;
use pann_mpc_core::{Channel, ChannelConfig, Phase};
use pann_protocols::harness::{run_program_pair, DealerMode};
use pann_protocols::{PolyRelu, ReluConfig};
use plotters::prelude::{RGBColor, SeriesLabelPosition};
use serde::{Deserialize, Serialize};

use crate::bench_report::line_plot;

/// Elements per metering run (the size of a ResNet-20 layer-1 ReLU).
const METER_ELEMENTS: usize = 16384;

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

/// Online bytes per element and rounds of one ReLU layer at each alpha, and
/// the dealer's offline bytes per element to party 1, from the meters of a
/// two-party run with a dealer on 16,384 elements (inputs at 54 fractional
/// bits, as in a ResNet plan).
pub fn metered_relu_costs(alphas: &[Alpha]) -> Result<BTreeMap<Alpha, ReluCost>> {
    let rt = runtime()?;
    let mut out = BTreeMap::new();
    for &a in alphas {
        let relu = PolyRelu::new(ReluConfig::new(a, 54)).with_context(|| format!("ReLU at alpha {a}"))?;
        let x: Vec<R> = (0..METER_ELEMENTS).map(|i| ((i as f64 / METER_ELEMENTS as f64 - 0.5) * 2f64.powi(54)) as i64 as u64).collect();
        let run = rt.block_on(run_program_pair(&relu.program, &[x], a.get() as u64, DealerMode::Channel))?;
        let online = run.meter0.phase_total(Phase::Online);
        let offline = run.dealer_meter1.phase_total(Phase::Offline);
        out.insert(
            a,
            ReluCost {
                bytes: online.bytes() as f64 / METER_ELEMENTS as f64,
                rounds: online.rounds as u32,
                offline_bytes: offline.bytes() as f64 / METER_ELEMENTS as f64,
            },
        );
    }
    Ok(out)
}

/// The metered cost of one private inference (batch 1), at the client.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct InferenceCost {
    /// Online bytes between client and server, both directions.
    pub online_bytes: u64,
    /// Online rounds at the client's channel to the server.
    pub online_rounds: u64,
    /// Offline bytes between client and dealer, both directions.
    pub offline_bytes: u64,
}

/// Run server, client and dealer in this process over in-memory channels on
/// one blank image and read the client's meters.
pub fn metered_inference(loaded: &LoadedModel, public: &PublicModel) -> Result<InferenceCost> {
    let rt = runtime()?;
    rt.block_on(async {
        let cfg = ChannelConfig::default();
        let (mut sc, mut cs) = Channel::mem_pair(cfg.clone());
        let (mut sd, mut ds) = Channel::mem_pair(cfg.clone());
        let (mut cd, mut dc) = Channel::mem_pair(cfg);
        let image = vec![vec![0u8; public.network.input_shape().len()]];
        let precision = public.precision();
        let (s, c, d) = tokio::join!(
            server_session(&mut sc, &mut sd, &loaded.model, public),
            client_session(&mut cs, &mut cd, &precision, None, &image, 1),
            dealer_session(&mut dc, &mut ds),
        );
        s?;
        d?;
        let c = c?;
        let online = c.meter_server.phase_total(Phase::Online);
        Ok(InferenceCost {
            online_bytes: online.bytes(),
            online_rounds: online.rounds,
            offline_bytes: c.meter_dealer.phase_total(Phase::Offline).bytes(),
        })
    })
}

/// Normalised images and labels of records `first..first + count` of a CIFAR-10 binary or IDX images file.
pub fn labelled_images(loaded: &LoadedModel, file: &Path, first: usize, count: usize) -> Result<(Vec<Vec<f64>>, Vec<u8>)> {
    let set = ImageSet::read_file(file).with_context(|| format!("reading {}", file.display()))?;
    if first >= set.len() {
        bail!("{} has {} records, --first {first} is past its end", file.display(), set.len());
    }
    let end = (first + count).min(set.len());
    let images = (first..end).map(|i| loaded.card.input.normalise(set.image(i))).collect();
    Ok((images, set.labels[first..end].to_vec()))
}

/// Parse "4-9" or "4,5,7" into alphas (each in 4..=14), ascending.
pub fn parse_alphas(s: &str) -> Result<Vec<Alpha>> {
    let alpha = |t: &str| t.trim().parse::<Alpha>().with_context(|| format!("alphas must lie in 4..=14, got {s:?}"));
    let mut v = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (alpha(a)?, alpha(b)?);
                v.extend(Alpha::all().filter(|x| (a..=b).contains(x)));
            }
            None => v.push(alpha(part)?),
        }
    }
    v.sort_unstable();
    v.dedup();
    if v.is_empty() {
        bail!("alphas must lie in 4..=14, got {s:?}");
    }
    Ok(v)
}

/// Alphas as `--alphas` takes them ("4-9" or "4,5,7", see [`parse_alphas`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlphaList(pub Vec<Alpha>);

impl std::str::FromStr for AlphaList {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        parse_alphas(s).map(AlphaList)
    }
}

/// One alpha of `pann bench --alphas`: `0` stands for the card's own
/// (per-layer) alphas, `None`; anything else must be an alpha in 4..=14.
pub fn parse_bench_alpha(s: &str) -> Result<Option<Alpha>, String> {
    match s.trim() {
        "0" => Ok(None),
        t => t.parse().map(Some).map_err(|e: pann_approx::AlphaError| format!("{e} (or 0 for the card's own alphas)")),
    }
}

/// Options of `pann plan`.
pub struct PlanOptions {
    /// The model card to plan (with calibrated ReLU bounds).
    pub card: PathBuf,
    /// The calibration images: a CIFAR-10 binary or IDX images file.
    pub calib: PathBuf,
    /// First record of `calib` used.
    pub first: usize,
    /// Calibration images used (fewer when `calib` ends first).
    pub count: usize,
    /// Largest accuracy drop allowed below the reference, in percentage points.
    pub max_drop_points: f64,
    /// Candidate alphas.
    pub alphas: Vec<Alpha>,
    /// Online ReLU bytes or rounds: what the planner minimises.
    pub objective: Objective,
    /// The card to write.
    pub out: PathBuf,
    /// Where to write the [`PlanReport`] as JSON, if anywhere.
    pub report: Option<PathBuf>,
    /// A card whose exact-ReLU accuracy on the calibration images is the
    /// reference (e.g. the backbone a fine-tuned model came from).
    pub reference: Option<PathBuf>,
}

/// What `pann plan` writes next to the card (`--report`).
#[derive(Serialize, Deserialize)]
pub struct PlanReport {
    /// The card written.
    pub card: String,
    /// The calibration images (`FILE records A..B`).
    pub calibration: String,
    /// Metered cost of one ReLU element per alpha (online bytes and rounds, offline bytes).
    pub costs: BTreeMap<Alpha, ReluCost>,
    /// The target, as in [`PlanOptions::max_drop_points`].
    pub max_drop_points: f64,
    /// The written card's precision (as a string), what a client passes as `--alpha`.
    pub precision: Precision,
    /// The chosen alphas and every configuration explored.
    pub outcome: PlanOutcome,
}

/// A card written to `out_card` names its weights file `weights` relative to
/// its own directory: copy the file there from beside `src_card` when the
/// two directories differ, so that the new card loads as it is.
pub fn copy_weights_beside(src_card: &Path, out_card: &Path, weights: &str) -> Result<()> {
    let dir = |p: &Path| p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let (src_dir, out_dir) = (dir(src_card), dir(out_card));
    if std::fs::canonicalize(&src_dir).ok() != std::fs::canonicalize(&out_dir).ok() {
        let to = out_dir.join(weights);
        std::fs::copy(src_dir.join(weights), &to).with_context(|| format!("copying the weights to {}", to.display()))?;
    }
    Ok(())
}

/// `pann plan`: per-site alphas into a new card (weights copied beside it
/// when it goes to another directory).
pub fn plan(o: &PlanOptions) -> Result<PlanReport> {
    let loaded = LoadedModel::load(&o.card).with_context(|| format!("loading {}", o.card.display()))?;
    if loaded.card.relu_bounds.is_empty() {
        bail!("{} has no ReLU bounds: calibrate it first (pann calibrate)", o.card.display());
    }
    if !(o.max_drop_points >= 0.0 && o.max_drop_points.is_finite()) {
        bail!("--max-drop must be a number of points >= 0");
    }
    // Before the search, which takes minutes: where its results go must exist.
    for path in std::iter::once(&o.out).chain(o.report.as_ref()) {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !dir.is_dir() {
            bail!("{} does not exist: create it first (for {})", dir.display(), path.display());
        }
    }
    let (images, labels) = labelled_images(&loaded, &o.calib, o.first, o.count)?;
    eprintln!("plan: metering one ReLU layer at alpha {:?} ...", o.alphas);
    let costs = metered_relu_costs(&o.alphas)?;
    for (a, c) in &costs {
        eprintln!("  alpha {a:2}: {:.2} B per ReLU online, {} rounds, {:.2} B offline", c.bytes, c.rounds, c.offline_bytes);
    }
    let reference_accuracy = match &o.reference {
        None => None,
        Some(card) => {
            let r = LoadedModel::load(card).with_context(|| format!("loading the reference {}", card.display()))?;
            let (ri, rl) = labelled_images(&r, &o.calib, o.first, o.count)?;
            let ev = PlainExecutor::new(&r.model, ReluMode::Exact)?.evaluate(ri.len(), |i| ri[i].clone(), &rl, None)?;
            eprintln!("plan: reference {}: exact ReLU {:.2}% on the calibration images", r.card.name, 100.0 * ev.accuracy());
            Some(ev.accuracy())
        }
    };
    // A card with per-layer alphas (e.g. fine-tuned at them) is a starting point too.
    let sites = loaded.model.network.activation_sites();
    let start = if loaded.card.relu_alphas.is_empty() { None } else { Some(sites.iter().map(|s| loaded.card.relu_alphas[*s]).collect()) };
    let planner = Planner {
        model: &loaded.model,
        bounds: &loaded.card.relu_bounds,
        images: &images,
        labels: &labels,
        costs: &costs,
        objective: o.objective,
        start,
        reference_accuracy,
    };
    eprintln!(
        "plan: {} calibration images ({} records {}..{}), target: at most {} points below exact ReLU",
        images.len(),
        o.calib.display(),
        o.first,
        o.first + images.len(),
        o.max_drop_points
    );
    let t0 = std::time::Instant::now();
    let outcome = planner.plan(o.max_drop_points / 100.0, |e: &Explored| {
        eprintln!(
            "  [{:>6.0} s] {:<11} acc {:6.2}%  loss {:.4}  ReLU {:6.2} MB {:3} rounds {:6.2} MB offline  alphas {:?}",
            t0.elapsed().as_secs_f64(),
            e.kind,
            100.0 * e.score.accuracy,
            e.score.loss,
            e.relu_bytes / 1e6,
            e.relu_rounds,
            e.relu_offline_bytes / 1e6,
            e.alphas
        )
    })?;
    let mut card = loaded.card.clone();
    card.relu_alphas = outcome.alpha_map();
    card.default_alpha = *outcome.alphas.iter().max().expect("a network has ReLUs");
    card.name = format!("{}-plan", card.name);
    copy_weights_beside(&o.card, &o.out, &card.weights)?;
    std::fs::write(&o.out, card.to_json()).with_context(|| format!("writing {}", o.out.display()))?;
    let public = PublicModel::new(&loaded.model, &card.input, &card.relu_bounds, SecureConfig::new(card.default_alpha))?
        .with_alphas(card.relu_alphas.clone())?;
    let report = PlanReport {
        card: o.out.display().to_string(),
        calibration: format!("{} records {}..{}", o.calib.display(), o.first, o.first + images.len()),
        costs,
        max_drop_points: o.max_drop_points,
        precision: public.precision(),
        outcome,
    };
    if let Some(path) = &o.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

/// One point of the frontier.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FrontierPoint {
    /// The card's model name.
    pub model: String,
    /// "uniform, global bound", "uniform, per-layer bounds" or "planned".
    pub family: String,
    /// The configuration: `alpha 9, B = 12.34` (global bound), `alpha 9`, or
    /// the planned card's file name.
    pub label: String,
    /// The public model's precision (as a string: `"9"` or `"per-layer:..."`).
    pub precision: Precision,
    /// Fraction of the test images the f64 executor classifies correctly.
    pub accuracy: f64,
    /// Test images with at least one ReLU input beyond its bound.
    pub images_out_of_range: usize,
    /// Online bytes of one inference, as in [`InferenceCost`].
    pub online_bytes: u64,
    /// Online rounds of one inference, as in [`InferenceCost`].
    pub online_rounds: u64,
}

/// Options of `pann frontier`.
pub struct FrontierOptions {
    /// Calibrated model cards, each measured at every alpha with a global
    /// bound and with its per-layer bounds.
    pub models: Vec<PathBuf>,
    /// Planned cards (`pann plan`), each measured as it is.
    pub plans: Vec<PathBuf>,
    /// The test images: a CIFAR-10 binary or IDX images file.
    pub data: PathBuf,
    /// First record of `data` used.
    pub first: usize,
    /// Test images used (fewer when `data` ends first).
    pub count: usize,
    /// Uniform alphas to measure.
    pub alphas: Vec<Alpha>,
    /// Directory for frontier.json, frontier-table.md and frontier.svg.
    pub out: PathBuf,
    /// Earlier frontier.json files whose points are kept in the outputs (a
    /// frontier measured in several invocations).
    pub merge: Vec<PathBuf>,
}

/// `pann frontier`: test accuracy (f64 executor) and metered online bytes
/// and rounds per image (three parties in process, one image) of uniform
/// precision with one global bound and with per-layer bounds for every
/// model, and of every planned card; JSON, Markdown and an SVG plot.
pub fn frontier(o: &FrontierOptions) -> Result<Vec<FrontierPoint>> {
    let mut points = Vec::new();
    let mut costs: BTreeMap<String, InferenceCost> = BTreeMap::new();
    let mut exact_rows = Vec::new();
    for m in &o.merge {
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(m).with_context(|| format!("reading {}", m.display()))?)?;
        if doc["data"] != serde_json::json!(o.data.display().to_string())
            || doc["first"] != serde_json::json!(o.first)
            || doc["count"] != serde_json::json!(o.count)
        {
            bail!("{} was measured on other images ({} first {} count {})", m.display(), doc["data"], doc["first"], doc["count"]);
        }
        points.extend(serde_json::from_value::<Vec<FrontierPoint>>(doc["points"].clone())?);
        for e in doc["exact"].as_array().into_iter().flatten() {
            exact_rows.push((e["model"].as_str().unwrap_or_default().to_string(), e["accuracy"].as_f64().unwrap_or(f64::NAN)));
        }
    }
    // The test images are read and normalised once per model (`data`).
    type Labelled = (Vec<Vec<f64>>, Vec<u8>);
    let mut measure = |loaded: &LoadedModel,
                       (images, labels): &Labelled,
                       family: &str,
                       label: String,
                       mode: ReluMode,
                       public: PublicModel,
                       points: &mut Vec<FrontierPoint>|
     -> Result<()> {
        let exec = PlainExecutor::new(&loaded.model, mode)?;
        let ev = exec.evaluate(images.len(), |i| images[i].clone(), labels, None)?;
        let precision = public.precision();
        // Costs depend on the architecture and the alphas only.
        let key = format!("{}/{precision}", public.network.nodes.len());
        let cost = match costs.get(&key) {
            Some(c) => *c,
            None => {
                let c = metered_inference(loaded, &public)?;
                costs.insert(key, c);
                c
            }
        };
        eprintln!(
            "  {:<28} {:<28} acc {:6.2}%  online {:7.2} MB {:4} rounds",
            loaded.card.name,
            label,
            100.0 * ev.accuracy(),
            cost.online_bytes as f64 / 1e6,
            cost.online_rounds
        );
        points.push(FrontierPoint {
            model: loaded.card.name.clone(),
            family: family.into(),
            label,
            precision,
            accuracy: ev.accuracy(),
            images_out_of_range: ev.images_out_of_range,
            online_bytes: cost.online_bytes,
            online_rounds: cost.online_rounds,
        });
        Ok(())
    };
    for card in &o.models {
        let loaded = LoadedModel::load(card).with_context(|| format!("loading {}", card.display()))?;
        let data = labelled_images(&loaded, &o.data, o.first, o.count)?;
        let (images, labels) = &data;
        let exact = PlainExecutor::new(&loaded.model, ReluMode::Exact)?.evaluate(images.len(), |i| images[i].clone(), labels, None)?;
        eprintln!("frontier: {} exact ReLU {:.2}%", loaded.card.name, 100.0 * exact.accuracy());
        exact_rows.push((loaded.card.name.clone(), exact.accuracy()));
        let global = loaded.card.relu_bounds.values().cloned().fold(0.0, f64::max);
        let global_bounds: BTreeMap<String, f64> = loaded.card.relu_bounds.keys().map(|s| (s.clone(), global)).collect();
        for &a in &o.alphas {
            let cfg = SecureConfig::new(a);
            let public = PublicModel::new(&loaded.model, &loaded.card.input, &global_bounds, cfg)?;
            measure(
                &loaded,
                &data,
                "uniform, global bound",
                format!("alpha {a}, B = {global:.2}"),
                ReluMode::pann(a, global_bounds.clone())?,
                public,
                &mut points,
            )?;
            let public = PublicModel::new(&loaded.model, &loaded.card.input, &loaded.card.relu_bounds, cfg)?;
            measure(&loaded, &data, "uniform, per-layer bounds", format!("alpha {a}"), loaded.card.pann_mode(a)?, public, &mut points)?;
        }
    }
    for card in &o.plans {
        let loaded = LoadedModel::load(card).with_context(|| format!("loading {}", card.display()))?;
        let public =
            PublicModel::new(&loaded.model, &loaded.card.input, &loaded.card.relu_bounds, SecureConfig::new(loaded.card.default_alpha))?
                .with_alphas(loaded.card.relu_alphas.clone())?;
        let label = card.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let data = labelled_images(&loaded, &o.data, o.first, o.count)?;
        measure(&loaded, &data, "planned", label, loaded.card.deployed_mode()?, public, &mut points)?;
    }
    write_frontier(o, &points, &exact_rows)?;
    Ok(points)
}

fn write_frontier(o: &FrontierOptions, points: &[FrontierPoint], exact: &[(String, f64)]) -> Result<()> {
    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    let doc = serde_json::json!({
        "data": o.data.display().to_string(), "first": o.first, "count": o.count,
        "exact": exact.iter().map(|(m, a)| serde_json::json!({"model": m, "accuracy": a})).collect::<Vec<_>>(),
        "points": points,
    });
    std::fs::write(o.out.join("frontier.json"), serde_json::to_vec_pretty(&doc)?)?;
    let mut md = String::new();
    writeln!(md, "| model | family | configuration | accuracy | images out of range | online MB/image | online rounds | precision |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for p in points {
        writeln!(
            md,
            "| {} | {} | {} | {:.2}% | {} | {:.2} | {} | `{}` |",
            p.model,
            p.family,
            p.label,
            100.0 * p.accuracy,
            p.images_out_of_range,
            p.online_bytes as f64 / 1e6,
            p.online_rounds,
            p.precision
        )?;
    }
    std::fs::write(o.out.join("frontier-table.md"), md)?;
    // Per model one hue; per family (global, per-layer, planned) a shade of it.
    let hues = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207)];
    let mut series = Vec::new();
    let families = ["uniform, global bound", "uniform, per-layer bounds", "planned"];
    let models: Vec<&String> = exact.iter().map(|e| &e.0).collect();
    for (mi, m) in models.iter().enumerate() {
        for (fi, fam) in families.iter().enumerate() {
            let mut pts: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| &p.model == *m || (fam == &"planned" && p.model.starts_with(m.as_str())))
                .filter(|p| p.family == *fam)
                .map(|p| (p.online_bytes as f64 / 1e6, 100.0 * p.accuracy))
                .collect();
            if pts.is_empty() {
                continue;
            }
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (r, g, b) = hues[mi % hues.len()];
            let shade = |c: u8| (c as f64 * [0.55, 1.0, 1.0][fi] + [0.0, 0.0, 0.45 * (255.0 - c as f64)][fi]) as u8;
            series.push((format!("{m}: {fam}"), pts, RGBColor(shade(r), shade(g), shade(b))));
        }
    }
    line_plot(
        &o.out.join("frontier.svg"),
        "ResNet-20: accuracy vs online bytes per image",
        "online MB per image",
        "accuracy (%)",
        &series,
        SeriesLabelPosition::LowerRight,
    )?;
    Ok(())
}
