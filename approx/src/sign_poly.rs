//! Composite minimax approximations of sign(x) (Lee et al.), embedded from
//! `data/sign-minimax`, converted to the Chebyshev basis at load time.
//!
//! Why Chebyshev: the monomial coefficients reach ~1e5 (alpha 9, first
//! component), so a power-basis evaluation in fixed point loses ~17 bits. In
//! the Chebyshev basis every T_k(x) stays in [-1, 1] on the valid domain and
//! the coefficients are small. The polynomials are odd: only odd T_k appear.

use std::fmt;

use crate::precision::{Alpha, MIN_ALPHA};

const TABLES: [(&str, &str); 11] = [
    (include_str!("../data/sign-minimax/deg_4.txt"), include_str!("../data/sign-minimax/coeff_4.txt")),
    (include_str!("../data/sign-minimax/deg_5.txt"), include_str!("../data/sign-minimax/coeff_5.txt")),
    (include_str!("../data/sign-minimax/deg_6.txt"), include_str!("../data/sign-minimax/coeff_6.txt")),
    (include_str!("../data/sign-minimax/deg_7.txt"), include_str!("../data/sign-minimax/coeff_7.txt")),
    (include_str!("../data/sign-minimax/deg_8.txt"), include_str!("../data/sign-minimax/coeff_8.txt")),
    (include_str!("../data/sign-minimax/deg_9.txt"), include_str!("../data/sign-minimax/coeff_9.txt")),
    (include_str!("../data/sign-minimax/deg_10.txt"), include_str!("../data/sign-minimax/coeff_10.txt")),
    (include_str!("../data/sign-minimax/deg_11.txt"), include_str!("../data/sign-minimax/coeff_11.txt")),
    (include_str!("../data/sign-minimax/deg_12.txt"), include_str!("../data/sign-minimax/coeff_12.txt")),
    (include_str!("../data/sign-minimax/deg_13.txt"), include_str!("../data/sign-minimax/coeff_13.txt")),
    (include_str!("../data/sign-minimax/deg_14.txt"), include_str!("../data/sign-minimax/coeff_14.txt")),
];

/// Why a sign-polynomial table could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignPolyError {
    /// A token is not a number, or the degrees do not account for the coefficients.
    #[error("malformed sign-polynomial table: {0}")]
    Malformed(String),
}

/// One odd polynomial component, in both bases.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    /// Degree `d` (odd); both coefficient vectors have `d + 1` entries.
    pub degree: usize,
    /// Monomial coefficients c_0..c_d as published.
    pub monomial: Vec<f64>,
    /// Chebyshev coefficients a_0..a_d: p(x) = sum a_k T_k(x). Even entries are zero.
    pub chebyshev: Vec<f64>,
}

impl Component {
    /// Evaluate in the power basis (Horner), the published form.
    pub fn eval_monomial(&self, x: f64) -> f64 {
        self.monomial.iter().rev().fold(0.0, |acc, c| acc * x + c)
    }

    /// Evaluate in the Chebyshev basis (Clenshaw).
    pub fn eval(&self, x: f64) -> f64 {
        clenshaw(&self.chebyshev, x)
    }
}

/// The composite approximation p = p_k ∘ … ∘ p_1 of sign at precision 2^-alpha.
#[derive(Clone, Debug, PartialEq)]
pub struct SignPoly {
    /// Precision: the ReLU built from the composite, `x (1 + p(x / B)) / 2`,
    /// is within `B 2^-alpha` of ReLU for `|x| <= B`.
    pub alpha: Alpha,
    /// Components in application order (innermost first).
    pub components: Vec<Component>,
}

impl fmt::Display for SignPoly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let degs: Vec<String> = self.components.iter().map(|c| c.degree.to_string()).collect();
        write!(f, "alpha {} {{{}}}", self.alpha, degs.join(","))
    }
}

impl SignPoly {
    /// The shipped table for precision 2^-alpha (every [`Alpha`] has one).
    pub fn for_alpha(alpha: Alpha) -> Self {
        let (deg, coeff) = TABLES[(alpha.get() - MIN_ALPHA) as usize];
        // The embedded tables are fixed at compile time; the tests parse every one.
        Self::parse(alpha, deg, coeff).expect("the embedded sign-polynomial tables parse")
    }

    /// Parse a degree file and a coefficient file in the approxCNN format.
    pub fn parse(alpha: Alpha, deg_txt: &str, coeff_txt: &str) -> Result<Self, SignPolyError> {
        let degrees: Vec<usize> = deg_txt
            .split_whitespace()
            .map(|t| t.parse().map_err(|_| SignPolyError::Malformed(format!("bad degree {t:?}"))))
            .collect::<Result<_, _>>()?;
        let coeffs: Vec<f64> = coeff_txt
            .split_whitespace()
            .map(|t| t.parse().map_err(|_| SignPolyError::Malformed(format!("bad coefficient {t:?}"))))
            .collect::<Result<_, _>>()?;
        let needed: usize = degrees.iter().map(|d| d + 1).sum();
        if degrees.is_empty() || needed != coeffs.len() {
            return Err(SignPolyError::Malformed(format!("degrees {degrees:?} need {needed} coefficients, found {}", coeffs.len())));
        }
        let mut components = Vec::new();
        let mut rest = &coeffs[..];
        for &d in &degrees {
            let (mono, tail) = rest.split_at(d + 1);
            rest = tail;
            // The even coefficients are ~1e-40 in the table: the polynomials are odd.
            let mono: Vec<f64> = mono.iter().enumerate().map(|(k, &c)| if k % 2 == 0 { 0.0 } else { c }).collect();
            components.push(Component { degree: d, chebyshev: monomial_to_chebyshev(&mono), monomial: mono });
        }
        Ok(Self { alpha, components })
    }

