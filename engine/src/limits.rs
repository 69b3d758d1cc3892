//! Per-session limits of the roles: how large a batch a role accepts, from
//! the memory the batch's material takes, and how long each setup message
//! from a peer may be.
//!
//! The client chooses the batch. Material streams: each party holds the
//! material of two requests at once (in use, queued; see
//! `crate::preprocessing`), never a whole batch's, and the largest request
//! is one linear layer's or one chunk of a ReLU layer's
//! ([`crate::plan::RELU_CHUNK_BYTES`]). So the server, the dealer and the client each compute
//! what one image holds at once from the plan's requests ([`MaterialSize`])
//! and refuse a batch that would exceed their per-session memory budget, or
//! that exceeds their `max_batch`, with a public error
//! ([`ModelError::BatchLimit`]: sizes only) that the session sends to the
//! peers.

use std::sync::Arc;

use crate::plan::{Plan, PublicModel, Step, RELU_CHUNK_BYTES};
use crate::session::MAX_BATCH;
use pann_models::error::{ModelError, Result};
use pann_protocols::kernels::{conv_tile, LinearSpec};
use pann_protocols::Request;

/// Default memory budget of one session's material, in bytes (4 GiB):
/// ResNet-20 at alpha 9 fits the protocol's largest batch.
pub const DEFAULT_SESSION_MEMORY: u64 = 4 << 30;

/// Requests whose material a party may hold at once: the one in use and
/// the queue of [`crate::session::STREAM_DEPTH`] (nothing is received while
/// the queue is full).
pub const HELD_AT_ONCE: u64 = crate::session::STREAM_DEPTH as u64 + 1;

/// Longest public model description accepted from the server, in bytes
/// (ResNet-20's is about 7 KB; MAX_NODES nodes with long names stay below it).
pub const MAX_MODEL_DESCRIPTION: usize = 4 << 20;

/// Longest session request accepted from the client, in bytes (it is a
/// JSON object of two integers).
pub const MAX_REQUEST: usize = 1024;

/// What one role accepts per session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// Largest batch (images per run), at most [`MAX_BATCH`].
    pub max_batch: usize,
    /// Largest material of one session, in bytes: the masked weights held
    /// for the whole session plus the material held at once.
    pub max_memory: u64,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self { max_batch: MAX_BATCH, max_memory: DEFAULT_SESSION_MEMORY }
    }
}

/// Material one party holds, in bytes, computed from a plan's requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaterialSize {
    /// The largest linear layer's material per image (its `r` and `z`):
    /// one request, which grows with the batch.
    pub linear_per_image: u64,
    /// The largest ReLU layer's material per image (masks, truncation atoms,
    /// products). A batch's layer is cut into requests of at most
    /// [`RELU_CHUNK_BYTES`], so it stops growing there.
    pub relu_per_image: u64,
    /// Working memory per image besides the material: the activations alive
    /// at once and a step's temporaries (see [`MaterialSize::of`]).
    pub working_per_image: u64,
    /// All the material of one image, as it flows through a session.
    pub total_per_image: u64,
    /// Held once per session: the weight-sized share of every linear layer
    /// (the server's weights, the client's `E = W - A`, the dealer's `A`).
    pub setup: u64,
    /// The largest column buffer of a convolution (bounded by
    /// `pann_protocols::kernels::IM2COL_MAX_ELEMENTS`, whatever the batch).
    pub scratch: u64,
}

impl MaterialSize {
    /// The material of `public`'s plan (compiled for one image). Arithmetic
    /// saturates, so a size too large to count exceeds every budget.
    pub fn of(public: &Arc<PublicModel>) -> Result<Self> {
        let plan = Plan::compile(Arc::clone(public), 1)?;
        let (mut linear, mut relu) = (0u64, 0u64);
        for step in &plan.steps {
            match step {
                Step::Linear { layer, spec, .. } => linear = linear.max(bytes(&Request::Linear { layer: *layer, spec: *spec })),
                Step::Relu { input, program, .. } => relu = relu.max(bytes(&Request::program(program, plan.len_of(*input)))),
                // The first level pairs every window: the largest of its requests.
                Step::MaxPool { shape, window, first, .. } => {
                    let pairs = crate::plan::max_pool_level_pairs(shape.h, shape.w, *window).first().copied().unwrap_or(0);
                    relu = relu.max(bytes(&Request::program(first, pairs.saturating_mul(shape.c))));
                }
                _ => {}
            }
        }
        let total_per_image = plan.requests().iter().fold(0u64, |acc, r| acc.saturating_add(bytes(r)));
        let setup = plan.linears.iter().fold(0u64, |acc, (_, s)| acc.saturating_add((s.weight_len() as u64).saturating_mul(8)));
        let scratch = plan
            .linears
            .iter()
            .map(|(_, s)| match s {
                LinearSpec::Conv(c) => (conv_tile(c).2 as u64).saturating_mul(8),
                LinearSpec::Matmul(_) => 0,
            })
            .max()
            .unwrap_or(0);
        Ok(Self { linear_per_image: linear, relu_per_image: relu, working_per_image: working_set(&plan), total_per_image, setup, scratch })
    }

