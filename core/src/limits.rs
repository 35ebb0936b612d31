//! Bounds on what a file or a request may make us allocate, checked before anything is
//! allocated.
//!
//! A model card, a run config or a mixture file is small, but the numbers in it size large
//! allocations: a DDPM schedule of `levels` entries, a network of `base_channels x
//! channel_mult` widths, a batch of images of `shape`. Read from an untrusted file they could
//! claim `10^12` elements, and the allocation would abort the process (in the page: take the
//! worker down) with no message of ours. Every such number is checked here against a bound far
//! above what any model of this crate uses, and refused with a [`ConfigError`] naming the field,
//! the bound and the value. Binary headers (`.npy`, IDX) are checked against the bytes actually
//! present instead ([`crate::io::parse_npy`], [`crate::data::idx`]); gzip streams are cut at
//! [`MAX_DECOMPRESSED_BYTES`].
//!
//! The page's requests are bounded by an estimate of their memory ([`sampling_memory`]): the
//! sampler's copies of the state, the network's activations (every skip connection held for the
//! up path, the widest layers, attention's `n x n` matrix) for the whole batch, doubled under
//! classifier-free guidance (one batched call evaluates both branches).

use crate::error::ConfigError;
use crate::nn::diffusers::{DownBlockType, UNet2DConfig};
use crate::nn::{ClassifierConfig, MlpConfig, UNetConfig};
use crate::sampler::SamplerKind;
use crate::sde::SdeConfig;

/// Most levels of a discrete DDPM schedule (the papers use 1000; each level costs a few `f64`).
pub const MAX_LEVELS: usize = 1_000_000;
/// Most channels of any layer of a network (and width of an MLP's hidden layers).
pub const MAX_WIDTH: usize = 1 << 14;
/// Most U-Net levels, residual blocks per level, or MLP hidden layers.
pub const MAX_DEPTH: usize = 64;
/// Most classes of a class-conditional network.
pub const MAX_CLASSES: usize = 1 << 16;
/// Most parameters of a network: `2^27` (512 MiB of f32; the shipped U-Nets have 1.6 M).
pub const MAX_PARAMETERS: u64 = 1 << 27;
/// Largest height or width of an image.
pub const MAX_SIDE: usize = 1 << 14;
/// Most values of one data point (`c x h x w`, or an MLP's `dim`): `2^24`.
pub const MAX_POINT_ELEMENTS: u64 = 1 << 24;
/// Most values of one training batch (`batch_size` data points): `2^28` (1 GiB of f32).
pub const MAX_BATCH_ELEMENTS: u64 = 1 << 28;
/// Most sampler grid steps.
pub const MAX_STEPS: usize = 100_000;
/// Most bytes a gzip stream may decompress to: 2 GiB (MNIST's training images are 47 MB).
pub const MAX_DECOMPRESSED_BYTES: u64 = 1 << 31;
/// The memory a page request may take: 1 GiB (a wasm32 worker addresses 4 GiB at most).
pub const PAGE_MEMORY_BYTES: u64 = 1 << 30;
/// The largest single tensor a page request may make: 256 MiB, WebGPU's default
/// `maxBufferSize`.
pub const PAGE_BUFFER_BYTES: u64 = 256 << 20;

fn at_most(field: &str, what: &str, max: u64, found: impl std::fmt::Display) -> ConfigError {
    ConfigError::new(field, format!("{what} at most {max}"), found)
}

fn bound(field: &str, what: &str, value: usize, max: usize) -> Result<(), ConfigError> {
    if value <= max { Ok(()) } else { Err(at_most(field, what, max as u64, value)) }
}

/// Checks the size of an SDE's tables: a DDPM schedule's `levels` at most [`MAX_LEVELS`].
pub fn sde(config: &SdeConfig) -> Result<(), ConfigError> {
    match config {
        SdeConfig::Ddpm { levels, .. } => bound("levels", "a number of levels", *levels, MAX_LEVELS),
        _ => Ok(()),
    }
}

