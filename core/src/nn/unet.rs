//! A compact DDPM U-Net for images.
//!
//! The architecture of Ho et al. 2020 (appendix B), a PixelCNN++-style U-Net (Salimans et al.
//! 2017; Ronneberger et al. 2015) at a smaller width:
//! - a time embedding ([`TimeEmbedding`]) of width `4 * base_channels`, plus an optional class
//!   embedding with an extra *null* label for classifier-free guidance (Ho & Salimans 2022);
//! - per resolution level `num_res_blocks` residual blocks
//!   (GroupNorm-SiLU-Conv3x3, `+ Linear(SiLU(emb))`, GroupNorm-SiLU-Dropout-Conv3x3, 1x1 skip
//!   when the width changes), single-head self-attention (GroupNorm, 1x1 `q, k, v`,
//!   `softmax(q^T k / sqrt(c))`, 1x1 projection, residual) after each block at the levels in
//!   `attention_resolutions`, and a stride-2 3x3 convolution down to the next level;
//! - a middle block ResBlock-Attention-ResBlock at the lowest resolution;
//! - the mirrored up path with `num_res_blocks + 1` blocks per level, each taking the
//!   concatenated skip connection, and nearest x2 upsampling followed by a 3x3 convolution;
//! - GroupNorm-SiLU-Conv3x3 to `out_channels`: `in_channels`, or `2 in_channels` for a network
//!   that also learns its reverse-process variance (Nichol & Dhariwal 2021, section 3.1: the
//!   second half is the learned-range output `v` of eq. 15; as a [`ScoreModel`] the network's
//!   `forward` returns the first half, `forward_with_variance` both).
//!
//! With padding 1 the stride-2 convolution maps a side `n` to `ceil(n / 2)`, so 28x28 runs at
//! 28, 14, 7 and 32x32 at 32, 16, 8. Upsampling crops to the skip connection's size, so odd
//! sides (7 -> 4 -> 8 -> 7) also work.
//!
//! [`Guided`] turns a class-conditional network into a [`ScoreModel`] with classifier-free
//! guidance `(1 + w) out(x, t, c) - w out(x, t, null)` (Ho & Salimans 2022, eq. 6).

use super::NnError;
use super::conv::conv2d;
use super::embedding::{TimeEmbedder, TimeEmbedding};
use super::fused::{group_norm_silu, group_norm_silu_dropout};
use crate::model::{Conditional, ScoreModel};
use crate::param::Parameterization;
use crate::precond::{Preconditioning, precondition};
use crate::sde::Sde;
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use std::sync::Arc;

/// Hyper-parameters of a [`UNet`]; saved as `config.json` beside the weights.
///
/// The defaults (1 channel, 32 base channels, multipliers `[1, 2, 2]`, 2 blocks per level,
/// attention at the lowest level) give about 1.6 M parameters, sized for 28x28 images.
#[derive(Config, Debug, PartialEq)]
pub struct UNetConfig {
    /// Channels of the input images.
    #[config(default = 1)]
    pub in_channels: usize,
    /// Channels of the output (`None`: `in_channels`). `2 in_channels` makes the second half
    /// the learned-range variance output `v` (Nichol & Dhariwal 2021, eq. 15).
    pub out_channels: Option<usize>,
    /// Width of the first level; level `i` has `base_channels * channel_mult[i]` channels.
    #[config(default = 32)]
    pub base_channels: usize,
    /// Width multiplier per level; the image is halved between consecutive levels.
    #[config(default = "vec![1, 2, 2]")]
    pub channel_mult: Vec<usize>,
    /// Residual blocks per level on the way down (one more on the way up).
    #[config(default = 2)]
    pub num_res_blocks: usize,
    /// The levels (indices into `channel_mult`, 0 = full resolution) with self-attention
    /// after each residual block; `None`: the lowest resolution only.
    pub attention_resolutions: Option<Vec<usize>>,
    /// Dropout probability inside the residual blocks (active only when training).
    #[config(default = 0.1)]
    pub dropout: f64,
    /// GroupNorm groups; must divide every level's width.
    #[config(default = 8)]
    pub groups: usize,
    /// The time features.
    #[config(default = "TimeEmbedding::Sinusoidal { scale: 1000.0 }")]
    pub time_embedding: TimeEmbedding,
    /// Number of classes for class conditioning (`None`: unconditional). Label `num_classes`
    /// is the null label of classifier-free guidance.
    pub num_classes: Option<usize>,
    /// What the network predicts.
    #[config(default = "Parameterization::Eps")]
    pub parameterization: Parameterization,
    /// EDM's preconditioning of the raw network (Karras et al. 2022, Table 1; see
    /// [`crate::precond`]); `None` (absent in JSON): the raw output is the prediction. With it
    /// the network is an `x0` predictor (`parameterization = x0`) and must be given its SDE
    /// ([`UNet::with_sde`]) before it is evaluated.
    pub preconditioning: Option<Preconditioning>,
}

