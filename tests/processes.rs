//! `pann-party` as three real processes over pinned mutual TLS on loopback:
//! the predictions equal the in-process fixed-point reference, and bad input
//! (a model file that does not match its card, an image of the wrong size,
//! different alphas, a dealer that disappears, an unpinned certificate, a
//! wrong model digest) ends every side with a clear error, never a hang.
//!
//! Parties that must fail run with `--timeout 10`; every wait of the test has its own
//! deadline, after which the children are killed and the test fails.

mod common;

use common::*;
use pann_approx::Alpha;
use pann_models::{ImageSet, LoadedModel, ModelCard};
use pann_mpc_core::AbortCode;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn three_processes_cifar_records_match_the_fixed_point_reference() {
    let s = Session::patient("cifar");
    let data = ImageSet::read_file(cifar()).expect("test records");
    let raw: Vec<Vec<u8>> = (0..2).map(|i| data.image(i).to_vec()).collect();
    let labels: Vec<Option<u8>> = (0..2).map(|i| Some(data.labels[i])).collect();
    let (digest, want) = reference(&raw, 2);

    let t0 = Instant::now();
    // The batch of 2 is at the server's and the dealer's limits: accepted
    // (the control of the batch-limit tests below).
    let mut d = s.dealer_with(&["--max-batch", "2"]);
    let mut sv = s.server_with(&card(), ALPHA, &["--max-batch", "2"]);
    let cifar = cifar();
    let mut c = s.client_with(&s.certs, &["--alpha", "9", "--count", "2", "--batch", "2", "--expect-model", &digest], &[&cifar]);
    let (de, se, ce) = wait_all(&mut d, &mut sv, &mut c, t0);
    ce.succeeded("client");
    se.succeeded("server");
    de.succeeded("dealer");
    assert!(se.stderr.contains("accepts batches of up to 2 image(s)"), "server stderr:\n{}", se.stderr);

    let cr = s.report("client");
    assert_eq!(cr["role"], "client");
    assert_eq!(cr["alpha"], ALPHA.get());
    assert_eq!(cr["model_digest"], digest.as_str());
    check_predictions(&cr, &want, &labels);
    for (i, w) in want.iter().enumerate() {
        assert!(ce.stdout.contains(&format!("image {i}: predicted class {}", argmax(w))), "client stdout:\n{}", ce.stdout);
    }
    assert!(ce.stdout.contains("top-5 logits"), "client stdout:\n{}", ce.stdout);

    let sr = s.report("server");
    assert_eq!(sr["role"], "server");
    assert_eq!(sr["model_digest"], digest.as_str());
    check_no_outputs(&sr, "server");
    assert!(!se.stdout.contains("predicted") && !se.stderr.contains("predicted"));
    // Costs are metered: online traffic with the client, offline with the dealer.
    assert!(sr["meters"]["client"].is_object(), "server report: {sr:.400}");
    check_no_outputs(&s.report("dealer"), "dealer");
}

#[test]
fn three_processes_png_input_matches_the_fixed_point_reference() {
    let s = Session::patient("png");
    let raw = pann_models::image::read_png(png_image(), pann_models::Shape::new(3, 32, 32)).expect("shipped PNG");
    let (_, want) = reference(&[raw], 1);
    let t0 = Instant::now();
    let mut d = s.dealer();
    let mut sv = s.server(&card(), ALPHA);
    let png = png_image();
    let mut c = s.client_with(&s.certs, &["--alpha", "9"], &[&png]);
    let (de, se, ce) = wait_all(&mut d, &mut sv, &mut c, t0);
    ce.succeeded("client");
    se.succeeded("server");
    de.succeeded("dealer");
    check_predictions(&s.report("client"), &want, &[None]);
    check_no_outputs(&s.report("server"), "server");
}

