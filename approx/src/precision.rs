//! Precisions: [`Alpha`] (one polynomial ReLU's precision 2^-alpha, only the
//! alphas with a shipped table) and [`Precision`] (one alpha for every
//! activation site, or one per site).
//!
//! Both serialise as they always have: an [`Alpha`] is a plain JSON integer
//! (so model cards, public model descriptions and their digests are
//! unchanged), and a [`Precision`] is its text form, the handshake string
//! `"9"` or `"per-layer:4,4,5,..."`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Smallest precision alpha with a shipped table.
pub const MIN_ALPHA: u32 = 4;
/// Largest precision alpha with a shipped table.
pub const MAX_ALPHA: u32 = 14;

/// A precision 2^-alpha of the polynomial ReLU, one with a shipped sign
/// polynomial: only [`MIN_ALPHA`]`..=`[`MAX_ALPHA`] can be constructed.
///
/// Serialises as the plain integer; deserialising checks the range.
///
/// ```
/// use pann_approx::Alpha;
///
/// let a = Alpha::new(9)?;
/// assert_eq!(a.get(), 9);
/// assert_eq!("9".parse::<Alpha>()?, a);
/// assert!(Alpha::new(15).unwrap_err().to_string().contains("4..=14"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Alpha(u8);

/// Why a number or a string is not an [`Alpha`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AlphaError {
    /// The number is outside [`MIN_ALPHA`]`..=`[`MAX_ALPHA`].
    #[error("alpha {0} is outside {MIN_ALPHA}..={MAX_ALPHA} (the precisions with a sign polynomial)")]
    OutOfRange(u64),
    /// The text is not a non-negative integer.
    #[error("an alpha is an integer in {MIN_ALPHA}..={MAX_ALPHA}")]
    NotANumber,
}

impl Alpha {
    /// The alpha `alpha`, if it is within [`MIN_ALPHA`]`..=`[`MAX_ALPHA`].
    pub const fn new(alpha: u32) -> Result<Self, AlphaError> {
        if alpha >= MIN_ALPHA && alpha <= MAX_ALPHA {
            Ok(Self(alpha as u8))
        } else {
            Err(AlphaError::OutOfRange(alpha as u64))
        }
    }

    /// The alpha as a number.
    pub const fn get(self) -> u32 {
        self.0 as u32
    }

    /// The smallest alpha ([`MIN_ALPHA`]).
    pub const MIN: Alpha = Alpha(MIN_ALPHA as u8);
    /// The largest alpha ([`MAX_ALPHA`]).
    pub const MAX: Alpha = Alpha(MAX_ALPHA as u8);

    /// Every alpha, ascending.
    pub fn all() -> impl DoubleEndedIterator<Item = Alpha> + Clone {
        (MIN_ALPHA..=MAX_ALPHA).map(|a| Alpha(a as u8))
    }
}

impl TryFrom<u32> for Alpha {
    type Error = AlphaError;
    fn try_from(alpha: u32) -> Result<Self, AlphaError> {
        Alpha::new(alpha)
    }
}

impl From<Alpha> for u32 {
    fn from(alpha: Alpha) -> u32 {
        alpha.get()
    }
}

impl FromStr for Alpha {
    type Err = AlphaError;
    fn from_str(s: &str) -> Result<Self, AlphaError> {
        let t = s.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AlphaError::NotANumber);
        }
        match t.parse::<u64>() {
            Ok(n) => u32::try_from(n).map_err(|_| AlphaError::OutOfRange(n)).and_then(Alpha::new),
            Err(_) => Err(AlphaError::OutOfRange(u64::MAX)),
        }
    }
}

/// The number, as for a `u32` (so `{:?}` of a list of alphas reads `[4, 9]`).
impl fmt::Debug for Alpha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Alpha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The text form of a per-site [`Precision`] starts with this.
pub const PER_LAYER_PREFIX: &str = "per-layer:";