fn config_err(field: &str, message: String) -> NnError {
    NnError::Config { field: field.to_string(), message }
}

impl UNetConfig {
    /// Channels of the output.
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Whether the network outputs a learned variance besides its prediction
    /// (`out_channels = 2 in_channels`).
    pub fn learns_variance(&self) -> bool {
        self.out_channels() == 2 * self.in_channels
    }

    /// The levels with self-attention (the lowest by default).
    pub fn attention_levels(&self) -> Vec<usize> {
        self.attention_resolutions.clone().unwrap_or_else(|| vec![self.channel_mult.len().saturating_sub(1)])
    }

    /// Width of the time (and class) embedding: `4 * base_channels`.
    pub fn embedding_width(&self) -> usize {
        4 * self.base_channels
    }

    /// Checks every field, naming the first offending one.
    pub fn validate(&self) -> Result<(), NnError> {
        crate::limits::unet(self)?;
        if self.in_channels == 0 {
            return Err(config_err("in_channels", "expected at least 1 channel, found 0".into()));
        }
        if let Some(c) = self.out_channels
            && c != self.in_channels
            && c != 2 * self.in_channels
        {
            let (i, i2) = (self.in_channels, 2 * self.in_channels);
            return Err(config_err(
                "out_channels",
                format!("expected null, in_channels = {i} or 2 in_channels = {i2} (prediction and learned variance), found {c}"),
            ));
        }
        if self.base_channels == 0 {
            return Err(config_err("base_channels", "expected at least 1 channel, found 0".into()));
        }
        if self.channel_mult.is_empty() {
            return Err(config_err("channel_mult", "expected at least one level, found none".into()));
        }
        if self.groups == 0 {
            return Err(config_err("groups", "expected at least 1 group, found 0".into()));
        }
        if !self.base_channels.is_multiple_of(self.groups) {
            return Err(config_err("base_channels", format!("expected a multiple of groups = {}, found {}", self.groups, self.base_channels)));
        }
        for (i, &m) in self.channel_mult.iter().enumerate() {
            let c = m * self.base_channels;
            if m == 0 || !c.is_multiple_of(self.groups) {
                return Err(config_err(
                    &format!("channel_mult[{i}]"),
                    format!("expected a multiplier >= 1 giving a width divisible by groups = {}, found {m} (width {c})", self.groups),
                ));
            }
        }
        if self.num_res_blocks == 0 {
            return Err(config_err("num_res_blocks", "expected at least 1 block per level, found 0".into()));
        }
        for &l in &self.attention_levels() {
            if l >= self.channel_mult.len() {
                return Err(config_err("attention_resolutions", format!("expected level indices below {}, found {l}", self.channel_mult.len())));
            }
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return Err(config_err("dropout", format!("expected a probability in [0, 1), found {}", self.dropout)));
        }
        self.time_embedding.validate(self.base_channels).map_err(|m| config_err("time_embedding", m))?;
        if let Some(p) = &self.preconditioning {
            p.validate().map_err(|m| config_err("preconditioning.sigma_data", m))?;
            if self.parameterization != Parameterization::X0 {
                return Err(config_err(
                    "parameterization",
                    format!("EDM preconditioning makes the network the denoiser D: expected x0, found {}", self.parameterization.name()),
                ));
            }
            if self.learns_variance() {
                return Err(config_err(
                    "out_channels",
                    format!("EDM preconditioning predicts x0 only: expected in_channels = {}, found {}", self.in_channels, self.out_channels()),
                ));
            }
        }
        if self.num_classes == Some(0) {
            return Err(config_err("num_classes", "expected at least 1 class (or null for none), found 0".into()));
        }
        Ok(())
    }

