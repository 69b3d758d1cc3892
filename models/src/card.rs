//! The model card: a JSON file beside the weights that says what the weights
//! are (architecture, input normalisation), how to approximate them (per-site
//! ReLU bounds, default alpha), where they came from, and the SHA-256 of the
//! weights file. The digest is checked on load, so a weights file that does
//! not belong to its card (and so to its calibrated bounds) is an error
//! rather than a silently wrong private inference.

use crate::config::Architecture;
use crate::error::{ModelError, Result};
use crate::fold::fold_batch_norm;
use crate::model::Model;
use crate::network::Network;
use crate::plain::ReluMode;
use pann_approx::Alpha;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Per-channel input normalisation applied to [0, 1] pixels:
/// `x = (pixel / 255 - mean[c]) / std[c]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Per-channel mean, on the [0, 1] scale.
    pub mean: Vec<f64>,
    /// Per-channel standard deviation, on the [0, 1] scale.
    pub std: Vec<f64>,
}

impl InputSpec {
    /// The ImageNet statistics that akamaster's CIFAR training uses.
    pub fn imagenet() -> Self {
        Self { mean: vec![0.485, 0.456, 0.406], std: vec![0.229, 0.224, 0.225] }
    }

    /// Normalise a CHW image of bytes (channel planes in order). The number
    /// of planes is `mean.len()`; the spec must be checked (as a card's or a
    /// public model's is: one mean and std per channel).
    pub fn normalise(&self, pixels: &[u8]) -> Vec<f64> {
        let c = self.mean.len().max(1);
        let plane = pixels.len() / c;
        pixels
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let ch = (i / plane.max(1)).min(c - 1);
                (p as f64 / 255.0 - self.mean[ch]) / self.std[ch]
            })
            .collect()
    }
}

/// Where the weights came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Where the weights were obtained (a repository file, a training recipe).
    pub source: String,
    /// Their licence.
    pub license: String,
    /// Anything else worth knowing (training data, accuracy, caveats).
    #[serde(default)]
    pub notes: String,
    /// Lower-case hex SHA-256 of the ONNX file the network and weights were
    /// imported from (`pann import`), if they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx_sha256: Option<String>,
}

/// How the bounds were obtained, kept so results can be reproduced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CalibrationInfo {
    /// The factor applied to each site's largest |input| (see [`crate::calibrate::per_site_bounds`]).
    pub margin: f64,
    /// Number of calibration images.
    pub images: usize,
    /// Which images, in words.
    #[serde(default)]
    pub data: String,
}

/// The model card (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The model's name.
    pub name: String,
    /// The architecture the weights are for.
    pub architecture: Architecture,
    /// Input normalisation (one mean and std per input channel).
    pub input: InputSpec,
    /// Weights file, relative to the card's directory.
    pub weights: String,
    /// Lower-case hex SHA-256 of the weights file.
    pub weights_sha256: String,
    /// PANN precision 2^-alpha deployed where `relu_alphas` is empty (a
    /// plain integer in JSON, refused at load outside 4..=14).
    pub default_alpha: Alpha,
    /// Per-site ReLU bounds B (by ReLU site name); empty if not calibrated.
    #[serde(default)]
    pub relu_bounds: BTreeMap<String, f64>,
    /// Per-site precision alpha (mixed precision, e.g. from `pann plan`);
    /// empty means `default_alpha` everywhere. When present it names every site.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub relu_alphas: BTreeMap<String, Alpha>,
    /// The alphas the weights were trained for with the polynomial in the
    /// loop; empty (the default) for a model that works at any alpha. Such a
    /// model loses its accuracy at other alphas (the shipped alpha-4 ResNet-20
    /// gets about 9% at alpha 5), so a server refuses to deploy it at one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trained_alphas: Vec<Alpha>,
    /// How `relu_bounds` were obtained, if recorded.
    #[serde(default)]
    pub calibration: Option<CalibrationInfo>,
    /// `[min, max]` of the logits the deployed PANN produced on the
    /// calibration images (written by `pann calibrate`). A client judges its
    /// decoded logits against it: a wrapped ring value decodes to hundreds or
    /// more, where real logits stay within a few times this range (see
    /// [`crate::range::check_logits`]). Absent in older cards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_range: Option<[f64; 2]>,
    /// Where the weights came from.
    pub provenance: Provenance,
}

