//! A user's path from a model card to a served model, with the binaries as
//! a user runs them: `pann calibrate` (per-site bounds and the logit range
//! from calibration images), `pann plan` (an alpha per ReLU site within an
//! accuracy target), then `pann-party` server, client and dealer as three
//! processes over pinned TLS serving the planned card. The client's
//! predictions equal the in-process fixed-point reference of that card.

mod common;

use std::time::Instant;

use common::*;
use pann_models::{ImageSet, LoadedModel};

/// Runs `pann ARGS`; fails the test with its output when it fails.
fn pann_ok(args: &[&std::ffi::OsStr]) -> String {
    let (ok, out) = run_pann(args);
    assert!(ok, "pann {args:?} failed:\n{out}");
    out
}

#[test]
fn calibrate_then_plan_then_serve() {
    let s = Session::patient("workflow");
    let dir = s.dir.path();
    let (cifar, calibrated, planned) = (cifar(), dir.join("calibrated.card.json"), dir.join("planned.card.json"));

    // 1. Bounds from the first 32 records, out-of-range rate on the next 16.
    pann_ok(
        &[os("calibrate"), os("--model"), card().as_os_str(), os("--data"), cifar.as_os_str()]
            .into_iter()
            .chain([os("--images"), os("32"), os("--holdout"), os("16"), os("--out"), calibrated.as_os_str()])
            .collect::<Vec<_>>(),
    );
    let c = LoadedModel::load(&calibrated).expect("the calibrated card loads");
    let shipped = LoadedModel::load(card()).unwrap();
    assert_ne!(c.card.relu_bounds, shipped.card.relu_bounds, "calibration on other images gives other bounds");
    assert!(c.card.logit_range.is_some(), "the calibrated card records its logit range");

    // 2. An alpha per site, 6 or 9, within 5 points of exact ReLU on 32 images.
    let stdout = pann_ok(
        &[os("plan"), os("--model"), calibrated.as_os_str(), os("--data"), cifar.as_os_str()]
            .into_iter()
            .chain([os("--first"), os("0"), os("--images"), os("32"), os("--alphas"), os("6,9"), os("--max-drop"), os("5")])
            .chain([os("--out"), planned.as_os_str()])
            .collect::<Vec<_>>(),
    );
    let m = LoadedModel::load(&planned).expect("the planned card loads");
    assert_eq!(m.card.relu_bounds, c.card.relu_bounds, "planning keeps the calibrated bounds");
    let sites = m.model.network.activation_sites();
    let precision = if m.card.relu_alphas.is_empty() {
        m.card.default_alpha.to_string()
    } else {
        format!("per-layer:{}", sites.iter().map(|site| m.card.relu_alphas[*site].to_string()).collect::<Vec<_>>().join(","))
    };
    assert!(stdout.contains("pann-party --role client --alpha "), "pann plan tells the client's --alpha:\n{stdout}");

    // 3. Served by three processes; the client names the precision and pins the digest.
    let data = ImageSet::read_file(&cifar).expect("test records");
    let raw: Vec<Vec<u8>> = (0..2).map(|i| data.image(i).to_vec()).collect();
    let labels: Vec<Option<u8>> = (0..2).map(|i| Some(data.labels[i])).collect();
    let (digest, want) = reference_of(&planned, None, &raw, 2);
    let t0 = Instant::now();
    let mut d = s.dealer();
    let mut c = s.party("server", &s.certs);
    c.args(["--listen", &s.server, "--dealer", &s.dealer, "--model"]).arg(&planned);
    let mut sv = Proc::spawn(dir, "server", &mut c);
    let mut c = s.client_with(&s.certs, &["--alpha", &precision, "--count", "2", "--batch", "2", "--expect-model", &digest], &[&cifar]);
    let (de, se, ce) = wait_all(&mut d, &mut sv, &mut c, t0);
    ce.succeeded("client");
    se.succeeded("server");
    de.succeeded("dealer");
    check_predictions(&s.report("client"), &want, &labels);
}
