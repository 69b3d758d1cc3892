//! Convolution by im2col + GEMM, and the other dense kernels of the f64
//! executor. Single-threaded on purpose: batches are parallelised per image
//! (rayon in [`crate::plain`]), which keeps every kernel free of
//! synchronisation and uses all cores on a batch.

/// Unfold a `c x h x w` input into columns `[c*k*k][oh*ow]` for a k x k
/// convolution with the given stride, zero padding and dilation (spacing of
/// the kernel taps).
#[allow(clippy::too_many_arguments)]
pub fn im2col(x: &[f64], c: usize, h: usize, w: usize, g: &ConvGeom, oh: usize, ow: usize, col: &mut [f64]) {
    let (k, stride, pad, dil) = (g.kernel, g.stride, g.padding, g.dilation);
    let p = oh * ow;
    debug_assert_eq!(col.len(), c * k * k * p);
    for ci in 0..c {
        let plane = &x[ci * h * w..(ci + 1) * h * w];
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut col[((ci * k + ky) * k + kx) * p..][..p];
                for oy in 0..oh {
                    let iy = (oy * stride + ky * dil) as isize - pad as isize;
                    let dst = &mut row[oy * ow..(oy + 1) * ow];
                    if iy < 0 || iy >= h as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    for (ox, d) in dst.iter_mut().enumerate() {
                        let ix = (ox * stride + kx * dil) as isize - pad as isize;
                        *d = if ix < 0 || ix >= w as isize { 0.0 } else { src[ix as usize] };
                    }
                }
            }
        }
    }
}

/// `out[m][p] += sum_k a[m][k] * b[k][p]`, with a `m x kk`, b `kk x n`, out `m x n`
/// (row-major). Four output rows share each pass over a row of `b`, so `b` is
/// streamed m/4 times and the inner loop is a vectorisable 4-way axpy.
pub fn gemm_acc(a: &[f64], b: &[f64], out: &mut [f64], m: usize, kk: usize, n: usize) {
    debug_assert_eq!(a.len(), m * kk);
    debug_assert_eq!(b.len(), kk * n);
    debug_assert_eq!(out.len(), m * n);
    const NB: usize = 256; // column block: 4 output rows of NB f64 stay in L1
    let mut r = 0;
    while r + 4 <= m {
        let (o0, rest) = out[r * n..(r + 4) * n].split_at_mut(n);
        let (o1, rest) = rest.split_at_mut(n);
        let (o2, o3) = rest.split_at_mut(n);
        let (a0, a1, a2, a3) = (&a[r * kk..][..kk], &a[(r + 1) * kk..][..kk], &a[(r + 2) * kk..][..kk], &a[(r + 3) * kk..][..kk]);
        let mut j0 = 0;
        while j0 < n {
            let j1 = (j0 + NB).min(n);
            let (o0, o1, o2, o3) = (&mut o0[j0..j1], &mut o1[j0..j1], &mut o2[j0..j1], &mut o3[j0..j1]);
            for k in 0..kk {
                let (w0, w1, w2, w3) = (a0[k], a1[k], a2[k], a3[k]);
                let brow = &b[k * n + j0..k * n + j1];
                for ((((&bv, x0), x1), x2), x3) in brow.iter().zip(o0.iter_mut()).zip(o1.iter_mut()).zip(o2.iter_mut()).zip(o3.iter_mut()) {
                    *x0 += w0 * bv;
                    *x1 += w1 * bv;
                    *x2 += w2 * bv;
                    *x3 += w3 * bv;
                }
            }
            j0 = j1;
        }
        r += 4;
    }
    for r in r..m {
        let orow = &mut out[r * n..(r + 1) * n];
        for k in 0..kk {
            let w = a[r * kk + k];
            for (o, &bv) in orow.iter_mut().zip(&b[k * n..(k + 1) * n]) {
                *o += w * bv;
            }
        }
    }
}

