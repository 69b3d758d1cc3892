//! The shipped akamaster ResNet-20: loading through its card, the strict
//! import errors, BN folding, and agreement with PyTorch's own logits.

mod common;

use pann_approx::Alpha;
use pann_models::model::{read_safetensors, write_safetensors};
use pann_models::{fold_batch_norm, sha256_hex, LoadedModel, Model, ModelCard, ModelError, PlainExecutor, ReluMode, ResNetConfig};
use std::path::Path;

#[test]
fn architecture_matches_pytorch_names() {
    let net = ResNetConfig::cifar10(20).build().unwrap();
    let specs = net.param_specs();
    assert_eq!(specs.len(), 97, "akamaster ResNet-20 has 97 tensors");
    let bytes = std::fs::read(common::crate_dir().join("assets/resnet20-akamaster.safetensors")).unwrap();
    let params = read_safetensors(&bytes).unwrap();
    for s in &specs {
        assert_eq!(params[&s.name].shape, s.shape, "{}", s.name);
    }
    let sites = net.activation_sites();
    assert_eq!(sites.len(), 19);
    assert_eq!(sites[0], "relu");
    assert_eq!(sites[1], "layer1.0.relu1");
    assert_eq!(sites[18], "layer3.2.relu2");
    // Other family members build.
    for d in [32, 56] {
        let n = ResNetConfig::cifar10(d).build().unwrap();
        assert_eq!(n.activation_sites().len(), 1 + 2 * 3 * (d - 2) / 6);
    }
    assert!(ResNetConfig::cifar10(21).build().is_err());
}

#[test]
fn network_serde_round_trip() {
    let m = common::load_akamaster();
    let json = serde_json::to_string(&m.model.network).unwrap();
    let back: pann_models::Network = serde_json::from_str(&json).unwrap();
    back.validate().unwrap();
    assert_eq!(back, m.model.network);
}

#[test]
fn folding_preserves_logits() {
    let m = common::load_akamaster();
    let raw = Model::from_safetensors_file(m.network.clone(), common::crate_dir().join("assets/resnet20-akamaster.safetensors")).unwrap();
    assert_eq!(fold_batch_norm(&raw).unwrap(), m.model);
    assert!(!m.model.network.nodes.iter().any(|n| matches!(n.op, pann_models::Op::BatchNorm { .. })));
    let data = common::first64();
    let x = m.card.input.normalise(data.image(0));
    let a = PlainExecutor::new(&raw, ReluMode::Exact).unwrap().forward(&x).unwrap();
    let b = PlainExecutor::new(&m.model, ReluMode::Exact).unwrap().forward(&x).unwrap();
    for (u, v) in a.logits.iter().zip(&b.logits) {
        assert!((u - v).abs() < 1e-9, "{u} vs {v}");
    }
}

#[derive(serde::Deserialize)]
struct Reference {
    indices: Vec<usize>,
    labels: Vec<u8>,
    logits: Vec<Vec<f64>>,
}

#[test]
fn logits_match_pytorch() {
    let path = common::crate_dir().join("tests/data/resnet20_pytorch_logits.json");
    let reference: Reference = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let m = common::load_akamaster();
    let data = common::first64();
    let exec = PlainExecutor::new(&m.model, ReluMode::Exact).unwrap();
    assert_eq!(reference.indices.len(), reference.logits.len());
    let mut worst = 0.0f64;
    for (k, &i) in reference.indices.iter().enumerate() {
        assert_eq!(data.labels[i], reference.labels[k]);
        let f = exec.forward(&m.card.input.normalise(data.image(i))).unwrap();
        for (a, b) in f.logits.iter().zip(&reference.logits[k]) {
            worst = worst.max((a - b).abs());
        }
    }
    eprintln!("max |logit - pytorch| over {} images: {worst:e}", reference.indices.len());
    assert!(worst < 1e-4, "max deviation {worst}");
}

fn card_in(dir: &Path, weights: &[u8]) -> std::path::PathBuf {
    let mut card = ModelCard::from_file(common::card_path()).unwrap();
    card.weights = "w.safetensors".into();
    card.weights_sha256 = sha256_hex(weights);
    common::write(&dir.join("w.safetensors"), weights);
    let p = dir.join("card.json");
    common::write(&p, card.to_json().as_bytes());
    p
}

