//! Where a party's correlated randomness comes from. The online protocol asks
//! for the material of each request in the plan's order and does not care
//! who made it (CrypTen's provider idea): a dealer over the network, a
//! trusted dealer in this process, or any other implementation of
//! [`Preprocessing`] that answers the same requests with the same layout
//! (`pann_protocols::material`).
//!
//! Material is made or received one request at a time, while the online
//! phase runs: a party holds at most two requests' material at once (the
//! one in use and the next), not a batch's (party 1's queue from the dealer
//! is bounded, and nothing is received while it is full: see
//! [`correction_stream`]).

use std::future::Future;

use pann_mpc_core::ring::R;
use pann_mpc_core::{Channel, Party, Prg, Seed};
use pann_protocols::dealer::receive_material;
use pann_protocols::kernels::LinearSpec;
use pann_protocols::{Dealer, Expander, Material, ProtocolError, Request};
use tokio::sync::mpsc;

type Result<T> = std::result::Result<T, ProtocolError>;

/// One party's source of correlated randomness for one session.
pub trait Preprocessing: Send {
    /// Party 0: the weight mask `A` of the model's next linear layer, in
    /// registration order (the source of party 1's material must derive the
    /// same `A`). Party 1's sources return an error.
    fn weight_mask(&mut self, spec: &LinearSpec) -> Result<Vec<R>>;

    /// The material of `req`, the next request of the session (the plan's
    /// requests in order, batch after batch).
    fn next(&mut self, req: &Request) -> impl Future<Output = Result<Material>> + Send;
}

/// Party 0's material, expanded from its seed on demand (the dealer needs to
/// send party 0 nothing but the seed).
pub struct SeedExpansion {
    expander: Expander,
}

impl SeedExpansion {
    /// Party 0's material from the seed the dealer sent it.
    pub fn new(seed: Seed) -> Self {
        Self { expander: Expander::new(Party::Server, seed) }
    }
}

impl Preprocessing for SeedExpansion {
    fn weight_mask(&mut self, spec: &LinearSpec) -> Result<Vec<R>> {
        Ok(self.expander.next_weight_mask(spec.weight_len()))
    }

    async fn next(&mut self, req: &Request) -> Result<Material> {
        self.expander.expand(req, None)
    }
}

/// Party 1's material in the order a dealer streams it, filled concurrently
/// by the future [`correction_stream`] returns.
pub struct MaterialQueue {
    rx: mpsc::Receiver<Material>,
}

impl Preprocessing for MaterialQueue {
    fn weight_mask(&mut self, _: &LinearSpec) -> Result<Vec<R>> {
        Err(ProtocolError::Params("party 1 holds no weight masks".into()))
    }

    async fn next(&mut self, req: &Request) -> Result<Material> {
        let m =
            self.rx.recv().await.ok_or_else(|| ProtocolError::MaterialMismatch("the dealer's stream ended before this request".into()))?;
        if !m.is_for(req) {
            return Err(ProtocolError::MaterialMismatch("the dealer's material is for another request".into()));
        }
        Ok(m)
    }
}

/// Party 1's side of a dealer over the network: a queue of at most `depth`
/// requests' material, and the future that fills it by receiving the
/// dealer's corrections for `batches` runs of `requests` on `dealer` and
/// expanding them from `seed`. Poll the future alongside the online phase
/// (`tokio::try_join!`): it ends when everything is received, or with the
/// first error (the dealer failed or sent something else).
pub fn correction_stream(
    dealer: &mut Channel,
    seed: Seed,
    requests: Vec<Request>,
    batches: usize,
    depth: usize,
) -> (MaterialQueue, impl Future<Output = Result<()>> + Send + '_) {
    let (tx, rx) = mpsc::channel(depth.max(1));
    let fill = async move {
        let mut expander = Expander::new(Party::Client, seed);
        for _ in 0..batches {
            for req in &requests {
                // Room in the queue before anything is received: a party then
                // holds the request in use and the queued ones, never one more
                // arriving behind a full queue.
                let Ok(room) = tx.reserve().await else {
                    // The online phase ended (it failed): nothing more to fetch.
                    return Ok(());
                };
                room.send(receive_material(dealer, &mut expander, req).await?);
            }
        }
        Ok(())
    };
    (MaterialQueue { rx }, fill)
}

/// A trusted dealer in this process, as party 1's source: computes party
/// 1's corrections on demand from both seeds (tests, benchmarks, `pann
/// frontier`). Its pair for party 0 is a [`SeedExpansion`].
pub struct TrustedDealer {
    dealer: Dealer,
    expander: Expander,
}

impl TrustedDealer {
    /// Fresh seeds for one session whose linear layers are `linears` (in
    /// registration order): party 0's source and party 1's.
    pub fn pair(linears: &[LinearSpec]) -> Result<(SeedExpansion, TrustedDealer)> {
        let (s0, s1) = (Prg::random_seed(), Prg::random_seed());
        let mut dealer = Dealer::new(s0, s1);
        for spec in linears {
            dealer.register_linear(*spec)?;
        }
        Ok((SeedExpansion::new(s0), TrustedDealer { dealer, expander: Expander::new(Party::Client, s1) }))
    }
}

impl Preprocessing for TrustedDealer {
    fn weight_mask(&mut self, _: &LinearSpec) -> Result<Vec<R>> {
        Err(ProtocolError::Params("party 1 holds no weight masks".into()))
    }

    async fn next(&mut self, req: &Request) -> Result<Material> {
        let corrections = self.dealer.corrections(req)?;
        self.expander.expand(req, Some(corrections))
    }
}
