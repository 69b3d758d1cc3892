//! Limits on what a peer or a model file decides: a public model description
//! or a card with a huge dimension or an out-of-range parameter is refused
//! with a typed error, quickly and without allocating; a batch above a role's
//! limit is refused by that role, and a batch at the limit runs.

#[path = "../../models/tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pann_approx::{Alpha, Precision};
use pann_engine::limits::MAX_MODEL_DESCRIPTION;
use pann_engine::session::session_params;
use pann_engine::{client_session_with, dealer_session_with, server_session_with, MaterialSize, PublicModel, SecureConfig, SessionLimits};
use pann_models::calibrate::{max_abs_per_site, per_site_bounds};
use pann_models::limits::{MAX_BOUND, MAX_NODES, MAX_NORMALISED_INPUT};
use pann_models::{ModelCard, ModelError};
use pann_mpc_core::channel::Tag;
use pann_mpc_core::handshake::{handshake, Role};
use pann_mpc_core::{AbortCode, Channel, ChannelConfig};
use serde_json::{json, Value};

/// The shipped ResNet-20's public description, as JSON.
fn resnet20_public() -> Value {
    let m = common::load_akamaster();
    let public = PublicModel::new(&m.model, &m.card.input, &m.card.relu_bounds, SecureConfig::new(Alpha::new(9).unwrap())).unwrap();
    serde_json::from_slice(&public.to_json()).unwrap()
}

/// Peak resident memory of this process (VmHWM), in kB.
fn peak_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