fn load_modified(tag: &str, edit: impl FnOnce(&mut pann_models::Params)) -> ModelError {
    let bytes = std::fs::read(common::crate_dir().join("assets/resnet20-akamaster.safetensors")).unwrap();
    let mut params = read_safetensors(&bytes).unwrap();
    edit(&mut params);
    let dir = common::tmp_dir(tag);
    let out = write_safetensors(&params, false).unwrap();
    LoadedModel::load(card_in(&dir, &out)).unwrap_err()
}

#[test]
fn import_errors_name_the_tensor() {
    let e = load_modified("missing", |p| {
        p.remove("layer2.1.bn2.running_var");
    });
    assert!(matches!(&e, ModelError::MissingTensor { name } if name == "layer2.1.bn2.running_var"), "{e}");
    assert!(e.to_string().contains("layer2.1.bn2.running_var"));

    let e = load_modified("extra", |p| {
        p.insert("layer4.0.conv1.weight".into(), pann_models::Tensor::zeros(vec![1]));
    });
    assert!(matches!(&e, ModelError::ExtraTensor { name } if name == "layer4.0.conv1.weight"), "{e}");

    let e = load_modified("shape", |p| {
        p.insert("linear.weight".into(), pann_models::Tensor::zeros(vec![10, 32]));
    });
    assert!(matches!(&e, ModelError::ShapeMismatch { name, .. } if name == "linear.weight"), "{e}");

    let e = load_modified("nan", |p| {
        p.get_mut("layer1.0.conv2.weight").unwrap().data[7] = f64::NAN;
    });
    assert!(matches!(&e, ModelError::NonFinite { name, index: 7 } if name == "layer1.0.conv2.weight"), "{e}");
}

#[test]
fn wrong_dtype_is_an_error() {
    // Hand-made safetensors with one F16 tensor.
    let header = r#"{"conv1.weight":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    let e = read_safetensors(&bytes).unwrap_err();
    assert!(matches!(&e, ModelError::WrongDtype { name, .. } if name == "conv1.weight"), "{e}");
    assert!(matches!(read_safetensors(b"not a safetensors file").unwrap_err(), ModelError::Safetensors(_)));
}

