//! Plaintext PANN accuracy of a model (by default the shipped akamaster
//! ResNet-20) at alpha 7..14, with per-layer calibrated bounds and with one
//! global bound as in Lee et al., next to exact-ReLU accuracy; writes a
//! Markdown table and a JSON report, and optionally the calibrated bounds
//! into the model card.
//!
//! ```text
//! cargo run --release -p pann-models --example pann_accuracy -- \
//!     [--card models/assets/resnet20-akamaster.card.json] [--data ../shared/data/cifar-10-jpeg] \
//!     [--test 10000] [--calib 2000] [--margin 1.1[,1.25,...]] [--alphas 7-14] [--skip-global] \
//!     [--md docs/results/plaintext-accuracy.md] [--json docs/results/plaintext-accuracy.json] \
//!     [--write-card]
//! ```
//! Calibration uses the first `--calib` training images (data_batch_1..), the
//! evaluation the first `--test` test images. With several margins, the
//! per-layer PANN is evaluated for each (the first is the main one, and the
//! one `--write-card` stores); `--skip-global` leaves out the Lee et al. bound
//! (whose search is slow and hopeless at low alpha).

use pann_approx::{Alpha, SignPoly};
use pann_models::calibrate::{max_abs_per_site, per_site_bounds, GlobalBoundRule};
use pann_models::card::CalibrationInfo;
use pann_models::{DataDir, Evaluation, ImageSet, LoadedModel, PlainExecutor, ReluMode};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

#[path = "common/mod.rs"]
mod common;
use common::{utc_now, with_progress};