    /// Builds the network with freshly initialised weights (burn's initialisers draw from the
    /// device's generator: call `device.seed(s)` first for reproducible weights).
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails; [`super::NetworkConfig::build`] returns the
    /// error instead.
    pub fn init(&self, device: &Device) -> UNet {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let emb = self.embedding_width();
        let attn_levels = self.attention_levels();
        let levels = self.channel_mult.len();
        let res = |cin: usize, cout: usize| ResBlockConfig::new(cin, cout, emb).with_groups(self.groups).with_dropout(self.dropout).init(device);
        let attn = |c: usize| AttentionBlockConfig::new(c).with_groups(self.groups).init(device);

        let mut ch = self.base_channels;
        let conv_in = conv3x3(self.in_channels, ch, device);
        let mut skips = vec![ch];
        let mut down = Vec::with_capacity(levels);
        for (level, &mult) in self.channel_mult.iter().enumerate() {
            let out = self.base_channels * mult;
            let mut blocks = Vec::new();
            for _ in 0..self.num_res_blocks {
                blocks.push(res(ch, out));
                ch = out;
                skips.push(ch);
            }
            let attns = if attn_levels.contains(&level) { (0..self.num_res_blocks).map(|_| attn(ch)).collect() } else { Vec::new() };
            let downsample = (level + 1 < levels).then(|| {
                skips.push(ch);
                Conv2dConfig::new([ch, ch], [3, 3]).with_stride([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device)
            });
            down.push(DownLevel { blocks, attns, downsample });
        }
        let mid1 = res(ch, ch);
        let mid_attn = attn(ch);
        let mid2 = res(ch, ch);
        let mut up = Vec::with_capacity(levels);
        for (level, &mult) in self.channel_mult.iter().enumerate().rev() {
            let out = self.base_channels * mult;
            let mut blocks = Vec::new();
            for _ in 0..=self.num_res_blocks {
                let skip = skips.pop().expect("one skip per up block");
                blocks.push(res(ch + skip, out));
                ch = out;
            }
            let attns = if attn_levels.contains(&level) { (0..=self.num_res_blocks).map(|_| attn(ch)).collect() } else { Vec::new() };
            let upsample = (level > 0).then(|| conv3x3(ch, ch, device));
            up.push(UpLevel { blocks, attns, upsample });
        }
        debug_assert!(skips.is_empty());
        UNet {
            time: self.time_embedding.init(self.base_channels, emb, device),
            class_emb: self.num_classes.map(|n| EmbeddingConfig::new(n + 1, emb).init(device)),
            conv_in,
            down,
            mid1,
            mid_attn,
            mid2,
            up,
            norm_out: GroupNormConfig::new(self.groups, ch).init(device),
            conv_out: conv3x3(ch, self.out_channels(), device),
            config: self.clone(),
            sde: None,
        }
    }
}

/// A 3x3 convolution with padding 1 (same size).
fn conv3x3(cin: usize, cout: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device)
}

/// Hyper-parameters of a [`ResBlock`].
#[derive(Config, Debug)]
pub struct ResBlockConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Width of the conditioning embedding.
    pub emb_dim: usize,
    /// GroupNorm groups (must divide both channel counts).
    #[config(default = 8)]
    pub groups: usize,
    /// Dropout probability before the second convolution.
    #[config(default = 0.1)]
    pub dropout: f64,
}

impl ResBlockConfig {
    /// Builds the block.
    pub fn init(&self, device: &Device) -> ResBlock {
        let (cin, cout) = (self.in_channels, self.out_channels);
        ResBlock {
            norm1: GroupNormConfig::new(self.groups, cin).init(device),
            conv1: conv3x3(cin, cout, device),
            emb_proj: LinearConfig::new(self.emb_dim, cout).init(device),
            norm2: GroupNormConfig::new(self.groups, cout).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            conv2: conv3x3(cout, cout, device),
            skip: (cin != cout).then(|| Conv2dConfig::new([cin, cout], [1, 1]).init(device)),
        }
    }
}

/// The DDPM residual block (Ho et al. 2020, appendix B; He et al. 2016):
/// `skip(x) + Conv(Dropout(SiLU(GN(Conv(SiLU(GN(x))) + Linear(SiLU(emb))))))`.
#[derive(Module, Debug)]
pub struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    emb_proj: Linear,
    norm2: GroupNorm,
    dropout: Dropout,
    conv2: Conv2d,
    skip: Option<Conv2d>,
}

impl ResBlock {
    /// Applies the block.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`
    /// - `emb`: `[batch, emb_dim]`
    /// - output: `[batch, out_channels, height, width]`
    pub fn forward(&self, x: Tensor<4>, emb: Tensor<2>) -> Tensor<4> {
        let h = conv2d(&self.conv1, group_norm_silu(&self.norm1, x.clone(), true)); // [b, cout, h, w]
        let [b, c, _, _] = h.dims();
        let e = self.emb_proj.forward(silu(emb)).reshape([b, c, 1, 1]); // [b, cout, 1, 1]
        let h = h + e;
        let h = conv2d(&self.conv2, group_norm_silu_dropout(&self.norm2, h, true, Some(&self.dropout))); // [b, cout, h, w]
        let x = match &self.skip {
            Some(skip) => conv2d(skip, x),
            None => x,
        };
        x + h
    }
}

/// Hyper-parameters of an [`AttentionBlock`].
#[derive(Config, Debug)]
pub struct AttentionBlockConfig {
    /// Channels.
    pub channels: usize,
    /// GroupNorm groups.
    #[config(default = 8)]
    pub groups: usize,
}

impl AttentionBlockConfig {
    /// Builds the block.
    pub fn init(&self, device: &Device) -> AttentionBlock {
        let c = self.channels;
        AttentionBlock {
            norm: GroupNormConfig::new(self.groups, c).init(device),
            qkv: Conv2dConfig::new([c, 3 * c], [1, 1]).init(device),
            proj: Conv2dConfig::new([c, c], [1, 1]).init(device),
        }
    }
}