    /// The components' degrees, innermost first (e.g. `[15, 15]` at alpha 9).
    pub fn degrees(&self) -> Vec<usize> {
        self.components.iter().map(|c| c.degree).collect()
    }

    /// p(x) in f64 through the Chebyshev forms.
    pub fn eval(&self, x: f64) -> f64 {
        self.components.iter().fold(x, |v, c| c.eval(v))
    }

    /// p(x) in f64 through the published monomial forms.
    pub fn eval_monomial(&self, x: f64) -> f64 {
        self.components.iter().fold(x, |v, c| c.eval_monomial(v))
    }

    /// The PANN ReLU: x * (1 + p(x / bound)) / 2.
    pub fn relu(&self, x: f64, bound: f64) -> f64 {
        x * (1.0 + self.eval(x / bound)) / 2.0
    }
}

/// `sum a_k T_k(x)` by Clenshaw's recurrence (`a` non-empty).
pub fn clenshaw(a: &[f64], x: f64) -> f64 {
    let (mut b1, mut b2) = (0.0, 0.0);
    for &ak in a.iter().skip(1).rev() {
        let b0 = 2.0 * x * b1 - b2 + ak;
        b2 = b1;
        b1 = b0;
    }
    x * b1 - b2 + a[0]
}

/// Convert power-basis coefficients to Chebyshev coefficients, using
/// x^n = 2^(1-n) * sum_{j} C(n, j) T_{n-2j}  (the j = n/2 term halved).
pub fn monomial_to_chebyshev(mono: &[f64]) -> Vec<f64> {
    let d = mono.len().saturating_sub(1);
    let mut cheb = vec![0.0; d + 1];
    for (n, &c) in mono.iter().enumerate() {
        if c == 0.0 {
            continue;
        }
        let scale = if n == 0 { 1.0 } else { (1.0 - n as f64).exp2() };
        let mut binom = 1.0f64; // C(n, j)
        for j in 0..=n / 2 {
            let k = n - 2 * j;
            let w = if k == 0 { binom / 2.0 } else { binom };
            cheb[k] += c * scale * if n == 0 { 1.0 } else { w };
            binom = binom * (n - j) as f64 / (j + 1) as f64;
        }
    }
    cheb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degrees_match_the_published_tables() {
        let expect: [(u32, &[usize]); 8] = [
            (7, &[7, 7]),
            (8, &[7, 15]),
            (9, &[15, 15]),
            (10, &[7, 7, 13]),
            (11, &[7, 7, 27]),
            (12, &[7, 15, 27]),
            (13, &[15, 15, 27]),
            (14, &[15, 27, 29]),
        ];
        for (alpha, degs) in expect {
            assert_eq!(SignPoly::for_alpha(Alpha::new(alpha).unwrap()).degrees(), degs, "alpha {alpha}");
        }
    }

    #[test]
    fn chebyshev_form_equals_monomial_form() {
        for alpha in Alpha::all() {
            let p = SignPoly::for_alpha(alpha);
            for c in &p.components {
                let scale: f64 = c.monomial.iter().map(|x| x.abs()).sum();
                for i in 0..=2000 {
                    let x = -1.0 + i as f64 / 1000.0;
                    let (a, b) = (c.eval(x), c.eval_monomial(x));
                    assert!((a - b).abs() <= 1e-12 * scale.max(1.0), "alpha {alpha} x {x}: {a} vs {b}");
                }
                for (k, a) in c.chebyshev.iter().enumerate() {
                    if k % 2 == 0 {
                        assert_eq!(*a, 0.0);
                    }
                }
            }
        }
    }

    #[test]
    fn relu_error_is_within_the_published_precision() {
        // The data README lists log2 of the max error on [-1, 1] for alpha 7..14.
        for alpha in Alpha::all().filter(|a| a.get() >= 7) {
            let p = SignPoly::for_alpha(alpha);
            let mut worst = 0.0f64;
            for i in 0..=200_000 {
                let x = -1.0 + i as f64 / 100_000.0;
                worst = worst.max((p.relu(x, 1.0) - x.max(0.0)).abs());
            }
            assert!(worst <= (-(alpha.get() as f64)).exp2(), "alpha {alpha}: max error 2^{:.2}", worst.log2());
        }
    }

    #[test]
    fn malformed_tables_are_errors() {
        let a9 = Alpha::new(9).unwrap();
        assert!(SignPoly::parse(a9, "3", "0 1 0").is_err());
        assert!(SignPoly::parse(a9, "x", "0 1").is_err());
        assert!(SignPoly::parse(a9, "1", "0 y").is_err());
        assert!(SignPoly::parse(a9, "", "").is_err());
    }
}
