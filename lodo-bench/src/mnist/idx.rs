//! Reader for the IDX files MNIST ships in (LeCun's format), gzip-compressed or raw.
//!
//! An IDX file is a 4-byte magic `0x00 0x00 <type> <rank>`, then `rank` big-endian `u32`
//! dimensions, then the data in row-major order. MNIST uses type `0x08` (unsigned bytes), rank 3
//! for images (`n × 28 × 28`) and rank 1 for labels. A file whose first two bytes are the gzip
//! magic `1f 8b` is decompressed first.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What is wrong with an IDX file.
#[derive(Debug)]
#[non_exhaustive]
pub enum IdxErrorKind {
    /// The file could not be opened or read.
    Io(std::io::Error),
    /// The gzip stream is corrupt or truncated.
    Gzip(std::io::Error),
    /// Fewer than 4 bytes, or the first two bytes are not zero.
    BadMagic {
        /// The first (up to) four bytes.
        found: Vec<u8>,
    },
    /// The element type is not `0x08` (unsigned byte).
    UnsupportedType {
        /// The type byte found.
        found: u8,
    },
    /// The rank is not the one expected (3 for images, 1 for labels).
    WrongRank {
        /// Rank expected.
        expected: u8,
        /// Rank found.
        found: u8,
    },
    /// The header ends before all dimensions are given.
    TruncatedHeader,
    /// The data section is shorter than the dimensions require.
    Truncated {
        /// Bytes the dimensions require.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// Bytes follow the data section.
    TrailingBytes {
        /// Number of extra bytes.
        extra: usize,
    },
    /// An image dimension is not the one required.
    WrongImageSize {
        /// Required `(rows, cols)`.
        expected: (usize, usize),
        /// Found `(rows, cols)`.
        found: (usize, usize),
    },
    /// The file holds no records.
    Empty,
    /// A label file's count differs from its image file's.
    LabelCount {
        /// Labels in the label file.
        labels: usize,
        /// Images in the image file.
        images: usize,
        /// The image file.
        image_path: PathBuf,
    },
    /// A label is not a digit 0–9.
    BadLabel {
        /// Its position in the file.
        index: usize,
        /// The value found.
        value: u8,
    },
}

/// An error reading an IDX file, naming the file.
#[derive(Debug)]
pub struct IdxError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub kind: IdxErrorKind,
}

impl fmt::Display for IdxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.kind {
            IdxErrorKind::Io(e) => write!(f, "{p}: cannot read: {e}"),
            IdxErrorKind::Gzip(e) => write!(f, "{p}: corrupt or truncated gzip stream: {e}"),
            IdxErrorKind::BadMagic { found } => write!(
                f,
                "{p}: not an IDX file (magic must start with 00 00, found {found:02x?})"
            ),
            IdxErrorKind::UnsupportedType { found } => write!(
                f,
                "{p}: unsupported IDX element type 0x{found:02x} (only 0x08, unsigned byte)"
            ),
            IdxErrorKind::WrongRank { expected, found } => {
                write!(f, "{p}: IDX rank {found}, expected {expected}")
            }
            IdxErrorKind::TruncatedHeader => write!(f, "{p}: truncated IDX header"),
            IdxErrorKind::Truncated { expected, found } => write!(
                f,
                "{p}: truncated: the header announces {expected} data bytes, the file has {found}"
            ),
            IdxErrorKind::TrailingBytes { extra } => {
                write!(f, "{p}: {extra} unexpected bytes after the data")
            }
            IdxErrorKind::WrongImageSize { expected, found } => write!(
                f,
                "{p}: images are {}×{}, expected {}×{}",
                found.0, found.1, expected.0, expected.1
            ),
            IdxErrorKind::Empty => write!(f, "{p}: holds no records"),
            IdxErrorKind::LabelCount {
                labels,
                images,
                image_path,
            } => write!(
                f,
                "{p}: {labels} labels, but {} holds {images} images (the two files do not belong \
                 together)",
                image_path.display()
            ),
            IdxErrorKind::BadLabel { index, value } => {
                write!(f, "{p}: label {index} is {value}, not a digit 0–9")
            }
        }
    }
}

/// The message already includes the underlying I/O error, so there is no separate `source`
/// (error chains would print it twice).
impl std::error::Error for IdxError {}

/// A parsed IDX array of bytes: its dimensions and its data, row-major.
#[derive(Clone, Debug)]
pub struct IdxArray {
    /// The dimensions.
    pub dims: Vec<usize>,
    /// `dims.iter().product()` bytes.
    pub data: Vec<u8>,
}

/// Reads the file's bytes, gunzipping when it starts with the gzip magic.
///
/// # Errors
/// [`IdxErrorKind::Io`] or [`IdxErrorKind::Gzip`].
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, IdxError> {
    let err = |kind| IdxError {
        path: path.to_path_buf(),
        kind,
    };
    let raw = std::fs::read(path).map_err(|e| err(IdxErrorKind::Io(e)))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| err(IdxErrorKind::Gzip(e)))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses IDX bytes of rank `rank` (element type `u8`); `path` only names the file in errors.
