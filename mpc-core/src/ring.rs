//! The ring Z_2^64 as wrapping `u64`, with element-wise operations on slices.
//!
//! The functions are plain loops over slices so that the compiler vectorises
//! them; callers keep data contiguous. Signed values are two's complement.

/// Element of Z_2^64.
pub type R = u64;

/// Interpret a ring element as a signed integer (two's complement).
#[inline]
pub fn to_signed(x: R) -> i64 {
    x as i64
}

/// Embed a signed integer into the ring.
#[inline]
pub fn from_signed(x: i64) -> R {
    x as u64
}

fn check_len(a: usize, b: usize) {
    assert_eq!(a, b, "ring slice length mismatch");
}

/// `a[i] += b[i]`
pub fn add_assign(a: &mut [R], b: &[R]) {
    check_len(a.len(), b.len());
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.wrapping_add(*y);
    }
}

/// `a[i] -= b[i]`
pub fn sub_assign(a: &mut [R], b: &[R]) {
    check_len(a.len(), b.len());
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.wrapping_sub(*y);
    }
}

/// `a[i] = -a[i]`
pub fn neg_assign(a: &mut [R]) {
    for x in a.iter_mut() {
        *x = x.wrapping_neg();
    }
}

/// `a[i] *= c` for a public scalar `c`.
pub fn scale_assign(a: &mut [R], c: R) {
    for x in a.iter_mut() {
        *x = x.wrapping_mul(c);
    }
}

/// `a[i] *= b[i]`
pub fn mul_assign(a: &mut [R], b: &[R]) {
    check_len(a.len(), b.len());
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.wrapping_mul(*y);
    }
}

/// `acc[i] += c * b[i]` (axpy with a public scalar).
pub fn add_scaled_assign(acc: &mut [R], c: R, b: &[R]) {
    check_len(acc.len(), b.len());
    for (x, y) in acc.iter_mut().zip(b) {
        *x = x.wrapping_add(c.wrapping_mul(*y));
    }
}

/// Element-wise sum into a new vector.
pub fn add(a: &[R], b: &[R]) -> Vec<R> {
    let mut out = a.to_vec();
    add_assign(&mut out, b);
    out
}

/// Element-wise difference into a new vector.
pub fn sub(a: &[R], b: &[R]) -> Vec<R> {
    let mut out = a.to_vec();
    sub_assign(&mut out, b);
    out
}

/// Element-wise product into a new vector.
pub fn mul(a: &[R], b: &[R]) -> Vec<R> {
    let mut out = a.to_vec();
    mul_assign(&mut out, b);
    out
}

/// Arithmetic shift right of each element interpreted as signed (plaintext truncation).
pub fn shr_signed_assign(a: &mut [R], bits: u32) {
    for x in a.iter_mut() {
        *x = ((*x as i64) >> bits) as u64;
    }
}
