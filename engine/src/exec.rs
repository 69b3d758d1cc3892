//! One walker over a [`Plan`], three backends: the clear fixed-point
//! reference and each party's secure backend. Local steps (residual add,
//! shortcut, pooling) are the same code for clear values and for shares,
//! which is why the reference mirrors the secure computation step by step.

use std::sync::Arc;
use std::time::Instant;

use pann_mpc_core::ring::{self, R};
use pann_mpc_core::{Channel, Party};
use pann_protocols::kernels::{avg_pool_sum, global_pool_sum, LinearSpec};
use pann_protocols::ops::add_channel_bias;
use pann_protocols::reference::RefResult;
use pann_protocols::{linear_forward, run_program, LinearLayer, Material, Program, Request};
use serde::{Deserialize, Serialize};

use crate::plan::{max_pool_next_level, relu_chunk, Plan, ServerWeights, Step};
use crate::preprocessing::Preprocessing;
use pann_models::error::{ModelError, Result};
use pann_models::network::Shape;

/// A protocol error with the code the peers are told.
fn proto(e: pann_protocols::ProtocolError) -> ModelError {
    ModelError::Session { code: e.abort_code(), message: format!("secure computation: {e}") }
}

/// What differs between the reference and the two parties.
pub trait Backend {
    /// Whether this side adds public constants (biases): party 0, or the reference.
    fn adds_public(&self) -> bool;
    /// The linear layer `layer` (without bias) applied to this side's `x`.
    fn linear(&mut self, label: &str, layer: usize, spec: &LinearSpec, x: &[R]) -> impl std::future::Future<Output = Result<Vec<R>>>;
    /// A polynomial ReLU program applied to this side's `x`, which holds
    /// `x / B` at `input_scale` fractional bits.
    fn relu(&mut self, label: &str, program: &Arc<Program>, input_scale: u32, x: &[R])
        -> impl std::future::Future<Output = Result<Vec<R>>>;
    /// A max program (`2 max(a, b) / B`, see `pann_protocols::poly::max_program`)
    /// on this side's pairs `a`, `b`; `bound_ring` is the |a - b| (ring
    /// units) beyond which a pair exceeds the site's bound.
    fn max2(
        &mut self,
        label: &str,
        program: &Arc<Program>,
        bound_ring: f64,
        a: &[R],
        b: &[R],
    ) -> impl std::future::Future<Output = Result<Vec<R>>>;
    /// Called with the operands of a local step (residual add: `[a, b]`,
    /// pooling: `[x]`, an input of a gather raised to a higher scale by `c`:
    /// `[x, [c]]`) before it runs: the reference checks there that the
    /// step's exact result stays inside the ring. The parties do nothing.
    fn check_local(&mut self, _label: &str, _step: &Step, _operands: &[&[R]]) -> Result<()> {
        Ok(())
    }
}

