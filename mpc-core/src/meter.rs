//! The cost meter: every byte, message and round that crosses a channel is
//! counted here, by phase and by label (a layer name). Reports take their totals
//! from the meter, never from formulas.
//!
//! Bytes are counted on the framed wire format (4-byte length prefix included),
//! below TLS: the TLS record overhead is not counted. A round is one send (or
//! several batched sends) followed by a wait for the peer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The part of a session that traffic is attributed to (serialised in lowercase).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Handshakes, the public model description, the dealer's seeds and the
    /// masked weights `E = W - A`: paid once per session, not per image.
    Setup,
    /// The dealer's corrections and request fingerprints; independent of the input.
    Offline,
    /// Input sharing, openings and the output reveal: the cost that depends on the input.
    Online,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Setup => "setup",
            Phase::Offline => "offline",
            Phase::Online => "online",
        })
    }
}

/// Counters of one (phase, label) cell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// Framed bytes written (4-byte header included; TLS overhead and keepalives not counted).
    pub bytes_sent: u64,
    /// Framed bytes read (header included; keepalives not counted).
    pub bytes_recv: u64,
    /// Frames queued for sending.
    pub msgs_sent: u64,
    /// Frames received.
    pub msgs_recv: u64,
    /// Rounds: receives that followed at least one send.
    pub rounds: u64,
}

impl Cost {
    /// Bytes in both directions.
    pub fn bytes(&self) -> u64 {
        self.bytes_sent + self.bytes_recv
    }

    fn add(&mut self, o: &Cost) {
        self.bytes_sent += o.bytes_sent;
        self.bytes_recv += o.bytes_recv;
        self.msgs_sent += o.msgs_sent;
        self.msgs_recv += o.msgs_recv;
        self.rounds += o.rounds;
    }

    fn saturating_sub(&self, o: &Cost) -> Cost {
        Cost {
            bytes_sent: self.bytes_sent.saturating_sub(o.bytes_sent),
            bytes_recv: self.bytes_recv.saturating_sub(o.bytes_recv),
            msgs_sent: self.msgs_sent.saturating_sub(o.msgs_sent),
            msgs_recv: self.msgs_recv.saturating_sub(o.msgs_recv),
            rounds: self.rounds.saturating_sub(o.rounds),
        }
    }
}

/// Costs keyed by phase and label; also a snapshot (it is `Clone`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meter {
    phase: Phase,
    label: String,
    cells: BTreeMap<Phase, BTreeMap<String, Cost>>,
}

impl Default for Meter {
    fn default() -> Self {
        Self { phase: Phase::Setup, label: String::new(), cells: BTreeMap::new() }
    }
}

