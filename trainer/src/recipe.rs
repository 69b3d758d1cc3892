//! Training recipes: named presets whose every hyper-parameter can be
//! overridden (the binary maps each `--flag` onto a field). The resolved
//! recipe is stored in checkpoints and in the exported model card, so a
//! result always says exactly how it was trained.

use crate::act::{NgnvParams, PolyGrad};
use crate::error::{Result, TrainerError};
use pann_approx::Alpha;
use serde::{Deserialize, Serialize};

/// The named presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// SGD momentum 0.9, weight decay 1e-4, cosine schedule, exact ReLU.
    Baseline,
    /// Zhang et al.: no weight decay, Mixup (alpha 1), NGNV leakage at alpha 9.
    Paper,
    /// Polynomial in the loop at alpha 9 from a trained model: lr 0.01, 10 epochs.
    Finetune,
}

/// Learning-rate schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// Cosine from `lr` to 0 over all steps (after warm-up).
    Cosine,
    /// Multiply by `gamma` at each milestone epoch.
    Step {
        /// Epochs (0-based) from which one more factor of `gamma` applies.
        milestones: Vec<usize>,
        /// The factor.
        gamma: f64,
    },
}

/// Polynomial-in-the-loop settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinetuneParams {
    /// Precision of the polynomial, also the exported card's default alpha.
    pub alpha: Alpha,
    /// Per-site alphas (execution order), e.g. from a `pann plan` card; empty:
    /// `alpha` at every site.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub site_alphas: Vec<Alpha>,
    /// Bound margin over the calibrated max |input|.
    pub margin: f64,
    /// Training images used to calibrate the bounds before fine-tuning.
    pub calib_images: usize,
    /// The gradient of the polynomial ReLU.
    pub grad: PolyGrad,
}

/// A fully resolved recipe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// The preset it started from.
    pub preset: Preset,
    /// Epochs of the whole run.
    pub epochs: usize,
    /// Images per step (at most the training set).
    pub batch_size: usize,
    /// Peak learning rate (reached at the end of the warm-up).
    pub lr: f64,
    /// SGD momentum, in [0, 1).
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 weight decay (>= 0).
    pub weight_decay: f64,
    /// Learning-rate schedule after the warm-up.
    pub schedule: Schedule,
    /// Linear warm-up epochs (0 = none).
    pub warmup_epochs: usize,
    /// Random crop (4-pixel zero padding) and horizontal flip.
    pub augment: bool,
    /// Mixup Beta(a, a) parameter; 0 disables Mixup.
    pub mixup_alpha: f64,
    /// NGNV leakage in training (`paper`); ignored when `finetune` is set.
    pub ngnv: Option<NgnvParams>,
    /// The polynomial in the loop (`finetune`); needs initial weights.
    pub finetune: Option<FinetuneParams>,
}

impl Recipe {
    /// The recipe of a preset: 200 epochs, batch 128, lr 0.1, momentum 0.9,
    /// weight decay 1e-4, cosine schedule, augmentation, then the preset's
    /// changes (see [`Preset`]).
    pub fn preset(p: Preset) -> Self {
        let base = Recipe {
            preset: p,
            epochs: 200,
            batch_size: 128,
            lr: 0.1,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-4,
            schedule: Schedule::Cosine,
            warmup_epochs: 0,
            augment: true,
            mixup_alpha: 0.0,
            ngnv: None,
            finetune: None,
        };
        match p {
            Preset::Baseline => base,
            Preset::Paper => Recipe {
                weight_decay: 0.0,
                mixup_alpha: 1.0,
                ngnv: Some(NgnvParams { alpha: 9, scale: 1.0, margin: 1.1, momentum: 0.9 }),
                ..base
            },
            Preset::Finetune => Recipe {
                epochs: 10,
                lr: 0.01,
                weight_decay: 0.0,
                finetune: Some(FinetuneParams {
                    alpha: Alpha::new(9).expect("9 is an alpha"),
                    site_alphas: Vec::new(),
                    margin: 1.1,
                    calib_images: 5000,
                    grad: PolyGrad::Ste,
                }),
                ..base
            },
        }
    }

    /// Check every parameter's range; a [`TrainerError::Config`] says which is out.
    pub fn validate(&self) -> Result<()> {
        let bad = |s: &str| Err(TrainerError::Config(s.into()));
        if self.epochs == 0 || self.batch_size == 0 {
            return bad("epochs and batch size must be positive");
        }
        if !(self.lr > 0.0 && self.lr.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return bad("lr must be positive and momentum in [0, 1)");
        }
        if self.weight_decay < 0.0 || self.mixup_alpha < 0.0 {
            return bad("weight decay and mixup alpha must be >= 0");
        }
        if let Some(n) = &self.ngnv {
            // The leakage formula needs no polynomial table, so any precision 1..30 is allowed.
            if !(1..=30).contains(&n.alpha) || n.scale < 0.0 || n.margin <= 0.0 || !(0.0..1.0).contains(&n.momentum) {
                return bad("ngnv: alpha in 1..30, scale >= 0, margin > 0, momentum in [0, 1)");
            }
        }
        if let Some(f) = &self.finetune {
            if f.margin <= 0.0 || f.calib_images == 0 {
                return bad("finetune: margin > 0, calib_images > 0");
            }
        }
        Ok(())
    }

    /// Learning rate at step `step_in_epoch` (0-based) of epoch `epoch`
    /// (0-based), `steps_per_epoch` steps per epoch: a linear warm-up over
    /// `warmup_epochs`, then the schedule.
    pub fn lr_at(&self, epoch: usize, step_in_epoch: usize, steps_per_epoch: usize) -> f64 {
        let spe = steps_per_epoch.max(1) as f64;
        let t = epoch as f64 + step_in_epoch as f64 / spe;
        if (t as usize) < self.warmup_epochs {
            return self.lr * (t + 1.0 / spe) / self.warmup_epochs as f64;
        }
        match &self.schedule {
            Schedule::Cosine => {
                let w = self.warmup_epochs as f64;
                let frac = ((t - w) / (self.epochs as f64 - w).max(1e-9)).clamp(0.0, 1.0);
                self.lr * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos())
            }
            Schedule::Step { milestones, gamma } => self.lr * gamma.powi(milestones.iter().filter(|&&m| epoch >= m).count() as i32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_schedules_decay() {
        for p in [Preset::Baseline, Preset::Paper, Preset::Finetune] {
            Recipe::preset(p).validate().unwrap();
        }
        let r = Recipe::preset(Preset::Baseline);
        assert!((r.lr_at(0, 0, 10) - 0.1).abs() < 1e-12);
        assert!(r.lr_at(199, 9, 10) < 1e-4);
        let s = Recipe { schedule: Schedule::Step { milestones: vec![100, 150], gamma: 0.1 }, ..r };
        assert!((s.lr_at(120, 0, 10) - 0.01).abs() < 1e-12);
    }
}
