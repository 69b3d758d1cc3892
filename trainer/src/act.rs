//! The activations the recipes train with, besides exact ReLU.
//!
//! # NGNV: negative-input leakage tolerance (`paper` recipe)
//!
//! The PANN ReLU is `x (1 + p(x / B)) / 2` with `|p(t) - sign(t)| <= 2^(1-alpha)`
//! outside a small gap around 0, so `|ReLU~(x) - ReLU(x)| <= B 2^-alpha`.
//! Where `x < 0` the exact ReLU outputs 0 and the PANN outputs a small
//! non-zero value: the *leakage*. Zhang et al. find the network far more
//! sensitive to this error than to the same error on positive inputs, and
//! train the backbone to tolerate it. Their exact formula is not available,
//! so this trainer uses, in training mode only, at every ReLU site `s`:
//!
//! ```text
//! y = ReLU(x) + [x < 0] * u * scale * B_s * 2^-alpha,   u ~ U(-1, 1) i.i.d. per element
//! B_s = margin * M_s,   M_s <- momentum * M_s + (1 - momentum) * max|x| over the batch
//! ```
//!
//! i.e. uniform noise of exactly the worst-case magnitude the approximation
//! at precision `alpha` can produce on negative inputs, with the per-layer
//! bound `B_s` estimated as a running max (an EMA of batch maxima, without
//! gradient), the same per-layer bound calibration later fixes for
//! inference. Positive inputs are untouched (the paper's insight (1)), and
//! evaluation mode is exact ReLU. `alpha`, `scale`, `margin` and `momentum`
//! are recipe parameters.
//!
//! # Polynomial in the loop (`finetune` recipe)
//!
//! The forward pass uses the PANN ReLU itself with fixed, calibrated
//! per-site bounds; the scaled input is clamped to [-1, 1] so that a batch
//! with an activation beyond its bound (BN in training mode uses batch
//! statistics) cannot make the polynomial diverge. The gradient is either
//! the polynomial's own (autograd through Clenshaw's recurrence) or
//! straight-through (the forward value of the polynomial, the gradient of
//! the exact ReLU).

use crate::net::Activation;
use pann_approx::SignPoly;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// NGNV parameters (see the module docs for the formula).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NgnvParams {
    /// Target precision: leakage magnitude is `B 2^-alpha`.
    pub alpha: u32,
    /// Multiplier on the leakage magnitude (1 = worst case of the target alpha).
    pub scale: f64,
    /// Margin on the running max |input| that gives the bound B.
    pub margin: f64,
    /// EMA momentum of the running max.
    pub momentum: f64,
}

/// Training-time negative-input leakage.
pub struct NgnvLeak {
    /// The recipe's parameters.
    pub params: NgnvParams,
    /// Running max |input| per site (0 = not yet seen). Saved in checkpoints.
    pub running_max: Vec<f64>,
}

impl NgnvLeak {
    /// Leakage at `sites` ReLU sites, continuing from `running_max` (a
    /// resumed run's) when it has one entry per site, else from zeros.
    pub fn new(params: NgnvParams, sites: usize, running_max: Option<Vec<f64>>) -> Self {
        let running_max = running_max.filter(|r| r.len() == sites).unwrap_or_else(|| vec![0.0; sites]);
        Self { params, running_max }
    }

    /// The leakage bound of a site: `scale * margin * M_s * 2^-alpha`.
    pub fn leak_bound(&self, site: usize) -> f64 {
        self.params.scale * self.params.margin * self.running_max[site] * 2f64.powi(-(self.params.alpha as i32))
    }
}

impl Activation for NgnvLeak {
    fn apply(&mut self, site: usize, x: &Tensor, train: bool) -> Tensor {
        let r = x.relu();
        if !train {
            return r;
        }
        let batch_max = tch::no_grad(|| x.abs().max().double_value(&[]));
        let m = &mut self.running_max[site];
        *m = if *m == 0.0 { batch_max } else { self.params.momentum * *m + (1.0 - self.params.momentum) * batch_max };
        let bound = self.leak_bound(site);
        if bound <= 0.0 {
            return r;
        }
        let noise = tch::no_grad(|| {
            let u = x.rand_like() * 2.0 - 1.0;
            u * x.lt(0.0).to_kind(x.kind()) * bound
        });
        r + noise
    }

