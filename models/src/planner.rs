//! Mixed precision: choose an alpha per ReLU site that minimises the online
//! cost (bytes or rounds) while the PANN's accuracy on calibration images
//! stays within a target of the exact-ReLU accuracy.
//!
//! The search is a greedy descent, simple on purpose:
//! 1. start from the cheapest configuration that meets the target among the
//!    uniform ones (every candidate alpha) and, if given, the card's own
//!    per-site alphas (a model fine-tuned at mixed precision);
//! 2. repeatedly lower one site by one candidate level, choosing the move
//!    that saves the most cost per unit of calibration loss it adds. The
//!    loss a move adds is estimated from a sensitivity table: the mean
//!    cross-entropy with only that site lowered (measured once per site and
//!    level, against the start configuration), minus the same with the site
//!    at its current level;
//! 3. every chosen move is verified by evaluating the whole configuration: if
//!    the accuracy falls below the target the move is undone and the site is
//!    frozen at its level.
//!
//! Every configuration evaluated on the way is kept, so the caller can report
//! the cost/accuracy frontier the search explored.

use std::collections::{BTreeMap, BTreeSet};

use pann_approx::Alpha;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::model::Model;
use crate::plain::{Forward, PlainExecutor, ReluMode};

/// The metered cost of one ReLU at one alpha.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReluCost {
    /// Online bytes per ReLU element (both directions, one party's channel).
    pub bytes: f64,
    /// Online rounds of one ReLU layer (independent of its size).
    pub rounds: u32,
    /// Offline bytes per ReLU element: what the dealer sends party 1
    /// (reports written before this field read as 0).
    #[serde(default)]
    pub offline_bytes: f64,
}

/// What the planner minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Online ReLU bytes per image.
    Bytes,
    /// Online ReLU rounds per inference.
    Rounds,
    /// Offline ReLU bytes per image (the dealer's traffic to the client).
    Offline,
    /// Online and offline ReLU bytes per image together.
    Total,
}

impl Objective {
    /// The quantity minimised, from a configuration's online bytes, rounds
    /// and offline bytes.
    pub fn value(self, online_bytes: f64, rounds: u32, offline_bytes: f64) -> f64 {
        match self {
            Objective::Bytes => online_bytes,
            Objective::Rounds => rounds as f64,
            Objective::Offline => offline_bytes,
            Objective::Total => online_bytes + offline_bytes,
        }
    }
}

/// Accuracy and mean cross-entropy of one configuration on the calibration images.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Fraction of images predicted correctly.
    pub accuracy: f64,
    /// Mean cross-entropy in nats, each image's capped at 20 (what a
    /// diverged image counts).
    pub loss: f64,
}

/// One configuration the search evaluated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explored {
    /// Alpha per site, in execution order.
    pub alphas: Vec<Alpha>,
    /// Online ReLU bytes per image (from the cost table).
    pub relu_bytes: f64,
    /// ReLU rounds per inference (from the cost table).
    pub relu_rounds: u32,
    /// Offline ReLU bytes per image (from the cost table; 0 in reports
    /// written before it was recorded).
    #[serde(default)]
    pub relu_offline_bytes: f64,
    /// Its score on the calibration images.
    pub score: Score,
    /// What produced it: "uniform", "start" (the given starting point),
    /// "sensitivity", "accepted" or "rejected".
    pub kind: String,
}

/// The planner's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanOutcome {
    /// ReLU site names, in execution order.
    pub sites: Vec<String>,
    /// ReLU elements per image at each site.
    pub elements: Vec<usize>,
    /// The model's score with exact ReLU.
    pub exact: Score,
    /// The accuracy the target is relative to (`exact.accuracy` unless another was given).
    pub reference_accuracy: f64,
    /// Lowest accuracy the plan may have.
    pub target_accuracy: f64,
    /// What was minimised.
    pub objective: Objective,
    /// The chosen alpha per site (execution order).
    pub alphas: Vec<Alpha>,
    /// The chosen configuration's score.
    pub score: Score,
    /// Every configuration evaluated, in order (the explored frontier).
    pub explored: Vec<Explored>,
}

impl PlanOutcome {
    /// The chosen alphas by site name (what a card's `relu_alphas` holds).
    pub fn alpha_map(&self) -> BTreeMap<String, Alpha> {
        self.sites.iter().cloned().zip(self.alphas.iter().copied()).collect()
    }
}