/// Checks a U-Net's sizes and returns an estimate of its parameter count (the weights of its
/// convolutions, linear layers, attention and class embedding; biases and norms left out).
///
/// # Errors
/// A width above [`MAX_WIDTH`], a depth above [`MAX_DEPTH`], classes above [`MAX_CLASSES`], or
/// an estimate above [`MAX_PARAMETERS`].
pub fn unet(c: &UNetConfig) -> Result<u64, ConfigError> {
    bound("in_channels", "channels", c.in_channels, MAX_WIDTH)?;
    if let Some(out) = c.out_channels {
        bound("out_channels", "channels", out, 2 * MAX_WIDTH)?;
    }
    bound("base_channels", "channels", c.base_channels, MAX_WIDTH)?;
    bound("channel_mult", "a number of levels", c.channel_mult.len(), MAX_DEPTH)?;
    for (i, &m) in c.channel_mult.iter().enumerate() {
        let width = m.checked_mul(c.base_channels).unwrap_or(usize::MAX);
        if width > MAX_WIDTH {
            return Err(at_most(&format!("channel_mult[{i}]"), "a multiplier giving a width", MAX_WIDTH as u64, format!("{m} (width {width})")));
        }
    }
    bound("num_res_blocks", "blocks per level", c.num_res_blocks, MAX_DEPTH)?;
    if let Some(n) = c.num_classes {
        bound("num_classes", "classes", n, MAX_CLASSES)?;
    }
    // At 1x1 a layer's FLOPs are twice its weights (crate::nn::flops counts 2 per weight).
    let weights = crate::nn::flops::unet_forward(c, 1, 1) / 2;
    let classes = c.num_classes.map_or(0, |n| (n as u64 + 1) * c.embedding_width() as u64);
    parameters(weights + classes)
}

/// Checks an MLP's sizes and returns its parameter count (weights and biases).
pub fn mlp(c: &MlpConfig) -> Result<u64, ConfigError> {
    bound("dim", "a data dimension", c.dim, MAX_POINT_ELEMENTS as usize)?;
    bound("hidden", "a width", c.hidden, MAX_WIDTH)?;
    bound("layers", "hidden layers", c.layers, MAX_DEPTH)?;
    let (d, h, l) = (c.dim as u64, c.hidden as u64, c.layers as u64);
    // Time embedding (2 linear layers h -> h), input d -> h, layers h -> h, output h -> d.
    parameters((2 + l) * (h * h + h) + (d * h + h) + (h * d + d))
}

/// Checks a classifier's sizes and returns an estimate of its parameter count (its two 3x3
/// convolutions and two linear layers).
pub fn classifier(c: &ClassifierConfig) -> Result<u64, ConfigError> {
    for (field, v) in [("in_channels", c.in_channels), ("channels1", c.channels1), ("channels2", c.channels2), ("hidden", c.hidden)] {
        bound(field, "channels", v, MAX_WIDTH)?;
    }
    bound("classes", "classes", c.classes, MAX_CLASSES)?;
    bound("image_size", "an image side", c.image_size, MAX_SIDE)?;
    let (i, c1, c2, h, k) = (c.in_channels as u64, c.channels1 as u64, c.channels2 as u64, c.hidden as u64, c.classes as u64);
    let flat = c2 * (c.image_size as u64 / 4).pow(2);
    parameters(9 * i * c1 + 9 * c1 * c2 + flat * h + h * k)
}

/// Checks a diffusers `UNet2DModel`'s sizes (its `config.json`, read from an imported model's
/// card) and returns a lower estimate of its parameter count: the 3x3 convolutions of its
/// residual blocks, `layers_per_block` of two convolutions down and one more block up per
/// level (`18 (2 L + 1) c^2` at width `c`; google/ddpm-cifar10-32's 35.7 M parameters estimate
/// as 19.2 M).
///
/// # Errors
/// A width above [`MAX_WIDTH`], levels or blocks above [`MAX_DEPTH`], or an estimate above
/// [`MAX_PARAMETERS`].
pub fn diffusers_unet(c: &crate::nn::diffusers::UNet2DConfig) -> Result<u64, ConfigError> {
    bound("in_channels", "channels", c.in_channels, MAX_WIDTH)?;
    bound("out_channels", "channels", c.out_channels, MAX_WIDTH)?;
    bound("block_out_channels", "a number of levels", c.block_out_channels.len(), MAX_DEPTH)?;
    bound("layers_per_block", "blocks per level", c.layers_per_block, MAX_DEPTH)?;
    let mut weights = 0u64;
    for (i, &w) in c.block_out_channels.iter().enumerate() {
        bound(&format!("block_out_channels[{i}]"), "a width", w, MAX_WIDTH)?;
        weights += 18 * (2 * c.layers_per_block as u64 + 1) * (w as u64).pow(2);
    }
    parameters(weights)
}