/// Single-head spatial self-attention with a residual connection (DDPM's `AttnBlock`;
/// Vaswani et al. 2017, eq. 1): `x + proj(v softmax(q^T k / sqrt(c))^T)` over the `h w`
/// positions.
#[derive(Module, Debug)]
pub struct AttentionBlock {
    norm: GroupNorm,
    qkv: Conv2d,
    proj: Conv2d,
}

impl AttentionBlock {
    /// Applies the block.
    ///
    /// # Shapes
    /// - `x`, output: `[batch, channels, height, width]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let n = h * w;
        let qkv = conv2d(&self.qkv, group_norm_silu(&self.norm, x.clone(), false)); // [b, 3c, h, w]
        let q = qkv.clone().narrow(1, 0, c).reshape([b, c, n]); // [b, c, n]
        let k = qkv.clone().narrow(1, c, c).reshape([b, c, n]); // [b, c, n]
        let v = qkv.narrow(1, 2 * c, c).reshape([b, c, n]); // [b, c, n]
        let logits = q.swap_dims(1, 2).matmul(k).mul_scalar(1.0 / (c as f64).sqrt()); // [b, n (query), n (key)]
        let attn = softmax(logits, 2); // [b, n, n]
        let out = v.matmul(attn.swap_dims(1, 2)).reshape([b, c, h, w]); // [b, c, h, w]
        x + conv2d(&self.proj, out)
    }
}

/// One level of the down path.
#[derive(Module, Debug)]
struct DownLevel {
    blocks: Vec<ResBlock>,
    /// Empty, or one per block.
    attns: Vec<AttentionBlock>,
    /// Stride-2 convolution to the next level (none at the lowest).
    downsample: Option<Conv2d>,
}

/// One level of the up path.
#[derive(Module, Debug)]
struct UpLevel {
    blocks: Vec<ResBlock>,
    /// Empty, or one per block.
    attns: Vec<AttentionBlock>,
    /// Convolution after nearest x2 upsampling (none at the top level).
    upsample: Option<Conv2d>,
}

