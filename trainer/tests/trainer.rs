//! Short CPU tests of the trainer on real CIFAR-10 images (the 64 test
//! images shipped in models/tests/data), with tiny networks and few steps.

use pann_approx::{Alpha, SignPoly};
use pann_models::{LoadedModel, PlainExecutor, ReluMode, ResNetConfig};
use pann_trainer::act::{PannRelu, PolyGrad};
use pann_trainer::data::{make_batch, Normalisation};
use pann_trainer::export::{export, ExportOptions};
use pann_trainer::net::{ExactRelu, ResNet};
use pann_trainer::recipe::{Preset, Recipe};
use pann_trainer::train::{train, TrainOptions, Trained};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// A CIFAR-10 binary directory with the 64 shipped images as both the
/// training batch and the test batch.
fn data_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let src = repo().join("models/tests/data/test_batch_first64.bin");
    std::fs::copy(&src, d.path().join("data_batch_1.bin")).unwrap();
    std::fs::copy(&src, d.path().join("test_batch.bin")).unwrap();
    d
}

fn tiny() -> ResNetConfig {
    ResNetConfig { widths: [4, 8, 16], ..ResNetConfig::cifar10(8) }
}

fn options(data: &Path, run: &Path, arch: ResNetConfig, recipe: Recipe) -> TrainOptions {
    tch::set_num_threads(1);
    TrainOptions {
        architecture: arch,
        recipe,
        normalisation: Normalisation::Cifar10,
        data_dir: data.into(),
        train_limit: 64,
        test_limit: 64,
        run_dir: run.into(),
        seed: 1,
        device: Device::Cpu,
        resume: false,
        init: None,
        max_epochs_now: None,
        progress: false,
    }
}

fn quick(preset: Preset, epochs: usize) -> Recipe {
    Recipe { epochs, batch_size: 32, lr: 0.05, augment: false, ..Recipe::preset(preset) }
}

#[test]
fn a_few_training_steps_lower_the_loss() {
    let data = data_dir();
    let run = tempfile::tempdir().unwrap();
    let recipe = Recipe { lr: 0.1, ..quick(Preset::Baseline, 25) };
    let t = train(&options(data.path(), run.path(), tiny(), recipe)).unwrap();
    let h = &t.meta.history;
    assert_eq!(h.len(), 25);
    let (first, last) = (h[0].train_loss, h[24].train_loss);
    assert!(last < 0.75 * first, "loss {first} -> {last}");
}

fn tch_logits(t: &Trained, n: usize) -> Vec<Vec<f64>> {
    let idx: Vec<usize> = (0..n).collect();
    let (x, _) = make_batch(&t.data.test, &idx, &t.input_spec(), None, Device::Cpu);
    let out = tch::no_grad(|| t.net.forward(&x, false, &mut ExactRelu)).to_kind(Kind::Double);
    (0..n).map(|i| Vec::<f64>::try_from(&out.get(i as i64)).unwrap()).collect()
}

#[test]
fn export_loads_in_models_crate_with_the_same_logits() {
    let data = data_dir();
    let run = tempfile::tempdir().unwrap();
    // ResNet-20 itself, so every tensor name of the real architecture is checked.
    let t = train(&options(data.path(), run.path(), ResNetConfig::cifar10(20), quick(Preset::Baseline, 1))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let eo = ExportOptions {
        name: "r20".into(),
        out_dir: out.path().into(),
        calib_images: 64,
        margin: 1.1,
        default_alpha: Alpha::new(9).unwrap(),
    };
    let card = export(&t, &eo).unwrap();
    let m = LoadedModel::load(&card).unwrap();
    assert_eq!(m.card.relu_bounds.len(), 19);
    let exec = PlainExecutor::new(&m.model, ReluMode::Exact).unwrap();
    let want = tch_logits(&t, 16);
    for (i, w) in want.iter().enumerate() {
        let got = exec.forward(&m.card.input.normalise(t.data.test.image(i))).unwrap().logits;
        for (g, w) in got.iter().zip(w) {
            assert!((g - w).abs() < 1e-4, "image {i}: models crate {g} vs tch {w}");
        }
    }
    // The card carries the training facts.
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&card).unwrap()).unwrap();
    assert_eq!(j["trainer"]["epochs_done"], 1);
    // And the PANN mode of the exported card runs.
    let pann = PlainExecutor::new(&m.model, m.card.pann_mode(Alpha::new(12).unwrap()).unwrap()).unwrap();
    assert!(pann.forward(&m.card.input.normalise(t.data.test.image(0))).unwrap().logits.iter().all(|v| v.is_finite()));
}

