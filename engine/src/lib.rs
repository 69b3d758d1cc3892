//! Secure inference of a network between a server (weights), a client
//! (input, learns the output) and a dealer (correlated randomness).
//!
//! * [`plan`]: compile the public part of a model (architecture, per-site
//!   bounds, alpha, precisions) into a straight list of steps with fixed-point
//!   scales, and the list of material requests the dealer must answer; encode
//!   the server's weights with the bounds folded in.
//! * [`exec`]: one walker over the steps, run by three backends: the clear
//!   fixed-point reference (the oracle), and each party's secure backend.
//! * [`session`]: setup, offline and online phases of the three roles over
//!   any channels (in-memory for tests, TLS in `pann-party`).
//! * [`limits`]: each role's per-session limits (batch, material memory,
//!   setup message lengths), computed from the plan's requests.
//!
//! ## What is public
//! The architecture, the per-site ReLU bounds B (they fix public rescaling
//! constants, like the architecture fixes shapes), alpha, the precisions and
//! the batch size. The weights stay with the server; the input and the logits
//! stay with the client.

#![deny(missing_docs)]

pub mod exec;
pub mod limits;
pub mod plan;
pub mod preprocessing;
pub mod session;

pub use exec::{run_plan, Backend, ClearBackend, PartyBackend};
pub use limits::{MaterialSize, SessionLimits, DEFAULT_SESSION_MEMORY};
pub use plan::{relu_chunk, Plan, PublicModel, SecureConfig, ServerWeights, Step, RELU_CHUNK_BYTES};
pub use preprocessing::{correction_stream, MaterialQueue, Preprocessing, SeedExpansion, TrustedDealer};
pub use session::{client_connect, client_dealer_open, client_run, client_run_with_dealer, Connected};
pub use session::{client_session, dealer_session, server_session, session_in_memory, BatchReport, ClientOutcome, SessionError};
pub use session::{client_session_with, dealer_session_with, server_session_with};
pub use session::{
    dealer_greet, dealer_receive, dealer_seeds, dealer_send, dealer_serve, dealer_stream, CorrectionSource, DealerJob, Greeting,
    PreparedSession, SessionId, SessionRequest,
};
pub use session::{server_admit, server_confirm, server_dealer_open, server_hear, server_run, Admitted, ServedModel};
