//! Values of the PANN ReLU `x (1 + p(x / B)) / 2` as pann evaluates it
//! (`SignPoly::relu`, Chebyshev/Clenshaw, f64) on a grid, as JSON, so that
//! scripts/gpu/finetune_poly.py (the PyTorch fine-tuning replica) can be
//! checked against the Rust maths (`finetune_poly.py verify --rust-dump FILE`).
//!
//! ```text
//! cargo run --release -p pann-models --example sign_poly_dump -- [--alphas 4,5,6,9] [--bound 7.3] > dump.json
//! ```
use pann_approx::{Alpha, SignPoly};

fn main() {
    let mut alphas: Vec<Alpha> = [4, 5, 6, 9].map(|a| Alpha::new(a).unwrap()).to_vec();
    let mut bound = 7.3f64;
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        match f.as_str() {
            "--alphas" => {
                alphas =
                    it.next().expect("--alphas needs a value").split(',').map(|a| a.parse().unwrap_or_else(|e| panic!("{e}"))).collect()
            }
            "--bound" => bound = it.next().expect("--bound needs a value").parse().expect("bound"),
            other => panic!("unknown argument {other}"),
        }
    }
    let h = 1e-6;
    let mut entries = Vec::new();
    for a in alphas {
        let p = SignPoly::for_alpha(a);
        // 4001 points on [-1.05 B, 1.05 B] (a little past the bound, where the protocol still evaluates p).
        let xs: Vec<f64> = (0..=4000).map(|i| bound * (-1.05 + 2.1 * i as f64 / 4000.0)).collect();
        let f = |v: &Vec<f64>, d: f64| v.iter().map(|&x| p.relu(x + d, bound)).collect::<Vec<f64>>();
        entries.push(serde_json::json!({
            "alpha": a, "bound": bound, "degrees": p.degrees(), "x": xs,
            "relu": f(&xs, 0.0), "relu_plus_h": f(&xs, h), "relu_minus_h": f(&xs, -h),
        }));
    }
    println!("{}", serde_json::json!({ "h": h, "alphas": entries }));
}
