//! PANN: private inference with polynomial-approximated neural networks.
//!
//! Two parties evaluate a neural network together without showing each other
//! their secrets: the server holds the weights, the client holds the input and
//! alone learns the output. They compute on additive secret shares of
//! fixed-point numbers in the ring Z_2^64, with correlated randomness from a
//! third party (the dealer) or any other [`secure::Preprocessing`] source, and
//! every ReLU becomes a composite minimax polynomial of precision 2^-alpha,
//! evaluated with additions and products only.
//!
//! This crate is the front door: one dependency, the public API grouped by
//! concept. Each module re-exports from the layer that implements it; the
//! layers themselves are [`core`] (ring, shares, channels), [`approx`] (the
//! sign polynomials and the precision types [`nn::Alpha`] and
//! [`nn::Precision`]), [`protocols`] (two-party programs, the polynomial
//! ReLU, the dealer), [`models`]
//! (networks, cards, the f64 executor, calibration, the planner) and
//! [`engine`] (the secure plan and the three roles' sessions).
//!
//! | concept | module |
//! |---|---|
//! | ring elements, fixed point, additive shares, PRGs | [`arith`] |
//! | framed channels, transports, cost meters | [`net`] |
//! | programs on shares, the polynomial ReLU, material and the dealer | [`mpc`] |
//! | networks and cards in the clear: f64 executor, calibration, planner, data, precisions | [`nn`] |
//! | secure inference: plan, preprocessing sources, sessions, reports | [`secure`] |
//!
//! `docs/LIBRARY.md` (in the repository) explains how to add a protocol, an
//! operator or a preprocessing source, and how costs are metered.
//!
//! # Share a value
//!
//! A real number is encoded in fixed point (here 16 fractional bits) and split
//! into two shares that are each uniformly random; only both together give it
//! back.
//!
//! ```
//! use pann::arith::{reconstruct, share, FixedPoint, Prg};
//!
//! let fp = FixedPoint::new(16)?;
//! let secret = fp.encode_slice(&[1.5, -2.25])?;
//! let mut prg = Prg::from_seed([7; 16]);
//! let (server_share, client_share) = share(&secret, 16, &mut prg);
//! assert_ne!(server_share.data, secret); // one share alone is noise
//! let back = reconstruct(&server_share, &client_share)?;
//! assert_eq!([fp.decode(back[0]), fp.decode(back[1])], [1.5, -2.25]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Evaluate the polynomial ReLU on shares and read its cost
//!
//! A [`mpc::PolyRelu`] compiles the composite sign polynomial of one alpha into
//! a [`mpc::Program`]: openings (the only online traffic) and free local
//! forms. [`mpc::harness::run_program_pair`] runs it between two parties in
//! this process, with material from a dealer task, and returns each party's
//! [`net::Meter`].
//!
//! ```
//! use pann::arith::FixedPoint;
//! use pann::mpc::harness::{run_program_pair, DealerMode};
//! use pann::mpc::{PolyRelu, ReluConfig};
//! use pann::net::Phase;
//! use pann::nn::Alpha;
//!
//! // alpha 9; inputs at 20 fractional bits, already divided by their bound B = 1.
//! let relu = PolyRelu::new(ReluConfig::new(Alpha::new(9)?, 20))?;
//! let xs = [-0.75, -0.01, 0.3, 0.9];
//! let input = FixedPoint::new(20)?.encode_slice(&xs)?;
//! let rt = tokio::runtime::Runtime::new()?;
//! let run = rt.block_on(run_program_pair(&relu.program, &[input], 1, DealerMode::Channel))?;
//!
//! // The output t (1 + p(t)) approximates 2 relu(t), within B 2^-alpha.
//! let out = FixedPoint::new(relu.config.output_frac())?;
//! for (x, y) in xs.iter().zip(&run.outputs[0]) {
//!     assert!((out.decode(*y) / 2.0 - x.max(0.0)).abs() < 2f64.powi(-9));
//! }
//! let online = run.meter0.phase_total(Phase::Online);
//! let info = relu.info();
//! assert_eq!(online.rounds as usize, info.rounds);
//! // An opening with shift s sends 64 - s bits per element and direction, packed
//! // into 8-byte words, plus a 5-byte frame header per round and direction.
//! let words = relu.program.message_words(xs.len());
//! assert_eq!(online.bytes(), (2 * (8 * words + 5 * info.rounds)) as u64);
//! println!("alpha 9: {} openings, {} rounds, {} bytes online", info.openings, info.rounds, online.bytes());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Run a two-party inference of a small network in one process
//!
//! The server serves a [`secure::ServedModel`] (the weights plus the public
//! description: architecture, per-site ReLU bounds, alpha); the client
//! connects, learns the public description and its digest, and sends shares
//! of its image; material comes from a trusted dealer in this process
//! ([`secure::TrustedDealer::pair`]; over the network it is
//! `pann-party --role dealer`). The client's logits equal the plaintext
//! fixed-point reference up to truncation noise, and are close to the f64
//! executor's with the same polynomial.
//!
//! ```
//! use pann::net::{Channel, ChannelConfig};
//! use pann::nn::{max_abs_per_site, per_site_bounds, Alpha, InputSpec, Model, Params, PlainExecutor, ReluMode, SmallCnnConfig, Tensor};
//! use pann::secure::{client_connect, client_run, server_admit, server_run, PublicModel, SecureConfig, ServedModel, SessionLimits, TrustedDealer};
//!
//! // A small CNN (3x8x8 input, 5 classes) with deterministic pseudo-random weights.
//! let net = SmallCnnConfig { channels: vec![4, 6], num_classes: 5, batch_norm: false, in_channels: 3, image_size: 8, bn_eps: 1e-5 }.build()?;
//! let mut params = Params::new();
//! for (i, spec) in net.param_specs().into_iter().enumerate() {
//!     let n: usize = spec.shape.iter().product();
//!     let values = (0..n).map(|j| ((i * 7919 + j * 104_729) % 1000) as f64 / 1250.0 - 0.4).collect();
//!     params.insert(spec.name.clone(), Tensor::new(spec.shape, values));
//! }
//! let model = Model::new(net, params)?;
//! let image: Vec<u8> = (0..3 * 8 * 8).map(|i| (i * 37 % 256) as u8).collect();
//!
//! // Calibrate per-site bounds on the image (a real deployment uses held-out data).
//! let spec = InputSpec { mean: vec![0.5; 3], std: vec![0.25; 3] };
//! let x = spec.normalise(&image);
//! let bounds = per_site_bounds(&max_abs_per_site(&model, 1, |_| x.clone(), None)?, 1.2);
//! let alpha = Alpha::new(12)?;
//! let public = PublicModel::new(&model, &spec, &bounds, SecureConfig::new(alpha))?;
//! let served = ServedModel::new(model.clone(), public)?;
//!
//! let rt = tokio::runtime::Runtime::new()?;
//! let logits = rt.block_on(async {
//!     let (mut server, mut client) = Channel::mem_pair(ChannelConfig::default());
//!     let limits = SessionLimits::default();
//!     let (precision, digest) = (served.public.precision(), served.digest());
//!     let images = [image.clone()];
//!     let (admitted, connected) = tokio::join!(
//!         server_admit(&mut server, &served, &limits),
//!         client_connect(&mut client, &precision, Some(&digest), &images, 1, &limits),
//!     );
//!     let (admitted, connected) = (admitted?, connected?);
//!     let linears: Vec<_> = admitted.plan.linears.iter().map(|(_, s)| *s).collect();
//!     let (mut source0, mut source1) = TrustedDealer::pair(&linears)?;
//!     let (s, c) = tokio::join!(
//!         server_run(&mut server, &served, &admitted, &mut source0),
//!         client_run(&mut client, &connected, &mut source1, &images),
//!     );
//!     s?;
//!     Ok::<_, Box<dyn std::error::Error>>(c?.logits)
//! })?;
//!
//! let plain = PlainExecutor::new(&model, ReluMode::pann(alpha, bounds.clone())?)?.forward(&x)?;
//! for (secure, f64_logit) in logits[0].iter().zip(&plain.logits) {
//!     assert!((secure - f64_logit).abs() < 1e-2, "secure {secure} vs f64 {f64_logit}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub use pann_approx as approx;
pub use pann_engine as engine;
pub use pann_models as models;
pub use pann_mpc_core as core;
pub use pann_protocols as protocols;