    /// Memory of a session with batches of `batch` images besides the
    /// weights: the material held at once and the working memory.
    pub fn batch_bytes(&self, batch: usize) -> u64 {
        self.held_at_once(batch).saturating_add(self.working_per_image.saturating_mul(batch as u64))
    }

    /// Material held at once with batches of `batch` images: [`HELD_AT_ONCE`]
    /// times the largest request (saturating).
    pub fn held_at_once(&self, batch: usize) -> u64 {
        let b = batch as u64;
        let largest = self.linear_per_image.saturating_mul(b).max(self.relu_per_image.saturating_mul(b).min(RELU_CHUNK_BYTES));
        largest.saturating_mul(HELD_AT_ONCE)
    }

    /// Memory of a session with batches of `batch` images, in bytes: the
    /// weights' shares, a convolution's column buffer and
    /// [`MaterialSize::batch_bytes`] (`None` if it does not fit in a u64).
    pub fn session_bytes(&self, batch: usize) -> Option<u64> {
        Some(self.batch_bytes(batch)).filter(|&h| h < u64::MAX)?.checked_add(self.setup)?.checked_add(self.scratch)
    }
}

/// Bytes of working memory per image of `plan` (compiled for one image):
/// the largest, over the steps, of the values still to be read (a value
/// lives until its last reader) plus the step's own temporaries, counted as
/// three copies of its input (a copy, the masked and the opened input) and
/// two of its output (the output and a product share). An estimate of the
/// executor's peak, not a bound on the allocator's.
fn working_set(plan: &Plan) -> u64 {
    let net = plan.network();
    let len = |v: usize| (plan.len_of(v) as u64).saturating_mul(8);
    let mut reads = vec![0usize; net.nodes.len()];
    for node in &net.nodes {
        for &j in &node.inputs {
            reads[j] += 1;
        }
    }
    let (mut live, mut peak) = (0u64, 0u64);
    for step in &plan.steps {
        let out = step.out();
        let inputs = &net.nodes[out].inputs;
        let input = inputs.iter().map(|&j| len(j)).max().unwrap_or(0);
        // Max pooling gathers its windows' values (at most MAX_POOL_GATHER times
        // its input), then splits them into pairs.
        let copies = if matches!(step, Step::MaxPool { .. }) { 3 + 2 * crate::plan::MAX_POOL_GATHER as u64 } else { 3 };
        // A gather copies every input and builds its index map (12 bytes per output element).
        let gather = match step {
            Step::Gather { .. } => {
                inputs.iter().fold(0u64, |acc, &j| acc.saturating_add(len(j))).saturating_add(len(out).saturating_mul(3) / 2)
            }
            _ => 0,
        };
        peak =
            peak.max(live.saturating_add(input.saturating_mul(copies)).saturating_add(len(out).saturating_mul(2)).saturating_add(gather));
        for &j in inputs {
            reads[j] -= 1;
            if reads[j] == 0 {
                live = live.saturating_sub(len(j));
            }
        }
        live = live.saturating_add(len(out));
    }
    peak
}

