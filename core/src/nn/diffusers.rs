//! diffusers' `UNet2DModel`, layer for layer, so that checkpoints in its format (a
//! `config.json` and `diffusion_pytorch_model.safetensors`, e.g. google/ddpm-cifar10-32) run
//! in the core.
//!
//! The network is Ho et al. 2020's U-Net (appendix B) as diffusers 0.30 writes it; this module
//! mirrors, and names its tensors as:
//! - `models/unets/unet_2d.py` (`UNet2DModel`): `conv_in`, the time embedding, the down blocks,
//!   the mid block, the up blocks, `conv_norm_out`-SiLU-`conv_out`;
//! - `models/embeddings.py`: `get_timestep_embedding` ([`timestep_features`]; the Transformer
//!   encoding of Vaswani et al. 2017, section 3.5, with `flip_sin_to_cos` and
//!   `downscale_freq_shift`) and `TimestepEmbedding` (`linear_1`-SiLU-`linear_2`);
//! - `models/resnet.py`: `ResnetBlock2D` (`time_embedding_norm = "default"`), `Downsample2D`
//!   (stride-2 3x3 convolution; `padding = 0` first pads one zero row and column at the bottom
//!   and right) and `Upsample2D` (nearest x2, 3x3 convolution);
//! - `models/unets/unet_2d_blocks.py`: `DownBlock2D`, `AttnDownBlock2D`, `UpBlock2D`,
//!   `AttnUpBlock2D` and `UNetMidBlock2D`;
//! - `models/attention_processor.py`: `Attention` as these blocks build it (group norm,
//!   `heads = channels / attention_head_dim` heads of width `attention_head_dim`, softmax of
//!   `q k^T / sqrt(dim_head)`, `to_out`, the residual connection, then division by
//!   `rescale_output_factor`).
//!
//! [`UNet2DConfig`] is diffusers' `config.json` with its keys and defaults; an unknown key, block
//! type or an option this module does not implement is an error naming it
//! ([`UNet2DConfig::from_json`]). The weights load from safetensors under diffusers' own names
//! ([`DiffusersUNet::load_safetensors`]: PyTorch's `Linear` weights are transposed, GroupNorm's
//! `weight`/`bias` are burn's `gamma`/`beta`; nothing else is renamed).
//!
//! As a [`ScoreModel`] the network sits on the DDPM grid of [`crate::sde::DiscreteVpSde`]:
//! level `i` (time `t = i / N`, `alpha_bar_i = prod_{j <= i} (1 - beta_j)`) is diffusers'
//! timestep index `i - 1` (its `alphas_cumprod[i - 1]`), so time `t` is fed as the timestep
//! `N t - 1` ([`DiffusersUNet::timestep`]). Dropout is not applied: the module evaluates
//! (samples), it does not train.
//!
//! Sides must be divisible by `2^(levels - 1)`, as in diffusers (whose up path adds each skip
//! connection without cropping).

use super::NnError;
use super::conv::conv2d;
use super::fused::group_norm_silu;
use crate::model::ScoreModel;
use crate::param::Parameterization;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::store::{ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// A down block type of `down_block_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DownBlockType {
    /// Residual blocks, then a downsampler.
    DownBlock2D,
    /// Residual blocks each followed by attention, then a downsampler.
    AttnDownBlock2D,
}

/// An up block type of `up_block_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpBlockType {
    /// Residual blocks on the concatenated skips, then an upsampler.
    UpBlock2D,
    /// Residual blocks each followed by attention, then an upsampler.
    AttnUpBlock2D,
}

/// `sample_size`: one side or `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SampleSize {
    /// A square image.
    Square(usize),
    /// `[height, width]`.
    Rect([usize; 2]),
}

impl SampleSize {
    /// `[height, width]`.
    pub fn hw(self) -> [usize; 2] {
        match self {
            Self::Square(s) => [s, s],
            Self::Rect(hw) => hw,
        }
    }
}

fn d_in() -> usize {
    3
}
fn d_true() -> bool {
    true
}
fn d_positional() -> String {
    "positional".into()
}
fn d_down() -> Vec<DownBlockType> {
    use DownBlockType::*;
    vec![DownBlock2D, AttnDownBlock2D, AttnDownBlock2D, AttnDownBlock2D]
}
fn d_up() -> Vec<UpBlockType> {
    use UpBlockType::*;
    vec![AttnUpBlock2D, AttnUpBlock2D, AttnUpBlock2D, UpBlock2D]
}
fn d_channels() -> Vec<usize> {
    vec![224, 448, 672, 896]
}
fn d_layers() -> usize {
    2
}
fn d_one() -> f64 {
    1.0
}
fn d_padding() -> usize {
    1
}
fn d_conv() -> String {
    "conv".into()
}
fn d_silu() -> String {
    "silu".into()
}
fn d_head_dim() -> Option<usize> {
    Some(8)
}
fn d_groups() -> Option<usize> {
    Some(32)
}
fn d_eps() -> f64 {
    1e-5
}
fn d_default() -> String {
    "default".into()
}

