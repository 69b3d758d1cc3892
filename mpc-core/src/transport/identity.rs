//! A party's TLS identity: a self-signed certificate and its private key,
//! generated with rcgen and stored as PEM files.
//!
//! Certificates are pinned by exact bytes, so their names and validity dates
//! carry no trust; the subject name only makes a certificate recognisable
//! to a human. The SHA-256 fingerprint is what operators compare out of band.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{CoreError, Result};
use crate::handshake::sha256_hex;

/// Subject alternative name of generated certificates.
pub const DEFAULT_SUBJECT: &str = "pann-party";

/// Our certificate (DER) and the matching private key (PKCS#8, DER).
pub struct TlsIdentity {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        Self { cert: self.cert.clone(), key: self.key.clone_key() }
    }
}

impl std::fmt::Debug for TlsIdentity {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").field("cert_sha256", &self.fingerprint()).finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// A fresh self-signed identity (ECDSA P-256) with subject name [`DEFAULT_SUBJECT`].
    pub fn generate() -> Result<TlsIdentity> {
        Self::generate_for(DEFAULT_SUBJECT)
    }

    /// A fresh self-signed identity with the given subject alternative name.
    pub fn generate_for(subject: &str) -> Result<TlsIdentity> {
        let ck = rcgen::generate_simple_self_signed(vec![subject.to_string()])
            .map_err(|e| CoreError::Tls(format!("generating a self-signed certificate: {e}")))?;
        let key = PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
        Ok(TlsIdentity { cert: ck.cert.der().clone(), key })
    }

    /// An identity from DER parts, checked: the key must match the certificate.
    pub fn from_der(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Result<TlsIdentity> {
        let id = TlsIdentity { cert, key };
        id.check()?;
        Ok(id)
    }

    /// Load from PEM files. Missing, unreadable or corrupt files, and a key
    /// that does not belong to the certificate, are errors naming the file.
    pub fn load(cert_path: impl AsRef<Path>, key_path: impl AsRef<Path>) -> Result<TlsIdentity> {
        let cert = load_peer_cert(cert_path)?;
        let key_path = key_path.as_ref();
        let bytes = read_file(key_path)?;
        let key = PrivateKeyDer::from_pem_slice(&bytes)
            .map_err(|e| CoreError::IdentityFile { path: key_path.to_path_buf(), reason: format!("no usable PEM private key ({e})") })?;
        let id = TlsIdentity { cert, key };
        id.check().map_err(|e| CoreError::IdentityFile {
            path: key_path.to_path_buf(),
            reason: format!("key does not fit the certificate: {e}"),
        })?;
        Ok(id)
    }

    /// Write the certificate and the key as PEM (the key file readable by its
    /// owner only, on Unix). Existing files are replaced.
    pub fn save(&self, cert_path: impl AsRef<Path>, key_path: impl AsRef<Path>) -> Result<()> {
        write_file(cert_path.as_ref(), self.cert_pem().as_bytes(), false)?;
        write_file(key_path.as_ref(), self.key_pem().as_bytes(), true)
    }

    /// Our certificate, as peers pin it (public).
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// Our certificate's DER bytes (public).
    pub fn cert_der(&self) -> &[u8] {
        self.cert.as_ref()
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// Our certificate as a PEM `CERTIFICATE` block: the file a peer pins (public).
    pub fn cert_pem(&self) -> String {
        pem_encode("CERTIFICATE", self.cert.as_ref())
    }

    fn key_pem(&self) -> String {
        let label = match &self.key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        pem_encode(label, self.key.secret_der())
    }

    /// SHA-256 of the certificate DER, hex: what an operator compares.
    pub fn fingerprint(&self) -> String {
        sha256_fingerprint(&self.cert)
    }

    /// Key and certificate parse and belong together (rustls checks this
    /// when it builds a configuration).
    fn check(&self) -> Result<()> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CoreError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], self.key.clone_key())
            .map_err(|e| CoreError::Tls(format!("invalid certificate or key: {e}")))?;
        Ok(())
    }
}

/// SHA-256 of a certificate's DER bytes, lowercase hex.
pub fn sha256_fingerprint(cert: &CertificateDer<'_>) -> String {
    sha256_hex(cert.as_ref())
}

/// Load the peer's expected certificate (the first CERTIFICATE block of a PEM file).
pub fn load_peer_cert(path: impl AsRef<Path>) -> Result<CertificateDer<'static>> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    CertificateDer::from_pem_slice(&bytes)
        .map_err(|e| CoreError::IdentityFile { path: path.to_path_buf(), reason: format!("no usable PEM certificate ({e})") })
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| CoreError::IdentityFile { path: path.to_path_buf(), reason: format!("cannot read: {e}") })
}

fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let err = |e: std::io::Error| CoreError::IdentityFile { path: path.to_path_buf(), reason: format!("cannot write: {e}") };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(path).map_err(err)?;
    // A file that existed keeps its mode on open: tighten a key's.
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    std::io::Write::write_all(&mut f, bytes).map_err(err)
}

/// RFC 7468 PEM: base64 in 64-column lines between BEGIN/END markers.
fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk.len();
        let v = (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= n {
                b64.push(ALPHABET[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