/// Nearest-neighbour x2 upsampling, cropped to `[height, width]` (for odd skip sizes).
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`, output: `[batch, channels, height, width]` with
///   `height <= 2 h`, `width <= 2 w`
fn upsample_nearest2(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let x = x.reshape([b, c, h, 1, w, 1]).expand([b, c, h, 2, w, 2]).reshape([b, c, 2 * h, 2 * w]); // [b, c, 2h, 2w]
    if size == [2 * h, 2 * w] { x } else { x.slice([0..b, 0..c, 0..size[0], 0..size[1]]) }
}

/// The DDPM U-Net (see the [module docs](self)). Built by [`UNetConfig::init`].
#[derive(Module, Debug)]
pub struct UNet {
    time: TimeEmbedder,
    class_emb: Option<Embedding>,
    conv_in: Conv2d,
    down: Vec<DownLevel>,
    mid1: ResBlock,
    mid_attn: AttentionBlock,
    mid2: ResBlock,
    up: Vec<UpLevel>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    #[module(skip)]
    config: UNetConfig,
    /// The forward SDE, whose marginal a preconditioned network needs at every evaluation.
    #[module(skip)]
    sde: Option<Arc<dyn Sde>>,
}

impl UNet {
    /// The configuration the network was built from.
    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    /// Number of stored float parameters (including the fixed Fourier frequencies, if any).
    pub fn num_params(&self) -> usize {
        Module::num_params(self)
    }

    /// Gives the network the SDE it was trained with, whose marginal `(m(t), s(t))` EDM's
    /// preconditioning reads ([`crate::precond::on_marginal`]); a network without
    /// preconditioning ignores it.
    pub fn with_sde(mut self, sde: Arc<dyn Sde>) -> Self {
        self.sde = Some(sde);
        self
    }

    /// The null label (unconditional) of a class-conditional network: `num_classes`.
    pub fn null_label(&self) -> Option<usize> {
        self.config.num_classes
    }

    /// The conditioning embedding: time, plus class when the network is conditional
    /// (`labels = None` then means the null label for every sample).
    ///
    /// # Shapes
    /// - output: `[t.len(), 4 * base_channels]`
    fn embed(&self, t: &[f64], labels: Option<&[usize]>, device: &Device) -> Tensor<2> {
        let emb = self.time.forward(t, device); // [b, emb]
        let Some(table) = &self.class_emb else {
            assert!(labels.is_none(), "class labels given to an unconditional U-Net (num_classes is not set)");
            return emb;
        };
        let n = self.config.num_classes.expect("class embedding implies num_classes") + 1;
        let b = t.len();
        let mut onehot = vec![0f32; b * n];
        for i in 0..b {
            let l = match labels {
                Some(l) => l[i],
                None => n - 1,
            };
            assert!(l < n, "class label {l} out of range: expected a class below {0} or the null label {0}", n - 1);
            onehot[i * n + l] = 1.0;
        }
        let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [b, n]), device); // [b, classes + 1]
        emb + onehot.matmul(table.weight.val()) // [b, emb]
    }

    /// Splits a raw output of [`forward`](Self::forward) into the prediction and, for a network
    /// that learns its variance, the variance output `v`.
    ///
    /// # Shapes
    /// - `out`: `[batch, out_channels, height, width]`
    /// - output: `[batch, in_channels, height, width]` each
    pub fn split_output(&self, out: Tensor<4>) -> (Tensor<4>, Option<Tensor<4>>) {
        if !self.config.learns_variance() {
            return (out, None);
        }
        let c = self.config.in_channels;
        (out.clone().narrow(1, 0, c), Some(out.narrow(1, c, c)))
    }

    /// Evaluates the network: the raw network `F`, wrapped by its preconditioning when it has
    /// one, `D = (c_skip / m) x_t + c_out F((c_in / m) x_t; c_noise)` per sample
    /// ([`crate::precond`]).
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`
    /// - `t`: `batch` times
    /// - `labels`: `batch` labels in `0..=num_classes` (`num_classes` is the null label);
    ///   `None` for an unconditional network, or the null label for a conditional one
    /// - output: `[batch, out_channels, height, width]`
    ///
    /// # Panics
    /// If the channels or the lengths of `t` and `labels` do not match, if labels are given
    /// to an unconditional network or a label is out of range.
    pub fn forward(&self, x: Tensor<4>, t: &[f64], labels: Option<&[usize]>) -> Tensor<4> {
        let [b, c, _, _] = x.dims();
        assert_eq!(c, self.config.in_channels, "expected {} input channels, found {c}", self.config.in_channels);
        assert_eq!(t.len(), b, "expected one time per sample ({b}), found {}", t.len());
        if let Some(l) = labels {
            assert_eq!(l.len(), b, "expected one label per sample ({b}), found {}", l.len());
        }
        let Some(Preconditioning::Edm { sigma_data }) = self.config.preconditioning else {
            return self.forward_raw(x, t, labels);
        };
        let sde = self.sde.as_ref().expect("a U-Net with EDM preconditioning needs its SDE: build it with UNet::with_sde (ModelCard::load_net does)");
        precondition(sde.as_ref(), sigma_data, x, t, |input, noise_labels| self.forward_raw(input, noise_labels, labels))
    }

    /// The raw network `F` at the (preconditioned) input and time labels.
    fn forward_raw(&self, x: Tensor<4>, t: &[f64], labels: Option<&[usize]>) -> Tensor<4> {
        let device = x.device();
        let emb = self.embed(t, labels, &device); // [b, 4 base]

        let mut h = conv2d(&self.conv_in, x); // [b, base, height, width]
        let mut skips = vec![h.clone()];
        for level in &self.down {
            for (i, block) in level.blocks.iter().enumerate() {
                h = block.forward(h, emb.clone()); // [b, c_level, h_level, w_level]
                if let Some(attn) = level.attns.get(i) {
                    h = attn.forward(h);
                }
                skips.push(h.clone());
            }
            if let Some(down) = &level.downsample {
                h = conv2d(down, h); // [b, c_level, ceil(h_level / 2), ceil(w_level / 2)]
                skips.push(h.clone());
            }
        }
        h = self.mid1.forward(h, emb.clone());
        h = self.mid_attn.forward(h);
        h = self.mid2.forward(h, emb.clone()); // [b, c_lowest, h_lowest, w_lowest]
        for level in &self.up {
            for (i, block) in level.blocks.iter().enumerate() {
                let skip = skips.pop().expect("one skip per up block");
                h = block.forward(Tensor::cat(vec![h, skip], 1), emb.clone()); // [b, c_level, h_level, w_level]
                if let Some(attn) = level.attns.get(i) {
                    h = attn.forward(h);
                }
            }
            if let Some(up) = &level.upsample {
                let [_, _, sh, sw] = skips.last().expect("a skip above every level but the top").dims();
                h = conv2d(up, upsample_nearest2(h, [sh, sw])); // [b, c_level, h_above, w_above]
            }
        }
        conv2d(&self.conv_out, group_norm_silu(&self.norm_out, h, true)) // [b, out_channels, height, width]
    }
}

impl ScoreModel<4> for UNet {
    fn parameterization(&self) -> Parameterization {
        self.config.parameterization
    }

    /// Unconditional: the null label when the network is class-conditional.
    fn forward(&self, x: Tensor<4>, t: &[f64]) -> Tensor<4> {
        self.forward_with_variance(x, t).0
    }