/// diffusers' `UNet2DModel` config (`config.json`), with its key names and its defaults
/// (diffusers 0.30). Metadata keys diffusers writes (`_class_name`, `_diffusers_version`,
/// `_name_or_path`) are accepted; any other unknown key is an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UNet2DConfig {
    /// Metadata: the model class; `UNet2DModel` if present.
    #[serde(rename = "_class_name", default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Metadata: the diffusers version that wrote the file (ignored).
    #[serde(rename = "_diffusers_version", default, skip_serializing_if = "Option::is_none")]
    pub diffusers_version: Option<String>,
    /// Metadata: where the model was loaded from (ignored).
    #[serde(rename = "_name_or_path", default, skip_serializing_if = "Option::is_none")]
    pub name_or_path: Option<String>,
    /// Side (or `[height, width]`) of the training images; the network runs at other sizes too.
    #[serde(default)]
    pub sample_size: Option<SampleSize>,
    /// Input channels.
    #[serde(default = "d_in")]
    pub in_channels: usize,
    /// Output channels.
    #[serde(default = "d_in")]
    pub out_channels: usize,
    /// Maps the input from `[0, 1]` to `[-1, 1]` first (`2 x - 1`).
    #[serde(default)]
    pub center_input_sample: bool,
    /// Only `positional` (the sinusoidal embedding) is implemented.
    #[serde(default = "d_positional")]
    pub time_embedding_type: String,
    /// The `downscale_freq_shift` of the sinusoidal embedding (frequencies
    /// `exp(-ln(10000) i / (half - freq_shift))`).
    #[serde(default)]
    pub freq_shift: f64,
    /// `[cos, sin]` instead of `[sin, cos]`.
    #[serde(default = "d_true")]
    pub flip_sin_to_cos: bool,
    /// One per level, from the full resolution down.
    #[serde(default = "d_down")]
    pub down_block_types: Vec<DownBlockType>,
    /// One per level, from the lowest resolution up.
    #[serde(default = "d_up")]
    pub up_block_types: Vec<UpBlockType>,
    /// Width of each level.
    #[serde(default = "d_channels")]
    pub block_out_channels: Vec<usize>,
    /// Residual blocks per down block (one more per up block).
    #[serde(default = "d_layers")]
    pub layers_per_block: usize,
    /// `output_scale_factor` of the mid block's residual blocks and attention.
    #[serde(default = "d_one")]
    pub mid_block_scale_factor: f64,
    /// Padding of the downsamplers' convolutions: 1, or 0 (then one zero row and column at the
    /// bottom and right).
    #[serde(default = "d_padding")]
    pub downsample_padding: usize,
    /// Only `conv` is implemented.
    #[serde(default = "d_conv")]
    pub downsample_type: String,
    /// Only `conv` is implemented.
    #[serde(default = "d_conv")]
    pub upsample_type: String,
    /// Dropout probability of the residual blocks (training only: not applied here).
    #[serde(default)]
    pub dropout: f64,
    /// `silu` (or its other name `swish`).
    #[serde(default = "d_silu")]
    pub act_fn: String,
    /// Width of an attention head (`null`: one head over all channels).
    #[serde(default = "d_head_dim")]
    pub attention_head_dim: Option<usize>,
    /// GroupNorm groups of every residual block, attention and the output norm.
    #[serde(default = "d_groups")]
    pub norm_num_groups: Option<usize>,
    /// GroupNorm groups of the mid block's attention (`null`: `norm_num_groups`).
    #[serde(default)]
    pub attn_norm_num_groups: Option<usize>,
    /// GroupNorm epsilon everywhere.
    #[serde(default = "d_eps")]
    pub norm_eps: f64,
    /// Only `default` (the embedding added after the first convolution) is implemented.
    #[serde(default = "d_default")]
    pub resnet_time_scale_shift: String,
    /// Whether the mid block has its attention.
    #[serde(default = "d_true")]
    pub add_attention: bool,
    /// Must be `null` (no class conditioning).
    #[serde(default)]
    pub class_embed_type: Option<String>,
    /// Must be `null` (no class conditioning).
    #[serde(default)]
    pub num_class_embeds: Option<usize>,
    /// Used by diffusers' learned time embedding only; ignored by `positional`.
    #[serde(default)]
    pub num_train_timesteps: Option<usize>,
}

