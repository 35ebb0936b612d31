//! `native-cli likelihood`: negative log-likelihood and bits/dim of data under the model's
//! probability-flow ODE (`--method ode`, `scorediff::likelihood`, Song et al. 2021, appendix
//! D.2), with Hutchinson's divergence estimator for images and uniform dequantization of 8-bit
//! data (`scorediff::likelihood::Dequantization`, whose offset is the Jacobian of the data
//! scaling); or, for a discrete DDPM, by the full variational bound on the 8-bit images
//! (`--method vlb`, `scorediff::likelihood::vlb`, Ho et al. 2020 eq. 5, Nichol & Dhariwal 2021).

use crate::model_source::ModelSource;
use crate::{config_error, progress_bar};
use anyhow::{Context, Result, bail};
use clap::Args;
use scorediff::burn::tensor::{Device, Tensor, TensorData};
use scorediff::data::mnist::pixel_to_signed;
use scorediff::data::{DatasetKind, ImageDataset, Split};
use scorediff::export::LoadedNet;
use scorediff::io::read_npy;
use scorediff::likelihood::{Dequantization, Divergence, Likelihood, LikelihoodConfig, Vlb, ode_likelihood, vlb_likelihood};
use scorediff::model::ScoreModel;
use scorediff::noise::NoiseSource;
use scorediff::sampler::Variance;
use scorediff::sde::{DiscreteVpSde, SdeConfig};
use serde::Serialize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// `--hutchinson PROBE`: Hutchinson's method with that probe, by its `--divergence` name
/// `hutchinson-PROBE`.
fn hutchinson(probe: &str) -> Result<Divergence, String> {
    Divergence::from_str(&format!("hutchinson-{probe}")).map_err(|_| format!("unknown probe `{probe}`: expected rademacher or gaussian"))
}

/// How the likelihood is computed.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LikelihoodMethod {
    /// The probability-flow ODE (any model; dequantized 8-bit data).
    Ode,
    /// The variational bound, all T terms and the prior (a discrete DDPM on 8-bit images).
    Vlb,
}

#[derive(Args)]
pub struct LikelihoodArgs {
    /// The model: a training run directory, an export directory or a Gaussian-mixture .json.
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// ode: the probability-flow ODE; vlb: the full variational bound of a discrete DDPM
    /// (sde.kind = ddpm) on 8-bit images, with the model's reverse variance (one network
    /// evaluation per level and batch; the model's x_0 estimate clipped to [-1, 1]).
    #[arg(long, value_enum, default_value_t = LikelihoodMethod::Ode)]
    method: LikelihoodMethod,
    /// With --method vlb, the reverse variance of the bound: small, large, or learned (a model
    /// trained with a learned variance) [default: the model's variance].
    #[arg(long, value_name = "V", value_parser = Variance::from_str)]
    variance: Option<Variance>,
    /// The data: mnist-test, mnist-train, fashion-mnist-test, fashion-mnist-train (8-bit
    /// images, dequantized; bits/dim of the discrete data), or a .npy of shape [n, dim] or
    /// [n, 1, 28, 28] (float32 or float64, in model space; bits/dim of the continuous density).
    #[arg(long, value_name = "DATA")]
    data: String,
    /// Evaluate the first N points [default: all rows of a .npy, 64 images of a data set].
    #[arg(long, value_name = "N")]
    n: Option<usize>,
    /// Points per ODE solve (per bound evaluation with --method vlb).
    #[arg(long, value_name = "B", default_value_t = 16)]
    batch: usize,
    /// Where MNIST / Fashion-MNIST idx files are (else the usual places; see scripts/fetch-data.sh).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Divergence of the drift: exact, hutchinson-rademacher or hutchinson-gaussian
    /// [default: exact when dim <= 16, else hutchinson-rademacher].
    #[arg(long, value_name = "METHOD", value_parser = Divergence::from_str, conflicts_with = "hutchinson")]
    divergence: Option<Divergence>,
    /// Hutchinson's estimator with this probe: rademacher or gaussian (same as
    /// --divergence hutchinson-PROBE).
    #[arg(long, value_name = "PROBE", value_parser = hutchinson)]
    hutchinson: Option<Divergence>,
    /// Relative tolerance of the RK45 solver.
    #[arg(long, value_name = "R", default_value_t = LikelihoodConfig::default().rtol)]
    rtol: f64,
    /// Absolute tolerance of the RK45 solver.
    #[arg(long, value_name = "A", default_value_t = LikelihoodConfig::default().atol)]
    atol: f64,
    /// Seed of the Hutchinson probes and of the dequantization noise.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Print a JSON summary to stdout instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct LikelihoodSummary {
    nll_nats: f64,
    nll_nats_per_dim: f64,
    bits_per_dim: f64,
    /// `Some(offset)` when the data were 8-bit and dequantized (bits/dim includes it).
    dequantization_offset_bits: Option<f64>,
    /// Network evaluations per point: those of the solve its batch was in (RK45 is adaptive:
    /// the largest over batches), as `eval`'s `sampling.nfe` is per sample.
    nfe: usize,
    /// Evaluations of the batched network over all batches (the cost).
    nfe_total: usize,
    n: usize,
    dim: usize,
    divergence: String,
}

