//! Which imported ONNX models the secure executor runs today: every
//! committed model (models/tests/data/onnx) is imported, BN-folded and
//! calibrated on its recorded images; where the plan compiles, the clear
//! fixed-point reference of the plan gives the f64 PANN's logits; where it
//! does not, the error names the operator the secure executor lacks.

use std::sync::Arc;

use pann_engine::{run_plan, ClearBackend, Plan, PublicModel, SecureConfig, ServerWeights};
use pann_models::calibrate::{max_abs_per_site, per_site_bounds};
use pann_models::onnx::{import::import, proto::decode_model};
use pann_models::{fold_batch_norm, InputSpec, Model, PlainExecutor, ReluMode};

#[test]
fn imported_models_run_in_the_fixed_point_plan_or_name_what_is_missing() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/data/onnx");
    let mut runs = Vec::new();
    for name in ["lenet5", "mlp_fmnist", "resnet18_style", "resnet20_akamaster", "vgg_maxpool", "depthwise_block"] {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
        let input: InputSpec = serde_json::from_value(v["input"].clone()).unwrap();
        let pixels: Vec<Vec<u8>> = serde_json::from_value(v["pixels"].clone()).unwrap();
        let im = import(&decode_model(&std::fs::read(dir.join(format!("{name}.opset13.onnx"))).unwrap()).unwrap(), &input).unwrap();
        let model = fold_batch_norm(&Model::new(im.network, im.params).unwrap()).unwrap();
        let xs: Vec<Vec<f64>> = pixels.iter().map(|p| im.input.normalise(p)).collect();
        let bounds = per_site_bounds(&max_abs_per_site(&model, xs.len(), |i| xs[i].clone(), None).unwrap(), 1.2);
        let public = match PublicModel::new(&model, &im.input, &bounds, SecureConfig::new(12))
            .and_then(|p| Plan::compile(Arc::new(p.clone()), 1).map(|plan| (p, plan)))
        {
            Ok(p) => p,
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains("not supported by the secure executor yet"), "{name}: {e}");
                assert!(["max_pool", "concat", "pad", "dilated and grouped"].iter().any(|op| e.contains(op)), "{name}: {e}");
                runs.push(format!("{name}: not yet ({e})"));
                continue;
            }
        };
        let (_, plan) = public;
        let weights = ServerWeights::encode(&plan, &model).unwrap();
        let f64_pann = PlainExecutor::new(&model, ReluMode::pann(12, bounds.clone()).unwrap()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut worst = 0f64;
        for x in &xs {
            let y = rt
                .block_on(run_plan(&plan, Some(&weights), &mut ClearBackend::new(&weights), plan.encode_input(x).unwrap(), None))
                .unwrap();
            for (a, b) in plan.decode_output(&y).iter().zip(f64_pann.forward(x).unwrap().logits) {
                worst = worst.max((a - b).abs());
            }
        }
        assert!(worst < 1e-2, "{name}: fixed point vs f64 PANN differ by {worst}");
        runs.push(format!("{name}: runs, fixed point within {worst:.1e} of f64"));
    }
    eprintln!("{}", runs.join("\n"));
    // The models the secure executor must run today.
    for name in ["lenet5", "mlp_fmnist", "resnet18_style", "resnet20_akamaster"] {
        assert!(runs.iter().any(|r| r.starts_with(&format!("{name}: runs"))), "{name} should run: {runs:?}");
    }
}
