//! PANN evaluation of an exported model through the models crate's
//! `PlainExecutor` (f64, BN folded, per-site bounds from the card): exact
//! ReLU, then the PANN ReLU at each alpha, with out-of-range and divergence
//! counts. This is the reference the secure executor is compared with, so
//! these are the accuracies a private inference gets (up to fixed point).

use crate::error::Result;
use pann_models::{Cifar10, LoadedModel, PlainExecutor, ReluMode};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// One line of an evaluation table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// `None` for exact ReLU.
    pub alpha: Option<u32>,
    pub images: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub images_out_of_range: usize,
    pub images_diverged: usize,
    pub inputs_out_of_range: u64,
    pub seconds: f64,
}

/// Evaluate `card` on the first `n` images of `test` with exact ReLU and at every alpha.
pub fn evaluate_card(card: &Path, test: &Cifar10, n: usize, alphas: &[u32], mut on_row: impl FnMut(&EvalRow)) -> Result<Vec<EvalRow>> {
    let m = LoadedModel::load(card)?;
    let spec = m.card.input.clone();
    let n = n.min(test.len());
    let mut rows = Vec::new();
    let modes: Vec<Option<u32>> = std::iter::once(None).chain(alphas.iter().copied().map(Some)).collect();
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