#[test]
fn akamaster_weights_load_into_the_tch_network_with_the_same_logits() {
    tch::set_num_threads(1);
    let card = repo().join("models/assets/resnet20-akamaster.card.json");
    let m = LoadedModel::load(&card).unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let net = ResNet::new(&vs.root(), &ResNetConfig::cifar10(20)).unwrap();
    pann_trainer::checkpoint::load_init(&vs, &card).unwrap();
    let set = pann_models::ImageSet::read_file(repo().join("models/tests/data/test_batch_first64.bin")).unwrap();
    let idx: Vec<usize> = (0..8).collect();
    let (x, _) = make_batch(&set, &idx, &m.card.input, None, Device::Cpu);
    let out = tch::no_grad(|| net.forward(&x, false, &mut ExactRelu)).to_kind(Kind::Double);
    let exec = PlainExecutor::new(&m.model, ReluMode::Exact).unwrap();
    for i in 0..8 {
        let w = Vec::<f64>::try_from(&out.get(i as i64)).unwrap();
        let g = exec.forward(&m.card.input.normalise(set.image(i))).unwrap().logits;
        for (g, w) in g.iter().zip(&w) {
            assert!((g - w).abs() < 1e-4, "image {i}: {g} vs {w}");
        }
    }
}

#[test]
fn resume_continues_from_the_saved_epoch() {
    let data = data_dir();
    let run = tempfile::tempdir().unwrap();
    let mut o = options(data.path(), run.path(), tiny(), quick(Preset::Baseline, 4));
    o.max_epochs_now = Some(2);
    let first = train(&o).unwrap();
    assert_eq!(first.meta.epochs_done, 2);
    o.max_epochs_now = None;
    // Without --resume an existing run is not overwritten.
    let e = train(&o).err().expect("refuses to overwrite").to_string();
    assert!(e.contains("--resume"), "{e}");
    o.resume = true;
    let resumed = train(&o).unwrap();
    assert_eq!(resumed.meta.epochs_done, 4);
    let epochs: Vec<usize> = resumed.meta.history.iter().map(|h| h.epoch).collect();
    assert_eq!(epochs, vec![1, 2, 3, 4]);
    for (a, b) in resumed.meta.history.iter().zip(&first.meta.history) {
        // (through JSON: equal up to float printing)
        assert!((a.train_loss - b.train_loss).abs() < 1e-12 && a.test_accuracy == b.test_accuracy);
    }
    // Same losses as an uninterrupted run: weights, momentum and per-epoch
    // randomness were all restored.
    let run2 = tempfile::tempdir().unwrap();
    let whole = train(&options(data.path(), run2.path(), tiny(), quick(Preset::Baseline, 4))).unwrap();
    for (a, b) in resumed.meta.history.iter().zip(&whole.meta.history) {
        assert!((a.train_loss - b.train_loss).abs() < 1e-4, "epoch {}: {} vs {}", a.epoch, a.train_loss, b.train_loss);
    }
}

#[test]
fn a_corrupt_checkpoint_is_a_clear_error() {
    let data = data_dir();
    let run = tempfile::tempdir().unwrap();
    let mut o = options(data.path(), run.path(), tiny(), quick(Preset::Baseline, 2));
    o.max_epochs_now = Some(1);
    train(&o).unwrap();
    o.resume = true;
    let tensors = run.path().join("checkpoint.safetensors");
    let bytes = std::fs::read(&tensors).unwrap();
    std::fs::write(&tensors, &bytes[..bytes.len() / 2]).unwrap();
    let e = train(&o).err().expect("truncated tensors").to_string();
    assert!(e.contains("checkpoint.safetensors") && e.contains("corrupt"), "{e}");
    std::fs::write(run.path().join("checkpoint.json"), "{ not json").unwrap();
    let e = train(&o).err().expect("broken json").to_string();
    assert!(e.contains("checkpoint.json") && e.contains("not a valid checkpoint"), "{e}");
}