/// The precision of a network's activation sites: one alpha for all, or one
/// per site in the network's activation-site order
/// (`Network::activation_sites` of `pann-models`).
///
/// Its text form is what the parties agree on in the session handshake:
/// `"9"` when uniform, else `"per-layer:"` and every site's alpha
/// (`"per-layer:4,4,5,..."`). A per-site list whose alphas are all equal is
/// written as the uniform precision.
///
/// ```
/// use pann_approx::{Alpha, Precision};
///
/// let p: Precision = "per-layer:4,5".parse()?;
/// assert_eq!(p.alphas(2), vec![Alpha::new(4)?, Alpha::new(5)?]);
/// assert_eq!(Precision::per_site(vec![Alpha::new(9)?; 3]).to_string(), "9");
/// assert!("per-layer:4,15".parse::<Precision>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// One alpha at every site.
    Uniform(Alpha),
    /// One alpha per site, in activation-site order.
    PerSite(Vec<Alpha>),
}

/// Why a string is not a [`Precision`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrecisionError {
    /// An alpha of the string is not an [`Alpha`].
    #[error("precision {text:?}: {source}")]
    Alpha {
        /// The whole string.
        text: String,
        /// What is wrong with the alpha.
        source: AlphaError,
    },
    /// `"per-layer:"` with no alphas after it.
    #[error(
        "precision {0:?}: no alphas after \"per-layer:\" (expected e.g. \"9\" or \"per-layer:4,5,9\", alphas in {MIN_ALPHA}..={MAX_ALPHA})"
    )]
    Empty(String),
}

impl Precision {
    /// The precision of sites with these alphas: [`Precision::Uniform`] when
    /// they are all equal (and there is at least one), else
    /// [`Precision::PerSite`].
    pub fn per_site(alphas: Vec<Alpha>) -> Self {
        match alphas.first() {
            Some(&a) if alphas.iter().all(|&b| b == a) => Precision::Uniform(a),
            _ => Precision::PerSite(alphas),
        }
    }

    /// The alpha of every site when it is one alpha for all (a per-site list
    /// whose alphas are all equal counts as uniform).
    pub fn uniform(&self) -> Option<Alpha> {
        match self {
            Precision::Uniform(a) => Some(*a),
            Precision::PerSite(v) => match Precision::per_site(v.clone()) {
                Precision::Uniform(a) => Some(a),
                Precision::PerSite(_) => None,
            },
        }
    }

    /// The alphas of `sites` sites: the uniform alpha repeated, or the
    /// per-site list as it is (whatever its length).
    pub fn alphas(&self, sites: usize) -> Vec<Alpha> {
        match self {
            Precision::Uniform(a) => vec![*a; sites],
            Precision::PerSite(v) => v.clone(),
        }
    }

    /// The largest alpha (the uniform one, or the maximum of the list;
    /// [`Alpha::MIN`] for an empty list).
    pub fn max(&self) -> Alpha {
        match self {
            Precision::Uniform(a) => *a,
            Precision::PerSite(v) => v.iter().copied().max().unwrap_or(Alpha::MIN),
        }
    }
}

