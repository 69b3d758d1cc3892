//! The session handshake: before any protocol traffic, both sides exchange a
//! Hello naming the protocol version, their role, and the parameters both
//! must agree on (ring bits, fractional bits, precision alpha, model digest,
//! ...). A difference ends the session on both sides with
//! [`CoreError::HandshakeMismatch`] naming the field, instead of a silent
//! wrong result later.
//!
//! The comparison is symmetric (version, then roles, then fields in name
//! order), so both sides report the same field, each from its own view.
//!
//! Wire format of the Hello body (after the tag byte; all integers little-endian):
//! `"PANN" | version u32 | role u8 | expected peer role u8 (0 = any) |
//! field count u32 | per field: name length u32, name (UTF-8), value length u32, value (UTF-8)`.
//! Decoding checks every length against the bytes present and never panics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use sha2::{Digest, Sha256};

use crate::channel::{Channel, Tag};
use crate::error::{CoreError, Result};
use crate::meter::Phase;

/// Version of the wire protocol; bump on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 6;

const MAGIC: &[u8; 4] = b"PANN";

/// Meter label of handshake traffic.
pub const HANDSHAKE_LABEL: &str = "handshake";

/// Longest Hello body accepted from a peer, in bytes. Ours are a few hundred
/// bytes (the longest field is a per-layer precision, about 3 bytes per ReLU
/// site); a longer Hello is refused from its header, before it is read.
pub const MAX_HELLO: usize = 64 << 10;

pub use crate::role::Role;

/// What one side announces in its Hello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionParams {
    /// Wire protocol version; [`PROTOCOL_VERSION`] unless testing.
    pub version: u32,
    /// The role of the side that sends this Hello.
    pub role: Role,
    /// The role we require of the peer, if any (a server talking to its
    /// dealer and to its client on two channels knows which is which).
    pub expect_peer: Option<Role>,
    fields: Vec<(String, String)>,
}

impl SessionParams {
    /// The Hello of `role` at [`PROTOCOL_VERSION`], with no parameters and no
    /// requirement on the peer's role.
    pub fn new(role: Role) -> SessionParams {
        SessionParams { version: PROTOCOL_VERSION, role, expect_peer: None, fields: Vec::new() }
    }

    /// Require the peer to have this role.
    pub fn expecting(mut self, peer: Role) -> SessionParams {
        self.expect_peer = Some(peer);
        self
    }

    /// Add (or replace) a parameter both sides must agree on.
    pub fn with(mut self, name: &str, value: impl Display) -> SessionParams {
        self.set(name, value);
        self
    }

    /// Add (or replace) a parameter, keeping the original position.
    pub fn set(&mut self, name: &str, value: impl Display) {
        let value = value.to_string();
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name.to_string(), value)),
        }
    }

    /// The value of parameter `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The parameters, in insertion order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The Hello body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.fields.iter().map(|(n, v)| 8 + n.len() + v.len()).sum::<usize>());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.push(self.role.code());
        out.push(self.expect_peer.map_or(0, Role::code));
        out.extend_from_slice(&(self.fields.len() as u32).to_le_bytes());
        for (name, value) in &self.fields {
            for s in [name, value] {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
        out
    }

    /// The version announced by a Hello body, read before anything else so
    /// that a peer speaking another version is reported as such.
    pub fn peek_version(bytes: &[u8]) -> Result<u32> {
        let mut r = Reader::new(bytes);
        if r.take(4)? != MAGIC {
            return Err(CoreError::Malformed("Hello does not start with the PANN magic".into()));
        }
        r.u32()
    }

    /// Parse a Hello body; any inconsistency is `Malformed`.
    pub fn decode(bytes: &[u8]) -> Result<SessionParams> {
        let version = Self::peek_version(bytes)?;
        let mut r = Reader::new(&bytes[8..]);
        let role_code = r.u8()?;
        let role = Role::from_code(role_code).ok_or_else(|| CoreError::Malformed(format!("Hello names unknown role code {role_code}")))?;
        let expect_peer = match r.u8()? {
            0 => None,
            c => Some(Role::from_code(c).ok_or_else(|| CoreError::Malformed(format!("Hello expects unknown role code {c}")))?),
        };
        let count = r.u32()? as usize;
        // Each field takes at least 8 bytes: bound the count before allocating.
        if count > r.remaining() / 8 {
            return Err(CoreError::Malformed(format!("Hello announces {count} fields in {} bytes", r.remaining())));
        }
        let mut fields = Vec::with_capacity(count);
        let mut seen = BTreeSet::new();
        for _ in 0..count {
            let name = r.string("a parameter name")?;
            let value = r.string("a parameter value")?;
            if !seen.insert(name.clone()) {
                return Err(CoreError::Malformed(format!("Hello repeats parameter {name:?}")));
            }
            fields.push((name, value));
        }
        if r.remaining() != 0 {
            return Err(CoreError::Malformed(format!("{} trailing bytes after the Hello", r.remaining())));
        }
        Ok(SessionParams { version, role, expect_peer, fields })
    }

    fn role_desc(&self) -> String {
        match self.expect_peer {
            Some(p) => format!("{} (expecting {p})", self.role),
            None => self.role.to_string(),
        }
    }

    /// Compare with the peer's Hello: version, then roles, then every
    /// parameter in name order. Symmetric: the peer finds the same field.
    pub fn check_compatible(&self, theirs: &SessionParams) -> Result<()> {
        let mismatch =
            |field: &str, ours: String, theirs: String| Err(CoreError::HandshakeMismatch { field: field.to_string(), ours, theirs });
        if self.version != theirs.version {
            return mismatch("version", self.version.to_string(), theirs.version.to_string());
        }
        let role_ok = self.role != theirs.role
            && self.expect_peer.is_none_or(|r| r == theirs.role)
            && theirs.expect_peer.is_none_or(|r| r == self.role);
        if !role_ok {
            return mismatch("role", self.role_desc(), theirs.role_desc());
        }
        let ours: BTreeMap<&str, &str> = self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let peer: BTreeMap<&str, &str> = theirs.fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let names: BTreeSet<&str> = ours.keys().chain(peer.keys()).copied().collect();
        for name in names {
            let (a, b) = (ours.get(name), peer.get(name));
            if a != b {
                let show = |v: Option<&&str>| v.map_or_else(|| "<absent>".to_string(), |s| shorten(s));
                return mismatch(&shorten(name), show(a), show(b));
            }
        }
        Ok(())
    }
}