#[test]
fn a_wrong_data_directory_is_a_clear_error() {
    let run = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let e = train(&options(empty.path(), run.path(), tiny(), quick(Preset::Baseline, 1))).err().expect("no data").to_string();
    assert!(e.contains(&empty.path().display().to_string()) && e.contains("data_batch_1.bin"), "{e}");
}

#[test]
fn paper_and_finetune_recipes_run() {
    let data = data_dir();
    let run = tempfile::tempdir().unwrap();
    let t = train(&options(data.path(), run.path(), tiny(), quick(Preset::Paper, 2))).unwrap();
    assert!(t.meta.history.iter().all(|h| h.train_loss.is_finite()));
    let rm = t.meta.ngnv_running_max.clone().expect("NGNV maxima are checkpointed");
    assert!(rm.len() == 7 && rm.iter().all(|&m| m > 0.0), "{rm:?}");
    let ft_run = tempfile::tempdir().unwrap();
    let mut r = quick(Preset::Finetune, 1);
    if let Some(f) = &mut r.finetune {
        f.calib_images = 64;
        f.alpha = Alpha::new(4).unwrap();
    }
    let mut o = options(data.path(), ft_run.path(), tiny(), r);
    o.init = Some(run.path().into());
    let ft = train(&o).unwrap();
    let h = &ft.meta.history[0];
    assert!(h.train_loss.is_finite() && h.test_accuracy_pann.is_some());
    assert_eq!(ft.meta.pann_bounds.as_ref().map(|b| b.len()), Some(7));
    // The export keeps the bounds the polynomial was trained with, and its alpha.
    let out = tempfile::tempdir().unwrap();
    let eo = ExportOptions {
        name: "ft".into(),
        out_dir: out.path().into(),
        calib_images: 64,
        margin: 1.1,
        default_alpha: Alpha::new(9).unwrap(),
    };
    let card = LoadedModel::load(export(&ft, &eo).unwrap()).unwrap().card;
    assert_eq!(card.default_alpha.get(), 4);
    let trained: Vec<f64> = ft.meta.pann_bounds.clone().unwrap();
    for (site, b) in ft.net.sites().iter().zip(&trained) {
        assert!((card.relu_bounds[site] - b).abs() <= 1e-12 * b, "{site}");
    }
    // finetune without initial weights is refused
    let run3 = tempfile::tempdir().unwrap();
    let e = train(&options(data.path(), run3.path(), tiny(), quick(Preset::Finetune, 1))).err().expect("needs init").to_string();
    assert!(e.contains("--init"), "{e}");
}

#[test]
fn tch_pann_relu_matches_the_f64_polynomial() {
    for alpha in [7, 9, 14] {
        let poly = SignPoly::for_alpha(Alpha::new(alpha).unwrap());
        let xs: Vec<f64> = (0..201).map(|i| (i as f64 - 100.0) * 0.07).collect();
        let act = PannRelu { poly: poly.clone(), site_polys: Vec::new(), bounds: vec![7.5], grad: PolyGrad::Exact };
        let y = act.poly_relu(&Tensor::from_slice(&xs), 7.5);
        let y = Vec::<f64>::try_from(&y).unwrap();
        for (x, y) in xs.iter().zip(&y) {
            assert!((poly.relu(*x, 7.5) - y).abs() < 1e-12, "alpha {alpha}, x {x}");
        }
    }
}

#[test]
fn sided_pann_probe_runs_on_the_shipped_model() {
    tch::set_num_threads(1);
    let card = repo().join("models/assets/resnet20-akamaster.card.json");
    let set = pann_models::ImageSet::read_file(repo().join("models/tests/data/test_batch_first64.bin")).unwrap();
    let rows = pann_trainer::eval::probe_sides(&card, &set, 8, &[Alpha::new(14).unwrap()], false, |_| {}).unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    // At 2^-14 with calibrated bounds every variant is as accurate as exact ReLU on these images.
    for v in [r.both, r.negative_only, r.positive_only] {
        assert!((v - r.exact).abs() <= 1.0 / 8.0 + 1e-12, "{r:?}");
    }
    // ... and the losses are those of exact ReLU up to the tiny approximation error.
    for l in [r.both_loss, r.negative_only_loss, r.positive_only_loss] {
        assert!(r.exact_loss > 0.0 && (l - r.exact_loss).abs() < 0.05 * r.exact_loss, "{r:?}");
    }
    // One bound for every site (the largest) is another configuration: at
    // 2^-6 the PANN's loss changes (the flag was once ignored by this probe).
    let a6 = [Alpha::new(6).unwrap()];
    let per_layer = pann_trainer::eval::probe_sides(&card, &set, 8, &a6, false, |_| {}).unwrap();
    let global = pann_trainer::eval::probe_sides(&card, &set, 8, &a6, true, |_| {}).unwrap();
    assert_ne!(per_layer[0].both_loss, global[0].both_loss);
}

