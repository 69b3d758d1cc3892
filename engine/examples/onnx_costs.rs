//! The secure cost of each committed ONNX model (models/tests/data/onnx)
//! that the secure executor runs: imported, BN-folded, bounds calibrated on
//! the model's recorded images (margin 1.2), then one batch-1 session per
//! image by server, client and dealer in this process over in-memory
//! channels, at alpha 9. Prints a Markdown table: online and offline bytes
//! per image (from the channel meters), online rounds, and the median online
//! and end-to-end (material made on demand) time per image. The byte and
//! round counts are those of a session over TLS (the meters count framed
//! bytes); the times exclude TLS and the network.
//!
//! `cargo run --release -p pann-engine --example onnx_costs`

use pann_approx::Alpha;
use pann_engine::{session_in_memory, PublicModel, SecureConfig};
use pann_models::calibrate::{max_abs_per_site, per_site_bounds};
use pann_models::onnx::{import::import, proto::decode_model};
use pann_models::{fold_batch_norm, InputSpec};
use pann_mpc_core::Phase;

const ALPHA: u32 = 9;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/data/onnx");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    println!("| model (file) | activation sites | online MB / image | offline MB / image | online rounds | online s / image | end to end s / image |");
    println!("|---|---|---|---|---|---|---|");
    for name in ["mlp_fmnist", "lenet5", "resnet18_style", "resnet20_akamaster", "vgg_maxpool", "depthwise_block"] {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json")))?)?;
        let input: InputSpec = serde_json::from_value(v["input"].clone())?;
        let pixels: Vec<Vec<u8>> = serde_json::from_value(v["pixels"].clone())?;
        let file = format!("{name}.opset13.onnx");
        let im = import(&decode_model(&std::fs::read(dir.join(&file))?)?, &input)?;
        let model = fold_batch_norm(&im.model)?;
        let xs: Vec<Vec<f64>> = pixels.iter().map(|p| im.input.normalise(p)).collect();
        let bounds = per_site_bounds(&max_abs_per_site(&model, xs.len(), |i| xs[i].clone(), None)?, 1.2);
        let sites = model.network.relu_sites().len();
        let public = match PublicModel::new(&model, &im.input, &bounds, SecureConfig::new(Alpha::new(ALPHA)?)) {
            Ok(p) => p,
            Err(e) => {
                println!("| {name} ({file}) | {sites} | not yet: {e} | | | | |");
                continue;
            }
        };
        if let Err(e) = pann_engine::Plan::compile(std::sync::Arc::new(public.clone()), 1) {
            println!("| {name} ({file}) | {sites} | not yet: {e} | | | | |");
            continue;
        }
        let (mut online_s, mut total_s, mut online_b, mut offline_b, mut rounds) = (Vec::new(), Vec::new(), 0u64, 0u64, 0u64);
        for px in &pixels {
            let raw = vec![px.clone()];
            let t = std::time::Instant::now();
            let out = rt.block_on(session_in_memory(&model, &public, &raw, 1))?;
            total_s.push(t.elapsed().as_secs_f64());
            online_s.push(out.batches.iter().map(|b| b.online_s).sum::<f64>());
            let on = out.meter_server.phase_total(Phase::Online);
            online_b = on.bytes();
            rounds = on.rounds;
            offline_b = out.meter_dealer.phase_total(Phase::Offline).bytes();
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| {name} ({file}) | {sites} | {:.3} | {:.3} | {rounds} | {:.4} | {:.4} |",
            online_b as f64 / 1e6,
            offline_b as f64 / 1e6,
            median(&mut online_s),
            median(&mut total_s)
        );
    }
    Ok(())
}