impl ModelCard {
    /// Read and check a card file ([`ModelCard::parse`]); the weights are not read.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        Self::parse(text.as_bytes(), path)
    }

    /// Parse and check a card from memory; `path` names it in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let card: ModelCard = serde_json::from_slice(bytes).map_err(|source| ModelError::Json { path: path.into(), source })?;
        card.check(path)?;
        Ok(card)
    }

    /// The card as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a card always serialises")
    }

    /// [`ModelCard::to_json`], keeping the keys of `original` (the JSON this
    /// card was read from) that the card does not model, such as a trainer's
    /// `trainer` section; such a card is written with sorted keys, as the
    /// trainer writes it.
    pub fn to_json_keeping(&self, original: &str) -> String {
        const KNOWN: [&str; 12] = [
            "name",
            "architecture",
            "input",
            "weights",
            "weights_sha256",
            "default_alpha",
            "relu_bounds",
            "relu_alphas",
            "trained_alphas",
            "calibration",
            "logit_range",
            "provenance",
        ];
        let (Ok(serde_json::Value::Object(orig)), Ok(serde_json::Value::Object(mut mine))) =
            (serde_json::from_str(original), serde_json::to_value(self))
        else {
            return self.to_json();
        };
        let extra: Vec<_> = orig.into_iter().filter(|(k, _)| !KNOWN.contains(&k.as_str())).collect();
        if extra.is_empty() {
            return self.to_json();
        }
        mine.extend(extra);
        serde_json::to_string_pretty(&serde_json::Value::Object(mine)).expect("a card always serialises")
    }

    /// Consistency of the card itself: normalisation matches the input
    /// channels, every size, the normalisation and the bounds are within
    /// [`crate::limits`], every bound and alpha names a ReLU site, bounds and
    /// alphas are given for every site or none (every alpha is in 4..=14 by
    /// its type, checked when the JSON is read), and the logit range is
    /// ordered. Returns the network the architecture builds (with its batch
    /// norms); `path` names the card in errors.
    pub fn check(&self, path: &Path) -> Result<Network> {
        let bad = |reason: String| ModelError::Card { path: path.into(), reason };
        let net = self.architecture.build()?;
        let c = net.input_shape().c;
        if self.input.mean.len() != c || self.input.std.len() != c {
            return Err(bad(format!(
                "input normalisation has {} means and {} stds for {c} channels",
                self.input.mean.len(),
                self.input.std.len()
            )));
        }
        crate::limits::check_input_spec(&self.input, c)?;
        let sites = net.activation_sites();
        for (site, &b) in &self.relu_bounds {
            if !sites.contains(&site.as_str()) {
                return Err(bad(format!("bound for unknown ReLU site {site:?}")));
            }
            crate::limits::check_bound(site, b)?;
        }
        if !self.relu_bounds.is_empty() && self.relu_bounds.len() != sites.len() {
            let missing = sites.iter().find(|s| !self.relu_bounds.contains_key(**s)).copied().unwrap_or("?");
            return Err(ModelError::MissingBound { site: missing.into() });
        }
        for site in self.relu_alphas.keys() {
            if !sites.contains(&site.as_str()) {
                return Err(bad(format!("alpha for unknown ReLU site {site:?}")));
            }
        }
        if let Some(r) = self.logit_range {
            crate::range::check_range(r).map_err(bad)?;
        }
        if !self.relu_alphas.is_empty() {
            if let Some(missing) = sites.iter().find(|s| !self.relu_alphas.contains_key(**s)) {
                return Err(bad(format!("relu_alphas names some sites but not {missing:?}: give every site or none")));
            }
        }
        Ok(net)
    }

    /// Whether the model may run at `alpha` at every site: any alpha, unless
    /// the card lists `trained_alphas` and `alpha` is not one of them.
    pub fn check_alpha(&self, alpha: Alpha) -> Result<()> {
        if self.trained_alphas.is_empty() || self.trained_alphas.contains(&alpha) {
            return Ok(());
        }
        let list: Vec<String> = self.trained_alphas.iter().map(Alpha::to_string).collect();
        Err(ModelError::Card {
            path: self.name.clone().into(),
            reason: format!("trained for alpha {} (its trained_alphas), it loses its accuracy at alpha {alpha}", list.join(", ")),
        })
    }

    /// The PANN ReLU mode at `alpha` everywhere with this card's per-site
    /// bounds (a card without bounds gives a mode that
    /// [`crate::PlainExecutor::new`] refuses).
    pub fn pann_mode(&self, alpha: Alpha) -> Result<ReluMode> {
        ReluMode::pann(alpha, self.relu_bounds.clone())
    }

    /// The precision of every site as the card deploys it: `relu_alphas`,
    /// or `default_alpha` at every bounded site.
    pub fn site_alphas(&self) -> BTreeMap<String, Alpha> {
        if self.relu_alphas.is_empty() {
            self.relu_bounds.keys().map(|s| (s.clone(), self.default_alpha)).collect()
        } else {
            self.relu_alphas.clone()
        }
    }

    /// The PANN ReLU mode the card deploys (per-site alphas if it has them).
    pub fn deployed_mode(&self) -> Result<ReluMode> {
        ReluMode::pann_mixed(self.site_alphas(), self.relu_bounds.clone())
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A model loaded through its card: BN already folded for inference.
#[derive(Clone, Debug)]
pub struct LoadedModel {
    /// The card, checked.
    pub card: ModelCard,
    /// Where the card was read from.
    pub card_path: PathBuf,
    /// The network as described (with BN), for inspection.
    pub network: Network,
    /// The inference model (BN folded).
    pub model: Model,
}

impl LoadedModel {
    /// Read a card, check the weights' digest, import and fold them.
    pub fn load(card_path: impl AsRef<Path>) -> Result<Self> {
        let card_path = card_path.as_ref();
        let card = ModelCard::from_file(card_path)?;
        let weights_path = card_path.parent().unwrap_or(Path::new(".")).join(&card.weights);
        let bytes = std::fs::read(&weights_path).map_err(|e| ModelError::io(&weights_path, e))?;
        Self::from_parts(card, card_path, &weights_path, &bytes)
    }

    /// Same as [`LoadedModel::load`] with the weights already in memory
    /// (`weights_path` only names them in errors).
    pub fn from_parts(card: ModelCard, card_path: &Path, weights_path: &Path, bytes: &[u8]) -> Result<Self> {
        let network = card.check(card_path)?;
        let found = sha256_hex(bytes);
        if !found.eq_ignore_ascii_case(&card.weights_sha256) {
            return Err(ModelError::DigestMismatch { path: weights_path.into(), expected: card.weights_sha256.clone(), found });
        }
        let raw = Model::from_safetensors(network.clone(), bytes)?;
        let model = fold_batch_norm(&raw)?;
        Ok(Self { card, card_path: card_path.into(), network, model })
    }
}
