//! A small deterministic RNG (SplitMix64) for shuffling and augmentation.
//!
//! Why not `rand`: the trainer derives a fresh generator per epoch from
//! (seed, epoch), so a resumed run draws exactly the same batches as an
//! uninterrupted one without serialising generator state; SplitMix64 makes
//! that a one-liner and has no version churn.

/// SplitMix64: a 64-bit state advanced by a constant and mixed on output
/// (fast and reproducible, not cryptographic).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose state is `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The generator for one epoch of a run: independent of how many epochs
    /// ran in this process.
    pub fn for_epoch(seed: u64, epoch: usize, stream: u64) -> Self {
        let mut g = Self(seed ^ 0x9E37_79B9_7F4A_7C15u64.wrapping_mul((epoch as u64).wrapping_add(1)) ^ stream.rotate_left(32));
        g.next_u64();
        g
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n) (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Gamma(shape, 1) by Marsaglia-Tsang (with the shape < 1 boost).
    pub fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            let u = self.uniform().max(f64::MIN_POSITIVE);
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform().max(f64::MIN_POSITIVE);
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// Beta(a, a), the Mixup coefficient distribution.
    pub fn beta_symmetric(&mut self, a: f64) -> f64 {
        let x = self.gamma(a);
        let y = self.gamma(a);
        if x + y > 0.0 {
            x / (x + y)
        } else {
            0.5
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_mean_is_one_half() {
        let mut g = SplitMix64::new(7);
        let n = 20_000;
        let m: f64 = (0..n).map(|_| g.beta_symmetric(0.4)).sum::<f64>() / n as f64;
        assert!((m - 0.5).abs() < 0.02, "{m}");
    }

    #[test]
    fn epochs_are_reproducible() {
        let a: Vec<u64> = (0..4).map(|_| SplitMix64::for_epoch(1, 3, 0).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(SplitMix64::for_epoch(1, 3, 0).next_u64(), SplitMix64::for_epoch(1, 4, 0).next_u64());
    }
}