#[test]
fn weights_not_matching_card_are_rejected() {
    let bytes = std::fs::read(common::crate_dir().join("assets/resnet20-akamaster.safetensors")).unwrap();
    let dir = common::tmp_dir("digest");
    let card = card_in(&dir, &bytes);
    // Same size, one byte changed in a tensor's data.
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    common::write(&dir.join("w.safetensors"), &tampered);
    let e = LoadedModel::load(&card).unwrap_err();
    assert!(matches!(e, ModelError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains("w.safetensors"));
}

#[test]
fn pann_at_high_precision_tracks_exact() {
    let m = common::load_akamaster();
    let data = common::first64();
    let sites = m.model.network.activation_sites();
    let exact = PlainExecutor::new(&m.model, ReluMode::Exact).unwrap();
    let x = m.card.input.normalise(data.image(3));
    let e = exact.forward(&x).unwrap();
    // A generous global bound keeps every input in range.
    let pann = PlainExecutor::new(&m.model, ReluMode::pann_global(Alpha::new(14).unwrap(), &sites, 100.0).unwrap()).unwrap();
    let p = pann.forward(&x).unwrap();
    assert!(!p.any_exceeded());
    assert_eq!(e.predicted(), p.predicted());
    // A bound below the first layer's inputs is counted as exceeded.
    let tight = PlainExecutor::new(&m.model, ReluMode::pann_global(Alpha::new(9).unwrap(), &sites, 0.01).unwrap()).unwrap();
    assert!(tight.forward(&x).unwrap().sites[0].exceeded > 0);
    // Missing bound -> error naming the site.
    let mut partial: std::collections::BTreeMap<String, f64> = sites.iter().map(|s| (s.to_string(), 10.0)).collect();
    partial.remove("layer3.1.relu1");
    let err = PlainExecutor::new(&m.model, ReluMode::pann(Alpha::new(9).unwrap(), partial).unwrap()).unwrap_err();
    assert!(matches!(&err, ModelError::MissingBound { site } if site == "layer3.1.relu1"), "{err}");
}

#[test]
fn card_bounds_keep_shipped_images_in_range() {
    let m = common::load_akamaster();
    assert_eq!(m.card.relu_bounds.len(), 19, "the shipped card carries calibrated per-layer bounds");
    let data = common::first64();
    let exact = PlainExecutor::new(&m.model, ReluMode::Exact).unwrap();
    let pann = PlainExecutor::new(&m.model, m.card.pann_mode(Alpha::new(9).unwrap()).unwrap()).unwrap();
    let input = |i: usize| m.card.input.normalise(data.image(i));
    let e = exact.forward_many(data.len(), input, None).unwrap();
    let p = pann.forward_many(data.len(), input, None).unwrap();
    assert!(p.iter().all(|f| !f.any_exceeded()));
    let same = e.iter().zip(&p).filter(|(a, b)| a.predicted() == b.predicted()).count();
    assert!(same >= 62, "alpha 9 per-layer agrees with exact ReLU on {same}/64");
}

#[test]
fn per_layer_alphas_in_a_card_are_validated_and_deployed() {
    let text = std::fs::read_to_string(common::card_path()).unwrap();
    let card: ModelCard = serde_json::from_str(&text).unwrap();
    let path = std::path::Path::new("card.json");
    let sites: Vec<String> = card.relu_bounds.keys().cloned().collect();
    let with = |f: &dyn Fn(&mut ModelCard)| {
        let mut c = card.clone();
        f(&mut c);
        c.check(path).map(|_| c)
    };
    // Every site, alphas 4..14: fine, and the deployed mode uses them.
    let ok =
        with(&|c| c.relu_alphas = sites.iter().enumerate().map(|(i, s)| (s.clone(), Alpha::new(4 + (i as u32 % 11)).unwrap())).collect())
            .unwrap();
    assert_eq!(ok.site_alphas()[&sites[0]].get(), 4);
    assert!(matches!(ok.deployed_mode().unwrap(), ReluMode::Pann { ref polys, .. } if polys.len() == 11));
    // Without relu_alphas, every site runs at default_alpha.
    assert!(card.site_alphas().values().all(|&a| a == card.default_alpha));
    // An alpha outside 4..14 (refused when the JSON is read), an unknown site, or only some sites:
    // errors naming the problem.
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["relu_alphas"] = sites.iter().map(|s| (s.clone(), serde_json::json!(3))).collect::<serde_json::Map<_, _>>().into();
    let e = ModelCard::parse(json.to_string().as_bytes(), path).unwrap_err().to_string();
    assert!(e.contains("alpha 3") && e.contains("4..=14"), "{e}");
    let a9 = Alpha::new(9).unwrap();
    let err = |f: &dyn Fn(&mut ModelCard)| with(f).unwrap_err().to_string();
    let e = err(&|c| {
        c.relu_alphas = sites.iter().map(|s| (s.clone(), a9)).collect();
        c.relu_alphas.insert("layer9.relu".into(), a9);
    });
    assert!(e.contains("layer9.relu"), "{e}");
    let e = err(&|c| c.relu_alphas = [(sites[0].clone(), a9)].into_iter().collect());
    assert!(e.contains("every site"), "{e}");
    // A serialised card without relu_alphas has no such key (old readers are unaffected).
    assert!(!card.to_json().contains("relu_alphas"));
}

/// Negative control: a card whose default_alpha has no sign polynomial (15)
/// is refused at load, with a message naming the valid range; 14 loads.
#[test]
fn a_card_with_default_alpha_15_is_refused_at_load() {
    let text = std::fs::read_to_string(common::card_path()).unwrap();
    let path = std::path::Path::new("card.json");
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (alpha, ok) in [(15, false), (3, false), (14, true), (4, true)] {
        json["default_alpha"] = serde_json::json!(alpha);
        match ModelCard::parse(json.to_string().as_bytes(), path) {
            Ok(card) => assert!(ok && card.default_alpha.get() == alpha, "alpha {alpha} loaded"),
            Err(e) => {
                let e = e.to_string();
                assert!(!ok && e.contains(&format!("alpha {alpha}")) && e.contains("4..=14"), "{e}");
            }
        }
    }
    let dir = common::tmp_dir("alpha-15");
    json["default_alpha"] = serde_json::json!(15);
    std::fs::write(dir.join("card.json"), json.to_string()).unwrap();
    let e = LoadedModel::load(dir.join("card.json")).unwrap_err().to_string();
    assert!(e.contains("alpha 15") && e.contains("4..=14"), "{e}");
}
