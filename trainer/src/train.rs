//! The training loop: one function that starts, resumes or fine-tunes a run,
//! checkpointing after every epoch.

use crate::act::{MaxRecorder, NgnvLeak, PannRelu};
use crate::checkpoint::{self, CheckpointMeta, EpochLog};
use crate::data::{make_batch, Normalisation, TrainData};
use crate::error::{Result, TrainerError};
use crate::net::{Activation, ExactRelu, ResNet};
use crate::optim::Sgd;
use crate::recipe::Recipe;
use crate::rng::SplitMix64;
use indicatif::{ProgressBar, ProgressStyle};
use pann_approx::SignPoly;
use pann_models::{ImageSet, InputSpec, ResNetConfig};
use std::path::PathBuf;
use std::time::Instant;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// What to train and where.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The network of a new run (input channels and size come from the data).
    pub architecture: ResNetConfig,
    /// The recipe of a new run.
    pub recipe: Recipe,
    /// The input normalisation of a new run (`Auto`: the dataset's own).
    pub normalisation: Normalisation,
    /// The data directory (CIFAR-10 binary or IDX files).
    pub data_dir: PathBuf,
    /// At most this many training images (a resumed run reads as many as it used).
    pub train_limit: usize,
    /// At most this many test images for the per-epoch accuracy.
    pub test_limit: usize,
    /// Checkpoint directory of the run.
    pub run_dir: PathBuf,
    /// The seed of a new run. A resumed run keeps the seed its checkpoint
    /// records, for shuffling, augmentation and libtorch's generator (NGNV's
    /// noise, reseeded every epoch), so resuming reproduces the run.
    pub seed: u64,
    /// Where the tensors live.
    pub device: Device,
    /// Continue from `run_dir`'s checkpoint (its recipe wins over `recipe`).
    pub resume: bool,
    /// Initial weights (checkpoint dir or model card); required by finetune.
    pub init: Option<PathBuf>,
    /// Stop after this many epochs in this invocation (time slicing).
    pub max_epochs_now: Option<usize>,
    /// Show progress (a bar on a terminal, a line every 20 steps otherwise).
    pub progress: bool,
}

/// A trained (or partially trained) run.
pub struct Trained {
    /// The variables: weights and BatchNorm statistics.
    pub vs: VarStore,
    /// The network built on `vs`.
    pub net: ResNet,
    /// What the checkpoint records (recipe, history, bounds, ...).
    pub meta: CheckpointMeta,
    /// The images of the run.
    pub data: TrainData,
}

impl Trained {
    /// The run's input normalisation (what the exported card records).
    pub fn input_spec(&self) -> InputSpec {
        self.meta.normalisation.spec()
    }
}

/// Exact-ReLU (or any activation's) accuracy of `net` on `set`, eval mode.
pub fn accuracy(net: &ResNet, set: &ImageSet, spec: &InputSpec, device: Device, act: &mut dyn Activation) -> f64 {
    if set.is_empty() {
        return 0.0;
    }
    let mut correct = 0i64;
    tch::no_grad(|| {
        let idx: Vec<usize> = (0..set.len()).collect();
        for chunk in idx.chunks(500) {
            let (x, y) = make_batch(set, chunk, spec, None, device);
            let pred = net.forward(&x, false, act).argmax(-1, false);
            correct += pred.eq_tensor(&y).sum(Kind::Int64).int64_value(&[]);
        }
    });
    correct as f64 / set.len() as f64
}

/// Per-site max |ReLU input| over the first `n` training images (eval mode).
pub fn calibrate_max(net: &ResNet, set: &ImageSet, n: usize, spec: &InputSpec, device: Device) -> Vec<f64> {
    let mut rec = MaxRecorder { max_abs: vec![0.0; net.sites().len()] };
    let idx: Vec<usize> = (0..n.min(set.len())).collect();
    tch::no_grad(|| {
        for chunk in idx.chunks(500) {
            let (x, _) = make_batch(set, chunk, spec, None, device);
            let _ = net.forward(&x, false, &mut rec);
        }
    });
    rec.max_abs
}

/// The input shape comes from the data; the normalisation must fit its channels.
fn fresh_meta(o: &TrainOptions, data: &TrainData) -> Result<CheckpointMeta> {
    let shape = data.shape();
    if shape.h != shape.w {
        return Err(TrainerError::Data {
            dir: data.dir.clone(),
            reason: format!("images are {}x{}; the ResNets need square images", shape.h, shape.w),
        });
    }
    let normalisation = o.normalisation.resolve(data.kind);
    let channels = normalisation.spec().mean.len();
    if channels != shape.c {
        return Err(TrainerError::Config(format!(
            "normalisation {normalisation:?} is for {channels} channel(s), the images in {} have {}",
            data.dir.display(),
            shape.c
        )));
    }
    Ok(CheckpointMeta {
        format: checkpoint::FORMAT.into(),
        epochs_done: 0,
        seed: o.seed,
        architecture: ResNetConfig { in_channels: shape.c, image_size: shape.h, ..o.architecture.clone() },
        normalisation,
        recipe: o.recipe.clone(),
        data_dir: o.data_dir.clone(),
        train_images: data.train.len(),
        test_images: data.test.len(),
        init: None,
        history: Vec::new(),
        ngnv_running_max: None,
        pann_bounds: None,
        tensors_sha256: String::new(),
    })
}

