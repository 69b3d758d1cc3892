//! `pann-train`: train CIFAR ResNets (on CIFAR-10 or Fashion-MNIST) with the baseline / paper / finetune
//! recipes, export them as safetensors + model card, and evaluate exported
//! models as PANNs at alpha 7..14. See docs/TRAINER.md.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use pann_approx::{Alpha, PER_LAYER_PREFIX};
use pann_models::ResNetConfig;
use pann_trainer::act::PolyGrad;
use pann_trainer::data::{open_dir, Normalisation};
use pann_trainer::eval::{evaluate_card, probe_sides, EvalRow};
use pann_trainer::export::{export, ExportOptions};
use pann_trainer::recipe::{Preset, Recipe, Schedule};
use pann_trainer::train::{load_run, train, TrainOptions};
use std::path::PathBuf;
use std::str::FromStr;
use tch::Device;

#[derive(Parser)]
#[command(
    name = "pann-train",
    version,
    about = "Train, export and evaluate PANN-friendly CIFAR ResNets on CIFAR-10 or Fashion-MNIST (tch/libtorch)"
)]
struct Cli {
    /// CPU threads for libtorch and for the f64 evaluation (0 = libtorch's default).
    #[arg(long, global = true, default_value_t = 0)]
    threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train (or resume, or fine-tune) and optionally export.
    Train(Box<TrainArgs>),
    /// Export a run's checkpoint as safetensors + model card.
    Export(ExportArgs),
    /// Accuracy of an exported model with exact ReLU and as a PANN at each alpha.
    Eval(EvalArgs),
    /// Insight (1): PANN error on negative inputs only vs positive inputs only (tch, f64).
    Sides(EvalArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
}

impl DeviceArg {
    fn device(self) -> Result<Device> {
        Ok(match self {
            DeviceArg::Auto => Device::cuda_if_available(),
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda if tch::Cuda::is_available() => Device::Cuda(0),
            DeviceArg::Cuda => bail!(
                "--device cuda: libtorch sees no CUDA device (the default install is CPU-only; on a GPU machine \
                 run `make torch TORCH_FLAGS=--full`, `cargo clean -p pann-trainer`, `make build`)"
            ),
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ScheduleArg {
    Cosine,
    Step,
}

#[derive(Args)]
struct TrainArgs {
    /// Data directory, recognised by its files: CIFAR-10 binary batches
    /// (data_batch_1..5.bin, test_batch.bin) or Fashion-MNIST IDX files
    /// (train-/t10k-images-idx3-ubyte[.gz] with their labels; Debian's
    /// dataset-fashion-mnist installs them in /usr/share/datasets/fashion-mnist).
    /// The network's input shape (3x32x32 or 1x28x28) follows the data.
    #[arg(long, default_value = "../shared/data/cifar-10-jpeg")]
    data: PathBuf,
    /// Run directory: checkpoints go here every epoch.
    #[arg(long)]
    run: PathBuf,
    #[arg(long, value_enum, default_value = "baseline")]
    preset: Preset,
    /// ResNet depth (6n+2: 20, 32, 56, ...).
    #[arg(long, default_value_t = 20)]
    depth: usize,
    /// Stage widths (option A needs w2 = 2 w1, w3 = 2 w2).
    #[arg(long, value_delimiter = ',', default_value = "16,32,64")]
    widths: Vec<usize>,
    /// Input normalisation, recorded in the card; `auto` uses the statistics
    /// of the dataset in --data (CIFAR-10 or Fashion-MNIST).
    #[arg(long, value_enum, default_value = "auto")]
    norm: Normalisation,
    /// Training images used: the first N of the training set (default: all of
    /// them, 50,000 for CIFAR-10, 60,000 for Fashion-MNIST).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Test images used for the per-epoch accuracy: the first N (default: all).
    #[arg(long)]
    test_limit: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
    /// Continue the checkpoint in --run (its stored recipe is used).
    #[arg(long)]
    resume: bool,
    /// Initial weights: a run directory or a model card (required by finetune).
    #[arg(long)]
    init: Option<PathBuf>,
    /// Stop after this many epochs in this invocation (resume later).
    #[arg(long)]
    stop_after: Option<usize>,
    #[arg(long)]
    no_progress: bool,
    /// Export when all epochs are done, under this name into --export-dir.
    #[arg(long)]
    export: Option<String>,
    #[arg(long)]
    export_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 5000)]
    calib_images: usize,
    #[arg(long, default_value_t = 1.1)]
    calib_margin: f64,
    // ---- recipe overrides ----
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    momentum: Option<f64>,
    #[arg(long)]
    nesterov: Option<bool>,
    #[arg(long)]
    weight_decay: Option<f64>,
    #[arg(long, value_enum)]
    schedule: Option<ScheduleArg>,
    /// Step schedule milestones (epochs).
    #[arg(long, value_delimiter = ',')]
    milestones: Option<Vec<usize>>,
    #[arg(long)]
    gamma: Option<f64>,
    #[arg(long)]
    warmup_epochs: Option<usize>,
    #[arg(long)]
    augment: Option<bool>,
    /// Mixup Beta(a, a); 0 disables.
    #[arg(long)]
    mixup_alpha: Option<f64>,
    /// NGNV leakage precision (enables NGNV on any preset); 0 disables it.
    #[arg(long)]
    ngnv_alpha: Option<u32>,
    #[arg(long)]
    ngnv_scale: Option<f64>,
    #[arg(long)]
    ngnv_margin: Option<f64>,
    #[arg(long)]
    ngnv_momentum: Option<f64>,
    /// Polynomial-in-the-loop precision (finetune), 4..=14.
    #[arg(long)]
    ft_alpha: Option<Alpha>,
    /// Per-layer precision in the loop (finetune): one alpha per ReLU site in
    /// execution order, as `pann plan` prints it (`per-layer:5,4,...` or `5,4,...`).
    #[arg(long, value_name = "A1,A2,...")]
    ft_alphas: Option<SiteAlphas>,
    #[arg(long)]
    ft_margin: Option<f64>,
    #[arg(long)]
    ft_calib_images: Option<usize>,
    #[arg(long, value_enum)]
    ft_grad: Option<PolyGrad>,
}

impl TrainArgs {
    fn recipe(&self) -> Result<Recipe> {
        let mut r = Recipe::preset(self.preset);
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { r.$f = v; } )* };
        }
        set!(epochs, batch_size, lr, momentum, nesterov, weight_decay, warmup_epochs, augment, mixup_alpha);
        match self.schedule {
            Some(ScheduleArg::Cosine) => r.schedule = Schedule::Cosine,
            Some(ScheduleArg::Step) => {
                let e = r.epochs;
                r.schedule = Schedule::Step {
                    milestones: self.milestones.clone().unwrap_or_else(|| vec![e / 2, e * 3 / 4]),
                    gamma: self.gamma.unwrap_or(0.1),
                }
            }
            None if self.milestones.is_some() || self.gamma.is_some() => bail!("--milestones/--gamma need --schedule step"),
            None => {}
        }
        if let Some(a) = self.ngnv_alpha {
            if a == 0 {
                r.ngnv = None;
            } else {
                let d = Recipe::preset(Preset::Paper).ngnv.context("paper preset has NGNV")?;
                r.ngnv = Some(pann_trainer::act::NgnvParams { alpha: a, ..r.ngnv.unwrap_or(d) });
            }
        }
        if let Some(n) = &mut r.ngnv {
            if let Some(v) = self.ngnv_scale {
                n.scale = v;
            }
            if let Some(v) = self.ngnv_margin {
                n.margin = v;
            }
            if let Some(v) = self.ngnv_momentum {
                n.momentum = v;
            }
        } else if self.ngnv_scale.is_some() || self.ngnv_margin.is_some() || self.ngnv_momentum.is_some() {
            bail!("--ngnv-* options need NGNV (preset paper or --ngnv-alpha)");
        }
        if let Some(f) = &mut r.finetune {
            if let Some(v) = self.ft_alpha {
                f.alpha = v;
            }
            if let Some(v) = &self.ft_alphas {
                f.site_alphas = v.0.clone();
                f.alpha = f.site_alphas.iter().copied().max().unwrap_or(f.alpha);
            }
            if let Some(v) = self.ft_margin {
                f.margin = v;
            }
            if let Some(v) = self.ft_calib_images {
                f.calib_images = v;
            }
            if let Some(v) = self.ft_grad {
                f.grad = v;
            }
        } else if self.ft_alpha.is_some()
            || self.ft_alphas.is_some()
            || self.ft_margin.is_some()
            || self.ft_calib_images.is_some()
            || self.ft_grad.is_some()
        {
            bail!("--ft-* options need --preset finetune");
        }
        r.validate()?;
        Ok(r)
    }
}