/// The geometry of a convolution: output channels, square kernel side,
/// stride, zero padding per side, dilation, and channel groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Output channels.
    pub out_channels: usize,
    /// Kernel side k.
    pub kernel: usize,
    /// Stride, both directions.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Spacing between kernel taps (1: dense).
    pub dilation: usize,
    /// Channel groups (weights `[out][c / groups * k * k]`).
    pub groups: usize,
}

impl ConvGeom {
    /// Output height and width for an `h x w` input.
    pub fn output_hw(&self, h: usize, w: usize) -> (usize, usize) {
        let span = self.dilation * (self.kernel - 1) + 1;
        ((h + 2 * self.padding - span) / self.stride + 1, (w + 2 * self.padding - span) / self.stride + 1)
    }
}

/// 2-D convolution of one `c x h x w` image: weight `[out][c/groups*k*k]`,
/// optional bias `[out]`; returns `out x oh x ow`. Each group of `c/groups`
/// input channels makes its `out/groups` output channels. `scratch` is reused
/// for the columns.
pub fn conv2d(
    x: &[f64],
    (c, h, w): (usize, usize, usize),
    weight: &[f64],
    bias: Option<&[f64]>,
    g: &ConvGeom,
    scratch: &mut Vec<f64>,
) -> Vec<f64> {
    let (oh, ow) = g.output_hw(h, w);
    let p = oh * ow;
    let (cg, og, k) = (c / g.groups, g.out_channels / g.groups, g.kernel);
    let mut out = vec![0.0; g.out_channels * p];
    if let Some(b) = bias {
        for (row, &bv) in out.chunks_exact_mut(p).zip(b) {
            row.fill(bv);
        }
    }
    for gi in 0..g.groups {
        let xg = &x[gi * cg * h * w..(gi + 1) * cg * h * w];
        let wg = &weight[gi * og * cg * k * k..(gi + 1) * og * cg * k * k];
        let outg = &mut out[gi * og * p..(gi + 1) * og * p];
        if k == 1 && g.stride == 1 && g.padding == 0 {
            gemm_acc(wg, xg, outg, og, cg, p);
        } else {
            scratch.resize(cg * k * k * p, 0.0);
            im2col(xg, cg, h, w, g, oh, ow, scratch);
            gemm_acc(wg, scratch, outg, og, cg * k * k, p);
        }
    }
    out
}

/// Average pooling without padding.
pub fn avg_pool(x: &[f64], (c, h, w): (usize, usize, usize), k: usize, stride: usize) -> Vec<f64> {
    let oh = (h - k) / stride + 1;
    let ow = (w - k) / stride + 1;
    let inv = 1.0 / (k * k) as f64;
    let mut out = Vec::with_capacity(c * oh * ow);
    for ci in 0..c {
        let plane = &x[ci * h * w..(ci + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut s = 0.0;
                for ky in 0..k {
                    for kx in 0..k {
                        s += plane[(oy * stride + ky) * w + ox * stride + kx];
                    }
                }
                out.push(s * inv);
            }
        }
    }
    out
}

/// The "option A" shortcut: subsample by `stride`, pad `pad_c` zero planes on both sides.
pub fn shortcut_a(x: &[f64], (c, h, w): (usize, usize, usize), stride: usize, pad_c: usize) -> Vec<f64> {
    let oh = h.div_ceil(stride);
    let ow = w.div_ceil(stride);
    let mut out = vec![0.0; (c + 2 * pad_c) * oh * ow];
    for ci in 0..c {
        let dst = &mut out[(ci + pad_c) * oh * ow..][..oh * ow];
        for oy in 0..oh {
            for ox in 0..ow {
                dst[oy * ow + ox] = x[ci * h * w + oy * stride * w + ox * stride];
            }
        }
    }
    out
}

