//! A metered, framed, full-duplex channel between two parties.
//!
//! One implementation serves every transport: the channel owns a boxed reader
//! and writer half of any byte stream (in-memory duplex, TCP, TLS). Frames are
//! a 4-byte little-endian length followed by the payload, at most
//! `max_frame` bytes. Sends are buffered; the buffer is written when the
//! channel next waits for the peer, concurrently with the read, so that a
//! round costs one flush and two parties that both send large messages
//! before reading cannot deadlock. Every wait has a timeout.
//!
//! Typed ring messages carry a one-byte tag (see [`Tag`]) so that an
//! unexpected message is reported by name.
//!
//! Every typed receive says how long the frame it expects may be
//! ([`Channel::recv_ring`]: exactly `1 + 8n` bytes; [`Channel::recv_tagged_max`]:
//! at most a given body length; an `Abort` at most [`MAX_ABORT`] bytes). The
//! header and the tag byte are checked against that expectation before any
//! of the body is read or allocated, so a peer cannot make us read (or wait
//! for) a frame the protocol does not call for at that point; `max_frame`
//! stays the overall ceiling.
//!
//! Keepalive: with [`ChannelConfig::keepalive`], a task writes an empty frame
//! (a zero length header, never metered) whenever the writer is idle for that
//! long, whatever this side is doing (computing, waiting for its own peer or
//! for a session slot). The task runs on a thread of its own, so it keeps
//! going while every worker of the caller's runtime computes. A receive skips
//! empty frames, and its timeout counts from the last bytes the peer sent:
//! `timeout` is the longest silence, so no healthy phase trips it however
//! long it runs (an overall deadline per session bounds that), while a frozen
//! or vanished peer still does. A write still waits at most `timeout` for the
//! peer to take our bytes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::abort::AbortCode;
use crate::error::{CoreError, Result};
use crate::handshake::Role;
use crate::meter::{Meter, Phase};
use crate::ring::R;

/// Message tags of typed frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// A vector of ring elements.
    Ring = 1,
    /// Session handshake (version, role, parameter digest).
    Hello = 2,
    /// The peer gives up: one byte, an [`AbortCode`].
    Abort = 3,
    /// Opaque bytes (e.g. serialized setup data).
    Bytes = 4,
}

impl Tag {
    fn from_u8(b: u8) -> Option<Tag> {
        Some(match b {
            1 => Tag::Ring,
            2 => Tag::Hello,
            3 => Tag::Abort,
            4 => Tag::Bytes,
            _ => return None,
        })
    }
}

fn tag_name(b: u8) -> String {
    match Tag::from_u8(b) {
        Some(t) => format!("{t:?}"),
        None => format!("unknown tag {b}"),
    }
}

/// Limits of a channel: frame size, timeouts, keepalive. The default: 1 GiB
/// frames, 120 s per wait, 60 s to connect, no keepalive.
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    /// Largest payload accepted or sent, in bytes.
    pub max_frame: usize,
    /// Longest wait for the peer (any read or write, and the TLS handshake).
    pub timeout: Duration,
    /// Longest wait for a connection to be established: how long a listener
    /// waits for the peer to connect, and how long a connecting side keeps
    /// retrying (so a client started before its server still connects).
    pub connect_timeout: Duration,
    /// Send an empty frame after this long without writing (see the module
    /// docs); `None`: never.
    pub keepalive: Option<Duration>,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self { max_frame: 1 << 30, timeout: Duration::from_secs(120), connect_timeout: Duration::from_secs(60), keepalive: None }
    }
}

impl ChannelConfig {
    /// The same configuration with a different per-wait timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same configuration with a different connection timeout.
    pub fn with_connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// The same configuration with keepalive frames after `idle` without
    /// writing (`None` or zero: none).
    pub fn with_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.keepalive = idle.filter(|d| !d.is_zero()).map(|d| d.max(Duration::from_millis(10)));
        self
    }

    /// The same configuration with a different frame-size limit.
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.max_frame = max_frame;
        self
    }
}