#[derive(Args)]
struct ExportArgs {
    #[arg(long)]
    run: PathBuf,
    /// Data directory (default: the one recorded in the checkpoint).
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long)]
    name: String,
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
    #[arg(long, default_value_t = 5000)]
    calib_images: usize,
    #[arg(long, default_value_t = 1.1)]
    calib_margin: f64,
    #[arg(long, default_value = "9")]
    default_alpha: Alpha,
}

#[derive(Args)]
struct EvalArgs {
    /// Model card (JSON) of an exported model.
    #[arg(long)]
    card: PathBuf,
    /// Data directory (CIFAR-10 binary or Fashion-MNIST IDX), as for `train`.
    #[arg(long, default_value = "../shared/data/cifar-10-jpeg")]
    data: PathBuf,
    /// Test images (the first N of the test set).
    #[arg(long, default_value_t = 10_000)]
    images: usize,
    /// Precisions, e.g. 7-14 or 7,9,12.
    #[arg(long, default_value = "7-14")]
    alphas: AlphaList,
    /// Write the table as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// One bound for every ReLU site (the largest per-layer bound of the
    /// card) instead of the card's per-layer bounds.
    #[arg(long)]
    global_bound: bool,
}

/// `--alphas`: a range (7-14) and/or a list (7,9,12) of alphas in 4..=14.
#[derive(Clone, Debug)]
struct AlphaList(Vec<Alpha>);