/// The planner's inputs: a BN-folded model, its per-site bounds, normalised
/// calibration images with labels, and the metered cost of a ReLU per alpha
/// (its keys are the candidate alphas).
pub struct Planner<'a> {
    /// The model (BN folded).
    pub model: &'a Model,
    /// Bound B per ReLU site.
    pub bounds: &'a BTreeMap<String, f64>,
    /// Calibration images, each normalised CHW.
    pub images: &'a [Vec<f64>],
    /// Their labels (images beyond the last label are not used).
    pub labels: &'a [u8],
    /// Metered cost of one ReLU per candidate alpha.
    pub costs: &'a BTreeMap<Alpha, ReluCost>,
    /// What to minimise.
    pub objective: Objective,
    /// Another starting point besides the uniform ones: alphas per site in
    /// execution order (each must be a candidate alpha).
    pub start: Option<Vec<Alpha>>,
    /// The accuracy the target is relative to; `None`: this model's own
    /// exact-ReLU accuracy on the calibration images. (A network fine-tuned
    /// with the polynomial in the loop no longer works with exact ReLU; its
    /// reference is the backbone it came from.)
    pub reference_accuracy: Option<f64>,
}

/// Cross-entropy of one forward pass (a diverged PANN counts as a loss of 20).
fn cross_entropy(f: &Forward, label: u8) -> f64 {
    let l = &f.logits;
    if l.iter().any(|v| !v.is_finite()) {
        return 20.0;
    }
    let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + l.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    (lse - l[label as usize]).min(20.0)
}

