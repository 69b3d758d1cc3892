//! The plaintext f64 executor: exact ReLU, or the PANN ReLU
//! x (1 + p(x / B)) / 2 with a per-site bound B.
//!
//! It is the reference the fixed-point and secure executors are compared
//! with, and the tool that measures what approximation costs in accuracy. It
//! records, per ReLU site, the largest |input| seen and how many inputs fell
//! outside [-B, B]: inside MPC an out-of-range input cannot be detected (the
//! composite polynomial just diverges), so this count is the only place where
//! a bad bound shows up.

use crate::error::{ModelError, Result};
use crate::model::Model;
use crate::network::Shape;
use crate::ops::{Activation, EvalCx};
use pann_approx::{Alpha, SignPoly};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How ReLU sites are evaluated.
#[derive(Clone, Debug)]
pub enum ReluMode {
    /// max(x, 0).
    Exact,
    /// x (1 + p(x / B)) / 2 with, per ReLU site (by name), its precision
    /// 2^-alpha and its bound B; `polys` holds the composite sign polynomial
    /// of every alpha used.
    Pann {
        /// Precision alpha per site.
        alphas: BTreeMap<String, Alpha>,
        /// Bound B per site (positive, finite).
        bounds: BTreeMap<String, f64>,
        /// The sign polynomial of every alpha in `alphas`.
        polys: BTreeMap<Alpha, SignPoly>,
    },
}

impl ReluMode {
    /// PANN at precision 2^-alpha at every site named in `bounds`, with those
    /// bounds (every [`Alpha`] has a sign polynomial: this does not fail).
    pub fn pann(alpha: Alpha, bounds: BTreeMap<String, f64>) -> Result<Self> {
        let alphas = bounds.keys().map(|s| (s.clone(), alpha)).collect();
        Self::pann_mixed(alphas, bounds)
    }

    /// PANN with a precision and a bound per site (mixed precision); this
    /// does not fail. Sites missing from either map are refused later, by
    /// [`PlainExecutor::new`].
    pub fn pann_mixed(alphas: BTreeMap<String, Alpha>, bounds: BTreeMap<String, f64>) -> Result<Self> {
        let mut polys = BTreeMap::new();
        for &a in alphas.values() {
            if let std::collections::btree_map::Entry::Vacant(e) = polys.entry(a) {
                e.insert(SignPoly::for_alpha(a));
            }
        }
        Ok(ReluMode::Pann { alphas, bounds, polys })
    }

    /// PANN at precision 2^-alpha with one bound for every site (Lee et al.).
    pub fn pann_global(alpha: Alpha, sites: &[&str], bound: f64) -> Result<Self> {
        Self::pann(alpha, sites.iter().map(|s| (s.to_string(), bound)).collect())
    }
}

/// What one ReLU site saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteStats {
    /// Largest |input| (NaN inputs are counted as exceeding, not here).
    pub max_abs: f64,
    /// Inputs with |x| > B (or not finite); always 0 for exact ReLU.
    pub exceeded: u64,
    /// Inputs seen.
    pub count: u64,
}

impl SiteStats {
    /// Count one input `v` of a site with bound `bound` (for max pooling,
    /// the difference of the two values compared).
    pub fn record(&mut self, v: f64, bound: f64) {
        self.count += 1;
        let a = v.abs();
        if a > self.max_abs {
            self.max_abs = a;
        }
        if a > bound || a.is_nan() {
            self.exceeded += 1;
        }
    }

    /// Add `o`'s counts to this one's and keep the larger maximum.
    pub fn merge(&mut self, o: &SiteStats) {
        self.max_abs = self.max_abs.max(o.max_abs);
        self.exceeded += o.exceeded;
        self.count += o.count;
    }
}

/// The result of one forward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Forward {
    /// The output value of the image (the logits), in the network's units.
    pub logits: Vec<f64>,
    /// One entry per ReLU site, in [`crate::network::Network::activation_sites`] order.
    pub sites: Vec<SiteStats>,
}

impl Forward {
    /// Index of the largest finite logit; `None` when no logit is finite
    /// (a diverged PANN), which callers count as a wrong prediction.
    pub fn predicted(&self) -> Option<usize> {
        argmax(&self.logits)
    }

    /// Whether any ReLU input of this image left its bound.
    pub fn any_exceeded(&self) -> bool {
        self.sites.iter().any(|s| s.exceeded > 0)
    }
}

/// Index of the largest finite value.
pub fn argmax(v: &[f64]) -> Option<usize> {
    v.iter()
        .enumerate()
        .filter(|(_, x)| x.is_finite())
        .fold(None, |best: Option<(usize, f64)>, (i, &x)| match best {
            Some((_, b)) if b >= x => best,
            _ => Some((i, x)),
        })
        .map(|(i, _)| i)
}

