//! One image through the f64 PANN and the exact fixed-point reference of the
//! secure computation, with everything that left its range, and the verdict
//! a client would give on the logits.
//!
//! `cargo run --release -p pann-engine --example range_check -- CARD.json IMAGES.bin FIRST [COUNT] [ALPHA]`
//!
//! e.g. `... -- models/assets/resnet20-alpha4.card.json ../shared/data/cifar-10-jpeg/test_batch.bin 3142`
//! (CIFAR-10 test image 3142, whose secure result with the alpha-4 card
//! wraps). ALPHA: a uniform alpha instead of the card's deployed precision.

use std::sync::Arc;

use pann_approx::Alpha;
use pann_engine::{run_plan, ClearBackend, Plan, PublicModel, SecureConfig, ServerWeights};
use pann_models::range::check_logits;
use pann_models::{ImageSet, LoadedModel, PlainExecutor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [card, data, first, rest @ ..] = &args[..] else {
        return Err("usage: range_check CARD.json IMAGES.bin FIRST [COUNT] [ALPHA]".into());
    };
    let first: usize = first.parse()?;
    let count: usize = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let alpha: Option<Alpha> = rest.get(1).map(|s| s.parse()).transpose()?;
    let m = LoadedModel::load(card)?;
    let set = ImageSet::read_file(data)?;
    let c = &m.card;
    let public = PublicModel::new(&m.model, &c.input, &c.relu_bounds, SecureConfig::new(alpha.unwrap_or(c.default_alpha)))?;
    let public = if alpha.is_none() { public.with_alphas(c.relu_alphas.clone())? } else { public };
    let public = public.with_logit_range(c.logit_range)?;
    let alphas = m.network.activation_sites().iter().map(|s| (s.to_string(), public.alpha_of(s))).collect();
    let pann = PlainExecutor::new(&m.model, pann_models::ReluMode::pann_mixed(alphas, c.relu_bounds.clone())?)?;
    let plan = Plan::compile(Arc::new(public), 1)?;
    let weights = ServerWeights::encode(&plan, &m.model)?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let classes = plan.network().output_shape().len();
    println!("card {card} (precision {}), logit range {:?}", plan.model.precision(), c.logit_range);
    let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(", ");
    for i in first..(first + count).min(set.len()) {
        let x = c.input.normalise(set.image(i));
        let f = pann.forward(&x)?;
        let mut clear = ClearBackend::new(&weights);
        let y = rt.block_on(run_plan(&plan, Some(&weights), &mut clear, plan.encode_input(&x)?, None))?;
        let logits = plan.decode_output(&y)[..classes].to_vec();
        println!("\nimage {i} (label {})", set.labels[i]);
        println!("  f64 PANN logits:             [{}]", fmt(&f.logits));
        println!("  fixed-point reference logits: [{}]", fmt(&logits));
        println!(
            "  reference: {} ReLU inputs beyond their bound, {} openings out of range, {} values wrapped",
            clear.beyond_bound, clear.out_of_range, clear.wrapped
        );
        for (label, st) in clear.steps.iter().filter(|(_, s)| s.beyond_bound + s.out_of_range + s.wrapped > 0) {
            println!(
                "    {label:<18} max |x/B| {:>8.4}  beyond bound {:>5}  openings out of range {:>5}  wrapped {:>5}",
                st.max_abs_t, st.beyond_bound, st.out_of_range, st.wrapped
            );
        }
        match check_logits(c.logit_range, &logits).reason() {
            Some(why) => println!("  client verdict: UNRELIABLE: {why}"),
            None if c.logit_range.is_none() => println!("  client verdict: the card has no logit range: nothing to judge against"),
            None => println!("  client verdict: plausible"),
        }
    }
    Ok(())
}