/// Exchange Hellos over `ch` and check agreement. Returns the peer's
/// parameters. Traffic is metered in [`Phase::Setup`] under the label
/// [`HANDSHAKE_LABEL`]; the channel's phase and label are restored after.
/// A malformed Hello is reported to the peer with an Abort before returning.
pub async fn handshake(ch: &mut Channel, ours: &SessionParams) -> Result<SessionParams> {
    let (phase, label) = (ch.meter().phase(), ch.meter().label().to_string());
    ch.set_phase(Phase::Setup);
    ch.set_label(HANDSHAKE_LABEL);
    let res = exchange(ch, ours).await;
    ch.set_phase(phase);
    ch.set_label(&label);
    res
}

async fn exchange(ch: &mut Channel, ours: &SessionParams) -> Result<SessionParams> {
    ch.send_tagged(Tag::Hello, &ours.encode())?;
    let theirs = recv_hello(ch, ours.version).await?;
    ours.check_compatible(&theirs)?;
    Ok(theirs)
}

/// The responder's side of [`handshake`], for a service that learns some
/// parameters from its peer (the dealer learns a session's id and model
/// digest from each party): read the peer's Hello first, copy the fields
/// named in `adopt` from it into ours, then answer and compare as usual.
/// The peer runs the ordinary [`handshake`]. Returns the peer's parameters.
pub async fn handshake_responder(ch: &mut Channel, ours: &SessionParams, adopt: &[&str]) -> Result<SessionParams> {
    let (phase, label) = (ch.meter().phase(), ch.meter().label().to_string());
    ch.set_phase(Phase::Setup);
    ch.set_label(HANDSHAKE_LABEL);
    let res = async {
        let theirs = recv_hello(ch, ours.version).await?;
        let mut mine = ours.clone();
        for name in adopt {
            if let Some(v) = theirs.get(name) {
                mine.set(name, v);
            }
        }
        ch.send_tagged(Tag::Hello, &mine.encode())?;
        ch.flush().await?;
        mine.check_compatible(&theirs)?;
        Ok(theirs)
    }
    .await;
    ch.set_phase(phase);
    ch.set_label(&label);
    res
}