pub mod arith {
    //! Numbers and shares: the ring Z_2^64 ([`ring`]: wrapping operations on
    //! slices), fixed-point encoding, two-party additive shares tagged with their
    //! party and scale, and the AES-128-CTR PRG that expands seeds.

    pub use pann_mpc_core::fixed::FixedPoint;
    pub use pann_mpc_core::prg::{Prg, Seed};
    pub use pann_mpc_core::ring::{self, R};
    pub use pann_mpc_core::share::{reconstruct, share, Party, ShareVec};
}

pub mod net {
    //! Channels and costs: the framed, metered channel every protocol talks
    //! through (in memory, TCP, or mutually authenticated TLS with pinned
    //! certificates), the session handshake, abort codes, and the [`Meter`] that
    //! counts bytes, messages and rounds per phase and label.

    pub use pann_mpc_core::abort::AbortCode;
    pub use pann_mpc_core::channel::{Channel, ChannelConfig};
    pub use pann_mpc_core::handshake::{SessionParams, PROTOCOL_VERSION};
    pub use pann_mpc_core::meter::{Cost, Meter, Phase};
    pub use pann_mpc_core::role::Role;
    pub use pann_mpc_core::transport::{tls_connect, tls_listen_accept, Listener, TlsIdentity, TlsPeers};
}

