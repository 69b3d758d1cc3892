//! Ring kernels: 2-D convolution (NCHW) and matrix products over Z_2^64,
//! plain synchronous functions over slices, parallel with rayon over output
//! channels / rows. Wrapping arithmetic is exact in the ring, so these are the
//! same for shares, masks and plaintext.

use pann_mpc_core::ring::R;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{check_len, ProtocolError, Result};

/// A 2-D convolution: input `[n, c, h, w]`, weights `[o, c / groups, kh, kw]`,
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
    /// Spacing between kernel taps (1: dense); the kernel spans
    /// `dilation (k - 1) + 1` pixels.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub dilation: usize,
    /// Channel groups: each group of `c / groups` input channels makes its
    /// `o / groups` output channels (`groups == c`: depthwise).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub groups: usize,
}

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

impl ConvSpec {
    /// A dense convolution (no dilation, one group) with a square kernel.
    #[allow(clippy::too_many_arguments)]
    pub fn dense(n: usize, c: usize, h: usize, w: usize, o: usize, k: usize, stride: usize, pad: usize) -> Self {
        Self { n, c, h, w, o, kh: k, kw: k, stride, pad, dilation: 1, groups: 1 }
    }

    /// Output height and width, `(h + 2 pad - span) / stride + 1` with
    /// `span = dilation (kh - 1) + 1`, and likewise for the width. Only for a
    /// spec that passes [`ConvSpec::validate`] (otherwise it underflows or
    /// divides by zero).
    pub fn out_hw(&self) -> (usize, usize) {
        let (sh, sw) = (self.dilation * (self.kh - 1) + 1, self.dilation * (self.kw - 1) + 1);
        ((self.h + 2 * self.pad - sh) / self.stride + 1, (self.w + 2 * self.pad - sw) / self.stride + 1)
    }

    /// Elements of the input, `n c h w` (unchecked product: callers bound
    /// the dimensions first).
    pub fn input_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Elements of the weights, `o (c / groups) kh kw` (unchecked product).
    pub fn weight_len(&self) -> usize {
        self.o * (self.c / self.groups.max(1)) * self.kh * self.kw
    }

    /// Elements of the output, `n o ho wo` (unchecked product; only for a
    /// valid spec, see [`ConvSpec::out_hw`]).
    pub fn output_len(&self) -> usize {
        let (ho, wo) = self.out_hw();
        self.n * self.o * ho * wo
    }

    /// Check that stride, kernel, dilation and groups are non-zero, that the
    /// groups divide both channel counts and that the kernel fits in the
    /// padded input ([`ProtocolError::Params`] otherwise). Sizes are not
    /// bounded here: that is the caller's (the model limits').
    pub fn validate(&self) -> Result<()> {
        let positive = self.stride > 0 && self.kh > 0 && self.kw > 0 && self.dilation > 0 && self.groups > 0;
        if !positive || !self.c.is_multiple_of(self.groups) || !self.o.is_multiple_of(self.groups) {
            return Err(ProtocolError::Params(format!("invalid convolution {self:?}")));
        }
        let span = |k: usize| self.dilation.checked_mul(k - 1).and_then(|v| v.checked_add(1));
        match (span(self.kh), span(self.kw)) {
            (Some(sh), Some(sw)) if self.h + 2 * self.pad >= sh && self.w + 2 * self.pad >= sw => Ok(()),
            _ => Err(ProtocolError::Params(format!("invalid convolution {self:?}"))),
        }
    }

    /// The input position (row or column) that output position `o` reads
    /// through kernel tap `k` along an axis of length `len`; None in the padding.
    fn tap(&self, o: usize, k: usize, len: usize) -> Option<usize> {
        (o * self.stride + k * self.dilation).checked_sub(self.pad).filter(|&i| i < len)
    }