fn parameters(n: u64) -> Result<u64, ConfigError> {
    if n <= MAX_PARAMETERS { Ok(n) } else { Err(at_most("parameters", "a network of", MAX_PARAMETERS, format!("about {n} parameters"))) }
}

/// Checks the shape of one data point (`[c, h, w]` or `[dim]`) and returns its number of
/// values: each side at most [`MAX_SIDE`], the product at most [`MAX_POINT_ELEMENTS`].
pub fn point_shape(shape: &[usize]) -> Result<u64, ConfigError> {
    let sides = if shape.len() == 3 { &shape[1..] } else { &[][..] };
    if let Some(&s) = sides.iter().find(|&&s| s > MAX_SIDE) {
        return Err(at_most("shape", "image sides", MAX_SIDE as u64, format!("{shape:?} (a side of {s})")));
    }
    let n = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64)).unwrap_or(u64::MAX);
    if n > MAX_POINT_ELEMENTS {
        return Err(at_most("shape", "values per data point", MAX_POINT_ELEMENTS, format!("{shape:?} ({n} values)")));
    }
    Ok(n)
}

/// Checks a training batch: `batch_size` data points of `point` values at most
/// [`MAX_BATCH_ELEMENTS`] values.
pub fn batch(batch_size: usize, point: u64) -> Result<(), ConfigError> {
    let n = (batch_size as u64).saturating_mul(point);
    if n <= MAX_BATCH_ELEMENTS { Ok(()) } else { Err(at_most("batch_size", "a batch of values", MAX_BATCH_ELEMENTS, format!("{batch_size} x {point} = {n}"))) }
}

/// Checks a sampler's number of grid steps (at most [`MAX_STEPS`]).
pub fn steps(steps: usize) -> Result<(), ConfigError> {
    bound("steps", "steps", steps, MAX_STEPS)
}

/// Copies of the state `[batch, c, h, w]` a sampler keeps besides the network's activations:
/// the state, its mean, the noise draw and the predicted `x0` (4); the multistep and
/// higher-order solvers keep their earlier evaluations too.
pub fn state_copies(kind: SamplerKind) -> u64 {
    match kind {
        SamplerKind::OdeRk45 => 12,
        SamplerKind::OdeHeun | SamplerKind::DpmSolver2m | SamplerKind::Pc => 6,
        _ => 4,
    }
}

/// Estimated memory of sampling a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplingMemory {
    /// Bytes of every tensor alive at the peak.
    pub total: u64,
    /// Bytes of the largest single tensor.
    pub largest: u64,
}

/// What [`sampling_memory`] reads of a U-Net (the core's or diffusers' `UNet2DModel`): the
/// width of each level from the full resolution down, the residual blocks per down level and
/// the levels with attention (the lowest level always counts: the middle block's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UNetLayout {
    /// Channels of each level.
    pub widths: Vec<usize>,
    /// Residual blocks per level of the down path.
    pub res_blocks: usize,
    /// Levels with attention.
    pub attended: Vec<usize>,
}

impl From<&UNetConfig> for UNetLayout {
    fn from(net: &UNetConfig) -> Self {
        let widths = net.channel_mult.iter().map(|&m| net.base_channels * m).collect();
        Self { widths, res_blocks: net.num_res_blocks, attended: net.attention_levels() }
    }
}

impl From<&UNet2DConfig> for UNetLayout {
    fn from(net: &UNet2DConfig) -> Self {
        let attended = net.down_block_types.iter().enumerate().filter(|(_, t)| **t == DownBlockType::AttnDownBlock2D).map(|(l, _)| l).collect();
        Self { widths: net.block_out_channels.clone(), res_blocks: net.layers_per_block, attended }
    }
}