/// `from_json` on a modified description: refused within 100 ms.
fn refused(v: &Value) -> ModelError {
    let bytes = serde_json::to_vec(v).unwrap();
    let t0 = Instant::now();
    let res = PublicModel::from_json(&bytes);
    assert!(t0.elapsed() < Duration::from_millis(100), "took {:?}", t0.elapsed());
    match res {
        Ok(_) => panic!("accepted: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)])),
        Err(e) => e,
    }
}

fn node_index(v: &Value, name: &str) -> usize {
    v["network"]["nodes"].as_array().unwrap().iter().position(|n| n["name"] == name).unwrap()
}

#[test]
fn a_public_model_with_huge_dimensions_is_refused_without_allocating() {
    let base = resnet20_public();
    // Negative control: the description as the server sends it (far below
    // the description's cap).
    let bytes = serde_json::to_vec(&base).unwrap();
    eprintln!("ResNet-20 public model description: {} bytes", bytes.len());
    assert!(bytes.len() < MAX_MODEL_DESCRIPTION / 64);
    PublicModel::from_json(&bytes).unwrap();
    let before = peak_kb();

    // An input of 2^40 x 2^40 pixels (its element count overflows usize products).
    let mut v = base.clone();
    v["network"]["nodes"][0]["shape"] = json!({"c": 3, "h": 1u64 << 40, "w": 1u64 << 40});
    assert!(matches!(refused(&v), ModelError::TooLarge { .. }));
    // Every stored shape consistent, but 2^20 x 2^20 (checked before any shape inference).
    let mut v = base.clone();
    for n in v["network"]["nodes"].as_array_mut().unwrap() {
        n["shape"]["h"] = json!(1u64 << 20);
        n["shape"]["w"] = json!(1u64 << 20);
    }
    assert!(matches!(refused(&v), ModelError::TooLarge { .. }));
    // A conv with 2^40 output channels; a linear layer of 2^31 classes.
    let mut v = base.clone();
    let i = node_index(&v, "conv1");
    v["network"]["nodes"][i]["op"]["out_channels"] = json!(1u64 << 40);
    v["network"]["nodes"][i]["shape"]["c"] = json!(1u64 << 40);
    assert!(matches!(refused(&v), ModelError::TooLarge { .. }));
    let mut v = base.clone();
    let i = node_index(&v, "linear");
    v["network"]["nodes"][i]["op"]["out_features"] = json!(1u64 << 31);
    v["network"]["nodes"][i]["shape"]["c"] = json!(1u64 << 31);
    let e = refused(&v);
    assert!(matches!(&e, ModelError::TooLarge { what, .. } if what.contains("linear")), "{e}");
    // A kernel, stride and padding near usize::MAX (shape inference would overflow).
    let mut v = base.clone();
    let i = node_index(&v, "conv1");
    v["network"]["nodes"][i]["op"]["padding"] = json!(u64::MAX / 2);
    assert!(matches!(refused(&v), ModelError::TooLarge { .. }));
    // More nodes than MAX_NODES.
    let mut v = base.clone();
    let relu = v["network"]["nodes"][node_index(&v, "relu")].clone();
    let nodes = v["network"]["nodes"].as_array_mut().unwrap();
    while nodes.len() <= MAX_NODES {
        nodes.push(relu.clone());
    }
    let e = refused(&v);
    assert!(matches!(&e, ModelError::TooLarge { what, .. } if what == "number of nodes"), "{e}");

    let grown = peak_kb().saturating_sub(before);
    assert!(grown < 64 * 1024, "peak memory grew by {grown} kB while refusing");
}

#[test]
fn a_public_model_with_out_of_range_parameters_is_refused() {
    let base = resnet20_public();
    let set = |path: &[&str], x: Value| {
        let mut v = base.clone();
        let mut at = &mut v;
        for p in path {
            at = &mut at[*p];
        }
        *at = x;
        v
    };
    // Normalisation: std, mean, and a combination that pushes pixel 255 out of range.
    assert!(matches!(refused(&set(&["input", "std"], json!([1e-4, 0.2, 0.2]))), ModelError::OutOfRange { .. }));
    assert!(matches!(refused(&set(&["input", "std"], json!([2e3, 0.2, 0.2]))), ModelError::OutOfRange { .. }));
    assert!(matches!(refused(&set(&["input", "mean"], json!([-2e3, 0.4, 0.4]))), ModelError::OutOfRange { .. }));
    let e = refused(&set(&["input", "std"], json!([1e-3, 0.2, 0.2])));
    assert!(matches!(&e, ModelError::OutOfRange { what, .. } if what.contains("normalised pixel")), "{e}");
    // At the normalisation cap: accepted (|(1 - 0) / std| = 256 exactly).
    let at_cap = set(&["input"], json!({"mean": [0.0, 0.0, 0.0], "std": vec![1.0 / MAX_NORMALISED_INPUT; 3]}));
    PublicModel::from_json(&serde_json::to_vec(&at_cap).unwrap()).unwrap();
    // Bounds: within [2^-10, 2^20].
    assert!(matches!(refused(&set(&["bounds", "relu"], json!(1e-4))), ModelError::OutOfRange { .. }));
    assert!(matches!(refused(&set(&["bounds", "relu"], json!(MAX_BOUND * 2.0))), ModelError::OutOfRange { .. }));
    PublicModel::from_json(&serde_json::to_vec(&set(&["bounds", "relu"], json!(MAX_BOUND))).unwrap()).unwrap();
    // Alphas: the sign-polynomial table's range (refused when the JSON is read; a peer's
    // malformed description is named by position only); 14 is accepted.
    for (path, alpha) in [(&["config", "alpha"][..], json!(15)), (&["alphas"][..], json!({"relu": 3}))] {
        let e = refused(&set(path, alpha));
        assert!(matches!(&e, ModelError::Config(m) if m.contains("malformed public model")), "{e}");
    }
    PublicModel::from_json(&serde_json::to_vec(&set(&["config", "alpha"], json!(14))).unwrap()).unwrap();
}

#[test]
fn a_card_with_a_huge_architecture_is_refused() {
    let text = std::fs::read_to_string(common::card_path()).unwrap();
    let base: Value = serde_json::from_str(&text).unwrap();
    let path = std::env::temp_dir().join("limits-card.json");
    let check = |v: &Value| {
        let card: ModelCard = serde_json::from_value(v.clone()).unwrap();
        let t0 = Instant::now();
        let res = card.check(&path);
        assert!(t0.elapsed() < Duration::from_millis(500), "took {:?}", t0.elapsed());
        res.map(|_| ())
    };
    check(&base).unwrap();
    let with = |k: &str, x: Value| {
        let mut v = base.clone();
        v["architecture"][k] = x;
        v
    };
    for (k, x) in [
        ("depth", json!(6 * 1_000_000 + 2)),
        ("image_size", json!(1u64 << 40)),
        ("in_channels", json!(1u64 << 40)),
        ("num_classes", json!(1u64 << 30)),
        ("widths", json!([16, 32, 1u64 << 40])),
    ] {
        let e = check(&with(k, x)).unwrap_err();
        assert!(matches!(e, ModelError::TooLarge { .. }), "{k}: {e}");
    }
    let mut v = base.clone();
    v["input"]["std"] = json!([1e-9, 0.2, 0.2]);
    assert!(matches!(check(&v).unwrap_err(), ModelError::OutOfRange { .. }));
}

/// A small CNN with pseudo-random weights and calibrated bounds (fast).
fn small_cnn() -> (pann_models::Model, PublicModel, Vec<Vec<u8>>) {
    let (model, raw) = common::small_cnn(4);
    let spec = pann_models::InputSpec { mean: vec![0.5; 3], std: vec![0.25; 3] };
    let imgs: Vec<Vec<f64>> = raw.iter().map(|r| spec.normalise(r)).collect();
    let max = max_abs_per_site(&model, imgs.len(), |i| imgs[i].clone(), None).unwrap();
    let public = PublicModel::new(&model, &spec, &per_site_bounds(&max, 1.2), SecureConfig::new(Alpha::new(9).unwrap())).unwrap();
    (model, public, raw)
}

type Results = (Result<(), ModelError>, Result<(), ModelError>, Result<(), ModelError>);

/// The three roles in memory with the given limits; `batch` images in one batch.
async fn run(server: SessionLimits, dealer: SessionLimits, client: SessionLimits, batch: usize) -> Results {
    let (model, public, raw) = small_cnn();
    let imgs: Vec<Vec<u8>> = (0..batch).map(|i| raw[i % raw.len()].clone()).collect();
    let cfg = ChannelConfig::default().with_timeout(Duration::from_secs(20));
    let (mut sc, mut cs) = Channel::mem_pair(cfg.clone());
    let (mut sd, mut ds) = Channel::mem_pair(cfg.clone());
    let (mut cd, mut dc) = Channel::mem_pair(cfg);
    let precision = public.precision();
    let (s, c, d) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(
            server_session_with(&mut sc, &mut sd, &model, &public, &server),
            client_session_with(&mut cs, &mut cd, &precision, None, &imgs, batch, &client),
            dealer_session_with(&mut dc, &mut ds, &dealer),
        )
    })
    .await
    .expect("the sessions ended");
    (s.map(|_| ()), c.map(|_| ()), d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_at_the_limit_runs_and_one_more_is_refused() {
    let (_, public, _) = small_cnn();
    let size = MaterialSize::of(&Arc::new(public)).unwrap();
    assert!(size.held_at_once(1) > 0 && size.setup > 0);
    let any = SessionLimits::default();
    // By count: a server allowing 2 images runs a batch of 2 and refuses 3.
    let cap = SessionLimits::new(2, u64::MAX);
    let (s, c, d) = run(cap, any, any, 2).await;
    s.unwrap();
    c.unwrap();
    d.unwrap();
    let (s, c, _) = run(cap, any, any, 3).await;
    let e = s.unwrap_err();
    assert!(matches!(e, ModelError::BatchLimit { who: "server", batch: 3, limit: 2, .. }), "{e}");
    // The client is told the public code only (the sizes stay in the server's log).
    let c = c.unwrap_err();
    assert!(c.to_string().contains(AbortCode::Limit.text()) && !c.to_string().contains("batch 3"), "client: {c}");
    // By memory: room for exactly 2 images' material.
    let mem = SessionLimits::new(1024, size.session_bytes(2).unwrap());
    assert_eq!(mem.batch_limit(&size), 2);
    let (s, c, d) = run(mem, any, any, 2).await;
    s.unwrap();
    c.unwrap();
    d.unwrap();
    let (s, _, _) = run(mem, any, any, 3).await;
    assert!(matches!(s.unwrap_err(), ModelError::BatchLimit { who: "server", batch: 3, limit: 2, .. }));
    // The dealer applies its own limit.
    let (_, c, d) = run(any, cap, any, 3).await;
    assert!(matches!(d.unwrap_err(), ModelError::BatchLimit { who: "dealer", batch: 3, limit: 2, .. }));
    let c = c.unwrap_err().to_string();
    assert!(c.contains(AbortCode::Limit.text()) && !c.contains("batch 3"), "client: {c}");
    // And the client refuses a model whose material for its batch exceeds its budget.
    let (_, c, _) = run(any, any, mem, 3).await;
    assert!(matches!(c.unwrap_err(), ModelError::BatchLimit { who: "client", batch: 3, limit: 2, .. }));
}

#[tokio::test]
async fn an_oversized_model_description_is_refused_from_its_header() {
    let (mut sc, mut cs) = Channel::mem_pair(ChannelConfig::default().with_timeout(Duration::from_secs(5)));
    let (mut cd, _dc) = Channel::mem_pair(ChannelConfig::default().with_timeout(Duration::from_secs(5)));
    let fake_server = async {
        handshake(&mut sc, &session_params(Role::Server, &Precision::Uniform(Alpha::new(9).unwrap())).expecting(Role::Client))
            .await
            .unwrap();
        // Announces one byte more than a description may have; the client
        // must refuse without reading (the flush cannot complete: ignored).
        sc.send_tagged(Tag::Bytes, &vec![b' '; MAX_MODEL_DESCRIPTION + 1]).unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(2), sc.flush()).await;
    };
    let (images, limits, precision) = ([vec![0u8; 3072]], SessionLimits::default(), "9".parse().unwrap());
    let t0 = Instant::now();
    let (_, c) = tokio::join!(fake_server, client_session_with(&mut cs, &mut cd, &precision, None, &images, 1, &limits));
    let e = c.unwrap_err().to_string();
    assert!(e.contains(&format!("at most {MAX_MODEL_DESCRIPTION} bytes")), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3));
}

