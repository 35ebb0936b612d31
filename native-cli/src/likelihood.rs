//! `native-cli likelihood`: negative log-likelihood and bits/dim of data under the model's
//! probability-flow ODE (`scorediff::likelihood`, Song et al. 2021, appendix D.2), with
//! Hutchinson's divergence estimator for images and uniform dequantization of 8-bit data
//! (`scorediff::likelihood::Dequantization`, whose offset is the Jacobian of the data scaling).

use crate::model_source::ModelSource;
use crate::progress_bar;
use anyhow::{Context, Result, bail};
use clap::Args;
use scorediff::burn::tensor::{Device, Tensor, TensorData};
use scorediff::data::{DatasetKind, ImageDataset, Split};
use scorediff::export::LoadedNet;
use scorediff::io::read_npy;
use scorediff::likelihood::{Dequantization, Divergence, Likelihood, LikelihoodConfig, ode_likelihood};
use scorediff::model::ScoreModel;
use scorediff::noise::NoiseSource;
use serde::Serialize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// `--hutchinson PROBE`: Hutchinson's method with that probe, by its `--divergence` name
/// `hutchinson-PROBE`.
fn hutchinson(probe: &str) -> Result<Divergence, String> {
    Divergence::from_str(&format!("hutchinson-{probe}")).map_err(|_| format!("unknown probe `{probe}`: expected rademacher or gaussian"))
}

#[derive(Args)]
pub struct LikelihoodArgs {
    /// The model: a training run directory, an export directory or a Gaussian-mixture .json.
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// The data: mnist-test, mnist-train, fashion-mnist-test, fashion-mnist-train (8-bit
    /// images, dequantized; bits/dim of the discrete data), or a .npy of shape [n, dim] or
    /// [n, 1, 28, 28] (float32 or float64, in model space; bits/dim of the continuous density).
    #[arg(long, value_name = "DATA")]
    data: String,
    /// Evaluate the first N points [default: all rows of a .npy, 64 images of a data set].
    #[arg(long, value_name = "N")]
    n: Option<usize>,
    /// Points per ODE solve.
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
    nfe: usize,
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

/// Concatenates per-batch results (per-sample vectors; NFE summed).
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
    for (name, v) in [("--rtol", args.rtol), ("--atol", args.atol)] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{name}: expected a finite number > 0, found {v}");
        }
    }
    if args.batch == 0 {
        bail!("--batch: expected at least 1, found 0");
    }
    if args.n == Some(0) {
        bail!("--n: expected at least 1 point, found 0");
    }
    let source = ModelSource::open(&args.model)?;
    let dim = source.dim();
    let point = source.dim_shape();
    let mut noise = NoiseSource::new(args.seed);

    // The data in model space, row-major [n, dim], and the dequantization used (if any).
    let (values, n, deq) = if let Some((kind, split)) = named_dataset(&args.data) {
        let ds = ImageDataset::load(kind, split, args.data_dir.as_deref()).with_context(|| format!("reading --data {}", args.data))?;
        let found = vec![ds.channels, ds.height, ds.width];
        if found != point {
            bail!("data {}: expected points of shape {point:?} (model {}), found images of shape {found:?}", args.data, args.model.display());
        }
        let n = args.n.unwrap_or(64).min(ds.n);
        let deq = Dequantization::CENTERED_8BIT;
        let pixels: Vec<u8> = (0..n).flat_map(|i| ds.image(i).iter().copied()).collect();
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
    config.validate().map_err(anyhow::Error::msg)?;
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
        nfe: l.nfe,
        n,
        dim: l.dim,
        divergence: divergence.to_string(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        let deq_note = summary.dequantization_offset_bits.map(|o| format!(", dequantized 8-bit data (+{o} bits/dim offset)")).unwrap_or_default();
        println!(
            "NLL {:.4} nats ({:.4} nats/dim, {:.4} bits/dim) over {} points of dim {}; {} NFE, {} divergence{deq_note}",
            summary.nll_nats, summary.nll_nats_per_dim, summary.bits_per_dim, summary.n, summary.dim, summary.nfe, summary.divergence
        );
    }
    Ok(())
}
