//! CIFAR-10 binary reader and PNG input.

mod common;

use pann_models::cifar::{CifarDir, RECORD_BYTES};
use pann_models::image::{decode_png, encode_png, read_png};
use pann_models::{ImageSet, ModelError, Shape};

fn rgb(size: usize) -> Shape {
    Shape::new(3, size, size)
}

#[test]
fn cifar_reader_reads_and_rejects() {
    let d = common::first64();
    assert_eq!(d.len(), 64);
    assert_eq!(d.labels[..4], [3, 8, 8, 0]);
    let bytes = std::fs::read(common::crate_dir().join("tests/data/test_batch_first64.bin")).unwrap();
    let dir = common::tmp_dir("cifar");
    let bad = dir.join("short.bin");
    common::write(&bad, &bytes[..RECORD_BYTES * 2 + 5]);
    let e = ImageSet::read_file(&bad).unwrap_err();
    assert!(matches!(e, ModelError::Cifar { .. }) && e.to_string().contains("short.bin"), "{e}");
    let mut wrong_label = bytes[..RECORD_BYTES].to_vec();
    wrong_label[0] = 11;
    assert!(pann_models::cifar::parse(&wrong_label, "x".as_ref()).is_err());
    let e = CifarDir::new(&dir).test().unwrap_err();
    assert!(e.to_string().contains("test_batch.bin"), "{e}");
}

#[test]
fn png_round_trip_and_size_check() {
    let d = common::first64();
    let dir = common::tmp_dir("png");
    let p = dir.join("img.png");
    common::write(&p, &encode_png(d.image(5), 32, 32).unwrap());
    assert_eq!(read_png(&p, rgb(32)).unwrap(), d.image(5));
    let e = read_png(&p, rgb(28)).unwrap_err();
    assert!(e.to_string().contains("32x32") && e.to_string().contains("img.png"), "{e}");
    let big = encode_png(&vec![7u8; 3 * 64 * 64], 64, 64).unwrap();
    assert!(decode_png(&big, "big.png".as_ref(), rgb(32)).is_err());
    assert!(decode_png(b"nope", "junk.png".as_ref(), rgb(32)).is_err());
    assert!(read_png(dir.join("absent.png"), rgb(32)).is_err());
}

#[test]
fn shipped_pngs_are_the_test_records() {
    let d = common::first64();
    for (i, label) in [(0usize, 3u8), (1, 8), (2, 8), (3, 0)] {
        let p = common::crate_dir().join(format!("assets/images/{i:05}-{label}.png"));
        assert_eq!(read_png(&p, rgb(32)).unwrap(), d.image(i), "{}", p.display());
        assert_eq!(d.labels[i], label);
    }
}

fn fashion_dir() -> std::path::PathBuf {
    common::crate_dir().join("tests/data/fashion-mnist-small")
}

#[test]
fn fashion_mnist_idx_directory_reads() {
    let dd = pann_models::DataDir::open(fashion_dir()).unwrap();
    assert_eq!(dd.kind, pann_models::DatasetKind::Idx);
    let train = dd.train(100).unwrap();
    let test = dd.test().unwrap();
    assert_eq!((train.len(), test.len()), (100, 128));
    assert_eq!(train.shape, Shape::new(1, 28, 28));
    assert_eq!(train.image(0).len(), 784);
    // The first test labels of Fashion-MNIST: ankle boot, pullover, trouser, trouser.
    assert_eq!(test.labels[..4], [9, 2, 1, 1]);
    assert!(test.labels.iter().all(|&l| l < 10));
    // One images file alone finds its labels beside it; gzip or not.
    let one = ImageSet::read_file(fashion_dir().join("t10k-images-idx3-ubyte.gz")).unwrap();
    assert_eq!(one, test);
    let dir = common::tmp_dir("idx-plain");
    let raw = pann_models::idx::read_maybe_gz(&fashion_dir().join("t10k-images-idx3-ubyte.gz")).unwrap();
    common::write(&dir.join("t10k-images-idx3-ubyte"), &raw);
    let e = ImageSet::read_file(dir.join("t10k-images-idx3-ubyte")).unwrap_err().to_string();
    assert!(e.contains("t10k-labels-idx1-ubyte") && e.contains("not beside it"), "{e}");
    let labels = pann_models::idx::read_maybe_gz(&fashion_dir().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    common::write(&dir.join("t10k-labels-idx1-ubyte"), &labels);
    assert_eq!(ImageSet::read_file(dir.join("t10k-images-idx3-ubyte")).unwrap(), test);
}

#[test]
fn idx_errors_name_the_file_and_the_fault() {
    let dir = common::tmp_dir("idx-bad");
    let images = dir.join("t10k-images-idx3-ubyte");
    let labels = dir.join("t10k-labels-idx1-ubyte");
    let error_of = |path: &std::path::Path| ImageSet::read_file(path).unwrap_err().to_string();
    let raw = pann_models::idx::read_maybe_gz(&fashion_dir().join("t10k-images-idx3-ubyte.gz")).unwrap();
    common::write(&images, &raw[..raw.len() - 10]);
    common::write(&labels, &pann_models::idx::to_idx(&[128], &[0; 128]));
    let e = error_of(&images);
    assert!(e.contains("t10k-images-idx3-ubyte") && e.contains("data bytes"), "{e}");
    // Labels that do not match the images in number, or name an 11th class.
    common::write(&images, &raw);
    common::write(&labels, &pann_models::idx::to_idx(&[127], &[0; 127]));
    let e = error_of(&images);
    assert!(e.contains("labels") && e.contains("128 images"), "{e}");
    let mut bad = vec![0u8; 128];
    bad[5] = 10;
    common::write(&labels, &pann_models::idx::to_idx(&[128], &bad));
    let e = error_of(&images);
    assert!(e.contains("label 5 is 10"), "{e}");
    // Corrupt gzip.
    common::write(&dir.join("x-images-idx3-ubyte.gz"), &[0x1f, 0x8b, 1, 2, 3]);
    let e = error_of(&dir.join("x-images-idx3-ubyte.gz"));
    assert!(e.contains("gzip"), "{e}");
    // A directory with only part of the dataset says what is missing and what was expected.
    std::fs::remove_file(&labels).unwrap();
    let e = pann_models::DataDir::open(&dir).unwrap_err().to_string();
    assert!(e.contains("is missing") && e.contains("data_batch_1.bin"), "{e}");
    let e = pann_models::DataDir::open(common::tmp_dir("empty")).unwrap_err().to_string();
    assert!(e.contains("no dataset files"), "{e}");
}

#[test]
fn gray_png_round_trip_and_luma() {
    let test = pann_models::DataDir::open(fashion_dir()).unwrap().test().unwrap();
    let dir = common::tmp_dir("gray");
    let p = dir.join("gray.png");
    common::write(&p, &encode_png(test.image(0), 28, 28).unwrap());
    assert_eq!(read_png(&p, Shape::new(1, 28, 28)).unwrap(), test.image(0));
    // A gray PNG given to an RGB network is replicated into three planes.
    let rgb3 = read_png(&p, rgb(28)).unwrap();
    assert_eq!(&rgb3[784..1568], test.image(0));
    // A colour PNG given to a gray network becomes luma: gray stays gray.
    let c = dir.join("colour.png");
    common::write(&c, &encode_png(&rgb3, 28, 28).unwrap());
    assert_eq!(read_png(&c, Shape::new(1, 28, 28)).unwrap(), test.image(0));
    assert!(read_png(&c, Shape::new(2, 28, 28)).unwrap_err().to_string().contains("2 channels"));
}
