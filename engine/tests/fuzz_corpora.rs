//! Replays every committed fuzz corpus (`fuzz/corpus/<target>/*`) through the
//! same body the cargo-fuzz target runs (`fuzz/src/bodies.rs`), on the stable
//! toolchain: an input that once crashed a decoder fails this test if the
//! crash comes back. A target without a corpus, or with an empty one, fails.
//!
//! The ignored test `write_seed_corpora` regenerates the seeds made by the
//! real encoders (see `fuzz/README.md`).

#[allow(dead_code)]
#[path = "../../fuzz/src/bodies.rs"]
mod bodies;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn every_target_has_a_body_and_a_corpus() {
    let targets: BTreeSet<String> =
        files(&fuzz_dir().join("fuzz_targets")).iter().filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(String::from)).collect();
    let bodies: BTreeSet<String> = bodies::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(targets, bodies, "fuzz/fuzz_targets/*.rs and bodies::TARGETS must name the same targets");
}

#[test]
fn replay_every_corpus() {
    let mut total = 0;
    for (name, body) in bodies::TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        let inputs = files(&dir);
        assert!(!inputs.is_empty(), "corpus {} is empty", dir.display());
        for input in &inputs {
            let bytes = std::fs::read(input).unwrap_or_else(|e| panic!("reading {}: {e}", input.display()));
            // A panic names the target and the file.
            eprintln!("replaying {name}: {}", input.display());
            body(&bytes);
        }
        total += inputs.len();
    }
    eprintln!("replayed {total} inputs of {} targets", bodies::TARGETS.len());
}

mod seeds {
    use super::bodies;
    use pann_engine::{session, PublicModel, SecureConfig};
    use pann_models::{LoadedModel, Tensor};
    use pann_mpc_core::channel::{Channel, ChannelConfig, Tag};
    use pann_mpc_core::handshake::{Role, SessionParams};
    use pann_protocols::Dealer;
    use std::path::Path;
    use tokio::io::AsyncReadExt;

    /// The bytes a channel puts on the wire while `f` sends.
    fn wire(f: impl FnOnce(&mut Channel)) -> Vec<u8> {
        bodies::block_on(async {
            let (a, mut b) = tokio::io::duplex(1 << 24);
            let mut ch = Channel::from_stream(a, ChannelConfig::default());
            f(&mut ch);
            ch.close().await.expect("flushing to memory");
            drop(ch);
            let mut out = Vec::new();
            b.read_to_end(&mut out).await.expect("reading memory");
            out
        })
    }

    fn with_sel(sel: u8, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![sel];
        v.extend_from_slice(bytes);
        v
    }

    fn write(target: &str, name: &str, bytes: &[u8]) {
        let dir = super::fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("creating the corpus directory");
        std::fs::write(dir.join(name), bytes).expect("writing a seed");
    }