    fn forward_with_variance(&self, x: Tensor<4>, t: &[f64]) -> (Tensor<4>, Option<Tensor<4>>) {
        self.split_output(UNet::forward(self, x, t, None))
    }
}

impl Conditional<4> for UNet {
    fn num_classes(&self) -> Option<usize> {
        self.config.num_classes
    }

    /// [`Guided`] with weight 0: one evaluation of the conditional network.
    fn with_labels(&self, labels: Vec<usize>) -> Box<dyn ScoreModel<4> + '_> {
        Box::new(Guided { model: self, labels, guidance: 0.0 })
    }
}

/// A class-conditional [`UNet`] with classifier-free guidance (Ho & Salimans 2022, eq. 6):
/// `(1 + w) out(x, t, c) - w out(x, t, null)`.
///
/// The two evaluations run as one batch of twice the size (one NFE). With `guidance = 0` it is
/// the plain conditional network (a single evaluation), which is also what training with label
/// dropout needs (pass the null label for the dropped samples). The combination is affine in
/// the output, so it is the same guidance whichever the [`Parameterization`]. A learned
/// variance output is the conditional one's, as in GLIDE's sampler (Nichol et al. 2022).
#[derive(Debug, Clone)]
pub struct Guided<'a> {
    /// The network (with `num_classes` set).
    pub model: &'a UNet,
    /// One label per sample, or a single label for the whole batch.
    pub labels: Vec<usize>,
    /// The guidance weight `w` (0: conditional, no guidance).
    pub guidance: f64,
}

impl<'a> Guided<'a> {
    /// Checks that the network is conditional and the labels are in range.
    pub fn new(model: &'a UNet, labels: Vec<usize>, guidance: f64) -> Result<Self, NnError> {
        let Some(n) = model.config.num_classes else {
            return Err(config_err("num_classes", "expected a class-conditional U-Net for guidance, found num_classes = null".into()));
        };
        if labels.is_empty() {
            return Err(config_err("labels", "expected at least one label, found none".into()));
        }
        if let Some(l) = labels.iter().find(|&&l| l > n) {
            return Err(config_err("labels", format!("expected labels in 0..={n} ({n} = null), found {l}")));
        }
        if !guidance.is_finite() {
            return Err(config_err("guidance", format!("expected a finite weight, found {guidance}")));
        }
        Ok(Self { model, labels, guidance })
    }
}

