//! TLS identities on disk: generate, save, load, and clear errors for
//! missing or corrupt files.

mod common;

use common::{short_cfg, temp_dir, within};
use pann_mpc_core::transport::{load_peer_cert, Listener, TlsIdentity, TlsPeers};
use pann_mpc_core::{tls_connect, CoreError, Role};

#[test]
fn save_then_load_round_trips() {
    let dir = temp_dir("roundtrip");
    let id = TlsIdentity::generate().unwrap();
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    id.save(&cert, &key).unwrap();
    let back = TlsIdentity::load(&cert, &key).unwrap();
    assert_eq!(back.cert_der(), id.cert_der());
    assert_eq!(back.fingerprint(), id.fingerprint());
    assert_eq!(load_peer_cert(&cert).unwrap(), *id.cert());
    assert!(std::fs::read_to_string(&cert).unwrap().starts_with("-----BEGIN CERTIFICATE-----\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // The key is never printed.
    assert!(!format!("{back:?}").contains("PRIVATE"));
}

#[test]
fn missing_and_corrupt_files_are_named_errors() {
    let dir = temp_dir("corrupt");
    let id = TlsIdentity::generate().unwrap();
    let other = TlsIdentity::generate().unwrap();
    let (cert, key) = (dir.join("a.crt"), dir.join("a.key"));
    id.save(&cert, &key).unwrap();
    let (other_cert, other_key) = (dir.join("b.crt"), dir.join("b.key"));
    other.save(&other_cert, &other_key).unwrap();

    let missing = dir.join("missing.crt");
    match TlsIdentity::load(&missing, &key) {
        Err(CoreError::IdentityFile { path, reason }) => {
            assert_eq!(path, missing);
            assert!(reason.contains("cannot read"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    match TlsIdentity::load(&cert, dir.join("missing.key")) {
        Err(CoreError::IdentityFile { reason, .. }) => assert!(reason.contains("cannot read"), "{reason}"),
        other => panic!("{other:?}"),
    }

    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, b"this is not PEM at all\n\x00\xff").unwrap();
    for (c, k) in [(&garbage, &key), (&cert, &garbage)] {
        match TlsIdentity::load(c, k) {
            Err(CoreError::IdentityFile { path, .. }) => assert_eq!(&path, &garbage),
            other => panic!("{other:?}"),
        }
    }

    // Valid PEM framing around a corrupted certificate body.
    let pem = std::fs::read_to_string(&cert).unwrap();
    let mut lines: Vec<String> = pem.lines().map(str::to_string).collect();
    lines[2] = "A".repeat(lines[2].len());
    let broken = dir.join("broken.crt");
    std::fs::write(&broken, lines.join("\n")).unwrap();
    assert!(matches!(TlsIdentity::load(&broken, &key), Err(CoreError::IdentityFile { .. })));

    // A key that belongs to another certificate.
    match TlsIdentity::load(&cert, &other_key) {
        Err(CoreError::IdentityFile { path, reason }) => {
            assert_eq!(path, other_key);
            assert!(reason.contains("does not fit"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn identities_loaded_from_files_connect() {
    let dir = temp_dir("files-connect");
    let (s, c) = (TlsIdentity::generate().unwrap(), TlsIdentity::generate().unwrap());
    s.save(dir.join("s.crt"), dir.join("s.key")).unwrap();
    c.save(dir.join("c.crt"), dir.join("c.key")).unwrap();
    let sp = TlsPeers::from_files(dir.join("s.crt"), dir.join("s.key"), Role::Client, dir.join("c.crt")).unwrap();
    let cp = TlsPeers::from_files(dir.join("c.crt"), dir.join("c.key"), Role::Server, dir.join("s.crt")).unwrap();
    assert_eq!(sp.peer_fingerprint(), c.fingerprint());
    let l = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (a, b) = within(10, async { tokio::join!(l.accept_tls(short_cfg(), &sp), tls_connect(addr, short_cfg(), &cp)) }).await;
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    let (x, y) = tokio::join!(a.exchange_ring(&[5, 6]), b.exchange_ring(&[7, 8]));
    assert_eq!((x.unwrap(), y.unwrap()), (vec![7, 8], vec![5, 6]));
}
