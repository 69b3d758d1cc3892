use pann_mpc_core::{FixedPoint, Prg};
use pann_protocols::poly::normalized_components;
use pann_protocols::reference::run_program;
use pann_protocols::{PolyRelu, ReluConfig};
fn main() {
    let alpha: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(14);
    let b = 8.0;
    let cfg = ReluConfig { inv_bound: Some(1.0 / b), ..ReluConfig::new(alpha, 16) };
    let relu = PolyRelu::new(cfg).unwrap();
    let fp = FixedPoint::new(16).unwrap();
    let mut prg = Prg::from_seed([1; 16]);
    let xs: Vec<f64> = prg.gen(1 << 16).iter().map(|&r| (r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 * b - b).collect();
    let enc = fp.encode_slice(&xs).unwrap();
    let res = run_program(&relu.program, &[&enc]).unwrap();
    let mut worst = (0.0, 0usize);
    for (i, x) in xs.iter().enumerate() {
        let y = (res.outputs[0][i] as i64) as f64 / 2f64.powi(cfg.output_frac() as i32) * b / 2.0;
        let e = (y - relu.poly.relu(*x, b)).abs();
        if e > worst.0 { worst = (e, i); }
    }
    let i = worst.1;
    println!("worst fp err {} (units {}) at x = {} out_of_range {}", worst.0, worst.0 / (b / 65536.0), xs[i], res.out_of_range);
    let comps = normalized_components(&relu.poly);
    let mut y = xs[i] / b;
    for c in &comps { println!("  stage input {y}"); y = c.eval(y); }
    println!("  final q {y}");
    for (j, (o, step)) in res.opened.iter().zip(relu.program.opens()).enumerate() {
        println!("  open {j} round {} shift {} value {}", step.round, step.shift, (o[i] as i64) as f64 / 65536.0);
    }
}
