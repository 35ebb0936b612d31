//! Floating-point operation counts of the U-Net, to compare achieved GFLOP/s with the machine's.
//!
//! The convention of Kaplan et al. 2020 (section 2.1) and of most FLOP counters: one
//! multiply-add is 2 FLOPs, and only the products are counted: convolutions
//! (`2 c_in c_out k_h k_w` per output pixel), linear layers (`2 n_in n_out`) and the two matrix
//! products of attention (`q^T k` and `v a^T`, `2 n^2 c` each for `n` positions). GroupNorm,
//! SiLU, softmax, additions and biases cost `O(1)` per activation: about `1 / (9 c_in)` of the
//! 3x3 convolution they accompany, under 0.5% for the widths here, and they are left out.
//! A training step (forward and backward: the gradients with respect to the activations and to
//! the weights are each one more product of the forward's size) is counted as 3 forward passes
//! ([`TRAIN_STEP_FORWARDS`]).
//!
//! The walk mirrors [`UNet::forward`](super::UNet::forward) layer by layer, including the
//! stride-2 sizes `ceil(n / 2)` and the up path's crop to the skip connection's size.

use super::UNetConfig;

/// Forward-pass equivalents of one training step (forward + backward): 3.
pub const TRAIN_STEP_FORWARDS: u64 = 3;

/// FLOPs of a 2-D convolution producing `out_h x out_w` pixels (bias left out).
pub fn conv2d(c_in: usize, c_out: usize, kernel: usize, out_h: usize, out_w: usize) -> u64 {
    2 * (c_in * c_out * kernel * kernel * out_h * out_w) as u64
}

/// FLOPs of a linear layer on one vector (bias left out).
pub fn linear(n_in: usize, n_out: usize) -> u64 {
    2 * (n_in * n_out) as u64
}

/// FLOPs of one residual block (`ResBlock`) at `h x w`: two 3x3 convolutions, the
/// embedding projection and, when the width changes, the 1x1 skip convolution.
pub fn res_block(c_in: usize, c_out: usize, emb: usize, h: usize, w: usize) -> u64 {
    let skip = if c_in == c_out { 0 } else { conv2d(c_in, c_out, 1, h, w) };
    conv2d(c_in, c_out, 3, h, w) + linear(emb, c_out) + conv2d(c_out, c_out, 3, h, w) + skip
}

/// FLOPs of one single-head attention block (`AttentionBlock`) on `c` channels at `h x w`:
/// the 1x1 `q, k, v` and output convolutions and the two `n x n` products (`n = h w`).
pub fn attention_block(c: usize, h: usize, w: usize) -> u64 {
    let n = (h * w) as u64;
    conv2d(c, 3 * c, 1, h, w) + conv2d(c, c, 1, h, w) + 2 * (2 * n * n * c as u64)
}

