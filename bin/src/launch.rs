//! Launching the three roles as separate `pann-party` processes on loopback
//! (used by `pann demo` and `pann bench`), optionally through the userspace
//! link emulator of [`crate::netem`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pann_approx::Precision;

/// A child process that is killed if the caller stops early.
pub struct Guard(Option<Child>, &'static str);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Guard {
    /// Wait for the process to exit successfully before `deadline`.
    pub fn wait(&mut self, deadline: Instant) -> Result<()> {
        let Some(c) = self.0.as_mut() else { return Ok(()) };
        loop {
            if let Some(st) = c.try_wait()? {
                self.0 = None;
                if !st.success() {
                    bail!("the {} process failed ({st}); its messages are above", self.1);
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the {} process did not finish in time", self.1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, then released).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `pann-party` binary next to the running executable.
pub fn party_exe() -> Result<PathBuf> {
    let party = std::env::current_exe()?.with_file_name("pann-party");
    if !party.exists() {
        bail!("{} not found: build both binaries (cargo build --release -p pann-bin)", party.display());
    }
    Ok(party)
}

/// One secure session on loopback.
pub struct Session<'a> {
    /// Working directory: `certs/<role>/` must exist there (`pann certs
    /// --local`); reports are written there.
    pub dir: &'a Path,
    /// The model card the server deploys.
    pub card: &'a Path,
    /// The precision: uniform (`"9"`, given to the server and the client),
    /// or per layer (`"per-layer:4,5,..."`: the server runs the card's
    /// `relu_alphas`, the client expects this string).
    pub precision: Precision,
    /// The client's input: a CIFAR-10 binary or IDX images file.
    pub input: &'a Path,
    /// First record of `input` to classify.
    pub first: usize,
    /// Records to classify.
    pub count: usize,
    /// Images per protocol run.
    pub batch: usize,
    /// Plain TCP instead of TLS.
    pub insecure_tcp: bool,
    /// Silence the parties' own output.
    pub quiet: bool,
    /// Each role's `--timeout`; the whole session may take four times as long.
    pub timeout: Duration,
    /// Route every connection through a userspace link emulator (None or a
    /// spec without relay: direct loopback).
    pub link: Option<&'a crate::netem::LinkSpec>,
}

impl Session<'_> {
    /// Run dealer, server and client; return the client's report.
    pub fn run(&self) -> Result<serde_json::Value> {
        let party = party_exe()?;
        let (server_addr, dealer_addr) = (format!("127.0.0.1:{}", free_port()?), format!("127.0.0.1:{}", free_port()?));
        // With a link emulator: one relay per pair of roles, each forwarding to
        // the listening role (client->server, client->dealer, server->dealer).
        let relays = match self.link.filter(|l| l.relay) {
            Some(spec) => Some((
                crate::netem::Relay::start(server_addr.parse()?, spec)?,
                crate::netem::Relay::start(dealer_addr.parse()?, spec)?,
                crate::netem::Relay::start(dealer_addr.parse()?, spec)?,
            )),
            None => None,
        };
        let (client_to_server, client_to_dealer, server_to_dealer) = match &relays {
            Some((cs, cd, sd)) => (cs.addr.to_string(), cd.addr.to_string(), sd.addr.to_string()),
            None => (server_addr.clone(), dealer_addr.clone(), dealer_addr.clone()),
        };
        let alpha = &self.precision.to_string();
        let uniform = self.precision.uniform();
        let server_alpha: Vec<&str> = if uniform.is_some() { vec!["--alpha", alpha] } else { vec![] };
        let timeout = self.timeout.as_secs().max(1).to_string();
        // The client pins the model it expects, as a deployment should.
        let digest = crate::party::public_model_digest(self.card, uniform)?;
        let common = |role: &str| {
            let mut c = Command::new(&party);
            c.args(["--role", role, "--timeout", &timeout, "--report"]).arg(self.dir.join(format!("{role}.json"))).stdin(Stdio::null());
            // The bench runs all three roles itself and chooses its batches
            // (up to the protocol's 1024): no per-session memory budget.
            c.args(["--max-session-memory", &(1u64 << 24).to_string()]);
            if self.insecure_tcp {
                c.arg("--insecure-tcp");
            } else {
                c.arg("--certs").arg(self.dir.join("certs").join(role));
            }
            if self.quiet {
                c.stdout(Stdio::null()).stderr(Stdio::null());
            }
            c
        };
        // One session each: the server and the dealer exit when it ends.
        let mut dealer = Guard(Some(common("dealer").args(["--listen", &dealer_addr, "--sessions", "1"]).spawn()?), "dealer");
        let mut server = Guard(
            Some(
                common("server")
                    .args(["--listen", &server_addr, "--dealer", &server_to_dealer, "--sessions", "1"])
                    .args(&server_alpha)
                    .arg("--model")
                    .arg(self.card)
                    .spawn()?,
            ),
            "server",
        );
        let mut client = Guard(
            Some(
                common("client")
                    .args(["--connect", &client_to_server, "--dealer", &client_to_dealer, "--alpha", alpha, "--expect-model", &digest])
                    .args(["--first", &self.first.to_string(), "--count", &self.count.to_string(), "--batch", &self.batch.to_string()])
                    .arg("--input")
                    .arg(self.input)
                    .spawn()?,
            ),
            "client",
        );
        let deadline = Instant::now() + self.timeout * 4;
        client.wait(deadline)?;
        server.wait(deadline)?;
        dealer.wait(deadline)?;
        let path = self.dir.join("client.json");
        serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)
            .with_context(|| format!("parsing {}", path.display()))
    }
}
