//! Tests that need ../shared/data (skipped, with a line on stderr, without it).

#[path = "../../models/tests/common/mod.rs"]
mod common;

/// CIFAR-10 (JPEG-derived) test image 3142 with the shipped alpha-4 card: a
/// ReLU input goes past the ring headroom (|x/B| 2.69 > 2.48 at
/// layer1.1.relu2), the secure result wraps (logits in the hundreds). The
/// exact fixed-point reference counts the wraps and the client's check
/// against the card's logit range flags the logits; image 3143 (negative
/// control) stays in range and passes.
#[test]
fn a_wrapped_result_is_flagged_and_a_normal_one_is_not() {
    use pann_engine::{run_plan, ClearBackend, Plan, PublicModel, SecureConfig, ServerWeights};
    use pann_models::range::check_logits;
    use std::sync::Arc;
    let Some(data) = common::shared_data() else { return };
    let m = pann_models::LoadedModel::load(common::models_dir().join("assets/resnet20-alpha4.card.json")).unwrap();
    let range = m.card.logit_range;
    assert!(range.is_some(), "the shipped alpha-4 card carries its logit range");
    let test = pann_models::ImageSet::read_file(data.join("cifar-10-jpeg/test_batch.bin")).unwrap();
    let public =
        PublicModel::new(&m.model, &m.card.input, &m.card.relu_bounds, SecureConfig::new(4)).unwrap().with_logit_range(range).unwrap();
    let plan = Plan::compile(Arc::new(public), 1).unwrap();
    let weights = ServerWeights::encode(&plan, &m.model).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for (i, bad) in [(3142, true), (3143, false)] {
        let x = plan.encode_input(&m.card.input.normalise(test.image(i))).unwrap();
        let mut clear = ClearBackend::new(&weights);
        let y = rt.block_on(run_plan(&plan, Some(&weights), &mut clear, x, None)).unwrap();
        let logits = plan.decode_output(&y);
        assert_eq!(!clear.in_range(), bad, "image {i}: {} openings out of range, {} wraps", clear.out_of_range, clear.wrapped);
        assert_eq!(check_logits(range, &logits).is_unreliable(), bad, "image {i}: logits {logits:?}, range {range:?}");
    }
}