/// The network of a model card for an imported `UNet2DModel` (`network.kind =
/// "diffusers-unet2d"`): diffusers' config and what the scheduler says about the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffusersNetConfig {
    /// diffusers' `config.json`.
    pub unet: UNet2DConfig,
    /// The scheduler's `num_train_timesteps` `N`: time `t` is diffusers' timestep `N t - 1`.
    pub num_train_timesteps: usize,
    /// The scheduler's `prediction_type` (`epsilon`: eps, `v_prediction`: v, `sample`: x0).
    pub parameterization: Parameterization,
}

impl DiffusersNetConfig {
    /// Checks the network config and the schedule's length.
    pub fn validate(&self) -> Result<(), NnError> {
        self.unet.validate()?;
        if !(2..=crate::limits::MAX_LEVELS).contains(&self.num_train_timesteps) {
            let max = crate::limits::MAX_LEVELS;
            return Err(config_err("num_train_timesteps", format!("expected 2 to {max}, found {}", self.num_train_timesteps)));
        }
        if self.unet.out_channels != self.unet.in_channels {
            let (i, o) = (self.unet.in_channels, self.unet.out_channels);
            return Err(config_err("unet.out_channels", format!("expected in_channels = {i} (a prediction of the input's shape), found {o}")));
        }
        Ok(())
    }
}

impl super::NetworkConfig for DiffusersNetConfig {
    type Net = DiffusersUNet;
    fn build(&self, device: &Device) -> Result<DiffusersUNet, NnError> {
        self.validate()?;
        Ok(self.unet.init(device)?.with_schedule(self.num_train_timesteps, self.parameterization))
    }
}

fn config_err(field: &str, message: String) -> NnError {
    NnError::Config { field: field.to_string(), message }
}

