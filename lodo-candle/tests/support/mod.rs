//! The MNIST digits shipped in `lodo-bench/data/mnist-10k/` (IDX, gzip), a 784-64-10 MLP with a
//! seeded initialisation, and a trainer shared by the tests and the examples.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Result, Tensor};
use candle_nn::{Linear, Module, Optimizer, VarBuilder, VarMap, linear};

/// The shipped data folder.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lodo-bench/data/mnist-10k")
}

/// Reads one gzipped IDX file of bytes: (dimensions, data).
pub fn read_idx(path: &Path) -> std::io::Result<(Vec<usize>, Vec<u8>)> {
    let raw = std::fs::read(path)?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut bytes)?;
    let bad = |m: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {m}", path.display()),
        )
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 8 {
        return Err(bad("not an IDX file of bytes"));
    }
    let rank = usize::from(bytes[3]);
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(bad("truncated header"));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    if bytes.len() - header != dims.iter().product::<usize>() {
        return Err(bad("data length does not match the dimensions"));
    }
    Ok((dims, bytes[header..].to_vec()))
}

/// Images scaled to `[0, 1]` (`n × 784`, f32) and labels.
pub struct Digits {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
}

impl Digits {
    pub fn load(split: &str) -> std::io::Result<Self> {
        let dir = data_dir();
        let (_, images) = read_idx(&dir.join(format!("{split}-images-idx3-ubyte.gz")))?;
        let (_, labels) = read_idx(&dir.join(format!("{split}-labels-idx1-ubyte.gz")))?;
        Ok(Self {
            images: images.iter().map(|&b| f32::from(b) / 255.0).collect(),
            labels: labels.iter().map(|&l| u32::from(l)).collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// The examples `idx` as tensors `(batch × 784, batch)` of dtype `dtype`.
    pub fn batch(&self, idx: &[usize], dtype: DType) -> Result<(Tensor, Tensor)> {
        let mut x = Vec::with_capacity(idx.len() * 784);
        for &i in idx {
            x.extend_from_slice(&self.images[i * 784..(i + 1) * 784]);
        }
        let x = Tensor::from_vec(x, (idx.len(), 784), &Device::Cpu)?.to_dtype(dtype)?;
        let y: Vec<u32> = idx.iter().map(|&i| self.labels[i]).collect();
        Ok((x, Tensor::from_vec(y, idx.len(), &Device::Cpu)?))
    }
}

/// SplitMix64: seeds the initialisation and the batch order without touching candle's RNG
/// (which cannot be seeded on the CPU).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[−1, 1)`.
    pub fn symmetric(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// 784 → 64 (ReLU) → 10.
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Mlp {
    /// Builds the MLP in `varmap` and overwrites candle's random initialisation with a seeded
    /// one (uniform `±1/√fan_in`, PyTorch's default), so every optimizer starts from the same
    /// weights.
    pub fn new(varmap: &mut VarMap, dtype: DType, seed: u64) -> Result<Self> {
        let vb = VarBuilder::from_varmap(varmap, dtype, &Device::Cpu);
        let fc1 = linear(784, 64, vb.pp("fc1"))?;
        let fc2 = linear(64, 10, vb.pp("fc2"))?;
        let mut rng = Rng::new(seed);
        for (name, shape, fan_in) in [
            ("fc1.weight", vec![64, 784], 784),
            ("fc1.bias", vec![64], 784),
            ("fc2.weight", vec![10, 64], 64),
            ("fc2.bias", vec![10], 64),
        ] {
            let n: usize = shape.iter().product();
            let bound = 1.0 / (fan_in as f64).sqrt();
            let v: Vec<f64> = (0..n).map(|_| bound * rng.symmetric()).collect();
            let t = Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(dtype)?;
            varmap.set_one(name, t)?;
        }
        Ok(Self { fc1, fc2 })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.relu()?)
    }

    /// Mean cross-entropy on a batch.
    pub fn loss(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        candle_nn::loss::cross_entropy(&self.forward(x)?, y)
    }

    /// Accuracy and mean loss on a whole set.
    pub fn evaluate(&self, digits: &Digits, dtype: DType) -> Result<(f64, f64)> {
        let idx: Vec<usize> = (0..digits.len()).collect();
        let (x, y) = digits.batch(&idx, dtype)?;
        let logits = self.forward(&x)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        let pred = logits.argmax(D::Minus1)?;
        let correct = pred
            .eq(&y)?
            .to_dtype(DType::F64)?
            .sum_all()?
            .to_scalar::<f64>()?;
        Ok((correct / digits.len() as f64, loss))
    }
}

/// The batch order of a run: `steps` batches of `batch` indices drawn from a seeded sequence
/// of shuffled epochs (the same for every optimizer).
pub fn batches(n: usize, batch: usize, steps: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = Rng::new(seed ^ 0xba7c);
    let mut order: Vec<usize> = Vec::new();
    let mut out = Vec::with_capacity(steps);
    for _ in 0..steps {
        if order.len() < batch {
            let mut epoch: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                epoch.swap(i, rng.below(i + 1));
            }
            order.extend(epoch);
        }
        out.push(order.drain(..batch).collect());
    }
    out
}

/// Trains `model` with `opt` on `batches`; returns the training loss of each step (before the
/// step, on that step's batch).
pub fn train<O: Optimizer>(
    model: &Mlp,
    opt: &mut O,
    train: &Digits,
    batches: &[Vec<usize>],
    dtype: DType,
) -> Result<Vec<f64>> {
    let mut losses = Vec::with_capacity(batches.len());
    for idx in batches {
        let (x, y) = train.batch(idx, dtype)?;
        let loss = model.loss(&x, &y)?;
        losses.push(loss.to_dtype(DType::F64)?.to_scalar::<f64>()?);
        opt.backward_step(&loss)?;
    }
    Ok(losses)
}

/// Mean of a slice.
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}