pub mod mpc {
    //! Two-party computation on shares: programs of openings and free local forms,
    //! their online evaluation, the polynomial ReLU, the dealer's requests and
    //! material, secure linear layers, the plaintext fixed-point reference of a
    //! program, and [`harness`] (both parties in one process).

    pub use pann_approx::sign_poly;
    pub use pann_protocols::dealer::{Dealer, DealerLink, MaterialSource};
    pub use pann_protocols::exec::run_program;
    pub use pann_protocols::harness;
    pub use pann_protocols::kernels::{ConvSpec, LinearSpec, MatmulSpec};
    pub use pann_protocols::linear::{linear_forward, LinearKey, LinearLayer};
    pub use pann_protocols::material::{Expander, LinearMaterial, Material, ProgramMaterial, Request};
    pub use pann_protocols::poly::{PolyRelu, ReluConfig, ReluInfo, Schedule};
    pub use pann_protocols::program::{ops, Form, Program, ProgramBuilder};
    pub use pann_protocols::reference;
}

pub mod nn {
    //! Networks in the clear: the network description every executor walks,
    //! models and model cards, the f64 executor (exact or polynomial ReLU),
    //! calibration of per-site bounds, the mixed-precision planner, labelled
    //! image input (CIFAR-10 binary, IDX, PNG), and the precisions: [`Alpha`]
    //! (one ReLU's, only 4..=14 constructible) and [`Precision`] (one alpha
    //! for all sites or one per site; its text is the handshake's).

    pub use pann_approx::{Alpha, Precision};

    pub use pann_models::calibrate::{max_abs_per_site, per_site_bounds, GlobalBoundRule};
    pub use pann_models::card::{InputSpec, LoadedModel, ModelCard, Provenance};
    pub use pann_models::config::{Architecture, ResNetConfig, SmallCnnConfig};
    pub use pann_models::dataset::{DataDir, DatasetKind, ImageSet};
    pub use pann_models::model::Model;
    pub use pann_models::network::{Network, NetworkBuilder, Node, Op, Shape, ValueId};
    pub use pann_models::ops;
    pub use pann_models::plain::{Evaluation, Forward, PlainExecutor, ReluMode, SiteStats};
    pub use pann_models::planner;
    pub use pann_models::tensor::{Params, Tensor};
}

pub mod secure {
    //! Secure inference of a network: the plan (fixed-point scales, material
    //! requests), the server's encoded weights, the clear fixed-point reference
    //! backend, the [`Preprocessing`] trait and its sources, the three roles'
    //! session steps, per-session limits, and what a client learns.

    pub use pann_engine::exec::{run_plan, Backend, ClearBackend, PartyBackend};
    pub use pann_engine::limits::{MaterialSize, SessionLimits};
    pub use pann_engine::plan::{Plan, PublicModel, ServerWeights, Step};
    pub use pann_engine::preprocessing::{correction_stream, MaterialQueue, Preprocessing, SeedExpansion, TrustedDealer};
    pub use pann_engine::session::{
        client_connect, client_run, client_session, dealer_session, server_admit, server_run, server_session, session_in_memory,
        BatchReport, ClientOutcome, Connected, ServedModel,
    };
    pub use pann_models::precision::SecureConfig;
}
