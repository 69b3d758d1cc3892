//! A custom source of preprocessing: party 1's correlated randomness made
//! entirely before the session (as a pool on disk or a separate offline
//! phase would), served request by request through the `Preprocessing`
//! trait. The online protocol does not care who made its material; it asks
//! for each request in the plan's order and checks what it gets.
//!
//! Party 0 expands its material from a 16-byte seed (`SeedExpansion`); the
//! pool here is party 1's side, made by a `Dealer` that holds both seeds.
//! A negative control serves the pool in the wrong order: the session fails
//! instead of computing with mismatched material.
//!
//! Run: `cargo run --example custom_preprocessing`

mod common;

use std::collections::VecDeque;
use std::time::Instant;

use pann::arith::{Party, Prg, R};
use pann::mpc::{Dealer, Expander, LinearSpec, Material, Request};
use pann::net::{Channel, ChannelConfig};
use pann::nn::{Alpha, InputSpec, SmallCnnConfig};
use pann::protocols::ProtocolError;
use pann::secure::{
    client_connect, client_run, server_admit, server_run, Preprocessing, PublicModel, SecureConfig, SeedExpansion, ServedModel,
    SessionLimits,
};

/// Party 1's material for a whole session, made up front.
struct Pool {
    material: VecDeque<Material>,
    served: usize,
}

impl Pool {
    /// Party 0's source and a pool for party 1 holding the material of
    /// `batches` runs of `requests`, for a model whose linear layers are `linears`.
    fn make(linears: &[LinearSpec], requests: &[Request], batches: usize) -> Result<(SeedExpansion, Pool), ProtocolError> {
        let (seed0, seed1) = (Prg::random_seed(), Prg::random_seed());
        let mut dealer = Dealer::new(seed0, seed1);
        for spec in linears {
            dealer.register_linear(*spec)?;
        }
        let mut expander = Expander::new(Party::Client, seed1);
        let mut material = VecDeque::new();
        for _ in 0..batches {
            for req in requests {
                let corrections = dealer.corrections(req)?;
                material.push_back(expander.expand(req, Some(corrections))?);
            }
        }
        Ok((SeedExpansion::new(seed0), Pool { material, served: 0 }))
    }
}

impl Preprocessing for Pool {
    fn weight_mask(&mut self, _: &LinearSpec) -> Result<Vec<R>, ProtocolError> {
        Err(ProtocolError::Params("party 1 holds no weight masks".into()))
    }

    async fn next(&mut self, req: &Request) -> Result<Material, ProtocolError> {
        let m = self.material.pop_front().ok_or_else(|| ProtocolError::MaterialMismatch("the pool is empty".into()))?;
        // Material carries the fingerprint of the request it answers.
        if !m.is_for(req) {
            return Err(ProtocolError::MaterialMismatch("the pool's next material is for another request".into()));
        }
        self.served += 1;
        Ok(m)
    }
}

/// One session between server and client in memory, party 1's material from a pool.
async fn session(
    served: &ServedModel,
    images: &[Vec<u8>],
    scramble: bool,
) -> Result<(Vec<Vec<f64>>, usize, f64, f64), Box<dyn std::error::Error>> {
    let (mut s, mut c) = Channel::mem_pair(ChannelConfig::default());
    let limits = SessionLimits::default();
    let (precision, digest) = (served.public.precision(), served.digest());
    let (admitted, connected) = tokio::join!(
        server_admit(&mut s, served, &limits),
        client_connect(&mut c, &precision, Some(&digest), images, images.len(), &limits)
    );
    let (admitted, connected) = (admitted?, connected?);

    let t = Instant::now();
    let linears: Vec<LinearSpec> = connected.plan.linears.iter().map(|(_, spec)| *spec).collect();
    let (mut source0, mut pool) = Pool::make(&linears, &connected.plan.requests(), connected.request.batches)?;
    if scramble {
        pool.material.rotate_left(1);
    }
    let made_s = t.elapsed().as_secs_f64();

    // try_join: the first failure ends both halves (in a deployment the failing
    // party's Abort ends its peer's session; here they share one task).
    let ((), out) = tokio::try_join!(
        async { server_run(&mut s, served, &admitted, &mut source0).await.map(|_| ()) },
        client_run(&mut c, &connected, &mut pool, images)
    )?;
    let online_s = out.batches.iter().map(|b| b.online_s).sum();
    Ok((out.logits, pool.served, made_s, online_s))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let net =
        SmallCnnConfig { channels: vec![4, 6], num_classes: 5, batch_norm: false, in_channels: 3, image_size: 8, bn_eps: 1e-5 }.build()?;
    let model = common::pseudo_random_model(net, 5, 0.8)?;
    let spec = InputSpec { mean: vec![0.5; 3], std: vec![0.25; 3] };
    let images = common::pseudo_random_images(3, 3 * 8 * 8, 6);
    let bounds = model.network.activation_sites().iter().map(|s| (s.to_string(), 8.0)).collect();
    let public = PublicModel::new(&model, &spec, &bounds, SecureConfig::new(Alpha::new(10)?))?;
    let served = ServedModel::new(model.clone(), public.clone())?;
    let rt = tokio::runtime::Runtime::new()?;

    let (logits, served_requests, made_s, online_s) = rt.block_on(session(&served, &images, false))?;
    let dealer_logits = rt.block_on(common::three_roles(&model, &public, &images, images.len()))?.logits;
    for (a, b) in logits.iter().flatten().zip(dealer_logits.iter().flatten()) {
        assert!((a - b).abs() < 1e-3, "pool {a} vs dealer {b}");
    }
    println!("pool: {served_requests} requests' material made in {made_s:.3} s before an online phase of {online_s:.3} s; logits equal the dealer's");

    let err = rt.block_on(session(&served, &images, true)).expect_err("material out of order must fail the session");
    println!("negative control (pool out of order): the session fails: {err}");
    Ok(())
}

/// `cargo test` builds examples as test harnesses: this runs the example there, so that it is checked, not only compiled.
#[test]
fn example_runs() {
    main().unwrap();
}