/// Run `plan` on this side's input (shares, or clear values for the
/// reference); returns this side's output.
/// With `timings`, the wall time of every step is recorded (node name, seconds).
pub async fn run_plan<B: Backend>(
    plan: &Plan,
    biases: Option<&ServerWeights>,
    backend: &mut B,
    input: Vec<R>,
    mut timings: Option<&mut Vec<(String, f64)>>,
) -> Result<Vec<R>> {
    let n = plan.batch;
    let mut values: Vec<Option<Vec<R>>> = vec![None; plan.steps.len()];
    let mut remaining_reads = vec![0usize; plan.steps.len()];
    for node in &plan.network().nodes {
        for &j in &node.inputs {
            remaining_reads[j] += 1;
        }
    }
    let mut input = Some(input);
    for step in &plan.steps {
        let name = plan.network().nodes[step.out()].name.as_str();
        let t0 = std::time::Instant::now();
        let get = |values: &[Option<Vec<R>>], j: usize| -> Result<Vec<R>> {
            values[j].clone().ok_or_else(|| ModelError::Secure(format!("value {j} is not available at {name}")))
        };
        let out = match step {
            Step::Input { .. } => input.take().expect("node 0 is the only input"),
            Step::Linear { input, layer, spec, bias_plane, .. } => {
                let x = get(&values, *input)?;
                let mut y = backend.linear(name, *layer, spec, &x).await?;
                if let Some(b) = biases.and_then(|w| w.biases[*layer].as_ref()).filter(|_| backend.adds_public()) {
                    // Public constants are added by one side only: party 0, or the reference.
                    y = add_channel_bias(Party::Server, &y, b, *bias_plane).map_err(proto)?;
                }
                y
            }
            Step::Relu { input, program, .. } => {
                let x = get(&values, *input)?;
                backend.relu(name, program, plan.scale[*input], &x).await?
            }
            Step::Add { a, b, ca, cb, .. } => {
                let mut x = get(&values, *a)?;
                let y = values[*b].as_ref().ok_or_else(|| ModelError::Secure(format!("missing operand of {name}")))?;
                backend.check_local(name, step, &[&x, y])?;
                ring::scale_assign(&mut x, *ca);
                ring::add_scaled_assign(&mut x, *cb, y);
                x
            }
            Step::Gather { inputs, mults, .. } => {
                let node = &plan.network().nodes[step.out()];
                let shapes: Vec<Shape> = inputs.iter().map(|&j| plan.network().nodes[j].shape).collect();
                let map = node.op.operator().gather(&shapes).ok_or_else(|| ModelError::Secure(format!("{name} has no index map")))?;
                let mut xs = Vec::with_capacity(inputs.len());
                for (&j, &c) in inputs.iter().zip(mults) {
                    let mut x = get(&values, j)?;
                    if c != 1 {
                        backend.check_local(name, step, &[&x, &[c]])?;
                        ring::scale_assign(&mut x, c);
                    }
                    xs.push(x);
                }
                map.apply(&xs.iter().map(Vec::as_slice).collect::<Vec<_>>(), n)
            }
            Step::AvgPool { input, shape, kernel, stride, .. } => {
                let x = get(&values, *input)?;
                backend.check_local(name, step, &[&x])?;
                avg_pool_sum(&x, n, shape.c, shape.h, shape.w, *kernel, *stride).map_err(proto)?
            }
            Step::GlobalPool { input, shape, .. } => {
                let x = get(&values, *input)?;
                backend.check_local(name, step, &[&x])?;
                global_pool_sum(&x, n, shape.c, shape.h, shape.w).map_err(proto)?
            }
            Step::MaxPool { input, shape, window, first, rest, bound_ring, .. } => {
                let x = get(&values, *input)?;
                max_pool(backend, name, &x, n * shape.c, *shape, *window, (first, rest), *bound_ring).await?
            }
        };
        for &j in &plan.network().nodes[step.out()].inputs {
            remaining_reads[j] -= 1;
            if remaining_reads[j] == 0 {
                values[j] = None;
            }
        }
        values[step.out()] = Some(out);
        if let Some(t) = timings.as_mut() {
            t.push((name.to_string(), t0.elapsed().as_secs_f64()));
        }
    }
    values[plan.network().output].take().ok_or_else(|| ModelError::Secure("the output was never computed".into()))
}