impl Meter {
    /// An empty meter, attributing to [`Phase::Setup`] and the empty label.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attribute the following traffic to `phase` (the label is kept).
    pub fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }

    /// The phase the next traffic is attributed to.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Attribute the following traffic to `label` (e.g. a layer name).
    pub fn set_label(&mut self, label: &str) {
        if self.label != label {
            self.label = label.to_string();
        }
    }

    /// The label the next traffic is attributed to (empty: none).
    pub fn label(&self) -> &str {
        &self.label
    }

    fn cell(&mut self) -> &mut Cost {
        self.cells.entry(self.phase).or_default().entry(self.label.clone()).or_default()
    }

    /// Count one frame of `bytes` framed bytes sent, in the current cell.
    pub fn record_send(&mut self, bytes: usize) {
        let c = self.cell();
        c.bytes_sent += bytes as u64;
        c.msgs_sent += 1;
    }

    /// Count one frame of `bytes` framed bytes received, in the current cell.
    pub fn record_recv(&mut self, bytes: usize) {
        let c = self.cell();
        c.bytes_recv += bytes as u64;
        c.msgs_recv += 1;
    }

    /// Count one round (a wait for the peer after sending), in the current cell.
    pub fn record_round(&mut self) {
        self.cell().rounds += 1;
    }

    /// A copy of the counters now.
    pub fn snapshot(&self) -> Meter {
        self.clone()
    }

    /// Counters accumulated since `earlier` (a snapshot of this meter).
    pub fn since(&self, earlier: &Meter) -> Meter {
        let mut out = Meter { phase: self.phase, label: self.label.clone(), cells: BTreeMap::new() };
        for (phase, labels) in &self.cells {
            for (label, cost) in labels {
                let before = earlier.cells.get(phase).and_then(|l| l.get(label)).copied().unwrap_or_default();
                let d = cost.saturating_sub(&before);
                if d != Cost::default() {
                    out.cells.entry(*phase).or_default().insert(label.clone(), d);
                }
            }
        }
        out
    }

    /// Total of one phase over all labels.
    pub fn phase_total(&self, phase: Phase) -> Cost {
        let mut t = Cost::default();
        for c in self.cells.get(&phase).into_iter().flat_map(|l| l.values()) {
            t.add(c);
        }
        t
    }

    /// Total over everything.
    pub fn total(&self) -> Cost {
        let mut t = Cost::default();
        for p in [Phase::Setup, Phase::Offline, Phase::Online] {
            t.add(&self.phase_total(p));
        }
        t
    }

    /// Per-label costs of one phase, in label order.
    pub fn labels(&self, phase: Phase) -> Vec<(String, Cost)> {
        self.cells.get(&phase).map(|l| l.iter().map(|(k, v)| (k.clone(), *v)).collect()).unwrap_or_default()
    }

    /// JSON with totals per phase and per-label detail.
    pub fn to_json(&self) -> serde_json::Value {
        let mut phases = serde_json::Map::new();
        for p in [Phase::Setup, Phase::Offline, Phase::Online] {
            let labels: serde_json::Map<_, _> = self.labels(p).into_iter().map(|(k, v)| (k, serde_json::to_value(v).unwrap())).collect();
            phases.insert(p.to_string(), serde_json::json!({ "total": self.phase_total(p), "by_label": labels }));
        }
        serde_json::Value::Object(phases)
    }

    /// A human-readable table: one row per (phase, label), then totals.
    pub fn table(&self) -> String {
        let mut s = format!("{:<8} {:<24} {:>14} {:>14} {:>8} {:>8}\n", "phase", "label", "bytes sent", "bytes recv", "msgs", "rounds");
        for p in [Phase::Setup, Phase::Offline, Phase::Online] {
            for (label, c) in self.labels(p) {
                let label = if label.is_empty() { "-".to_string() } else { label };
                s += &format!(
                    "{:<8} {:<24} {:>14} {:>14} {:>8} {:>8}\n",
                    p.to_string(),
                    label,
                    c.bytes_sent,
                    c.bytes_recv,
                    c.msgs_sent + c.msgs_recv,
                    c.rounds
                );
            }
        }
        let t = self.total();
        s += &format!(
            "{:<8} {:<24} {:>14} {:>14} {:>8} {:>8}\n",
            "total",
            "",
            t.bytes_sent,
            t.bytes_recv,
            t.msgs_sent + t.msgs_recv,
            t.rounds
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_difference_and_totals() {
        let mut m = Meter::new();
        m.record_send(10);
        let snap = m.snapshot();
        m.set_phase(Phase::Online);
        m.set_label("conv1");
        m.record_send(100);
        m.record_round();
        m.record_recv(50);
        let d = m.since(&snap);
        assert_eq!(d.phase_total(Phase::Setup), Cost::default());
        assert_eq!(d.phase_total(Phase::Online), Cost { bytes_sent: 100, bytes_recv: 50, msgs_sent: 1, msgs_recv: 1, rounds: 1 });
        assert_eq!(m.total().bytes(), 160);
        let j = m.to_json();
        assert_eq!(j["online"]["by_label"]["conv1"]["bytes_recv"], 50);
        assert!(m.table().contains("conv1"));
    }
}