/// The data set named by `--data` (`mnist-test` ...), if it names one.
fn named_dataset(data: &str) -> Option<(DatasetKind, Split)> {
    let (kind, split) = data.rsplit_once('-')?;
    let kind = DatasetKind::ALL.into_iter().find(|k| k.name() == kind)?;
    Some((kind, split.parse().ok()?))
}

#[derive(Serialize)]
struct VlbSummary {
    method: &'static str,
    nll_nats: f64,
    nll_nats_per_dim: f64,
    bits_per_dim: f64,
    prior_bits_per_dim: f64,
    kl_bits_per_dim: f64,
    decoder_bits_per_dim: f64,
    variance: String,
    levels: usize,
    clip_denoised: bool,
    /// Network evaluations per point (one per level), as `eval`'s `sampling.nfe` is per sample.
    nfe: usize,
    /// Evaluations of the batched network over all batches (levels times batches).
    nfe_total: usize,
    n: usize,
    dim: usize,
}

/// The first `--n` images (default 64) of a named data set, checked against the model's shape.
fn load_images(args: &LikelihoodArgs, kind: DatasetKind, split: Split, point: &[usize]) -> Result<(Vec<u8>, usize)> {
    let ds = ImageDataset::load(kind, split, args.data_dir.as_deref()).with_context(|| format!("reading --data {}", args.data))?;
    let found = vec![ds.channels, ds.height, ds.width];
    if found != point {
        bail!("data {}: expected points of shape {point:?} (model {}), found images of shape {found:?}", args.data, args.model.display());
    }
    let n = args.n.unwrap_or(64).min(ds.n);
    Ok(((0..n).flat_map(|i| ds.image(i).iter().copied()).collect(), n))
}

