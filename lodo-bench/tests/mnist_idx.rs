//! The IDX reader: the shipped data loads, and malformed or truncated files give errors that
//! name the file and what is wrong.

use std::io::Write;
use std::path::{Path, PathBuf};

use lodo_bench::mnist::idx::{self, IdxErrorKind, Mnist};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lodo-mnist-idx-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn header(rank: u8, dims: &[u32]) -> Vec<u8> {
    let mut h = vec![0, 0, 0x08, rank];
    for d in dims {
        h.extend(d.to_be_bytes());
    }
    h
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn shipped_subset_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist-10k");
    let m = Mnist::load(&dir).unwrap();
    assert_eq!((m.train.n, m.test.n), (9000, 1000));
    assert_eq!((m.train.rows, m.train.cols), (28, 28));
    // Real digits: mostly background, some ink.
    let zeros = m.train.pixels.iter().filter(|&&p| p == 0).count() as f64;
    let frac = zeros / m.train.pixels.len() as f64;
    assert!((0.7..0.9).contains(&frac), "background fraction {frac}");
}

#[test]
fn raw_and_gzip_read_the_same() {
    let dir = temp_dir("same");
    let mut bytes = header(3, &[2, 28, 28]);
    bytes.extend((0..2 * 784).map(|i| (i % 251) as u8));
    let raw = write(&dir, "a-idx3-ubyte", &bytes);
    let gz = write(&dir, "b-idx3-ubyte.gz", &gzip(&bytes));
    let a = idx::read_images(&raw, 28, 28).unwrap();
    let b = idx::read_images(&gz, 28, 28).unwrap();
    assert_eq!(a.pixels, b.pixels);
    assert_eq!(a.n, 2);
    assert_eq!(a.image(1)[0], (784 % 251) as u8);
}

/// Asserts the error names the file and matches `kind`.
fn expect_err(path: &Path, check: impl Fn(&IdxErrorKind) -> bool, words: &str) {
    let e = idx::read_images(path, 28, 28).unwrap_err();
    assert!(check(&e.kind), "{path:?}: unexpected {e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message lacks the file: {msg}"
    );
    assert!(msg.contains(words), "message lacks {words:?}: {msg}");
}

