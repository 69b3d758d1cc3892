//! The trainer's tch modules, one forward rule per operator, against the
//! models crate's f64 executor: imported ONNX networks (batch norm, grouped,
//! dilated and depthwise convolutions, padding, concatenation, max and
//! average pooling, 1x1 shortcuts) give the same logits with the same
//! weights, in double precision. Negative control: changing one weight
//! changes the logits.

use pann_models::onnx::{import::import, proto::decode_model};
use pann_models::{InputSpec, PlainExecutor, ReluMode};
use pann_trainer::graph::{load_params, GraphNet};
use pann_trainer::net::ExactRelu;
use tch::{nn, Device, Kind, Tensor};

#[test]
fn imported_networks_run_in_tch_as_in_the_f64_executor() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/data/onnx");
    for name in ["depthwise_block", "vgg_maxpool", "resnet18_style", "lenet5"] {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
        let input: InputSpec = serde_json::from_value(v["input"].clone()).unwrap();
        let pixels: Vec<Vec<u8>> = serde_json::from_value(v["pixels"].clone()).unwrap();
        let im = import(&decode_model(&std::fs::read(dir.join(format!("{name}.opset13.onnx"))).unwrap()).unwrap(), &input).unwrap();
        let mut vs = nn::VarStore::new(Device::Cpu);
        let net = GraphNet::new(&vs.root(), &im.model.network).unwrap();
        vs.double();
        load_params(&vs, &im.model.params).unwrap();
        let f64_exec = PlainExecutor::new(&im.model, ReluMode::Exact).unwrap();
        let s = im.model.network.input_shape();
        let xs: Vec<Vec<f64>> = pixels.iter().map(|p| im.input.normalise(p)).collect();
        let batch = Tensor::from_slice(&xs.concat()).view([xs.len() as i64, s.c as i64, s.h as i64, s.w as i64]);
        let logits = |net: &GraphNet| -> Vec<Vec<f64>> {
            let y = tch::no_grad(|| net.forward(&batch, false, &mut ExactRelu)).to_kind(Kind::Double);
            (0..xs.len() as i64).map(|i| Vec::<f64>::try_from(&y.get(i)).unwrap()).collect()
        };
        let got = logits(&net);
        let mut worst = 0f64;
        for (x, g) in xs.iter().zip(&got) {
            for (a, b) in f64_exec.forward(x).unwrap().logits.iter().zip(g) {
                worst = worst.max((a - b).abs() / a.abs().max(1.0));
            }
        }
        assert!(worst < 1e-9, "{name}: tch and f64 executor differ by {worst:.1e}");

        // Negative control: one weight changed, other logits.
        let (first, _) = vs.variables().into_iter().find(|(n, _)| n.ends_with(".weight")).unwrap();
        let w = vs.variables()[&first].shallow_clone();
        let _ = tch::no_grad(|| w.get(0).fill_(0.5));
        let changed = logits(&net);
        assert!(
            changed.iter().flatten().zip(got.iter().flatten()).any(|(a, b)| (a - b).abs() > 1e-6),
            "{name}: a changed weight changed nothing"
        );
    }
}

#[test]
fn a_parameter_set_that_does_not_fit_is_refused() {
    let cfg =
        pann_models::SmallCnnConfig { channels: vec![4], num_classes: 3, batch_norm: true, in_channels: 1, image_size: 8, bn_eps: 1e-5 };
    let network = cfg.build().unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    GraphNet::new(&vs.root(), &network).unwrap();
    let e = load_params(&vs, &pann_models::Params::new()).unwrap_err().to_string();
    assert!(e.contains("no parameter"), "{e}");
}
