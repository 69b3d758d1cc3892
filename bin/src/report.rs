//! Reports: what each role writes with `--report FILE`, and the tables
//! printed on the terminal. Every cost comes from a channel meter.

use pann_approx::Alpha;
use pann_engine::BatchReport;
use pann_mpc_core::meter::Cost;
use pann_mpc_core::{Meter, Phase};
use serde::Serialize;

/// Reports write an absent alpha (per-layer precision, the dealer) as 0, as
/// they always have.
pub mod alpha_or_zero {
    use pann_approx::Alpha;
    use serde::{Deserialize, Deserializer, Serializer};

    /// `None` as 0, else the alpha.
    pub fn serialize<S: Serializer>(alpha: &Option<Alpha>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(alpha.map_or(0, Alpha::get))
    }

    /// 0 as `None`, else a checked alpha.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Alpha>, D::Error> {
        match u32::deserialize(d)? {
            0 => Ok(None),
            a => Alpha::new(a).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// One party's report.
#[derive(Clone, Debug, Serialize)]
pub struct PartyReport {
    /// `server`, `client` or `dealer`.
    pub role: String,
    /// The uniform alpha (`None`, written as 0, under per-layer precision or for the dealer).
    #[serde(with = "alpha_or_zero")]
    pub alpha: Option<Alpha>,
    /// As agreed in the handshake: `"9"` or `"per-layer:4,5,..."` (empty for the dealer).
    #[serde(default)]
    pub precision: String,
    /// The SHA-256 (hex) of the public model description of the session.
    pub model_digest: String,
    /// Seconds of the session outside its batches (connections, handshakes,
    /// setup); 0 for the dealer.
    pub setup_s: f64,
    /// Timings of each batch (empty for the dealer).
    pub batches: Vec<BatchReport>,
    /// Client only: logits and predicted classes per image.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub predictions: Vec<Prediction>,
    /// Meters of this party's channels, by peer ("server", "client", "dealer"),
    /// and their per-phase totals under "summary".
    pub meters: serde_json::Map<String, serde_json::Value>,
}

/// The client's result for one image.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Prediction {
    /// The predicted class (largest logit); `null` when the logits are
    /// implausible for the model (see `unreliable`): then there is no prediction.
    pub class: Option<usize>,
    /// The true label, when the input has one.
    pub label: Option<u8>,
    /// The decoded logits, one per class.
    pub logits: Vec<f64>,
    /// Why the logits are not a prediction: beyond the model's calibrated
    /// logit range by more than `pann_models::range::LOGIT_MARGIN` (a wrapped
    /// ring value). Absent when plausible or when the model carries no range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreliable: Option<String>,
}

impl Prediction {
    /// Judge `logits` against the model's calibrated logit range (if any).
    pub fn judge(logits: &[f64], label: Option<u8>, range: Option<[f64; 2]>) -> Self {
        let unreliable = pann_models::range::check_logits(range, logits).reason();
        Prediction { class: if unreliable.is_some() { None } else { Some(argmax(logits)) }, label, logits: logits.to_vec(), unreliable }
    }
}

/// Index of the largest logit (ties: the first).
pub fn argmax(v: &[f64]) -> usize {
    v.iter().enumerate().fold((0, f64::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0
}

/// Indices of the `k` largest logits, largest first.
pub fn top_k(v: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx.truncate(k);
    idx
}

/// Online cost per label (layer), in execution order of first appearance,
/// with the measured online wall time per step.
pub fn layer_table(meter: &Meter, steps: &[(String, f64)]) -> String {
    let costs: std::collections::BTreeMap<String, Cost> = meter.labels(Phase::Online).into_iter().collect();
    let mut s = format!("{:<22} {:>12} {:>12} {:>7} {:>10}\n", "layer (online)", "bytes sent", "bytes recv", "rounds", "time ms");
    let mut seen = std::collections::BTreeSet::new();
    let mut row = |name: &str, t: f64| {
        if let Some(c) = costs.get(name) {
            seen.insert(name.to_string());
            s += &format!("{:<22} {:>12} {:>12} {:>7} {:>10.1}\n", name, c.bytes_sent, c.bytes_recv, c.rounds, 1e3 * t);
        }
    };
    row("input", 0.0);
    for (name, t) in steps {
        row(name, *t);
    }
    row("output", 0.0);
    for (name, c) in &costs {
        if !seen.contains(name) {
            s += &format!("{:<22} {:>12} {:>12} {:>7} {:>10}\n", name, c.bytes_sent, c.bytes_recv, c.rounds, "-");
        }
    }
    let t = meter.phase_total(Phase::Online);
    s += &format!("{:<22} {:>12} {:>12} {:>7}\n", "total online", t.bytes_sent, t.bytes_recv, t.rounds);
    s
}

/// One line per phase: bytes both ways and rounds.
pub fn phase_summary(name: &str, meter: &Meter) -> String {
    let mut s = String::new();
    for p in [Phase::Setup, Phase::Offline, Phase::Online] {
        let c = meter.phase_total(p);
        if c.bytes() > 0 {
            s += &format!("  {name:<8} {p:<8} {:>12} bytes {:>6} rounds\n", c.bytes(), c.rounds);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wrapped result (logits in the hundreds) is reported without a class
    /// and with a reason; a normal one (negative control) keeps its class; a
    /// model without a logit range leaves results unjudged.
    #[test]
    fn a_wrapped_result_is_not_a_prediction() {
        let range = Some([-13.78, 41.21]);
        let wrapped = Prediction::judge(&[945.0, 3.0, -120.0], Some(5), range);
        assert_eq!(wrapped.class, None);
        assert!(wrapped.unreliable.as_deref().is_some_and(|r| r.contains("not a prediction")), "{wrapped:?}");
        let normal = Prediction::judge(&[1.7, 5.2, 14.2], Some(2), range);
        assert_eq!((normal.class, normal.unreliable.as_deref()), (Some(2), None));
        let json = serde_json::to_value(&normal).unwrap();
        assert!(json.get("unreliable").is_none() && json["class"] == 2);
        assert_eq!(serde_json::to_value(&wrapped).unwrap()["class"], serde_json::Value::Null);
        assert_eq!(Prediction::judge(&[945.0, 3.0], None, None).class, Some(0), "no range: unjudged");
    }
}