///
/// # Errors
/// Any [`IdxErrorKind`] but `Io`, `Gzip`, `WrongImageSize`.
pub fn parse(bytes: &[u8], rank: u8, path: &Path) -> Result<IdxArray, IdxError> {
    let err = |kind| IdxError {
        path: path.to_path_buf(),
        kind,
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(err(IdxErrorKind::BadMagic {
            found: bytes[..bytes.len().min(4)].to_vec(),
        }));
    }
    if bytes[2] != 0x08 {
        return Err(err(IdxErrorKind::UnsupportedType { found: bytes[2] }));
    }
    if bytes[3] != rank {
        return Err(err(IdxErrorKind::WrongRank {
            expected: rank,
            found: bytes[3],
        }));
    }
    let header = 4 + 4 * usize::from(rank);
    if bytes.len() < header {
        return Err(err(IdxErrorKind::TruncatedHeader));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    // A product overflowing usize cannot be present in memory: report it as truncated.
    let expected = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .unwrap_or(usize::MAX);
    let found = bytes.len() - header;
    if found < expected {
        return Err(err(IdxErrorKind::Truncated { expected, found }));
    }
    if found > expected {
        return Err(err(IdxErrorKind::TrailingBytes {
            extra: found - expected,
        }));
    }
    if expected == 0 {
        return Err(err(IdxErrorKind::Empty));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// A set of `n` grey-level images of `rows × cols` bytes.
#[derive(Clone, Debug)]
pub struct Images {
    /// Number of images.
    pub n: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `n·rows·cols` bytes, image-major, then row-major.
    pub pixels: Vec<u8>,
}

impl Images {
    /// Image `i` as `rows·cols` bytes.
    ///
    /// # Panics
    /// If `i >= n`.
    #[must_use]
    pub fn image(&self, i: usize) -> &[u8] {
        let s = self.rows * self.cols;
        &self.pixels[i * s..(i + 1) * s]
    }

    /// The images `range` as a new set.
    ///
    /// # Panics
    /// If the range is out of bounds.
    #[must_use]
    pub fn slice(&self, range: std::ops::Range<usize>) -> Images {
        let s = self.rows * self.cols;
        Images {
            n: range.len(),
            rows: self.rows,
            cols: self.cols,
            pixels: self.pixels[range.start * s..range.end * s].to_vec(),
        }
    }
}

/// Reads an IDX image file (rank 3, `u8`) whose images must be `rows × cols`.
///
/// # Errors
/// Any [`IdxError`], naming `path`.
pub fn read_images(path: &Path, rows: usize, cols: usize) -> Result<Images, IdxError> {
    let bytes = read_maybe_gzip(path)?;
    let a = parse(&bytes, 3, path)?;
    if (a.dims[1], a.dims[2]) != (rows, cols) {
        return Err(IdxError {
            path: path.to_path_buf(),
            kind: IdxErrorKind::WrongImageSize {
                expected: (rows, cols),
                found: (a.dims[1], a.dims[2]),
            },
        });
    }
    Ok(Images {
        n: a.dims[0],
        rows,
        cols,
        pixels: a.data,
    })
}

/// The first existing file among `<dir>/<stem>.gz` and `<dir>/<stem>`.
///
/// # Errors
/// [`IdxErrorKind::Io`] (not found) naming the `.gz` path.
pub fn find(dir: &Path, stem: &str) -> Result<PathBuf, IdxError> {
    let gz = dir.join(format!("{stem}.gz"));
    let raw = dir.join(stem);
    if gz.is_file() {
        Ok(gz)
    } else if raw.is_file() {
        Ok(raw)
    } else {
        Err(IdxError {
            path: gz,
            kind: IdxErrorKind::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("neither it nor {} exists", raw.display()),
            )),
        })
    }
}

/// Reads an IDX label file (rank 1, `u8`) and checks it against its `images`, read from
/// `image_path`: as many labels as images, each a digit 0–9.
///
/// # Errors
/// Any [`IdxError`], naming `path`: [`IdxErrorKind::LabelCount`], [`IdxErrorKind::BadLabel`].
pub fn read_labels(path: &Path, images: &Images, image_path: &Path) -> Result<Vec<u8>, IdxError> {
    let err = |kind| IdxError {
        path: path.to_path_buf(),
        kind,
    };
    let a = parse(&read_maybe_gzip(path)?, 1, path)?;
    if a.dims[0] != images.n {
        return Err(err(IdxErrorKind::LabelCount {
            labels: a.dims[0],
            images: images.n,
            image_path: image_path.to_path_buf(),
        }));
    }
    if let Some((index, &value)) = a.data.iter().enumerate().find(|(_, v)| **v > 9) {
        return Err(err(IdxErrorKind::BadLabel { index, value }));
    }
    Ok(a.data)
}

/// MNIST training and test images from a directory in the canonical layout
/// (`train-images-idx3-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`).
///
/// The label files (`train-labels-idx1-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`) are optional:
/// the autoregression task does not use labels. When present they are read and checked
/// ([`read_labels`]), so a folder whose images and labels do not belong together is refused.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// Training images.
    pub train: Images,
    /// Test images.
    pub test: Images,
    /// Training labels, if the folder has them.
    pub train_labels: Option<Vec<u8>>,
    /// Test labels, if the folder has them.
    pub test_labels: Option<Vec<u8>>,
}

impl Mnist {
    /// Loads both image files (28 × 28) from `dir`, and the label files that exist.
    ///
    /// # Errors
    /// Any [`IdxError`], naming the file.
    pub fn load(dir: &Path) -> Result<Self, IdxError> {
        let labels = |stem: &str, images: &Images, image_path: &Path| match find(dir, stem) {
            Ok(p) => read_labels(&p, images, image_path).map(Some),
            Err(_) => Ok(None),
        };
        let train_path = find(dir, "train-images-idx3-ubyte")?;
        let train = read_images(&train_path, 28, 28)?;
        let test_path = find(dir, "t10k-images-idx3-ubyte")?;
        let test = read_images(&test_path, 28, 28)?;
        let train_labels = labels("train-labels-idx1-ubyte", &train, &train_path)?;
        let test_labels = labels("t10k-labels-idx1-ubyte", &test, &test_path)?;
        Ok(Self {
            train,
            test,
            train_labels,
            test_labels,
        })
    }
}
