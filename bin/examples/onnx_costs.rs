//! The secure cost of each committed ONNX model (models/tests/data/onnx), at
//! alpha 9 and with per-site alphas from the planner. Each model is
//! imported and BN-folded; its bounds are calibrated on 64 images of its
//! kind shipped in the repository (CIFAR-10 records or Fashion-MNIST, margin
//! 1.2). The planner (`pann plan`'s: greedy descent over alphas 4..=14,
//! minimising online bytes) keeps the model's accuracy on those images
//! within 2 points (one image) of exact ReLU: against the labels for the
//! trained models, against the exact-ReLU predictions for the ones with
//! random weights. Each configuration then runs one batch-1 session per
//! recorded image by server, client and dealer in this process over
//! in-memory channels. Prints a Markdown table: online and offline bytes per
//! image (from the channel meters), online rounds, and the median online and
//! end-to-end (material made on demand) time per image. The byte and round
//! counts are those of a session over TLS (the meters count framed bytes);
//! the times exclude TLS and the network.
//!
//! `cargo run --release -p pann-bin --example onnx_costs`

use std::path::Path;

use pann_approx::Alpha;
use pann_bin::precision::metered_relu_costs;
use pann_engine::{session_in_memory, PublicModel, SecureConfig};
use pann_models::calibrate::{max_abs_per_site, per_site_bounds};
use pann_models::onnx::{import::import, proto::decode_model};
use pann_models::planner::{Objective, Planner};
use pann_models::{fold_batch_norm, ImageSet, InputSpec, Model, PlainExecutor, ReluMode};
use pann_mpc_core::Phase;

const ALPHA: u32 = 9;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = repo.join("models/tests/data/onnx");
    let cifar = ImageSet::read_file(repo.join("models/tests/data/test_batch_first64.bin"))?;
    let fmnist = ImageSet::read_file(repo.join("models/tests/data/fashion-mnist-small/t10k-images-idx3-ubyte.gz"))?.truncated(64);
    let costs = metered_relu_costs(&Alpha::all().collect::<Vec<_>>())?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    println!("| model (file) | activation sites | precision | online MB / image | offline MB / image | online rounds | online s / image | end to end s / image |");
    println!("|---|---|---|---|---|---|---|---|");
    let models = [
        ("mlp_fmnist", true),
        ("lenet5", true),
        ("resnet18_style", false),
        ("resnet20_akamaster", true),
        ("vgg_maxpool", false),
        ("depthwise_block", false),
    ];
    for (name, trained) in models {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json")))?)?;
        let input: InputSpec = serde_json::from_value(v["input"].clone())?;
        let pixels: Vec<Vec<u8>> = serde_json::from_value(v["pixels"].clone())?;
        let file = format!("{name}.opset13.onnx");
        let im = import(&decode_model(&std::fs::read(dir.join(&file))?)?, &input)?;
        let model = fold_batch_norm(&im.model)?;
        let data = if model.network.input_shape().c == 1 { &fmnist } else { &cifar };
        let xs: Vec<Vec<f64>> = (0..data.len()).map(|i| im.input.normalise(data.image(i))).collect();
        let bounds = per_site_bounds(&max_abs_per_site(&model, xs.len(), |i| xs[i].clone(), None)?, 1.2);
        let labels = if trained { data.labels.clone() } else { exact_predictions(&model, &xs)? };
        let planner = Planner {
            model: &model,
            bounds: &bounds,
            images: &xs,
            labels: &labels,
            costs: &costs,
            objective: Objective::Bytes,
            start: None,
            reference_accuracy: None,
        };
        let planned = planner.plan(0.02, |_| {})?;
        let sites = model.network.activation_sites().len();
        let uniform = PublicModel::new(&model, &im.input, &bounds, SecureConfig::new(Alpha::new(ALPHA)?))?;
        let mixed = uniform.clone().with_alphas(planned.alpha_map())?;
        for (label, public) in [(format!("alpha {ALPHA}"), uniform), (format!("planned: {}", alphas(&planned.alphas)), mixed)] {
            let (mut online_s, mut total_s, mut online_b, mut offline_b, mut rounds) = (Vec::new(), Vec::new(), 0u64, 0u64, 0u64);
            for px in &pixels {
                let t = std::time::Instant::now();
                let out = rt.block_on(session_in_memory(&model, &public, std::slice::from_ref(px), 1))?;
                total_s.push(t.elapsed().as_secs_f64());
                online_s.push(out.batches.iter().map(|b| b.online_s).sum::<f64>());
                let on = out.meter_server.phase_total(Phase::Online);
                online_b = on.bytes();
                rounds = on.rounds;
                offline_b = out.meter_dealer.phase_total(Phase::Offline).bytes();
            }
            println!(
                "| {name} ({file}) | {sites} | {label} | {:.3} | {:.3} | {rounds} | {:.4} | {:.4} |",
                online_b as f64 / 1e6,
                offline_b as f64 / 1e6,
                median(&mut online_s),
                median(&mut total_s)
            );
        }
    }
    Ok(())
}

/// The exact-ReLU class of each image: the labels an untrained model is planned against.
fn exact_predictions(model: &Model, xs: &[Vec<f64>]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let exec = PlainExecutor::new(model, ReluMode::Exact)?;
    let outs = exec.forward_many(xs.len(), |i| xs[i].clone(), None)?;
    Ok(outs.iter().map(|f| f.predicted().unwrap_or(0) as u8).collect())
}

/// Per-site alphas as a run-length list: `9 x3, 6, 4 x2`.
fn alphas(list: &[Alpha]) -> String {
    let mut runs: Vec<(Alpha, usize)> = Vec::new();
    for &a in list {
        match runs.last_mut() {
            Some((b, n)) if *b == a => *n += 1,
            _ => runs.push((a, 1)),
        }
    }
    runs.iter().map(|&(a, n)| if n == 1 { a.to_string() } else { format!("{a} x{n}") }).collect::<Vec<_>>().join(", ")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
