//! Linear layers, pooling, reveal, and a conv -> ReLU -> pool -> matmul
//! pipeline with a dealer running as its own task over channels (seeds sent in
//! setup, corrections in the offline phase); also over TCP and TLS loopback.

mod common;

use std::sync::Arc;

use common::{decode, uniform};
use pann_approx::Alpha;
use pann_mpc_core::ring::{self, R};
use pann_mpc_core::transport::{tcp_connect, tls_connect, Listener, TlsIdentity, TlsPeers};
use pann_mpc_core::{Channel, ChannelConfig, Party, Phase, Prg, Role};
use pann_protocols::dealer::{recv_seed, send_seed, serve, serve_both};
use pann_protocols::harness::share_clear;
use pann_protocols::kernels::{avg_pool_sum, conv2d, global_pool_sum, matmul_nt};
use pann_protocols::linear::{linear_forward, setup_client, setup_server};
use pann_protocols::ops::{reveal, share_input};
use pann_protocols::{
    reference, run_program, ConvSpec, Dealer, DealerLink, Expander, LinearSpec, MaterialSource, MatmulSpec, PolyRelu, ReluConfig, Request,
};

const F: u32 = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linear_layers_are_exact() {
    let mut prg = Prg::from_seed([4; 16]);
    let (seed0, seed1) = ([10u8; 16], [11u8; 16]);
    let specs = [
        LinearSpec::Conv(ConvSpec::dense(2, 3, 9, 9, 4, 3, 2, 1)),
        LinearSpec::Conv(ConvSpec::dense(1, 16, 8, 8, 16, 3, 1, 1)),
        LinearSpec::Matmul(MatmulSpec { m: 3, k: 64, n: 10 }),
    ];
    let mut dealer = Dealer::new(seed0, seed1);
    let mut exp0 = Expander::new(Party::Server, seed0);
    for spec in specs {
        let id = dealer.register_linear(spec).unwrap();
        let w = prg.gen(spec.weight_len());
        let x = prg.gen(spec.input_len());
        let (x0, x1) = share_clear(&x, &mut prg);
        let (mut c0, mut c1) = Channel::mem_pair(ChannelConfig::default());
        let (l0, l1) = tokio::join!(setup_server(&mut c0, &mut exp0, id, spec, w.clone()), setup_client(&mut c1, id, spec));
        let (l0, l1) = (l0.unwrap(), l1.unwrap());
        let (m0, m1) = dealer.deal(&Request::Linear { layer: id, spec }).unwrap();
        c0.set_phase(Phase::Online);
        c1.set_phase(Phase::Online);
        let (y0, y1) = tokio::join!(
            linear_forward(&mut c0, &l0, &x0, m0.into_linear().unwrap()),
            linear_forward(&mut c1, &l1, &x1, m1.into_linear().unwrap())
        );
        let y = ring::add(&y0.unwrap(), &y1.unwrap());
        assert_eq!(y, spec.apply(&w, &x).unwrap(), "{spec:?}");
        let c = c0.meter().phase_total(Phase::Online);
        assert_eq!((c.rounds, c.bytes_sent), (1, 5 + 8 * spec.input_len() as u64));
        assert_eq!(c0.meter().phase_total(Phase::Setup).bytes_sent, 5 + 8 * spec.weight_len() as u64);
    }
}

#[test]
fn pooling_is_exact_on_shares() {
    let mut prg = Prg::from_seed([5; 16]);
    let x = prg.gen(2 * 3 * 8 * 8);
    let (x0, x1) = share_clear(&x, &mut prg);
    let p = |v: &[R]| avg_pool_sum(v, 2, 3, 8, 8, 2, 2).unwrap();
    assert_eq!(ring::add(&p(&x0), &p(&x1)), p(&x));
    let g = |v: &[R]| global_pool_sum(v, 2, 3, 8, 8).unwrap();
    assert_eq!(ring::add(&g(&x0), &g(&x1)), g(&x));
}

