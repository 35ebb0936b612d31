//! Training data: image data sets read from IDX files and 2-D toy distributions.
//!
//! - [`idx`]: the IDX format of MNIST (LeCun et al. 1998), plain or gzip, with typed errors.
//! - [`mnist`]: MNIST and Fashion-MNIST (Xiao et al. 2017) as [`ImageDataset`]s of `u8` pixels,
//!   batched as `[-1, 1]` tensors `[batch, 1, 28, 28]`, found on disk by [`locate`]
//!   (`scripts/fetch-data.sh` downloads them into `data/`).
//! - [`toy`]: the 2-D benchmarks of FFJORD (Grathwohl et al. 2019), seeded by a
//!   [`NoiseSource`](crate::noise::NoiseSource).

pub mod idx;
pub mod mnist;
pub mod toy;

pub use idx::DataError;
pub use mnist::{DatasetKind, ImageDataset, Split, locate};
pub use toy::Toy;
