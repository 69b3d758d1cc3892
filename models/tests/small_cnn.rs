//! A small CNN built from its config: BN folding, serde, and the PANN
//! executor against the exact one.

use pann_approx::Alpha;
use pann_models::{fold_batch_norm, Model, Params, PlainExecutor, ReluMode, SmallCnnConfig, Tensor};

fn random_params(net: &pann_models::Network, seed: u64) -> Params {
    let mut s = seed;
    let mut rnd = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    };
    net.param_specs()
        .into_iter()
        .map(|spec| {
            let n: usize = spec.shape.iter().product();
            let data = (0..n).map(|_| if spec.name.ends_with("running_var") { 0.5 + rnd().abs() } else { rnd() }).collect();
            (spec.name.clone(), Tensor::new(spec.shape, data))
        })
        .collect()
}

#[test]
fn small_cnn_folds_and_runs() {
    let cfg = SmallCnnConfig { channels: vec![4, 8], num_classes: 5, batch_norm: true, in_channels: 3, image_size: 8, bn_eps: 1e-5 };
    let net = cfg.build().unwrap();
    assert_eq!(net.activation_sites(), vec!["relu1", "relu2"]);
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<SmallCnnConfig>(&json).unwrap(), cfg);
    let model = Model::new(net.clone(), random_params(&net, 3)).unwrap();
    let folded = fold_batch_norm(&model).unwrap();
    assert_eq!(folded.network.nodes.len(), net.nodes.len() - 2);
    let x: Vec<f64> = (0..3 * 64).map(|i| ((i * 37 % 17) as f64 - 8.0) / 8.0).collect();
    let a = PlainExecutor::new(&model, ReluMode::Exact).unwrap().forward(&x).unwrap();
    let b = PlainExecutor::new(&folded, ReluMode::Exact).unwrap().forward(&x).unwrap();
    for (u, v) in a.logits.iter().zip(&b.logits) {
        assert!((u - v).abs() < 1e-12);
    }
    // PANN at alpha 14 with bounds 2x the observed max: error <= B 2^-14 per ReLU.
    let bounds = a.sites.iter().zip(folded.network.activation_sites()).map(|(s, n)| (n.to_string(), 2.0 * s.max_abs)).collect();
    let p = PlainExecutor::new(&folded, ReluMode::pann(Alpha::new(14).unwrap(), bounds).unwrap()).unwrap().forward(&x).unwrap();
    assert!(!p.any_exceeded());
    for (u, v) in a.logits.iter().zip(&p.logits) {
        assert!((u - v).abs() < 1e-2, "{u} vs {v}");
    }
    // Wrong input size is an error.
    assert!(PlainExecutor::new(&folded, ReluMode::Exact).unwrap().forward(&x[..10]).is_err());
}

#[test]
fn bad_configs_are_errors() {
    assert!(SmallCnnConfig { channels: vec![], num_classes: 2, batch_norm: false, in_channels: 3, image_size: 8, bn_eps: 1e-5 }
        .build()
        .is_err());
    let net = SmallCnnConfig { channels: vec![2], num_classes: 2, batch_norm: false, in_channels: 1, image_size: 4, bn_eps: 1e-5 }
        .build()
        .unwrap();
    let mut broken = net.clone();
    broken.nodes[1].inputs = vec![3];
    assert!(broken.validate().is_err());
}
