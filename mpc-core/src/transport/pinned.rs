//! Certificate verifiers that accept exactly the pinned certificates (one
//! per expected peer; the dealer pins both parties').
//!
//! There is no CA: the peer is trusted iff it presents, byte for byte, a
//! certificate we were configured with, and proves possession of its key by
//! a valid handshake signature (checked with the crypto provider's
//! algorithms). Names, dates and chains play no part.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme};

use super::identity::sha256_fingerprint;

#[derive(Debug)]
pub(crate) struct PinnedCert {
    expected: Vec<CertificateDer<'static>>,
    algs: WebPkiSupportedAlgorithms,
}

/// Why a presented certificate was refused (shown in the TLS error).
#[derive(Debug)]
struct NotPinned {
    presented: String,
    expected: String,
}

impl std::fmt::Display for NotPinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer certificate (sha256 {}) is not a pinned peer certificate (sha256 {})", self.presented, self.expected)
    }
}

impl std::error::Error for NotPinned {}

impl PinnedCert {
    pub(crate) fn new(expected: Vec<CertificateDer<'static>>, algs: WebPkiSupportedAlgorithms) -> Arc<Self> {
        Arc::new(Self { expected, algs })
    }

    fn check(&self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> Result<(), rustls::Error> {
        if intermediates.is_empty() && self.expected.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            return Ok(());
        }
        let expected: Vec<String> = self.expected.iter().map(sha256_fingerprint).collect();
        let why = NotPinned { presented: sha256_fingerprint(end_entity), expected: expected.join(" or ") };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(why)))))
    }
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates).map(|_| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

impl ClientCertVerifier for PinnedCert {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates).map(|_| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