fn bytes(r: &Request) -> u64 {
    r.material_len().saturating_mul(8)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

impl SessionLimits {
    /// At most `max_batch` images per run and `max_memory` bytes per session.
    pub fn new(max_batch: usize, max_memory: u64) -> Self {
        Self { max_batch, max_memory }
    }

    /// The largest batch accepted for a model of material `size`: at most
    /// `max_batch` and [`MAX_BATCH`], and such that the session's material
    /// fits `max_memory` (0 when not even one image fits).
    pub fn batch_limit(&self, size: &MaterialSize) -> usize {
        let fits = |b: usize| size.session_bytes(b).is_some_and(|need| need <= self.max_memory);
        // What a batch holds never shrinks as the batch grows: bisect.
        let (mut lo, mut hi) = (0, self.max_batch.min(MAX_BATCH));
        if fits(hi) {
            return hi;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        if fits(lo) {
            lo
        } else {
            0
        }
    }

    /// Refuse a batch above [`SessionLimits::batch_limit`]; `who` names this
    /// role in the (public) error.
    pub fn check_batch(&self, who: &'static str, batch: usize, size: &MaterialSize) -> Result<()> {
        let limit = self.batch_limit(size);
        if batch <= limit {
            return Ok(());
        }
        let need = size.session_bytes(batch).map(mb).unwrap_or_else(|| "more than 2^64 bytes".into());
        let detail = format!(
            "a batch of {batch} needs {need}: {} of material at once, {} of working memory and {} of weights and kernel buffers; this {who} allows {} images and {} per session",
            mb(size.held_at_once(batch)),
            mb(size.working_per_image.saturating_mul(batch as u64)),
            mb(size.setup.saturating_add(size.scratch)),
            self.max_batch.min(MAX_BATCH),
            mb(self.max_memory)
        );
        Err(ModelError::BatchLimit { who, batch, limit, detail })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(linear: u64, relu: u64, setup: u64) -> MaterialSize {
        MaterialSize { linear_per_image: linear, relu_per_image: relu, working_per_image: 0, total_per_image: 1000, setup, scratch: 0 }
    }

    #[test]
    fn batch_limit_from_memory_and_cap() {
        // Held at once: twice the largest request, 50 bytes per image.
        let size = size(50, 40, 50);
        assert_eq!(size.session_bytes(3), Some(50 + 3 * 100));
        let l = SessionLimits::new(8, 50 + 3 * 100);
        assert_eq!(l.batch_limit(&size), 3);
        assert!(l.check_batch("server", 3, &size).is_ok());
        let e = l.check_batch("server", 4, &size).unwrap_err();
        assert!(matches!(e, ModelError::BatchLimit { batch: 4, limit: 3, who: "server", .. }), "{e}");
        assert!(e.to_string().starts_with("batch 4 exceeds this server's limit of 3"), "{e}");
        let l = SessionLimits::new(2, u64::MAX);
        assert_eq!(l.batch_limit(&size), 2);
        assert!(l.check_batch("dealer", 2, &size).is_ok());
        assert!(l.check_batch("dealer", 3, &size).is_err());
        // Not even the weights fit: nothing is accepted.
        assert_eq!(SessionLimits::new(8, 49).batch_limit(&size), 0);
        // Sizes that saturate are refused, never wrapped.
        let huge = self::size(u64::MAX, u64::MAX, 0);
        assert_eq!(SessionLimits::default().batch_limit(&huge), 0);
        assert!(SessionLimits::default().check_batch("client", 1, &huge).is_err());
        assert_eq!(SessionLimits::default().batch_limit(&self::size(0, 0, 0)), MAX_BATCH);
    }

    #[test]
    fn relu_layers_stop_growing_at_a_chunk() {
        // 10 MB of ReLU material per image: a batch of 64 would hold 1.28 GB
        // without chunks; with them, two chunks.
        let size = size(1000, 10_000_000, 0);
        assert_eq!(size.held_at_once(1), 20_000_000);
        assert_eq!(size.held_at_once(64), 2 * RELU_CHUNK_BYTES);
        assert_eq!(SessionLimits::new(MAX_BATCH, 2 * RELU_CHUNK_BYTES).batch_limit(&size), MAX_BATCH);
        // The linear layers still grow with the batch.
        assert_eq!(size.held_at_once(1 << 20), (2 * 1000) << 20);
        assert_eq!(SessionLimits::new(MAX_BATCH, 2 * RELU_CHUNK_BYTES - 1).batch_limit(&size), 6);
        // Working memory grows with the batch too.
        let size = MaterialSize { working_per_image: 1 << 20, ..size };
        assert_eq!(size.session_bytes(64), Some(2 * RELU_CHUNK_BYTES + (64 << 20)));
        assert_eq!(SessionLimits::new(MAX_BATCH, 2 * RELU_CHUNK_BYTES + (64 << 20)).batch_limit(&size), 64);
    }
}
