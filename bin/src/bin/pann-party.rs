//! `pann-party`: one role of a private inference session.
//!
//! ```text
//! pann certs --out certs/
//! pann-party --role dealer --listen 127.0.0.1:7002 --certs certs/
//! pann-party --role server --listen 127.0.0.1:7001 --dealer 127.0.0.1:7002 --model card.json --certs certs/
//! pann-party --role client --connect 127.0.0.1:7001 --dealer 127.0.0.1:7002 --alpha 9 --input img.png --certs certs/
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use pann_bin::input;
use pann_bin::party::{run_client, run_dealer, run_server, Net};
use pann_bin::report::top_k;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RoleArg {
    /// Holds the model (party 0); learns only the public architecture and the costs.
    Server,
    /// Holds the images (party 1); alone learns the predictions.
    Client,
    /// Supplies correlated randomness; sees no inputs, weights or outputs.
    Dealer,
}

/// One role of a PANN private inference: a server with a model and a client
/// with images compute the prediction together over mutually authenticated
/// TLS, with correlated randomness from a dealer. Only the client learns the
/// prediction.
#[derive(Parser, Debug)]
#[command(name = "pann-party", version, about, long_about = None)]
struct Args {
    /// Which role this process plays.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// Address to listen on (server: for the client; dealer: for both parties).
    #[arg(long)]
    listen: Option<String>,
    /// The server's address (client).
    #[arg(long)]
    connect: Option<String>,
    /// The dealer's address (server and client).
    #[arg(long)]
    dealer: Option<String>,
    /// Directory with this role's `<role>.key`/`<role>.crt` and its peers'
    /// certificates, as written by `pann certs`.
    #[arg(long, required_unless_present = "insecure_tcp")]
    certs: Option<PathBuf>,
    /// Plain TCP without TLS: traffic is neither encrypted nor authenticated.
    #[arg(long)]
    insecure_tcp: bool,
    /// Model card (server); the weights file is named in the card.
    #[arg(long)]
    model: Option<PathBuf>,
    /// PANN precision 2^-alpha (server: defaults to the card's; client: required,
    /// must equal the server's).
    #[arg(long)]
    alpha: Option<u32>,
    /// Input images (client): PNG files, or a CIFAR-10 binary file (see --first, --count).
    #[arg(long, num_args = 1..)]
    input: Vec<PathBuf>,
    /// First record of a CIFAR-10 binary input.
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// Number of records of a CIFAR-10 binary input.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Side of the square PNG inputs, in pixels.
    #[arg(long, default_value_t = 32)]
    image_size: usize,
    /// Images per protocol run (client): rounds are shared across a batch.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Refuse a server whose public model description has another SHA-256 (client).
    #[arg(long)]
    expect_model: Option<String>,
    /// Write a JSON report (predictions, timings, cost meters per phase and layer).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Seconds to wait for any peer before giving up.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

fn need<'a>(v: &'a Option<String>, flag: &str, role: &str) -> Result<&'a str> {
    v.as_deref().with_context(|| format!("the {role} needs {flag}"))
}

fn main() -> std::process::ExitCode {
    let a = Args::parse();
    let role = format!("{:?}", a.role).to_lowercase();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{role}: error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(a)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole chain of causes, prefixed by the role.
            eprintln!("{role}: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(a: Args) -> Result<()> {
    let net = Net { certs: if a.insecure_tcp { None } else { a.certs.clone() }, timeout: Duration::from_secs(a.timeout) };
    let report = match a.role {
        RoleArg::Dealer => run_dealer(&net, need(&a.listen, "--listen", "dealer")?).await?,
        RoleArg::Server => {
            let model = a.model.as_ref().context("the server needs --model CARD.json")?;
            let r = run_server(&net, model, a.alpha, need(&a.listen, "--listen", "server")?, need(&a.dealer, "--dealer", "server")?).await?;
            let on: f64 = r.batches.iter().map(|b| b.online_s).sum();
            eprintln!("server: done, {} batch(es), online {:.3} s", r.batches.len(), on);
            r
        }
        RoleArg::Client => {
            let alpha = a.alpha.context("the client needs --alpha (it must equal the server's)")?;
            if a.batch == 0 {
                bail!("--batch must be at least 1");
            }
            // A bad input is reported to the server and the dealer too (run_client).
            let imgs = input::load(&a.input, a.first, a.count, a.image_size);
            let names = imgs.as_ref().map(|i| i.class_names.clone()).unwrap_or_default();
            let (r, _) = run_client(
                &net,
                need(&a.connect, "--connect", "client")?,
                need(&a.dealer, "--dealer", "client")?,
                alpha,
                a.expect_model.as_deref(),
                imgs,
                a.batch,
            )
            .await?;
            let name = |k: usize| names.get(k).map(|n| format!(" ({n})")).unwrap_or_default();
            for (i, p) in r.predictions.iter().enumerate() {
                let truth = p.label.map(|l| format!(", true class {l}{}", name(l as usize))).unwrap_or_default();
                println!("image {i}: predicted class {}{}{truth}", p.class, name(p.class));
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
