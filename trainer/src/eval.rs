//! PANN evaluation of an exported model through the models crate's
//! `PlainExecutor` (f64, BN folded, per-site bounds from the card): exact
//! ReLU, then the PANN ReLU at each alpha, with out-of-range and divergence
//! counts. This is the reference the secure executor is compared with, so
//! these are the accuracies a private inference gets (up to fixed point).

use crate::error::Result;
use pann_approx::Alpha;
use pann_models::{ImageSet, LoadedModel, PlainExecutor, ReluMode};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// One line of an evaluation table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// `None` for exact ReLU.
    pub alpha: Option<Alpha>,
    /// Images evaluated.
    pub images: usize,
    /// Images classified correctly.
    pub correct: usize,
    /// `correct / images`.
    pub accuracy: f64,
    /// Images with at least one ReLU input beyond its bound.
    pub images_out_of_range: usize,
    /// Images whose logits are not all finite (a diverged PANN).
    pub images_diverged: usize,
    /// ReLU inputs beyond their bound, over all images.
    pub inputs_out_of_range: u64,
    /// Wall time of this row's evaluation.
    pub seconds: f64,
}

/// Load `card`; with `global`, every site's bound becomes the largest of
/// them (Lee et al.'s single bound).
fn load_with_bounds(card: &Path, global: bool) -> Result<LoadedModel> {
    let mut m = LoadedModel::load(card)?;
    if global {
        let b = m.card.relu_bounds.values().cloned().fold(0.0, f64::max);
        m.card.relu_bounds.values_mut().for_each(|v| *v = b);
    }
    Ok(m)
}

/// Evaluate `card` on the first `n` images of `test` with exact ReLU and at
/// every alpha, with the card's per-layer bounds or (`global`) one bound for
/// every site, the largest of them (Lee et al.'s setting).
pub fn evaluate_card(
    card: &Path,
    test: &ImageSet,
    n: usize,
    alphas: &[Alpha],
    global: bool,
    mut on_row: impl FnMut(&EvalRow),
) -> Result<Vec<EvalRow>> {
    let m = load_with_bounds(card, global)?;
    let spec = m.card.input.clone();
    let n = n.min(test.len());
    let mut rows = Vec::new();
    let modes: Vec<Option<Alpha>> = std::iter::once(None).chain(alphas.iter().copied().map(Some)).collect();
    for alpha in modes {
        let mode = match alpha {
            None => ReluMode::Exact,
            Some(a) => m.card.pann_mode(a)?,
        };
        let t0 = Instant::now();
        let exec = PlainExecutor::new(&m.model, mode)?;
        let ev = exec.evaluate(n, |i| spec.normalise(test.image(i)), &test.labels[..n], None)?;
        let row = EvalRow {
            alpha,
            images: ev.images,
            correct: ev.correct,
            accuracy: ev.accuracy(),
            images_out_of_range: ev.images_out_of_range,
            images_diverged: ev.images_diverged,
            inputs_out_of_range: ev.inputs_out_of_range(),
            seconds: t0.elapsed().as_secs_f64(),
        };
        on_row(&row);
        rows.push(row);
    }
    Ok(rows)
}

/// Accuracy and mean cross-entropy with the PANN error on both sides, on
/// negative inputs only and on positive inputs only (tch, f64, the card's
/// bounds), per alpha. The polynomial's error is even (p is odd, so
/// ReLU~(-x) - ReLU(-x) = ReLU~(x) - ReLU(x)): both sides get the same error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SidesRow {
    /// Precision of the polynomial.
    pub alpha: Alpha,
    /// Images evaluated.
    pub images: usize,
    /// Accuracy with exact ReLU.
    pub exact: f64,
    /// Accuracy with the PANN ReLU everywhere.
    pub both: f64,
    /// Accuracy with the polynomial on negative inputs only (exact ReLU on positive ones).
    pub negative_only: f64,
    /// Accuracy with the polynomial on positive inputs only (exact ReLU on negative ones).
    pub positive_only: f64,
    /// Mean cross-entropy (nats) with exact ReLU.
    #[serde(default)]
    pub exact_loss: f64,
    /// Mean cross-entropy (nats) with the PANN ReLU everywhere.
    #[serde(default)]
    pub both_loss: f64,
    /// Mean cross-entropy (nats), polynomial on negative inputs only.
    #[serde(default)]
    pub negative_only_loss: f64,
    /// Mean cross-entropy (nats), polynomial on positive inputs only.
    #[serde(default)]
    pub positive_only_loss: f64,
}