/// A model directory holding `card` and `weights`; the three parties must
/// all fail: the server naming `words` (its own reason), the others only the
/// server's abort code, never the server's details (file names, shapes).
/// A server whose model does not load ends before it listens, naming the
/// problem; a client then finds no server (and the dealer is never asked).
fn bad_model(name: &str, card_text: &str, weights: &[u8], words: &[&str]) {
    let s = Session::new(name);
    let mdir = s.dir.path().join("model");
    std::fs::create_dir_all(&mdir).unwrap();
    let card_path = mdir.join("resnet20-akamaster.card.json");
    std::fs::write(&card_path, card_text).unwrap();
    std::fs::write(mdir.join("resnet20-akamaster.safetensors"), weights).unwrap();
    let t0 = Instant::now();
    let mut sv = s.server(&card_path, ALPHA);
    let se = sv.wait(t0, DEADLINE);
    se.failed_mentioning("server", words);
    assert!(se.secs < 10.0, "the server took {:.1} s to refuse its model", se.secs);
    let mut c = s.client_with(&s.certs, &["--alpha", "9"], &[&png_image()]);
    let ce = c.wait(t0, DEADLINE);
    ce.failed_mentioning("client", &["connecting to the server"]);
    ce.never_mentions("client", words);
}

fn shipped_card_and_weights() -> (String, Vec<u8>) {
    let card = std::fs::read_to_string(card()).unwrap();
    let weights = std::fs::read(repo().join("models/assets/resnet20-akamaster.safetensors")).unwrap();
    (card, weights)
}

#[test]
fn weights_that_do_not_match_the_card_stop_the_server_at_start() {
    let (card, mut weights) = shipped_card_and_weights();
    let n = weights.len();
    weights[n - 5] ^= 0x40; // one weight changed: the card's SHA-256 no longer matches
    bad_model("badweights", &card, &weights, &["resnet20-akamaster.safetensors", "sha-256"]);
}

#[test]
fn a_card_whose_architecture_does_not_match_the_weights_stops_the_server_at_start() {
    let (card, weights) = shipped_card_and_weights();
    assert!(card.contains("\"num_classes\": 10,"));
    let card = card.replace("\"num_classes\": 10,", "\"num_classes\": 100,");
    bad_model("badarch", &card, &weights, &["linear.weight", "[10, 64]", "[100, 64]"]);
}

/// An image that loads but does not fit the model: the client learns the
/// model's shape from the server, refuses, and tells the server only the
/// code (the dealer is never contacted).
#[test]
fn an_image_of_the_wrong_size_fails_the_client_and_its_session() {
    let s = Session::new("badsize");
    let small = s.dir.path().join("small.png");
    std::fs::write(&small, pann_models::image::encode_png(&[128u8; 3 * 16 * 16], 16, 16).unwrap()).unwrap();
    let t0 = Instant::now();
    let mut sv = s.server(&card(), ALPHA);
    let mut c = s.client_with(&s.certs, &["--alpha", "9", "--image-size", "16"], &[&small]);
    let ce = c.wait(t0, DEADLINE);
    let se = sv.wait(t0, DEADLINE);
    ce.failed_mentioning("client", &["768 values", "3x32x32"]);
    // The server learns that the client's input failed, not its file name or size.
    se.failed_mentioning("server", &["client", AbortCode::Input.text()]);
    se.never_mentions("server", &["small.png", "768"]);
}

/// An input file that does not load ends the client before it connects.
#[test]
fn an_input_that_does_not_load_ends_the_client_before_it_connects() {
    let s = Session::new("badpng");
    let small = s.dir.path().join("small.png");
    std::fs::write(&small, pann_models::image::encode_png(&[128u8; 3 * 16 * 16], 16, 16).unwrap()).unwrap();
    let t0 = Instant::now();
    let mut c = s.client_with(&s.certs, &["--alpha", "9"], &[&small]);
    let ce = c.wait(t0, DEADLINE);
    ce.failed_mentioning("client", &["small.png", "16x16", "32x32"]);
    assert!(ce.secs < 5.0, "the client took {:.1} s", ce.secs);
}

#[test]
fn client_and_server_with_different_alpha_both_fail_naming_alpha() {
    let s = Session::new("alpha");
    let t0 = Instant::now();
    let mut sv = s.server(&card(), ALPHA);
    let mut c = s.client_with(&s.certs, &["--alpha", "10"], &[&png_image()]);
    let ce = c.wait(t0, DEADLINE);
    let se = sv.wait(t0, DEADLINE);
    ce.failed_mentioning("client", &["alpha", "10", "9"]);
    se.failed_mentioning("server", &["alpha", "10", "9"]);
}

