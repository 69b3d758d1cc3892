//! `pann`: the PANN command-line front end.
use clap::Parser;

#[derive(Parser)]
#[command(name = "pann", version, about = "PANN: private inference with polynomial-approximated neural networks")]
enum Cmd {}

fn main() {
    let _ = Cmd::parse();
}