/// Estimates the memory of sampling `batch` images of `[c, h, w]` with `net` and the sampler
/// `kind` (f32 values; `guided`: classifier-free guidance, two branches per evaluation).
pub fn sampling_memory(net: impl Into<UNetLayout>, [c, h, w]: [usize; 3], batch: usize, kind: SamplerKind, guided: bool) -> SamplingMemory {
    let net = net.into();
    let (c, h, w) = (c as u64, h as u64, w as u64);
    let rows = batch as u64 * if guided { 2 } else { 1 };
    // The down path's activations, each held until the up path consumes it, and attention's
    // n x n matrix at the attended levels.
    let base = net.widths.first().copied().unwrap_or(0) as u64;
    let (mut sh, mut sw) = (h, w);
    let (mut held, mut widest, mut attention) = (base * h * w, base * h * w, 0u64);
    for (level, &width) in net.widths.iter().enumerate() {
        let layer = (width as u64).saturating_mul(sh * sw);
        held = held.saturating_add(layer.saturating_mul(net.res_blocks as u64 + 1));
        widest = widest.max(layer);
        if net.attended.contains(&level) || level + 1 == net.widths.len() {
            attention = attention.max((sh * sw).saturating_mul(sh * sw));
        }
        (sh, sw) = (sh.div_ceil(2), sw.div_ceil(2));
    }
    // A residual block's temporaries: its input, two convolutions' outputs, the concatenated
    // skip (about 4 of the widest layer).
    let per_row = held.saturating_add(widest.saturating_mul(4)).saturating_add(attention);
    let network = per_row.saturating_mul(rows);
    let state = (state_copies(kind) * c * h * w).saturating_mul(batch as u64);
    let total = network.saturating_add(state).saturating_mul(4);
    let largest = widest.max(attention).saturating_mul(rows).saturating_mul(4);
    SamplingMemory { total, largest }
}