    /// The input row read by output row `oy` through kernel row `ky` (None: padding).
    pub fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        self.tap(oy, ky, self.h)
    }

    /// The input column read by output column `ox` through kernel column `kx` (None: padding).
    pub fn input_col(&self, ox: usize, kx: usize) -> Option<usize> {
        self.tap(ox, kx, self.w)
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

/// The numbers the kernels compute on: reals (the f64 executor) and
/// Z_2^64 (shares, masks and the fixed-point reference, wrapping). The index
/// logic of convolution and pooling is written once, over this trait.
pub trait Scalar: Copy + Default + Send + Sync + 'static {
    /// `self + o` (wrapping in the ring).
    fn add(self, o: Self) -> Self;
    /// `self * o` (wrapping in the ring).
    fn mul(self, o: Self) -> Self;
}

impl Scalar for f64 {
    fn add(self, o: Self) -> Self {
        self + o
    }
    fn mul(self, o: Self) -> Self {
        self * o
    }
}

impl Scalar for R {
    fn add(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
    fn mul(self, o: Self) -> Self {
        self.wrapping_mul(o)
    }
}

/// Most elements of the column buffer of one convolution (16 MiB of ring
/// elements), unless one input channel's taps for one output row need more
/// (`kh kw wo`, at most 2^22 within the model limits): the unfolding is
/// tiled over input channels and output rows to stay within it, since a
/// peer's model decides the layer's shape.
pub const IM2COL_MAX_ELEMENTS: usize = 1 << 21;

/// The tile a convolution unfolds at once: `(channels, output rows)` per
/// tile, and the column buffer's elements (0 for a dense 1x1 convolution,
/// which needs no buffer).
pub fn conv_tile(s: &ConvSpec) -> (usize, usize, usize) {
    let (ho, wo) = s.out_hw();
    let cg = s.c / s.groups.max(1);
    if s.kh == 1 && s.kw == 1 && s.stride == 1 && s.pad == 0 {
        return (cg, ho, 0);
    }
    let per_channel_row = (s.kh * s.kw * wo).max(1);
    let channels = (IM2COL_MAX_ELEMENTS / per_channel_row).clamp(1, cg.max(1));
    let rows = (IM2COL_MAX_ELEMENTS / (channels * per_channel_row)).clamp(1, ho.max(1));
    (channels, rows, channels * rows * per_channel_row)
}

/// Unfold input channels `chans` (of the group's planes `x`) for output rows
/// `rows` into columns `[len(chans) kh kw][len(rows) wo]` (zero where a tap
/// falls in the padding).
pub fn im2col<T: Scalar>(s: &ConvSpec, x: &[T], chans: std::ops::Range<usize>, rows: std::ops::Range<usize>, col: &mut [T]) {
    let (_, wo) = s.out_hw();
    let p = rows.len() * wo;
    debug_assert_eq!(col.len(), chans.len() * s.kh * s.kw * p);
    for (cj, ci) in chans.enumerate() {
        let plane = &x[ci * s.h * s.w..(ci + 1) * s.h * s.w];
        for ky in 0..s.kh {
            for kx in 0..s.kw {
                let row = &mut col[((cj * s.kh + ky) * s.kw + kx) * p..][..p];
                // The output columns whose tap is inside the input: a contiguous range.
                let inside = |ox: &usize| s.input_col(*ox, kx).is_some();
                let lo = (0..wo).find(inside).unwrap_or(wo);
                let hi = (lo..wo).rev().find(inside).map_or(lo, |v| v + 1);
                for (r, oy) in rows.clone().enumerate() {
                    let dst = &mut row[r * wo..(r + 1) * wo];
                    let Some(iy) = s.input_row(oy, ky) else {
                        dst.fill(T::default());
                        continue;
                    };
                    dst[..lo].fill(T::default());
                    dst[hi..].fill(T::default());
                    if lo == hi {
                        // This kernel column reads only padding (an input narrower than the padding).
                        continue;
                    }
                    let src = &plane[iy * s.w..(iy + 1) * s.w];
                    let first = lo * s.stride + kx * s.dilation - s.pad;
                    if s.stride == 1 {
                        dst[lo..hi].copy_from_slice(&src[first..first + (hi - lo)]);
                    } else {
                        for (j, d) in dst[lo..hi].iter_mut().enumerate() {
                            *d = src[first + j * s.stride];
                        }
                    }
                }
            }
        }
    }
}

/// `out[r][c0 + j] += sum_k a[r][k] * b[k][j]` for `r < m`, `j < n`: `a` has
/// rows of `lda` (the first `kk` used), `b` is `kk x n`, `out` has rows of
/// `ldo` (columns `c0..c0 + n` written). Four output rows share each pass
/// over a row of `b`, so `b` is streamed m/4 times and the inner loop is a
/// vectorisable 4-way multiply-add; blocks of four rows run in parallel.
/// Each output's sum runs over `k` in order, so splitting `k` into blocks
/// done one after the other adds in the same order.
#[allow(clippy::too_many_arguments)]
pub fn gemm_acc<T: Scalar>(a: &[T], lda: usize, b: &[T], out: &mut [T], ldo: usize, c0: usize, m: usize, kk: usize, n: usize) {
    debug_assert!(m == 0 || a.len() >= (m - 1) * lda + kk);
    debug_assert_eq!(b.len(), kk * n);
    debug_assert!(m == 0 || out.len() >= (m - 1) * ldo + c0 + n);
    if n == 0 || m == 0 {
        return;
    }
    const NB: usize = 256; // column block: 4 output rows of NB values stay in L1
    out[..m * ldo].par_chunks_mut(4 * ldo).enumerate().for_each(|(blk, o)| {
        let r = 4 * blk;
        let arow = |i: usize| &a[(r + i) * lda..][..kk];
        if o.len() < 4 * ldo {
            for (i, orow) in o.chunks_mut(ldo).enumerate() {
                let orow = &mut orow[c0..c0 + n];
                for (k, &w) in arow(i).iter().enumerate() {
                    for (x, &bv) in orow.iter_mut().zip(&b[k * n..(k + 1) * n]) {
                        *x = x.add(w.mul(bv));
                    }
                }
            }
            return;
        }
        let (o0, rest) = o.split_at_mut(ldo);
        let (o1, rest) = rest.split_at_mut(ldo);
        let (o2, o3) = rest.split_at_mut(ldo);
        let (a0, a1, a2, a3) = (arow(0), arow(1), arow(2), arow(3));
        let mut j0 = 0;
        while j0 < n {
            let j1 = (j0 + NB).min(n);
            let cols = c0 + j0..c0 + j1;
            let (o0, o1, o2, o3) = (&mut o0[cols.clone()], &mut o1[cols.clone()], &mut o2[cols.clone()], &mut o3[cols]);
            for k in 0..kk {
                let (w0, w1, w2, w3) = (a0[k], a1[k], a2[k], a3[k]);
                let brow = &b[k * n + j0..k * n + j1];
                for ((((&bv, x0), x1), x2), x3) in brow.iter().zip(o0.iter_mut()).zip(o1.iter_mut()).zip(o2.iter_mut()).zip(o3.iter_mut()) {
                    *x0 = x0.add(w0.mul(bv));
                    *x1 = x1.add(w1.mul(bv));
                    *x2 = x2.add(w2.mul(bv));
                    *x3 = x3.add(w3.mul(bv));
                }
            }
            j0 = j1;
        }
    });
}

/// 2-D convolution, NCHW, by im2col and a blocked product per image and
/// group (the columns are the input itself for a dense 1x1 convolution).
pub fn conv2d<T: Scalar>(s: &ConvSpec, weights: &[T], input: &[T]) -> Result<Vec<T>> {
    s.validate()?;
    let mut out = vec![T::default(); s.output_len()];
    conv2d_acc(s, weights, input, &mut out)?;
    Ok(out)
}

/// [`conv2d`], added to `out` (which may hold a bias: the sums then start
/// from it, as a plain loop over the taps would). The columns are unfolded
/// in tiles of input channels and output rows ([`conv_tile`]), so the
/// buffer stays within [`IM2COL_MAX_ELEMENTS`] whatever the layer's size.
pub fn conv2d_acc<T: Scalar>(s: &ConvSpec, weights: &[T], input: &[T], out: &mut [T]) -> Result<()> {
    s.validate()?;
    check_len("convolution weights", s.weight_len(), weights.len())?;
    check_len("convolution input", s.input_len(), input.len())?;
    check_len("convolution output", s.output_len(), out.len())?;
    let (ho, wo) = s.out_hw();
    let p = ho * wo;
    let (cg, og) = (s.c / s.groups, s.o / s.groups);
    let (taps, kk) = (s.kh * s.kw, cg * s.kh * s.kw);
    let (tile_c, tile_r, buffer) = conv_tile(s);
    let mut col = Vec::new();
    for (img, out_img) in out.chunks_exact_mut(s.o * p).enumerate() {
        let x_img = &input[img * s.c * s.h * s.w..][..s.c * s.h * s.w];
        for g in 0..s.groups {
            let xg = &x_img[g * cg * s.h * s.w..][..cg * s.h * s.w];
            let wg = &weights[g * og * kk..][..og * kk];
            let og_out = &mut out_img[g * og * p..][..og * p];
            if buffer == 0 {
                gemm_acc(wg, kk, xg, og_out, p, 0, og, kk, p);
                continue;
            }
            for c0 in (0..cg).step_by(tile_c) {
                let chans = c0..(c0 + tile_c).min(cg);
                for r0 in (0..ho).step_by(tile_r) {
                    let rows = r0..(r0 + tile_r).min(ho);
                    let n = rows.len() * wo;
                    col.resize(chans.len() * taps * n, T::default());
                    im2col(s, xg, chans.clone(), rows, &mut col);
                    gemm_acc(&wg[c0 * taps..], kk, &col, og_out, p, r0 * wo, og, chans.len() * taps, n);
                }
            }
        }
    }
    Ok(())
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

/// Naive reference convolution (for tests of the fast kernel): every output
/// as the plain sum over its taps, written without the fast kernel's helpers.
pub fn conv2d_naive(s: &ConvSpec, weights: &[R], input: &[R]) -> Vec<R> {
    let (ho, wo) = s.out_hw();
    let (cg, og) = (s.c / s.groups, s.o / s.groups);
    let mut out = vec![0u64; s.output_len()];
    for img in 0..s.n {
        for oc in 0..s.o {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = 0u64;
                    for cj in 0..cg {
                        let ci = (oc / og) * cg + cj;
                        for ky in 0..s.kh {
                            for kx in 0..s.kw {
                                let iy = (oy * s.stride + ky * s.dilation) as isize - s.pad as isize;
                                let ix = (ox * s.stride + kx * s.dilation) as isize - s.pad as isize;
                                if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                    continue;
                                }
                                let x = input[((img * s.c + ci) * s.h + iy as usize) * s.w + ix as usize];
                                let w = weights[((oc * cg + cj) * s.kh + ky) * s.kw + kx];
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

/// The sum over each `k x k` window with stride `stride` of an
/// `[n, c, h, w]` tensor (no padding): average pooling before its division,
/// which the f64 executor applies and the secure one folds into a later
/// scale, so that pooling on shares is exact and free.
pub fn avg_pool_sum<T: Scalar>(x: &[T], n: usize, c: usize, h: usize, w: usize, k: usize, stride: usize) -> Result<Vec<T>> {
    check_len("pooling input", n * c * h * w, x.len())?;
    if k == 0 || stride == 0 || k > h || k > w {
        return Err(ProtocolError::Params(format!("invalid pooling window {k} stride {stride} on {h}x{w}")));
    }
    let (ho, wo) = ((h - k) / stride + 1, (w - k) / stride + 1);
    let mut out = Vec::with_capacity(n * c * ho * wo);
    for xp in x.chunks_exact(h * w) {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut acc = T::default();
                for dy in 0..k {
                    for dx in 0..k {
                        acc = acc.add(xp[(oy * stride + dy) * w + ox * stride + dx]);
                    }
                }
                out.push(acc);
            }
        }
    }
    Ok(out)
}

/// Per (image, channel), the sum over the `h x w` plane: global average
/// pooling before its division (see [`avg_pool_sum`]).
pub fn global_pool_sum<T: Scalar>(x: &[T], n: usize, c: usize, h: usize, w: usize) -> Result<Vec<T>> {
    check_len("global pooling input", n * c * h * w, x.len())?;
    Ok(x.chunks_exact(h * w).map(|p| p.iter().fold(T::default(), |a, &b| a.add(b))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pann_mpc_core::Prg;

    #[test]
    fn fast_conv_matches_naive() {
        let mut prg = Prg::from_seed([9; 16]);
        let cases = [
            (3, 8, 8, 4, 3, 1, 1, 1, 1),
            (2, 7, 9, 3, 3, 2, 1, 1, 1),
            (4, 6, 6, 2, 1, 2, 0, 1, 1),
            (1, 5, 5, 2, 5, 1, 2, 1, 1),
            (2, 9, 7, 3, 3, 3, 0, 1, 1),
            (4, 9, 9, 4, 3, 1, 1, 1, 4),  // depthwise
            (6, 10, 8, 4, 3, 1, 2, 2, 2), // dilated, grouped
            (4, 7, 7, 8, 1, 1, 0, 1, 2),  // 1x1, grouped
            (3, 9, 9, 5, 3, 2, 2, 3, 1),  // dilated, strided
            (3, 6, 6, 6, 1, 1, 0, 1, 1),  // 1x1 without columns
            (2, 4, 1, 3, 3, 1, 1, 1, 1),  // one column: the kernel's outer columns read only padding
            (1, 5, 5, 2, 3, 1, 4, 1, 1),  // padding wider than the kernel: whole rows and columns of padding
            (2, 6, 2, 2, 3, 1, 2, 2, 1),  // dilated taps that skip the whole input
        ];
        for &(c, h, w, o, k, stride, pad, dilation, groups) in &cases {
            let s = ConvSpec { dilation, groups, ..ConvSpec::dense(2, c, h, w, o, k, stride, pad) };
            let wts = prg.gen(s.weight_len());
            let x = prg.gen(s.input_len());
            assert_eq!(conv2d(&s, &wts, &x).unwrap(), conv2d_naive(&s, &wts, &x), "{s:?}");
        }
    }

    #[test]
    fn large_layers_are_unfolded_in_bounded_tiles_with_the_same_result() {
        let mut prg = Prg::from_seed([5; 16]);
        // Tiled over output rows, then over input channels too.
        for (s, by_channels) in [(ConvSpec::dense(1, 64, 64, 64, 2, 5, 1, 2), false), (ConvSpec::dense(1, 64, 64, 64, 1, 32, 1, 16), true)]
        {
            let (tile_c, tile_r, buffer) = conv_tile(&s);
            let (ho, _) = s.out_hw();
            assert!(tile_r < ho && (tile_c < s.c) == by_channels, "{s:?}: tiles of {tile_c} channels x {tile_r} rows");
            assert!(buffer <= IM2COL_MAX_ELEMENTS);
            let (w, x) = (prg.gen(s.weight_len()), prg.gen(s.input_len()));
            assert_eq!(conv2d(&s, &w, &x).unwrap(), conv2d_naive(&s, &w, &x), "{s:?}");
        }
        // A peer's huge layer (16,384 channels of 1 x 256, kernel 32, padding 32) would need
        // 1.3 TB of columns at once; its tiles stay within the cap.
        let huge = ConvSpec::dense(1, 16384, 1, 256, 1, 32, 1, 32);
        huge.validate().unwrap();
        let (_, wo) = huge.out_hw();
        assert!(conv_tile(&huge).2 <= IM2COL_MAX_ELEMENTS.max(32 * 32 * wo));
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
