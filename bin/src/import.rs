//! `pann import` (an ONNX file to a model card and its weights) and `pann
//! eval` (plaintext accuracy with exact ReLU and with PANN per alpha, with
//! out-of-range counts, before anything runs securely).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pann_approx::Alpha;
use pann_models::calibrate::{ring_headroom, OutOfRange};
use pann_models::card::{sha256_hex, InputSpec, LoadedModel, ModelCard, Provenance};
use pann_models::config::Architecture;
use pann_models::model::write_safetensors;
use pann_models::onnx::{import::import, proto::decode_model};
use pann_models::{Evaluation, ImageSet, PlainExecutor, ReluMode};

/// What `pann import` needs.
#[derive(Debug)]
pub struct ImportOptions {
    /// The ONNX file.
    pub onnx: PathBuf,
    /// The card to write; the weights go beside it as `<card stem>.safetensors`.
    pub out: PathBuf,
    /// Per-channel mean of the client's normalisation `(p / 255 - mean) / std`.
    pub mean: Vec<f64>,
    /// Per-channel std of that normalisation.
    pub std: Vec<f64>,
    /// The model's name (default: the ONNX file's stem).
    pub name: Option<String>,
}

/// Import `o.onnx`: decode, map every node, check the parameters, then write
/// the weights and the card. Nothing is written when any step fails, and
/// existing files are never replaced.
pub fn run_import(o: &ImportOptions) -> Result<()> {
    let bytes = std::fs::read(&o.onnx).with_context(|| format!("reading {}", o.onnx.display()))?;
    let proto = decode_model(&bytes).with_context(|| format!("decoding {}", o.onnx.display()))?;
    let stem = o.onnx.file_stem().and_then(|s| s.to_str()).unwrap_or("model").to_string();
    let channels = proto.graph.inputs.first().and_then(|i| i.dims.get(1)).and_then(|d| match d {
        pann_models::onnx::proto::Dim::Value(v) => usize::try_from(*v).ok(),
        _ => None,
    });
    let per_channel = |v: &[f64]| match (v, channels) {
        ([x], Some(c)) => vec![*x; c],
        _ => v.to_vec(),
    };
    let spec = InputSpec { mean: per_channel(&o.mean), std: per_channel(&o.std) };
    let im = import(&proto, &spec).with_context(|| format!("importing {}", o.onnx.display()))?;

    let dir = o.out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let card_stem =
        o.out.file_name().and_then(|s| s.to_str()).map(|s| s.trim_end_matches(".json").trim_end_matches(".card")).unwrap_or("model");
    let weights_name = format!("{card_stem}.safetensors");
    let weights_path = dir.join(&weights_name);
    for p in [&o.out, &weights_path] {
        if p.exists() {
            bail!("{} exists: pann import never replaces a file (remove it or choose another --out)", p.display());
        }
    }
    // The ONNX weights are float32: keep them so unless a folded constant needs f64.
    let exact32 = im.model.params.values().all(|t| t.data.iter().all(|&v| (v as f32) as f64 == v));
    let weights = write_safetensors(&im.model.params, !exact32)?;
    let opsets: Vec<String> =
        proto.opset_imports.iter().map(|o| format!("{}{}", if o.domain.is_empty() { "ai.onnx" } else { &o.domain }, o.version)).collect();
    let card = ModelCard {
        name: o.name.clone().unwrap_or(stem),
        architecture: Architecture::Graph(im.model.network.clone()),
        input: im.input.clone(),
        weights: weights_name,
        weights_sha256: sha256_hex(&weights),
        default_alpha: Alpha::new(9).expect("9 is an alpha"),
        relu_bounds: BTreeMap::new(),
        relu_alphas: BTreeMap::new(),
        trained_alphas: Vec::new(),
        calibration: None,
        logit_range: None,
        provenance: Provenance {
            source: format!("imported from {} by pann import", o.onnx.file_name().and_then(|s| s.to_str()).unwrap_or("?")),
            license: "that of the ONNX file".into(),
            notes: format!(
                "producer {:?}, opsets {}; weights {}",
                proto.producer_name,
                opsets.join(", "),
                if exact32 { "float32" } else { "float64" }
            ),
            onnx_sha256: Some(sha256_hex(&bytes)),
        },
    };
    card.check(&o.out)?;
    // Weights first, then the card that names them: a card never points at a missing file.
    write_new(&weights_path, &weights)?;
    if let Err(e) = write_new(&o.out, (card.to_json() + "\n").as_bytes()) {
        let _ = std::fs::remove_file(&weights_path);
        return Err(e);
    }
    let net = &im.model.network;
    let sites = net.activation_sites();
    let params: usize = im.model.params.values().map(|t| t.data.len()).sum();
    println!(
        "imported {}: {} nodes, {} activation sites ({} ReLU, {} max pooling), {params} parameters; input {:?}, normalisation mean {:?} std {:?}",
        o.onnx.display(),
        net.nodes.len(),
        sites.len(),
        net.nodes.iter().filter(|n| n.op == pann_models::Op::Relu).count(),
        net.nodes.iter().filter(|n| matches!(n.op, pann_models::Op::MaxPool(_))).count(),
        net.input_shape().dims(),
        card.input.mean,
        card.input.std,
    );
    println!("wrote {} and {}", o.out.display(), weights_path.display());
    println!(
        "next: pann calibrate --model {} --data IMAGES --out CARD (bounds per activation site), then pann eval, pann plan",
        o.out.display()
    );
    Ok(())
}