/// Payload bytes allocated up front for an incoming frame. Larger frames grow
/// the buffer as bytes actually arrive, so a header that announces a huge (but
/// allowed) frame cannot make us allocate memory the peer never sends.
const EAGER_ALLOC: usize = 16 << 20;

/// Longest wait in [`Channel::close`] for the peer to close its side.
pub const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// Frame header size on the wire.
pub const HEADER: usize = 4;

/// Longest `Abort` body accepted from a peer, in bytes (an Abort is one code
/// byte; a longer one is refused before it is read).
pub const MAX_ABORT: usize = 64;

/// What a typed receive accepts as the body (after the tag byte) of the next frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Exactly this many bytes.
    Exactly(usize),
    /// At most this many bytes.
    AtMost(usize),
}

impl Expect {
    fn admits(self, body: usize) -> bool {
        match self {
            Expect::Exactly(n) => body == n,
            Expect::AtMost(n) => body <= n,
        }
    }

    fn describe(self) -> String {
        match self {
            Expect::Exactly(n) => format!("exactly {n}"),
            Expect::AtMost(n) => format!("at most {n}"),
        }
    }
}

type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// The writing half, shared with the keepalive task.
struct SharedWriter {
    writer: Mutex<Writer>,
    /// Milliseconds since `epoch` of the last write.
    last_write: AtomicU64,
    epoch: Instant,
    /// Set once the sending direction is shut: no keepalive after it.
    closed: AtomicBool,
}

impl SharedWriter {
    fn touch(&self) {
        self.last_write.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Write `bytes` and flush, holding the writer for the whole of it, so
    /// that a keepalive never lands inside a frame.
    async fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut w = self.writer.lock().await;
        w.write_all(bytes).await?;
        w.flush().await?;
        self.touch();
        Ok(())
    }
}

/// The runtime of the keepalive tasks: one thread for the process, apart
/// from the runtimes that compute (`None` if it cannot be started).
fn keepalive_runtime() -> Option<&'static tokio::runtime::Handle> {
    static RT: OnceLock<Option<tokio::runtime::Handle>> = OnceLock::new();
    RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().ok()?;
        let handle = rt.handle().clone();
        std::thread::Builder::new().name("pann-keepalive".into()).spawn(move || rt.block_on(std::future::pending::<()>())).ok()?;
        Some(handle)
    })
    .as_ref()
}

/// Write an empty frame whenever the writer has been idle for `idle`, until
/// the channel is dropped or closed, or a write fails.
async fn keepalive(shared: Weak<SharedWriter>, idle: Duration) {
    let mut tick = tokio::time::interval(idle / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(s) = shared.upgrade() else { return };
        if s.closed.load(Ordering::Relaxed) {
            return;
        }
        let quiet = (s.epoch.elapsed().as_millis() as u64).saturating_sub(s.last_write.load(Ordering::Relaxed));
        if quiet < idle.as_millis() as u64 {
            continue;
        }
        // Busy writer: it is writing, which keeps the peer waiting anyway.
        let Ok(mut w) = s.writer.try_lock() else { continue };
        let mut written = 0;
        let sent = tokio::time::timeout(idle, async {
            while written < HEADER {
                match w.write(&[0u8; HEADER][written..]).await? {
                    0 => return Err(std::io::ErrorKind::WriteZero.into()),
                    n => written += n,
                }
            }
            w.flush().await
        })
        .await;
        drop(w);
        match sent {
            Ok(Ok(())) => s.touch(),
            // The peer takes nothing now (it is busy, not waiting for us):
            // try again later. Once part of a header is out, though, the
            // stream is broken for good.
            Err(_) if written == 0 || written == HEADER => continue,
            _ => return,
        }
    }
}