/// `--method vlb`: bits/dim of 8-bit images by the full variational bound of a discrete DDPM.
fn vlb(args: &LikelihoodArgs, source: &ModelSource) -> Result<()> {
    let path = args.model.display();
    let Some(card) = source.card() else {
        bail!("--method vlb: model {path} is a Gaussian mixture; the variational bound needs a trained discrete DDPM (use --method ode)");
    };
    let SdeConfig::Ddpm { schedule, levels, zero_terminal_snr } = card.sde else {
        bail!(
            "--method vlb: model {path} has the continuous SDE sde.kind = {}; the variational bound needs a discrete DDPM (sde.kind = ddpm); use --method ode",
            card.sde.kind()
        );
    };
    let Some((kind, split)) = named_dataset(&args.data) else {
        bail!(
            "--method vlb: expected 8-bit images (--data mnist-test, mnist-train, fashion-mnist-test or fashion-mnist-train), found {}; the bound's decoder is discrete (use --method ode for continuous data)",
            args.data
        );
    };
    let variance = Variance::resolve(args.variance, card.variance).map_err(config_error).with_context(|| format!("model {path}"))?;
    let sde = DiscreteVpSde::new(schedule, levels).with_context(|| format!("reading model {path}"))?;
    let sde = if zero_terminal_snr { sde.with_zero_terminal_snr() } else { sde };
    let point = source.dim_shape();
    let (pixels, n) = load_images(args, kind, split, &point)?;
    let device = Device::flex();
    let LoadedNet::Image(unet) = source.net(&device)? else {
        bail!("model {path}: expected an image U-Net for --data {}, found an MLP", args.data);
    };
    let dim: usize = point.iter().product();
    let values: Vec<f32> = pixels.iter().map(|&p| pixel_to_signed(p)).collect();
    let mut noise = NoiseSource::new(args.seed);
    let spinner = progress_bar("{spinner} variational bound: {msg} ({elapsed})");
    spinner.enable_steady_tick(Duration::from_millis(120));
    let mut parts = Vec::new();
    for (b, chunk) in values.chunks(args.batch * dim).enumerate() {
        let rows = chunk.len() / dim;
        let x = Tensor::<4>::from_data(TensorData::new(chunk.to_vec(), [rows, point[0], point[1], point[2]]), &device);
        let first = b * args.batch;
        let progress = |k: usize, total: usize| spinner.set_message(format!("points {first}..{} of {n}, level {k} of {total}", first + rows));
        parts.push(vlb_likelihood(&unet as &dyn ScoreModel<4>, &sde, x, variance, true, &mut noise, progress));
    }
    spinner.finish_and_clear();
    let nfe = parts.iter().map(|p| p.nfe).max().unwrap_or(0);
    let l = Vlb::merge(parts);
    let total = l.total();
    if let Some(i) = total.iter().position(|v| !v.is_finite()) {
        bail!("the variational bound of point {i} is not finite ({})", total[i]);
    }
    let nll = total.iter().sum::<f64>() / total.len() as f64;
    let [prior, kl, decoder] = l.parts_bits_per_dim();
    let summary = VlbSummary {
        method: "vlb",
        nll_nats: nll,
        nll_nats_per_dim: nll / l.dim as f64,
        bits_per_dim: l.bits_per_dim(),
        prior_bits_per_dim: prior,
        kl_bits_per_dim: kl,
        decoder_bits_per_dim: decoder,
        variance: variance.to_string(),
        levels,
        clip_denoised: true,
        nfe,
        nfe_total: l.nfe,
        n,
        dim: l.dim,
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "NLL <= {:.4} nats ({:.4} bits/dim: prior {:.4}, KL terms {:.4}, decoder {:.4}) over {} points of dim {} by the variational bound of {} levels, {} variance; {} NFE per point ({} in all)",
            summary.nll_nats, summary.bits_per_dim, prior, kl, decoder, summary.n, summary.dim, levels, summary.variance, summary.nfe, summary.nfe_total
        );
    }
    Ok(())
}

/// Concatenates per-batch results (per-sample vectors; NFE summed: the evaluations of the batched
/// network in all).
fn merge(parts: Vec<Likelihood>) -> Likelihood {
    let dim = parts.first().map_or(0, |p| p.dim);
    let mut all = Likelihood { log_prob: vec![], prior_logp: vec![], delta_logp: vec![], latent: vec![], nfe: 0, dim };
    for p in parts {
        all.log_prob.extend(p.log_prob);
        all.prior_logp.extend(p.prior_logp);
        all.delta_logp.extend(p.delta_logp);
        all.latent.extend(p.latent);
        all.nfe += p.nfe;
    }
    all
}