impl Planner<'_> {
    /// Site names (execution order) and ReLU elements per image at each.
    pub fn sites(&self) -> (Vec<String>, Vec<usize>) {
        let net = &self.model.network;
        net.nodes.iter().filter(|n| n.op.is_activation()).map(|n| (n.name.clone(), n.shape.len())).unzip()
    }

    /// Evaluate `mode` on the calibration images.
    pub fn score(&self, mode: ReluMode) -> Result<Score> {
        let exec = PlainExecutor::new(self.model, mode)?;
        let n = self.images.len().min(self.labels.len());
        let outs = exec.forward_many(n, |i| self.images[i].clone(), None)?;
        let correct = outs.iter().zip(self.labels).filter(|(f, &l)| f.predicted() == Some(l as usize)).count();
        let loss = outs.iter().zip(self.labels).map(|(f, &l)| cross_entropy(f, l)).sum::<f64>();
        Ok(Score { accuracy: correct as f64 / n.max(1) as f64, loss: loss / n.max(1) as f64 })
    }

    fn score_alphas(&self, sites: &[String], alphas: &[Alpha]) -> Result<Score> {
        let map = sites.iter().cloned().zip(alphas.iter().copied()).collect();
        self.score(ReluMode::pann_mixed(map, self.bounds.clone())?)
    }

    /// Online ReLU bytes per image and ReLU rounds of a configuration.
    pub fn cost_of(&self, elements: &[usize], alphas: &[Alpha]) -> (f64, u32) {
        let bytes = elements.iter().zip(alphas).map(|(&e, a)| e as f64 * self.costs[a].bytes).sum();
        let rounds = alphas.iter().map(|a| self.costs[a].rounds).sum();
        (bytes, rounds)
    }

    /// Offline ReLU bytes per image of a configuration.
    pub fn offline_cost_of(&self, elements: &[usize], alphas: &[Alpha]) -> f64 {
        elements.iter().zip(alphas).map(|(&e, a)| e as f64 * self.costs[a].offline_bytes).sum()
    }

    fn objective_of(&self, elements: &[usize], alphas: &[Alpha]) -> f64 {
        let (b, r) = self.cost_of(elements, alphas);
        self.objective.value(b, r, self.offline_cost_of(elements, alphas))
    }

    /// Search for the cheapest configuration with accuracy >= reference - `max_drop`
    /// (a fraction, e.g. 0.005 for half a point; the reference is
    /// `reference_accuracy` or the exact-ReLU accuracy). `progress` is told each evaluation.
    pub fn plan(&self, max_drop: f64, mut progress: impl FnMut(&Explored)) -> Result<PlanOutcome> {
        let levels: Vec<Alpha> = self.costs.keys().copied().collect();
        if levels.is_empty() {
            return Err(ModelError::Config("the planner needs the cost of at least one alpha".into()));
        }
        let (sites, elements) = self.sites();
        let exact = self.score(ReluMode::Exact)?;
        let target = self.reference_accuracy.unwrap_or(exact.accuracy) - max_drop;
        let mut explored = Vec::new();
        let mut record = |alphas: &[Alpha], score: Score, kind: &str, explored: &mut Vec<Explored>| {
            let (relu_bytes, relu_rounds) = self.cost_of(&elements, alphas);
            let relu_offline_bytes = self.offline_cost_of(&elements, alphas);
            let e = Explored { alphas: alphas.to_vec(), relu_bytes, relu_rounds, relu_offline_bytes, score, kind: kind.into() };
            progress(&e);
            explored.push(e);
        };

        // 1. The cheapest starting point that meets the target.
        let level_of = |a: Alpha| levels.iter().position(|&l| l == a);
        let mut starts: Vec<Vec<usize>> = (0..levels.len()).rev().map(|l| vec![l; sites.len()]).collect();
        if let Some(own) = &self.start {
            let own: Option<Vec<usize>> = own.iter().map(|&a| level_of(a)).collect();
            match own {
                Some(own) if own.len() == sites.len() => starts.push(own),
                _ => return Err(ModelError::Config("the starting alphas must name every site with a candidate alpha".into())),
            }
        }
        let alphas_of = |level: &[usize]| level.iter().map(|&l| levels[l]).collect::<Vec<Alpha>>();
        let mut start: Option<(Vec<usize>, Score)> = None;
        for (i, cand) in starts.iter().enumerate() {
            let alphas = alphas_of(cand);
            let s = self.score_alphas(&sites, &alphas)?;
            record(&alphas, s, if i < levels.len() { "uniform" } else { "start" }, &mut explored);
            let cheaper =
                start.as_ref().is_none_or(|(l, _)| self.objective_of(&elements, &alphas) < self.objective_of(&elements, &alphas_of(l)));
            if s.accuracy >= target && cheaper {
                start = Some((cand.clone(), s));
            }
        }
        let Some((start_levels, start_score)) = start else {
            let best = explored.iter().map(|e| e.score.accuracy).fold(0.0, f64::max);
            return Err(ModelError::Config(format!(
                "no starting configuration reaches the target {:.2}% on the calibration images (best {:.2}%): \
                 allow a larger drop, add higher alphas, or calibrate wider bounds",
                100.0 * target,
                100.0 * best
            )));
        };

        // 2-3. Greedy descent with a lazily filled sensitivity table.
        let mut level = start_levels.clone();
        let mut current = start_score;
        let mut sens: BTreeMap<(usize, usize), f64> = BTreeMap::new();
        let mut frozen = BTreeSet::new();
        loop {
            let mut best: Option<(f64, usize)> = None;
            for s in 0..sites.len() {
                if frozen.contains(&s) || level[s] == 0 {
                    continue;
                }
                let (from, to) = (level[s], level[s] - 1);
                if let std::collections::btree_map::Entry::Vacant(slot) = sens.entry((s, to)) {
                    let mut probe = start_levels.clone();
                    probe[s] = to;
                    let sc = self.score_alphas(&sites, &alphas_of(&probe))?;
                    record(&alphas_of(&probe), sc, "sensitivity", &mut explored);
                    slot.insert(sc.loss);
                }
                let loss_at = |l: usize| if l == start_levels[s] { start_score.loss } else { sens[&(s, l)] };
                let added = (loss_at(to) - loss_at(from)).max(1e-6);
                let mut trial = alphas_of(&level);
                let before = self.objective_of(&elements, &trial);
                trial[s] = levels[to];
                let saved = before - self.objective_of(&elements, &trial);
                if saved <= 0.0 {
                    continue;
                }
                let ratio = saved / added;
                if best.is_none_or(|(r, _)| ratio > r) {
                    best = Some((ratio, s));
                }
            }
            let Some((_, s)) = best else { break };
            level[s] -= 1;
            let trial = alphas_of(&level);
            let sc = self.score_alphas(&sites, &trial)?;
            if sc.accuracy >= target {
                record(&trial, sc, "accepted", &mut explored);
                current = sc;
            } else {
                record(&trial, sc, "rejected", &mut explored);
                level[s] += 1;
                frozen.insert(s);
            }
        }
        Ok(PlanOutcome {
            sites,
            elements,
            reference_accuracy: self.reference_accuracy.unwrap_or(exact.accuracy),
            exact,
            target_accuracy: target,
            objective: self.objective,
            alphas: alphas_of(&level),
            score: current,
            explored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Objective;

    #[test]
    fn each_objective_minimises_its_own_cost() {
        // Two configurations: a is cheaper online, b offline and in rounds.
        let (a, b) = ((10.0, 7, 50.0), (12.0, 5, 30.0));
        let pick = |o: Objective| if o.value(a.0, a.1, a.2) < o.value(b.0, b.1, b.2) { 'a' } else { 'b' };
        assert_eq!(pick(Objective::Bytes), 'a');
        assert_eq!(pick(Objective::Rounds), 'b');
        assert_eq!(pick(Objective::Offline), 'b');
        assert_eq!(pick(Objective::Total), 'b');
        assert_eq!(Objective::Total.value(1.0, 3, 2.0), 3.0);
    }
}