/// `poly.relu(v, bound)` for every element, bit for bit the same, but
/// evaluated on lanes of 8 elements at once. Clenshaw's recurrence is one long
/// dependency chain per element, so element by element it runs at the
/// latency of a multiply-add per coefficient; 8 independent chains side by
/// side run at its throughput (and vectorise), about 5x faster on ResNet-20.
pub fn pann_relu_slice(poly: &SignPoly, bound: f64, x: &[f64]) -> Vec<f64> {
    const L: usize = 8;
    let mut out = vec![0.0; x.len()];
    for (xc, oc) in x.chunks(L).zip(out.chunks_mut(L)) {
        let n = xc.len();
        let mut v = [0.0f64; L];
        for j in 0..n {
            v[j] = xc[j] / bound;
        }
        for comp in &poly.components {
            let a = &comp.chebyshev;
            let (mut b1, mut b2) = ([0.0f64; L], [0.0f64; L]);
            for &c in a.iter().skip(1).rev() {
                for j in 0..L {
                    let b0 = 2.0 * v[j] * b1[j] - b2[j] + c;
                    b2[j] = b1[j];
                    b1[j] = b0;
                }
            }
            for j in 0..L {
                v[j] = v[j] * b1[j] - b2[j] + a[0];
            }
        }
        for j in 0..n {
            oc[j] = xc[j] * (1.0 + v[j]) / 2.0;
        }
    }
    out
}

/// A model bound to a ReLU mode, ready to run.
#[derive(Debug)]
pub struct PlainExecutor<'m> {
    model: &'m Model,
    mode: ReluMode,
    /// Per node: the site index, bound and alpha for ReLU nodes.
    relu_slots: Vec<Option<(usize, f64, Alpha)>>,
    site_names: Vec<String>,
}

/// One activation site of one forward pass: the executor's mode with the
/// site's bound and alpha, counting into the site's statistics.
struct SiteAct<'a, 'm> {
    exec: &'a PlainExecutor<'m>,
    bound: f64,
    alpha: Alpha,
    stats: &'a mut SiteStats,
}

impl Activation for SiteAct<'_, '_> {
    fn relu(&mut self, x: &[f64]) -> Vec<f64> {
        self.exec.relu(x, self.bound, self.alpha, self.stats)
    }
    fn max2(&mut self, a: f64, b: f64) -> f64 {
        match self.exec.mode {
            ReluMode::Exact => {
                self.stats.record(a - b, self.bound);
                a.max(b)
            }
            ReluMode::Pann { .. } => b + self.relu(&[a - b])[0],
        }
    }
}

impl<'m> PlainExecutor<'m> {
    /// Resolve the bounds of every ReLU site; a site without a positive finite
    /// bound is an error in PANN mode.
    pub fn new(model: &'m Model, mode: ReluMode) -> Result<Self> {
        let mut relu_slots = vec![None; model.network.nodes.len()];
        let mut site_names = Vec::new();
        for (i, n) in model.network.nodes.iter().enumerate() {
            if n.op.is_activation() {
                let (bound, alpha) = match &mode {
                    ReluMode::Exact => (f64::INFINITY, Alpha::MIN), // the alpha is not used
                    ReluMode::Pann { bounds, alphas, .. } => {
                        let b = *bounds.get(&n.name).ok_or_else(|| ModelError::MissingBound { site: n.name.clone() })?;
                        if !(b > 0.0 && b.is_finite()) {
                            return Err(ModelError::BadBound { site: n.name.clone(), bound: b });
                        }
                        let a = *alphas.get(&n.name).ok_or_else(|| ModelError::SignPoly(format!("no alpha for ReLU site {:?}", n.name)))?;
                        (b, a)
                    }
                };
                relu_slots[i] = Some((site_names.len(), bound, alpha));
                site_names.push(n.name.clone());
            }
        }
        Ok(Self { model, mode, relu_slots, site_names })
    }

    /// ReLU site names in execution order (the order of [`Forward::sites`]).
    pub fn site_names(&self) -> &[String] {
        &self.site_names
    }

    /// The model this executor runs.
    pub fn model(&self) -> &Model {
        self.model
    }

