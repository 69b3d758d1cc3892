//! Reading a session report: what a client learns from a secure session
//! (`ClientOutcome`: logits, per-batch and per-step times, the meters of its
//! channels to the server and the dealer), stored as JSON and read back, then
//! broken down per layer the way `pann demo` and `pann-party --report` do.
//!
//! Run: `cargo run --example session_report`

mod common;

use pann::net::{Cost, Phase};
use pann::nn::{Alpha, InputSpec, SmallCnnConfig};
use pann::secure::{ClientOutcome, PublicModel, SecureConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let net =
        SmallCnnConfig { channels: vec![4, 6], num_classes: 5, batch_norm: false, in_channels: 3, image_size: 8, bn_eps: 1e-5 }.build()?;
    let model = common::pseudo_random_model(net, 9, 0.8)?;
    let spec = InputSpec { mean: vec![0.5; 3], std: vec![0.25; 3] };
    let bounds = model.network.activation_sites().iter().map(|s| (s.to_string(), 8.0)).collect();
    let public = PublicModel::new(&model, &spec, &bounds, SecureConfig::new(Alpha::new(9)?))?;
    let images = common::pseudo_random_images(4, 3 * 8 * 8, 10);
    let rt = tokio::runtime::Runtime::new()?;
    let outcome = rt.block_on(common::three_roles(&model, &public, &images, 2))?;

    // A report is plain JSON: store it, read it back later.
    let json = serde_json::to_string(&outcome)?;
    let report: ClientOutcome = serde_json::from_str(&json)?;
    println!("model {} ({} bytes of JSON report)", &report.model_digest[..16], json.len());
    println!("setup {:.3} s", report.setup_s);
    for (i, b) in report.batches.iter().enumerate() {
        println!("batch {i}: {} images, waited {:.3} s for material, online {:.3} s", b.images, b.offline_s, b.online_s);
    }

    // Online cost per layer: the meter of the channel to the server is labelled
    // by step (node name, "input" for the sharing), plus "output" (the reveal).
    let costs: std::collections::BTreeMap<String, Cost> = report.meter_server.labels(Phase::Online).into_iter().collect();
    let mut order = Vec::new();
    for (i, (name, _)) in report.batches[0].steps.iter().enumerate() {
        let ms = report.batches.iter().map(|b| 1e3 * b.steps[i].1).sum::<f64>();
        order.push((name.clone(), ms));
    }
    order.push(("output".to_string(), 0.0));
    println!("\n{:<12} {:>10} {:>10} {:>7} {:>9}", "layer", "sent B", "recv B", "rounds", "time ms");
    for (label, ms) in order {
        if let Some(cost) = costs.get(&label) {
            println!("{label:<12} {:>10} {:>10} {:>7} {ms:>9.2}", cost.bytes_sent, cost.bytes_recv, cost.rounds);
        }
    }
    let online = report.meter_server.phase_total(Phase::Online);
    let offline = report.meter_dealer.phase_total(Phase::Offline);
    let per_image = |bytes: u64| bytes as f64 / images.len() as f64 / 1e3;
    println!(
        "\nonline {:.1} kB per image in {} rounds; offline (from the dealer) {:.1} kB per image",
        per_image(online.bytes()),
        online.rounds,
        per_image(offline.bytes())
    );
    assert_eq!(report.logits.len(), images.len());
    assert!(online.bytes() > 0 && offline.bytes() > 0);
    Ok(())
}

/// `cargo test` builds examples as test harnesses: this runs the example there, so that it is checked, not only compiled.
#[test]
fn example_runs() {
    main().unwrap();
}
