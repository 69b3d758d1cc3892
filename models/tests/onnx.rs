//! ONNX import against an independent runtime: every committed model
//! (models/tests/data/onnx, made from PyTorch by scripts/onnx/make-models.sh,
//! with both exporters) imports, and the f64 executor's logits on the
//! recorded images equal onnxruntime's recorded logits. The akamaster
//! ResNet-20 from ONNX equals the same model loaded from safetensors.
//! Unsupported operators fail with the node's name and operator.

mod common;

use std::path::PathBuf;

use pann_models::onnx::{import::import, proto::decode_model};
use pann_models::{InputSpec, PlainExecutor, ReluMode};

fn data() -> PathBuf {
    common::models_dir().join("tests/data/onnx")
}

struct Case {
    file: String,
    input: InputSpec,
    pixels: Vec<Vec<u8>>,
    onnxruntime: Vec<Vec<f64>>,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut jsons: Vec<PathBuf> =
        std::fs::read_dir(data()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
    jsons.sort();
    for j in jsons {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&j).unwrap()).unwrap();
        let input: InputSpec = serde_json::from_value(v["input"].clone()).unwrap();
        let pixels: Vec<Vec<u8>> = serde_json::from_value(v["pixels"].clone()).unwrap();
        for (file, f) in v["files"].as_object().unwrap() {
            let onnxruntime = serde_json::from_value(f["onnxruntime_logits"].clone()).unwrap();
            out.push(Case { file: file.clone(), input: input.clone(), pixels: pixels.clone(), onnxruntime });
        }
    }
    assert!(out.len() >= 12, "the committed ONNX models are there");
    out
}

#[test]
fn every_committed_model_imports_and_matches_onnxruntime() {
    let mut report = Vec::new();
    for c in cases() {
        let bytes = std::fs::read(data().join(&c.file)).unwrap();
        let proto = decode_model(&bytes).unwrap_or_else(|e| panic!("{}: {e}", c.file));
        let im = import(&proto, &c.input).unwrap_or_else(|e| panic!("{}: {e}", c.file));
        let model = &im.model;
        let exec = PlainExecutor::new(model, ReluMode::Exact).unwrap();
        let mut worst = 0f64;
        for (px, want) in c.pixels.iter().zip(&c.onnxruntime) {
            let got = exec.forward(&im.input.normalise(px)).unwrap().logits;
            assert_eq!(got.len(), want.len(), "{}", c.file);
            for (g, w) in got.iter().zip(want) {
                let d = (g - w).abs() / w.abs().max(1.0);
                worst = worst.max(d);
            }
        }
        // onnxruntime computes in float32: relative differences of about 1e-6.
        assert!(worst < 1e-4, "{}: f64 executor vs onnxruntime differ by {worst:e} (relative)", c.file);
        report.push(format!("{}: {} nodes, max relative difference {worst:.1e}", c.file, model.network.nodes.len()));
    }
    eprintln!("{}", report.join("\n"));
}

/// The same weights through safetensors (the shipped card) and through ONNX
/// (exported by PyTorch from them): the same network and the same logits;
/// the option-A shortcut comes back as one op, so the secure executor runs it.
#[test]
fn akamaster_resnet20_from_onnx_equals_the_safetensors_model() {
    let m = common::load_akamaster();
    let bytes = std::fs::read(data().join("resnet20_akamaster.opset13.onnx")).unwrap();
    let im = import(&decode_model(&bytes).unwrap(), &m.card.input).unwrap();
    let onnx = pann_models::fold_batch_norm(&im.model).unwrap();
    assert_eq!(onnx.network.activation_sites().len(), m.model.network.activation_sites().len());
    assert!(onnx.network.nodes.iter().any(|n| matches!(n.op, pann_models::Op::ShortcutA { .. })), "option-A shortcuts fused");
    let (a, b) = (PlainExecutor::new(&m.model, ReluMode::Exact).unwrap(), PlainExecutor::new(&onnx, ReluMode::Exact).unwrap());
    let images = common::first64();
    for i in 0..8 {
        let x = m.card.input.normalise(images.image(i));
        let (la, lb) = (a.forward(&x).unwrap().logits, b.forward(&x).unwrap().logits);
        for (p, q) in la.iter().zip(&lb) {
            assert!((p - q).abs() < 1e-9, "image {i}: safetensors {p} vs onnx {q}");
        }
    }
}

/// A graph with an operator outside the supported set fails naming the node
/// and the operator (negative control: the same graph with the operator
/// replaced by a supported one imports).
#[test]
fn an_unsupported_operator_is_named() {
    let bytes = std::fs::read(data().join("mlp_fmnist.opset13.onnx")).unwrap();
    let mut proto = decode_model(&bytes).unwrap();
    let spec = InputSpec { mean: vec![0.0], std: vec![1.0] };
    let relu = proto.graph.nodes.iter().position(|n| n.op_type == "Relu").unwrap();
    let name = proto.graph.nodes[relu].name.clone();
    assert!(import(&proto, &spec).is_ok());
    proto.graph.nodes[relu].op_type = "Sigmoid".into();
    let e = import(&proto, &spec).unwrap_err().to_string();
    assert!(e.contains(&name) && e.contains("Sigmoid") && e.contains("unsupported"), "{e}");
}

/// An ONNX node `op(ins) -> out` for the hand-built graphs below.
fn node(op: &str, ins: &[&str], out: &str) -> pann_models::onnx::proto::NodeProto {
    pann_models::onnx::proto::NodeProto {
        name: format!("/{op}_{out}"),
        op_type: op.into(),
        inputs: ins.iter().map(|s| s.to_string()).collect(),
        outputs: vec![out.into()],
        ..Default::default()
    }
}

