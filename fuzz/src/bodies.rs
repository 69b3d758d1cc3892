// The fuzz targets' bodies: one function per target, each feeding its bytes
// to a public decoder of peer or file data and ignoring the result (an error
// is fine, a panic, hang or huge allocation is a finding).
//
// This file is the crate root's only module in `fuzz/` (used by the
// cargo-fuzz targets, nightly) and is also `#[path]`-imported by the ordinary
// test `engine/tests/fuzz_corpora.rs`, which replays every committed corpus file
// through the same body on the stable toolchain. It may only use crates that
// both depend on: pann-mpc-core, pann-protocols, pann-models and tokio.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pann_models::network::Shape;
use pann_mpc_core::channel::{Channel, ChannelConfig, Tag};
use pann_mpc_core::handshake::SessionParams;
use pann_mpc_core::Party;
use pann_protocols::{ConvSpec, Expander, LinearSpec, MatmulSpec, PolyRelu, ReluConfig, Request};

/// A fuzz target: its name (the file `fuzz/fuzz_targets/<name>.rs` and the
/// corpus `fuzz/corpus/<name>/`) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("frame", frame),
    ("hello", hello),
    ("public_model", public_model),
    ("session_request", session_request),
    ("dealer_seed", dealer_seed),
    ("dealer_material", dealer_material),
    ("linear_setup", linear_setup),
    ("card", card),
    ("safetensors", safetensors),
    ("png", png),
    ("cifar", cifar),
    ("idx", idx),
    ("idx_pair", idx_pair),
    ("onnx_model", onnx_model),
    ("conv_kernel", conv_kernel),
];

/// Largest frame payload the channel targets accept (small, so that the
/// length check is reachable).
pub const MAX_FRAME: usize = 4096;

/// Run `f` to completion on this thread's current-thread runtime (with a
/// time driver: every channel wait has a timeout).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime =
            tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a current-thread runtime");
    }
    RT.with(|rt| rt.block_on(f))
}

/// A channel whose peer "sent" exactly `bytes` and then closed; what we send
/// is discarded.
pub fn channel(bytes: &[u8], max_frame: usize) -> Channel {
    let cfg = ChannelConfig::default().with_max_frame(max_frame).with_timeout(Duration::from_secs(5));
    Channel::from_halves(Box::new(std::io::Cursor::new(bytes.to_vec())), Box::new(tokio::io::sink()), cfg)
}

/// The first byte selects options, the rest is the data.
fn split_first(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&sel, rest)) => (sel, rest),
        None => (0, data),
    }
}

/// Frames and tags (`recv_frame`, `recv_tagged`, `recv_tagged_max`,
/// `recv_ring`, `drain_until_abort`): up to eight
/// receives, the kind of each chosen by the selector, until the first error.
pub fn frame(data: &[u8]) {
    let (sel, stream) = split_first(data);
    let max_frame = 1 + (sel as usize & 0x0f) * (MAX_FRAME / 16);
    block_on(async {
        let mut ch = channel(stream, max_frame);
        for i in 0..8u8 {
            let res = match (sel >> 4).wrapping_add(i) % 8 {
                0 => ch.recv_frame().await.map(drop),
                1 => ch.recv_tagged(Tag::Bytes).await.map(drop),
                2 => ch.recv_tagged_max(Tag::Hello, 64 + 16 * i as usize).await.map(drop),
                3 => ch.recv_tagged(Tag::Abort).await.map(drop),
                4 => ch.recv_ring(1 + i as usize).await.map(drop),
                5 => ch.drain_until_abort().await.map(drop),
                6 => ch.recv_tagged_max(Tag::Bytes, i as usize).await.map(drop),
                _ => ch.recv_ring(0).await.map(drop),
            };
            if res.is_err() {
                break;
            }
        }
    });
}

/// The Hello body (`SessionParams::peek_version`, `decode`); what decodes
/// must encode to the same bytes.
pub fn hello(data: &[u8]) {
    let _ = SessionParams::peek_version(data);
    if let Ok(p) = SessionParams::decode(data) {
        assert_eq!(p.encode(), data, "a decoded Hello re-encodes to other bytes");
    }
}

