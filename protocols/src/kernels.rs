//! Ring kernels: 2-D convolution (NCHW) and matrix products over Z_2^64,
//! plain synchronous functions over slices, parallel with rayon over output
//! channels / rows. Wrapping arithmetic is exact in the ring, so these are the
//! same for shares, masks and plaintext.

use pann_mpc_core::ring::R;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{check_len, ProtocolError, Result};

/// A 2-D convolution: input `[n, c, h, w]`, weights `[o, c, kh, kw]`,
/// output `[n, o, ho, wo]`, zero padding `pad` on each side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConvSpec {
    /// Batch size (images).
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height, in pixels.
    pub h: usize,
    /// Input width, in pixels.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride, the same in both directions (at least 1).
    pub stride: usize,
    /// Zero padding on each of the four sides.
    pub pad: usize,
}

impl ConvSpec {
    /// Output height and width, `(h + 2 pad - kh) / stride + 1` and likewise
    /// for the width. Only for a spec that passes [`ConvSpec::validate`]
    /// (otherwise it underflows or divides by zero).
    pub fn out_hw(&self) -> (usize, usize) {
        ((self.h + 2 * self.pad - self.kh) / self.stride + 1, (self.w + 2 * self.pad - self.kw) / self.stride + 1)
    }

    /// Elements of the input, `n c h w` (unchecked product: callers bound
    /// the dimensions first).
    pub fn input_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Elements of the weights, `o c kh kw` (unchecked product).
    pub fn weight_len(&self) -> usize {
        self.o * self.c * self.kh * self.kw
    }

    /// Elements of the output, `n o ho wo` (unchecked product; only for a
    /// valid spec, see [`ConvSpec::out_hw`]).
    pub fn output_len(&self) -> usize {
        let (ho, wo) = self.out_hw();
        self.n * self.o * ho * wo
    }

    /// Check that stride and kernel are non-zero and that the kernel fits in
    /// the padded input ([`ProtocolError::Params`] otherwise). Sizes are not
    /// bounded here: that is the caller's (the model limits').
    pub fn validate(&self) -> Result<()> {
        if self.stride == 0 || self.kh == 0 || self.kw == 0 || self.h + 2 * self.pad < self.kh || self.w + 2 * self.pad < self.kw {
            return Err(ProtocolError::Params(format!("invalid convolution {self:?}")));
        }
        Ok(())
    }
}

/// A matrix product `x [m, k] * W^T` with `W [n, k]` (a fully connected layer
/// on a batch of `m` rows): output `[m, n]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MatmulSpec {
    /// Rows of `x` (the batch).
    pub m: usize,
    /// Inner dimension: input features.
    pub k: usize,
    /// Rows of `W`: output features.
    pub n: usize,
}

/// A linear layer whose weights the server holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LinearSpec {
    /// A 2-D convolution (NCHW).
    Conv(ConvSpec),
    /// A fully connected layer, `x W^T`.
    Matmul(MatmulSpec),
}

impl LinearSpec {
    /// Elements of the input (unchecked product).
    pub fn input_len(&self) -> usize {
        match self {
            LinearSpec::Conv(c) => c.input_len(),
            LinearSpec::Matmul(m) => m.m * m.k,
        }
    }

    /// Elements of the weights (unchecked product).
    pub fn weight_len(&self) -> usize {
        match self {
            LinearSpec::Conv(c) => c.weight_len(),
            LinearSpec::Matmul(m) => m.n * m.k,
        }
    }

    /// Elements of the output (unchecked product; a convolution must be valid).
    pub fn output_len(&self) -> usize {
        match self {
            LinearSpec::Conv(c) => c.output_len(),
            LinearSpec::Matmul(m) => m.m * m.n,
        }
    }

    /// Check the shape: a valid convolution, or a matrix product with no
    /// empty dimension ([`ProtocolError::Params`] otherwise).
    pub fn validate(&self) -> Result<()> {
        match self {
            LinearSpec::Conv(c) => c.validate(),
            LinearSpec::Matmul(m) if m.m == 0 || m.k == 0 || m.n == 0 => Err(ProtocolError::Params(format!("empty matrix product {m:?}"))),
            _ => Ok(()),
        }
    }

