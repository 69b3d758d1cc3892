//! Export records of a CIFAR-10 binary file as 32x32 RGB PNGs, e.g. to give
//! a client an image file:
//!
//! ```text
//! cargo run -p pann-models --example cifar_to_png -- FILE.bin FIRST COUNT OUT_DIR
//! ```
//! Files are named `<index>-<label>.png`.

use pann_models::image::encode_png;
use pann_models::ImageSet;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [file, first, count, out] = a.as_slice() else {
        return Err("usage: cifar_to_png FILE.bin FIRST COUNT OUT_DIR".into());
    };
    let (first, count): (usize, usize) = (first.parse()?, count.parse()?);
    let data = ImageSet::read_file(file)?;
    std::fs::create_dir_all(out)?;
    for i in first..(first + count).min(data.len()) {
        let path = std::path::Path::new(out).join(format!("{i:05}-{}.png", data.labels[i]));
        std::fs::write(&path, encode_png(data.image(i), 32, 32)?)?;
        println!("{}", path.display());
    }
    Ok(())
}
