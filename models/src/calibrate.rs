//! ReLU bound calibration.
//!
//! The composite sign polynomial is only valid on [-1, 1], so each ReLU input
//! is divided by a bound B first. Two ways to choose B:
//! - per layer (this project's default): B_site = margin x max |input| at that
//!   site over calibration images, run with exact ReLU;
//! - one global B as in Lee et al.: start at 50 and grow by 5 until no ReLU
//!   input of the calibration images exceeds it.
//!
//! Inside MPC an out-of-range input cannot be detected, so calibration is
//! done on training images and the exceedance on held-out images is reported
//! ([`OutOfRange`], per site and overall; `pann calibrate --holdout`), and the
//! logits the PANN produces on the calibration images are kept
//! ([`logit_range`]) so that a client can tell a wrapped result from a real
//! one ([`crate::range`]).

use crate::error::{ModelError, Result};
use crate::model::Model;
use crate::plain::{Forward, PlainExecutor, ReluMode};
use crate::precision::SecureConfig;
use pann_approx::Alpha;
use pann_protocols::reference::headroom;
use pann_protocols::{PolyRelu, ReluConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;

/// Largest |ReLU input| per site over `n` images, with exact ReLU. Sites
/// that must share a bound ([`crate::Network::shared_bound_groups`]: their
/// outputs are concatenated) get the largest of their group.
pub fn max_abs_per_site<F>(model: &Model, n: usize, input: F, progress: Option<&AtomicUsize>) -> Result<BTreeMap<String, f64>>
where
    F: Fn(usize) -> Vec<f64> + Sync,
{
    let exec = PlainExecutor::new(model, ReluMode::Exact)?;
    let outs = exec.forward_many(n, input, progress)?;
    let mut max: BTreeMap<String, f64> = exec.site_names().iter().map(|s| (s.clone(), 0.0)).collect();
    for f in &outs {
        for (name, s) in exec.site_names().iter().zip(&f.sites) {
            let m = max.get_mut(name).expect("same sites");
            *m = m.max(s.max_abs);
        }
    }
    for group in model.network.shared_bound_groups() {
        let m = group.iter().map(|s| max[*s]).fold(0.0, f64::max);
        for s in group {
            max.insert(s.to_string(), m);
        }
    }
    Ok(max)
}

/// Per-site bounds: `margin` x max |input|. A site that saw only zeros gets
/// the margin itself, so that every bound stays positive.
pub fn per_site_bounds(max_abs: &BTreeMap<String, f64>, margin: f64) -> BTreeMap<String, f64> {
    max_abs.iter().map(|(k, &m)| (k.clone(), if m > 0.0 { margin * m } else { margin })).collect()
}

/// The Lee et al. rule for one global bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GlobalBoundRule {
    /// The first candidate bound (50 by default).
    pub start: f64,
    /// The growth per step (5 by default).
    pub step: f64,
}

impl Default for GlobalBoundRule {
    fn default() -> Self {
        Self { start: 50.0, step: 5.0 }
    }
}

impl GlobalBoundRule {
    /// The smallest `start + k * step` (k >= 0) that is >= `max_abs`.
    pub fn bound_for(&self, max_abs: f64) -> f64 {
        if max_abs <= self.start {
            return self.start;
        }
        self.start + ((max_abs - self.start) / self.step).ceil() * self.step
    }

    /// Apply the rule with the PANN itself in the loop, as Lee et al. do: begin
    /// at the bound the exact-ReLU maximum asks for (no smaller candidate can
    /// pass, up to the approximation's small perturbation), then run the PANN
    /// at `alpha` over the calibration images and grow by `step` while any
    /// input exceeds the bound; at most `max_steps` growths.
    pub fn grow_with_pann<F>(&self, model: &Model, alpha: Alpha, n: usize, input: F, exact_max_abs: f64, max_steps: usize) -> Result<f64>
    where
        F: Fn(usize) -> Vec<f64> + Sync,
    {
        let sites: Vec<String> = model.network.activation_sites().iter().map(|s| s.to_string()).collect();
        let site_refs: Vec<&str> = sites.iter().map(String::as_str).collect();
        let mut b = self.bound_for(exact_max_abs);
        for _ in 0..max_steps {
            let exec = PlainExecutor::new(model, ReluMode::pann_global(alpha, &site_refs, b)?)?;
            let outs = exec.forward_many(n, &input, None)?;
            if !outs.iter().any(|f| f.any_exceeded()) {
                return Ok(b);
            }
            b += self.step;
        }
        Ok(b)
    }
}

