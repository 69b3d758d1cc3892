//! `pann-party`: one role of a private inference session.
//!
//! ```text
//! pann certs --role dealer --out dealer-certs/     # each role on its own machine; swap the .crt files
//! pann-party --role dealer --listen 127.0.0.1:7002 --certs dealer-certs/
//! pann-party --role server --listen 127.0.0.1:7001 --dealer 127.0.0.1:7002 --model card.json --certs server-certs/
//! pann-party --role client --connect 127.0.0.1:7001 --dealer 127.0.0.1:7002 --alpha 9 --expect-model SHA256 --input img.png --certs client-certs/
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use pann_approx::Precision;
use pann_bin::input;
use pann_bin::metrics::{serve_metrics, Metrics};
use pann_bin::party::{check_cert_dir, run_client, run_dealer, run_server, Net};
use pann_bin::report::top_k;
use pann_bin::service::{default_max_sessions, ServiceOptions, DEALER_MAX_SESSIONS};
use pann_engine::{SessionLimits, DEFAULT_SESSION_MEMORY};
use pann_mpc_core::Role;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RoleArg {
    /// Holds the model (party 0): needs --model, --listen and --dealer; learns
    /// only the public architecture, the client's batch size and the costs.
    /// Serves clients until SIGINT or SIGTERM (or --sessions).
    Server,
    /// Holds the images (party 1): needs --connect, --dealer, --alpha and
    /// --input; alone learns the predictions.
    Client,
    /// Supplies correlated randomness to both parties: needs --listen; sees no
    /// inputs, weights or outputs. Serves the sessions of many clients and
    /// servers until SIGINT or SIGTERM (or --sessions).
    Dealer,
}