/// Receive and decode the peer's Hello, and check that the role it claims
/// is the one its certificate holds. A malformed Hello is answered with an
/// Abort.
async fn recv_hello(ch: &mut Channel, version: u32) -> Result<SessionParams> {
    let body = match ch.recv_tagged_max(Tag::Hello, MAX_HELLO).await {
        Ok(b) => b,
        Err(e) => {
            if matches!(
                e,
                CoreError::UnexpectedMessage { .. }
                    | CoreError::Malformed(_)
                    | CoreError::FrameLength { .. }
                    | CoreError::FrameTooLarge { .. }
            ) {
                ch.abort(e.abort_code()).await;
            }
            return Err(e);
        }
    };
    let theirs = match SessionParams::peek_version(&body) {
        Ok(v) if v != version => {
            return Err(CoreError::HandshakeMismatch { field: "version".into(), ours: version.to_string(), theirs: v.to_string() })
        }
        Ok(_) => SessionParams::decode(&body),
        Err(e) => Err(e),
    };
    let theirs = match theirs {
        Ok(t) => t,
        Err(e) => {
            ch.abort(e.abort_code()).await;
            return Err(e);
        }
    };
    // The role a Hello claims must be the one its sender's certificate holds:
    // otherwise a party could act as another role toward us.
    if let Some(certified) = ch.certified_peer() {
        if theirs.role != certified {
            let e = CoreError::RoleNotCertified { claimed: theirs.role, certified };
            ch.abort(e.abort_code()).await;
            return Err(e);
        }
    }
    Ok(theirs)
}

/// At most 100 characters of a Hello string, for error messages (a peer's
/// field may be up to the Hello's size).
fn shorten(s: &str) -> String {
    const MAX: usize = 100;
    match s.char_indices().nth(MAX) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}... ({} bytes)", &s[..cut], s.len()),
    }
}

/// SHA-256 of `bytes` as lowercase hex (e.g. a model digest for the Hello).
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Bounds-checked cursor over untrusted bytes.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(CoreError::Malformed(format!("Hello truncated: needed {n} more bytes, {} left", self.buf.len())));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u32()? as usize;
        let bytes = self.take(n)?;
        // Every field is printable ASCII (names, numbers, "per-layer:...",
        // hex digests); anything else could put a peer's control characters
        // into our log when a mismatch is reported.
        if !bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
            return Err(CoreError::Malformed(format!("{what} in the Hello is not printable ASCII")));
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| CoreError::Malformed(format!("{what} in the Hello is not UTF-8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> SessionParams {
        SessionParams::new(Role::Server).with("ring_bits", 64).with("frac_bits", 16).with("alpha", 9)
    }

    #[test]
    fn encode_decode_round_trip() {
        let p = params().expecting(Role::Client);
        assert_eq!(SessionParams::decode(&p.encode()).unwrap(), p);
    }

    #[test]
    fn decoding_every_prefix_and_corruption_never_panics() {
        let bytes = params().encode();
        for n in 0..bytes.len() {
            assert!(SessionParams::decode(&bytes[..n]).is_err());
        }
        let mut prg = crate::prg::Prg::from_seed([3; 16]);
        for i in 0..bytes.len() {
            for _ in 0..8 {
                let mut b = bytes.clone();
                b[i] = prg.next_u64() as u8;
                let _ = SessionParams::decode(&b);
            }
        }
        let mut junk = vec![0u8; 4096];
        for _ in 0..64 {
            prg.fill_bytes(&mut junk);
            junk[..4].copy_from_slice(MAGIC);
            let _ = SessionParams::decode(&junk);
        }
    }

    #[test]
    fn only_printable_ascii_fields_decode() {
        // A peer's control characters would reach our log in a mismatch.
        for bad in ["9\n\u{1b}[2Jserver: done", "caf\u{e9}"] {
            let p = SessionParams::new(Role::Server).with("alpha", bad);
            assert!(matches!(SessionParams::decode(&p.encode()), Err(CoreError::Malformed(m)) if m.contains("printable")), "{bad:?}");
        }
        let ok = SessionParams::new(Role::Server).with("alpha", "per-layer:4,5,9");
        assert_eq!(SessionParams::decode(&ok.encode()).unwrap(), ok);
    }

    #[test]
    fn a_long_mismatching_field_is_shortened_in_the_error() {
        let a = params();
        let b = SessionParams::new(Role::Client).with("ring_bits", "6".repeat(5000)).with("frac_bits", 16).with("alpha", 9);
        let e = a.check_compatible(&b).unwrap_err().to_string();
        assert!(e.len() < 400 && e.contains("(5000 bytes)"), "{e}");
    }

    #[test]
    fn comparison_is_symmetric() {
        let a = params().with("model", "abc");
        let mut b = params().with("model", "abd").with("zeta", 1);
        b.role = Role::Client;
        for (x, y) in [(&a, &b), (&b, &a)] {
            match x.check_compatible(y) {
                Err(CoreError::HandshakeMismatch { field, .. }) => assert_eq!(field, "model"),
                other => panic!("expected a mismatch, got {other:?}"),
            }
        }
    }

    #[test]
    fn sha256_hex_known_answer() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