/// What each party does in the pipeline; `dealer_chan` is party 1's link to
/// the dealer (party 0 expands everything from its seed).
async fn party_pipeline(
    party: Party,
    mut chan: Channel,
    mut dealer_chan: Channel,
    weights: Option<(Vec<R>, Vec<R>)>,
    image: Option<Vec<R>>,
    specs: (LinearSpec, LinearSpec),
    relu: Arc<PolyRelu>,
) -> (Option<Vec<R>>, Channel) {
    let seed = recv_seed(&mut dealer_chan).await.unwrap();
    let mut link = DealerLink::new(party, seed, Some(dealer_chan)).unwrap();
    // Setup: weights masked once per model.
    let (conv, fc) = match weights {
        Some((w1, w2)) => {
            let e = link.expander_mut();
            let a = setup_server(&mut chan, e, 0, specs.0, w1).await.unwrap();
            let b = setup_server(&mut chan, e, 1, specs.1, w2).await.unwrap();
            (a, b)
        }
        None => (setup_client(&mut chan, 0, specs.0).await.unwrap(), setup_client(&mut chan, 1, specs.1).await.unwrap()),
    };
    // Offline: all material for one inference.
    let n_act = specs.0.output_len();
    let m_conv = link.fetch(&Request::Linear { layer: 0, spec: specs.0 }).await.unwrap().into_linear().unwrap();
    let m_relu = link.fetch(&Request::program(&relu.program, n_act)).await.unwrap().into_program().unwrap();
    let m_fc = link.fetch(&Request::Linear { layer: 1, spec: specs.1 }).await.unwrap().into_linear().unwrap();
    // Online.
    chan.set_phase(Phase::Online);
    let mut prg = Prg::from_seed([77; 16]);
    let x = share_input(&mut chan, party, Party::Client, image.as_deref(), specs.0.input_len(), &mut prg).await.unwrap();
    let y = linear_forward(&mut chan, &conv, &x, m_conv).await.unwrap();
    let r = run_program(&mut chan, party, &relu.program, &[&y], m_relu).await.unwrap().remove(0);
    let LinearSpec::Conv(cs) = specs.0 else { unreachable!() };
    let (ho, wo) = cs.out_hw();
    let pooled = global_pool_sum(&r, cs.n, cs.o, ho, wo).unwrap();
    let logits = linear_forward(&mut chan, &fc, &pooled, m_fc).await.unwrap();
    let out = reveal(&mut chan, party, &logits, Some(Party::Client)).await.unwrap();
    (out, chan)
}