/// The shipped Fashion-MNIST subset (512 training, 128 test images, IDX).
fn fashion_dir() -> PathBuf {
    repo().join("models/tests/data/fashion-mnist-small")
}

fn fashion_options(run: &Path, arch: ResNetConfig, recipe: Recipe) -> TrainOptions {
    TrainOptions { normalisation: Normalisation::Auto, train_limit: 256, test_limit: 128, ..options(&fashion_dir(), run, arch, recipe) }
}

#[test]
fn fashion_mnist_trains_with_its_own_shape_and_normalisation() {
    let run = tempfile::tempdir().unwrap();
    let recipe = Recipe { lr: 0.1, augment: true, ..quick(Preset::Baseline, 12) };
    let t = train(&fashion_options(run.path(), tiny(), recipe)).unwrap();
    // The input shape and the normalisation follow the data.
    assert_eq!((t.meta.architecture.in_channels, t.meta.architecture.image_size), (1, 28));
    assert_eq!(t.meta.normalisation, Normalisation::FashionMnist);
    let h = &t.meta.history;
    let (first, last) = (h[0].train_loss, h[h.len() - 1].train_loss);
    assert!(last < 0.75 * first, "loss {first} -> {last}");
}

#[test]
fn fashion_mnist_export_loads_in_models_crate_with_the_same_logits() {
    let run = tempfile::tempdir().unwrap();
    let t = train(&fashion_options(run.path(), ResNetConfig::cifar10(20), quick(Preset::Baseline, 1))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let eo = ExportOptions {
        name: "fm20".into(),
        out_dir: out.path().into(),
        calib_images: 128,
        margin: 1.1,
        default_alpha: Alpha::new(9).unwrap(),
    };
    let card = export(&t, &eo).unwrap();
    let m = LoadedModel::load(&card).unwrap();
    assert_eq!(m.network.input_shape(), pann_models::Shape::new(1, 28, 28));
    assert_eq!(m.card.input.mean.len(), 1);
    let exec = PlainExecutor::new(&m.model, ReluMode::Exact).unwrap();
    for (i, w) in tch_logits(&t, 8).iter().enumerate() {
        let got = exec.forward(&m.card.input.normalise(t.data.test.image(i))).unwrap().logits;
        for (g, w) in got.iter().zip(w) {
            assert!((g - w).abs() < 1e-4, "image {i}: models crate {g} vs tch {w}");
        }
    }
    // The card's PANN mode runs on 1x28x28 inputs.
    let pann = PlainExecutor::new(&m.model, m.card.pann_mode(Alpha::new(9).unwrap()).unwrap()).unwrap();
    assert!(pann.forward(&m.card.input.normalise(t.data.test.image(0))).unwrap().logits.iter().all(|v| v.is_finite()));
}

#[test]
fn data_that_does_not_fit_the_run_is_a_clear_error() {
    // RGB statistics on gray images.
    let run = tempfile::tempdir().unwrap();
    let o = TrainOptions { normalisation: Normalisation::Imagenet, ..fashion_options(run.path(), tiny(), quick(Preset::Baseline, 1)) };
    let e = train(&o).err().expect("refuses 3-channel statistics for 1-channel data").to_string();
    assert!(e.contains("Imagenet") && e.contains("3 channel") && e.contains("have 1"), "{e}");
    // A CIFAR-10 run resumed on Fashion-MNIST.
    let data = data_dir();
    let mut o = options(data.path(), run.path(), tiny(), quick(Preset::Baseline, 2));
    o.max_epochs_now = Some(1);
    train(&o).unwrap();
    let o = TrainOptions { resume: true, max_epochs_now: None, ..fashion_options(run.path(), tiny(), quick(Preset::Baseline, 2)) };
    let e = train(&o).err().expect("refuses other-shaped data").to_string();
    assert!(e.contains("1x28x28") && e.contains("3x32x32"), "{e}");
}