impl UNet2DConfig {
    /// Parses a diffusers `config.json` and [validates](Self::validate) it.
    ///
    /// # Errors
    /// [`NnError::Config`] naming the unknown key or block type (serde's message, with the
    /// accepted names), or the field whose value is not implemented.
    pub fn from_json(text: &str) -> Result<Self, NnError> {
        let c: Self = serde_json::from_str(text).map_err(|e| config_err("config.json", e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// GroupNorm groups (`norm_num_groups`).
    pub fn groups(&self) -> usize {
        self.norm_num_groups.unwrap_or(32)
    }

    /// Width of the time embedding: `4 block_out_channels[0]`.
    pub fn time_embed_dim(&self) -> usize {
        4 * self.block_out_channels[0]
    }

    /// Checks that the config describes a network this module implements, naming the field.
    pub fn validate(&self) -> Result<(), NnError> {
        let unsupported = |f: &str, found: &str, expected: &str| config_err(f, format!("expected {expected}, found {found} (not implemented)"));
        if let Some(c) = self.class_name.as_deref().filter(|&c| c != "UNet2DModel") {
            return Err(unsupported("_class_name", &format!("{c:?}"), "\"UNet2DModel\""));
        }
        if self.time_embedding_type != "positional" {
            return Err(unsupported("time_embedding_type", &format!("{:?}", self.time_embedding_type), "\"positional\""));
        }
        for (f, v) in [("downsample_type", &self.downsample_type), ("upsample_type", &self.upsample_type)] {
            if v != "conv" {
                return Err(unsupported(f, &format!("{v:?}"), "\"conv\""));
            }
        }
        if self.act_fn != "silu" && self.act_fn != "swish" {
            return Err(unsupported("act_fn", &format!("{:?}", self.act_fn), "\"silu\""));
        }
        if self.resnet_time_scale_shift != "default" {
            return Err(unsupported("resnet_time_scale_shift", &format!("{:?}", self.resnet_time_scale_shift), "\"default\""));
        }
        if let Some(c) = &self.class_embed_type {
            return Err(unsupported("class_embed_type", &format!("{c:?}"), "null (class conditioning)"));
        }
        if let Some(n) = self.num_class_embeds {
            return Err(unsupported("num_class_embeds", &n.to_string(), "null (class conditioning)"));
        }
        if self.in_channels == 0 || self.out_channels == 0 {
            return Err(config_err("in_channels", format!("expected at least 1 channel in and out, found {} and {}", self.in_channels, self.out_channels)));
        }
        let levels = self.block_out_channels.len();
        if levels == 0 {
            return Err(config_err("block_out_channels", "expected at least one level, found none".into()));
        }
        for (f, n) in [("down_block_types", self.down_block_types.len()), ("up_block_types", self.up_block_types.len())] {
            if n != levels {
                return Err(config_err(f, format!("expected one block per level of block_out_channels ({levels}), found {n}")));
            }
        }
        if self.layers_per_block == 0 {
            return Err(config_err("layers_per_block", "expected at least 1, found 0".into()));
        }
        let Some(groups) = self.norm_num_groups.filter(|&g| g > 0) else {
            return Err(config_err("norm_num_groups", format!("expected a number of groups >= 1, found {:?}", self.norm_num_groups)));
        };
        for (i, &c) in self.block_out_channels.iter().enumerate() {
            if c == 0 || !c.is_multiple_of(groups) {
                return Err(config_err(&format!("block_out_channels[{i}]"), format!("expected a width divisible by norm_num_groups = {groups}, found {c}")));
            }
            if let Some(d) = self.attention_head_dim
                && (d == 0 || c < d)
            {
                return Err(config_err("attention_head_dim", format!("expected a head width in 1..={c} (block_out_channels[{i}]), found {d}")));
            }
        }
        let mid = *self.block_out_channels.last().expect("levels >= 1");
        if let Some(g) = self.attn_norm_num_groups
            && (g == 0 || !mid.is_multiple_of(g))
        {
            return Err(config_err("attn_norm_num_groups", format!("expected a divisor of the mid block's width {mid}, found {g}")));
        }
        if self.downsample_padding > 1 {
            return Err(config_err("downsample_padding", format!("expected 0 or 1, found {}", self.downsample_padding)));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return Err(config_err("norm_eps", format!("expected a finite number > 0, found {}", self.norm_eps)));
        }
        if !(self.mid_block_scale_factor.is_finite() && self.mid_block_scale_factor != 0.0) {
            return Err(config_err("mid_block_scale_factor", format!("expected a finite non-zero number, found {}", self.mid_block_scale_factor)));
        }
        let half = (self.block_out_channels[0] / 2) as f64;
        if !(self.freq_shift.is_finite() && self.freq_shift < half) {
            return Err(config_err("freq_shift", format!("expected a finite number below half the embedding width ({half}), found {}", self.freq_shift)));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(config_err("dropout", format!("expected a probability in [0, 1), found {}", self.dropout)));
        }
        // Options and structure first, so a mistake is named even in an oversized config; the
        // sizes are still bounded before anything is built.
        crate::limits::diffusers_unet(self)?;
        Ok(())
    }

    /// The factor `2^(levels - 1)` that image sides must be divisible by.
    pub fn side_multiple(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }

    /// Builds the network with freshly initialised weights (burn's initialisers; diffusers' own
    /// are not reproduced: load a checkpoint).
    ///
    /// # Errors
    /// If [`validate`](Self::validate) fails.
    pub fn init(&self, device: &Device) -> Result<DiffusersUNet, NnError> {
        self.validate()?;
        let ch = &self.block_out_channels;
        let (groups, eps, temb) = (self.groups(), self.norm_eps, self.time_embed_dim());
        let res = |cin: usize, cout: usize, scale: f64| ResnetBlock2D::new(cin, cout, temb, groups, eps, scale, device);
        let attn = |c: usize, g: usize, scale: f64| {
            let d = self.attention_head_dim.unwrap_or(c);
            Attention::new(c, c / d, d, g, eps, scale, device)
        };
        let levels = ch.len();
        let mut down_blocks = Vec::with_capacity(levels);
        let mut out = ch[0];
        for (i, kind) in self.down_block_types.iter().enumerate() {
            let cin = out;
            out = ch[i];
            let resnets = (0..self.layers_per_block).map(|j| res(if j == 0 { cin } else { out }, out, 1.0)).collect();
            let attentions =
                if *kind == DownBlockType::AttnDownBlock2D { (0..self.layers_per_block).map(|_| attn(out, groups, 1.0)).collect() } else { Vec::new() };
            let downsamplers = if i + 1 < levels { vec![Downsample2D::new(out, self.downsample_padding, device)] } else { Vec::new() };
            down_blocks.push(DownBlock { resnets, attentions, downsamplers });
        }
        let mid = ch[levels - 1];
        let s = self.mid_block_scale_factor;
        let mid_block = MidBlock {
            resnets: vec![res(mid, mid, s), res(mid, mid, s)],
            attentions: if self.add_attention { vec![attn(mid, self.attn_norm_num_groups.unwrap_or(groups), s)] } else { Vec::new() },
        };
        let rev: Vec<usize> = ch.iter().rev().copied().collect();
        let mut up_blocks = Vec::with_capacity(levels);
        let mut out = rev[0];
        for (i, kind) in self.up_block_types.iter().enumerate() {
            let prev = out;
            out = rev[i];
            let cin = rev[(i + 1).min(levels - 1)];
            let n = self.layers_per_block + 1;
            let resnets = (0..n)
                .map(|j| {
                    let skip = if j == n - 1 { cin } else { out };
                    let res_in = if j == 0 { prev } else { out };
                    res(res_in + skip, out, 1.0)
                })
                .collect();
            let attentions = if *kind == UpBlockType::AttnUpBlock2D { (0..n).map(|_| attn(out, groups, 1.0)).collect() } else { Vec::new() };
            let upsamplers = if i + 1 < levels { vec![Upsample2D { conv: conv(out, out, 3, 1, 1, device) }] } else { Vec::new() };
            up_blocks.push(UpBlock { resnets, attentions, upsamplers });
        }
        Ok(DiffusersUNet {
            conv_in: conv(self.in_channels, ch[0], 3, 1, 1, device),
            time_embedding: TimestepEmbedding { linear_1: LinearConfig::new(ch[0], temb).init(device), linear_2: LinearConfig::new(temb, temb).init(device) },
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: GroupNormConfig::new(groups, ch[0]).with_epsilon(eps).init(device),
            conv_out: conv(ch[0], self.out_channels, 3, 1, 1, device),
            config: self.clone(),
            timesteps: 1000,
            parameterization: Parameterization::Eps,
        })
    }
}

/// A `k x k` convolution with stride `stride` and padding `pad` on every side.
fn conv(cin: usize, cout: usize, k: usize, stride: usize, pad: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k]).with_stride([stride, stride]).with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad)).init(device)
}

