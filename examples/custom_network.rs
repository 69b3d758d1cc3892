//! A custom network end to end in one process: built in code with
//! `NetworkBuilder` (convolutions, ReLUs, average pooling, a linear layer),
//! calibrated, described publicly, and evaluated securely by the three roles
//! over in-memory channels. The secure logits are checked against the clear
//! fixed-point reference (the same plan on clear ring values) and against the
//! f64 executor with the same polynomial ReLU.
//!
//! Run: `cargo run --example custom_network`

mod common;

use std::sync::Arc;

use pann::nn::{max_abs_per_site, per_site_bounds, Alpha, InputSpec, NetworkBuilder, Op, PlainExecutor, ReluMode, Shape};
use pann::secure::{run_plan, ClearBackend, Plan, PublicModel, SecureConfig, ServerWeights};

const ALPHA: Alpha = match Alpha::new(10) {
    Ok(a) => a,
    Err(_) => panic!("10 is an alpha"),
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1 x 12 x 12 grey images, 3 classes.
    let mut b = NetworkBuilder::new(Shape::new(1, 12, 12));
    let x = b.input();
    let x = b.conv("conv1", x, 4, 3, 1, 1, true)?;
    let x = b.relu("relu1", x)?; // a ReLU site: it gets its own bound
    let x = b.conv("conv2", x, 8, 3, 2, 1, true)?; // 8 x 6 x 6
    let x = b.relu("relu2", x)?;
    let x = b.push("pool", Op::AvgPool(pann::nn::ops::AvgPool { kernel: 2, stride: 2 }), &[x])?; // 8 x 3 x 3
    let x = b.linear("fc", x, 3, true)?;
    let model = common::pseudo_random_model(b.finish(x)?, 3, 0.9)?;

    // Per-site bounds from calibration images: 1.2 x the largest |input| seen.
    let spec = InputSpec { mean: vec![0.5], std: vec![0.25] };
    let calibration = common::pseudo_random_images(16, 144, 4);
    let normalised: Vec<Vec<f64>> = calibration.iter().map(|r| spec.normalise(r)).collect();
    let bounds = per_site_bounds(&max_abs_per_site(&model, normalised.len(), |i| normalised[i].clone(), None)?, 1.2);
    println!("bounds per ReLU site: {bounds:?}");

    // What the server makes public: architecture, bounds, precision (not the weights).
    let public = PublicModel::new(&model, &spec, &bounds, SecureConfig::new(ALPHA))?;
    let images = common::pseudo_random_images(4, 144, 5);
    let rt = tokio::runtime::Runtime::new()?;
    let outcome = rt.block_on(common::three_roles(&model, &public, &images, 2))?;

    // References: the fixed-point plan on clear values, and f64 with the same polynomial.
    let plan = Plan::compile(Arc::new(public.clone()), 1)?;
    let weights = ServerWeights::encode(&plan, &model)?;
    let plain = PlainExecutor::new(&model, ReluMode::pann(ALPHA, bounds.clone())?)?;
    for (i, (raw, secure)) in images.iter().zip(&outcome.logits).enumerate() {
        let x = spec.normalise(raw);
        let y = rt.block_on(run_plan(&plan, Some(&weights), &mut ClearBackend::new(&weights), plan.encode_input(&x)?, None))?;
        let reference = plan.decode_output(&y);
        let f64_logits = plain.forward(&x)?.logits;
        for ((s, r), f) in secure.iter().zip(&reference).zip(&f64_logits) {
            assert!((s - r).abs() < 1e-3, "image {i}: secure {s} vs fixed-point reference {r}");
            assert!((s - f).abs() < 1e-2, "image {i}: secure {s} vs f64 {f}");
        }
        let class = secure.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(c, _)| c);
        println!("image {i}: class {class:?}, secure logits {secure:.4?}, f64 {f64_logits:.4?}");
    }
    let online = outcome.meter_server.phase_total(pann::net::Phase::Online);
    println!("online traffic (client side, both directions): {} bytes for {} images", online.bytes(), images.len());
    Ok(())
}

/// `cargo test` builds examples as test harnesses: this runs the example there, so that it is checked, not only compiled.
#[test]
fn example_runs() {
    main().unwrap();
}