impl From<Alpha> for Precision {
    fn from(alpha: Alpha) -> Self {
        Precision::Uniform(alpha)
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.uniform() {
            Some(a) => write!(f, "{a}"),
            None => {
                f.write_str(PER_LAYER_PREFIX)?;
                for (i, a) in self.alphas(0).iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{a}")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for Precision {
    type Err = PrecisionError;
    fn from_str(s: &str) -> Result<Self, PrecisionError> {
        let alpha = |t: &str| t.parse::<Alpha>().map_err(|source| PrecisionError::Alpha { text: s.to_string(), source });
        match s.strip_prefix(PER_LAYER_PREFIX) {
            None => Ok(Precision::Uniform(alpha(s)?)),
            Some("") => Err(PrecisionError::Empty(s.to_string())),
            Some(list) => Ok(Precision::per_site(list.split(',').map(alpha).collect::<Result<_, _>>()?)),
        }
    }
}

/// As its text form ([`fmt::Display`]).
impl Serialize for Precision {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// From its text form ([`FromStr`]), checked.
impl<'de> Deserialize<'de> for Precision {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_4_to_14_are_alphas() {
        for n in 0..100u32 {
            let ok = (4..=14).contains(&n);
            assert_eq!(Alpha::new(n).is_ok(), ok, "{n}");
            assert_eq!(Alpha::try_from(n).is_ok(), ok, "{n}");
            assert_eq!(n.to_string().parse::<Alpha>().is_ok(), ok, "{n}");
            assert_eq!(serde_json::from_str::<Alpha>(&n.to_string()).is_ok(), ok, "{n}");
            if ok {
                let a = Alpha::new(n).unwrap();
                assert_eq!(a.get(), n);
                assert_eq!(a.to_string(), n.to_string());
                assert_eq!(serde_json::to_string(&a).unwrap(), n.to_string());
            }
        }
        for bad in ["3", "15", "", "x", "-9", "9.0", "99999999999999999999999"] {
            let e = bad.parse::<Alpha>().unwrap_err().to_string();
            assert!(e.contains("4..=14"), "{bad}: {e}");
        }
        assert!(Alpha::new(3).unwrap_err().to_string().contains("4..=14"));
        assert!(Alpha::new(15).unwrap_err().to_string().contains("alpha 15"));
        for bad in ["3", "15", "-1", "\"9\"", "9.5", "null"] {
            assert!(serde_json::from_str::<Alpha>(bad).is_err(), "{bad}");
        }
        let e = serde_json::from_str::<Alpha>("15").unwrap_err().to_string();
        assert!(e.contains("4..=14"), "{e}");
        assert_eq!(Alpha::all().map(Alpha::get).collect::<Vec<_>>(), (4..=14).collect::<Vec<_>>());
        assert_eq!((Alpha::MIN.get(), Alpha::MAX.get()), (MIN_ALPHA, MAX_ALPHA));
    }

    #[test]
    fn precision_strings() {
        let a = |n| Alpha::new(n).unwrap();
        assert_eq!("9".parse::<Precision>().unwrap(), Precision::Uniform(a(9)));
        assert_eq!("per-layer:4,5,9".parse::<Precision>().unwrap(), Precision::PerSite(vec![a(4), a(5), a(9)]));
        assert_eq!("per-layer:7,7".parse::<Precision>().unwrap(), Precision::Uniform(a(7)));
        assert_eq!(Precision::PerSite(vec![a(7), a(7)]).to_string(), "7");
        assert_eq!(Precision::PerSite(vec![a(14), a(5)]).to_string(), "per-layer:14,5");
        for bad in
            ["per-layer:", "per-layer:4,x", "per-layer:4,15", "per-layer:4,,5", "per-layer:4,", "abc", "", "3", "15", "per-layer 4", "4,5"]
        {
            let e = bad.parse::<Precision>().unwrap_err().to_string();
            assert!(e.contains("4..=14"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn precision_json_is_its_text() {
        for text in ["9", "per-layer:4,5,9"] {
            let p: Precision = text.parse().unwrap();
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("{text:?}"));
            assert_eq!(serde_json::from_str::<Precision>(&format!("{text:?}")).unwrap(), p);
        }
        for bad in ["\"per-layer:4,15\"", "\"\"", "9"] {
            assert!(serde_json::from_str::<Precision>(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn precision_round_trips(alphas in proptest::collection::vec(4u32..=14, 1..40)) {
            let p = Precision::per_site(alphas.into_iter().map(|n| Alpha::new(n).unwrap()).collect());
            let text = p.to_string();
            prop_assert_eq!(text.parse::<Precision>().unwrap(), p.clone());
            prop_assert_eq!(text.starts_with(PER_LAYER_PREFIX), p.uniform().is_none());
        }
    }
}
