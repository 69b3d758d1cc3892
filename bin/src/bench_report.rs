//! `pann bench-report`: BENCHMARKS.md and SVG plots from the JSON results.

use std::path::Path;

use anyhow::Result;

pub fn render(_results: &Path, _out: &Path) -> Result<()> {
    anyhow::bail!("not yet")
}