#[test]
fn malformed_files_give_clear_errors() {
    let dir = temp_dir("bad");
    let mut good = header(3, &[2, 28, 28]);
    good.extend(vec![7u8; 2 * 784]);

    let p = write(&dir, "truncated", &good[..good.len() - 10]);
    expect_err(
        &p,
        |k| {
            matches!(
                k,
                IdxErrorKind::Truncated {
                    expected: 1568,
                    found: 1558
                }
            )
        },
        "truncated",
    );

    let p = write(&dir, "truncated.gz", &gzip(&good[..100]));
    expect_err(
        &p,
        |k| matches!(k, IdxErrorKind::Truncated { .. }),
        "truncated",
    );

    let gz = gzip(&good);
    let p = write(&dir, "cut-stream.gz", &gz[..gz.len() / 2]);
    expect_err(&p, |k| matches!(k, IdxErrorKind::Gzip(_)), "gzip");

    let mut extra = good.clone();
    extra.push(1);
    let p = write(&dir, "extra", &extra);
    expect_err(
        &p,
        |k| matches!(k, IdxErrorKind::TrailingBytes { extra: 1 }),
        "unexpected bytes",
    );

    let p = write(&dir, "magic", b"PK\x03\x04rest");
    expect_err(
        &p,
        |k| matches!(k, IdxErrorKind::BadMagic { .. }),
        "not an IDX file",
    );

    let p = write(&dir, "short", &[0, 0]);
    expect_err(
        &p,
        |k| matches!(k, IdxErrorKind::BadMagic { .. }),
        "not an IDX file",
    );

    let mut f = good.clone();
    f[2] = 0x0d; // float
    let p = write(&dir, "float", &f);
    expect_err(
        &p,
        |k| matches!(k, IdxErrorKind::UnsupportedType { found: 0x0d }),
        "element type",
    );

    let mut labels = header(1, &[3]);
    labels.extend([1, 2, 3]);
    let p = write(&dir, "labels", &labels);
    expect_err(
        &p,
        |k| {
            matches!(
                k,
                IdxErrorKind::WrongRank {
                    expected: 3,
                    found: 1
                }
            )
        },
        "rank",
    );

    let p = write(&dir, "header", &header(3, &[2, 28])[..10]);
    expect_err(&p, |k| matches!(k, IdxErrorKind::TruncatedHeader), "header");

    let mut small = header(3, &[1, 20, 20]);
    small.extend(vec![0u8; 400]);
    let p = write(&dir, "small", &small);
    expect_err(
        &p,
        |k| matches!(k, IdxErrorKind::WrongImageSize { .. }),
        "20×20",
    );

    let p = write(&dir, "empty", &header(3, &[0, 28, 28]));
    expect_err(&p, |k| matches!(k, IdxErrorKind::Empty), "no records");

    expect_err(
        &dir.join("missing"),
        |k| matches!(k, IdxErrorKind::Io(_)),
        "cannot read",
    );

    // A folder without the files names what it looked for.
    let e = Mnist::load(&dir).unwrap_err().to_string();
    assert!(e.contains("train-images-idx3-ubyte"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn label_files_are_optional_but_checked_when_present() {
    // The shipped subset has labels: as many as images, digits 0–9, all ten present.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist-10k");
    let m = Mnist::load(&shipped).unwrap();
    let l = m.train_labels.as_ref().unwrap();
    assert_eq!(l.len(), m.train.n);
    assert_eq!(m.test_labels.as_ref().unwrap().len(), m.test.n);
    assert!((0..10).all(|d| l.contains(&d)) && l.iter().all(|&d| d <= 9));

    let dir = temp_dir("labels");
    let mut images = header(3, &[3, 28, 28]);
    images.extend(vec![0u8; 3 * 784]);
    write(&dir, "train-images-idx3-ubyte", &images);
    write(&dir, "t10k-images-idx3-ubyte", &images);
    // No label files: loads, without labels.
    let m = Mnist::load(&dir).unwrap();
    assert!(m.train_labels.is_none() && m.test_labels.is_none());
    let imgs = idx::read_images(&dir.join("train-images-idx3-ubyte"), 28, 28).unwrap();
    let img_path = dir.join("train-images-idx3-ubyte");
    // Two labels for three images.
    let mut two = header(1, &[2]);
    two.extend([1, 2]);
    let p = write(&dir, "train-labels-idx1-ubyte", &two);
    let e = idx::read_labels(&p, &imgs, &img_path).unwrap_err();
    assert!(matches!(
        e.kind,
        IdxErrorKind::LabelCount {
            labels: 2,
            images: 3,
            ..
        }
    ));
    let msg = Mnist::load(&dir).unwrap_err().to_string();
    assert!(
        msg.contains("train-labels-idx1-ubyte: 2 labels, but") && msg.contains("holds 3 images"),
        "{msg}"
    );
    // A label that is not a digit.
    let mut bad = header(1, &[3]);
    bad.extend([1, 10, 2]);
    let p = write(&dir, "train-labels-idx1-ubyte", &gzip(&bad));
    let e = idx::read_labels(&p, &imgs, &img_path).unwrap_err();
    assert!(matches!(
        e.kind,
        IdxErrorKind::BadLabel {
            index: 1,
            value: 10
        }
    ));
    // Good labels load.
    let mut good = header(1, &[3]);
    good.extend([0, 9, 4]);
    write(&dir, "train-labels-idx1-ubyte", &good);
    std::fs::remove_file(dir.join("train-labels-idx1-ubyte.gz")).ok();
    assert_eq!(Mnist::load(&dir).unwrap().train_labels.unwrap(), [0, 9, 4]);
    std::fs::remove_dir_all(&dir).ok();
}
