//! A party's handle for secure inference: its channel to the peer and a
//! material source. This is the surface the secure executor calls, one method
//! per layer kind; each method declares its request, fetches the material and
//! runs the online step. For clean offline/online separation, fetch everything
//! first with [`prefetch`] and run the online phase on the [`Prepared`] source.

use std::sync::Arc;

use pann_mpc_core::ring::R;
use pann_mpc_core::{Channel, Party, Phase};

use crate::dealer::{MaterialSource, Prepared};
use crate::error::Result;
use crate::exec::run_program;
use crate::linear::{linear_forward, LinearLayer};
use crate::material::Request;
use crate::ops;
use crate::poly::PolyRelu;
use crate::program::{self, Program};

/// Fetch the material of `reqs` in order (offline phase) into a queue.
pub async fn prefetch<S: MaterialSource>(source: &mut S, reqs: &[Request]) -> Result<Prepared> {
    let mut p = Prepared::new();
    for r in reqs {
        p.push(source.fetch(r).await?);
    }
    Ok(p)
}

/// One party's session.
pub struct Session<S: MaterialSource> {
    /// Which party this side is.
    pub party: Party,
    /// The channel to the other party (online traffic).
    pub chan: Channel,
    /// Where this party's material comes from, in request order.
    pub source: S,
}

impl<S: MaterialSource> Session<S> {
    /// A session of `party` over `chan`, taking material from `source`.
    pub fn new(party: Party, chan: Channel, source: S) -> Self {
        Self { party, chan, source }
    }

    /// Label the following online traffic (e.g. a layer name) in the meter.
    pub fn label(&mut self, label: &str) {
        self.chan.set_phase(Phase::Online);
        self.chan.set_label(label);
    }

    /// Run a program on shares of its inputs (each of length `n`).
    pub async fn program(&mut self, program: &Arc<Program>, inputs: &[&[R]]) -> Result<Vec<Vec<R>>> {
        let n = inputs.first().map_or(0, |x| x.len());
        let m = self.source.fetch(&Request::program(program, n)).await?.into_program()?;
        run_program(&mut self.chan, self.party, program, inputs, m).await
    }

    /// A linear layer (conv or matmul): one opening of `x`, output at scale
    /// scale(x) + scale(weights).
    pub async fn linear(&mut self, layer: &LinearLayer, x: &[R]) -> Result<Vec<R>> {
        let m = self.source.fetch(&Request::Linear { layer: layer.id, spec: layer.spec }).await?.into_linear()?;
        linear_forward(&mut self.chan, layer, x, m).await
    }

    /// Polynomial ReLU: returns shares of `t (1 + p(t))` at scale
    /// `relu.config.output_frac()` (ReLU(x) = B/2 times that).
    pub async fn relu(&mut self, relu: &PolyRelu, x: &[R]) -> Result<Vec<R>> {
        Ok(self.program(&relu.program, &[x]).await?.swap_remove(0))
    }

    /// Truncate shares by `s` bits (one opening; error in {0, +1} ulp).
    pub async fn truncate(&mut self, program: &Arc<Program>, x: &[R]) -> Result<Vec<R>> {
        Ok(self.program(program, &[x]).await?.swap_remove(0))
    }

    /// Reveal to one party (`Some(p)`) or both (`None`).
    pub async fn reveal(&mut self, x: &[R], to: Option<Party>) -> Result<Option<Vec<R>>> {
        ops::reveal(&mut self.chan, self.party, x, to).await
    }
}

/// The truncation program for shift `s` (build once, reuse).
pub fn truncation(s: u32) -> Arc<Program> {
    Arc::new(program::ops::truncate(s))
}