/// Max pooling of `planes` planes of `shape.h x shape.w` (`[n, c, h, w]`):
/// each window's values are gathered, then reduced pairwise level by level
/// ([`max_pool_next_level`]): the pairs of a level, across every plane and
/// window, go through one call of the backend's max program (an odd value is
/// paired with itself; a window with one value left carries it after the
/// first level). The output is `[n, c, oh, ow]`.
#[allow(clippy::too_many_arguments)]
async fn max_pool<B: Backend>(
    backend: &mut B,
    label: &str,
    x: &[R],
    planes: usize,
    shape: Shape,
    window: (usize, usize, usize),
    (first, rest): (&Arc<Program>, &Arc<Program>),
    bound_ring: (f64, f64),
) -> Result<Vec<R>> {
    let (k, stride, pad) = window;
    let windows = pann_models::ops::pool_windows(shape.h, shape.w, k, stride, pad);
    let plane = shape.h * shape.w;
    let mut counts: Vec<usize> = windows.iter().map(Vec::len).collect();
    // The current values, plane by plane, window by window.
    let mut cur: Vec<R> = Vec::with_capacity(planes * counts.iter().sum::<usize>());
    for p in 0..planes {
        for win in &windows {
            cur.extend(win.iter().map(|&i| x[p * plane + i]));
        }
    }
    let mut level = 0;
    while let Some(pairs) = max_pool_next_level(&counts, level == 0) {
        let l = level;
        level += 1;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut at = 0;
        for _ in 0..planes {
            for (&c, &np) in counts.iter().zip(&pairs) {
                for k in 0..np {
                    a.push(cur[at + 2 * k]);
                    b.push(cur[at + (2 * k + 1).min(c - 1)]);
                }
                at += c;
            }
        }
        let (program, bound) = if l == 0 { (first, bound_ring.0) } else { (rest, bound_ring.1) };
        let maxed = backend.max2(label, program, bound, &a, &b).await?;
        let (mut next, mut at, mut m) = (Vec::with_capacity(cur.len().div_ceil(2)), 0, 0);
        for _ in 0..planes {
            for (&c, &np) in counts.iter().zip(&pairs) {
                if np == 0 {
                    next.push(cur[at]);
                } else {
                    next.extend_from_slice(&maxed[m..m + np]);
                    m += np;
                }
                at += c;
            }
        }
        for (c, &np) in counts.iter_mut().zip(&pairs) {
            if np > 0 {
                *c = np;
            }
        }
        cur = next;
    }
    Ok(cur)
}

/// What the reference saw at one step (by label: the node name; a ReLU
/// step's label is its site).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RangeStats {
    /// Elements the step produced (ReLU: inputs seen).
    pub elements: u64,
    /// ReLU sites: inputs with |x / B| > 1, beyond the calibrated bound.
    pub beyond_bound: u64,
    /// ReLU sites: the largest |x / B| seen (read from the ring value).
    pub max_abs_t: f64,
    /// Opened values whose exact value left the opening's range [-2^62, 2^62).
    pub out_of_range: u64,
    /// Values whose exact value left the ring's signed range [-2^63, 2^63).
    pub wrapped: u64,
}

/// The plaintext fixed-point reference: clear ring values, the same steps,
/// truncations as floor divisions (see `pann_protocols::reference`). Next to
/// the ring values it evaluates every step exactly over the integers and
/// counts, per step, the inputs beyond their bound (|x / B| > 1 at a ReLU),
/// the openings outside the secure opening's range and the values that
/// wrapped. A secure run is meaningful where all three stay 0; the first is a
/// warning (the approximation is off its domain), the other two mean the
/// secure result is garbage.
pub struct ClearBackend<'w> {
    /// The server's encoded weights (the reference sees everything in the clear).
    pub weights: &'w ServerWeights,
    /// Opened values outside the admissible range |v| < 2^62 (should stay 0), all steps.
    pub out_of_range: usize,
    /// Values whose exact value left the ring's signed range (should stay 0), all steps.
    pub wrapped: usize,
    /// ReLU inputs beyond their bound, all sites.
    pub beyond_bound: usize,
    /// Per step label, in first-seen order.
    pub steps: Vec<(String, RangeStats)>,
}

impl<'w> ClearBackend<'w> {
    /// A reference over `weights` with every count at 0.
    pub fn new(weights: &'w ServerWeights) -> Self {
        Self { weights, out_of_range: 0, wrapped: 0, beyond_bound: 0, steps: Vec::new() }
    }

    /// Whether no value left its range (inputs beyond their bound aside).
    pub fn in_range(&self) -> bool {
        self.out_of_range == 0 && self.wrapped == 0
    }