/// Per site, the largest |x / B| for which the secure ReLU at the site's
/// alpha stays inside the ring (every opening in [-2^62, 2^62), the output in
/// the signed ring range), with its input at the scale a uniform deployment
/// at that alpha gives it (`pann_protocols::reference::headroom`; measured
/// per alpha in docs/results/out-of-range.md). Past it the secure result is
/// garbage; between 1 and it, only the approximation is off its domain.
pub fn ring_headroom(alphas: &BTreeMap<String, Alpha>) -> Result<BTreeMap<String, f64>> {
    let mut per_alpha: BTreeMap<Alpha, f64> = BTreeMap::new();
    for &a in alphas.values() {
        if let std::collections::btree_map::Entry::Vacant(e) = per_alpha.entry(a) {
            let cfg = SecureConfig::new(a);
            let s = cfg.act_bits() + cfg.weight_bits;
            let relu = PolyRelu::new(ReluConfig::new(a, s)).map_err(|e| ModelError::SignPoly(e.to_string()))?;
            e.insert(headroom(&relu.program, s, 1e-4).t_max());
        }
    }
    Ok(alphas.iter().map(|(k, a)| (k.clone(), per_alpha[a])).collect())
}

/// One ReLU site's inputs beyond its bound over a set of images.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SiteOutOfRange {
    /// The ReLU site (node name).
    pub site: String,
    /// Its bound B (infinite when the site has none).
    pub bound: f64,
    /// Images with at least one input of this site beyond its bound (|x| > B).
    pub images_beyond: usize,
    /// Inputs of this site beyond its bound, over all images.
    pub inputs_beyond: u64,
    /// Inputs of this site, over all images.
    pub inputs: u64,
    /// Largest |x| / B seen at this site.
    pub max_ratio: f64,
    /// The site's ring headroom ([`ring_headroom`]).
    pub headroom: f64,
    /// Images with an input of this site beyond the ring headroom (|x| > headroom x B).
    pub images_beyond_headroom: usize,
}

/// How often ReLU inputs left their bounds over a set of images (images not
/// used for calibration: the rate a deployment should expect).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutOfRange {
    /// Images evaluated.
    pub images: usize,
    /// Images with any ReLU input beyond its bound.
    pub images_beyond: usize,
    /// Images with any ReLU input beyond its ring headroom: their secure result wraps.
    pub images_beyond_headroom: usize,
    /// Per ReLU site, in execution order.
    pub sites: Vec<SiteOutOfRange>,
}

/// Whether every ReLU input of `f` stayed within its site's ring headroom
/// (`site_names` in the executor's order; a site without a bound or headroom counts as unbounded).
pub fn within_headroom(f: &Forward, site_names: &[String], bounds: &BTreeMap<String, f64>, headroom: &BTreeMap<String, f64>) -> bool {
    site_names.iter().zip(&f.sites).all(|(name, st)| {
        let b = bounds.get(name).copied().unwrap_or(f64::INFINITY);
        let h = headroom.get(name).copied().unwrap_or(f64::INFINITY);
        st.max_abs <= h * b
    })
}