    /// `weights (*) input` in the ring.
    pub fn apply(&self, weights: &[R], input: &[R]) -> Result<Vec<R>> {
        match self {
            LinearSpec::Conv(c) => conv2d(c, weights, input),
            LinearSpec::Matmul(m) => matmul_nt(m, input, weights),
        }
    }
}

/// Ring convolution, NCHW. Parallel over (image, output channel).
pub fn conv2d(s: &ConvSpec, weights: &[R], input: &[R]) -> Result<Vec<R>> {
    s.validate()?;
    check_len("convolution weights", s.weight_len(), weights.len())?;
    check_len("convolution input", s.input_len(), input.len())?;
    let (ho, wo) = s.out_hw();
    let mut out = vec![0u64; s.output_len()];
    let plane_in = s.h * s.w;
    let plane_out = ho * wo;
    let ksz = s.c * s.kh * s.kw;
    out.par_chunks_mut(plane_out).enumerate().for_each(|(idx, op)| {
        let (img, oc) = (idx / s.o, idx % s.o);
        let wrow = &weights[oc * ksz..(oc + 1) * ksz];
        let xin = &input[img * s.c * plane_in..(img + 1) * s.c * plane_in];
        for ci in 0..s.c {
            let xp = &xin[ci * plane_in..(ci + 1) * plane_in];
            for ky in 0..s.kh {
                for kx in 0..s.kw {
                    let wv = wrow[(ci * s.kh + ky) * s.kw + kx];
                    if wv == 0 {
                        continue;
                    }
                    for oy in 0..ho {
                        let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                        if iy < 0 || iy >= s.h as isize {
                            continue;
                        }
                        let row = &xp[iy as usize * s.w..(iy as usize + 1) * s.w];
                        let orow = &mut op[oy * wo..(oy + 1) * wo];
                        // valid ox: 0 <= ox*stride + kx - pad < w
                        let lo = if kx >= s.pad { 0 } else { (s.pad - kx).div_ceil(s.stride) };
                        let hi_excl = {
                            // ox*stride + kx - pad <= w - 1  => ox <= (w - 1 + pad - kx) / stride
                            let num = s.w as isize - 1 + s.pad as isize - kx as isize;
                            if num < 0 {
                                0
                            } else {
                                (num as usize / s.stride + 1).min(wo)
                            }
                        };
                        if s.stride == 1 {
                            let off = lo + kx - s.pad;
                            for (o, &x) in orow[lo..hi_excl].iter_mut().zip(&row[off..off + (hi_excl.saturating_sub(lo))]) {
                                *o = o.wrapping_add(wv.wrapping_mul(x));
                            }
                        } else {
                            for (ox, o) in orow.iter_mut().enumerate().take(hi_excl).skip(lo) {
                                let ix = ox * s.stride + kx - s.pad;
                                *o = o.wrapping_add(wv.wrapping_mul(row[ix]));
                            }
                        }
                    }
                }
            }
        }
    });
    Ok(out)
}

/// `x [m, k] * w[n, k]^T -> [m, n]`, parallel over rows.
pub fn matmul_nt(s: &MatmulSpec, x: &[R], w: &[R]) -> Result<Vec<R>> {
    check_len("matrix product input", s.m * s.k, x.len())?;
    check_len("matrix product weights", s.n * s.k, w.len())?;
    let mut out = vec![0u64; s.m * s.n];
    out.par_chunks_mut(s.n).enumerate().for_each(|(i, orow)| {
        let xr = &x[i * s.k..(i + 1) * s.k];
        for (j, o) in orow.iter_mut().enumerate() {
            let wr = &w[j * s.k..(j + 1) * s.k];
            let mut acc = 0u64;
            for (a, b) in xr.iter().zip(wr) {
                acc = acc.wrapping_add(a.wrapping_mul(*b));
            }
            *o = acc;
        }
    });
    Ok(out)
}