/// One role of a PANN private inference: a server with a model and a client
/// with images compute the prediction together over mutually authenticated
/// TLS, with correlated randomness from a dealer. Only the client learns the
/// prediction.
///
/// Each role first creates its own identity where it runs and gives its
/// certificate (never its key) to its peers (`pann certs --help`). Then start
/// the dealer, then the server, then the client (each waits up to --timeout
/// for the ones it needs); the client pins the model digest the server prints:
///
///   pann-party --role dealer --listen 127.0.0.1:7002 --certs dealer-certs/
///   pann-party --role server --listen 127.0.0.1:7001 --dealer 127.0.0.1:7002 --model card.json --certs server-certs/
///   pann-party --role client --connect 127.0.0.1:7001 --dealer 127.0.0.1:7002 --alpha 9 \
///       --expect-model SHA256 --input img.png --certs client-certs/
///
/// Every connection's role is bound to the certificate its peer presented:
/// a peer whose Hello claims another role is refused.
///
/// The server and the dealer are services: they run sessions concurrently
/// (--max-sessions; a client beyond them waits in a queue or is told the
/// server is busy), survive any client's failure, and stop on SIGINT or
/// SIGTERM after letting the sessions in flight finish (--drain). The
/// server keeps its links to the dealer from one session to the next (and
/// opens a fresh one when the dealer closed it, e.g. after a restart); the
/// dealer pairs a session's server and client by the session id both bind
/// into their handshakes, so several servers can share one dealer, and a
/// dealer restart costs only the sessions in flight. Material streams from
/// the dealer while the client computes, a layer or a chunk of one at a
/// time: what a party holds does not grow with the batch past a few images.
/// Log lines (stderr) carry the session's id; --report appends one JSON
/// line per session; --metrics serves Prometheus counters.
///
/// If a session goes wrong (a bad image, different parameters, a peer that
/// fails or goes silent), the client exits with status 1 and one line on
/// stderr naming the problem; the server and the dealer log it and serve
/// the next session. A server whose model does not load exits at once. The
/// role that failed first tells its peers only an abort code with a fixed
/// public text (which they print); its own details, which may name secret
/// values or file paths, stay in its own log.
#[derive(Parser, Debug)]
#[command(
    name = "pann-party",
    version,
    about = "One role (server, client or dealer) of a PANN private inference over mutually authenticated TLS; only the client learns the prediction",
    long_about,
    verbatim_doc_comment
)]
struct Args {
    /// Which role this process plays.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// Address to listen on, HOST:PORT (server: where the client connects;
    /// dealer: where both parties connect). Port 0 picks a free port, which is
    /// printed on stderr.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// The server's address, HOST:PORT (client only).
    #[arg(long, value_name = "HOST:PORT")]
    connect: Option<String>,
    /// The dealer's address, HOST:PORT (server and client).
    #[arg(long, value_name = "HOST:PORT")]
    dealer: Option<String>,
    /// This role's certificate directory, made by `pann certs --role ROLE
    /// --out DIR`: its own `<role>.key` and `<role>.crt`, and the `.crt` of
    /// each peer it talks to (server: client.crt, dealer.crt; client:
    /// server.crt, dealer.crt; dealer: server.crt, client.crt), which are
    /// pinned: a peer presenting any other certificate is refused. Refused if
    /// it holds any other private key. Required unless --insecure-tcp.
    #[arg(long, value_name = "DIR", required_unless_present = "insecure_tcp")]
    certs: Option<PathBuf>,
    /// Use plain TCP instead of TLS: traffic is neither encrypted nor
    /// authenticated. For debugging only; all roles must use it.
    #[arg(long)]
    insecure_tcp: bool,
    /// The model card, a JSON file (server only). The weights file it names
    /// is read from the same directory and checked against the card's SHA-256;
    /// the card must carry calibrated ReLU bounds (`pann calibrate`).
    #[arg(long, value_name = "CARD.json")]
    model: Option<PathBuf>,
    /// PANN precision 2^-ALPHA: each ReLU's error is at most B x 2^-ALPHA for
    /// inputs within its calibrated bound B (4..=14; higher is more accurate
    /// and costs more rounds). Server: a number runs every ReLU at it; without
    /// it, the card's per-layer alphas (`relu_alphas`, written by `pann plan`)
    /// or else its default_alpha. Client: required, and must equal the
    /// server's (checked in the handshake): a number, or for a per-layer card
    /// the string the server prints, `per-layer:A1,A2,...` (one alpha per ReLU
    /// in execution order; `pann plan` prints it too).
    #[arg(long, value_name = "ALPHA")]
    alpha: Option<Precision>,
    /// Input images (client only): PNG files of --image-size pixels square
    /// (RGB, RGBA or gray, 8 bits), CIFAR-10 binary files (one label byte and
    /// 3072 pixel bytes per record), and/or IDX image files as Fashion-MNIST
    /// ships them (t10k-images-idx3-ubyte[.gz], its labels file beside it).
    /// --first/--count select the records of binary and IDX files.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    input: Vec<PathBuf>,
    /// First record used from each CIFAR-10 binary or IDX input (0-based).
    #[arg(long, value_name = "N", default_value_t = 0)]
    first: usize,
    /// Number of records used from each CIFAR-10 binary or IDX input (fewer
    /// if the file ends first).
    #[arg(long, value_name = "N", default_value_t = 1)]
    count: usize,
    /// Width and height a PNG input must have, in pixels (it is not resized).
    #[arg(long, value_name = "PIXELS", default_value_t = 32)]
    image_size: usize,
    /// Channels a PNG input is read into: 3 (RGB, CIFAR models) or 1 (gray,
    /// Fashion-MNIST models; colour is turned into luma).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=3))]
    channels: u64,
    /// Images per protocol run (client only; the server and the dealer follow
    /// the client's request). A batch shares its rounds, so larger batches
    /// cost fewer rounds per image; the last batch is padded with blank images
    /// whose outputs are dropped.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// Refuse a server whose public model description (architecture, bounds,
    /// alpha, precisions; as printed by the server) has another SHA-256, given
    /// in hex (client only). Without it the client accepts whatever model the
    /// server announces, and warns.
    #[arg(long, value_name = "SHA256")]
    expect_model: Option<String>,
    /// Write a JSON report here: the model digest, timings per batch and per
    /// layer, and each channel's metered bytes and rounds per phase and layer;
    /// the client's report also holds the predictions and logits. The server
    /// and the dealer append one line per session (JSON Lines) with its id,
    /// "ok" and, for a failed session, the local error.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Longest silence from a peer, in seconds: to connect (or be connected
    /// to), and while waiting for each message. A healthy peer is never
    /// silent that long: it sends keepalive frames (see --keepalive) while it
    /// computes or waits, so only a frozen, vanished or stalled peer trips
    /// it. --session-deadline bounds a session as a whole.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    timeout: u64,
    /// Send a keepalive frame (4 bytes, not metered) to a peer after this
    /// many seconds without writing to it: while this role computes a large
    /// layer, waits in the server's queue, or waits at the dealer for the
    /// other half of its session. 0: never (then --timeout must exceed the
    /// longest healthy pause: one layer of the online phase at --batch).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    keepalive: u64,
    /// Largest batch this role accepts (server and dealer: a client asking
    /// for more is refused with an error naming the limit; at most 1024).
    /// The memory budget below may lower it: the server prints the batch
    /// it accepts for its model.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1024))]
    max_batch: u64,
    /// Memory budget of one session, in MiB (all roles): the material held
    /// at once (material streams, so a party holds two requests' worth: the
    /// largest linear layer's, or a chunk of a ReLU layer's, at most 64 MiB),
    /// an estimate of the working memory per image, and the masked weights
    /// (the server prints the figures). The server and the dealer refuse a
    /// larger batch, the client a model whose session at its --batch would
    /// not fit.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_SESSION_MEMORY >> 20, value_parser = clap::value_parser!(u64).range(1..=(1 << 24)))]
    max_session_memory: u64,
    /// Sessions run at once. Server: default one per core of this machine;
    /// each holds about --batch x the material per image the server prints.
    /// Dealer: paired sessions, default 64 (a dealer session is light: it
    /// generates and streams one request at a time); a pair beyond them
    /// waits up to --queue-wait, then both parties are told it is busy.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4096))]
    max_sessions: Option<u64>,
    /// Clients that may wait for a free session slot (server). A client
    /// beyond them, or one that waits longer than --queue-wait, is told the
    /// server is busy (abort code 10) and may try again later.
    #[arg(long, value_name = "N", default_value_t = 16)]
    queue: u64,
    /// Longest wait for a session slot, in seconds (server).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    queue_wait: u64,
    /// End after this many connections (server and dealer; the dealer
    /// counts sessions, i.e. pairs), exiting 1 if any of them failed; also
    /// give up when no connection comes within --timeout. Without it the
    /// role serves until SIGINT or SIGTERM, then stops accepting, lets the
    /// sessions in flight finish within --drain, and exits 0.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    sessions: Option<u64>,
    /// Overall deadline of one session, in seconds, from its connection (all
    /// roles): a session still running then is ended with abort code 3
    /// (timeout), however lively its peers.
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    session_deadline: u64,
    /// After SIGINT or SIGTERM: how long the sessions in flight may still
    /// run, in seconds (server and dealer).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    drain: u64,
    /// Sessions of material the dealer prepares ahead (dealer only): once it
    /// has served a session of a model, batch and number of batches, it
    /// keeps up to N sessions' material for that kind ready, so that the
    /// next client's request costs its online phase and the handshakes.
    /// Each holds party 1's corrections for the whole session (ResNet-20 at
    /// alpha 9: about 95 MB per image of every batch), within
    /// --pool-memory; at most 8 kinds are pooled. 0: material is made
    /// during each session.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pool: u64,
    /// Memory all of the dealer's prepared sessions may hold together, in
    /// MiB (dealer only, with --pool): a session that would not fit is made
    /// live instead.
    #[arg(long, value_name = "MIB", default_value_t = 2048)]
    pool_memory: u64,
    /// Serve operational metrics in the Prometheus text format on this
    /// address (server and dealer): sessions started, completed, failed,
    /// turned away as busy, in flight and waiting; bytes and rounds; a
    /// histogram of session wall times. Off by default.
    #[arg(long, value_name = "HOST:PORT")]
    metrics: Option<String>,
}