async fn pipeline_over(c0: Channel, c1: Channel) {
    let mut prg = Prg::from_seed([6; 16]);
    let conv = ConvSpec::dense(1, 3, 8, 8, 4, 3, 1, 1);
    let fc = MatmulSpec { m: 1, k: 4, n: 10 };
    let specs = (LinearSpec::Conv(conv), LinearSpec::Matmul(fc));
    // Input at scale 2f (as a ReLU output would be), weights at f: conv output at 3f.
    let img: Vec<f64> = uniform(&mut prg, conv.input_len(), 1.0);
    let img_enc: Vec<R> = img.iter().map(|v| (v * (2.0 * F as f64).exp2()).round() as i64 as u64).collect();
    let w1: Vec<R> = uniform(&mut prg, conv.weight_len(), 0.035).iter().map(|v| (v * (F as f64).exp2()).round() as i64 as u64).collect();
    let w2: Vec<R> = uniform(&mut prg, fc.n * fc.k, 0.5).iter().map(|v| (v * (F as f64).exp2()).round() as i64 as u64).collect();
    // ReLU on the 3f conv output, with 1/B folded in the weights (B = 1 here: |conv| < 1 by construction).
    let relu = Arc::new(PolyRelu::new(ReluConfig::new(Alpha::new(9).unwrap(), 3 * F)).unwrap());
    let (seed0, seed1) = ([20u8; 16], [21u8; 16]);
    let (mut d0, p0d) = Channel::mem_pair(ChannelConfig::default());
    let (mut d1, p1d) = Channel::mem_pair(ChannelConfig::default());
    let n_act = conv.output_len();
    let dealer_task = {
        let relu = Arc::clone(&relu);
        tokio::spawn(async move {
            send_seed(&mut d0, &seed0).await.unwrap();
            send_seed(&mut d1, &seed1).await.unwrap();
            let mut dealer = Dealer::new(seed0, seed1);
            dealer.register_linear(specs.0).unwrap();
            dealer.register_linear(specs.1).unwrap();
            let reqs = [
                Request::Linear { layer: 0, spec: specs.0 },
                Request::program(&relu.program, n_act),
                Request::Linear { layer: 1, spec: specs.1 },
            ];
            serve_both(&mut dealer, &mut d0, &mut d1, &reqs).await.unwrap();
            d1.meter().clone()
        })
    };
    let t0 = tokio::spawn(party_pipeline(Party::Server, c0, p0d, Some((w1.clone(), w2.clone())), None, specs, Arc::clone(&relu)));
    let t1 = tokio::spawn(party_pipeline(Party::Client, c1, p1d, None, Some(img_enc.clone()), specs, Arc::clone(&relu)));
    let (r0, r1, dm) = tokio::join!(t0, t1, dealer_task);
    let (r0, r1, dealer_meter) = (r0.unwrap(), r1.unwrap(), dm.unwrap());
    assert!(r0.0.is_none(), "only the client learns the output");
    let logits = r1.0.unwrap();
    // Reference, step by step: exact conv, the ReLU program with floor truncation, exact pooling and fc.
    let y = conv2d(&conv, &w1, &img_enc).unwrap();
    let rr = reference::run_program(&relu.program, &[&y]).unwrap();
    assert_eq!(rr.out_of_range, 0);
    let pooled = global_pool_sum(&rr.outputs[0], 1, 4, 8, 8).unwrap();
    let want = matmul_nt(&fc, &pooled, &w2).unwrap();
    let out_frac = relu.config.output_frac() + F;
    for (g, w) in logits.iter().zip(&want) {
        let (g, w) = (decode(*g, out_frac), decode(*w, out_frac));
        // 64 summed ReLU outputs, each within a few output ulps of the reference.
        assert!((g - w).abs() < 1e-3, "logit {g} vs reference {w}");
    }
    // And against the f64 network with the PANN ReLU.
    let yf: Vec<f64> = y.iter().map(|&v| decode(v, 3 * F)).collect();
    let rf: Vec<f64> = yf.iter().map(|&v| 2.0 * relu.poly.relu(v, 1.0)).collect();
    for o in 0..10 {
        let mut acc = 0.0;
        for c in 0..4 {
            let s: f64 = rf[c * 64..(c + 1) * 64].iter().sum();
            acc += s * decode(w2[o * 4 + c], F);
        }
        assert!((acc - decode(logits[o], out_frac)).abs() < 2e-2, "logit {o}: f64 {acc}");
    }
    let offline = dealer_meter.phase_total(Phase::Offline);
    assert!(offline.bytes_sent > 0);
    assert_eq!(r1.1.meter().phase_total(Phase::Offline).bytes(), 0, "no offline traffic between the parties");
    assert!(r1.1.meter().phase_total(Phase::Online).rounds > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_in_memory_with_dealer_task() {
    let (c0, c1) = Channel::mem_pair(ChannelConfig::default());
    pipeline_over(c0, c1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_over_tcp_loopback() {
    let cfg = ChannelConfig::default();
    let listener = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (a, b) = tokio::join!(listener.accept_tcp(cfg.clone()), tcp_connect(addr, cfg.clone()));
    pipeline_over(a.unwrap(), b.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_over_tls_loopback() {
    let cfg = ChannelConfig::default();
    let (server_id, client_id) = (TlsIdentity::generate().unwrap(), TlsIdentity::generate().unwrap());
    let sp = TlsPeers::new(&server_id, vec![(Role::Client, client_id.cert().clone())]).unwrap();
    let cp = TlsPeers::new(&client_id, vec![(Role::Server, server_id.cert().clone())]).unwrap();
    let listener = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (a, b) = tokio::join!(listener.accept_tls(cfg.clone(), &sp), tls_connect(addr, cfg.clone(), &cp));
    pipeline_over(a.unwrap(), b.unwrap()).await;
}

/// The executor-facing API: prefetch all material offline, then run the
/// layers through `Session`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_api_with_prefetch() {
    use pann_protocols::session::{prefetch, truncation, Session};
    let spec = LinearSpec::Matmul(MatmulSpec { m: 4, k: 8, n: 16 });
    let relu = Arc::new(PolyRelu::new(ReluConfig::new(Alpha::new(12).unwrap(), 3 * F)).unwrap());
    let trunc = truncation(F);
    let mut prg = Prg::from_seed([8; 16]);
    let w: Vec<R> = uniform(&mut prg, spec.weight_len(), 0.1).iter().map(|v| (v * (F as f64).exp2()).round() as i64 as u64).collect();
    let x: Vec<R> = uniform(&mut prg, spec.input_len(), 1.0).iter().map(|v| (v * (2.0 * F as f64).exp2()).round() as i64 as u64).collect();
    let (x0, x1) = share_clear(&x, &mut prg);
    let (seed0, seed1) = ([30u8; 16], [31u8; 16]);
    let reqs = vec![
        Request::Linear { layer: 0, spec },
        Request::program(&relu.program, spec.output_len()),
        Request::program(&trunc, spec.output_len()),
    ];
    let (mut d1, p1d) = Channel::mem_pair(ChannelConfig::default());
    let (c0, c1) = Channel::mem_pair(ChannelConfig::default());
    let dealer = {
        let reqs = reqs.clone();
        tokio::spawn(async move {
            let mut dealer = Dealer::new(seed0, seed1);
            dealer.register_linear(spec).unwrap();
            serve(&mut dealer, &mut d1, &reqs).await.unwrap();
        })
    };
    let run = |party: Party, mut chan: Channel, link_chan: Option<Channel>, seed, xs: Vec<R>, w: Option<Vec<R>>| {
        let (reqs, relu, trunc) = (reqs.clone(), Arc::clone(&relu), Arc::clone(&trunc));
        async move {
            let mut link = DealerLink::new(party, seed, link_chan).unwrap();
            let layer = match w {
                Some(w) => setup_server(&mut chan, link.expander_mut(), 0, spec, w).await.unwrap(),
                None => setup_client(&mut chan, 0, spec).await.unwrap(),
            };
            let prepared = prefetch(&mut link, &reqs).await.unwrap();
            let mut s = Session::new(party, chan, prepared);
            s.label("fc");
            let y = s.linear(&layer, &xs).await.unwrap(); // scale 3f
            s.label("relu");
            let r = s.relu(&relu, &y).await.unwrap(); // scale 36
            let t = s.truncate(&trunc, &r).await.unwrap(); // scale 20
            assert!(s.source.is_empty());
            s.reveal(&t, None).await.unwrap().unwrap()
        }
    };
    let (a, b, _) =
        tokio::join!(run(Party::Server, c0, None, seed0, x0, Some(w.clone())), run(Party::Client, c1, Some(p1d), seed1, x1, None), dealer);
    assert_eq!(a, b);
    let y = matmul_nt(&MatmulSpec { m: 4, k: 8, n: 16 }, &x, &w).unwrap();
    for (i, &v) in a.iter().enumerate() {
        let yf = decode(y[i], 3 * F);
        let want = 2.0 * relu.poly.relu(yf, 1.0);
        let got = decode(v, relu.config.output_frac() - F);
        assert!((got - want).abs() < 1e-3, "element {i}: {got} vs {want} (input {yf})");
    }
}