/// diffusers' `get_timestep_embedding(timesteps, dim, flip_sin_to_cos, downscale_freq_shift)`,
/// computed in f32 as PyTorch does: `emb_i = t exp(-ln(10000) i / (half - shift))`,
/// `[sin(emb), cos(emb)]` (or `[cos, sin]` when flipped), `half = dim / 2`, zero-padded to an odd
/// `dim`.
///
/// # Shapes
/// - output: `[timesteps.len() * dim]`, row-major `[batch, dim]`
pub fn timestep_features(timesteps: &[f64], dim: usize, flip_sin_to_cos: bool, freq_shift: f64) -> Vec<f32> {
    let half = dim / 2;
    let denom = (half as f64 - freq_shift) as f32;
    let ln = -(10000f64.ln()) as f32;
    let freqs: Vec<f32> = (0..half).map(|i| (ln * i as f32 / denom).exp()).collect();
    let mut out = vec![0f32; timesteps.len() * dim];
    for (row, &t) in out.chunks_mut(dim).zip(timesteps) {
        let t = t as f32;
        for (i, &f) in freqs.iter().enumerate() {
            let a = t * f;
            let (first, second) = if flip_sin_to_cos { (a.cos(), a.sin()) } else { (a.sin(), a.cos()) };
            row[i] = first;
            row[half + i] = second;
        }
    }
    out
}

/// `TimestepEmbedding`: `linear_2(SiLU(linear_1(features)))`.
#[derive(Module, Debug)]
pub struct TimestepEmbedding {
    linear_1: Linear,
    linear_2: Linear,
}

/// `ResnetBlock2D` with `time_embedding_norm = "default"`:
/// `(shortcut(x) + conv2(SiLU(norm2(conv1(SiLU(norm1(x))) + time_emb_proj(SiLU(temb)))))) / output_scale_factor`.
#[derive(Module, Debug)]
pub struct ResnetBlock2D {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Linear,
    norm2: GroupNorm,
    conv2: Conv2d,
    /// A 1x1 convolution when the width changes.
    conv_shortcut: Option<Conv2d>,
    #[module(skip)]
    output_scale_factor: f64,
}

impl ResnetBlock2D {
    fn new(cin: usize, cout: usize, temb: usize, groups: usize, eps: f64, output_scale_factor: f64, device: &Device) -> Self {
        Self {
            norm1: GroupNormConfig::new(groups, cin).with_epsilon(eps).init(device),
            conv1: conv(cin, cout, 3, 1, 1, device),
            time_emb_proj: LinearConfig::new(temb, cout).init(device),
            norm2: GroupNormConfig::new(groups, cout).with_epsilon(eps).init(device),
            conv2: conv(cout, cout, 3, 1, 1, device),
            conv_shortcut: (cin != cout).then(|| conv(cin, cout, 1, 1, 0, device)),
            output_scale_factor,
        }
    }