/// FLOPs of one forward pass of the U-Net on one `height x width` image.
pub fn unet_forward(config: &UNetConfig, height: usize, width: usize) -> u64 {
    let emb = config.embedding_width();
    let attn_levels = config.attention_levels();
    let levels = config.channel_mult.len();
    let base = config.base_channels;
    // The time embedding's MLP (the class embedding is a lookup).
    let mut flops = linear(base, emb) + linear(emb, emb);
    let mut ch = base;
    let (mut h, mut w) = (height, width);
    flops += conv2d(config.in_channels, ch, 3, h, w);
    // Channels and size of each skip connection, in the order the forward pushes them.
    let mut skips = vec![(ch, h, w)];
    for (level, &mult) in config.channel_mult.iter().enumerate() {
        let out = base * mult;
        for _ in 0..config.num_res_blocks {
            flops += res_block(ch, out, emb, h, w);
            ch = out;
            if attn_levels.contains(&level) {
                flops += attention_block(ch, h, w);
            }
            skips.push((ch, h, w));
        }
        if level + 1 < levels {
            (h, w) = (h.div_ceil(2), w.div_ceil(2));
            flops += conv2d(ch, ch, 3, h, w);
            skips.push((ch, h, w));
        }
    }
    flops += 2 * res_block(ch, ch, emb, h, w) + attention_block(ch, h, w);
    for (level, &mult) in config.channel_mult.iter().enumerate().rev() {
        let out = base * mult;
        for _ in 0..=config.num_res_blocks {
            let (skip, _, _) = skips.pop().expect("one skip per up block");
            flops += res_block(ch + skip, out, emb, h, w);
            ch = out;
            if attn_levels.contains(&level) {
                flops += attention_block(ch, h, w);
            }
        }
        if level > 0 {
            let &(_, sh, sw) = skips.last().expect("a skip above every level but the top");
            (h, w) = (sh, sw);
            flops += conv2d(ch, ch, 3, h, w);
        }
    }
    flops + conv2d(ch, config.out_channels(), 3, h, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A residual block 32 -> 64 channels at 14x14 with a 128-wide embedding, by hand:
    /// conv1 3x3: 196 pixels x 64 outputs x (32 x 9) multiply-adds = 3 612 672;
    /// conv2 3x3: 196 x 64 x (64 x 9) = 7 225 344; 1x1 skip: 196 x 64 x 32 = 401 408;
    /// embedding projection: 128 x 64 = 8 192. Sum 11 247 616 multiply-adds = 22 495 232 FLOPs.
    #[test]
    fn res_block_matches_a_hand_count() {
        assert_eq!(res_block(32, 64, 128, 14, 14), 22_495_232);
        // Same width: no skip convolution. 2 x (196 x 64 x 576) + 8192 = 14 458 880 MACs.
        assert_eq!(res_block(64, 64, 128, 14, 14), 28_917_760);
    }

    /// Attention on 64 channels at 7x7 (n = 49): q, k, v: 49 x 192 x 64 = 602 112 MACs;
    /// projection 49 x 64 x 64 = 200 704; q^T k and v a^T: 49 x 49 x 64 = 153 664 each.
    /// Sum 1 110 144 MACs.
    #[test]
    fn attention_matches_a_hand_count() {
        assert_eq!(attention_block(64, 7, 7), 2_220_288);
    }

    /// A one-level U-Net (no up/down sampling, no attention level other than the middle) on
    /// 4x4, base 8, one block: conv_in 1->8, down block 8->8, middle block (two blocks and
    /// attention), two up blocks 16->8 (skips: the block's and conv_in's), conv_out 8->1.
    #[test]
    fn one_level_unet_matches_its_parts() {
        let config = UNetConfig::new().with_base_channels(8).with_channel_mult(vec![1]).with_num_res_blocks(1).with_attention_resolutions(Some(vec![]));
        let (h, w) = (4, 4);
        let px = 16;
        let time = 2 * (8 * 32 + 32 * 32);
        let conv_in = 2 * px * 9 * 8;
        // A same-width block: two 3x3 convolutions and the projection.
        let block8 = 2 * (2 * px * 9 * 8 * 8 + 32 * 8);
        let up16 = 2 * (px * 9 * 16 * 8 + 32 * 8 + px * 9 * 8 * 8 + px * 16 * 8);
        let attn = 2 * (px * 8 * 24 + px * 8 * 8 + 2 * px * px * 8);
        let conv_out = 2 * px * 9 * 8;
        let expect = time + conv_in + block8 + 2 * block8 + attn + 2 * up16 + conv_out;
        assert_eq!(unet_forward(&config, h, w), expect as u64);
    }

    /// The default 28x28 U-Net: the down path halves to 14 and 7; the two stride-2
    /// convolutions and the two upsampling convolutions run at 14, 7 and 28, 14. Changing the
    /// image to 32x32 scales every per-pixel term, and the attention's `n^2` terms faster.
    #[test]
    fn flops_grow_with_the_image() {
        let config = UNetConfig::new();
        let f28 = unet_forward(&config, 28, 28);
        let f32_ = unet_forward(&config, 32, 32);
        let ratio = f32_ as f64 / f28 as f64;
        // Pixels grow by (32/28)^2 = 1.306 at every level (7 -> 8 at the lowest: 1.306 too).
        assert!((ratio - (32.0f64 / 28.0).powi(2)).abs() < 0.02, "{ratio}");
        // Odd sides: 7x7 runs at 7, 4, 2 and crops back up.
        assert!(unet_forward(&config, 7, 7) > 0);
    }
}