struct Args {
    card: PathBuf,
    data: PathBuf,
    test: usize,
    calib: usize,
    margins: Vec<f64>,
    skip_global: bool,
    alphas: Vec<Alpha>,
    md: Option<PathBuf>,
    json: Option<PathBuf>,
    write_card: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        card: "models/assets/resnet20-akamaster.card.json".into(),
        data: "../shared/data/cifar-10-jpeg".into(),
        test: 10_000,
        calib: 2_000,
        margins: vec![1.1],
        skip_global: false,
        alphas: Alpha::all().filter(|a| a.get() >= 7).collect(),
        md: None,
        json: None,
        write_card: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--card" => a.card = val()?.into(),
            "--data" => a.data = val()?.into(),
            "--test" => a.test = val()?.parse().map_err(|e| format!("--test: {e}"))?,
            "--calib" => a.calib = val()?.parse().map_err(|e| format!("--calib: {e}"))?,
            "--margin" | "--margins" => {
                a.margins = val()?.split(',').map(|m| m.parse().map_err(|e| format!("--margin: {e}"))).collect::<Result<_, _>>()?;
                if a.margins.is_empty() || a.margins.iter().any(|m: &f64| m.is_nan() || *m <= 0.0) {
                    return Err("--margin: positive numbers expected".into());
                }
            }
            "--skip-global" => a.skip_global = true,
            "--alphas" => {
                let v = val()?;
                a.alphas = match v.split_once('-') {
                    Some((lo, hi)) => {
                        let lo: Alpha = lo.parse().map_err(|e| format!("--alphas: {e}"))?;
                        let hi: Alpha = hi.parse().map_err(|e| format!("--alphas: {e}"))?;
                        Alpha::all().filter(|a| (lo..=hi).contains(a)).collect()
                    }
                    None => v.split(',').map(|s| s.parse().map_err(|e| format!("--alphas: {e}"))).collect::<Result<_, _>>()?,
                }
            }
            "--md" => a.md = Some(val()?.into()),
            "--json" => a.json = Some(val()?.into()),
            "--write-card" => a.write_card = true,
            "-h" | "--help" => return Err("see the doc comment at the top of models/examples/pann_accuracy.rs".into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// Prints `label done/total` on stderr once a second while `f` runs.
#[derive(Serialize)]
struct MarginEval {
    margin: f64,
    eval: Evaluation,
}

#[derive(Serialize)]
struct Row {
    alpha: Alpha,
    degrees: Vec<usize>,
    /// Per-layer bounds at the first margin.
    per_layer: Evaluation,
    /// Per-layer bounds at the other margins, if any.
    per_layer_other_margins: Vec<MarginEval>,
    /// None with --skip-global.
    global_bound: Option<f64>,
    global: Option<Evaluation>,
}

#[derive(Serialize)]
struct Report {
    command: String,
    date: String,
    model: String,
    weights_sha256: String,
    test_images: usize,
    calibration_images: usize,
    margin: f64,
    other_margins: Vec<f64>,
    calibration_max_abs: BTreeMap<String, f64>,
    per_layer_bounds: BTreeMap<String, f64>,
    exact: Evaluation,
    rows: Vec<Row>,
    seconds: f64,
}

fn pct(e: &Evaluation) -> String {
    format!("{:.2}%", 100.0 * e.accuracy())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let t0 = Instant::now();
    let loaded = LoadedModel::load(&args.card)?;
    let model = &loaded.model;
    let input = &loaded.card.input;
    let dir = DataDir::open(&args.data)?;
    let test: ImageSet = dir.test()?.truncated(args.test);
    let calib: ImageSet = dir.train(args.calib)?;
    eprintln!("model {} | {} test images | {} calibration images | margins {:?}", loaded.card.name, test.len(), calib.len(), args.margins);

    let max_abs = with_progress("calibration (exact ReLU)", calib.len(), |p| {
        max_abs_per_site(model, calib.len(), |i| input.normalise(calib.image(i)), Some(p))
    })?;
    let bounds = per_site_bounds(&max_abs, args.margins[0]);
    let overall_max = max_abs.values().cloned().fold(0.0, f64::max);
    let rule = GlobalBoundRule::default();
    eprintln!("max |ReLU input| over calibration: {overall_max:.3}; Lee et al. start bound {}", rule.bound_for(overall_max));

    let sites: Vec<String> = model.network.activation_sites().iter().map(|s| s.to_string()).collect();
    let site_refs: Vec<&str> = sites.iter().map(String::as_str).collect();
    let eval = |label: &str, mode: ReluMode| -> Result<Evaluation, Box<dyn std::error::Error>> {
        let exec = PlainExecutor::new(model, mode)?;
        let ev =
            with_progress(label, test.len(), |p| exec.evaluate(test.len(), |i| input.normalise(test.image(i)), &test.labels, Some(p)))?;
        eprintln!("  -> {} ({} images out of range)", pct(&ev), ev.images_out_of_range);
        Ok(ev)
    };

    let exact = eval("exact ReLU", ReluMode::Exact)?;
    let mut rows = Vec::new();
    for &alpha in &args.alphas {
        let degrees = SignPoly::for_alpha(alpha).degrees();
        let per_layer = eval(&format!("alpha {alpha} per-layer x{}", args.margins[0]), ReluMode::pann(alpha, bounds.clone())?)?;
        let mut per_layer_other_margins = Vec::new();
        for &margin in &args.margins[1..] {
            let b = per_site_bounds(&max_abs, margin);
            per_layer_other_margins
                .push(MarginEval { margin, eval: eval(&format!("alpha {alpha} per-layer x{margin}"), ReluMode::pann(alpha, b)?)? });
        }
        let (global_bound, global) = if args.skip_global {
            (None, None)
        } else {
            let gb = with_progress(&format!("alpha {alpha} global-bound search"), calib.len(), |p| {
                p.store(0, Ordering::Relaxed);
                rule.grow_with_pann(model, alpha, calib.len(), |i| input.normalise(calib.image(i)), overall_max, 40)
            })?;
            (Some(gb), Some(eval(&format!("alpha {alpha} global B={gb}"), ReluMode::pann_global(alpha, &site_refs, gb)?)?))
        };
        rows.push(Row { alpha, degrees, per_layer, per_layer_other_margins, global_bound, global });
    }

    let command =
        format!("cargo run --release -p pann-models --example pann_accuracy -- {}", std::env::args().skip(1).collect::<Vec<_>>().join(" "));
    let report = Report {
        command,
        date: utc_now(),
        model: loaded.card.name.clone(),
        weights_sha256: loaded.card.weights_sha256.clone(),
        test_images: test.len(),
        calibration_images: calib.len(),
        margin: args.margins[0],
        other_margins: args.margins[1..].to_vec(),
        calibration_max_abs: max_abs.clone(),
        per_layer_bounds: bounds.clone(),
        exact,
        rows,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let md = markdown(&report, &sites);
    println!("{md}");
    if let Some(p) = &args.md {
        std::fs::write(p, &md)?;
    }
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    if args.write_card {
        let mut card = loaded.card.clone();
        card.relu_bounds = bounds;
        card.calibration = Some(CalibrationInfo {
            margin: args.margins[0],
            images: calib.len(),
            data: format!("first {} images of the CIFAR-10 training batches (cifar-10-jpeg), exact ReLU", calib.len()),
        });
        std::fs::write(&args.card, card.to_json() + "\n")?;
        eprintln!("wrote bounds into {}", args.card.display());
    }
    Ok(())
}

fn markdown(r: &Report, sites: &[String]) -> String {
    let mut s = String::new();
    s += &format!("# Plaintext PANN accuracy: {} on cifar-10-jpeg\n\n", r.model);
    s += &format!(
        "Model `{}` (weights SHA-256 `{}`), f64 plaintext executor (`pann_models::PlainExecutor`), \
         {} test images (the first {} of `test_batch.bin`), bounds calibrated on the first {} training images \
         with exact ReLU. Measured {} in {:.0} s.\n\n",
        r.model, r.weights_sha256, r.test_images, r.test_images, r.calibration_images, r.date, r.seconds
    );
    s += &format!("Command: `{}`\n\n", r.command);
    s += "These are accuracies on the JPEG-derived CIFAR-10 copy (../shared/data/cifar-10-jpeg), not original-CIFAR-10 figures.\n\n";
    s += &format!("**Exact ReLU: {}** ({} / {}).\n\n", pct(&r.exact), r.exact.correct, r.exact.images);
    s += &format!(
        "- per-layer: B = margin x max |input| of the site over the calibration images (margin {}, other margins: {:?});\n\
         - global (Lee et al.): one B for all sites, start at 50 and grow by 5 until no ReLU input of the \
         calibration images exceeds it, with the PANN at that alpha in the loop (starting from the bound the \
         exact-ReLU maximum {:.2} asks for).\n\n",
        r.margin,
        r.other_margins,
        r.calibration_max_abs.values().cloned().fold(0.0, f64::max)
    );
    s += "Out of range = test images with at least one ReLU input outside [-B, B] (inputs in parentheses); diverged = images with non-finite logits.\n\n";
    let cell = |e: &Evaluation| format!("{} | {} ({}) | {}", pct(e), e.images_out_of_range, e.inputs_out_of_range(), e.images_diverged);
    let mut head = format!("| alpha | degrees | per-layer x{m} acc | out of range (inputs) | diverged", m = r.margin);
    for m in &r.other_margins {
        head += &format!(" | per-layer x{m} acc | out of range (inputs) | diverged");
    }
    let skip_global = r.rows.iter().all(|row| row.global.is_none());
    if !skip_global {
        head += " | global B | global acc | out of range (inputs) | diverged";
    }
    let cols = head.matches('|').count();
    s += &head;
    s += " |\n";
    s += &"|---".repeat(cols);
    s += "|\n";
    for row in &r.rows {
        s += &format!("| {} | {:?} | {}", row.alpha, row.degrees, cell(&row.per_layer));
        for o in &row.per_layer_other_margins {
            s += &format!(" | {}", cell(&o.eval));
        }
        if !skip_global {
            match (&row.global_bound, &row.global) {
                (Some(b), Some(g)) => s += &format!(" | {b} | {}", cell(g)),
                _ => s += " | - | - | - | -",
            }
        }
        s += " |\n";
    }
    s += &format!(
        "\nPer-layer bounds at margin {} (site: max |input| on calibration -> B; max |input| on the test set, exact ReLU):\n\n",
        r.margin
    );
    s += "| site | calib max | B | test max |\n|---|---|---|---|\n";
    for (i, site) in sites.iter().enumerate() {
        let test_max = r.exact.sites.get(i).map(|x| x.1.max_abs).unwrap_or(f64::NAN);
        s += &format!("| {site} | {:.3} | {:.3} | {:.3} |\n", r.calibration_max_abs[site], r.per_layer_bounds[site], test_max);
    }
    s
}