impl ScoreModel<4> for Guided<'_> {
    fn parameterization(&self) -> Parameterization {
        self.model.config.parameterization
    }

    fn forward(&self, x: Tensor<4>, t: &[f64]) -> Tensor<4> {
        self.forward_with_variance(x, t).0
    }

    fn forward_with_variance(&self, x: Tensor<4>, t: &[f64]) -> (Tensor<4>, Option<Tensor<4>>) {
        let b = x.dims()[0];
        let labels: Vec<usize> = match self.labels.len() {
            1 => vec![self.labels[0]; b],
            n => {
                assert_eq!(n, b, "expected one label per sample ({b}) or a single label, found {n}");
                self.labels.clone()
            }
        };
        if self.guidance == 0.0 {
            return self.model.split_output(self.model.forward(x, t, Some(&labels)));
        }
        let null = self.model.null_label().expect("Guided::new checked num_classes");
        let x2 = Tensor::cat(vec![x.clone(), x], 0); // [2b, c, h, w]
        let t2: Vec<f64> = t.iter().chain(t).copied().collect();
        let l2: Vec<usize> = labels.into_iter().chain(std::iter::repeat_n(null, b)).collect();
        let out = self.model.forward(x2, &t2, Some(&l2)); // [2b, out_channels, h, w]
        let (cond, v) = self.model.split_output(out.clone().narrow(0, 0, b));
        let (uncond, _) = self.model.split_output(out.narrow(0, b, b));
        (cond.mul_scalar(1.0 + self.guidance) - uncond.mul_scalar(self.guidance), v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::NoiseSource;
    use crate::test_util::*;

    fn tiny(in_channels: usize) -> UNetConfig {
        UNetConfig::new().with_in_channels(in_channels).with_base_channels(8).with_groups(4).with_num_res_blocks(1)
    }

    #[test]
    fn output_shape_equals_input_shape() {
        let dev = device();
        let mut noise = NoiseSource::new(0);
        for (shape, classes) in [([2, 1, 28, 28], None), ([2, 3, 32, 32], None), ([2, 1, 28, 28], Some(10)), ([2, 3, 32, 32], Some(3))] {
            let mut cfg = tiny(shape[1]);
            cfg.num_classes = classes;
            let net = cfg.init(&dev);
            let x = noise.normal(shape, &dev);
            assert_eq!(net.forward(x.clone(), &[0.1, 0.9], None).dims(), shape);
            if let Some(n) = classes {
                assert_eq!(net.forward(x.clone(), &[0.1, 0.9], Some(&[0, n])).dims(), shape);
            }
            assert_eq!(ScoreModel::forward(&net, x, &[0.5, 0.5]).dims(), shape);
        }
        // An odd lowest side: 4 levels on 28x28 run at 28, 14, 7, 4 and crop back.
        let net = tiny(1).with_channel_mult(vec![1, 1, 2, 2]).init(&dev);
        assert_eq!(net.forward(noise.normal([1, 1, 28, 28], &dev), &[0.3], None).dims(), [1, 1, 28, 28]);
    }

    /// `out_channels = 2 in_channels`: the score-model output has the input's shape and is the
    /// first half of the raw output; the second half is `v`, also through guidance.
    #[test]
    fn learned_variance_output_is_the_second_half() {
        let dev = device();
        let net = tiny(1).with_out_channels(Some(2)).with_num_classes(Some(3)).init(&dev);
        assert!(net.config().learns_variance() && !tiny(1).learns_variance());
        let x = NoiseSource::new(5).normal([2, 1, 8, 8], &dev);
        let t = [0.2, 0.7];
        let raw = net.forward(x.clone(), &t, None);
        assert_eq!(raw.dims(), [2, 2, 8, 8]);
        let (out, v) = ScoreModel::forward_with_variance(&net, x.clone(), &t);
        assert_close(&out, &raw.clone().narrow(1, 0, 1), 0.0);
        assert_close(&v.unwrap(), &raw.narrow(1, 1, 1), 0.0);
        assert_close(&ScoreModel::forward(&net, x.clone(), &t), &out, 0.0);
        let cond_raw = net.forward(x.clone(), &t, Some(&[0, 2]));
        let (g_out, g_v) = Guided::new(&net, vec![0, 2], 1.5).unwrap().forward_with_variance(x.clone(), &t);
        assert_eq!(g_out.dims(), [2, 1, 8, 8]);
        assert_close(&g_v.unwrap(), &cond_raw.narrow(1, 1, 1), 1e-6);
        assert!(ScoreModel::forward_with_variance(&tiny(1).init(&dev), x, &t).1.is_none());
        let e = tiny(1).with_out_channels(Some(3)).validate().unwrap_err().to_string();
        assert!(e.contains("out_channels") && e.contains("found 3"), "{e}");
    }

    #[test]
    fn default_size_for_28x28() {
        let dev = device();
        let net = UNetConfig::new().init(&dev);
        let n = net.num_params();
        println!("default UNet (28x28, 1 channel): {n} parameters");
        assert!((1_000_000..4_000_000).contains(&n), "{n}");
        let x = NoiseSource::new(1).normal([1, 1, 28, 28], &dev);
        assert_eq!(net.forward(x, &[0.5], None).dims(), [1, 1, 28, 28]);
    }

    /// One ResBlock's parameters by formula: GroupNorm `2 c` (scale, shift), Conv3x3
    /// `9 cin cout + cout`, Linear `e cout + cout`, 1x1 skip `cin cout + cout`.
    #[test]
    fn res_block_parameter_count() {
        let dev = device();
        let (cin, cout, e) = (16, 32, 64);
        let block = ResBlockConfig::new(cin, cout, e).init(&dev);
        let expect = 2 * cin + (9 * cin * cout + cout) + (e * cout + cout) + 2 * cout + (9 * cout * cout + cout) + (cin * cout + cout);
        assert_eq!(block.num_params(), expect);
        let same = ResBlockConfig::new(cout, cout, e).init(&dev);
        assert_eq!(same.num_params(), 2 * cout + (9 * cout * cout + cout) + (e * cout + cout) + 2 * cout + (9 * cout * cout + cout));
        let attn = AttentionBlockConfig::new(cout).init(&dev);
        assert_eq!(attn.num_params(), 2 * cout + (cout * 3 * cout + 3 * cout) + (cout * cout + cout));
    }

    #[test]
    fn gradients_reach_the_first_conv() {
        let dev = device().autodiff();
        let net = tiny(1).with_num_classes(Some(2)).init(&dev);
        let x = NoiseSource::new(2).normal([2, 1, 8, 8], &dev);
        let loss = net.forward(x, &[0.2, 0.8], Some(&[0, 1])).square().mean();
        let grads = loss.backward();
        let g = net.conv_in.weight.grad(&grads).expect("conv_in has a gradient");
        let g = g.into_data().try_to_vec::<f32>().unwrap();
        assert!(g.iter().any(|v| *v != 0.0) && g.iter().all(|v| v.is_finite()));
        // Gradients also reach the input (the likelihood and SSM need them).
        let x = NoiseSource::new(3).normal([1, 1, 8, 8], &dev).require_grad();
        let grads = ScoreModel::forward(&net, x.clone(), &[0.5]).sum().backward();
        assert!(x.grad(&grads).is_some());
    }

    #[test]
    fn guidance_combines_conditional_and_null_outputs() {
        let dev = device();
        let net = tiny(1).with_num_classes(Some(3)).init(&dev);
        let x = NoiseSource::new(4).normal([2, 1, 8, 8], &dev);
        let t = [0.3, 0.6];
        let cond = net.forward(x.clone(), &t, Some(&[1, 2]));
        let uncond = net.forward(x.clone(), &t, Some(&[3, 3]));
        assert_close(&uncond, &net.forward(x.clone(), &t, None), 1e-6);
        let g = Guided::new(&net, vec![1, 2], 2.0).unwrap();
        let expect = cond.clone().mul_scalar(3.0) - uncond.mul_scalar(2.0);
        assert_close(&g.forward(x.clone(), &t), &expect, 1e-4);
        let g0 = Guided::new(&net, vec![1, 2], 0.0).unwrap();
        assert_close(&g0.forward(x, &t), &cond, 1e-6);
        assert!(Guided::new(&net, vec![4], 1.0).is_err());
        assert!(Guided::new(&tiny(1).init(&dev), vec![0], 1.0).is_err());
    }

    /// With EDM preconditioning the U-Net is `D = (c_skip / m) x + c_out F((c_in / m) x; c_noise)`
    /// of its raw network, per sample, against the closed forms; configs name what is wrong.
    #[test]
    fn edm_preconditioning_wraps_the_raw_network() {
        use crate::precond::EdmCoefs;
        let dev = device();
        let sde: Arc<dyn Sde> = Arc::from(crate::sde::SdeConfig::Vp { beta_min: 0.1, beta_max: 20.0 }.build().unwrap());
        let cfg = tiny(1).with_dropout(0.0).with_parameterization(Parameterization::X0).with_preconditioning(Some(Preconditioning::Edm { sigma_data: 0.5 }));
        let net = cfg.init(&dev).with_sde(sde.clone());
        let x = NoiseSource::new(1).normal([3, 1, 8, 8], &dev);
        let ts = [0.05, 0.4, 0.95];
        let got = to_vec(net.forward(x.clone(), &ts, None));
        let xs = to_vec(x.clone());
        for (i, &t) in ts.iter().enumerate() {
            let (m, s) = sde.marginal(t);
            let c = EdmCoefs::at(s / m, 0.5);
            let xi = x.clone().narrow(0, i, 1);
            let raw = to_vec(net.forward_raw(xi.mul_scalar(c.input / m), &[c.noise], None));
            for j in 0..64 {
                let want = c.skip / m * xs[i * 64 + j] as f64 + c.out * raw[j] as f64;
                assert!((got[i * 64 + j] as f64 - want).abs() < 1e-4, "sample {i} pixel {j}: {} vs {want}", got[i * 64 + j]);
            }
        }
        assert!(
            format!("{}", tiny(1).with_preconditioning(Some(Preconditioning::Edm { sigma_data: 0.5 })).validate().unwrap_err())
                .contains("expected x0, found eps")
        );
        let bad = cfg.clone().with_preconditioning(Some(Preconditioning::Edm { sigma_data: 0.0 }));
        assert!(format!("{}", bad.validate().unwrap_err()).contains("preconditioning.sigma_data"));
        assert!(format!("{}", cfg.clone().with_out_channels(Some(2)).validate().unwrap_err()).contains("out_channels"));
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains(r#""preconditioning":{"kind":"edm","sigma_data":0.5}"#), "{json}");
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v.as_object_mut().unwrap().remove("preconditioning");
        assert_eq!(serde_json::from_value::<UNetConfig>(v).unwrap().preconditioning, None, "today's configs load without it");
    }

    #[test]
    fn config_validation_and_json() {
        let e = tiny(1).with_groups(3).validate().unwrap_err().to_string();
        assert!(e.contains("base_channels") && e.contains("groups = 3"), "{e}");
        let e = tiny(1).with_channel_mult(vec![1, 0]).validate().unwrap_err().to_string();
        assert!(e.contains("channel_mult[1]"), "{e}");
        let e = tiny(1).with_attention_resolutions(Some(vec![3])).validate().unwrap_err().to_string();
        assert!(e.contains("attention_resolutions"), "{e}");
        assert!(tiny(1).with_dropout(1.0).validate().is_err());
        let cfg = tiny(3).with_num_classes(Some(10)).with_time_embedding(TimeEmbedding::Fourier { scale: 16.0 });
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains(r#""time_embedding":{"kind":"fourier","scale":16.0}"#), "{json}");
        assert!(json.contains(r#""parameterization":"eps""#), "{json}");
        let back: UNetConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);
    }
}
