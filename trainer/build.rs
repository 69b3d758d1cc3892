//! Link arguments for every binary and test of this crate.
//!
//! - An rpath to libtorch's lib directory, so `pann-train` runs without
//!   LD_LIBRARY_PATH. torch-sys has `links = "tch"` and exports the directory
//!   it linked against as `DEP_TCH_LIBTORCH_LIB`; that variable is only
//!   visible to direct dependents, which is why this crate depends on
//!   torch-sys itself.
//! - `libtorch_cuda.so` with `--no-as-needed` when the libtorch has one: no
//!   symbol of it is referenced directly (CUDA kernels register themselves
//!   when the library loads), so the default `--as-needed` would drop it and
//!   `Device::cuda_if_available()` would always answer CPU on a GPU machine.
//!   It is linked only when the CUDA libraries it needs are installed beside
//!   torch (`site-packages/nvidia/cudnn`, as a full install has them): the
//!   minimal CPU install of `scripts/install-torch.sh` ships libtorch_cuda.so
//!   without them, and a binary that links it would not start.
//!   PANN_TRAINER_NO_CUDA=1 skips it in any case.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=PANN_TRAINER_NO_CUDA");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        let no_cuda = std::env::var("PANN_TRAINER_NO_CUDA").is_ok_and(|v| !v.is_empty() && v != "0");
        // dir = site-packages/torch/lib
        let cuda_libs = Path::new(&dir).join("../../nvidia/cudnn");
        if !no_cuda && Path::new(&dir).join("libtorch_cuda.so").exists() && cuda_libs.exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
}