    /// One image (CHW, already normalised, e.g. by [`crate::InputSpec::normalise`])
    /// through the network; an error if its length is not the input shape's.
    pub fn forward(&self, input: &[f64]) -> Result<Forward> {
        let net = &self.model.network;
        let in_shape = net.input_shape();
        if input.len() != in_shape.len() {
            return Err(ModelError::InputShape { expected: in_shape.dims(), found: vec![input.len()] });
        }
        // Free each value after its last reader so that deep nets stay small.
        let mut last_use = vec![0usize; net.nodes.len()];
        for (i, n) in net.nodes.iter().enumerate() {
            for &j in &n.inputs {
                last_use[j] = i;
            }
        }
        last_use[net.output] = usize::MAX;
        let mut values: Vec<Option<Vec<f64>>> = vec![None; net.nodes.len()];
        values[0] = Some(input.to_vec());
        let mut sites = vec![SiteStats::default(); self.site_names.len()];
        for (i, n) in net.nodes.iter().enumerate().skip(1) {
            let inputs: Vec<&[f64]> =
                n.inputs.iter().map(|&j| values[j].as_deref().expect("inputs computed earlier (validated)")).collect();
            let shapes: Vec<Shape> = n.inputs.iter().map(|&j| net.nodes[j].shape).collect();
            let mut act = match self.relu_slots[i] {
                Some((site, bound, alpha)) => SiteAct { exec: self, bound, alpha, stats: &mut sites[site] },
                // Not an activation site: never called.
                None => SiteAct { exec: self, bound: f64::INFINITY, alpha: Alpha::MIN, stats: &mut SiteStats::default() },
            };
            let mut cx = EvalCx { name: &n.name, inputs: &inputs, shapes: &shapes, params: &self.model.params, act: &mut act };
            let out = n.op.operator().eval(&mut cx)?;
            values[i] = Some(out);
            for &j in &n.inputs {
                if last_use[j] == i {
                    values[j] = None;
                }
            }
        }
        let logits = values[net.output].take().expect("output computed");
        Ok(Forward { logits, sites })
    }

    fn relu(&self, x: &[f64], bound: f64, alpha: Alpha, st: &mut SiteStats) -> Vec<f64> {
        for &v in x {
            st.record(v, bound);
        }
        match &self.mode {
            ReluMode::Exact => x.iter().map(|&v| v.max(0.0)).collect(),
            ReluMode::Pann { polys, .. } => pann_relu_slice(&polys[&alpha], bound, x),
        }
    }

    /// Run `n` images in parallel (rayon, one image per task). `input(i)`
    /// produces image i; `progress`, if given, is incremented per image so a
    /// caller can show progress from another thread.
    pub fn forward_many<F>(&self, n: usize, input: F, progress: Option<&AtomicUsize>) -> Result<Vec<Forward>>
    where
        F: Fn(usize) -> Vec<f64> + Sync,
    {
        (0..n)
            .into_par_iter()
            .map(|i| {
                let r = self.forward(&input(i));
                if let Some(p) = progress {
                    p.fetch_add(1, Ordering::Relaxed);
                }
                r
            })
            .collect()
    }

    /// Accuracy and per-site statistics over labelled images.
    pub fn evaluate<F>(&self, n: usize, input: F, labels: &[u8], progress: Option<&AtomicUsize>) -> Result<Evaluation>
    where
        F: Fn(usize) -> Vec<f64> + Sync,
    {
        let outs = self.forward_many(n, input, progress)?;
        Ok(Evaluation::from_forwards(&self.site_names, &outs, labels))
    }
}

/// Accuracy and out-of-range statistics of a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Images evaluated.
    pub images: usize,
    /// Images whose prediction ([`Forward::predicted`]) is their label.
    pub correct: usize,
    /// Images with at least one ReLU input outside its bound.
    pub images_out_of_range: usize,
    /// Images whose logits were not all finite (a diverged PANN).
    pub images_diverged: usize,
    /// Per ReLU site, in execution order.
    pub sites: Vec<(String, SiteStats)>,
}

impl Evaluation {
    /// Summarise forward passes with their labels, one per pass in the same
    /// order (a pass without a label counts in `images` only); `site_names`
    /// in the executor's order.
    pub fn from_forwards(site_names: &[String], outs: &[Forward], labels: &[u8]) -> Self {
        let mut sites: Vec<(String, SiteStats)> = site_names.iter().map(|s| (s.clone(), SiteStats::default())).collect();
        let mut correct = 0;
        let mut oor = 0;
        let mut diverged = 0;
        for (f, &l) in outs.iter().zip(labels) {
            if f.predicted() == Some(l as usize) {
                correct += 1;
            }
            if f.any_exceeded() {
                oor += 1;
            }
            if f.logits.iter().any(|v| !v.is_finite()) {
                diverged += 1;
            }
            for (acc, s) in sites.iter_mut().zip(&f.sites) {
                acc.1.merge(s);
            }
        }
        Self { images: outs.len(), correct, images_out_of_range: oor, images_diverged: diverged, sites }
    }

    /// Fraction of images predicted correctly (0 for no images).
    pub fn accuracy(&self) -> f64 {
        if self.images == 0 {
            0.0
        } else {
            self.correct as f64 / self.images as f64
        }
    }

    /// Total ReLU inputs outside their bounds.
    pub fn inputs_out_of_range(&self) -> u64 {
        self.sites.iter().map(|s| s.1.exceeded).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_relu_is_bitwise_the_scalar_one() {
        for alpha in [7, 9, 14] {
            let poly = SignPoly::for_alpha(Alpha::new(alpha).unwrap());
            let x: Vec<f64> = (0..37).map(|i| (i as f64 - 18.0) * 0.37).collect();
            let got = pann_relu_slice(&poly, 7.5, &x);
            for (g, &v) in got.iter().zip(&x) {
                assert_eq!(g.to_bits(), poly.relu(v, 7.5).to_bits());
            }
        }
    }
}