    /// # Shapes
    /// - `x`: `[batch, cin, h, w]`, `temb`: `[batch, temb]` (already through SiLU), output
    ///   `[batch, cout, h, w]`
    fn forward(&self, x: Tensor<4>, temb_act: Tensor<2>) -> Tensor<4> {
        let h = conv2d(&self.conv1, group_norm_silu(&self.norm1, x.clone(), true)); // [b, cout, h, w]
        let [b, c, _, _] = h.dims();
        let h = h + self.time_emb_proj.forward(temb_act).reshape([b, c, 1, 1]);
        let h = conv2d(&self.conv2, group_norm_silu(&self.norm2, h, true)); // [b, cout, h, w]
        let x = match &self.conv_shortcut {
            Some(s) => conv2d(s, x),
            None => x,
        };
        let out = x + h;
        if self.output_scale_factor == 1.0 { out } else { out.div_scalar(self.output_scale_factor) }
    }
}

/// `Attention` as the UNet2D blocks build it (`residual_connection = True`, biases, group norm):
/// `(x + to_out(MultiHead(group_norm(x)))) / rescale_output_factor` over the `h w` positions.
#[derive(Module, Debug)]
pub struct Attention {
    group_norm: GroupNorm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    /// `to_out.0` (diffusers' `to_out.1` is a dropout).
    to_out: Vec<Linear>,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    dim_head: usize,
    #[module(skip)]
    rescale_output_factor: f64,
}

impl Attention {
    fn new(c: usize, heads: usize, dim_head: usize, groups: usize, eps: f64, rescale_output_factor: f64, device: &Device) -> Self {
        let inner = heads * dim_head;
        Self {
            group_norm: GroupNormConfig::new(groups, c).with_epsilon(eps).init(device),
            to_q: LinearConfig::new(c, inner).init(device),
            to_k: LinearConfig::new(c, inner).init(device),
            to_v: LinearConfig::new(c, inner).init(device),
            to_out: vec![LinearConfig::new(inner, c).init(device)],
            heads,
            dim_head,
            rescale_output_factor,
        }
    }

    /// # Shapes
    /// - `x`, output: `[batch, c, h, w]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let (n, heads, d) = (h * w, self.heads, self.dim_head);
        let hs = group_norm_silu(&self.group_norm, x.clone(), false).reshape([b, c, n]).swap_dims(1, 2); // [b, n, c]
        let split = |t: Tensor<3>| t.reshape([b, n, heads, d]).swap_dims(1, 2); // [b, heads, n, d]
        let q = split(self.to_q.forward(hs.clone()));
        let k = split(self.to_k.forward(hs.clone()));
        let v = split(self.to_v.forward(hs));
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (d as f64).sqrt()); // [b, heads, n, n]
        let o = softmax(scores, 3).matmul(v).swap_dims(1, 2).reshape([b, n, heads * d]); // [b, n, inner]
        let o = self.to_out[0].forward(o).swap_dims(1, 2).reshape([b, c, h, w]); // [b, c, h, w]
        let out = o + x;
        if self.rescale_output_factor == 1.0 { out } else { out.div_scalar(self.rescale_output_factor) }
    }
}

/// `Downsample2D` with a convolution (`name = "op"`: the tensor is `downsamplers.0.conv`).
#[derive(Module, Debug)]
pub struct Downsample2D {
    conv: Conv2d,
}

impl Downsample2D {
    fn new(c: usize, padding: usize, device: &Device) -> Self {
        // padding 0: diffusers pads (0, 1, 0, 1), one zero column on the right and row at the bottom.
        let pad = if padding == 0 { PaddingConfig2d::Explicit(0, 0, 1, 1) } else { PaddingConfig2d::Explicit(1, 1, 1, 1) };
        Self { conv: Conv2dConfig::new([c, c], [3, 3]).with_stride([2, 2]).with_padding(pad).init(device) }
    }
}

/// `Upsample2D` with a convolution: nearest x2, then a 3x3 convolution.
#[derive(Module, Debug)]
pub struct Upsample2D {
    conv: Conv2d,
}

/// `DownBlock2D` (no attentions) or `AttnDownBlock2D`.
#[derive(Module, Debug)]
pub struct DownBlock {
    resnets: Vec<ResnetBlock2D>,
    /// Empty, or one per residual block.
    attentions: Vec<Attention>,
    /// Empty at the lowest level.
    downsamplers: Vec<Downsample2D>,
}

/// `UNetMidBlock2D`: residual block, attention (unless `add_attention` is false), residual block.
#[derive(Module, Debug)]
pub struct MidBlock {
    resnets: Vec<ResnetBlock2D>,
    attentions: Vec<Attention>,
}