    fn stats(&mut self, label: &str) -> &mut RangeStats {
        let i = match self.steps.iter().position(|(l, _)| l == label) {
            Some(i) => i,
            None => {
                self.steps.push((label.to_string(), RangeStats::default()));
                self.steps.len() - 1
            }
        };
        &mut self.steps[i].1
    }

    /// Count an activation program's run at `label` (`elements` inputs, of
    /// which `beyond` past the bound, the largest |x / B| seen) and return its output.
    fn record_program(&mut self, label: &str, r: RefResult, elements: usize, beyond: usize, max_abs: f64) -> Result<Vec<R>> {
        self.out_of_range += r.out_of_range;
        self.wrapped += r.wrapped;
        self.beyond_bound += beyond;
        let st = self.stats(label);
        st.elements += elements as u64;
        st.beyond_bound += beyond as u64;
        st.max_abs_t = st.max_abs_t.max(max_abs);
        st.out_of_range += r.out_of_range as u64;
        st.wrapped += r.wrapped as u64;
        r.outputs.into_iter().next().ok_or_else(|| ModelError::Secure(format!("the program at {label} has no output")))
    }

    fn count_wraps(&mut self, label: &str, elements: usize, wraps: &[bool]) {
        let w = wraps.iter().filter(|&&b| b).count();
        self.wrapped += w;
        let st = self.stats(label);
        st.elements += elements as u64;
        st.wrapped += w as u64;
    }
}

impl Backend for ClearBackend<'_> {
    fn adds_public(&self) -> bool {
        true
    }
    async fn linear(&mut self, label: &str, layer: usize, spec: &LinearSpec, x: &[R]) -> Result<Vec<R>> {
        let (y, wraps) = pann_protocols::reference::linear_checked(spec, &self.weights.weights[layer], x).map_err(proto)?;
        self.count_wraps(label, y.len(), &wraps);
        Ok(y)
    }
    async fn relu(&mut self, label: &str, program: &Arc<Program>, input_scale: u32, x: &[R]) -> Result<Vec<R>> {
        let r = pann_protocols::reference::run_program(program, &[x]).map_err(proto)?;
        let one = 1u64.checked_shl(input_scale).unwrap_or(u64::MAX);
        let beyond = x.iter().filter(|&&v| (v as i64).unsigned_abs() > one).count();
        let max_abs = x.iter().map(|&v| (v as i64).unsigned_abs()).max().unwrap_or(0) as f64 / (input_scale as f64).exp2();
        self.record_program(label, r, x.len(), beyond, max_abs)
    }
    async fn max2(&mut self, label: &str, program: &Arc<Program>, bound_ring: f64, a: &[R], b: &[R]) -> Result<Vec<R>> {
        let r = pann_protocols::reference::run_program(program, &[a, b]).map_err(proto)?;
        let diff = |(&x, &y): (&R, &R)| ((x as i64) as f64 - (y as i64) as f64).abs();
        let beyond = a.iter().zip(b).filter(|p| diff(*p) > bound_ring).count();
        let max_abs = a.iter().zip(b).map(diff).fold(0.0, f64::max) / bound_ring;
        self.record_program(label, r, a.len(), beyond, max_abs)
    }
    fn check_local(&mut self, label: &str, step: &Step, operands: &[&[R]]) -> Result<()> {
        use pann_protocols::reference::{add_wraps, sum_wraps};
        let wraps = match (step, operands) {
            (Step::Add { ca, cb, .. }, [a, b]) => add_wraps(a, *ca, b, *cb),
            // An input raised to the common scale by its multiplier c: c x must stay in the ring.
            (Step::Gather { .. }, [x, [c]]) => add_wraps(x, *c, x, 0),
            (Step::AvgPool { shape, kernel, stride, .. }, [x]) => {
                let n = x.len() / shape.len().max(1);
                sum_wraps(x, |v| avg_pool_sum(v, n, shape.c, shape.h, shape.w, *kernel, *stride)).map_err(proto)?
            }
            (Step::GlobalPool { shape, .. }, [x]) => {
                let n = x.len() / shape.len().max(1);
                sum_wraps(x, |v| global_pool_sum(v, n, shape.c, shape.h, shape.w)).map_err(proto)?
            }
            _ => return Ok(()),
        };
        self.count_wraps(label, wraps.len(), &wraps);
        Ok(())
    }
}