/// A peer's model with max pooling is sized without listing its windows:
/// heavily overlapping windows (k 32, stride 1, on 2048 x 2048) are refused
/// before anything is gathered, and large plain ones (2 x 2, stride 2) are
/// sized from the axes' counts in well under a second.
#[test]
fn a_peers_max_pooling_is_sized_without_listing_its_windows() {
    let model = |k: usize, s: usize, p: usize, o: usize| {
        format!(
            r#"{{"network":{{"nodes":[{{"name":"in","op":{{"type":"input"}},"inputs":[],"shape":{{"c":1,"h":2048,"w":2048}}}},{{"name":"mp","op":{{"type":"max_pool","kernel":{k},"stride":{s},"padding":{p}}},"inputs":[0],"shape":{{"c":1,"h":{o},"w":{o}}}}},{{"name":"gp","op":{{"type":"global_avg_pool"}},"inputs":[1],"shape":{{"c":1,"h":1,"w":1}}}}],"output":2}},"input":{{"mean":[0],"std":[1]}},"bounds":{{"mp":1.0}},"config":{{"alpha":9,"weight_bits":18}}}}"#
        )
    };
    let overlapping = std::sync::Arc::new(pann_engine::PublicModel::from_json(model(32, 1, 15, 2047).as_bytes()).unwrap());
    let e = pann_engine::MaterialSize::of(&overlapping).unwrap_err().to_string();
    assert!(e.contains("overlap"), "{e}");
    let plain = std::sync::Arc::new(pann_engine::PublicModel::from_json(model(2, 2, 0, 1024).as_bytes()).unwrap());
    let t = std::time::Instant::now();
    let size = pann_engine::MaterialSize::of(&plain).unwrap();
    assert!(t.elapsed().as_secs_f64() < 1.0, "{:?}", t.elapsed());
    // 2048 x 2048 in 2 x 2 windows: 2^21 pairs, then 2^20, as the plan's requests say.
    assert!(size.relu_per_image > 0);
}