/// Insight (1) of Zhang et al., measured on an exported model.
pub fn probe_sides(
    card: &Path,
    test: &ImageSet,
    n: usize,
    alphas: &[Alpha],
    global: bool,
    mut on_row: impl FnMut(&SidesRow),
) -> Result<Vec<SidesRow>> {
    use crate::act::{PannRelu, PolyGrad, Side, SidedPann};
    use crate::net::{Activation, ExactRelu, ResNet};
    let m = load_with_bounds(card, global)?;
    let arch = match &m.card.architecture {
        pann_models::Architecture::Resnet(c) => c.clone(),
        other => return Err(crate::TrainerError::Config(format!("probe needs a ResNet card, not {other:?}"))),
    };
    let mut vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let net = ResNet::new(&vs.root(), &arch)?;
    crate::checkpoint::load_init(&vs, card)?;
    vs.double();
    let set = test.clone().truncated(n);
    let spec = m.card.input.clone();
    let bounds: Vec<f64> = net
        .sites()
        .iter()
        .map(|s| m.card.relu_bounds.get(s).copied().ok_or_else(|| pann_models::ModelError::MissingBound { site: s.clone() }))
        .collect::<std::result::Result<_, _>>()?;
    let acc = |act: &mut dyn Activation| accuracy_f64(&net, &set, &spec, act);
    let (exact, exact_loss) = acc(&mut ExactRelu);
    let mut rows = Vec::new();
    for &alpha in alphas {
        let poly = pann_approx::SignPoly::for_alpha(alpha);
        let run = |side| {
            let pann = PannRelu { poly: poly.clone(), site_polys: Vec::new(), bounds: bounds.clone(), grad: PolyGrad::Exact };
            acc(&mut SidedPann { pann, side })
        };
        let ((both, both_loss), (negative_only, negative_only_loss), (positive_only, positive_only_loss)) =
            (run(Side::Both), run(Side::Negative), run(Side::Positive));
        let row = SidesRow {
            alpha,
            images: set.len(),
            exact,
            both,
            negative_only,
            positive_only,
            exact_loss,
            both_loss,
            negative_only_loss,
            positive_only_loss,
        };
        on_row(&row);
        rows.push(row);
    }
    Ok(rows)
}

/// Accuracy and mean cross-entropy with f64 inputs (for a var store converted
/// to f64); a non-finite loss (a diverged PANN) stays non-finite.
fn accuracy_f64(
    net: &crate::net::ResNet,
    set: &ImageSet,
    spec: &pann_models::InputSpec,
    act: &mut dyn crate::net::Activation,
) -> (f64, f64) {
    use tch::Kind;
    let mut correct = 0i64;
    let mut loss = 0.0f64;
    let idx: Vec<usize> = (0..set.len()).collect();
    tch::no_grad(|| {
        for chunk in idx.chunks(250) {
            let (x, y) = crate::data::make_batch(set, chunk, spec, None, tch::Device::Cpu);
            let logits = net.forward(&x.to_kind(Kind::Double), false, act);
            loss += logits.cross_entropy_for_logits(&y).double_value(&[]) * chunk.len() as f64;
            correct += logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64).int64_value(&[]);
        }
    });
    let n = set.len().max(1) as f64;
    (correct as f64 / n, loss / n)
}
