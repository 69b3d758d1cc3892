//! CIFAR-10 binary reader and PNG input.

mod common;

use pann_models::cifar::{Cifar10, CifarDir, RECORD_BYTES};
use pann_models::image::{decode_png, encode_png, read_png};
use pann_models::ModelError;

#[test]
fn cifar_reader_reads_and_rejects() {
    let d = common::first64();
    assert_eq!(d.len(), 64);
    assert_eq!(d.labels[..4], [3, 8, 8, 0]);
    let bytes = std::fs::read(common::crate_dir().join("tests/data/test_batch_first64.bin")).unwrap();
    let dir = common::tmp_dir("cifar");
    let bad = dir.join("short.bin");
    common::write(&bad, &bytes[..RECORD_BYTES * 2 + 5]);
    let e = Cifar10::read_file(&bad).unwrap_err();
    assert!(matches!(e, ModelError::Cifar { .. }) && e.to_string().contains("short.bin"), "{e}");
    let mut wrong_label = bytes[..RECORD_BYTES].to_vec();
    wrong_label[0] = 11;
    assert!(Cifar10::from_bytes(&wrong_label, "x".as_ref()).is_err());
    let e = CifarDir::new(&dir).test().unwrap_err();
    assert!(e.to_string().contains("test_batch.bin"), "{e}");
}

#[test]
fn png_round_trip_and_size_check() {
    let d = common::first64();
    let dir = common::tmp_dir("png");
    let p = dir.join("img.png");
    common::write(&p, &encode_png(d.image(5), 32, 32).unwrap());
    assert_eq!(read_png(&p, 32, 32).unwrap(), d.image(5));
    let e = read_png(&p, 28, 28).unwrap_err();
    assert!(e.to_string().contains("32x32") && e.to_string().contains("img.png"), "{e}");
    let big = encode_png(&vec![7u8; 3 * 64 * 64], 64, 64).unwrap();
    assert!(decode_png(&big, "big.png".as_ref(), 32, 32).is_err());
    assert!(decode_png(b"nope", "junk.png".as_ref(), 32, 32).is_err());
    assert!(read_png(dir.join("absent.png"), 32, 32).is_err());
}

#[test]
fn shipped_pngs_are_the_test_records() {
    let d = common::first64();
    for (i, label) in [(0usize, 3u8), (1, 8), (2, 8), (3, 0)] {
        let p = common::crate_dir().join(format!("assets/images/{i:05}-{label}.png"));
        assert_eq!(read_png(&p, 32, 32).unwrap(), d.image(i), "{}", p.display());
        assert_eq!(d.labels[i], label);
    }
}