pub fn likelihood(args: &LikelihoodArgs) -> Result<()> {
    LikelihoodConfig { rtol: args.rtol, atol: args.atol, ..LikelihoodConfig::default() }.validate().map_err(config_error)?;
    if args.batch == 0 {
        bail!("--batch: expected at least 1, found 0");
    }
    if args.n == Some(0) {
        bail!("--n: expected at least 1 point, found 0");
    }
    if let (Some(v), LikelihoodMethod::Ode) = (args.variance, args.method) {
        bail!("--variance {v}: the reverse variance enters only the variational bound (--method vlb); the probability-flow ODE has none");
    }
    let source = ModelSource::open(&args.model)?;
    if args.method == LikelihoodMethod::Vlb {
        return vlb(args, &source);
    }
    let dim = source.dim();
    let point = source.dim_shape();
    let mut noise = NoiseSource::new(args.seed);

    // The data in model space, row-major [n, dim], and the dequantization used (if any).
    let (values, n, deq) = if let Some((kind, split)) = named_dataset(&args.data) {
        let (pixels, n) = load_images(args, kind, split, &point)?;
        let deq = Dequantization::CENTERED_8BIT;
        (deq.dequantize(&pixels, &mut noise), n, Some(deq))
    } else {
        let data = read_npy(std::path::Path::new(&args.data)).context("reading --data")?;
        let [rows, cols] = data.shape;
        let name = &args.data;
        if cols != dim {
            bail!("data {name}: expected {dim} columns (the dimension of model {}), found {cols}", args.model.display());
        }
        if rows == 0 {
            bail!("data {name}: expected at least one row, found none");
        }
        let n = args.n.unwrap_or(rows).min(rows);
        let values: Vec<f32> = data.data[..n * dim].iter().map(|&v| v as f32).collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            bail!("data {name}: expected finite float32 values, found {} at row {}, column {}", data.data[i], i / dim, i % dim);
        }
        (values, n, None)
    };

    let divergence = match args.divergence.or(args.hutchinson) {
        Some(d) => d,
        None if dim <= 16 => Divergence::Exact,
        None => Divergence::HutchinsonRademacher,
    };
    let config = LikelihoodConfig { divergence, rtol: args.rtol, atol: args.atol, ..LikelihoodConfig::default() };
    config.validate().map_err(config_error)?;
    let device = Device::flex().autodiff();
    let sde = source.sde()?;

    let spinner = progress_bar("{spinner} integrating the probability-flow ODE: {msg} ({elapsed})");
    spinner.enable_steady_tick(Duration::from_millis(120));
    let mut parts = Vec::new();
    let image = source.is_image();
    let net = if image { Some(source.net(&device)?.freeze()) } else { None };
    let model2 = if image { None } else { Some(source.score_model_2d(&device)?) };
    for (b, chunk) in values.chunks(args.batch * dim).enumerate() {
        let rows = chunk.len() / dim;
        spinner.set_message(format!("points {}..{} of {n}", b * args.batch, b * args.batch + rows));
        let part = match (&net, &model2) {
            (Some(LoadedNet::Image(unet)), _) => {
                let shape = [rows, point[0], point[1], point[2]];
                let x = Tensor::<4>::from_data(TensorData::new(chunk.to_vec(), shape), &device);
                ode_likelihood(unet as &dyn ScoreModel<4>, sde.as_ref(), x, &config, &mut noise)
            }
            (_, Some(model)) => {
                let x = Tensor::<2>::from_data(TensorData::new(chunk.to_vec(), [rows, dim]), &device);
                ode_likelihood(model.as_ref(), sde.as_ref(), x, &config, &mut noise)
            }
            _ => bail!("model {}: an image model without a U-Net", args.model.display()),
        };
        parts.push(part);
    }
    spinner.finish_and_clear();
    let nfe = parts.iter().map(|p| p.nfe).max().unwrap_or(0);
    let l = merge(parts);
    if let Some(i) = l.log_prob.iter().position(|v| !v.is_finite()) {
        bail!("the likelihood of point {i} is not finite ({}); try a smaller --rtol/--atol", l.log_prob[i]);
    }

    let nll = l.mean_nll();
    let summary = LikelihoodSummary {
        nll_nats: nll,
        nll_nats_per_dim: nll / l.dim as f64,
        bits_per_dim: deq.map_or(l.bits_per_dim(), |d| d.bits_per_dim(&l)),
        dequantization_offset_bits: deq.map(|d| d.offset_bits()),
        nfe,
        nfe_total: l.nfe,
        n,
        dim: l.dim,
        divergence: divergence.to_string(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        let deq_note = summary.dequantization_offset_bits.map(|o| format!(", dequantized 8-bit data (+{o} bits/dim offset)")).unwrap_or_default();
        println!(
            "NLL {:.4} nats ({:.4} nats/dim, {:.4} bits/dim) over {} points of dim {}; {} NFE per point ({} in all), {} divergence{deq_note}",
            summary.nll_nats, summary.nll_nats_per_dim, summary.bits_per_dim, summary.n, summary.dim, summary.nfe, summary.nfe_total, summary.divergence
        );
    }
    Ok(())
}