    /// The corpus seeds produced by the real encoders. Run with
    /// `cargo test -p pann-engine --test fuzz_corpora -- --ignored write_seed_corpora`.
    #[test]
    #[ignore]
    fn write_seed_corpora() {
        let root = super::fuzz_dir().join("..");
        let assets = root.join("models/assets");

        // Hello bodies, as the sessions build them.
        let model_hello = SessionParams::new(Role::Dealer).with("model", "ab".repeat(32));
        let hellos = [
            ("client", session::session_params(Role::Client, &"9".parse().unwrap()).expecting(Role::Server)),
            ("dealer", session::dealer_params(Role::Dealer)),
            ("per-layer", session::session_params(Role::Server, &"per-layer:4,4,5,6".parse().unwrap())),
            ("model", model_hello),
        ];
        for (name, p) in &hellos {
            write("hello", name, &p.encode());
        }
        write("hello", "magic-only", b"PANN");

        // Frames of every kind.
        let hello = hellos[0].1.encode();
        for (sel, name) in [(0x0f, "mixed-a"), (0x4f, "mixed-b"), (0x28, "mixed-c")] {
            let bytes = wire(|ch| {
                ch.send_frame(b"raw").unwrap();
                ch.send_tagged(Tag::Bytes, b"{\"batch\":1}").unwrap();
                ch.send_tagged(Tag::Hello, &hello).unwrap();
                ch.send_tagged(Tag::Abort, b"the server gives up").unwrap();
                ch.send_ring(&[1, 2, 3, 4, 5]).unwrap();
                ch.send_ring(&[]).unwrap();
            });
            write("frame", name, &with_sel(sel, &bytes));
        }
        write("frame", "too-large", &with_sel(0x00, &[0xff, 0xff, 0xff, 0xff, 1]));
        write("frame", "empty-frame", &with_sel(0x10, &[0, 0, 0, 0]));

        // The public model of a shipped card, and session requests.
        let loaded = LoadedModel::load(assets.join("fmnist-resnet20-alpha4.card.json")).expect("the shipped model loads");
        let public =
            PublicModel::new(&loaded.model, &loaded.card.input, &loaded.card.relu_bounds, SecureConfig::new(loaded.card.default_alpha))
                .and_then(|p| p.with_alphas(loaded.card.relu_alphas.clone()))
                .expect("the shipped model's public description");
        PublicModel::from_json(&public.to_json()).expect("the public model decodes");
        write("public_model", "fmnist-resnet20-alpha4.json", &public.to_json());
        write("session_request", "ok", br#"{"batch":8,"batches":2}"#);
        write("session_request", "too-large", br#"{"batch":100000,"batches":1}"#);
        write("session_request", "negative", br#"{"batch":-1,"batches":1e3}"#);

        // The dealer's seed, its material for several requests, a layer's E.
        write("dealer_seed", "seed", &wire(|ch| ch.send_tagged(Tag::Bytes, &[7; 16]).unwrap()));
        write("dealer_seed", "short", &wire(|ch| ch.send_tagged(Tag::Bytes, &[7; 15]).unwrap()));
        for sel in [0x00, 0x15, 0x40, 0x43, 0x80, 0x95] {
            let req = bodies::material_request(sel);
            let mut dealer = Dealer::new([0; 16], bodies::SEED1);
            if let pann_protocols::Request::Linear { spec, .. } = &req {
                dealer.register_linear(*spec).unwrap();
            }
            let bytes = bodies::block_on(async {
                let (a, mut b) = tokio::io::duplex(1 << 24);
                let mut ch = Channel::from_stream(a, ChannelConfig::default());
                pann_protocols::dealer::serve(&mut dealer, &mut ch, std::slice::from_ref(&req)).await.unwrap();
                ch.close().await.unwrap();
                drop(ch);
                let mut out = Vec::new();
                b.read_to_end(&mut out).await.unwrap();
                out
            });
            assert!(bytes.len() > 8 * req.correction_len());
            let ok = bodies::block_on(async {
                let mut ch = bodies::channel(&bytes, bodies::MAX_FRAME);
                let mut expander = pann_protocols::Expander::new(pann_mpc_core::Party::Client, bodies::SEED1);
                pann_protocols::dealer::receive_material(&mut ch, &mut expander, &req).await
            });
            assert!(ok.is_ok(), "the seed for {sel:02x} does not decode: {ok:?}");
            write("dealer_material", &format!("sel-{sel:02x}"), &with_sel(sel, &bytes));
        }
        for sel in [0x00, 0x3f, 0x80, 0x9b] {
            let n = bodies::linear_spec(sel).weight_len();
            let e: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
            let bytes = wire(|ch| ch.send_ring(&e).unwrap());
            let ok = bodies::block_on(async {
                pann_protocols::linear::setup_client(&mut bodies::channel(&bytes, bodies::MAX_FRAME), 0, bodies::linear_spec(sel)).await
            });
            assert!(ok.is_ok(), "the seed for {sel:02x} does not decode: {ok:?}");
            write("linear_setup", &format!("sel-{sel:02x}"), &with_sel(sel, &bytes));
        }

        // Model cards, safetensors, PNGs.
        for card in ["resnet20-akamaster.card.json", "resnet20-alpha4.card.json", "fmnist-resnet20-alpha4.card.json"] {
            write("card", card, &std::fs::read(assets.join(card)).unwrap());
        }
        let mut params = pann_models::Params::new();
        params.insert("conv1.weight".into(), Tensor::new(vec![2, 1, 1, 2], vec![0.5, -1.0, 2.0, 0.25]));
        params.insert("fc.bias".into(), Tensor::new(vec![3], vec![1.0, 2.0, 3.0]));
        write("safetensors", "tiny-f32.safetensors", &pann_models::model::write_safetensors(&params, false).unwrap());
        write("safetensors", "tiny-f64.safetensors", &pann_models::model::write_safetensors(&params, true).unwrap());
        for entry in std::fs::read_dir(assets.join("images")).unwrap() {
            let p = entry.unwrap().path();
            write("png", p.file_name().unwrap().to_str().unwrap(), &std::fs::read(&p).unwrap());
        }
        write("png", "gray-3x2.png", &pann_models::image::encode_png(&[0, 50, 100, 150, 200, 250], 3, 2).unwrap());
        write("png", "rgb-2x2.png", &pann_models::image::encode_png(&(0..12).map(|i| i * 20).collect::<Vec<u8>>(), 2, 2).unwrap());

        // CIFAR records and IDX files.
        let record = |label: u8| {
            let mut r = vec![label];
            r.extend((0..pann_models::cifar::IMAGE_BYTES).map(|i| (i * 7 % 251) as u8));
            r
        };
        write("cifar", "one-record.bin", &record(3));
        write("cifar", "two-records.bin", &[record(9), record(0)].concat());
        write("cifar", "bad-label.bin", &record(10));
        let images = pann_models::idx::to_idx(&[2, 3, 3], &(0..18).collect::<Vec<u8>>());
        let labels = pann_models::idx::to_idx(&[2], &[4, 9]);
        write("idx", "images-idx3", &images);
        write("idx", "labels-idx1", &labels);
        write("idx", "truncated", &images[..images.len() - 1]);
        let mut pair = (images.len() as u16).to_le_bytes().to_vec();
        pair.extend_from_slice(&images);
        pair.extend_from_slice(&labels);
        pann_models::idx::images_and_labels(Path::new("i"), &images, Path::new("l"), &labels).expect("the IDX pair decodes");
        write("idx_pair", "images-labels", &pair);
        let mut bad = pair.clone();
        *bad.last_mut().unwrap() = 10;
        write("idx_pair", "bad-label", &bad);
    }
}
