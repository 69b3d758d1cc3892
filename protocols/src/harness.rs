//! Two parties (and optionally a dealer) in one process over in-memory
//! channels: used by tests, examples and benchmarks, and a worked example of
//! the API (share inputs, fetch material, run, reconstruct).

use std::sync::Arc;

use pann_mpc_core::ring::{self, R};
use pann_mpc_core::{Channel, ChannelConfig, Meter, Party, Phase, Prg, Seed};

use crate::dealer::{serve, Dealer, DealerLink, MaterialSource};
use crate::error::Result;
use crate::exec::run_program;
use crate::material::Request;
use crate::program::Program;

/// Where the parties' material comes from in [`run_program_pair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DealerMode {
    /// In-process dealer producing both parties' material directly.
    InProcess,
    /// A dealer task; party 1 receives corrections over a channel (metered
    /// offline traffic), party 0 expands from its seed.
    Channel,
}

/// Result of a two-party run: reconstructed outputs and each party's meters.
pub struct PairRun {
    /// The program's outputs, reconstructed (sum of both parties' shares, mod 2^64).
    pub outputs: Vec<Vec<R>>,
    /// Party 0's meter of the channel to party 1.
    pub meter0: Meter,
    /// Party 1's meter of the channel to party 0.
    pub meter1: Meter,
    /// Party 1's meter of the channel to the dealer (empty in process).
    pub dealer_meter1: Meter,
}

/// Split clear values into two additive shares.
pub fn share_clear(x: &[R], prg: &mut Prg) -> (Vec<R>, Vec<R>) {
    let s1 = prg.gen(x.len());
    (ring::sub(x, &s1), s1)
}

/// Deterministic seeds from a number (tests and benches).
pub fn seeds_from(seed: u64) -> (Seed, Seed) {
    let mut p = Prg::from_seed({
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        s
    });
    (p.next_seed(), p.next_seed())
}

/// Run `program` on clear `inputs` between two in-process parties.
pub async fn run_program_pair(program: &Arc<Program>, inputs: &[Vec<R>], seed: u64, mode: DealerMode) -> Result<PairRun> {
    let n = inputs.first().map_or(0, |x| x.len());
    let (seed0, seed1) = seeds_from(seed);
    let mut prg = Prg::from_seed(seeds_from(seed ^ 0x5eed).0);
    let (in0, in1): (Vec<Vec<R>>, Vec<Vec<R>>) = inputs.iter().map(|x| share_clear(x, &mut prg)).unzip();
    let req = Request::program(program, n);
    let (mut c0, mut c1) = Channel::mem_pair(ChannelConfig::default());
    c0.set_phase(Phase::Online);
    c1.set_phase(Phase::Online);
    let (m0, m1, dealer_meter1) = match mode {
        DealerMode::InProcess => {
            let mut dealer = Dealer::new(seed0, seed1);
            let (m0, m1) = dealer.deal(&req)?;
            (m0, m1, Meter::new())
        }
        DealerMode::Channel => {
            let (mut d1, p1) = Channel::mem_pair(ChannelConfig::default());
            let mut link0 = DealerLink::new(Party::Server, seed0, None)?;
            let mut link1 = DealerLink::new(Party::Client, seed1, Some(p1))?;
            let mut dealer = Dealer::new(seed0, seed1);
            let reqs = [req.clone()];
            let (d, m0, m1) = tokio::join!(serve(&mut dealer, &mut d1, &reqs), link0.fetch(&req), link1.fetch(&req));
            d?;
            let meter = link1.channel().map(|c| c.meter().clone()).unwrap_or_default();
            (m0?, m1?, meter)
        }
    };
    let r0: Vec<&[R]> = in0.iter().map(|v| v.as_slice()).collect();
    let r1: Vec<&[R]> = in1.iter().map(|v| v.as_slice()).collect();
    let (o0, o1) = tokio::join!(
        run_program(&mut c0, Party::Server, program, &r0, m0.into_program()?),
        run_program(&mut c1, Party::Client, program, &r1, m1.into_program()?)
    );
    let (o0, o1) = (o0?, o1?);
    let outputs = o0.iter().zip(&o1).map(|(a, b)| ring::add(a, b)).collect();
    Ok(PairRun { outputs, meter0: c0.meter().clone(), meter1: c1.meter().clone(), dealer_meter1 })
}
