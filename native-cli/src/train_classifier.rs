//! `native-cli train-classifier`: train the small CNN classifier whose features `eval` measures
//! the Frechet distance in, and write `DIR/classifier.json` (config, training settings, test
//! accuracy, the command, the weights' SHA-256) and `DIR/classifier.bpk` (weights). The training itself is
//! `scorediff::train::classifier`.
//!
//! `--noisy` trains a noise-conditional classifier `p_t(y | x_t)` instead, on data perturbed by
//! the SDE of `--model` (a score model's run or export directory; DDPM's linear 1000-level
//! schedule, the image preset, without it): what classifier guidance needs.

use crate::progress_bar;
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use scorediff::data::{DatasetKind, ImageDataset, Split};
use scorediff::export::sha256_hex;
use scorediff::io::write_atomic;
use scorediff::nn::TimeEmbedding;
use scorediff::nn::{ClassifierConfig, burnpack_bytes};
use scorediff::sde::{ScheduleKind, SdeConfig};
use scorediff::train::classifier::{CARD_FILE, ClassifierCard, ClassifierTraining, WEIGHTS_FILE, accuracy, accuracy_at, train_classifier};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

#[derive(Args)]
pub struct TrainClassifierArgs {
    /// The data set: mnist or fashion-mnist.
    #[arg(long, value_name = "NAME", value_parser = DatasetKind::from_str)]
    dataset: DatasetKind,
    /// Output directory (created); classifier.json and classifier.bpk are replaced atomically.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Optimisation steps.
    #[arg(long, value_name = "N", default_value_t = ClassifierTraining::default().steps)]
    steps: usize,
    /// Images per step.
    #[arg(long, value_name = "B", default_value_t = ClassifierTraining::default().batch_size)]
    batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, value_name = "LR", default_value_t = ClassifierTraining::default().optim.lr)]
    lr: f64,
    /// Seed of the weights and the data order.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Where MNIST / Fashion-MNIST idx files are (else the usual places; see scripts/fetch-data.sh).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Compute backend: flex (CPU).
    #[arg(long, value_name = "NAME", default_value = "flex")]
    backend: String,
    /// Train a noise-conditional classifier p_t(y | x_t) on perturbed data (for classifier guidance).
    #[arg(long)]
    noisy: bool,
    /// With --noisy: the score model (run or export directory) whose SDE perturbs the data
    /// [default: DDPM's linear schedule with 1000 levels].
    #[arg(long, value_name = "DIR", requires = "noisy")]
    model: Option<PathBuf>,
}

/// The command line as typed, with the binary named `native-cli`.
pub fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect();
    format!("native-cli {}", args.join(" "))
}

pub fn train_classifier_cmd(args: &TrainClassifierArgs) -> Result<()> {
    let device = crate::train::backend_device(&args.backend)?;
    let mut training = ClassifierTraining { batch_size: args.batch_size, steps: args.steps, seed: args.seed, ..ClassifierTraining::default() };
    training.optim.lr = args.lr;
    training.validate().map_err(|e| anyhow!(e))?;
    let train = ImageDataset::load(args.dataset, Split::Train, args.data_dir.as_deref())?;
    let test = ImageDataset::load(args.dataset, Split::Test, args.data_dir.as_deref())?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating --out {}", args.out.display()))?;
    if !args.out.is_dir() {
        bail!("--out {}: not a directory", args.out.display());
    }
    let sde_config = if args.noisy {
        Some(match &args.model {
            Some(dir) => {
                let source = crate::model_source::ModelSource::open(dir)?;
                match source.card() {
                    Some(card) => card.sde.clone(),
                    None => bail!("--model {}: expected a trained score model (run or export directory), found a mixture file", dir.display()),
                }
            }
            None => SdeConfig::ddpm(ScheduleKind::Linear, 1000),
        })
    } else {
        None
    };
    let sde = match &sde_config {
        Some(c) => Some(c.build().context("the SDE of --model")?),
        None => None,
    };
    let config = ClassifierConfig::new().with_time_embedding(args.noisy.then_some(TimeEmbedding::Sinusoidal { scale: 1000.0 }));
    let bar = progress_bar("{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})");
    bar.set_length(training.steps as u64);
    let started = Instant::now();
    let net = train_classifier(&config, &training, &train, sde, &device, |r| {
        bar.set_position(r.step as u64);
        bar.set_message(format!("step {} loss {:.4} ema {:.4}", r.step, r.loss, r.ema_loss));
    })
    .map_err(|e| anyhow!(e))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let (test_accuracy, accuracy_by_time) = match &sde_config {
        None => (accuracy(&net, &test, 500, &device), Vec::new()),
        Some(c) => {
            let sde = c.build()?;
            let at = |t: f64| accuracy_at(&net, &test, sde.as_ref(), t, args.seed, 500, &device);
            let times = [sde.t_min(), 0.25, 0.5, 0.75, 1.0].map(|t| sde.snap(t));
            (at(times[0]), times.iter().map(|&t| [t, at(t)]).collect())
        }
    };
    let bytes = burnpack_bytes(&net)?;
    let weights_sha256 = Some(sha256_hex(&bytes));
    let card =
        ClassifierCard { dataset: args.dataset, config, training, test_accuracy, command: command_line(), sde: sde_config, accuracy_by_time, weights_sha256 };
    let weights = args.out.join(WEIGHTS_FILE);
    write_atomic(&weights, &bytes).with_context(|| format!("writing {}", weights.display()))?;
    let card_path = args.out.join(CARD_FILE);
    write_atomic(&card_path, card.to_json().as_bytes()).with_context(|| format!("writing {}", card_path.display()))?;
    println!(
        "{}: test accuracy {:.4} on {} images after {} steps ({seconds:.1} s) -> {}",
        args.dataset,
        test_accuracy,
        test.n,
        card.training.steps,
        args.out.display()
    );
    Ok(())
}
