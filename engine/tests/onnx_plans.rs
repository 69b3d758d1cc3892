//! Which imported ONNX models the secure executor runs today: every
//! committed model (models/tests/data/onnx) is imported, BN-folded and
//! calibrated on its recorded images; where the plan compiles, the clear
//! fixed-point reference of the plan gives the f64 PANN's logits, and
//! server, client and dealer (in memory) give the reference's logits; where
//! it does not, the error names the operator the secure executor lacks.

use std::sync::Arc;

use pann_approx::Alpha;
use pann_engine::{run_plan, session_in_memory, ClearBackend, Plan, PublicModel, SecureConfig, ServerWeights};
use pann_models::calibrate::{max_abs_per_site, per_site_bounds};
use pann_models::onnx::{import::import, proto::decode_model};
use pann_models::{fold_batch_norm, InputSpec, PlainExecutor, ReluMode};

#[test]
fn imported_models_run_in_the_fixed_point_plan_or_name_what_is_missing() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/data/onnx");
    let mut runs = Vec::new();
    for name in ["lenet5", "mlp_fmnist", "resnet18_style", "resnet20_akamaster", "vgg_maxpool", "depthwise_block"] {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
        let input: InputSpec = serde_json::from_value(v["input"].clone()).unwrap();
        let pixels: Vec<Vec<u8>> = serde_json::from_value(v["pixels"].clone()).unwrap();
        let im = import(&decode_model(&std::fs::read(dir.join(format!("{name}.opset13.onnx"))).unwrap()).unwrap(), &input).unwrap();
        let model = fold_batch_norm(&im.model).unwrap();
        let xs: Vec<Vec<f64>> = pixels.iter().map(|p| im.input.normalise(p)).collect();
        let bounds = per_site_bounds(&max_abs_per_site(&model, xs.len(), |i| xs[i].clone(), None).unwrap(), 1.2);
        let public = match PublicModel::new(&model, &im.input, &bounds, SecureConfig::new(Alpha::new(12).unwrap()))
            .and_then(|p| Plan::compile(Arc::new(p.clone()), 1).map(|plan| (p, plan)))
        {
            Ok(p) => p,
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains("not supported by the secure executor yet"), "{name}: {e}");
                assert!(["concat", "pad", "dilated and grouped"].iter().any(|op| e.contains(op)), "{name}: {e}");
                runs.push(format!("{name}: not yet ({e})"));
                continue;
            }
        };
        let (public, plan) = public;
        let weights = ServerWeights::encode(&plan, &model).unwrap();
        let f64_pann = PlainExecutor::new(&model, ReluMode::pann(Alpha::new(12).unwrap(), bounds.clone()).unwrap()).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (mut worst, mut worst_secure) = (0f64, 0f64);
        for (x, px) in xs.iter().zip(&pixels).take(2) {
            let mut clear = ClearBackend::new(&weights);
            let y = rt.block_on(run_plan(&plan, Some(&weights), &mut clear, plan.encode_input(x).unwrap(), None)).unwrap();
            assert!(clear.in_range(), "{name}: the reference left the ring");
            let reference = plan.decode_output(&y);
            for (a, b) in reference.iter().zip(f64_pann.forward(x).unwrap().logits) {
                worst = worst.max((a - b).abs());
            }
            let secure = rt.block_on(session_in_memory(&model, &public, std::slice::from_ref(px), 1)).unwrap().logits;
            for (a, b) in secure[0].iter().zip(&reference) {
                worst_secure = worst_secure.max((a - b).abs());
            }
        }
        assert!(worst < 1e-2, "{name}: fixed point vs f64 PANN differ by {worst}");
        // Truncation noise (one unit per opening) compounds over the layers: 2.6e-3 for ResNet-20.
        assert!(worst_secure < 1e-2, "{name}: secure vs fixed point differ by {worst_secure}");
        runs.push(format!("{name}: runs, fixed point within {worst:.1e} of f64, secure within {worst_secure:.1e} of fixed point"));
    }
    eprintln!("{}", runs.join("\n"));
    // The models the secure executor must run today.
    for name in ["lenet5", "mlp_fmnist", "resnet18_style", "resnet20_akamaster", "vgg_maxpool"] {
        assert!(runs.iter().any(|r| r.starts_with(&format!("{name}: runs"))), "{name} should run: {runs:?}");
    }
}
