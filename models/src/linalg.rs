//! Convolution by im2col + GEMM, and the other dense kernels of the f64
//! executor. Single-threaded on purpose: batches are parallelised per image
//! (rayon in [`crate::plain`]), which keeps every kernel free of
//! synchronisation and uses all cores on a batch.

/// Unfold a `c x h x w` input into columns `[c*k*k][oh*ow]` for a k x k
/// convolution with the given stride and zero padding.
#[allow(clippy::too_many_arguments)]
pub fn im2col(x: &[f64], c: usize, h: usize, w: usize, k: usize, stride: usize, pad: usize, oh: usize, ow: usize, col: &mut [f64]) {
    let p = oh * ow;
    debug_assert_eq!(col.len(), c * k * k * p);
    for ci in 0..c {
        let plane = &x[ci * h * w..(ci + 1) * h * w];
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut col[((ci * k + ky) * k + kx) * p..][..p];
                for oy in 0..oh {
                    let iy = (oy * stride + ky) as isize - pad as isize;
                    let dst = &mut row[oy * ow..(oy + 1) * ow];
                    if iy < 0 || iy >= h as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    for (ox, d) in dst.iter_mut().enumerate() {
                        let ix = (ox * stride + kx) as isize - pad as isize;
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

/// 2-D convolution of one `c x h x w` image: weight `[out][c*k*k]`, optional
/// bias `[out]`; returns `out x oh x ow`. `scratch` is reused for the columns.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &[f64],
    (c, h, w): (usize, usize, usize),
    weight: &[f64],
    bias: Option<&[f64]>,
    out_c: usize,
    k: usize,
    stride: usize,
    pad: usize,
    scratch: &mut Vec<f64>,
) -> Vec<f64> {
    let oh = (h + 2 * pad - k) / stride + 1;
    let ow = (w + 2 * pad - k) / stride + 1;
    let p = oh * ow;
    let mut out = vec![0.0; out_c * p];
    if let Some(b) = bias {
        for (row, &bv) in out.chunks_exact_mut(p).zip(b) {
            row.fill(bv);
        }
    }
    if k == 1 && stride == 1 && pad == 0 {
        gemm_acc(weight, x, &mut out, out_c, c, p);
    } else {
        scratch.resize(c * k * k * p, 0.0);
        im2col(x, c, h, w, k, stride, pad, oh, ow, scratch);
        gemm_acc(weight, scratch, &mut out, out_c, c * k * k, p);
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
    #[allow(clippy::too_many_arguments)]
    fn conv_naive(x: &[f64], c: usize, h: usize, w: usize, wt: &[f64], oc: usize, k: usize, s: usize, p: usize) -> Vec<f64> {
        let oh = (h + 2 * p - k) / s + 1;
        let ow = (w + 2 * p - k) / s + 1;
        let mut out = vec![0.0; oc * oh * ow];
        for o in 0..oc {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0.0;
                    for ci in 0..c {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * s + ky) as isize - p as isize;
                                let ix = (ox * s + kx) as isize - p as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    acc += x[(ci * h + iy as usize) * w + ix as usize] * wt[((o * c + ci) * k + ky) * k + kx];
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
        for &(c, h, w, oc, k, s, p) in &[(3, 8, 8, 5, 3, 1, 1), (4, 9, 7, 6, 3, 2, 1), (2, 6, 6, 3, 1, 1, 0), (3, 5, 5, 9, 1, 2, 0)] {
            let x: Vec<f64> = (0..c * h * w).map(|_| rnd()).collect();
            let wt: Vec<f64> = (0..oc * c * k * k).map(|_| rnd()).collect();
            let got = conv2d(&x, (c, h, w), &wt, None, oc, k, s, p, &mut Vec::new());
            let want = conv_naive(&x, c, h, w, &wt, oc, k, s, p);
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{a} vs {b}");
            }
        }
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