/// Naive reference convolution (for tests of the fast kernel).
pub fn conv2d_naive(s: &ConvSpec, weights: &[R], input: &[R]) -> Vec<R> {
    let (ho, wo) = s.out_hw();
    let mut out = vec![0u64; s.output_len()];
    for img in 0..s.n {
        for oc in 0..s.o {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = 0u64;
                    for ci in 0..s.c {
                        for ky in 0..s.kh {
                            for kx in 0..s.kw {
                                let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                                let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                                if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                    continue;
                                }
                                let x = input[((img * s.c + ci) * s.h + iy as usize) * s.w + ix as usize];
                                let w = weights[((oc * s.c + ci) * s.kh + ky) * s.kw + kx];
                                acc = acc.wrapping_add(w.wrapping_mul(x));
                            }
                        }
                    }
                    out[((img * s.o + oc) * ho + oy) * wo + ox] = acc;
                }
            }
        }
    }
    out
}

/// Average-pooling *sum*: the sum over each `k x k` window with stride
/// `stride` of an `[n, c, h, w]` tensor (no padding). The division by `k^2` is
/// public and folded by the caller into a later scale (or a public scalar
/// multiplication), so pooling itself is exact and free.
pub fn avg_pool_sum(x: &[R], n: usize, c: usize, h: usize, w: usize, k: usize, stride: usize) -> Result<Vec<R>> {
    check_len("pooling input", n * c * h * w, x.len())?;
    if k == 0 || stride == 0 || k > h || k > w {
        return Err(ProtocolError::Params(format!("invalid pooling window {k} stride {stride} on {h}x{w}")));
    }
    let (ho, wo) = ((h - k) / stride + 1, (w - k) / stride + 1);
    let mut out = vec![0u64; n * c * ho * wo];
    for p in 0..n * c {
        let xp = &x[p * h * w..(p + 1) * h * w];
        for oy in 0..ho {
            for ox in 0..wo {
                let mut acc = 0u64;
                for dy in 0..k {
                    for dx in 0..k {
                        acc = acc.wrapping_add(xp[(oy * stride + dy) * w + ox * stride + dx]);
                    }
                }
                out[(p * ho + oy) * wo + ox] = acc;
            }
        }
    }
    Ok(out)
}

/// Global average-pooling *sum*: per (image, channel), the sum over the
/// `h x w` plane; divide by `h w` publicly (folded into the next layer).
pub fn global_pool_sum(x: &[R], n: usize, c: usize, h: usize, w: usize) -> Result<Vec<R>> {
    check_len("global pooling input", n * c * h * w, x.len())?;
    Ok(x.chunks_exact(h * w).map(|p| p.iter().fold(0u64, |a, &b| a.wrapping_add(b))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pann_mpc_core::Prg;

    #[test]
    fn fast_conv_matches_naive() {
        let mut prg = Prg::from_seed([9; 16]);
        for &(c, h, w, o, k, stride, pad) in
            &[(3, 8, 8, 4, 3, 1, 1), (2, 7, 9, 3, 3, 2, 1), (4, 6, 6, 2, 1, 2, 0), (1, 5, 5, 2, 5, 1, 2), (2, 9, 7, 3, 3, 3, 0)]
        {
            let s = ConvSpec { n: 2, c, h, w, o, kh: k, kw: k, stride, pad };
            let wts = prg.gen(s.weight_len());
            let x = prg.gen(s.input_len());
            assert_eq!(conv2d(&s, &wts, &x).unwrap(), conv2d_naive(&s, &wts, &x), "{s:?}");
        }
    }

    #[test]
    fn matmul_and_pooling() {
        let s = MatmulSpec { m: 2, k: 3, n: 2 };
        let x = [1, 2, 3, 4, 5, 6];
        let w = [1, 0, 1, 0, 1, 0];
        assert_eq!(matmul_nt(&s, &x, &w).unwrap(), vec![4, 2, 10, 5]);
        let x: Vec<u64> = (0..16).collect();
        assert_eq!(avg_pool_sum(&x, 1, 1, 4, 4, 2, 2).unwrap(), vec![10, 18, 42, 50]);
        assert_eq!(global_pool_sum(&x, 1, 1, 4, 4).unwrap(), vec![120]);
        assert!(avg_pool_sum(&x, 1, 1, 4, 4, 5, 1).is_err());
        assert!(matmul_nt(&s, &x[..5], &w).is_err());
    }
}
