//! `pann`: the PANN front end — `demo` (all three roles on loopback on the
//! embedded model), `certs` (TLS identities for pann-party), `calibrate`
//! (per-layer ReLU bounds into a model card).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use pann_approx::{Alpha, PER_LAYER_PREFIX};
use pann_bin::launch::Session;
use pann_bin::netem::LinkSpec;
use pann_bin::party::{peers_of, write_local_certs, write_role_identity};
use pann_bin::precision;
use pann_bin::report::{argmax, layer_table, phase_summary, Prediction};
use pann_models::calibrate::{logit_range, max_abs_per_site, per_site_bounds, ring_headroom, within_headroom, OutOfRange};
use pann_models::card::CalibrationInfo;
use pann_models::range::{check_logits, logit_limit, LOGIT_MARGIN};
use pann_models::{ImageSet, LoadedModel, PlainExecutor, ReluMode};
use pann_mpc_core::Meter;
use pann_mpc_core::Role;

/// The embedded default: the akamaster ResNet-20 with calibrated bounds, and
/// the first 64 records of the CIFAR-10 (JPEG-derived) test set.
const BENCH_CARD: &str = include_str!("../../../models/assets/resnet20-akamaster.card.json");
const BENCH_WEIGHTS: &[u8] = include_bytes!("../../../models/assets/resnet20-akamaster.safetensors");
/// The demo's: the most accurate model per online byte (docs/results/shipped-models.md), the
/// akamaster ResNet-20 fine-tuned with the alpha-4 polynomial in the loop and distilled.
const DEMO_CARD: &str = include_str!("../../../models/assets/resnet20-aka-ft-p4-kd-9ep.card.json");
const DEMO_WEIGHTS: &[u8] = include_bytes!("../../../models/assets/resnet20-aka-ft-p4-kd-9ep.safetensors");
const DEMO_IMAGES: &[u8] = include_bytes!("../../../models/tests/data/test_batch_first64.bin");
const CIFAR10_CLASSES: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

