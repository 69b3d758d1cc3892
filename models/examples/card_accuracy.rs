//! Plaintext PANN accuracy of a model card **with the card's own per-layer
//! bounds** (no recalibration), for models fine-tuned with the polynomial in
//! the loop, whose bounds are part of the training: exact ReLU, then the PANN
//! ReLU at each alpha (f64 executor, no clamp, as the protocol), with the
//! number of test images that have a ReLU input beyond its bound and of
//! images whose logits are not finite. Works on CIFAR-10 binary and IDX
//! (Fashion-MNIST) directories. Writes a Markdown table and a JSON report.
//!
//! ```text
//! cargo run --release -p pann-models --example card_accuracy -- --card CARD \
//!     [--data ../shared/data/cifar-10-jpeg] [--test 10000] [--alphas 4,5,6,9] [--md F] [--json F]
//! ```
//! (`models/examples/pann_accuracy.rs` instead recalibrates the bounds on
//! training images before evaluating.)

use pann_approx::{Alpha, SignPoly};
use pann_models::{DataDir, Evaluation, LoadedModel, PlainExecutor, ReluMode};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[path = "common/mod.rs"]
mod common;
use common::{utc_now, with_progress};

#[derive(Serialize)]
struct Row {
    alpha: Option<Alpha>,
    degrees: Vec<usize>,
    eval: Evaluation,
    seconds: f64,
}

#[derive(Serialize)]
struct Report {
    command: String,
    date: String,
    model: String,
    weights_sha256: String,
    data: String,
    test_images: usize,
    bounds: std::collections::BTreeMap<String, f64>,
    rows: Vec<Row>,
    seconds: f64,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (mut card, mut data, mut n, mut alphas, mut md, mut json): (
        Option<PathBuf>,
        PathBuf,
        usize,
        Vec<Alpha>,
        Option<PathBuf>,
        Option<PathBuf>,
    ) = (None, "../shared/data/cifar-10-jpeg".into(), 10_000, [4, 5, 6, 9].map(|a| Alpha::new(a).unwrap()).to_vec(), None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--card" => card = Some(val()?.into()),
            "--data" => data = val()?.into(),
            "--test" => n = val()?.parse()?,
            "--alphas" => {
                alphas = val()?.split(',').filter(|s| !s.is_empty() && *s != "none").map(|s| s.parse()).collect::<Result<_, _>>()?
            }
            "--md" => md = Some(val()?.into()),
            "--json" => json = Some(val()?.into()),
            other => return Err(format!("unknown argument {other} (see the doc comment of models/examples/card_accuracy.rs)").into()),
        }
    }
    let card = card.ok_or("--card is required")?;
    let t0 = Instant::now();
    let loaded = LoadedModel::load(&card)?;
    if loaded.card.relu_bounds.is_empty() {
        return Err("the card has no relu_bounds".into());
    }
    let input = &loaded.card.input;
    let test = DataDir::open(&data)?.test()?.truncated(n);
    eprintln!("model {} | {} test images of {}", loaded.card.name, test.len(), data.display());
    let mut rows = Vec::new();
    let modes: Vec<Option<Alpha>> = std::iter::once(None).chain(alphas.iter().copied().map(Some)).collect();
    for alpha in modes {
        let (mode, degrees, label) = match alpha {
            None => (ReluMode::Exact, vec![], "exact ReLU".to_string()),
            Some(a) => (loaded.card.pann_mode(a)?, SignPoly::for_alpha(a).degrees(), format!("alpha {a}")),
        };
        let t = Instant::now();
        let exec = PlainExecutor::new(&loaded.model, mode)?;
        let ev =
            with_progress(&label, test.len(), |p| exec.evaluate(test.len(), |i| input.normalise(test.image(i)), &test.labels, Some(p)))?;
        eprintln!("  -> {label}: {:.2}% ({} out of range, {} diverged)", 100.0 * ev.accuracy(), ev.images_out_of_range, ev.images_diverged);
        rows.push(Row { alpha, degrees, eval: ev, seconds: t.elapsed().as_secs_f64() });
    }
    let report = Report {
        command: format!(
            "cargo run --release -p pann-models --example card_accuracy -- {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        ),
        date: utc_now(),
        model: loaded.card.name.clone(),
        weights_sha256: loaded.card.weights_sha256.clone(),
        data: data.display().to_string(),
        test_images: test.len(),
        bounds: loaded.card.relu_bounds.clone(),
        rows,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let mut s = format!("# Plaintext PANN accuracy with the card's bounds: {}\n\n", report.model);
    s += &format!(
        "f64 executor (`pann_models::PlainExecutor`, no clamp, as the protocol), the card's per-layer bounds, the first {} test images of `{}`. \
         Weights SHA-256 `{}`. Measured {} in {:.0} s.\n\nCommand: `{}`\n\n",
        report.test_images, report.data, report.weights_sha256, report.date, report.seconds, report.command
    );
    s += "Out of range = test images with at least one ReLU input outside [-B, B] (inputs in parentheses); diverged = images with non-finite logits.\n\n";
    s += "| relu | degrees | accuracy | correct | out of range (inputs) | diverged |\n|---|---|---|---|---|---|\n";
    for r in &report.rows {
        let e = &r.eval;
        s += &format!(
            "| {} | {:?} | {:.2}% | {} / {} | {} ({}) | {} |\n",
            r.alpha.map(|a| format!("alpha {a}")).unwrap_or_else(|| "exact".into()),
            r.degrees,
            100.0 * e.accuracy(),
            e.correct,
            e.images,
            e.images_out_of_range,
            e.inputs_out_of_range(),
            e.images_diverged
        );
    }
    println!("{s}");
    if let Some(p) = md {
        std::fs::write(p, &s)?;
    }
    if let Some(p) = json {
        std::fs::write(p, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    Ok(())
}