/// Folding a constant into the input normalisation must not change what
/// other readers of the input see: `y = Identity(x) - 0.5`, `z = relu(x)`,
/// out `y + z` keeps the Sub as an op (the alias hides the raw input's second
/// reader from a count by name) and computes `(x - 0.5) + relu(x)`; the
/// control, `relu(x - 0.5)` with the Sub the input's only reader, folds it
/// into the normalisation.
#[test]
fn a_constant_after_an_alias_of_the_input_is_not_folded_into_the_normalisation() {
    use pann_models::onnx::proto::{Dim, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfo};
    let graph = |nodes: Vec<NodeProto>| {
        let half = TensorProto { name: "half".into(), data_type: 1, float_data: vec![0.5], ..Default::default() };
        let vi = |name: &str| ValueInfo {
            name: name.into(),
            elem_type: 1,
            dims: vec![Dim::Param("N".into()), Dim::Value(1), Dim::Value(2), Dim::Value(2)],
        };
        ModelProto {
            graph: GraphProto { nodes, initializers: vec![half], inputs: vec![vi("x")], outputs: vec![vi("out")], ..Default::default() },
            ..Default::default()
        }
    };
    let aliased = graph(vec![
        node("Identity", &["x"], "x2"),
        node("Sub", &["x2", "half"], "y"),
        node("Relu", &["x"], "z"),
        node("Add", &["y", "z"], "out"),
    ]);
    let chain = graph(vec![node("Sub", &["x", "half"], "y"), node("Relu", &["y"], "out")]);
    let spec = InputSpec { mean: vec![0.0], std: vec![1.0] };
    let px = [0u8, 64, 191, 255];
    // (graph, the logits it computes from x = pixel / 255, whether the Sub stays an op)
    type Case = (ModelProto, fn(f64) -> f64, bool);
    let cases: [Case; 2] = [(aliased, |x| (x - 0.5) + x.max(0.0), true), (chain, |x| (x - 0.5).max(0.0), false)];
    for (proto, want, kept) in cases {
        let im = import(&proto, &spec).unwrap();
        let got = PlainExecutor::new(&im.model, ReluMode::Exact).unwrap().forward(&im.input.normalise(&px)).unwrap().logits;
        for (g, &p) in got.iter().zip(&px) {
            assert!((g - want(p as f64 / 255.0)).abs() < 1e-12, "{g} for pixel {p} (Sub kept: {kept})");
        }
        assert_eq!(im.model.network.nodes.iter().any(|n| matches!(n.op, pann_models::Op::Affine { .. })), kept);
    }
}

/// A positive scale after a ReLU moves into the convolution before it only
/// when nothing else reads that convolution: `c = conv(x) - 0.25` (the bias
/// Add folds into the conv, which is then read under the Add's name),
/// `out = 2 relu(c) + c` must keep the Mul (moving it would double the second
/// `c` too: the review's finding), while the control `out = 2 relu(c)` moves
/// it into the convolution.
#[test]
fn a_scale_after_a_relu_moves_into_the_layer_before_only_when_it_alone_reads_it() {
    use pann_models::onnx::proto::{Dim, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfo};
    let graph = |nodes: Vec<NodeProto>| {
        let t = |name: &str, dims: Vec<i64>, v: f32| TensorProto {
            name: name.into(),
            data_type: 1,
            dims,
            float_data: vec![v],
            ..Default::default()
        };
        let vi = |name: &str| ValueInfo {
            name: name.into(),
            elem_type: 1,
            dims: vec![Dim::Param("N".into()), Dim::Value(1), Dim::Value(1), Dim::Value(4)],
        };
        let inits = vec![t("w", vec![1, 1, 1, 1], 1.0), t("b", vec![], -0.25), t("two", vec![], 2.0)];
        ModelProto {
            graph: GraphProto { nodes, initializers: inits, inputs: vec![vi("x")], outputs: vec![vi("out")], ..Default::default() },
            ..Default::default()
        }
    };
    let head = || vec![node("Conv", &["x", "w"], "c"), node("Add", &["c", "b"], "cb"), node("Relu", &["cb"], "r")];
    let shared = graph([head(), vec![node("Mul", &["r", "two"], "m"), node("Add", &["m", "cb"], "out")]].concat());
    let alone = graph([head(), vec![node("Mul", &["r", "two"], "out")]].concat());
    let spec = InputSpec { mean: vec![0.0], std: vec![1.0] };
    let px = [0u8, 64, 191, 255];
    type Case = (ModelProto, fn(f64) -> f64, bool);
    let cases: [Case; 2] = [(shared, |x| 2.0 * (x - 0.25).max(0.0) + (x - 0.25), true), (alone, |x| 2.0 * (x - 0.25).max(0.0), false)];
    for (proto, want, kept) in cases {
        let im = import(&proto, &spec).unwrap();
        let got = PlainExecutor::new(&im.model, ReluMode::Exact).unwrap().forward(&im.input.normalise(&px)).unwrap().logits;
        for (g, &p) in got.iter().zip(&px) {
            assert!((g - want(p as f64 / 255.0)).abs() < 1e-12, "{g} for pixel {p} (Mul kept: {kept})");
        }
        assert_eq!(im.model.network.nodes.iter().any(|n| matches!(n.op, pann_models::Op::Affine(_))), kept);
    }
}