/// A per-layer card (alphas 6, 9 and 12 in turn): the server deploys its
/// `relu_alphas`, the client must name the same per-layer precision.
fn per_layer_card(dir: &Path) -> PathBuf {
    let mut c: ModelCard = serde_json::from_slice(&std::fs::read(card()).unwrap()).unwrap();
    let sites: Vec<String> = c.relu_bounds.keys().cloned().collect();
    c.relu_alphas = sites.iter().enumerate().map(|(i, s)| (s.clone(), Alpha::new([6, 9, 12][i % 3]).unwrap())).collect();
    std::fs::copy(repo().join("models/assets").join(&c.weights), dir.join(&c.weights)).unwrap();
    let path = dir.join("per-layer.card.json");
    std::fs::write(&path, c.to_json()).unwrap();
    path
}

#[test]
fn a_per_layer_card_runs_over_tls_and_the_client_must_name_its_precision() {
    let s = Session::patient("perlayer");
    let card = per_layer_card(s.dir.path());
    let data = ImageSet::read_file(cifar()).expect("test records");
    let raw: Vec<Vec<u8>> = (0..2).map(|i| data.image(i).to_vec()).collect();
    let labels: Vec<Option<u8>> = (0..2).map(|i| Some(data.labels[i])).collect();
    let (digest, want) = reference_of(&card, None, &raw, 2);
    let m = LoadedModel::load(&card).unwrap();
    let net = &m.model.network;
    let precision = format!(
        "per-layer:{}",
        net.activation_sites().iter().map(|site| m.card.relu_alphas[*site].to_string()).collect::<Vec<_>>().join(",")
    );

    let t0 = Instant::now();
    let mut d = s.dealer();
    let mut c = s.party("server", &s.certs);
    c.args(["--listen", &s.server, "--dealer", &s.dealer, "--model"]).arg(&card);
    let mut sv = Proc::spawn(s.dir.path(), "server", &mut c);
    let cifar = cifar();
    let mut c = s.client_with(&s.certs, &["--alpha", &precision, "--count", "2", "--batch", "2", "--expect-model", &digest], &[&cifar]);
    let (de, se, ce) = wait_all(&mut d, &mut sv, &mut c, t0);
    ce.succeeded("client");
    se.succeeded("server");
    de.succeeded("dealer");
    assert!(se.stderr.contains(&precision), "the server prints its precision:\n{}", se.stderr);
    let cr = s.report("client");
    assert_eq!(cr["precision"], precision.as_str());
    check_predictions(&cr, &want, &labels);

    // The same server with a client that expects uniform alpha 9: refused.
    let s = Session::new("perlayer-mismatch");
    let t0 = Instant::now();
    let mut d = s.dealer();
    let mut c = s.party("server", &s.certs);
    c.args(["--listen", &s.server, "--dealer", &s.dealer, "--model"]).arg(&card);
    let mut sv = Proc::spawn(s.dir.path(), "server", &mut c);
    let mut c = s.client_with(&s.certs, &["--alpha", "9"], &[&png_image()]);
    let (_, se, ce) = wait_all(&mut d, &mut sv, &mut c, t0);
    ce.failed_mentioning("client", &["alpha", &precision]);
    se.failed_mentioning("server", &["alpha"]);
}

