//! Every committed ONNX model (models/tests/data/onnx) runs securely: each
//! is imported, BN-folded and calibrated on its recorded images; the clear
//! fixed-point reference of its plan gives the f64 PANN's logits, and
//! server, client and dealer (in memory) give the reference's logits.

use std::sync::Arc;

use pann_approx::Alpha;
use pann_engine::{run_plan, session_in_memory, ClearBackend, Plan, PublicModel, SecureConfig, ServerWeights};
use pann_models::calibrate::{max_abs_per_site, per_site_bounds};
use pann_models::onnx::{import::import, proto::decode_model};
use pann_models::{fold_batch_norm, InputSpec, PlainExecutor, ReluMode};

#[test]
fn every_imported_model_runs_securely_as_its_fixed_point_reference() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/data/onnx");
    let mut runs = Vec::new();
    let files = [
        ("lenet5", "opset13"),
        ("mlp_fmnist", "opset13"),
        ("resnet18_style", "opset13"),
        ("resnet20_akamaster", "opset13"),
        ("vgg_maxpool", "opset13"),
        ("depthwise_block", "opset13"),
        ("depthwise_block", "dynamo"),
    ];
    for (name, export) in files {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
        let input: InputSpec = serde_json::from_value(v["input"].clone()).unwrap();
        let pixels: Vec<Vec<u8>> = serde_json::from_value(v["pixels"].clone()).unwrap();
        let im = import(&decode_model(&std::fs::read(dir.join(format!("{name}.{export}.onnx"))).unwrap()).unwrap(), &input).unwrap();
        let model = fold_batch_norm(&im.model).unwrap();
        let xs: Vec<Vec<f64>> = pixels.iter().map(|p| im.input.normalise(p)).collect();
        let bounds = per_site_bounds(&max_abs_per_site(&model, xs.len(), |i| xs[i].clone(), None).unwrap(), 1.2);
        let public = PublicModel::new(&model, &im.input, &bounds, SecureConfig::new(Alpha::new(12).unwrap())).unwrap();
        let plan = Plan::compile(Arc::new(public.clone()), 1).unwrap_or_else(|e| panic!("{name}.{export}: {e}"));
        let weights = ServerWeights::encode(&plan, &model).unwrap();
        let f64_pann = PlainExecutor::new(&model, ReluMode::pann(Alpha::new(12).unwrap(), bounds.clone()).unwrap()).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (mut worst, mut worst_secure) = (0f64, 0f64);
        for (x, px) in xs.iter().zip(&pixels).take(2) {
            let mut clear = ClearBackend::new(&weights);
            let y = rt.block_on(run_plan(&plan, Some(&weights), &mut clear, plan.encode_input(x).unwrap(), None)).unwrap();
            assert!(clear.in_range(), "{name}.{export}: the reference left the ring");
            let reference = plan.decode_output(&y);
            for (a, b) in reference.iter().zip(f64_pann.forward(x).unwrap().logits) {
                worst = worst.max((a - b).abs());
            }
            let secure = rt.block_on(session_in_memory(&model, &public, std::slice::from_ref(px), 1)).unwrap().logits;
            for (a, b) in secure[0].iter().zip(&reference) {
                worst_secure = worst_secure.max((a - b).abs());
            }
        }
        assert!(worst < 1e-2, "{name}.{export}: fixed point vs f64 PANN differ by {worst}");
        // Truncation noise (one unit per opening) compounds over the layers: 2.6e-3 for ResNet-20.
        assert!(worst_secure < 1e-2, "{name}.{export}: secure vs fixed point differ by {worst_secure}");
        runs.push(format!("{name}.{export}: fixed point within {worst:.1e} of f64, secure within {worst_secure:.1e} of fixed point"));
    }
    eprintln!("{}", runs.join("\n"));
}