/// The windows of a `k x k` pooling with stride and padding over one `h x w`
/// plane: for each output position (row-major), the plane indices of its
/// elements in row-major window order, padded positions excluded. The f64
/// executor and the secure one reduce max-pooling windows in this order.
pub fn pool_windows(h: usize, w: usize, k: usize, stride: usize, pad: usize) -> Vec<Vec<usize>> {
    let oh = (h + 2 * pad - k) / stride + 1;
    let ow = (w + 2 * pad - k) / stride + 1;
    let mut out = Vec::with_capacity(oh * ow);
    for oy in 0..oh {
        for ox in 0..ow {
            let mut win = Vec::with_capacity(k * k);
            for ky in 0..k {
                for kx in 0..k {
                    let (iy, ix) = ((oy * stride + ky) as isize - pad as isize, (ox * stride + kx) as isize - pad as isize);
                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                        win.push(iy as usize * w + ix as usize);
                    }
                }
            }
            out.push(win);
        }
    }
    out
}

/// Max pooling with `k x k` windows, stride and padding (padded positions
/// are not in any window, see [`pool_windows`]). `max2` combines two values:
/// exact `f64::max`, or a PANN's `b + relu(a - b)`; each window is reduced as
/// a balanced tree over its elements in row-major order (pairs of neighbours,
/// the odd one carried to the next level).
pub fn max_pool(
    x: &[f64],
    (c, h, w): (usize, usize, usize),
    k: usize,
    stride: usize,
    pad: usize,
    mut max2: impl FnMut(f64, f64) -> f64,
) -> Vec<f64> {
    let windows = pool_windows(h, w, k, stride, pad);
    let mut out = Vec::with_capacity(c * windows.len());
    for plane in x.chunks_exact(h * w).take(c) {
        for win in &windows {
            let mut values: Vec<f64> = win.iter().map(|&i| plane[i]).collect();
            while values.len() > 1 {
                values = values.chunks(2).map(|p| if p.len() == 2 { max2(p[0], p[1]) } else { p[0] }).collect();
            }
            out.push(values[0]);
        }
    }
    out
}

/// Zero padding of a `c x h x w` image: channel planes before and after, rows
/// above and below, columns left and right.
pub fn pad(
    x: &[f64],
    (c, h, w): (usize, usize, usize),
    (cb, ca): (usize, usize),
    (top, bottom): (usize, usize),
    (left, right): (usize, usize),
) -> Vec<f64> {
    let (oh, ow) = (h + top + bottom, w + left + right);
    let mut out = vec![0.0; (cb + c + ca) * oh * ow];
    for ci in 0..c {
        for y in 0..h {
            let dst = ((cb + ci) * oh + top + y) * ow + left;
            out[dst..dst + w].copy_from_slice(&x[(ci * h + y) * w..][..w]);
        }
    }
    out
}

/// `x[:, ::stride, ::stride]` of a `c x h x w` image.
pub fn subsample(x: &[f64], (c, h, w): (usize, usize, usize), stride: usize) -> Vec<f64> {
    let (oh, ow) = (h.div_ceil(stride), w.div_ceil(stride));
    let mut out = Vec::with_capacity(c * oh * ow);
    for ci in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                out.push(x[(ci * h + oy * stride) * w + ox * stride]);
            }
        }
    }
    out
}