/// `UpBlock2D` (no attentions) or `AttnUpBlock2D`.
#[derive(Module, Debug)]
pub struct UpBlock {
    resnets: Vec<ResnetBlock2D>,
    /// Empty, or one per residual block.
    attentions: Vec<Attention>,
    /// Empty at the top level.
    upsamplers: Vec<Upsample2D>,
}

/// Nearest-neighbour x2 upsampling (`F.interpolate(scale_factor=2.0, mode="nearest")`).
fn upsample_nearest2(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1]).expand([b, c, h, 2, w, 2]).reshape([b, c, 2 * h, 2 * w])
}

/// diffusers' `UNet2DModel` (see the [module docs](self)). Built by [`UNet2DConfig::init`].
#[derive(Module, Debug)]
pub struct DiffusersUNet {
    conv_in: Conv2d,
    time_embedding: TimestepEmbedding,
    down_blocks: Vec<DownBlock>,
    mid_block: MidBlock,
    up_blocks: Vec<UpBlock>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    #[module(skip)]
    config: UNet2DConfig,
    /// `N`, the scheduler's `num_train_timesteps` (the DDPM grid time `t` maps to).
    #[module(skip)]
    timesteps: usize,
    /// What the output is (the scheduler's `prediction_type`).
    #[module(skip)]
    parameterization: Parameterization,
}

impl DiffusersUNet {
    /// The config.
    pub fn config(&self) -> &UNet2DConfig {
        &self.config
    }

    /// The network on the DDPM grid of `timesteps` levels, predicting `parameterization` (the
    /// scheduler's `num_train_timesteps` and `prediction_type`); default 1000, eps.
    pub fn with_schedule(mut self, timesteps: usize, parameterization: Parameterization) -> Self {
        self.timesteps = timesteps;
        self.parameterization = parameterization;
        self
    }

    /// diffusers' timestep index of time `t`: `N t - 1` (level `i = N t` is `alphas_cumprod[i - 1]`).
    pub fn timestep(&self, t: f64) -> f64 {
        self.timesteps as f64 * t - 1.0
    }

    /// Number of stored float parameters.
    pub fn num_params(&self) -> usize {
        Module::num_params(self)
    }

    /// Loads diffusers' `diffusion_pytorch_model.safetensors` (f32 or f16: cast to f32); `name`
    /// names the bytes in errors.
    ///
    /// # Errors
    /// [`NnError::Format`] if the bytes are not safetensors; [`NnError::Architecture`] naming the
    /// tensors whose shapes differ from the config's network, those missing from the file and
    /// those the network does not have.
    pub fn load_safetensors(mut self, bytes: Vec<u8>, name: &str) -> Result<Self, NnError> {
        let mut store = SafetensorsStore::from_bytes(Some(bytes))
            .with_from_adapter(PyTorchToBurnAdapter.chain(burn::store::FloatCastAdapter::to(burn::tensor::DType::F32)))
            .allow_partial(true)
            .validate(false);
        let result = self.load_from(&mut store).map_err(|e| NnError::Format { file: name.to_string(), format: "safetensors", message: e.to_string() })?;
        super::check_applied(&result, name)?;
        Ok(self)
    }

    /// Evaluates `UNet2DModel.forward(sample, timestep).sample`.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`, sides divisible by
    ///   [`side_multiple`](UNet2DConfig::side_multiple)
    /// - `timesteps`: `batch` diffusers timesteps (`0..num_train_timesteps`, fractional allowed)
    /// - output: `[batch, out_channels, height, width]`
    ///
    /// # Panics
    /// If the channels, the batch or the sides do not fit.
    pub fn forward_timesteps(&self, x: Tensor<4>, timesteps: &[f64]) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let cfg = &self.config;
        assert_eq!(c, cfg.in_channels, "expected {} input channels, found {c}", cfg.in_channels);
        assert_eq!(timesteps.len(), b, "expected one timestep per sample ({b}), found {}", timesteps.len());
        let m = cfg.side_multiple();
        assert!(h.is_multiple_of(m) && w.is_multiple_of(m), "expected sides divisible by {m} (2^(levels - 1)), found {h}x{w}");
        let device = x.device();
        let x = if cfg.center_input_sample { x.mul_scalar(2.0).sub_scalar(1.0) } else { x };
        let dim = cfg.block_out_channels[0];
        let feats = timestep_features(timesteps, dim, cfg.flip_sin_to_cos, cfg.freq_shift);
        let feats = Tensor::<2>::from_data(TensorData::new(feats, [b, dim]), &device); // [b, ch0]
        let emb = self.time_embedding.linear_2.forward(silu(self.time_embedding.linear_1.forward(feats))); // [b, 4 ch0]
        let temb = silu(emb); // each resnet applies SiLU to temb first

