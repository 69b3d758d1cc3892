//! PNG input for single images (what a client of `pann-party` holds).

use crate::error::{ModelError, Result};
use crate::network::Shape;
use std::path::Path;

/// Decode a PNG into CHW bytes of `shape`: 3 channels (RGB planes) or 1 (gray).
/// Gray, gray+alpha, RGB and RGBA at 8 bits are accepted (alpha dropped, gray
/// replicated for RGB, colour turned into BT.601 luma for gray); the size must
/// be exactly `shape.w x shape.h`.
pub fn read_png(path: impl AsRef<Path>, shape: Shape) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    decode_png(&bytes, path, shape)
}

/// As [`read_png`], from memory; `path` only names the source in errors.
pub fn decode_png(bytes: &[u8], path: &Path, shape: Shape) -> Result<Vec<u8>> {
    let (width, height) = (shape.w, shape.h);
    let err = |reason: String| ModelError::Image { path: path.into(), reason };
    if shape.c != 1 && shape.c != 3 {
        return Err(err(format!("the network expects {} channels; PNG input gives 1 (gray) or 3 (RGB)", shape.c)));
    }
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
    let mut out = vec![0u8; shape.c * plane];
    for i in 0..plane {
        let px = &data[i * channels..(i + 1) * channels];
        let (r, g, b) = if channels < 3 { (px[0], px[0], px[0]) } else { (px[0], px[1], px[2]) };
        if shape.c == 1 {
            out[i] = if channels < 3 { r } else { ((299 * r as u32 + 587 * g as u32 + 114 * b as u32 + 500) / 1000) as u8 };
        } else {
            out[i] = r;
            out[plane + i] = g;
            out[2 * plane + i] = b;
        }
    }
    Ok(out)
}

/// Encode CHW bytes, 3 planes (RGB) or 1 (gray), as an 8-bit PNG (for tests
/// and for exporting test images a client can send).
pub fn encode_png(chw: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
    let plane = width * height;
    let (color, data) = if chw.len() == 3 * plane {
        let mut rgb = Vec::with_capacity(3 * plane);
        for i in 0..plane {
            rgb.extend_from_slice(&[chw[i], chw[plane + i], chw[2 * plane + i]]);
        }
        (png::ColorType::Rgb, rgb)
    } else if chw.len() == plane {
        (png::ColorType::Grayscale, chw.to_vec())
    } else {
        return Err(ModelError::Image {
            path: "<memory>".into(),
            reason: format!("{} bytes for a {width}x{height} image of 1 or 3 channels", chw.len()),
        });
    };
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| ModelError::Image { path: "<memory>".into(), reason: e.to_string() })?;
        w.write_image_data(&data).map_err(|e| ModelError::Image { path: "<memory>".into(), reason: e.to_string() })?;
    }
    Ok(out)
}
