//! Local (communication-free) operations on shares, input sharing and reveal.

use pann_mpc_core::channel::Tag;
use pann_mpc_core::ring::{self, R};
use pann_mpc_core::{Channel, Party, Prg};

use crate::error::{check_len, ProtocolError, Result};

/// `x + y` on shares.
pub fn add(x: &[R], y: &[R]) -> Result<Vec<R>> {
    check_len("add", x.len(), y.len())?;
    Ok(ring::add(x, y))
}

/// `x - y` on shares.
pub fn sub(x: &[R], y: &[R]) -> Result<Vec<R>> {
    check_len("sub", x.len(), y.len())?;
    Ok(ring::sub(x, y))
}

/// `c * x` for a public ring scalar (a fixed-point scalar at scale g raises
/// the scale by g).
pub fn scale(x: &[R], c: R) -> Vec<R> {
    let mut v = x.to_vec();
    ring::scale_assign(&mut v, c);
    v
}

/// `x + p` for a public vector `p`: party 0 adds it, party 1 keeps its share.
pub fn add_public(party: Party, x: &[R], p: &[R]) -> Result<Vec<R>> {
    check_len("add public", x.len(), p.len())?;
    Ok(if party == Party::Server { ring::add(x, p) } else { x.to_vec() })
}

/// `x + b[channel]` for a per-channel public bias on an `[n, c, plane]` tensor.
pub fn add_channel_bias(party: Party, x: &[R], bias: &[R], plane: usize) -> Result<Vec<R>> {
    if plane == 0 || bias.is_empty() || !x.len().is_multiple_of(plane * bias.len()) {
        return Err(ProtocolError::Params(format!("bias of {} channels on {} elements, plane {plane}", bias.len(), x.len())));
    }
    let mut v = x.to_vec();
    if party == Party::Server {
        for (i, chunk) in v.chunks_mut(plane).enumerate() {
            let b = bias[i % bias.len()];
            chunk.iter_mut().for_each(|e| *e = e.wrapping_add(b));
        }
    }
    Ok(v)
}

/// Share a secret held by `owner`: the owner sends the other party a
/// pseudo-random share and keeps `value - share`. `values` is `Some` exactly
/// at the owner. One message from the owner.
pub async fn share_input(chan: &mut Channel, party: Party, owner: Party, values: Option<&[R]>, n: usize, prg: &mut Prg) -> Result<Vec<R>> {
    if party == owner {
        let v = values.ok_or_else(|| ProtocolError::Params("the owner must supply the values".into()))?;
        check_len("shared input", n, v.len())?;
        let other = prg.gen(n);
        chan.send_ring(&other)?;
        chan.flush().await?;
        Ok(ring::sub(v, &other))
    } else {
        Ok(chan.recv_ring(n).await?)
    }
}

/// Reveal shares: to both parties (`to = None`, one round) or to one party
/// (the other sends its share). Returns the value at the receivers.
pub async fn reveal(chan: &mut Channel, party: Party, share: &[R], to: Option<Party>) -> Result<Option<Vec<R>>> {
    match to {
        None => {
            let other = chan.exchange_ring(share).await?;
            Ok(Some(ring::add(share, &other)))
        }
        Some(p) if p == party => {
            let other = chan.recv_ring(share.len()).await?;
            Ok(Some(ring::add(share, &other)))
        }
        Some(_) => {
            chan.send_ring(share)?;
            chan.flush().await?;
            Ok(None)
        }
    }
}

/// Send opaque setup bytes (e.g. a digest) — a thin helper over tagged frames.
pub async fn send_bytes(chan: &mut Channel, b: &[u8]) -> Result<()> {
    chan.send_tagged(Tag::Bytes, b)?;
    chan.flush().await?;
    Ok(())
}