/// The public model description the server sends to client and dealer.
pub fn public_model(data: &[u8]) {
    if let Ok(pm) = pann_engine::PublicModel::from_json(data) {
        let _ = pm.precision().to_string();
        let _ = pm.digest();
        // What the client and the dealer do next with a peer's model.
        let pm = Arc::new(pm);
        if let Ok(size) = pann_engine::MaterialSize::of(&pm) {
            let _ = size.session_bytes(2);
        }
        let _ = pann_engine::Plan::compile(pm, 1);
    }
}

/// The client's session request (JSON) to server and dealer.
pub fn session_request(data: &[u8]) {
    let _ = pann_engine::session::SessionRequest::decode(data);
}

/// The dealer's seed message (`recv_seed`), framed.
pub fn dealer_seed(data: &[u8]) {
    block_on(async {
        let mut ch = channel(data, MAX_FRAME);
        let _ = pann_protocols::dealer::recv_seed(&mut ch).await;
    });
}

/// Seed of the expander the material targets use (and the seed corpus was
/// dealt with).
pub const SEED1: [u8; 16] = [1; 16];

/// The ReLU program (alpha 4) whose material `dealer_material` receives.
pub fn relu_program() -> Arc<pann_protocols::Program> {
    static P: OnceLock<Arc<pann_protocols::Program>> = OnceLock::new();
    P.get_or_init(|| PolyRelu::new(ReluConfig::new(pann_approx::Alpha::MIN, 20)).expect("the alpha-4 ReLU compiles").program).clone()
}

/// The small linear layer the material and setup targets use when the
/// selector's top bit is clear, and a small convolution otherwise.
pub fn linear_spec(sel: u8) -> LinearSpec {
    let d = |shift: u8| 1 + (sel as usize >> shift & 3);
    if sel & 0x80 == 0 {
        LinearSpec::Matmul(MatmulSpec { m: d(0), k: d(2), n: d(4) })
    } else {
        LinearSpec::Conv(ConvSpec::dense(1, d(0), 4, 4, d(2), 3, 1 + (sel as usize >> 4 & 1), 1))
    }
}

/// The request `dealer_material` receives for selector `sel`: a ReLU program
/// on 1..=4 elements (bit 6 set) or a linear layer.
pub fn material_request(sel: u8) -> Request {
    if sel & 0x40 != 0 {
        Request::program(&relu_program(), 1 + (sel as usize & 3))
    } else {
        Request::Linear { layer: 0, spec: linear_spec(sel & 0xbf) }
    }
}

/// Party 1's material from the dealer (`receive_material`: fingerprint, then
/// chunked corrections).
pub fn dealer_material(data: &[u8]) {
    let (sel, stream) = split_first(data);
    let req = material_request(sel);
    block_on(async {
        let mut ch = channel(stream, MAX_FRAME);
        let mut expander = Expander::new(Party::Client, SEED1);
        let _ = pann_protocols::dealer::receive_material(&mut ch, &mut expander, &req).await;
    });
}

/// The client's side of a linear layer's setup (`setup_client`: E = W - A).
pub fn linear_setup(data: &[u8]) {
    let (sel, stream) = split_first(data);
    block_on(async {
        let mut ch = channel(stream, MAX_FRAME);
        let _ = pann_protocols::linear::setup_client(&mut ch, 0, linear_spec(sel)).await;
    });
}

/// A model card (JSON), parsed and checked.
pub fn card(data: &[u8]) {
    if let Ok(card) = pann_models::ModelCard::parse(data, Path::new("fuzz.card.json")) {
        let _ = card.site_alphas();
        let _ = card.deployed_mode();
    }
}

/// A safetensors file (header and tensors).
pub fn safetensors(data: &[u8]) {
    let _ = pann_models::model::read_safetensors(data);
}

/// A PNG, decoded for a 3- and a 1-channel network of 32x32 and of the size
/// the IHDR announces (when small).
pub fn png(data: &[u8]) {
    let path = Path::new("fuzz.png");
    let mut sizes = vec![(32, 32)];
    if data.len() >= 24 {
        let be = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]) as usize;
        let (w, h) = (be(16), be(20));
        if w <= 256 && h <= 256 && (w, h) != (32, 32) {
            sizes.push((w, h));
        }
    }
    for (w, h) in sizes {
        for c in [3, 1] {
            let _ = pann_models::image::decode_png(data, path, Shape::new(c, h, w));
        }
    }
}

