//! PNG input for single images (what a client of `pann-party` holds).

use crate::error::{ModelError, Result};
use std::path::Path;

/// Decode a PNG into CHW bytes (RGB planes). Gray, gray+alpha, RGB and RGBA
/// at 8 bits are accepted (alpha dropped, gray replicated); the size must be
/// exactly `width x height`.
pub fn read_png(path: impl AsRef<Path>, width: usize, height: usize) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    decode_png(&bytes, path, width, height)
}

/// As [`read_png`], from memory; `path` only names the source in errors.
pub fn decode_png(bytes: &[u8], path: &Path, width: usize, height: usize) -> Result<Vec<u8>> {
    let err = |reason: String| ModelError::Image { path: path.into(), reason };
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| err(format!("not a readable PNG: {e}")))?;
    let (w, h) = {
        let info = reader.info();
        (info.width as usize, info.height as usize)
    };
    if (w, h) != (width, height) {
        return Err(err(format!("image is {w}x{h}, the network expects {width}x{height}")));
    }
    let size = reader.output_buffer_size().ok_or_else(|| err("image too large".into()))?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(|e| err(format!("cannot decode: {e}")))?;
    let data = &buf[..frame.buffer_size()];
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(err("indexed colour was not expanded".into())),
    };
    if frame.bit_depth != png::BitDepth::Eight || data.len() != w * h * channels {
        return Err(err(format!("unsupported pixel layout ({:?}, {:?})", frame.color_type, frame.bit_depth)));
    }
    let plane = w * h;
    let mut out = vec![0u8; 3 * plane];
    for i in 0..plane {
        let px = &data[i * channels..(i + 1) * channels];
        let (r, g, b) = if channels < 3 { (px[0], px[0], px[0]) } else { (px[0], px[1], px[2]) };
        out[i] = r;
        out[plane + i] = g;
        out[2 * plane + i] = b;
    }
    Ok(out)
}

/// Encode CHW RGB bytes as an 8-bit RGB PNG (for tests and for exporting
/// test images a client can send).
pub fn encode_png(chw: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
    let plane = width * height;
    if chw.len() != 3 * plane {
        return Err(ModelError::Image { path: "<memory>".into(), reason: format!("{} bytes for a {width}x{height} RGB image", chw.len()) });
    }
    let mut rgb = Vec::with_capacity(3 * plane);
    for i in 0..plane {
        rgb.extend_from_slice(&[chw[i], chw[plane + i], chw[2 * plane + i]]);
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| ModelError::Image { path: "<memory>".into(), reason: e.to_string() })?;
        w.write_image_data(&rgb).map_err(|e| ModelError::Image { path: "<memory>".into(), reason: e.to_string() })?;
    }
    Ok(out)
}