    fn running_max(&self) -> Option<Vec<f64>> {
        Some(self.running_max.clone())
    }
}

/// Which gradient the polynomial ReLU passes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PolyGrad {
    /// d/dx of x (1 + p(x/B)) / 2 through the polynomial (autograd).
    Exact,
    /// Straight-through: forward value of the polynomial, gradient of ReLU.
    Ste,
}

/// The PANN ReLU with fixed per-site bounds, for training and tch evaluation.
pub struct PannRelu {
    /// The sign polynomial p at the recipe's alpha.
    pub poly: SignPoly,
    /// Per-site polynomials (mixed precision); empty: `poly` at every site.
    pub site_polys: Vec<SignPoly>,
    /// The bound B of each site, in site order (> 0).
    pub bounds: Vec<f64>,
    /// The gradient the backward pass takes.
    pub grad: PolyGrad,
}

impl PannRelu {
    /// `x (1 + p(clamp(x / B, -1, 1))) / 2`, p by Clenshaw on each component's
    /// Chebyshev coefficients (the same evaluation order as the models crate).
    pub fn poly_relu(&self, x: &Tensor, bound: f64) -> Tensor {
        Self::eval(&self.poly, x, bound)
    }

    /// The polynomial of `site`.
    pub fn poly_of(&self, site: usize) -> &SignPoly {
        self.site_polys.get(site).unwrap_or(&self.poly)
    }

    fn eval(poly: &SignPoly, x: &Tensor, bound: f64) -> Tensor {
        let mut v = (x / bound).clamp(-1.0, 1.0);
        for comp in &poly.components {
            let a = &comp.chebyshev;
            let mut b1 = v.zeros_like();
            let mut b2 = v.zeros_like();
            for &c in a.iter().skip(1).rev() {
                let b0 = &v * &b1 * 2.0 - &b2 + c;
                b2 = b1;
                b1 = b0;
            }
            v = &v * &b1 - &b2 + a[0];
        }
        x * (v + 1.0) * 0.5
    }
}

impl Activation for PannRelu {
    fn apply(&mut self, site: usize, x: &Tensor, _train: bool) -> Tensor {
        let y = Self::eval(self.poly_of(site), x, self.bounds[site]);
        match self.grad {
            PolyGrad::Exact => y,
            PolyGrad::Ste => {
                let r = x.relu();
                &r + (y - &r).detach()
            }
        }
    }
}

/// Records max |input| per site while applying exact ReLU (bound calibration
/// on the tch side, e.g. before polynomial fine-tuning).
pub struct MaxRecorder {
    /// Largest |input| seen per site; start from one 0 per site.
    pub max_abs: Vec<f64>,
}

impl Activation for MaxRecorder {
    fn apply(&mut self, site: usize, x: &Tensor, _train: bool) -> Tensor {
        let m = tch::no_grad(|| x.abs().max().to_kind(Kind::Double).double_value(&[]));
        self.max_abs[site] = self.max_abs[site].max(m);
        x.relu()
    }
}

/// Which inputs get the polynomial in [`SidedPann`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The polynomial on both sides: the plain PANN ReLU.
    Both,
    /// Polynomial where x < 0, exact ReLU (0) elsewhere...
    Negative,
    /// ...or the other way round.
    Positive,
}

/// The PANN ReLU applied to one side of 0 only, exact ReLU on the other:
/// measures the paper's insight (1), that the approximation error on
/// negative inputs costs more accuracy than the same error on positive ones.
pub struct SidedPann {
    /// The PANN ReLU (polynomial and bounds) on the chosen side.
    pub pann: PannRelu,
    /// Where the polynomial applies.
    pub side: Side,
}

impl Activation for SidedPann {
    fn apply(&mut self, site: usize, x: &Tensor, _train: bool) -> Tensor {
        let y = self.pann.poly_relu(x, self.pann.bounds[site]);
        match self.side {
            Side::Both => y,
            Side::Negative => y.where_self(&x.lt(0.0), &x.relu()),
            Side::Positive => y.where_self(&x.ge(0.0), &x.relu()),
        }
    }
}
