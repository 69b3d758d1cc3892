//! The online protocol does not care where its material comes from: the
//! session steps run with an in-process trusted dealer, with a dealer over a
//! channel that streams as the layers run, and with material prepared before
//! the session (the dealer's pool), and all agree with the fixed-point
//! reference. Negative controls: a source whose seeds do not belong together
//! gives wrong logits; prepared material for another plan is refused.

#[path = "../../models/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use pann_approx::Alpha;
use pann_engine::{
    client_connect, client_run, client_run_with_dealer, dealer_greet, dealer_receive, dealer_send, run_plan, server_admit,
    server_dealer_open, server_run, ClearBackend, Plan, PreparedSession, PublicModel, SecureConfig, SeedExpansion, ServedModel,
    ServerWeights, SessionLimits, TrustedDealer,
};
use pann_models::calibrate::{max_abs_per_site, per_site_bounds};
use pann_mpc_core::handshake::Role;
use pann_mpc_core::{Channel, ChannelConfig};

async fn small() -> (ServedModel, Vec<Vec<u8>>, Vec<Vec<f64>>) {
    let (served, raw, imgs) = small_cnn_served(4);
    let reference = reference(&served, &imgs, 2).await;
    (served, raw, reference)
}

/// The small CNN at alpha 9 with `n` images, its bounds calibrated on them
/// (so that every value stays in range); the raw and normalised images.
fn small_cnn_served(n: usize) -> (ServedModel, Vec<Vec<u8>>, Vec<Vec<f64>>) {
    let (model, raw) = common::small_cnn(n);
    let spec = pann_models::InputSpec { mean: vec![0.5; 3], std: vec![0.25; 3] };
    let imgs: Vec<Vec<f64>> = raw.iter().map(|r| spec.normalise(r)).collect();
    let max = max_abs_per_site(&model, imgs.len(), |i| imgs[i].clone(), None).unwrap();
    let public = PublicModel::new(&model, &spec, &per_site_bounds(&max, 1.2), SecureConfig::new(Alpha::new(9).unwrap())).unwrap();
    (ServedModel::new(model, public).unwrap(), raw, imgs)
}

/// The fixed-point reference's logits for `imgs` in batches of `batch`.
async fn reference(served: &ServedModel, imgs: &[Vec<f64>], batch: usize) -> Vec<Vec<f64>> {
    let plan = Plan::compile(Arc::clone(&served.public), batch).unwrap();
    let weights = ServerWeights::encode(&plan, &served.model).unwrap();
    let classes = plan.network().output_shape().len();
    let mut out = Vec::new();
    for chunk in imgs.chunks(batch) {
        let mut x: Vec<f64> = chunk.concat();
        x.resize(plan.len_of(0), 0.0);
        let y = run_plan(&plan, Some(&weights), &mut ClearBackend::new(&weights), plan.encode_input(&x).unwrap(), None).await.unwrap();
        out.extend(plan.decode_output(&y).chunks(classes).take(chunk.len()).map(|c| c.to_vec()));
    }
    out
}

fn close(got: &[Vec<f64>], want: &[Vec<f64>]) -> bool {
    got.len() == want.len() && got.iter().zip(want).all(|(g, w)| g.iter().zip(w).all(|(a, b)| (a - b).abs() < 1e-3))
}

/// Server and client in memory with sources from `make` (given the plan).
async fn run_with<S0, S1>(served: &ServedModel, raw: &[Vec<u8>], make: impl FnOnce(&Plan) -> (S0, S1)) -> Vec<Vec<f64>>
where
    S0: pann_engine::Preprocessing,
    S1: pann_engine::Preprocessing,
{
    let (mut sc, mut cs) = Channel::mem_pair(ChannelConfig::default());
    let limits = SessionLimits::default();
    let (precision, digest) = (served.public.precision(), served.digest());
    let (admitted, connected) =
        tokio::join!(server_admit(&mut sc, served, &limits), client_connect(&mut cs, &precision, Some(&digest), raw, 2, &limits));
    let (admitted, connected) = (admitted.unwrap(), connected.unwrap());
    let (mut s0, mut s1) = make(&admitted.plan);
    let (s, c) = tokio::join!(server_run(&mut sc, served, &admitted, &mut s0), client_run(&mut cs, &connected, &mut s1, raw));
    s.unwrap();
    c.unwrap().logits
}

