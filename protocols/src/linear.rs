//! Linear layers with server-held weights (matrix product, 2-D convolution).
//!
//! Setup, once per model: the server derives a weight mask `A` from its seed
//! (the dealer derives the same) and sends `E = W - A` to the client. `A` is
//! uniform, so `E` hides `W`; it is reused for every inference.
//!
//! Per inference: the input `X` is opened with shift 0 (`c = X + r`, mask
//! `r = r0 + r1`). With `Z = conv(A, r1)` shared by the dealer:
//!
//! ```text
//! conv(W, X) = conv(W, c - r0) - conv(W, r1) = conv(W, c - r0) - conv(E, r1) - Z
//! party 0: conv(W, c - r0) - [Z]_0        party 1: -conv(E, r1) - [Z]_1
//! ```
//!
//! One opening of the input (one round), one ring convolution per party; the
//! result is exact in the ring (no truncation): a scale-`f_x` input and
//! scale-`f` weights give a scale `f_x + f` output, truncated later at the
//! next opening (the scale plan is the engine's). The input must not be
//! opened with a shift: a truncated opening's mask depends on a public sign,
//! which the dealer could not fold into `conv(A, r)`.

use pann_mpc_core::ring::{self, R};
use pann_mpc_core::{Channel, Party, Phase};

use crate::error::{check_len, Result};
use crate::kernels::LinearSpec;
use crate::material::{Expander, LinearMaterial};

/// What each party holds of a linear layer's weights.
#[derive(Clone, Debug)]
pub enum LinearKey {
    /// Party 0: the weights in the clear.
    Server(Vec<R>),
    /// Party 1: the masked weights `E = W - A`.
    Client(Vec<R>),
}

/// A linear layer ready for secure inference.
#[derive(Clone, Debug)]
pub struct LinearLayer {
    /// Registration index (the dealer registers layers in the same order).
    pub id: usize,
    /// The layer's public shape.
    pub spec: LinearSpec,
    /// This party's part of the weights.
    pub key: LinearKey,
}

impl LinearLayer {
    /// The party this layer belongs to, from its key: the server holds `W`, the client `E`.
    pub fn party(&self) -> Party {
        match self.key {
            LinearKey::Server(_) => Party::Server,
            LinearKey::Client(_) => Party::Client,
        }
    }
}

/// Server side of the per-model setup: mask the weights and send `E` to the
/// client (metered in `Phase::Setup`).
pub async fn setup_server(
    chan: &mut Channel,
    expander: &mut Expander,
    id: usize,
    spec: LinearSpec,
    weights: Vec<R>,
) -> Result<LinearLayer> {
    spec.validate()?;
    let mask = expander.next_weight_mask(spec.weight_len());
    setup_server_with_mask(chan, id, spec, weights, &mask).await
}

/// [`setup_server`] with the weight mask `A` given (from any source of
/// preprocessing that derives the same `A` as the dealer).
pub async fn setup_server_with_mask(chan: &mut Channel, id: usize, spec: LinearSpec, weights: Vec<R>, mask: &[R]) -> Result<LinearLayer> {
    spec.validate()?;
    check_len("layer weights", spec.weight_len(), weights.len())?;
    check_len("weight mask", spec.weight_len(), mask.len())?;
    let e = ring::sub(&weights, mask);
    let phase = chan.meter().phase();
    chan.set_phase(Phase::Setup);
    chan.send_ring(&e)?;
    chan.flush().await?;
    chan.set_phase(phase);
    Ok(LinearLayer { id, spec, key: LinearKey::Server(weights) })
}

/// Client side of the per-model setup: receive `E`.
pub async fn setup_client(chan: &mut Channel, id: usize, spec: LinearSpec) -> Result<LinearLayer> {
    spec.validate()?;
    let phase = chan.meter().phase();
    chan.set_phase(Phase::Setup);
    let e = chan.recv_ring(spec.weight_len()).await?;
    chan.set_phase(phase);
    Ok(LinearLayer { id, spec, key: LinearKey::Client(e) })
}

/// Apply the layer to this party's share of the input, consuming `mat`.
pub async fn linear_forward(chan: &mut Channel, layer: &LinearLayer, x: &[R], mat: LinearMaterial) -> Result<Vec<R>> {
    let spec = &layer.spec;
    check_len("linear input", spec.input_len(), x.len())?;
    mat.check(layer.id, spec)?;
    let masked = ring::add(x, &mat.r);
    let theirs = chan.exchange_ring(&masked).await?;
    let mut out = match &layer.key {
        LinearKey::Server(w) => {
            let mut c = ring::add(&masked, &theirs);
            ring::sub_assign(&mut c, &mat.r);
            spec.apply(w, &c)?
        }
        LinearKey::Client(e) => {
            check_len("masked weights", spec.weight_len(), e.len())?;
            let mut v = spec.apply(e, &mat.r)?;
            ring::neg_assign(&mut v);
            v
        }
    };
    ring::sub_assign(&mut out, &mat.z);
    Ok(out)
}