#[derive(Parser, Debug)]
#[command(name = "pann", version, about = "PANN: private inference with polynomial-approximated neural networks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a real private inference on the embedded ResNet-20: dealer, server
    /// and client as three processes over TLS on loopback; print the
    /// predictions next to the plaintext ones, and the metered costs.
    Demo {
        /// PANN precision 2^-ALPHA (4..=14) at every ReLU: each is approximated
        /// to within B x 2^-ALPHA on its calibrated bound B; higher costs more
        /// rounds. Default: the embedded card's own precision (per layer).
        #[arg(long)]
        alpha: Option<Alpha>,
        /// How many of the embedded CIFAR-10 test images to classify (1..=64).
        #[arg(long, default_value_t = 4)]
        images: usize,
        /// Images per protocol run (default: all at once).
        #[arg(long)]
        batch: Option<usize>,
        /// Work in this directory and keep it (certificates, model, the three
        /// parties' JSON reports); by default a directory under the system's
        /// temporary directory.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
    /// Measure secure inference: for each alpha and batch size, three
    /// pann-party processes over TLS on loopback classify the images; report
    /// metered bytes and rounds, median latencies and per-layer costs, and
    /// (with --verify) compare every prediction with the fixed-point reference.
    /// Writes JSON (machine, commit, parameters, rows) and a Markdown table.
    Bench {
        /// PANN precisions to measure; 0 stands for the card's own per-layer
        /// alphas (a card written by `pann plan`).
        #[arg(long, value_delimiter = ',', default_value = "9,12", value_parser = precision::parse_bench_alpha)]
        alphas: Vec<Option<Alpha>>,
        /// Batch sizes (images per protocol run).
        #[arg(long, value_delimiter = ',', default_value = "1,64")]
        batches: Vec<usize>,
        /// Images per configuration.
        #[arg(long, default_value_t = 64)]
        images: usize,
        /// CIFAR-10 binary or IDX images file (default: ../shared/data/cifar-10-jpeg/test_batch.bin,
        /// else the 64 embedded test images).
        #[arg(long)]
        data: Option<PathBuf>,
        /// First record of --data.
        #[arg(long, default_value_t = 0)]
        first: usize,
        /// Model card (default: the embedded ResNet-20).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Also run the fixed-point reference and compare predictions and logits.
        #[arg(long)]
        verify: bool,
        /// Plain TCP instead of TLS.
        #[arg(long)]
        insecure_tcp: bool,
        /// Networks, comma-separated: `loopback` (direct), `lan` (1 Gbit/s
        /// each direction, 0.5 ms RTT), `wan` (100 Mbit/s, 40 ms RTT), `relay0`
        /// (the emulator with no delay and no limit: its own overhead), or
        /// RTT_MS:RATE_MBIT. Emulated networks run through a userspace TCP
        /// relay in this process (no root needed; TLS stays end to end); each
        /// of their rows gets a physical lower bound whose compute term is the
        /// same configuration measured on direct loopback in this invocation.
        #[arg(long, value_delimiter = ',', default_value = "loopback")]
        net: Vec<String>,
        /// Launch each configuration this many times, cycling through the
        /// networks (loopback, relay0, then each emulated one) so that slow
        /// drifts of the machine's load hit all of them alike; medians are
        /// over all runs of all repetitions.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Quick mode for CI: alpha 9, batch 2, 2 images (overrides the above).
        #[arg(long)]
        quick: bool,
        /// JSON output; the Markdown table goes beside it (.md).
        #[arg(long, default_value = "docs/results/secure-inference.json")]
        out: PathBuf,
    },
    /// Render BENCHMARKS.md and the SVG plots from the JSON results of `pann
    /// bench` (bench-*.json) and the plaintext accuracy table
    /// (plaintext-accuracy.json) in a results directory. Every number in the
    /// output comes from those files.
    BenchReport {
        /// Directory holding the JSON files; the SVGs are written there too.
        #[arg(long, default_value = "docs/results")]
        results: PathBuf,
        /// The Markdown report.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// Create a role's TLS identity where the role runs: a private key that
    /// never leaves DIR and a self-signed certificate that its peers pin.
    ///
    /// Each role runs this once on its own machine, then hands its
    /// certificate (never its key) to the peers it talks to, which copy it
    /// into their own directories:
    ///
    ///   server$ pann certs --role server --out server-certs/   # then get client.crt, dealer.crt
    ///   client$ pann certs --role client --out client-certs/   # then get server.crt, dealer.crt
    ///   dealer$ pann certs --role dealer --out dealer-certs/   # then get server.crt, client.crt
    ///
    /// Compare the printed SHA-256 fingerprints out of band. pann-party
    /// refuses a directory that holds another role's private key: whoever
    /// holds the dealer's key, for instance, can act as the dealer toward a
    /// party and recover its secret.
    #[command(verbatim_doc_comment)]
    Certs {
        /// The role whose identity to create: server, client or dealer.
        #[arg(long, value_parser = parse_role, required_unless_present = "local", conflicts_with = "local")]
        role: Option<Role>,
        /// The role's certificate directory (created owner-only if missing):
        /// receives `<role>.key` and `<role>.crt`.
        #[arg(long, value_name = "DIR", required_unless_present = "local", conflicts_with = "local")]
        out: Option<PathBuf>,
        /// Replace an existing key (its peers must then pin the new certificate).
        #[arg(long)]
        force: bool,
        /// For running all three roles on this one machine (tests, demos):
        /// write DIR/server, DIR/client and DIR/dealer, each with its own key
        /// and its peers' certificates.
        #[arg(long, value_name = "DIR")]
        local: Option<PathBuf>,
    },
    /// Import a network from ONNX (as `torch.onnx.export` writes it, either
    /// exporter, opset 13 to 20): write a model card (the architecture node by
    /// node, the input normalisation, the ONNX file's SHA-256) and its weights
    /// (safetensors, beside the card). Operators: Conv (stride, padding,
    /// dilation, groups), BatchNormalization, Relu, MaxPool, AveragePool,
    /// GlobalAveragePool, Add, Concat, Flatten, Reshape, Gemm, MatMul,
    /// Identity, Dropout, Pad, and Sub/Mul/Div/Add by constants (folded into
    /// the input normalisation or a neighbouring layer where possible), plus
    /// the exporters' shape arithmetic on constants. Anything else fails with
    /// the node's name and operator, and nothing is written. Next: `pann
    /// calibrate` (bounds per activation site), `pann eval`, `pann plan`.
    Import {
        /// The ONNX file.
        onnx: PathBuf,
        /// The card to write (e.g. mymodel.card.json); the weights go beside it
        /// as mymodel.safetensors. Existing files are never replaced.
        #[arg(long)]
        out: PathBuf,
        /// Per-channel mean of the normalisation that turns a client's pixels
        /// into the graph's input, (p / 255 - mean) / std; one value for all
        /// channels or one per channel, comma-separated. The default (0, std 1)
        /// gives pixel / 255, as torchvision's ToTensor.
        #[arg(long, value_delimiter = ',', default_value = "0")]
        mean: Vec<f64>,
        /// Per-channel std of that normalisation (see --mean).
        #[arg(long, value_delimiter = ',', default_value = "1")]
        std: Vec<f64>,
        /// The model's name in the card (default: the ONNX file's stem).
        #[arg(long)]
        name: Option<String>,
    },
    /// Plaintext accuracy of a calibrated card before running it securely:
    /// exact ReLU, and PANN at each alpha (uniform, the card's bounds), with
    /// how many images push an activation input beyond its bound and beyond
    /// the ring headroom of the alpha (their secure results would wrap).
    Eval {
        /// The model card (with bounds: `pann calibrate` writes them).
        #[arg(long)]
        model: PathBuf,
        /// Labelled images: a CIFAR-10 binary or IDX images file (the labels file beside it).
        #[arg(long)]
        data: PathBuf,
        /// How many images, from the start of --data.
        #[arg(long, default_value_t = 1000)]
        images: usize,
        /// Alphas to evaluate: a range (4-14) or a list (6,9,12).
        #[arg(long, default_value = "4-14")]
        alphas: precision::AlphaList,
    },
    /// Calibrate per-layer ReLU bounds: margin x the largest |input| of each
    /// ReLU site over calibration images; record the logit range of the
    /// deployed PANN on them (which clients judge results against); report
    /// how often held-out images push a ReLU input beyond its bound, per site
    /// and overall; write a new model card.
    Calibrate {
        /// The model card to calibrate.
        #[arg(long)]
        model: PathBuf,
        /// CIFAR-10 binary or IDX images file with the calibration images (e.g. data_batch_1.bin).
        #[arg(long)]
        data: PathBuf,
        /// Number of calibration images (from the start of --data).
        #[arg(long, default_value_t = 1000)]
        images: usize,
        /// Bound = margin x max |input|.
        #[arg(long, default_value_t = 1.1)]
        margin: f64,
        /// Held-out images on which to report the out-of-range rate: the N
        /// records of --data that follow the calibration images (or the first
        /// N of --check). 0: none.
        #[arg(long, default_value_t = 1000)]
        holdout: usize,
        /// Take the held-out images from this file (CIFAR-10 binary or IDX) instead of --data.
        #[arg(long)]
        check: Option<PathBuf>,
        /// Keep the card's bounds (and its calibration record) as they are:
        /// only measure the logit range on the calibration images and the
        /// held-out out-of-range rate, and add the logit range to the card.
        #[arg(long)]
        keep_bounds: bool,
        /// Where to write the calibrated card (may equal --model); its weights file is copied beside it when the directory differs.
        #[arg(long)]
        out: PathBuf,
    },
    /// Mixed precision: choose an alpha per ReLU layer that minimises online
    /// bytes (or rounds) while the PANN's accuracy on calibration images stays
    /// within --max-drop points of exact ReLU; write a card with `relu_alphas`
    /// that pann-party serves as is. Greedy: from the lowest uniform alpha that
    /// meets the target, lower one layer at a time, the one that saves the most
    /// per unit of calibration loss, verifying each move. Costs per ReLU come
    /// from metering the ReLU protocol at each alpha.
    Plan {
        /// The model card (with calibrated bounds).
        #[arg(long)]
        model: PathBuf,
        /// CIFAR-10 binary or IDX images file with the calibration images (held out from the
        /// images you report accuracy on).
        #[arg(long, default_value = "../shared/data/cifar-10-jpeg/test_batch.bin")]
        data: PathBuf,
        /// First record of --data used.
        #[arg(long, default_value_t = 5000)]
        first: usize,
        /// Number of calibration images.
        #[arg(long, default_value_t = 1000)]
        images: usize,
        /// Largest accuracy loss against exact ReLU on the calibration images, in points.
        #[arg(long, default_value_t = 0.5)]
        max_drop: f64,
        /// Candidate alphas, e.g. 4-9 or 4,5,6,7,9.
        #[arg(long, default_value = "4-9")]
        alphas: precision::AlphaList,
        /// What to minimise.
        #[arg(long, value_enum, default_value = "bytes")]
        objective: ObjectiveArg,
        /// The card to write (the weights are copied beside it if it goes to
        /// another directory).
        #[arg(long)]
        out: PathBuf,
        /// JSON report: costs, every configuration explored, the choice.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Measure the target from this card's exact-ReLU accuracy instead of
        /// the model's own (for a model fine-tuned with the polynomial in the
        /// loop, whose exact-ReLU accuracy means nothing: give its backbone).
        #[arg(long, value_name = "CARD.json")]
        reference: Option<PathBuf>,
    },
    /// Accuracy against metered online bytes per image: uniform alpha with one
    /// global bound (the largest per-layer bound) and with per-layer bounds,
    /// for every --model, plus every planned card (--plans). Accuracy from the
    /// f64 executor on test records; bytes and rounds from a private inference
    /// of one image by three parties in this process. Writes frontier.json,
    /// frontier-table.md and frontier.svg into --out.
    Frontier {
        /// Model cards (calibrated), e.g. a baseline and a low-precision one.
        #[arg(long, num_args = 0..)]
        model: Vec<PathBuf>,
        /// Planned cards (from pann plan).
        #[arg(long, num_args = 0..)]
        plans: Vec<PathBuf>,
        /// CIFAR-10 binary or IDX images file (labels beside it) with the test images.
        #[arg(long, default_value = "../shared/data/cifar-10-jpeg/test_batch.bin")]
        data: PathBuf,
        #[arg(long, default_value_t = 0)]
        first: usize,
        #[arg(long, default_value_t = 2000)]
        images: usize,
        /// Uniform alphas to measure.
        #[arg(long, default_value = "4-14")]
        alphas: precision::AlphaList,
        #[arg(long, default_value = "docs/results/frontier")]
        out: PathBuf,
        /// Earlier frontier.json files (same test images) whose points are
        /// kept in the outputs: a frontier measured in several invocations.
        #[arg(long, num_args = 0..)]
        merge: Vec<PathBuf>,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ObjectiveArg {
    /// Online bytes per image.
    Bytes,
    /// Online rounds per inference.
    Rounds,
    /// Offline bytes per image (the dealer's traffic to the client).
    Offline,
    /// Online and offline bytes per image together.
    Total,
}

fn parse_role(s: &str) -> std::result::Result<Role, String> {
    s.parse().map_err(|_| format!("{s:?} is not a role (server, client or dealer)"))
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Certs { role, out, force, local } => {
            if let Some(dir) = local {
                write_local_certs(&dir)?;
                println!(
                    "wrote {0}/server, {0}/client and {0}/dealer: one directory per role (its own key, its peers' certificates)",
                    dir.display()
                );
                return Ok(());
            }
            let (Some(role), Some(dir)) = (role, out) else { bail!("pann certs needs --role and --out, or --local") };
            let fingerprint = write_role_identity(&dir, role, force)?;
            let peers: Vec<&str> = peers_of(role).iter().map(|p| p.as_str()).collect();
            println!("wrote the {role}'s identity: {0}/{role}.key (keep it here) and {0}/{role}.crt", dir.display());
            println!("certificate SHA-256: {fingerprint}");
            println!(
                "give {role}.crt to the {} (never the key); copy their {}.crt and {}.crt into {}",
                peers.join(" and "),
                peers[0],
                peers[1],
                dir.display()
            );
            Ok(())
        }
        Cmd::Import { onnx, out, mean, std, name } => {
            pann_bin::import::run_import(&pann_bin::import::ImportOptions { onnx, out, mean, std, name })
        }
        Cmd::Eval { model, data, images, alphas } => pann_bin::import::run_eval(&model, &data, images, &alphas.0),
        Cmd::Calibrate { model, data, images, margin, holdout, check, keep_bounds, out } => {
            calibrate(&model, &data, images, margin, holdout, check.as_deref(), keep_bounds, &out)
        }
        Cmd::Plan { model, data, first, images, max_drop, alphas, objective, out, report, reference } => {
            let objective = match objective {
                ObjectiveArg::Bytes => pann_models::planner::Objective::Bytes,
                ObjectiveArg::Rounds => pann_models::planner::Objective::Rounds,
                ObjectiveArg::Offline => pann_models::planner::Objective::Offline,
                ObjectiveArg::Total => pann_models::planner::Objective::Total,
            };
            let o = precision::PlanOptions {
                card: model,
                calib: data,
                first,
                count: images,
                max_drop_points: max_drop,
                alphas: alphas.0,
                objective,
                out,
                report,
                reference,
            };
            let r = precision::plan(&o)?;
            let oc = &r.outcome;
            let chosen = oc.explored.iter().rev().find(|e| e.alphas == oc.alphas);
            println!(
                "exact ReLU {:.2}% (reference {:.2}%), planned {:.2}% (target >= {:.2}%) on the calibration images; ReLU online {:.2} MB per image, {} ReLU rounds",
                100.0 * oc.exact.accuracy,
                100.0 * oc.reference_accuracy,
                100.0 * oc.score.accuracy,
                100.0 * oc.target_accuracy,
                chosen.map_or(f64::NAN, |e| e.relu_bytes / 1e6),
                chosen.map_or(0, |e| e.relu_rounds)
            );
            for (site, a) in oc.sites.iter().zip(&oc.alphas) {
                println!("  {site:<18} alpha {a}");
            }
            println!("wrote {}\nclient: pann-party --role client --alpha {} ...", o.out.display(), r.precision);
            Ok(())
        }
        Cmd::Frontier { model, plans, data, first, images, alphas, out, merge } => {
            let o = precision::FrontierOptions { models: model, plans, data, first, count: images, alphas: alphas.0, out, merge };
            precision::frontier(&o)?;
            println!("wrote frontier.json, frontier-table.md and frontier.svg into {}", o.out.display());
            Ok(())
        }
        Cmd::Demo { alpha, images, batch, keep } => demo(alpha, images, batch, keep),
        Cmd::Bench { alphas, batches, images, data, first, model, verify, insecure_tcp, net, repeat, quick, out } => {
            let (alphas, batches, images) = if quick { (vec![Some(Alpha::new(9)?)], vec![2], 2) } else { (alphas, batches, images) };
            let nets = net.iter().map(|n| LinkSpec::parse(n)).collect::<Result<Vec<_>>>()?;
            bench(&alphas, &batches, images, data, first, model, verify, insecure_tcp, &nets, repeat.max(1), &out)
        }
        Cmd::BenchReport { results, out } => pann_bin::bench_report::render(&results, &out),
    }
}

#[allow(clippy::too_many_arguments)]
fn calibrate(
    card_path: &Path,
    data: &Path,
    n: usize,
    margin: f64,
    holdout: usize,
    check: Option<&Path>,
    keep_bounds: bool,
    out: &Path,
) -> Result<()> {
    if !(margin >= 1.0 && margin.is_finite()) {
        bail!("--margin must be at least 1 (got {margin})");
    }
    let original = std::fs::read_to_string(card_path).with_context(|| format!("reading {}", card_path.display()))?;
    let mut loaded = LoadedModel::load(card_path).with_context(|| format!("loading {}", card_path.display()))?;
    let all = ImageSet::read_file(data)?;
    // Held-out images: the records after the calibration images, or --check.
    let held = match check {
        Some(c) => ImageSet::read_file(c)?.truncated(holdout),
        None => {
            let mut h = ImageSet::empty(all.shape);
            for i in n..(n + holdout).min(all.len()) {
                h.pixels.extend_from_slice(all.image(i));
                h.labels.push(all.labels[i]);
            }
            h
        }
    };
    let set = all.truncated(n);
    let input = |i: usize| loaded.card.input.normalise(set.image(i));
    if keep_bounds {
        if loaded.card.relu_bounds.is_empty() {
            bail!("--keep-bounds: {} has no bounds to keep", card_path.display());
        }
        eprintln!("keeping the bounds of {}; logit range on {} images of {}", card_path.display(), set.len(), data.display());
    } else {
        eprintln!("calibrating {} ReLU sites on {} images of {}", loaded.network.activation_sites().len(), set.len(), data.display());
        let max = max_abs_per_site(&loaded.model, set.len(), input, None)?;
        let bounds = per_site_bounds(&max, margin);
        for (site, b) in &bounds {
            println!("{site:<18} max |x| {:>9.4}  bound {:>9.4}", max[site], b);
        }
        loaded.card.relu_bounds = bounds;
        loaded.card.calibration = Some(CalibrationInfo { margin, images: set.len(), data: data.display().to_string() });
    }
    // The PANN as the card deploys it (its alphas), with the bounds it will carry.
    let exec = PlainExecutor::new(&loaded.model, loaded.card.deployed_mode()?)?;
    let precision = if loaded.card.relu_alphas.is_empty() {
        format!("alpha {}", loaded.card.default_alpha)
    } else {
        "its per-layer alphas".to_string()
    };
    let bounds = loaded.card.relu_bounds.clone();
    let head = ring_headroom(&loaded.card.site_alphas())?;
    let names = exec.site_names().to_vec();
    let outs = exec.forward_many(set.len(), input, None)?;
    let calib = OutOfRange::from_forwards(&names, &bounds, &head, &outs);
    let range = logit_range(outs.iter().filter(|f| within_headroom(f, &names, &bounds, &head)))
        .context("no calibration image stayed within the ring: no logit range")?;
    println!(
        "calibration images, PANN at {precision}: {} of {} have a ReLU input beyond its bound, {} beyond the ring headroom (|x/B| > {}); logit range of the other {}: [{:.3}, {:.3}]; a client reports results with |logit| > {:.1} ({}x) as unreliable",
        calib.images_beyond,
        calib.images,
        calib.images_beyond_headroom,
        head.values().map(|h| format!("{h:.4}")).collect::<std::collections::BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(" or "),
        calib.images - calib.images_beyond_headroom,
        range[0],
        range[1],
        logit_limit(range),
        LOGIT_MARGIN,
    );
    if held.is_empty() {
        println!("no held-out images (--holdout 0, or --data has no records after the calibration images): out-of-range rate not measured");
    } else {
        let from = match check {
            Some(c) => format!("the first {} records of {}", held.len(), c.display()),
            None => format!("records {}..{} of {}", n, n + held.len(), data.display()),
        };
        let outs = exec.forward_many(held.len(), |i| loaded.card.input.normalise(held.image(i)), None)?;
        let ev = pann_models::Evaluation::from_forwards(&names, &outs, &held.labels);
        let r = OutOfRange::from_forwards(&names, &bounds, &head, &outs);
        println!("held-out images ({from}), PANN at {precision}: images with a ReLU input beyond its bound B, beyond its ring headroom");
        println!("{:<18} {:>9} {:>9} {:>12} {:>10} {:>9} {:>12}", "site", "bound", "images", "inputs", "max |x|/B", "headroom", "images");
        for s in &r.sites {
            let pct = |k: usize| 100.0 * k as f64 / r.images.max(1) as f64;
            // Past the headroom the f64 PANN diverges too: its largest |x|/B is then astronomic.
            let ratio = if s.max_ratio < 1e4 { format!("{:.3}", s.max_ratio) } else { format!("{:.1e}", s.max_ratio) };
            println!(
                "{:<18} {:>9.4} {:>8.2}% {:>12} {:>10} {:>9.4} {:>11.2}%",
                s.site,
                s.bound,
                pct(s.images_beyond),
                s.inputs_beyond,
                ratio,
                s.headroom,
                pct(s.images_beyond_headroom)
            );
        }
        let flagged = outs.iter().filter(|f| check_logits(Some(range), &f.logits).is_unreliable()).count();
        let inside: Vec<&pann_models::Forward> = outs.iter().filter(|f| within_headroom(f, &names, &bounds, &head)).collect();
        let largest = inside.iter().flat_map(|f| f.logits.iter()).fold(0.0f64, |m, v| m.max(v.abs()));
        let flagged_inside = inside.iter().filter(|f| check_logits(Some(range), &f.logits).is_unreliable()).count();
        println!(
            "held-out images within the ring headroom: {}; their largest |logit| {:.3} ({:.2}x the calibrated largest |logit|), {} of them flagged (false alarms)",
            inside.len(),
            largest,
            largest / range[0].abs().max(range[1].abs()),
            flagged_inside
        );
        println!(
            "overall: {} of {} held-out images ({:.2}%) have a ReLU input beyond its bound, {} ({:.2}%) beyond its ring headroom (their secure result wraps); {} have f64 logits a client would flag (|logit| > {:.1} or not finite); PANN accuracy {:.2}%",
            r.images_beyond,
            r.images,
            100.0 * r.rate(),
            r.images_beyond_headroom,
            100.0 * r.wrap_rate(),
            flagged,
            logit_limit(range),
            100.0 * ev.accuracy()
        );
    }
    loaded.card.logit_range = Some(range);
    precision::copy_weights_beside(card_path, out, &loaded.card.weights)?;
    std::fs::write(out, loaded.card.to_json_keeping(&original) + "\n").with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}

/// Write the embedded model, images and fresh certificates into `dir`;
/// returns (card, images file).
fn embedded_assets(dir: &Path, (card_json, weights): (&str, &[u8])) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let parsed: pann_models::ModelCard = serde_json::from_str(card_json)?;
    let card = dir.join(format!("{}.card.json", parsed.name));
    std::fs::write(&card, card_json)?;
    std::fs::write(dir.join(&parsed.weights), weights)?;
    let images = dir.join("images.bin");
    std::fs::write(&images, DEMO_IMAGES)?;
    std::fs::write(dir.join("batches.meta.txt"), CIFAR10_CLASSES.join("\n"))?;
    write_local_certs(&dir.join("certs"))?;
    Ok((card, images))
}

#[allow(clippy::too_many_arguments)]
fn bench(
    alphas: &[Option<Alpha>],
    batches: &[usize],
    images: usize,
    data: Option<PathBuf>,
    first: usize,
    model: Option<PathBuf>,
    verify: bool,
    insecure_tcp: bool,
    nets: &[LinkSpec],
    repeat: usize,
    out: &Path,
) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("pann-bench-{}", std::process::id()));
    let (card0, images0) = embedded_assets(&dir, (BENCH_CARD, BENCH_WEIGHTS))?;
    let card = model.unwrap_or(card0);
    let data = data.or_else(pann_bin::bench::default_data).unwrap_or(images0);
    let machine = pann_bin::bench::provenance();
    let mut rows: Vec<pann_bin::bench::BenchRow> = Vec::new();
    let loopback = LinkSpec::loopback();
    let relay0 = LinkSpec::parse("relay0")?;
    let any_emulated = nets.iter().any(|n| n.relay);
    for &alpha in alphas {
        // As the reports write it: 0 for the card's own alphas.
        let shown = alpha.map_or(0, Alpha::get);
        for &batch in batches {
            // Direct loopback first: it is the compute term of the bounds.
            // Then the relay alone (no delay, no limit): the emulator's overhead.
            let mut order: Vec<&LinkSpec> = Vec::new();
            if any_emulated || nets.contains(&loopback) {
                order.push(&loopback);
            }
            if any_emulated && !nets.contains(&relay0) {
                order.push(&relay0);
            }
            order.extend(nets.iter().filter(|n| n.relay));
            let mut measured: Vec<pann_bin::bench::BenchRow> = Vec::new();
            for rep in 0..repeat {
                for (i, link) in order.iter().enumerate() {
                    eprintln!(
                        "bench: {} ({}), alpha {shown}, batch {batch}, {images} image(s), repetition {}/{repeat} ...",
                        link.name,
                        link.describe(),
                        rep + 1
                    );
                    let row = pann_bin::bench::measure(&dir, &card, &data, alpha, batch, first, images, verify, insecure_tcp, link)?;
                    eprintln!(
                        "  online {:.2} MB/image, {:.0} rounds/run, {:.3} s/run; offline {:.2} MB/image, {:.3} s/run",
                        row.online_bytes_per_image / 1e6,
                        row.online_rounds_per_run,
                        row.online_s_per_run,
                        row.offline_bytes_per_image / 1e6,
                        row.offline_s_per_run,
                    );
                    if rep == 0 {
                        measured.push(row);
                    } else {
                        measured[i].merge(&row);
                    }
                }
            }
            // Bounds: the compute term is the direct-loopback row, the
            // emulator's overhead the relay0 row, both of this invocation.
            let reference = order.iter().position(|l| !l.relay).map(|i| measured[i].clone());
            let overhead = order.iter().position(|l| **l == relay0).map(|i| measured[i].clone());
            for (link, mut row) in order.iter().zip(measured) {
                if let (true, Some(r)) = (link.relay, &reference) {
                    row.bound = Some(pann_bin::bench::Bound::new(&row, r, overhead.as_ref().filter(|_| **link != relay0), link));
                    let b = row.bound.as_ref().expect("just set");
                    eprintln!(
                        "{} alpha {shown} batch {batch}: online {:.3} s/run (median of {}), bound {:.3} s, ratio {:.2}",
                        link.name, row.online_s_per_run, row.runs, b.online_bound_s, b.online_ratio
                    );
                }
                rows.push(row);
            }
        }
    }
    let args: Vec<String> = std::env::args().collect();
    let json = serde_json::json!({
        "command": args.join(" "),
        "machine": machine,
        "loadavg_at_end": std::fs::read_to_string("/proc/loadavg").ok().map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
        "model": card.display().to_string(),
        "data": data.display().to_string(),
        "transport": if insecure_tcp { "tcp" } else { "tls" },
        "networks": nets.iter().map(|n| serde_json::json!({"spec": n, "description": n.describe()})).collect::<Vec<_>>(),
        "alphas": alphas.iter().map(|a| a.map_or(0, Alpha::get)).collect::<Vec<_>>(),
        "batches": batches,
        "images": images,
        "emulator": "userspace TCP relay (bin/src/netem.rs): per direction, pieces of at most 16 KiB serialised at the rate, then delayed by RTT/2; unbounded queue, no loss",
        "rows": rows,
    });
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, serde_json::to_vec_pretty(&json)?).with_context(|| format!("writing {}", out.display()))?;
    let md = pann_bin::bench::markdown(&rows);
    std::fs::write(out.with_extension("md"), format!("Generated by `{}`.\n\n{md}", args.join(" ")))?;
    print!("{md}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn demo(alpha: Option<Alpha>, n: usize, batch: Option<usize>, keep: Option<PathBuf>) -> Result<()> {
    if !(1..=64).contains(&n) {
        bail!("--images must be 1..=64 (the embedded test images)");
    }
    let dir = keep.unwrap_or_else(|| std::env::temp_dir().join(format!("pann-demo-{}", std::process::id())));
    let (card_path, images) = embedded_assets(&dir, (DEMO_CARD, DEMO_WEIGHTS))?;
    let loaded = LoadedModel::load(&card_path)?;
    let public = pann_bin::bench::public_model(&loaded, alpha)?;
    let precision = public.precision();
    println!(
        "PANN demo: {} ({}), precision {}, {n} CIFAR-10 test image(s)",
        loaded.card.name,
        // The source up to its details (a training command, say).
        loaded.card.provenance.source.split(": ").next().unwrap_or_default(),
        if alpha.is_some() || loaded.card.relu_alphas.is_empty() {
            format!("2^-{}", public.config.alpha)
        } else {
            format!("per layer, alphas {}", precision.to_string().trim_start_matches(PER_LAYER_PREFIX))
        }
    );
    println!("three processes over mutually authenticated TLS on loopback; working directory {}\n", dir.display());
    let t0 = Instant::now();
    let session = Session {
        dir: &dir,
        card: &card_path,
        precision,
        input: &images,
        first: 0,
        count: n,
        batch: batch.unwrap_or(n),
        insecure_tcp: false,
        quiet: false,
        timeout: Duration::from_secs(120),
        link: None,
    };
    let report = session.run()?;
    let wall = t0.elapsed().as_secs_f64();

    let preds: Vec<Prediction> = serde_json::from_value(report["predictions"].clone())?;
    let meter_server: Meter = serde_json::from_value(report["meters"]["server"].clone()).unwrap_or_default();

    // Plaintext references on the same images.
    let data = pann_models::cifar::parse(DEMO_IMAGES, Path::new("embedded"))?;
    let exact = PlainExecutor::new(&loaded.model, ReluMode::Exact)?;
    let alphas = loaded.network.activation_sites().iter().map(|s| (s.to_string(), public.alpha_of(s))).collect();
    let pann = PlainExecutor::new(&loaded.model, ReluMode::pann_mixed(alphas, loaded.card.relu_bounds.clone())?)?;
    println!("\n{:<6} {:<12} {:<12} {:<12} {:<12} {:>10}", "image", "true", "exact ReLU", "PANN (f64)", "secure", "max |dlogit|");
    let mut agree = 0;
    for (i, p) in preds.iter().enumerate() {
        let x = loaded.card.input.normalise(data.image(i));
        let e = exact.forward(&x)?;
        let f = pann.forward(&x)?;
        let d = f.logits.iter().zip(&p.logits).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let name = |k: usize| CIFAR10_CLASSES.get(k).copied().unwrap_or("?");
        let fp = argmax(&f.logits);
        agree += usize::from(Some(fp) == p.class);
        println!(
            "{:<6} {:<12} {:<12} {:<12} {:<12} {:>10.4}",
            i,
            name(data.labels[i] as usize),
            name(argmax(&e.logits)),
            name(fp),
            p.class.map_or("UNRELIABLE", name),
            d
        );
    }
    println!("secure predictions equal to the plaintext PANN's: {agree} of {}", preds.len());
    if loaded.card.calibration.as_ref().is_some_and(|c| c.data.contains("polynomial-in-the-loop")) {
        println!("(\"exact ReLU\" runs the same weights with max(x, 0): this model was fine-tuned with the polynomial in the loop and is not meant for it)");
    }
    let steps: Vec<(String, f64)> = serde_json::from_value(report["batches"][0]["steps"].clone()).unwrap_or_default();
    println!("\nper-layer online cost at the client (first batch; bytes and rounds metered by the channel):");
    print!("{}", layer_table(&meter_server, &steps));
    let meter_dealer: Meter = serde_json::from_value(report["meters"]["dealer"].clone()).unwrap_or_default();
    println!("\ntotals at the client:");
    print!("{}", phase_summary("server", &meter_server));
    print!("{}", phase_summary("dealer", &meter_dealer));
    let on: f64 = report["batches"].as_array().map_or(0.0, |b| b.iter().filter_map(|x| x["online_s"].as_f64()).sum());
    let off: f64 = report["batches"].as_array().map_or(0.0, |b| b.iter().filter_map(|x| x["offline_s"].as_f64()).sum());
    println!("latency: offline {off:.3} s, online {on:.3} s for {} image(s); whole demo {wall:.1} s", preds.len());
    println!("reports: {}/{{client,server,dealer}}.json", dir.display());
    Ok(())
}
