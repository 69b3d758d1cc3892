//! Every lowering of the operator model runs securely: one small network
//! with a grouped and dilated convolution, padding, subsampling, a
//! concatenation of two activation sites at different alphas (so that the
//! gather raises one input to the other's scale), a per-channel affine (a
//! depthwise 1x1 linear layer), max and average pooling and a fully
//! connected layer. Three parties over in-memory channels give the clear
//! fixed-point reference's logits, which give the f64 PANN's. Negative
//! control: the same network with unequal bounds on the concatenated sites
//! does not compile, and says why.

use std::collections::BTreeMap;
use std::sync::Arc;

use pann_approx::Alpha;
use pann_engine::{run_plan, session_in_memory, ClearBackend, Plan, PublicModel, SecureConfig, ServerWeights};
use pann_models::calibrate::{max_abs_per_site, per_site_bounds};
use pann_models::network::NetworkBuilder;
use pann_models::ops::{self, Lowering};
use pann_models::{InputSpec, Model, Op, Params, PlainExecutor, ReluMode, Shape, Tensor};

/// Deterministic weights in [-0.5, 0.5) for every parameter (affine scales in [0.5, 1.5)).
fn params(net: &pann_models::Network) -> Params {
    let mut seed = 7u64;
    let mut rnd = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    net.param_specs()
        .into_iter()
        .map(|s| {
            let n: usize = s.shape.iter().product();
            let scale = if s.name.starts_with("affine") && s.name.ends_with("weight") { 1.0 } else { 0.0 };
            let data = (0..n).map(|_| rnd() + scale).collect();
            (s.name.clone(), Tensor::new(s.shape, data))
        })
        .collect()
}

fn alpha(a: u32) -> Alpha {
    Alpha::new(a).unwrap()
}

fn network() -> pann_models::Network {
    let mut b = NetworkBuilder::new(Shape::new(3, 12, 12));
    let x = b.conv("stem", 0, 8, 3, 1, 1, true).unwrap();
    let x = b.relu("relu0", x).unwrap();
    // Depthwise, dilated: 8 groups, taps 2 apart.
    let dw = ops::Conv2d { dilation: 2, groups: 8, ..ops::Conv2d::dense(8, 8, 3, 1, 2, true) };
    let a = b.push("dw", Op::Conv2d(dw), &[x]).unwrap();
    let a = b.relu("relu_a", a).unwrap();
    // The other branch: zero padding, then a convolution without its own.
    let p = b.push("pad", Op::Pad(ops::Pad { channels_before: 0, channels_after: 0, top: 1, bottom: 1, left: 1, right: 1 }), &[x]).unwrap();
    let c = b.conv("conv_b", p, 8, 3, 1, 0, true).unwrap();
    let c = b.relu("relu_b", c).unwrap();
    let cat = b.push("cat", Op::Concat, &[a, c]).unwrap();
    let m = b.push("pool", Op::MaxPool(ops::MaxPool { kernel: 2, stride: 2, padding: 0 }), &[cat]).unwrap();
    let s = b.push("sub", Op::Subsample(ops::Subsample { stride: 2 }), &[m]).unwrap();
    let f = b.push("affine", Op::Affine(ops::Affine { channels: 16 }), &[s]).unwrap();
    let f = b.relu("relu_f", f).unwrap();
    let g = b.push("avg", Op::AvgPool(ops::AvgPool { kernel: 3, stride: 3 }), &[f]).unwrap();
    let out = b.linear("fc", g, 5, true).unwrap();
    b.finish(out).unwrap()
}

#[test]
fn every_lowering_runs_securely_as_its_fixed_point_reference() {
    let net = network();
    let lowerings: Vec<Lowering> =
        net.nodes.iter().map(|n| n.op.operator().lowering(&n.inputs.iter().map(|&j| net.nodes[j].shape).collect::<Vec<_>>())).collect();
    for want in ["Linear(Conv", "groups: 8", "dilation: 2", "Relu", "MaxPool", "Gather", "AvgPool", "Linear(Matmul"] {
        assert!(format!("{lowerings:?}").contains(want), "the network lacks {want}");
    }
    let model = Model::new(net, params(&network())).unwrap();
    let spec = InputSpec { mean: vec![0.5; 3], std: vec![0.25; 3] };
    let pixels: Vec<Vec<u8>> = (0..4).map(|i| (0..3 * 12 * 12).map(|j| ((j * 37 + i * 101) % 256) as u8).collect()).collect();
    let xs: Vec<Vec<f64>> = pixels.iter().map(|p| spec.normalise(p)).collect();
    let max = max_abs_per_site(&model, xs.len(), |i| xs[i].clone(), None).unwrap();
    assert_eq!(max["relu_a"], max["relu_b"], "concatenated sites share their calibration maximum");
    let bounds = per_site_bounds(&max, 1.3);
    // relu_a at alpha 14 (output scale 36) and relu_b at 9 (35): the gather aligns them.
    let alphas: BTreeMap<String, Alpha> =
        model.network.activation_sites().iter().map(|s| (s.to_string(), alpha(if *s == "relu_a" { 14 } else { 9 }))).collect();
    let public = PublicModel::new(&model, &spec, &bounds, SecureConfig::new(alpha(9))).unwrap().with_alphas(alphas.clone()).unwrap();
    let plan = Plan::compile(Arc::new(public.clone()), 1).unwrap();
    let gather = plan.steps.iter().find_map(|s| match s {
        pann_engine::Step::Gather { mults, inputs, .. } if inputs.len() == 2 => Some(mults.clone()),
        _ => None,
    });
    assert_eq!(gather, Some(vec![1, 2]), "relu_b's output is raised one bit to relu_a's scale");
    let weights = ServerWeights::encode(&plan, &model).unwrap();
    let f64_pann = PlainExecutor::new(&model, ReluMode::pann_mixed(alphas, bounds.clone()).unwrap()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for (x, px) in xs.iter().zip(&pixels) {
        let mut clear = ClearBackend::new(&weights);
        let y = rt.block_on(run_plan(&plan, Some(&weights), &mut clear, plan.encode_input(x).unwrap(), None)).unwrap();
        assert!(clear.in_range(), "the reference left the ring");
        let reference = plan.decode_output(&y);
        let f = f64_pann.forward(x).unwrap().logits;
        for (a, b) in reference.iter().zip(&f) {
            assert!((a - b).abs() < 1e-3, "fixed point {a} vs f64 PANN {b}");
        }
        let secure = rt.block_on(session_in_memory(&model, &public, std::slice::from_ref(px), 1)).unwrap().logits;
        for (a, b) in secure[0].iter().zip(&reference) {
            assert!((a - b).abs() < 1e-3, "secure {a} vs fixed point {b}");
        }
    }

    // Negative control: concatenated sites with different bounds cannot share a factor.
    let mut unequal = bounds.clone();
    *unequal.get_mut("relu_b").unwrap() *= 1.5;
    let e = Plan::compile(Arc::new(PublicModel::new(&model, &spec, &unequal, SecureConfig::new(alpha(9))).unwrap()), 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"cat\"") && e.contains("must share one bound"), "{e}");
}