/// One side of a framed, metered connection to one peer (see the module
/// docs). Sends are queued and written at the next wait or [`Channel::flush`];
/// every receive is bounded in length and in time; all traffic is counted in
/// [`Channel::meter`] under the current phase and label.
pub struct Channel {
    reader: Box<dyn AsyncRead + Unpin + Send>,
    writer: Arc<SharedWriter>,
    out: Vec<u8>,
    cfg: ChannelConfig,
    meter: Meter,
    sent_since_recv: bool,
    certified_peer: Option<Role>,
    /// An Abort the peer sent while [`Channel::close`] waited for its end.
    abort_at_close: Option<AbortCode>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("cfg", &self.cfg)
            .field("queued_bytes", &self.out.len())
            .field("total", &self.meter.total())
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// Wrap any byte stream.
    pub fn from_stream<S>(stream: S, cfg: ChannelConfig) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (r, w) = tokio::io::split(stream);
        Self::from_halves(Box::new(r), Box::new(w), cfg)
    }

    /// Wrap the two halves of a byte stream (e.g. a TCP stream's owned
    /// halves, so that a round's read and write need no shared lock). Starts
    /// the keepalive task if `cfg.keepalive` asks for one.
    pub fn from_halves(reader: Box<dyn AsyncRead + Unpin + Send>, writer: Box<dyn AsyncWrite + Unpin + Send>, cfg: ChannelConfig) -> Self {
        let writer = Arc::new(SharedWriter {
            writer: Mutex::new(writer),
            last_write: AtomicU64::new(0),
            epoch: Instant::now(),
            closed: AtomicBool::new(false),
        });
        if let (Some(idle), Some(rt)) = (cfg.keepalive, keepalive_runtime()) {
            rt.spawn(keepalive(Arc::downgrade(&writer), idle));
        }
        Self {
            reader,
            writer,
            out: Vec::new(),
            cfg,
            meter: Meter::new(),
            sent_since_recv: false,
            certified_peer: None,
            abort_at_close: None,
        }
    }

    /// The channel with its peer's role as proven by the certificate the
    /// peer presented (set by the TLS transport). The handshake refuses a
    /// Hello that claims any other role.
    pub fn with_certified_peer(mut self, role: Role) -> Self {
        self.certified_peer = Some(role);
        self
    }

    /// The peer's role as bound to its certificate; `None` over plain TCP or
    /// in memory, where nothing proves who the peer is.
    pub fn certified_peer(&self) -> Option<Role> {
        self.certified_peer
    }

    /// Two connected in-memory channels (for tests and in-process parties).
    pub fn mem_pair(cfg: ChannelConfig) -> (Channel, Channel) {
        let (a, b) = tokio::io::duplex(1 << 20);
        (Channel::from_stream(a, cfg.clone()), Channel::from_stream(b, cfg))
    }

    /// The limits this channel was made with.
    pub fn config(&self) -> &ChannelConfig {
        &self.cfg
    }

    /// The traffic counted so far on this channel.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// The meter, to change attribution or take it over.
    pub fn meter_mut(&mut self) -> &mut Meter {
        &mut self.meter
    }

    /// Attribute the following traffic to `phase` ([`Meter::set_phase`]).
    pub fn set_phase(&mut self, phase: Phase) {
        self.meter.set_phase(phase);
    }

    /// Attribute the following traffic to `label`, e.g. a layer name ([`Meter::set_label`]).
    pub fn set_label(&mut self, label: &str) {
        self.meter.set_label(label);
    }

    fn begin_frame(&mut self, payload_len: usize) -> Result<()> {
        // The length prefix is a u32: a max_frame configured above 4 GiB must
        // not let a longer frame through with a truncated header.
        let max = self.cfg.max_frame.min(u32::MAX as usize);
        if payload_len > max {
            return Err(CoreError::FrameTooLarge { len: payload_len, max });
        }
        self.out.reserve(HEADER + payload_len);
        self.out.extend_from_slice(&(payload_len as u32).to_le_bytes());
        self.meter.record_send(HEADER + payload_len);
        self.sent_since_recv = true;
        Ok(())
    }

    /// Queue a raw frame (not written until the next wait or `flush`). An
    /// empty payload is refused: on the wire it is a keepalive.
    pub fn send_frame(&mut self, payload: &[u8]) -> Result<()> {
        if payload.is_empty() {
            return Err(CoreError::Malformed("an empty frame is a keepalive, not a message".into()));
        }
        self.begin_frame(payload.len())?;
        self.out.extend_from_slice(payload);
        Ok(())
    }

    /// Queue a tagged frame of bytes.
    pub fn send_tagged(&mut self, tag: Tag, bytes: &[u8]) -> Result<()> {
        self.begin_frame(1 + bytes.len())?;
        self.out.push(tag as u8);
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// Queue a vector of ring elements.
    pub fn send_ring(&mut self, xs: &[R]) -> Result<()> {
        self.begin_frame(1 + 8 * xs.len())?;
        self.out.push(Tag::Ring as u8);
        for x in xs {
            self.out.extend_from_slice(&x.to_le_bytes());
        }
        Ok(())
    }

    /// Write everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        let after = self.cfg.timeout;
        let out = std::mem::take(&mut self.out);
        let res = tokio::time::timeout(after, self.writer.write(&out)).await;
        self.out = out;
        self.out.clear();
        match res {
            Err(_) => Err(CoreError::Timeout { context: "writing to the peer", after }),
            Ok(r) => r.map_err(CoreError::io("writing to the peer")),
        }
    }

    /// Wait for the next raw frame (any tag, up to `max_frame` bytes),
    /// writing anything queued meanwhile. Protocol code uses the typed
    /// receives, which bound each frame by what they expect.
    pub async fn recv_frame(&mut self) -> Result<Vec<u8>> {
        self.recv_checked(None).await
    }

    /// Wait for the next frame, writing anything queued meanwhile. With
    /// `expect = Some((tag, len))`, the header and the tag byte are checked
    /// before the body is read: a frame with another tag is refused
    /// (`UnexpectedMessage`), except an `Abort` of at most [`MAX_ABORT`]
    /// bytes, which is read and returned as `PeerAborted`; a frame of `tag`
    /// whose body length `len` does not admit is refused (`FrameLength`).
    /// Returns the whole payload, tag included.
    async fn recv_checked(&mut self, expect: Option<(Tag, Expect)>) -> Result<Vec<u8>> {
        if self.sent_since_recv {
            self.meter.record_round();
            self.sent_since_recv = false;
        }
        let after = self.cfg.timeout;
        let max = self.cfg.max_frame;
        let out = std::mem::take(&mut self.out);
        let (reader, writer) = (&mut self.reader, &self.writer);
        // When the peer last sent anything (ms since `t0`): the timeout counts from there.
        let (t0, heard) = (Instant::now(), AtomicU64::new(0));
        let heard_now = || heard.store(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
        let write = async {
            if !out.is_empty() {
                writer.write(&out).await.map_err(CoreError::io("writing to the peer"))?;
            }
            Ok::<_, CoreError>(())
        };
        let read = async {
            let mut header = [0u8; HEADER];
            let len = loop {
                reader.read_exact(&mut header).await.map_err(CoreError::io("waiting for a frame header"))?;
                heard_now();
                match u32::from_le_bytes(header) as usize {
                    0 => continue, // keepalive
                    len => break len,
                }
            };
            if len > max {
                return Err(CoreError::FrameTooLarge { len, max });
            }
            let mut payload = Vec::new();
            if let Some((tag, body)) = expect {
                let mut first = [0u8; 1];
                reader.read_exact(&mut first).await.map_err(CoreError::io("reading a frame body"))?;
                let got = first[0];
                let allowed = if got == Tag::Abort as u8 {
                    match body {
                        Expect::AtMost(m) if tag == Tag::Abort => Expect::AtMost(m.min(MAX_ABORT)),
                        _ => Expect::AtMost(MAX_ABORT),
                    }
                } else if got == tag as u8 {
                    body
                } else {
                    return Err(CoreError::UnexpectedMessage { expected: format!("{tag:?}"), got: tag_name(got) });
                };
                if !allowed.admits(len - 1) {
                    return Err(CoreError::FrameLength { what: tag_name(got), len: len - 1, expected: allowed.describe() });
                }
                payload.push(got);
            }
            while payload.len() < len {
                let filled = payload.len();
                let step = (len - filled).min(EAGER_ALLOC.max(filled));
                payload.resize(filled + step, 0);
                reader.read_exact(&mut payload[filled..]).await.map_err(CoreError::io("reading a frame body"))?;
                heard_now();
            }
            Ok(payload)
        };
        let silence = async {
            loop {
                let since = Duration::from_millis(heard.load(Ordering::Relaxed));
                let quiet = t0.elapsed().saturating_sub(since);
                if quiet >= after {
                    return;
                }
                tokio::time::sleep(after - quiet).await;
            }
        };
        // The read first: bytes that arrived while this process was busy
        // count before the silence is judged.
        let res = tokio::select! {
            biased;
            r = async { tokio::try_join!(write, read) } => Ok(r),
            () = silence => Err(()),
        };
        self.out = out;
        self.out.clear();
        let payload = match res {
            Err(_) => return Err(CoreError::Timeout { context: "waiting for the peer", after }),
            Ok(r) => r?.1,
        };
        self.meter.record_recv(HEADER + payload.len());
        Ok(payload)
    }

    /// Wait for a frame with the given tag whose body is at most `max` bytes;
    /// returns its body. A longer frame (or one of another tag) is refused
    /// from its header and tag, before its body is read. An `Abort` from the
    /// peer becomes `PeerAborted` with the peer's code.
    pub async fn recv_tagged_max(&mut self, tag: Tag, max: usize) -> Result<Vec<u8>> {
        let mut frame = self.recv_checked(Some((tag, Expect::AtMost(max)))).await?;
        if frame[0] == Tag::Abort as u8 && tag != Tag::Abort {
            return Err(CoreError::PeerAborted(abort_code_of(&frame[1..])));
        }
        frame.remove(0);
        Ok(frame)
    }

    /// Skip the peer's frames until an `Abort` (of at most [`MAX_ABORT`]
    /// bytes) and return its code: for a side that is ending the session
    /// and only wants to hear why the peer gave up. Other frames' bodies are
    /// read and discarded in small pieces, never buffered whole. Ends with
    /// the first error (end of stream, timeout, an oversized Abort).
    pub async fn drain_until_abort(&mut self) -> Result<AbortCode> {
        if let Some(code) = self.abort_at_close.take() {
            return Ok(code);
        }
        let after = self.cfg.timeout;
        let reader = &mut self.reader;
        let read = async {
            let mut scratch = vec![0u8; 64 << 10];
            loop {
                let mut header = [0u8; HEADER + 1];
                reader.read_exact(&mut header[..HEADER]).await.map_err(CoreError::io("waiting for a frame header"))?;
                let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
                if len == 0 {
                    continue;
                }
                reader.read_exact(&mut header[HEADER..]).await.map_err(CoreError::io("reading a frame body"))?;
                let mut left = len - 1;
                if header[HEADER] == Tag::Abort as u8 {
                    if left > MAX_ABORT {
                        return Err(CoreError::FrameLength { what: "Abort".into(), len: left, expected: format!("at most {MAX_ABORT}") });
                    }
                    let mut body = vec![0u8; left];
                    reader.read_exact(&mut body).await.map_err(CoreError::io("reading a frame body"))?;
                    return Ok(abort_code_of(&body));
                }
                while left > 0 {
                    let k = left.min(scratch.len());
                    reader.read_exact(&mut scratch[..k]).await.map_err(CoreError::io("reading a frame body"))?;
                    left -= k;
                }
            }
        };
        match tokio::time::timeout(after, read).await {
            Err(_) => Err(CoreError::Timeout { context: "waiting for the peer", after }),
            Ok(r) => r,
        }
    }

    /// [`Channel::recv_tagged_max`] bounded only by `max_frame`: for callers
    /// that cannot know a smaller bound (prefer `recv_tagged_max`).
    pub async fn recv_tagged(&mut self, tag: Tag) -> Result<Vec<u8>> {
        let max = self.cfg.max_frame.saturating_sub(1);
        self.recv_tagged_max(tag, max).await
    }

    /// Wait for a vector of exactly `n` ring elements: a frame whose header
    /// announces anything but `1 + 8n` bytes is refused before its body is
    /// read (an `Abort` of at most [`MAX_ABORT`] bytes becomes `PeerAborted`).
    pub async fn recv_ring(&mut self, n: usize) -> Result<Vec<R>> {
        // Checked before anything is allocated for it.
        self.ring_body(n)?;
        let mut out = Vec::with_capacity(n);
        self.recv_ring_append(n, &mut out).await?;
        Ok(out)
    }

    /// Like [`Channel::recv_ring`], appending the `n` elements to `out`
    /// (long vectors received frame by frame, without a copy per frame).
    pub async fn recv_ring_append(&mut self, n: usize, out: &mut Vec<R>) -> Result<()> {
        let body = self.ring_body(n)?;
        let frame = self.recv_checked(Some((Tag::Ring, Expect::Exactly(body)))).await?;
        decode_ring_into(&frame, n, out)
    }

    /// The body length of a frame of `n` ring elements, if it fits a frame.
    fn ring_body(&self, n: usize) -> Result<usize> {
        n.checked_mul(8)
            .filter(|b| *b < self.cfg.max_frame)
            .ok_or(CoreError::FrameTooLarge { len: n.saturating_mul(8).saturating_add(1), max: self.cfg.max_frame })
    }

    /// Send `xs` and receive the peer's vector of the same length: one round.
    pub async fn exchange_ring(&mut self, xs: &[R]) -> Result<Vec<R>> {
        self.send_ring(xs)?;
        self.recv_ring(xs.len()).await
    }

    /// Write everything queued and close our sending direction (for TLS this
    /// sends close_notify, so the peer sees a clean end of stream), then read
    /// and discard what the peer still sends until it closes too, for at
    /// most [`CLOSE_LINGER`] (or the timeout if shorter): a socket closed
    /// with unread bytes (a keepalive, say) resets the connection, and the
    /// peer would lose what it has not read yet. An Abort seen meanwhile is
    /// kept for [`Channel::drain_until_abort`].
    pub async fn close(&mut self) -> Result<()> {
        self.close_now().await?;
        if let Ok(Ok(code)) = tokio::time::timeout(self.cfg.timeout.min(CLOSE_LINGER), self.drain_until_abort()).await {
            self.abort_at_close = Some(code);
        }
        Ok(())
    }

    /// The Abort the peer sent, if [`Channel::close`] read one while waiting
    /// for the peer's end (a peer that gave up after our last message).
    pub fn abort_seen_at_close(&self) -> Option<AbortCode> {
        self.abort_at_close
    }

    /// [`Channel::close`] without waiting for the peer's end: for a channel
    /// the peer sends nothing on (an idle link), where no byte of the peer's
    /// can be left unread.
    pub async fn close_now(&mut self) -> Result<()> {
        self.flush().await?;
        let after = self.cfg.timeout;
        self.writer.closed.store(true, Ordering::Relaxed);
        match tokio::time::timeout(after, async { self.writer.writer.lock().await.shutdown().await }).await {
            Err(_) => Err(CoreError::Timeout { context: "closing the connection", after }),
            Ok(r) => r.map_err(CoreError::io("closing the connection")),
        }
    }

    /// Tell the peer why we give up, best effort (errors are ignored: the
    /// session is ending anyway). Only the code crosses: see [`AbortCode`].
    pub async fn abort(&mut self, code: AbortCode) {
        if self.send_tagged(Tag::Abort, &[code as u8]).is_ok() {
            let _ = self.flush().await;
        }
    }
}