impl OutOfRange {
    /// From forward passes of a PANN executor (whose site order `site_names` gives).
    pub fn from_forwards(
        site_names: &[String],
        bounds: &BTreeMap<String, f64>,
        headroom: &BTreeMap<String, f64>,
        outs: &[Forward],
    ) -> Self {
        let sites = site_names
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let bound = bounds.get(name).copied().unwrap_or(f64::INFINITY);
                let h = headroom.get(name).copied().unwrap_or(f64::INFINITY);
                let mut s = SiteOutOfRange {
                    site: name.clone(),
                    bound,
                    images_beyond: 0,
                    inputs_beyond: 0,
                    inputs: 0,
                    max_ratio: 0.0,
                    headroom: h,
                    images_beyond_headroom: 0,
                };
                for f in outs {
                    let st = &f.sites[k];
                    s.images_beyond += usize::from(st.exceeded > 0);
                    s.inputs_beyond += st.exceeded;
                    s.inputs += st.count;
                    s.max_ratio = s.max_ratio.max(st.max_abs / bound);
                    s.images_beyond_headroom += usize::from(st.max_abs > h * bound);
                }
                s
            })
            .collect();
        Self {
            images: outs.len(),
            images_beyond: outs.iter().filter(|f| f.any_exceeded()).count(),
            images_beyond_headroom: outs.iter().filter(|f| !within_headroom(f, site_names, bounds, headroom)).count(),
            sites,
        }
    }

    /// Fraction of images with any ReLU input beyond its bound.
    pub fn rate(&self) -> f64 {
        self.images_beyond as f64 / self.images.max(1) as f64
    }

    /// Fraction of images with any ReLU input beyond its ring headroom.
    pub fn wrap_rate(&self) -> f64 {
        self.images_beyond_headroom as f64 / self.images.max(1) as f64
    }
}

/// `[min, max]` of the finite logits of `outs` (give it the images computed
/// in range, see [`within_headroom`]); `None` if there are none.
pub fn logit_range<'a>(outs: impl IntoIterator<Item = &'a Forward>) -> Option<[f64; 2]> {
    crate::range::range_of(outs.into_iter().filter(|f| f.logits.iter().all(|v| v.is_finite())).map(|f| f.logits.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plain::SiteStats;

    fn fwd(logits: &[f64], sites: &[(f64, u64)]) -> Forward {
        Forward { logits: logits.to_vec(), sites: sites.iter().map(|&(m, e)| SiteStats { max_abs: m, exceeded: e, count: 10 }).collect() }
    }

    #[test]
    fn ring_headroom_is_past_the_bound() {
        let a = |n| Alpha::new(n).unwrap();
        let h = ring_headroom(&[("a".to_string(), a(4)), ("b".to_string(), a(9))].into()).unwrap();
        assert!(h["a"] > 2.0 && h["b"] > 1.0 && h["b"] < 1.1, "{h:?}");
    }

    #[test]
    fn out_of_range_rates_per_site_and_overall() {
        let names = vec!["a".to_string(), "b".to_string()];
        let bounds: BTreeMap<String, f64> = [("a".to_string(), 2.0), ("b".to_string(), 4.0)].into();
        let outs =
            [fwd(&[1.0, -3.0], &[(1.5, 0), (3.0, 0)]), fwd(&[900.0, 2.0], &[(3.0, 2), (5.0, 1)]), fwd(&[2.0, 5.0], &[(1.0, 0), (4.4, 3)])];
        let head: BTreeMap<String, f64> = [("a".to_string(), 1.4), ("b".to_string(), 2.0)].into();
        let r = OutOfRange::from_forwards(&names, &bounds, &head, &outs);
        assert_eq!((r.images, r.images_beyond, r.images_beyond_headroom), (3, 2, 1), "only image 1 passes a headroom (3 > 1.4 x 2)");
        assert_eq!((r.sites[0].images_beyond_headroom, r.sites[1].images_beyond_headroom), (1, 0));
        assert_eq!((r.sites[0].images_beyond, r.sites[0].inputs_beyond, r.sites[0].inputs), (1, 2, 30));
        assert_eq!((r.sites[1].images_beyond, r.sites[1].inputs_beyond), (2, 4));
        assert!((r.sites[0].max_ratio - 1.5).abs() < 1e-12 && (r.sites[1].max_ratio - 1.25).abs() < 1e-12);
        assert!((r.rate() - 2.0 / 3.0).abs() < 1e-12);
        // The image beyond its headroom (logit 900) does not widen the logit range;
        // the one beyond its bound only (logit 5) does.
        let kept: Vec<&Forward> = outs.iter().filter(|f| within_headroom(f, &names, &bounds, &head)).collect();
        assert_eq!(kept.len(), 2);
        assert_eq!(logit_range(kept), Some([-3.0, 5.0]));
        // Negative control: with every image in range, no image is counted.
        let clean = [outs[0].clone()];
        let r = OutOfRange::from_forwards(&names, &bounds, &head, &clean);
        assert_eq!((r.images_beyond, r.images_beyond_headroom), (0, 0));
    }
}