fn need<'a>(v: &'a Option<String>, flag: &str, role: &str) -> Result<&'a str> {
    v.as_deref().with_context(|| format!("the {role} needs {flag}"))
}

fn main() -> std::process::ExitCode {
    let _ = pann_bin::alloc::keep_large_buffers();
    let a = Args::parse();
    let role = format!("{:?}", a.role).to_lowercase();
    // Log lines on stderr: time, level, the session they belong to, message.
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).with_target(false).init();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{role}: error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(run(a));
    // Blocking work still running (a dealer's pool) does not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match res {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole chain of causes, prefixed by the role.
            eprintln!("{role}: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(a: Args) -> Result<()> {
    let limits = SessionLimits::new(usize::try_from(a.max_batch).unwrap_or(usize::MAX), a.max_session_memory << 20);
    let keepalive = Some(Duration::from_secs(a.keepalive)).filter(|d| !d.is_zero());
    let net =
        Net { certs: if a.insecure_tcp { None } else { a.certs.clone() }, timeout: Duration::from_secs(a.timeout), keepalive, limits };
    let me = match a.role {
        RoleArg::Server => Role::Server,
        RoleArg::Client => Role::Client,
        RoleArg::Dealer => Role::Dealer,
    };
    // Before anything else: a directory holding another role's key is refused.
    if let Some(dir) = &net.certs {
        check_cert_dir(dir, me)?;
    }
    let opts = ServiceOptions {
        max_sessions: match (a.max_sessions, a.role) {
            (Some(n), _) => n as usize,
            (None, RoleArg::Dealer) => DEALER_MAX_SESSIONS,
            (None, _) => default_max_sessions(),
        },
        queue: usize::try_from(a.queue).unwrap_or(usize::MAX),
        queue_wait: Duration::from_secs(a.queue_wait),
        sessions: a.sessions,
        deadline: Duration::from_secs(a.session_deadline),
        drain: Duration::from_secs(a.drain),
        report: a.report.clone(),
    };
    let metrics = Metrics::new(match a.role {
        RoleArg::Server => "server",
        RoleArg::Client => "client",
        RoleArg::Dealer => "dealer",
    });
    if let Some(addr) = &a.metrics {
        let l = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening for metrics on {addr}"))?;
        tracing::info!("metrics on http://{}/metrics", l.local_addr()?);
        tokio::spawn(serve_metrics(l, Arc::clone(&metrics)));
    }
    let report = match a.role {
        RoleArg::Dealer => {
            return run_dealer(
                &net,
                need(&a.listen, "--listen", "dealer")?,
                opts,
                usize::try_from(a.pool).unwrap_or(usize::MAX),
                a.pool_memory.saturating_mul(1 << 20),
                metrics,
            )
            .await
        }
        RoleArg::Server => {
            let model = a.model.as_ref().context("the server needs --model CARD.json")?;
            let alpha = match &a.alpha {
                None => None,
                Some(p) => Some(p.uniform().with_context(|| {
                    format!("the server's --alpha must be a number (per-layer alphas come from the card), got {:?}", p.to_string())
                })?),
            };
            return run_server(
                &net,
                model,
                alpha,
                need(&a.listen, "--listen", "server")?,
                need(&a.dealer, "--dealer", "server")?,
                opts,
                metrics,
            )
            .await;
        }
        RoleArg::Client => {
            let alpha = a.alpha.as_ref().context("the client needs --alpha (it must equal the server's)")?;
            if a.expect_model.is_none() {
                tracing::warn!(
                    "client: warning: no --expect-model: any model the server announces is accepted (pin the digest the server prints)"
                );
            }
            let png_shape = pann_models::Shape::new(a.channels as usize, a.image_size, a.image_size);
            let imgs = input::load(&a.input, a.first, a.count, png_shape)?;
            let names = imgs.class_names.clone();
            let session = run_client(
                &net,
                need(&a.connect, "--connect", "client")?,
                need(&a.dealer, "--dealer", "client")?,
                alpha,
                a.expect_model.as_deref(),
                imgs,
                usize::try_from(a.batch).unwrap_or(usize::MAX),
            );
            let (r, _) = tokio::time::timeout(Duration::from_secs(a.session_deadline), session)
                .await
                .map_err(|_| anyhow::anyhow!("client session: passed its deadline of {} s (--session-deadline)", a.session_deadline))??;
            let name = |k: usize| names.get(k).map(|n| format!(" ({n})")).unwrap_or_default();
            for (i, p) in r.predictions.iter().enumerate() {
                let truth = p.label.map(|l| format!(", true class {l}{}", name(l as usize))).unwrap_or_default();
                match (p.class, &p.unreliable) {
                    (Some(c), _) => println!("image {i}: predicted class {c}{}{truth}", name(c)),
                    (None, why) => {
                        println!("image {i}: UNRELIABLE, no prediction{truth}: {}", why.as_deref().unwrap_or("implausible logits"))
                    }
                }
                let top: Vec<String> = top_k(&p.logits, 5).iter().map(|&k| format!("{k}{}: {:.3}", name(k), p.logits[k])).collect();
                println!("  top-5 logits: {}", top.join(", "));
            }
            let on: f64 = r.batches.iter().map(|b| b.online_s).sum();
            let off: f64 = r.batches.iter().map(|b| b.offline_s).sum();
            println!("client: {} image(s), offline {:.3} s, online {:.3} s", r.predictions.len(), off, on);
            r
        }
    };
    if let Some(path) = &a.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?).with_context(|| format!("writing the report {}", path.display()))?;
    }
    Ok(())
}