/// A party's secure backend: the channel to the peer, its linear layers, and
/// its source of material, asked for each step's material as the step runs.
pub struct PartyBackend<'c, P: Preprocessing> {
    /// The channel to the other party.
    pub chan: &'c mut Channel,
    /// This side: [`Party::Server`] (party 0, adds the public constants) or [`Party::Client`].
    pub party: Party,
    /// This party's linear layers after setup, in [`Plan::linears`] order.
    pub layers: &'c [LinearLayer],
    /// Where each step's material comes from.
    pub source: &'c mut P,
    /// Time spent waiting for material (seconds), summed over the steps.
    pub waited_s: f64,
}

impl<'c, P: Preprocessing> PartyBackend<'c, P> {
    /// A backend for `party` with no time waited yet.
    pub fn new(chan: &'c mut Channel, party: Party, layers: &'c [LinearLayer], source: &'c mut P) -> Self {
        Self { chan, party, layers, source, waited_s: 0.0 }
    }

    async fn next(&mut self, req: &Request) -> Result<Material> {
        let t = Instant::now();
        let m = self.source.next(req).await.map_err(|e| ModelError::Session { code: e.abort_code(), message: format!("material: {e}") });
        self.waited_s += t.elapsed().as_secs_f64();
        m
    }
}

impl<P: Preprocessing> Backend for PartyBackend<'_, P> {
    fn adds_public(&self) -> bool {
        self.party == Party::Server
    }
    async fn linear(&mut self, label: &str, layer: usize, spec: &LinearSpec, x: &[R]) -> Result<Vec<R>> {
        self.chan.set_label(label);
        let mat = self.next(&Request::Linear { layer, spec: *spec }).await?.into_linear().map_err(proto)?;
        let l = self.layers.get(layer).ok_or_else(|| ModelError::Secure(format!("no linear layer {layer}")))?;
        linear_forward(self.chan, l, x, mat).await.map_err(proto)
    }
    async fn relu(&mut self, label: &str, program: &Arc<Program>, _input_scale: u32, x: &[R]) -> Result<Vec<R>> {
        self.chan.set_label(label);
        // Chunk by chunk, as the plan's requests are cut: a chunk's material
        // is fetched only when the previous chunk is done.
        let mut y = Vec::with_capacity(x.len());
        for part in x.chunks(relu_chunk(program)) {
            let mat = self.next(&Request::program(program, part.len())).await?.into_program().map_err(proto)?;
            let out = run_program(self.chan, self.party, program, &[part], mat).await.map_err(proto)?;
            y.extend(out.into_iter().next().ok_or_else(|| ModelError::Secure("ReLU program has no output".into()))?);
        }
        Ok(y)
    }
    async fn max2(&mut self, label: &str, program: &Arc<Program>, _bound_ring: f64, a: &[R], b: &[R]) -> Result<Vec<R>> {
        self.chan.set_label(label);
        // Cut as the plan's requests are (see `relu`).
        let c = relu_chunk(program);
        let mut y = Vec::with_capacity(a.len());
        for (pa, pb) in a.chunks(c).zip(b.chunks(c)) {
            let mat = self.next(&Request::program(program, pa.len())).await?.into_program().map_err(proto)?;
            let out = run_program(self.chan, self.party, program, &[pa, pb], mat).await.map_err(proto)?;
            y.extend(out.into_iter().next().ok_or_else(|| ModelError::Secure("max program has no output".into()))?);
        }
        Ok(y)
    }
}