        let mut h = conv2d(&self.conv_in, x); // [b, ch0, h, w]
        let mut skips = vec![h.clone()];
        for block in &self.down_blocks {
            for (i, resnet) in block.resnets.iter().enumerate() {
                h = resnet.forward(h, temb.clone()); // [b, ch_level, h_level, w_level]
                if let Some(a) = block.attentions.get(i) {
                    h = a.forward(h);
                }
                skips.push(h.clone());
            }
            for d in &block.downsamplers {
                h = conv2d(&d.conv, h); // [b, ch_level, h_level / 2, w_level / 2]
                skips.push(h.clone());
            }
        }
        h = self.mid_block.resnets[0].forward(h, temb.clone());
        for (a, r) in self.mid_block.attentions.iter().zip(&self.mid_block.resnets[1..]) {
            h = r.forward(a.forward(h), temb.clone());
        }
        if self.mid_block.attentions.is_empty() {
            // add_attention = false: diffusers still runs both residual blocks.
            h = self.mid_block.resnets[1].forward(h, temb.clone());
        }
        for block in &self.up_blocks {
            for (i, resnet) in block.resnets.iter().enumerate() {
                let skip = skips.pop().expect("one skip per up residual block");
                h = resnet.forward(Tensor::cat(vec![h, skip], 1), temb.clone()); // [b, ch_level, h_level, w_level]
                if let Some(a) = block.attentions.get(i) {
                    h = a.forward(h);
                }
            }
            for u in &block.upsamplers {
                h = conv2d(&u.conv, upsample_nearest2(h)); // [b, ch_level, 2 h_level, 2 w_level]
            }
        }
        debug_assert!(skips.is_empty());
        conv2d(&self.conv_out, group_norm_silu(&self.conv_norm_out, h, true)) // [b, out_channels, h, w]
    }
}

impl ScoreModel<4> for DiffusersUNet {
    fn parameterization(&self) -> Parameterization {
        self.parameterization
    }

    /// The network at diffusers' timesteps [`timestep(t)`](DiffusersUNet::timestep).
    fn forward(&self, x: Tensor<4>, t: &[f64]) -> Tensor<4> {
        let ts: Vec<f64> = t.iter().map(|&t| self.timestep(t)).collect();
        self.forward_timesteps(x, &ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestep_features_by_hand() {
        // dim 6, half 3, shift 1: frequencies exp(-ln(1e4) i / 2) = 1, 1e-2, 1e-4.
        let f = timestep_features(&[2.0], 6, false, 1.0);
        let want = [2f32.sin(), 0.02f32.sin(), 2e-4f32.sin(), 2f32.cos(), 0.02f32.cos(), 2e-4f32.cos()];
        for (a, b) in f.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{f:?}");
        }
        let g = timestep_features(&[2.0], 6, true, 1.0);
        assert_eq!(&g[..3], &f[3..]);
        assert_eq!(&g[3..], &f[..3]);
    }

    #[test]
    fn unknown_keys_and_options_are_named() {
        let e = UNet2DConfig::from_json(r#"{"block_out_channels": [32], "down_block_types": ["DownBlock2D"], "up_block_types": ["UpBlock2D"], "colour": 1}"#)
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");
        let e = UNet2DConfig::from_json(r#"{"down_block_types": ["SkipDownBlock2D"]}"#).unwrap_err();
        assert!(e.to_string().contains("SkipDownBlock2D"), "{e}");
        let e = UNet2DConfig::from_json(r#"{"time_embedding_type": "fourier"}"#).unwrap_err();
        assert!(e.to_string().contains("time_embedding_type") && e.to_string().contains("fourier"), "{e}");
        let e = UNet2DConfig::from_json(r#"{"down_block_types": ["DownBlock2D"]}"#).unwrap_err();
        assert!(e.to_string().contains("down_block_types"), "{e}");
        // Metadata keys and diffusers' defaults. The default widths (224 to 896, about 135 M
        // parameters by the lower estimate) are above limits::MAX_PARAMETERS and are refused by
        // name; with small widths the other defaults apply.
        let e = UNet2DConfig::from_json(r#"{"_class_name": "UNet2DModel", "_diffusers_version": "0.30.3"}"#).unwrap_err();
        assert!(e.to_string().contains("parameters") && e.to_string().contains("at most 134217728"), "{e}");
        let c = UNet2DConfig::from_json(r#"{"_class_name": "UNet2DModel", "block_out_channels": [32, 64, 64, 64]}"#).unwrap();
        assert_eq!((c.attention_head_dim, c.groups(), c.block_out_channels.len(), c.layers_per_block), (Some(8), 32, 4, 2));
    }
}