impl FromStr for AlphaList {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut out = Vec::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            if let Some((a, b)) = part.split_once('-') {
                let (a, b): (Alpha, Alpha) = (a.trim().parse()?, b.trim().parse()?);
                out.extend(Alpha::all().filter(|x| (a..=b).contains(x)));
            } else {
                out.push(part.trim().parse()?);
            }
        }
        Ok(AlphaList(out))
    }
}

/// `--ft-alphas`: one alpha per ReLU site, as `pann plan` prints it
/// (`per-layer:5,4,...`) or as a bare list (`5,4,...`).
#[derive(Clone, Debug)]
struct SiteAlphas(Vec<Alpha>);

impl FromStr for SiteAlphas {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let list = s.strip_prefix(PER_LAYER_PREFIX).unwrap_or(s);
        let alphas = list.split(',').map(|a| a.parse::<Alpha>()).collect::<std::result::Result<Vec<_>, _>>();
        Ok(SiteAlphas(alphas.with_context(|| format!("a comma-separated list of alphas, got {s:?}"))?))
    }
}

fn print_row(r: &EvalRow) {
    let mode = r.alpha.map(|a| format!("PANN alpha {a:2}")).unwrap_or_else(|| "exact ReLU   ".into());
    println!(
        "{mode}: accuracy {:6.2}% ({}/{}), images out of range {}, diverged {}, inputs out of range {}, {:.0} s",
        100.0 * r.accuracy,
        r.correct,
        r.images,
        r.images_out_of_range,
        r.images_diverged,
        r.inputs_out_of_range,
        r.seconds
    );
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.threads > 0 {
        tch::set_num_threads(cli.threads as i32);
        // Ignore "already initialised": only the first pool matters.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(cli.threads).build_global();
    }
    match cli.cmd {
        Cmd::Train(a) => {
            let recipe = a.recipe()?;
            let widths: [usize; 3] = a.widths.clone().try_into().map_err(|_| anyhow::anyhow!("--widths needs three values"))?;
            let architecture = ResNetConfig { widths, ..ResNetConfig::cifar10(a.depth) };
            let o = TrainOptions {
                architecture,
                recipe,
                normalisation: a.norm,
                data_dir: a.data.clone(),
                train_limit: a.train_limit.unwrap_or(usize::MAX),
                test_limit: a.test_limit.unwrap_or(usize::MAX),
                run_dir: a.run.clone(),
                seed: a.seed,
                device: a.device.device()?,
                resume: a.resume,
                init: a.init.clone(),
                max_epochs_now: a.stop_after,
                progress: !a.no_progress,
            };
            eprintln!("device {:?}, libtorch threads {}", o.device, tch::get_num_threads());
            let t = train(&o).with_context(|| format!("training run {}", a.run.display()))?;
            eprintln!("{} of {} epochs done; checkpoint in {}", t.meta.epochs_done, t.meta.recipe.epochs, a.run.display());
            if let Some(name) = a.export {
                if t.meta.epochs_done < t.meta.recipe.epochs {
                    eprintln!("not exporting: the run is not finished (use `pann-train export` to export a partial run)");
                } else {
                    let out_dir = a.export_dir.unwrap_or_else(|| a.run.clone());
                    let eo = ExportOptions {
                        name,
                        out_dir,
                        calib_images: a.calib_images,
                        margin: a.calib_margin,
                        default_alpha: Alpha::new(9)?,
                    };
                    let card = export(&t, &eo).context("export")?;
                    println!("{}", card.display());
                }
            }
        }
        Cmd::Export(a) => {
            let t = load_run(&a.run, a.data.as_deref(), Device::Cpu).with_context(|| format!("loading run {}", a.run.display()))?;
            let eo = ExportOptions {
                name: a.name,
                out_dir: a.out_dir,
                calib_images: a.calib_images,
                margin: a.calib_margin,
                default_alpha: a.default_alpha,
            };
            let card = export(&t, &eo).context("export")?;
            println!("{}", card.display());
        }
        Cmd::Eval(a) => {
            let alphas = a.alphas.0.clone();
            let test = open_dir(&a.data)?.test()?.truncated(a.images);
            let rows = evaluate_card(&a.card, &test, a.images, &alphas, a.global_bound, print_row)
                .with_context(|| format!("evaluating {}", a.card.display()))?;
            if let Some(p) = a.json {
                let j = serde_json::json!({ "card": a.card, "data": a.data, "rows": rows });
                std::fs::write(&p, serde_json::to_string_pretty(&j)?).with_context(|| format!("writing {}", p.display()))?;
            }
        }
        Cmd::Sides(a) => {
            let alphas = a.alphas.0.clone();
            let test = open_dir(&a.data)?.test()?.truncated(a.images);
            let rows = probe_sides(&a.card, &test, a.images, &alphas, a.global_bound, |r| {
                println!(
                    "alpha {:2}: accuracy (loss) exact {:6.2}% ({:.4}), PANN both sides {:6.2}% ({:.4}), negative inputs only {:6.2}% ({:.4}), positive inputs only {:6.2}% ({:.4}) ({} images)",
                    r.alpha,
                    100.0 * r.exact,
                    r.exact_loss,
                    100.0 * r.both,
                    r.both_loss,
                    100.0 * r.negative_only,
                    r.negative_only_loss,
                    100.0 * r.positive_only,
                    r.positive_only_loss,
                    r.images
                )
            })
            .with_context(|| format!("probing {}", a.card.display()))?;
            if let Some(p) = a.json {
                let j = serde_json::json!({ "card": a.card, "data": a.data, "rows": rows });
                std::fs::write(&p, serde_json::to_string_pretty(&j)?).with_context(|| format!("writing {}", p.display()))?;
            }
        }
    }
    Ok(())
}