/// y = W x + b with W `[out][in]`.
pub fn linear(x: &[f64], weight: &[f64], bias: Option<&[f64]>, out_f: usize) -> Vec<f64> {
    let in_f = x.len();
    (0..out_f)
        .map(|o| {
            let dot: f64 = weight[o * in_f..(o + 1) * in_f].iter().zip(x).map(|(a, b)| a * b).sum();
            dot + bias.map_or(0.0, |b| b[o])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct convolution, the obvious way, as the oracle for im2col + GEMM.
    fn conv_naive(x: &[f64], c: usize, h: usize, w: usize, wt: &[f64], g: &ConvGeom) -> Vec<f64> {
        let (oc, k, s, p, d) = (g.out_channels, g.kernel, g.stride, g.padding, g.dilation);
        let (cg, og) = (c / g.groups, oc / g.groups);
        let (oh, ow) = g.output_hw(h, w);
        let mut out = vec![0.0; oc * oh * ow];
        for o in 0..oc {
            let group = o / og;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0.0;
                    for cj in 0..cg {
                        let ci = group * cg + cj;
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * s + ky * d) as isize - p as isize;
                                let ix = (ox * s + kx * d) as isize - p as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    acc += x[(ci * h + iy as usize) * w + ix as usize] * wt[((o * cg + cj) * k + ky) * k + kx];
                                }
                            }
                        }
                    }
                    out[(o * oh + oy) * ow + ox] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn conv_matches_naive() {
        let mut seed = 1u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        let cases = [
            (3, 8, 8, 5, 3, 1, 1, 1, 1),
            (4, 9, 7, 6, 3, 2, 1, 1, 1),
            (2, 6, 6, 3, 1, 1, 0, 1, 1),
            (3, 5, 5, 9, 1, 2, 0, 1, 1),
            (4, 9, 9, 4, 3, 1, 1, 1, 4),
            (6, 10, 8, 4, 3, 1, 2, 2, 2),
            (4, 7, 7, 8, 1, 1, 0, 1, 2),
        ];
        for &(c, h, w, oc, k, s, p, d, groups) in &cases {
            let g = ConvGeom { out_channels: oc, kernel: k, stride: s, padding: p, dilation: d, groups };
            let x: Vec<f64> = (0..c * h * w).map(|_| rnd()).collect();
            let wt: Vec<f64> = (0..oc * c / groups * k * k).map(|_| rnd()).collect();
            let got = conv2d(&x, (c, h, w), &wt, None, &g, &mut Vec::new());
            let want = conv_naive(&x, c, h, w, &wt, &g);
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn max_pool_windows_exclude_padding_and_reduce_as_a_tree() {
        let x: Vec<f64> = vec![1.0, -2.0, 3.0, -4.0, 5.0, -6.0, 7.0, -8.0, 9.0];
        // 3x3, kernel 2, stride 2, padding 1: windows {1}, {-2, 3}, {-4, 7}, {5, -6, -8, 9}.
        assert_eq!(max_pool(&x, (1, 3, 3), 2, 2, 1, f64::max), vec![1.0, 3.0, 7.0, 9.0]);
        // The tree order: ((a, b), (c, d)) over {5, -6, -8, 9}, seen through the combiner's calls.
        let mut calls = Vec::new();
        max_pool(&[5.0, -6.0, -8.0, 9.0], (1, 2, 2), 2, 2, 0, |a, b| {
            calls.push((a, b));
            a.max(b)
        });
        assert_eq!(calls, vec![(5.0, -6.0), (-8.0, 9.0), (5.0, 9.0)]);
    }

    #[test]
    fn pad_and_subsample_move_values_where_they_belong() {
        let x: Vec<f64> = (1..=4).map(|v| v as f64).collect(); // 1 x 2 x 2
        let y = pad(&x, (1, 2, 2), (1, 0), (1, 0), (0, 1));
        assert_eq!(y.len(), 2 * 3 * 3);
        assert_eq!(&y[..9], &[0.0; 9]);
        assert_eq!(&y[9..], &[0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 4.0, 0.0]);
        let z: Vec<f64> = (0..15).map(|v| v as f64).collect(); // 1 x 3 x 5
        assert_eq!(subsample(&z, (1, 3, 5), 2), vec![0.0, 2.0, 4.0, 10.0, 12.0, 14.0]);
    }

    #[test]
    fn shortcut_subsamples_and_pads() {
        let x: Vec<f64> = (0..2 * 4 * 4).map(|v| v as f64).collect();
        let y = shortcut_a(&x, (2, 4, 4), 2, 1);
        assert_eq!(y.len(), 4 * 2 * 2);
        assert_eq!(&y[0..4], &[0.0; 4]);
        assert_eq!(&y[4..8], &[0.0, 2.0, 8.0, 10.0]);
        assert_eq!(&y[8..12], &[16.0, 18.0, 24.0, 26.0]);
        assert_eq!(&y[12..16], &[0.0; 4]);
    }
}