#[tokio::test]
async fn an_in_process_trusted_dealer_gives_the_reference_logits() {
    let (served, raw, want) = small().await;
    let linears = |p: &Plan| p.linears.iter().map(|(_, s)| *s).collect::<Vec<_>>();
    let got = run_with(&served, &raw, |p| TrustedDealer::pair(&linears(p)).unwrap()).await;
    assert!(close(&got, &want), "{got:?}\nvs\n{want:?}");
    // Negative control: party 0's seed from another pair: the weight masks
    // and every correlation disagree, and so do the logits.
    let got = run_with(&served, &raw, |p| {
        let (_, theirs) = TrustedDealer::pair(&linears(p)).unwrap();
        let (ours, _) = TrustedDealer::pair(&linears(p)).unwrap();
        (ours, theirs)
    })
    .await;
    assert!(!close(&got, &want), "mismatched seeds still gave the reference logits");
}

/// The dealer's two halves with material made before the session (the pool)
/// or during it, over channels; the client streams either way.
async fn with_dealer(
    served: &ServedModel,
    raw: &[Vec<u8>],
    batch: usize,
    prepare: bool,
    wrong_batches: bool,
) -> Result<Vec<Vec<f64>>, String> {
    let cfg = ChannelConfig::default();
    let (mut sc, mut cs) = Channel::mem_pair(cfg.clone());
    let (mut sd, mut ds) = Channel::mem_pair(cfg.clone());
    let (mut cd, mut dc) = Channel::mem_pair(cfg);
    let limits = SessionLimits::default();
    let precision = served.public.precision();
    let server = async {
        let admitted = server_admit(&mut sc, served, &limits).await.map_err(|e| e.to_string())?;
        let mut source: SeedExpansion = server_dealer_open(&mut sd, served, &admitted).await.map_err(|e| e.to_string())?;
        server_run(&mut sc, served, &admitted, &mut source).await.map_err(|e| e.to_string())
    };
    let client = async {
        let c = client_connect(&mut cs, &precision, None, raw, batch, &limits).await.map_err(|e| e.to_string())?;
        client_run_with_dealer(&mut cs, &mut cd, &c, raw).await.map_err(|e| e.to_string())
    };
    let dealer = async {
        let (gs, gc) = tokio::try_join!(dealer_greet(&mut ds), dealer_greet(&mut dc)).map_err(|e| e.to_string())?;
        assert_eq!((gs.role, gc.role, gs.id), (Role::Server, Role::Client, gc.id));
        let job = dealer_receive(&mut ds, &gs.id, gc.model.as_deref().unwrap(), &limits).await.map_err(|e| e.to_string())?;
        let prepared = prepare.then(|| PreparedSession::generate(&job.plan, job.request.batches + usize::from(wrong_batches)).unwrap());
        let res = dealer_send(&mut ds, &mut dc, &job, prepared).await.map_err(|e| e.to_string());
        if res.is_err() {
            tokio::join!(ds.abort(pann_mpc_core::AbortCode::Internal), dc.abort(pann_mpc_core::AbortCode::Internal));
        }
        res
    };
    let (s, c, d) = tokio::join!(server, client, dealer);
    d?;
    s?;
    Ok(c?.logits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn material_prepared_before_the_session_gives_the_reference_logits() {
    let (served, raw, want) = small().await;
    let live = with_dealer(&served, &raw, 2, false, false).await.unwrap();
    assert!(close(&live, &want), "streamed: {live:?}\nvs\n{want:?}");
    let pooled = with_dealer(&served, &raw, 2, true, false).await.unwrap();
    assert!(close(&pooled, &want), "prepared: {pooled:?}\nvs\n{want:?}");
    // Negative control: material prepared for another number of batches is refused.
    let e = with_dealer(&served, &raw, 2, true, true).await.unwrap_err();
    assert!(e.contains("prepared material for another plan"), "{e}");
}

/// A batch large enough that the ReLU layers are cut into chunks (one
/// request each, so a party holds at most two chunks' material): the
/// streamed session still gives the reference logits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relu_layers_run_in_chunks_at_large_batches() {
    let batch = 600;
    let (served, raw, imgs) = small_cnn_served(batch);
    let want = reference(&served, &imgs, batch).await;
    let plan = Plan::compile(Arc::clone(&served.public), batch).unwrap();
    let relu_steps = plan.steps.iter().filter(|s| matches!(s, pann_engine::Step::Relu { .. })).count();
    let requests = plan.requests();
    // The test exercises chunks: more requests than layers, none above the cap.
    assert!(requests.len() > plan.linears.len() + relu_steps, "{} requests", requests.len());
    assert!(requests.iter().all(|r| 8 * r.material_len() <= pann_engine::RELU_CHUNK_BYTES));
    let got = with_dealer(&served, &raw, batch, false, false).await.unwrap();
    assert!(close(&got, &want), "chunked session differs from the reference");
}