#[test]
fn pann_plan_writes_a_card_that_meets_its_target() {
    let tmp = Tmp::new("plan");
    let out = tmp.path().join("planned.card.json");
    let report = tmp.path().join("plan.json");
    let cifar = cifar();
    let o = Command::new(pann())
        .args(["plan", "--model"])
        .arg(card())
        .arg("--data")
        .arg(&cifar)
        .args(["--first", "0", "--images", "64", "--alphas", "6,9", "--max-drop", "4", "--out"])
        .arg(&out)
        .arg("--report")
        .arg(&report)
        .output()
        .expect("pann plan runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "pann plan failed:\n{stdout}\n{stderr}");
    // The card loads (digest of the copied weights) and names every site.
    let m = LoadedModel::load(&out).expect("the planned card loads");
    assert_eq!(m.card.relu_alphas.len(), 19);
    assert!(m.card.relu_alphas.values().all(|a| [6, 9].contains(&a.get())));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let oc = &r["outcome"];
    let f = |v: &serde_json::Value| v.as_f64().unwrap();
    assert!(f(&oc["score"]["accuracy"]) >= f(&oc["target_accuracy"]));
    assert!((f(&oc["exact"]["accuracy"]) - 4.0 / 100.0 - f(&oc["target_accuracy"])).abs() < 1e-9);
    // Metered costs: alpha 6 is cheaper than alpha 9, and the plan costs no
    // more than the uniform configuration it started from.
    assert!(f(&r["costs"]["6"]["bytes"]) < f(&r["costs"]["9"]["bytes"]));
    assert!(0.0 < f(&r["costs"]["6"]["offline_bytes"]) && f(&r["costs"]["6"]["offline_bytes"]) < f(&r["costs"]["9"]["offline_bytes"]));
    let explored = oc["explored"].as_array().unwrap();
    let chosen = explored.iter().rev().find(|e| e["alphas"] == oc["alphas"]).expect("the choice was evaluated");
    let start = explored
        .iter()
        .rfind(|e| e["kind"] == "uniform" && f(&e["score"]["accuracy"]) >= f(&oc["target_accuracy"]))
        .expect("a uniform start");
    assert!(f(&chosen["relu_bytes"]) <= f(&start["relu_bytes"]));
    assert!(stdout.contains("pann-party --role client --alpha "), "{stdout}");
}

#[test]
fn a_dealer_that_disappears_mid_run_ends_both_parties() {
    let s = Session::new("dealerdies");
    let t0 = Instant::now();
    let mut d = s.dealer();
    let mut sv = s.server(&card(), ALPHA);
    let cifar = cifar();
    let mut c = s.client_with(&s.certs, &["--alpha", "9", "--count", "16", "--batch", "1"], &[&cifar]);
    // Both parties are connected and the session has started: kill the dealer
    // a little later, during setup or the first batch's offline phase.
    d.wait_for_stderr("dealer: paired the server and the client", DEADLINE);
    std::thread::sleep(Duration::from_millis(1500));
    d.kill();
    let killed = Instant::now();
    let ce = c.wait(t0, DEADLINE);
    let se = sv.wait(t0, DEADLINE);
    eprintln!("client and server ended {:.1} s after the dealer was killed", killed.elapsed().as_secs_f64());
    eprintln!("--- client stderr:\n{}\n--- server stderr:\n{}", ce.stderr.trim_end(), se.stderr.trim_end());
    ce.failed_mentioning("client", &["dealer"]);
    // The server learns it from the client's abort code (no names cross), or
    // sees the dealer's connection end itself.
    se.failed_mentioning_one_of("server", &["dealer", AbortCode::PeerFailed.text()]);
    assert!(killed.elapsed() < Duration::from_secs(2 * TIMEOUT + 5), "took too long to notice the dealer had gone");
}

/// Kill `victim` ("server" or "client") once the session runs; the two others
/// must end with an error naming it.
fn kill_mid_run(victim: &str) {
    let s = Session::new(&format!("{victim}dies"));
    let t0 = Instant::now();
    let mut d = s.dealer();
    let mut sv = s.server(&card(), ALPHA);
    let cifar = cifar();
    let mut c = s.client_with(&s.certs, &["--alpha", "9", "--count", "16", "--batch", "1"], &[&cifar]);
    d.wait_for_stderr("dealer: paired the server and the client", DEADLINE);
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Instant::now();
    let (others, names) = if victim == "server" {
        sv.kill();
        ([c.wait(t0, DEADLINE), d.wait(t0, DEADLINE)], ["client", "dealer"])
    } else {
        c.kill();
        ([sv.wait(t0, DEADLINE), d.wait(t0, DEADLINE)], ["server", "dealer"])
    };
    eprintln!("the others ended {:.1} s after the {victim} was killed", killed.elapsed().as_secs_f64());
    for (e, who) in others.iter().zip(names) {
        eprintln!("--- {who} stderr:\n{}", e.stderr.trim_end());
        // Either its own channel with the victim failed (naming it), or the
        // third party told it that another party failed (an abort code), or
        // its channel to that third party broke as that one gave up.
        e.failed_mentioning_one_of(who, &[victim, AbortCode::PeerFailed.text(), "broken pipe", "peer closed"]);
    }
    assert!(killed.elapsed() < Duration::from_secs(2 * TIMEOUT + 5), "took too long to notice the {victim} had gone");
}

#[test]
fn a_server_that_disappears_mid_run_ends_the_others() {
    kill_mid_run("server");
}

#[test]
fn a_client_that_disappears_mid_run_ends_the_others() {
    kill_mid_run("client");
}

#[test]
fn a_dealer_that_stops_answering_ends_both_parties_after_the_timeout() {
    let s = Session::new("dealerstops");
    let t0 = Instant::now();
    let mut d = s.dealer();
    let mut sv = s.server(&card(), ALPHA);
    let cifar = cifar();
    let mut c = s.client_with(&s.certs, &["--alpha", "9", "--count", "16", "--batch", "1"], &[&cifar]);
    d.wait_for_stderr("dealer: paired the server and the client", DEADLINE);
    std::thread::sleep(Duration::from_millis(1500));
    // Frozen, not gone: its connections stay open, so only the timeout helps.
    let pid = d.child.as_ref().expect("dealer running").id().to_string();
    let st = Command::new("kill").args(["-STOP", &pid]).status().expect("kill -STOP");
    assert!(st.success());
    let stopped = Instant::now();
    let ce = c.wait(t0, DEADLINE);
    let se = sv.wait(t0, DEADLINE);
    let after = stopped.elapsed();
    eprintln!("client and server ended {:.1} s after the dealer was stopped", after.as_secs_f64());
    eprintln!("--- client stderr:\n{}\n--- server stderr:\n{}", ce.stderr.trim_end(), se.stderr.trim_end());
    d.kill(); // SIGKILL also ends a stopped process
    ce.failed_mentioning("client", &["dealer", "timed out"]);
    // The server waits on the client with the same timeout: it learns of the
    // dealer from the client's Abort, or times out on the client at about the
    // same moment.
    se.failed_mentioning_one_of("server", &["timed out", AbortCode::Timeout.text()]);
    assert!(after < Duration::from_secs(2 * TIMEOUT + 5), "took {after:?} to give up on a frozen dealer");
}

#[test]
fn a_client_certificate_not_pinned_by_the_server_is_refused() {
    let s = Session::new("unpinned");
    let other = make_certs(&s.dir.path().join("other-certs"));
    let t0 = Instant::now();
    let mut sv = s.server(&card(), ALPHA);
    let mut c = s.client_with(&other, &["--alpha", "9"], &[&png_image()]);
    let ce = c.wait(t0, DEADLINE);
    let se = sv.wait(t0, DEADLINE);
    ce.failed_mentioning("client", &["tls", "server"]);
    se.failed_mentioning("server", &["tls", "client"]);
}

#[test]
fn a_client_without_tls_is_refused() {
    let s = Session::new("plaintcp");
    let t0 = Instant::now();
    let mut sv = s.server(&card(), ALPHA);
    let mut c = Proc::spawn(
        s.dir.path(),
        "client",
        Command::new(party())
            .args(["--role", "client", "--insecure-tcp", "--timeout", &TIMEOUT.to_string(), "--alpha", "9"])
            .args(["--connect", &s.server, "--dealer", &s.dealer, "--input"])
            .arg(png_image()),
    );
    let ce = c.wait(t0, DEADLINE);
    let se = sv.wait(t0, DEADLINE);
    ce.failed_mentioning("client", &["server"]);
    se.failed_mentioning("server", &["tls", "client"]);
}

#[test]
fn a_batch_above_the_servers_limit_is_refused_on_every_side() {
    let s = Session::new("max-batch");
    let cifar = cifar();
    let t0 = Instant::now();
    let mut d = s.dealer();
    let mut sv = s.server_with(&card(), ALPHA, &["--max-batch", "2"]);
    let mut c = s.client_with(&s.certs, &["--alpha", "9", "--count", "3", "--batch", "3"], &[&cifar]);
    let (de, se, ce) = wait_all(&mut d, &mut sv, &mut c, t0);
    let said = "batch 3 exceeds this server's limit of 2";
    se.failed_mentioning("server", &[said]);
    // The client learns the public code only; the server's log has the sizes.
    ce.failed_mentioning("client", &["server", AbortCode::Limit.text()]);
    ce.never_mentions("client", &["exceeds this server's limit"]);
    // The dealer hears of it from the client (or fails writing to it).
    assert!(!de.stderr.contains("panicked"), "the dealer panicked:\n{}", de.stderr);
    assert!(!ce.stdout.contains("predicted"), "client stdout:\n{}", ce.stdout);
}

#[test]
fn a_batch_above_the_dealers_memory_limit_is_refused_on_every_side() {
    // 44 MiB holds the weights (2.1 MB) and what 2 ResNet-20 images at alpha
    // 9 need while material streams (19.1 MB each held at once, about 1 MB
    // of working memory each), not 3.
    let s = Session::new("max-memory");
    let cifar = cifar();
    let t0 = Instant::now();
    let mut d = s.dealer_with(&["--max-session-memory", "44"]);
    let mut sv = s.server(&card(), ALPHA);
    let mut c = s.client_with(&s.certs, &["--alpha", "9", "--count", "3", "--batch", "3"], &[&cifar]);
    let (de, se, ce) = wait_all(&mut d, &mut sv, &mut c, t0);
    let said = "batch 3 exceeds this dealer's limit of 2";
    de.failed_mentioning("dealer", &[said]);
    ce.failed_mentioning("client", &["dealer", AbortCode::Limit.text()]);
    ce.never_mentions("client", &["exceeds this dealer's limit"]);
    se.failed_mentioning("server", &["dealer", AbortCode::Limit.text()]);
}

#[test]
fn a_wrong_expected_model_digest_is_refused_by_the_client() {
    let s = Session::new("digest");
    let wrong = "ab".repeat(32);
    let t0 = Instant::now();
    let mut sv = s.server(&card(), ALPHA);
    let mut c = s.client_with(&s.certs, &["--alpha", "9", "--expect-model", &wrong], &[&png_image()]);
    let ce = c.wait(t0, DEADLINE);
    let se = sv.wait(t0, DEADLINE);
    ce.failed_mentioning("client", &["digest", &wrong]);
    se.failed_mentioning("server", &["client", AbortCode::Mismatch.text()]);
}

#[test]
fn a_dealer_alone_gives_up_after_its_timeout() {
    let s = Session::new("alone");
    let t0 = Instant::now();
    let mut d = Proc::spawn(
        s.dir.path(),
        "dealer",
        Command::new(party())
            .args(["--role", "dealer", "--listen", &s.dealer, "--timeout", "2", "--sessions", "1", "--certs"])
            .arg(s.certs.join("dealer")),
    );
    let de = d.wait(t0, Duration::from_secs(30));
    de.failed_mentioning("dealer", &["timed out", "connect"]);
    assert!(de.secs < 15.0, "the dealer waited {:.1} s", de.secs);
}

#[test]
fn pann_certs_makes_one_role_identity_and_never_overwrites_a_key_silently() {
    let tmp = Tmp::new("certsrole");
    let dir = tmp.path().join("server-certs");
    let run = |extra: &[&str]| {
        Command::new(pann()).args(["certs", "--role", "server", "--out"]).arg(&dir).args(extra).output().expect("pann certs")
    };
    let first = run(&[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let mut files: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert_eq!(files, ["server.crt", "server.key"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("server.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");
    }
    let key = std::fs::read(dir.join("server.key")).unwrap();
    let again = run(&[]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("--force"), "{again:?}");
    assert_eq!(std::fs::read(dir.join("server.key")).unwrap(), key, "the key was replaced without --force");
    assert!(run(&["--force"]).status.success());
    assert_ne!(std::fs::read(dir.join("server.key")).unwrap(), key);
    // Another role's key in the directory: refused.
    std::fs::write(dir.join("client.key"), b"x").unwrap();
    let mixed = run(&["--force"]);
    assert!(!mixed.status.success() && String::from_utf8_lossy(&mixed.stderr).contains("client.key"), "{mixed:?}");
}

/// A role refuses to start from a directory that holds another role's key,
/// even renamed; the same directory without it starts (the other tests).
#[test]
fn a_party_refuses_a_certificate_directory_holding_another_roles_key() {
    let s = Session::new("sharedkeys");
    let server_dir = s.certs.join("server");
    std::fs::create_dir_all(server_dir.join("old")).unwrap();
    for (file, content) in [
        ("dealer.key", s.certs.join("dealer/dealer.key")),
        ("backup.pem", s.certs.join("client/client.key")),
        ("old/CLIENT.KEY", s.certs.join("client/client.crt")),
    ] {
        std::fs::copy(&content, server_dir.join(file)).unwrap();
        let t0 = Instant::now();
        let mut sv = s.server(&card(), ALPHA);
        let se = sv.wait(t0, DEADLINE);
        se.failed_mentioning("server", &["refusing to run as the server", file, "its own key"]);
        assert!(se.secs < 10.0, "the server took {:.1} s to refuse", se.secs);
        std::fs::remove_file(server_dir.join(file)).unwrap();
    }
}

/// The attack the per-role binding stops: a client that holds its own key
/// presents it to the dealer in the server's role (a dealer serving many
/// sessions would otherwise give it the server's seed). The impostor here is
/// this test, speaking the real TLS and Hello to a real dealer process; the
/// genuine client's connection is a second one that stays silent.
#[test]
fn a_client_identity_claiming_the_server_role_is_refused_by_the_dealer() {
    use pann_mpc_core::handshake::{handshake, Role, SessionParams};
    use pann_mpc_core::transport::{load_peer_cert, tls_connect, TlsIdentity, TlsPeers};
    use pann_mpc_core::{ChannelConfig, CoreError};
    let s = Session::new("impostor");
    let t0 = Instant::now();
    let mut d = s.dealer();
    let client_dir = s.certs.join("client");
    let id = TlsIdentity::load(client_dir.join("client.crt"), client_dir.join("client.key")).unwrap();
    let peers = TlsPeers::new(&id, vec![(Role::Dealer, load_peer_cert(client_dir.join("dealer.crt")).unwrap())]).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let told = rt.block_on(async {
        let cfg = ChannelConfig::default().with_timeout(Duration::from_secs(TIMEOUT)).with_connect_timeout(Duration::from_secs(TIMEOUT));
        let mut impostor = tls_connect(s.dealer.clone(), cfg.clone(), &peers).await.unwrap();
        let _silent = tls_connect(s.dealer.clone(), cfg, &peers).await.unwrap();
        let hello = SessionParams::new(Role::Server).with("ring", "Z_2^64").with("session", "0".repeat(32)).expecting(Role::Dealer);
        // The dealer reads the Hello first and answers with its refusal.
        handshake(&mut impostor, &hello).await.map(|_| ())
    });
    assert!(matches!(told, Err(CoreError::PeerAborted(pann_mpc_core::AbortCode::Identity))), "{told:?}");
    let de = d.wait(t0, DEADLINE);
    de.failed_mentioning("dealer", &["certificate is the client's", "claims the role server"]);
}

#[test]
fn an_unpinned_client_warns() {
    let out = Command::new(party())
        .args([
            "--role",
            "client",
            "--insecure-tcp",
            "--timeout",
            "1",
            "--alpha",
            "9",
            "--connect",
            "127.0.0.1:9",
            "--dealer",
            "127.0.0.1:9",
            "--input",
        ])
        .arg(png_image())
        .output()
        .expect("pann-party");
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: no --expect-model"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn help_explains_every_option() {
    let out = Command::new(party()).arg("--help").output().expect("pann-party --help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--role",
        "--listen",
        "--connect",
        "--dealer",
        "--certs",
        "--insecure-tcp",
        "--model",
        "--alpha",
        "--input",
        "--first",
        "--count",
        "--image-size",
        "--batch",
        "--expect-model",
        "--report",
        "--timeout",
        "--max-batch",
        "--max-session-memory",
    ] {
        assert!(text.contains(opt), "pann-party --help does not mention {opt}:\n{text}");
    }
    let out = Command::new(pann()).arg("--help").output().expect("pann --help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["demo", "certs", "calibrate", "plan", "import", "eval"] {
        assert!(text.contains(cmd), "pann --help does not mention {cmd}:\n{text}");
    }
    // Every option of the ONNX path is explained.
    for (cmd, opts) in
        [("import", &["--out", "--mean", "--std", "--name"][..]), ("eval", &["--model", "--data", "--images", "--alphas"][..])]
    {
        let out = Command::new(pann()).args([cmd, "--help"]).output().expect("pann CMD --help");
        let text = String::from_utf8_lossy(&out.stdout);
        for opt in opts {
            let line =
                text.lines().find(|l| l.trim_start().starts_with(opt)).unwrap_or_else(|| panic!("pann {cmd} --help lacks {opt}:\n{text}"));
            assert!(line.trim().len() > opt.len() + 10, "pann {cmd} --help: {opt} has no explanation:\n{text}");
        }
    }
}

#[test]
fn demo_with_two_images_agrees_with_the_plaintext_pann() {
    let tmp = Tmp::new("demo");
    let t0 = Instant::now();
    let mut p =
        Proc::spawn(tmp.path(), "demo", Command::new(pann()).args(["demo", "--images", "2", "--keep"]).arg(tmp.path().join("work")));
    let e = p.wait(t0, Duration::from_secs(240));
    eprintln!("pann demo --images 2: {:.1} s", e.secs);
    e.succeeded("demo");
    assert!(e.stdout.contains("secure predictions equal to the plaintext PANN's: 2 of 2"), "demo output:\n{}", e.stdout);
}

/// A gray 1x28x28 model (the shipped Fashion-MNIST ResNet-20, alpha 4 in its
/// card) on IDX input, and on a gray PNG with `--channels 1`.
#[test]
fn three_processes_fashion_mnist_idx_and_gray_png_match_the_fixed_point_reference() {
    let card = repo().join("models/assets/fmnist-resnet20-alpha4.card.json");
    let idx = repo().join("models/tests/data/fashion-mnist-small/t10k-images-idx3-ubyte.gz");
    let data = ImageSet::read_file(&idx).expect("shipped IDX subset");
    let raw: Vec<Vec<u8>> = (0..3).map(|i| data.image(i).to_vec()).collect();
    let labels: Vec<Option<u8>> = (0..3).map(|i| Some(data.labels[i])).collect();
    let alpha_n = LoadedModel::load(&card).expect("card").card.default_alpha;
    let (digest, want) = reference_of(&card, Some(alpha_n), &raw, 3);
    let alpha = alpha_n.to_string();

    let s = Session::patient("fashion");
    let t0 = Instant::now();
    let mut d = s.dealer();
    let mut sv = s.server(&card, alpha_n);
    let args = ["--alpha", &alpha, "--count", "3", "--batch", "3", "--expect-model", &digest];
    let mut c = s.client_with(&s.certs, &args, &[&idx]);
    let (de, se, ce) = wait_all(&mut d, &mut sv, &mut c, t0);
    ce.succeeded("client");
    se.succeeded("server");
    de.succeeded("dealer");
    check_predictions(&s.report("client"), &want, &labels);
    check_no_outputs(&s.report("server"), "server");

    // The same first image as a gray PNG.
    let s = Session::patient("fashion-png");
    let png = s.dir.path().join("fm0.png");
    std::fs::write(&png, pann_models::image::encode_png(&raw[0], 28, 28).unwrap()).unwrap();
    let t0 = Instant::now();
    let mut d = s.dealer();
    let mut sv = s.server(&card, alpha_n);
    let mut c = s.client_with(&s.certs, &["--alpha", &alpha, "--image-size", "28", "--channels", "1"], &[&png]);
    let (de, se, ce) = wait_all(&mut d, &mut sv, &mut c, t0);
    ce.succeeded("client");
    se.succeeded("server");
    de.succeeded("dealer");
    check_predictions(&s.report("client"), &want[..1], &[None]);
}

/// The README's walk-through pins the digest the server prints for the
/// shipped card at alpha 9: it must stay the real one.
#[test]
fn the_readme_pins_the_real_model_digest() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let pinned = readme.split("--expect-model ").nth(1).and_then(|s| s.split_whitespace().next()).expect("the README pins a digest");
    let real = pann_bin::party::public_model_digest(&card(), Some(ALPHA)).unwrap();
    assert_eq!(pinned, real, "update the README walk-through's --expect-model");
}