/// Checks [`sampling_memory`] against a budget of `total` bytes in all and `largest` bytes in
/// one tensor (the page: [`PAGE_MEMORY_BYTES`], [`PAGE_BUFFER_BYTES`]).
///
/// # Errors
/// [`ConfigError`] on `batch` naming the estimate and the budget.
pub fn check_sampling_memory(memory: SamplingMemory, batch: usize, [total, largest]: [u64; 2]) -> Result<(), ConfigError> {
    let mib = |b: u64| b.div_ceil(1 << 20);
    if memory.total > total {
        return Err(ConfigError::new(
            "batch",
            format!("a batch whose memory fits in {} MiB", mib(total)),
            format!("{batch} (about {} MiB)", mib(memory.total)),
        ));
    }
    if memory.largest > largest {
        return Err(ConfigError::new(
            "batch",
            format!("a batch whose largest tensor fits in {} MiB", mib(largest)),
            format!("{batch} (a tensor of about {} MiB)", mib(memory.largest)),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::tensor::Device;

    #[test]
    fn huge_levels_are_refused() {
        let e = sde(&SdeConfig::ddpm(crate::sde::ScheduleKind::Linear, 1_000_000_000_000)).unwrap_err();
        assert_eq!(e.field, "levels");
        assert!(e.to_string().contains("1000000000000") && e.to_string().contains("at most 1000000"), "{e}");
        assert!(sde(&SdeConfig::ddpm(crate::sde::ScheduleKind::Linear, 1000)).is_ok());
    }

    /// The estimates are within 5% of the parameter counts of the built networks.
    #[test]
    fn parameter_estimates_match_built_networks() {
        let device = Device::flex();
        for config in [UNetConfig::new(), UNetConfig::new().with_num_classes(Some(10)).with_channel_mult(vec![1, 2])] {
            let estimate = unet(&config).unwrap() as f64;
            let built = config.init(&device).num_params() as f64;
            assert!((estimate / built - 1.0).abs() < 0.05, "U-Net: estimate {estimate}, built {built}");
        }
        let config = MlpConfig::new();
        let (estimate, built) = (mlp(&config).unwrap() as f64, config.init(&device).num_params() as f64);
        assert!((estimate / built - 1.0).abs() < 0.05, "MLP: estimate {estimate}, built {built}");
    }

    #[test]
    fn huge_networks_are_refused_before_they_are_built() {
        let e = unet(&UNetConfig::new().with_base_channels(1 << 40)).unwrap_err();
        assert_eq!(e.field, "base_channels");
        let e = unet(&UNetConfig::new().with_channel_mult(vec![1, usize::MAX])).unwrap_err();
        assert_eq!(e.field, "channel_mult[1]");
        let e = unet(&UNetConfig::new().with_base_channels(4096).with_channel_mult(vec![1, 2, 4])).unwrap_err();
        assert_eq!(e.field, "parameters");
        assert_eq!(unet(&UNetConfig::new().with_num_classes(Some(1 << 30))).unwrap_err().field, "num_classes");
        assert_eq!(mlp(&MlpConfig::new().with_hidden(1 << 20)).unwrap_err().field, "hidden");
        assert_eq!(mlp(&MlpConfig::new().with_layers(1_000_000)).unwrap_err().field, "layers");
        assert_eq!(mlp(&MlpConfig::new().with_dim(1 << 30)).unwrap_err().field, "dim");
    }

    /// A diffusers config's estimate is below the built network's count (a lower estimate), and
    /// a width or depth of 10^6 is refused before anything is built.
    #[test]
    fn diffusers_unets_are_bounded() {
        use crate::nn::diffusers::UNet2DConfig;
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/diffusers-tiny/config.json")).unwrap();
        let config = UNet2DConfig::from_json(&text).unwrap();
        let (estimate, built) = (diffusers_unet(&config).unwrap(), config.init(&Device::flex()).unwrap().num_params() as u64);
        assert!(estimate <= built && estimate * 4 >= built, "estimate {estimate}, built {built}");
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["block_out_channels"] = serde_json::json!([8, 16, 16, 1_000_000]);
        let e = UNet2DConfig::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("block_out_channels[3]") && e.contains("1000000"), "{e}");
        v["block_out_channels"] = serde_json::json!([8, 16, 16, 16]);
        v["layers_per_block"] = 1_000_000.into();
        let e = UNet2DConfig::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("layers_per_block"), "{e}");
    }

    #[test]
    fn shapes_and_batches_are_bounded() {
        assert_eq!(point_shape(&[1, 28, 28]).unwrap(), 784);
        assert!(point_shape(&[1, 1 << 20, 1]).unwrap_err().to_string().contains("a side of 1048576"));
        assert!(point_shape(&[usize::MAX, usize::MAX, 2]).is_err());
        assert!(point_shape(&[1 << 30]).is_err());
        assert!(batch(128, 784).is_ok());
        assert_eq!(batch(usize::MAX, 784).unwrap_err().field, "batch_size");
        assert!(steps(1000).is_ok() && steps(1 << 40).is_err());
    }

    /// The page's 64 MNIST digits fit; the same batch of 4096 x 4096 images does not.
    #[test]
    fn sampling_memory_refuses_what_would_not_fit() {
        let net = UNetConfig::new();
        let budget = [PAGE_MEMORY_BYTES, PAGE_BUFFER_BYTES];
        for kind in SamplerKind::all() {
            let m = sampling_memory(&net, [1, 28, 28], 64, kind, true);
            assert!(check_sampling_memory(m, 64, budget).is_ok(), "{kind}: {m:?}");
        }
        let m = sampling_memory(&net, [1, 4096, 4096], 64, SamplerKind::Ddim, false);
        let e = check_sampling_memory(m, 64, budget).unwrap_err();
        assert_eq!(e.field, "batch");
        assert!(e.to_string().contains("1024 MiB"), "{e}");
        // Attention at 64x64 (the lowest level of 256x256): a 4096 x 4096 matrix per image.
        let m = sampling_memory(&net, [1, 256, 256], 8, SamplerKind::Ddim, false);
        assert!(m.largest >= 8 * 4096 * 4096 * 4, "{m:?}");
        // diffusers' UNet2DModel through the same layout: its widths, blocks and attended
        // levels read as the core U-Net's of the same shape.
        let d = crate::nn::diffusers::UNet2DConfig::from_json(r#"{"block_out_channels": [32, 64], "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"], "layers_per_block": 2}"#).unwrap();
        let same = UNetConfig { base_channels: 32, channel_mult: vec![1, 2], num_res_blocks: 2, attention_resolutions: Some(vec![1]), ..UNetConfig::new() };
        assert_eq!(UNetLayout::from(&d), UNetLayout::from(&same));
        assert_eq!(sampling_memory(&d, [3, 32, 32], 4, SamplerKind::Ddim, false), sampling_memory(&same, [3, 32, 32], 4, SamplerKind::Ddim, false));
    }
}