/// Create `path` with `bytes`; an error if it exists. A write that fails
/// (a full disk) removes what it created, so no truncated file is left.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).open(path).with_context(|| format!("creating {}", path.display()))?;
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
        drop(f);
        let _ = std::fs::remove_file(path);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// `pann eval`: the card's model on the first `images` records of `data`,
/// exact ReLU and PANN at each alpha (uniform, the card's bounds).
pub fn run_eval(card: &Path, data: &Path, images: usize, alphas: &[Alpha]) -> Result<()> {
    let m = LoadedModel::load(card).with_context(|| format!("loading {}", card.display()))?;
    if m.card.relu_bounds.is_empty() {
        bail!("{} has no bounds: calibrate it first (pann calibrate --model {} --data IMAGES --out CARD)", card.display(), card.display());
    }
    let set = ImageSet::read_file(data)?.truncated(images);
    if set.is_empty() {
        bail!("{} has no images", data.display());
    }
    let input = |i: usize| m.card.input.normalise(set.image(i));
    let exact = PlainExecutor::new(&m.model, ReluMode::Exact)?;
    let ev = exact.evaluate(set.len(), input, &set.labels, None)?;
    println!("{}: {} images of {}", m.card.name, set.len(), data.display());
    println!("{:<10} {:>9} {:>22} {:>24}", "ReLU", "accuracy", "images beyond a bound", "images beyond headroom");
    println!("{:<10} {:>8.2}% {:>22} {:>24}", "exact", 100.0 * ev.accuracy(), "-", "-");
    let names: Vec<String> = m.model.network.activation_sites().iter().map(|s| s.to_string()).collect();
    for &alpha in alphas {
        let exec = PlainExecutor::new(&m.model, ReluMode::pann(alpha, m.card.relu_bounds.clone())?)?;
        let outs = exec.forward_many(set.len(), input, None)?;
        let ev = Evaluation::from_forwards(&names, &outs, &set.labels);
        let uniform: BTreeMap<String, Alpha> = names.iter().map(|s| (s.clone(), alpha)).collect();
        let head = ring_headroom(&uniform)?;
        let r = OutOfRange::from_forwards(&names, &m.card.relu_bounds, &head, &outs);
        println!(
            "{:<10} {:>8.2}% {:>14} ({:>5.1}%) {:>16} ({:>5.1}%)",
            format!("PANN {alpha}"),
            100.0 * ev.accuracy(),
            r.images_beyond,
            100.0 * r.images_beyond as f64 / r.images.max(1) as f64,
            r.images_beyond_headroom,
            100.0 * r.images_beyond_headroom as f64 / r.images.max(1) as f64
        );
    }
    println!(
        "beyond headroom: a ReLU input past the ring headroom of its alpha; the secure result of such an image wraps (the client flags it)"
    );
    Ok(())
}