/// CIFAR-10 binary records.
pub fn cifar(data: &[u8]) {
    let _ = pann_models::cifar::parse(data, Path::new("fuzz.bin"));
    // Also cut to whole records, so that the records themselves are reached.
    let whole = data.len() - data.len() % 3073;
    let _ = pann_models::cifar::parse(&data[..whole], Path::new("fuzz.bin"));
}

/// An IDX file, raw and through the gzip detection.
pub fn idx(data: &[u8]) {
    let path = Path::new("fuzz-images-idx3-ubyte");
    let _ = pann_models::idx::parse(data, path);
    if let Ok(bytes) = pann_models::idx::maybe_gunzip(data.to_vec(), path) {
        let _ = pann_models::idx::parse(&bytes, path);
    }
}

/// An IDX images file and its labels: a 2-byte little-endian length of the
/// images part (reduced modulo the rest), the images, the labels.
pub fn idx_pair(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let rest = &data[2..];
    let n = u16::from_le_bytes([data[0], data[1]]) as usize % (rest.len() + 1);
    let (images, labels) = rest.split_at(n);
    let _ = pann_models::idx::images_and_labels(Path::new("x-images-idx3-ubyte"), images, Path::new("x-labels-idx1-ubyte"), labels);
}

/// An ONNX model (protobuf), decoded, then what an importer reads of it:
/// every initializer's and tensor attribute's values, every attribute by
/// type; then the import itself (`pann import`), for 1 and 3 input channels.
pub fn onnx_model(data: &[u8]) {
    use pann_models::onnx::proto::{decode_model, AttrValue, TensorProto};
    let values = |t: &TensorProto| {
        let _ = (t.shape(), t.to_f64(), t.to_i64());
    };
    if let Ok(m) = decode_model(data) {
        let _ = m.opset_version("");
        m.graph.initializers.iter().for_each(values);
        for n in &m.graph.nodes {
            for a in &n.attributes {
                let _ = (n.attr_int(&a.name), n.attr_ints(&a.name), n.attr_float(&a.name), n.attr_floats(&a.name), n.attr_string(&a.name));
                if let AttrValue::Tensor(t) = &a.value {
                    values(t);
                }
            }
        }
        for c in [1, 3] {
            let spec = pann_models::InputSpec { mean: vec![0.0; c], std: vec![1.0; c] };
            let _ = pann_models::onnx::import::import(&m, &spec);
        }
    }
}

/// The ring convolution (im2col and a blocked product, tiled) against the
/// plain loop over the taps, on a small layer the bytes describe: stride,
/// padding, dilation and groups in every combination, including kernels
/// that read only padding. Any difference is a finding (a panic).
pub fn conv_kernel(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<6>() else { return };
    let v = |b: u8, n: u8| 1 + (b % n) as usize;
    let groups = v(head[0] >> 4, 2);
    let spec = ConvSpec {
        n: v(head[0], 2),
        c: groups * v(head[0] >> 1, 3),
        h: v(head[1], 6),
        w: v(head[1] >> 4, 6),
        o: groups * v(head[2], 3),
        kh: v(head[2] >> 2, 4),
        kw: v(head[2] >> 5, 4),
        stride: v(head[3], 3),
        pad: (head[3] >> 2) as usize % 5,
        dilation: v(head[3] >> 5, 3),
        groups,
    };
    if spec.validate().is_err() {
        return;
    }
    let value =
        |i: usize| rest.get(i % rest.len().max(1)).map_or(i as u64, |&b| (b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ head[4] as u64);
    let weights: Vec<u64> = (0..spec.weight_len()).map(value).collect();
    let input: Vec<u64> = (0..spec.input_len()).map(|i| value(i + 7 * head[5] as usize)).collect();
    let fast = pann_protocols::kernels::conv2d(&spec, &weights, &input).expect("a valid spec");
    assert_eq!(fast, pann_protocols::kernels::conv2d_naive(&spec, &weights, &input), "{spec:?}");
}