/// The code of an Abort body (the bytes after the tag). A body that is not
/// exactly one byte is a peer that does not speak this protocol version.
pub fn abort_code_of(body: &[u8]) -> AbortCode {
    match body {
        [b] => AbortCode::from_byte(*b),
        _ => AbortCode::Unknown,
    }
}

fn decode_ring_into(frame: &[u8], n: usize, out: &mut Vec<R>) -> Result<()> {
    let Some(&tag) = frame.first() else {
        return Err(CoreError::Malformed("empty frame where ring elements were expected".into()));
    };
    if tag == Tag::Abort as u8 {
        return Err(CoreError::PeerAborted(abort_code_of(&frame[1..])));
    }
    if tag != Tag::Ring as u8 {
        return Err(CoreError::UnexpectedMessage { expected: "Ring".into(), got: tag_name(tag) });
    }
    let body = &frame[1..];
    if body.len() != 8 * n {
        return Err(CoreError::Malformed(format!("expected {n} ring elements ({} bytes), got {} bytes", 8 * n, body.len())));
    }
    out.extend(body.chunks_exact(8).map(|c| {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        u64::from_le_bytes(b)
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A side that computes for longer than the peer's timeout, blocking the
    /// only thread of its runtime: with keepalive frames the peer keeps
    /// waiting and then gets the messages intact (frames and keepalives
    /// never mix); without them it times out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keepalive_frames_keep_a_slow_healthy_peer_within_the_timeout() {
        async fn slow_sender(keepalive: Option<Duration>) -> Result<Vec<R>> {
            let cfg = ChannelConfig::default().with_timeout(Duration::from_millis(300)).with_keepalive(keepalive);
            // The sender: its own single-threaded runtime (where its channel
            // is made), blocked while it "computes".
            let (tx, rx) = std::sync::mpsc::channel();
            let sender = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async move {
                    let (mut a, b) = Channel::mem_pair(cfg);
                    tx.send(b).unwrap();
                    for i in 0..3u64 {
                        std::thread::sleep(Duration::from_millis(400));
                        a.send_ring(&[i; 1000]).unwrap();
                        if a.flush().await.is_err() {
                            break;
                        }
                    }
                    a
                })
            });
            let mut b = rx.recv().unwrap();
            let mut got = Vec::new();
            for _ in 0..3 {
                match b.recv_ring(1000).await {
                    Ok(v) => got.extend(v),
                    Err(e) => {
                        drop(b);
                        let _ = sender.join();
                        return Err(e);
                    }
                }
            }
            let _a = sender.join().unwrap();
            let got: Result<Vec<R>> = Ok(got);
            // Keepalives are not metered: only the three frames count.
            if got.is_ok() {
                assert_eq!(b.meter().total().bytes_recv, 3 * (HEADER + 1 + 8000) as u64);
            }
            got
        }
        let got = slow_sender(Some(Duration::from_millis(50))).await.unwrap();
        assert_eq!(got, [0u64, 1, 2].iter().flat_map(|&i| [i; 1000]).collect::<Vec<_>>());
        // Negative control: the same peer without keepalives trips the timeout.
        assert!(matches!(slow_sender(None).await, Err(CoreError::Timeout { .. })));
    }

    #[tokio::test]
    async fn exchange_and_meter_over_memory() {
        let (mut a, mut b) = Channel::mem_pair(ChannelConfig::default());
        let xs: Vec<u64> = (0..1000).collect();
        let ys: Vec<u64> = (0..1000).map(|i| i * 3).collect();
        let (ra, rb) = tokio::join!(a.exchange_ring(&xs), b.exchange_ring(&ys));
        assert_eq!(ra.unwrap(), ys);
        assert_eq!(rb.unwrap(), xs);
        let c = a.meter().total();
        assert_eq!(c.bytes_sent, (HEADER + 1 + 8000) as u64);
        assert_eq!(c.bytes_recv, (HEADER + 1 + 8000) as u64);
        assert_eq!(c.rounds, 1);
    }

    #[tokio::test]
    async fn wrong_length_and_wrong_tag_are_errors() {
        let (mut a, mut b) = Channel::mem_pair(ChannelConfig::default());
        a.send_ring(&[1, 2, 3]).unwrap();
        a.flush().await.unwrap();
        let err = b.recv_ring(2).await.unwrap_err();
        assert!(matches!(&err, CoreError::FrameLength { len: 24, expected, .. } if expected == "exactly 16"), "{err}");
        let (mut a, mut b) = Channel::mem_pair(ChannelConfig::default());
        a.send_tagged(Tag::Bytes, b"x").unwrap();
        a.flush().await.unwrap();
        assert!(matches!(b.recv_ring(1).await, Err(CoreError::UnexpectedMessage { .. })));
    }

    #[tokio::test]
    async fn tagged_frames_are_bounded_per_receive() {
        let (mut a, mut b) = Channel::mem_pair(ChannelConfig::default());
        // At the limit: accepted.
        a.send_tagged(Tag::Bytes, &[7; 100]).unwrap();
        a.flush().await.unwrap();
        assert_eq!(b.recv_tagged_max(Tag::Bytes, 100).await.unwrap(), vec![7; 100]);
        // One byte more: refused, and only the header and tag were read.
        a.send_tagged(Tag::Bytes, &[7; 101]).unwrap();
        a.flush().await.unwrap();
        let err = b.recv_tagged_max(Tag::Bytes, 100).await.unwrap_err();
        assert!(matches!(&err, CoreError::FrameLength { len: 101, expected, .. } if expected == "at most 100"), "{err}");
        assert_eq!(b.meter().total().bytes_recv, (HEADER + 101) as u64);
    }

    #[tokio::test]
    async fn draining_skips_frames_and_returns_the_abort() {
        let (mut a, mut b) = Channel::mem_pair(ChannelConfig::default());
        a.send_ring(&vec![1; 100_000]).unwrap();
        a.send_tagged(Tag::Bytes, b"x").unwrap();
        a.abort(AbortCode::Model).await;
        assert_eq!(b.drain_until_abort().await.unwrap(), AbortCode::Model);
        a.send_tagged(Tag::Abort, &[b'x'; MAX_ABORT + 1]).unwrap();
        let (_, got) = tokio::join!(a.flush(), b.drain_until_abort());
        assert!(matches!(got, Err(CoreError::FrameLength { .. })), "{got:?}");
    }

    #[tokio::test]
    async fn an_abort_is_read_wherever_a_frame_is_expected_up_to_its_cap() {
        let (mut a, mut b) = Channel::mem_pair(ChannelConfig::default());
        a.abort(AbortCode::Limit).await;
        assert!(matches!(b.recv_ring(1000).await, Err(CoreError::PeerAborted(AbortCode::Limit))));
        a.abort(AbortCode::Input).await;
        assert!(matches!(b.recv_tagged_max(Tag::Hello, 1).await, Err(CoreError::PeerAborted(AbortCode::Input))));
        // An Abort longer than MAX_ABORT is refused before its body is read.
        a.send_tagged(Tag::Abort, &[b'x'; MAX_ABORT + 1]).unwrap();
        let (sent, got) = tokio::join!(a.flush(), b.recv_ring(1));
        let _ = sent;
        assert!(matches!(got, Err(CoreError::FrameLength { .. })), "{got:?}");
    }
}