/// A resumed or restored run must see images of the shape it was built for.
fn check_shape(meta: &CheckpointMeta, data: &TrainData) -> Result<()> {
    let (a, s) = (&meta.architecture, data.shape());
    if (a.in_channels, a.image_size, a.image_size) != (s.c, s.h, s.w) {
        return Err(TrainerError::Data {
            dir: data.dir.clone(),
            reason: format!(
                "images are {}x{}x{}, the run was trained on {}x{}x{}",
                s.c, s.h, s.w, a.in_channels, a.image_size, a.image_size
            ),
        });
    }
    Ok(())
}

/// Train (or resume) according to `o`, checkpointing into `o.run_dir` after every epoch.
pub fn train(o: &TrainOptions) -> Result<Trained> {
    let vs = VarStore::new(o.device);
    let resuming = o.resume && checkpoint::exists(&o.run_dir);
    if !o.resume && checkpoint::exists(&o.run_dir) {
        return Err(TrainerError::Config(format!(
            "{} already holds a checkpoint: pass --resume to continue it or choose another run directory",
            o.run_dir.display()
        )));
    }
    let (meta, net, mut opt, data) = if resuming {
        let (meta, tensors) = checkpoint::read(&o.run_dir)?;
        // The run's own image counts (the directory may have moved: o.data_dir).
        let data = TrainData::load(&o.data_dir, meta.train_images, meta.test_images)?;
        check_shape(&meta, &data)?;
        let net = ResNet::new(&vs.root(), &meta.architecture)?;
        checkpoint::load_into(&vs, &tensors, "model.", &o.run_dir)?;
        let r = &meta.recipe;
        let mut opt = Sgd::new(&vs, r.momentum, r.weight_decay, r.nesterov);
        checkpoint::load_momentum(&mut opt, &tensors, &o.run_dir)?;
        (meta, net, opt, data)
    } else {
        o.recipe.validate()?;
        let data = TrainData::load(&o.data_dir, o.train_limit, o.test_limit)?;
        let mut meta = fresh_meta(o, &data)?;
        let net = ResNet::new(&vs.root(), &meta.architecture)?;
        ResNet::init_weights(&vs, o.seed);
        if let Some(init) = &o.init {
            meta.init = Some(checkpoint::load_init(&vs, init)?);
        } else if o.recipe.finetune.is_some() {
            return Err(TrainerError::Config("the finetune recipe needs --init (a checkpoint directory or a model card)".into()));
        }
        let r = &o.recipe;
        let opt = Sgd::new(&vs, r.momentum, r.weight_decay, r.nesterov);
        (meta, net, opt, data)
    };
    let mut t = Trained { vs, net, meta, data };
    let spec = t.input_spec();
    let recipe = t.meta.recipe.clone();

    // The activation of this run.
    let mut act: Box<dyn Activation> = if let Some(ft) = &recipe.finetune {
        let bounds = match &t.meta.pann_bounds {
            Some(b) => b.clone(),
            None => {
                let max = calibrate_max(&t.net, &t.data.train, ft.calib_images, &spec, o.device);
                let b: Vec<f64> = max.iter().map(|m| if *m > 0.0 { ft.margin * m } else { ft.margin }).collect();
                t.meta.pann_bounds = Some(b.clone());
                b
            }
        };
        let poly = SignPoly::for_alpha(ft.alpha);
        if !ft.site_alphas.is_empty() && ft.site_alphas.len() != t.net.sites().len() {
            return Err(TrainerError::Config(format!(
                "--ft-alphas gives {} alphas for {} ReLU sites",
                ft.site_alphas.len(),
                t.net.sites().len()
            )));
        }
        let site_polys = ft.site_alphas.iter().map(|&a| SignPoly::for_alpha(a)).collect();
        Box::new(PannRelu { poly, site_polys, bounds, grad: ft.grad })
    } else if let Some(ng) = &recipe.ngnv {
        Box::new(NgnvLeak::new(ng.clone(), t.net.sites().len(), t.meta.ngnv_running_max.clone()))
    } else {
        Box::new(ExactRelu)
    };

    let n = t.data.train.len();
    let bs = recipe.batch_size.min(n);
    let steps = n.div_ceil(bs);
    let start = t.meta.epochs_done;
    let end = match o.max_epochs_now {
        Some(k) => (start + k).min(recipe.epochs),
        None => recipe.epochs,
    };
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    for epoch in start..end {
        tch::manual_seed(t.meta.seed.wrapping_add(epoch as u64) as i64);
        let mut rng = SplitMix64::for_epoch(t.meta.seed, epoch, 0);
        let mut aug = SplitMix64::for_epoch(t.meta.seed, epoch, 1);
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        let pb = if o.progress { ProgressBar::new(steps as u64) } else { ProgressBar::hidden() };
        pb.set_style(
            ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} {msg} [{elapsed_precise}<{eta_precise}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.set_prefix(format!("{}/{}", epoch + 1, recipe.epochs));
        let t0 = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0i64, 0usize);
        let mut lr = recipe.lr;
        for (s, chunk) in order.chunks(bs).enumerate() {
            lr = recipe.lr_at(epoch, s, steps);
            let (x, y) = make_batch(&t.data.train, chunk, &spec, recipe.augment.then_some(&mut aug), o.device);
            let (logits, loss) = if recipe.mixup_alpha > 0.0 {
                let lam = rng.beta_symmetric(recipe.mixup_alpha);
                let mut p: Vec<i64> = (0..chunk.len() as i64).collect();
                rng.shuffle(&mut p);
                let perm = Tensor::from_slice(&p).to_device(o.device);
                let xm = &x * lam + x.index_select(0, &perm) * (1.0 - lam);
                let logits = t.net.forward(&xm, true, act.as_mut());
                let loss =
                    logits.cross_entropy_for_logits(&y) * lam + logits.cross_entropy_for_logits(&y.index_select(0, &perm)) * (1.0 - lam);
                (logits, loss)
            } else {
                let logits = t.net.forward(&x, true, act.as_mut());
                let loss = logits.cross_entropy_for_logits(&y);
                (logits, loss)
            };
            opt.zero_grad();
            loss.backward();
            opt.step(lr);
            let l = loss.double_value(&[]);
            if !l.is_finite() {
                return Err(TrainerError::Diverged { epoch: epoch + 1, loss: l });
            }
            loss_sum += l * chunk.len() as f64;
            correct += tch::no_grad(|| logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64).int64_value(&[]));
            seen += chunk.len();
            let ips = seen as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            let msg = format!(
                "loss {:.4} acc {:.2}% {:.0} img/s lr {:.4}",
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64,
                ips,
                lr
            );
            // indicatif draws nothing when stderr is not a terminal (nohup, CI): log lines instead.
            if o.progress && !tty && (s + 1) % 20 == 0 {
                eprintln!("epoch {} step {}/{steps}: {msg}", epoch + 1, s + 1);
            }
            pb.set_message(msg);
            pb.inc(1);
        }
        let secs = t0.elapsed().as_secs_f64();
        pb.finish_and_clear();
        let test_accuracy = accuracy(&t.net, &t.data.test, &spec, o.device, &mut ExactRelu);
        let test_accuracy_pann =
            if recipe.finetune.is_some() { Some(accuracy(&t.net, &t.data.test, &spec, o.device, act.as_mut())) } else { None };
        let log = EpochLog {
            epoch: epoch + 1,
            lr_end: lr,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            test_accuracy,
            test_accuracy_pann,
            seconds: secs,
            images_per_second: seen as f64 / secs.max(1e-9),
        };
        {
            eprintln!(
                "epoch {}/{}: loss {:.4}, train acc {:.2}%, test acc {:.2}%{}, {:.0} img/s, {:.0} s",
                log.epoch,
                recipe.epochs,
                log.train_loss,
                100.0 * log.train_accuracy,
                100.0 * log.test_accuracy,
                log.test_accuracy_pann.map(|a| format!(" (PANN in tch {:.2}%)", 100.0 * a)).unwrap_or_default(),
                log.images_per_second,
                log.seconds
            );
        }
        t.meta.history.push(log);
        t.meta.epochs_done = epoch + 1;
        if let Some(ng) = act_running_max(&recipe, act.as_ref()) {
            t.meta.ngnv_running_max = Some(ng);
        }
        checkpoint::save(&o.run_dir, &t.vs, &opt, &mut t.meta)?;
    }
    Ok(t)
}

/// Pull the NGNV running maxima out of the boxed activation (for checkpoints).
fn act_running_max(recipe: &Recipe, act: &dyn Activation) -> Option<Vec<f64>> {
    if recipe.ngnv.is_some() && recipe.finetune.is_none() {
        act.running_max()
    } else {
        None
    }
}

/// Restore a run from its checkpoint without training (for export).
pub fn load_run(run_dir: &std::path::Path, data_dir: Option<&std::path::Path>, device: Device) -> Result<Trained> {
    let (meta, tensors) = checkpoint::read(run_dir)?;
    let vs = VarStore::new(device);
    let net = ResNet::new(&vs.root(), &meta.architecture)?;
    checkpoint::load_into(&vs, &tensors, "model.", run_dir)?;
    let dir = data_dir.map(PathBuf::from).unwrap_or_else(|| meta.data_dir.clone());
    let data = TrainData::load(&dir, meta.train_images, meta.test_images)?;
    check_shape(&meta, &data)?;
    Ok(Trained { vs, net, meta, data })
}
