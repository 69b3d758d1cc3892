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
//! (see [`crate::plain::Evaluation`]).

use crate::error::Result;
use crate::model::Model;
use crate::plain::{PlainExecutor, ReluMode};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;

/// Largest |ReLU input| per site over `n` images, with exact ReLU.
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
    pub start: f64,
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
    pub fn grow_with_pann<F>(&self, model: &Model, alpha: u32, n: usize, input: F, exact_max_abs: f64, max_steps: usize) -> Result<f64>
    where
        F: Fn(usize) -> Vec<f64> + Sync,
    {
        let sites: Vec<String> = model.network.relu_sites().iter().map(|s| s.to_string()).collect();
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
