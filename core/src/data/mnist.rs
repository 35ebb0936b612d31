//! MNIST and Fashion-MNIST as [`ImageDataset`]s.
//!
//! MNIST: LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document
//! recognition", Proc. IEEE 1998 (60 000 training and 10 000 test digits, 28 x 28 grey levels).
//! Fashion-MNIST: Xiao, Rasul & Vollgraf, arXiv:1708.07747 (2017), a drop-in replacement with
//! the same sizes, file names and [`idx`] format. Models see pixels scaled linearly
//! from `{0, ..., 255}` to `[-1, 1]`, `x = p / 127.5 - 1` (Ho et al. 2020, section 3.3).
//!
//! Files are found by [`locate`]: in a folder the caller names (or its `<kind>` sub-folder)
//! and nowhere else; without one, in order, `$SCOREDIFF_DATA/<kind>`, `./data/<kind>` under the
//! current directory, `data/<kind>` under the workspace root, and for Fashion-MNIST Debian's
//! `/usr/share/datasets/fashion-mnist` (package `dataset-fashion-mnist`).
//! `scripts/fetch-data.sh` fills `data/`.

use super::idx::{self, DataError, IdxImages};
use crate::noise::NoiseSource;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Number of classes in MNIST and Fashion-MNIST.
pub const CLASSES: usize = 10;

/// Environment variable naming a folder with one sub-folder per data set (`mnist/`,
/// `fashion-mnist/`).
pub const DATA_ENV: &str = "SCOREDIFF_DATA";

/// Where Debian's package `dataset-fashion-mnist` installs the gzip IDX files.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// An IDX image data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::EnumString, strum::Display, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = DatasetKind::unknown)]
pub enum DatasetKind {
    /// Handwritten digits 0-9 (LeCun et al. 1998).
    Mnist,
    /// Zalando's clothing images (Xiao et al. 2017).
    FashionMnist,
}

impl DatasetKind {
    /// Every data set.
    pub const ALL: [DatasetKind; 2] = [DatasetKind::Mnist, DatasetKind::FashionMnist];

    /// The name used in files and on the command line (`mnist`, `fashion-mnist`); also the
    /// sub-folder of `data/` that holds it.
    pub fn name(self) -> &'static str {
        self.into()
    }

    fn unknown(s: &str) -> String {
        crate::names::unknown("data set", s, <Self as strum::VariantNames>::VARIANTS)
    }

    /// The shape of one image, `[channels, height, width]`: `[1, 28, 28]` for both.
    pub fn image_shape(self) -> [usize; 3] {
        match self {
            Self::Mnist | Self::FashionMnist => [1, 28, 28],
        }
    }

    /// Human-readable class names, indexed by label.
    pub fn class_names(self) -> [&'static str; CLASSES] {
        match self {
            Self::Mnist => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            Self::FashionMnist => ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
        }
    }
}

/// The training or the test part of a data set.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, strum::EnumString, strum::Display, strum::IntoStaticStr, strum::VariantNames,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = Split::unknown)]
pub enum Split {
    /// 60 000 examples in the full data sets.
    #[default]
    Train,
    /// 10 000 examples in the full data sets (`t10k` files).
    Test,
}

impl Split {
    /// Both splits.
    pub const ALL: [Split; 2] = [Split::Train, Split::Test];

    fn unknown(s: &str) -> String {
        crate::names::unknown("split", s, <Self as strum::VariantNames>::VARIANTS)
    }

    /// The standard image file name, without `.gz`.
    pub fn images_file(self) -> &'static str {
        match self {
            Self::Train => "train-images-idx3-ubyte",
            Self::Test => "t10k-images-idx3-ubyte",
        }
    }

    /// The standard label file name, without `.gz`.
    pub fn labels_file(self) -> &'static str {
        match self {
            Self::Train => "train-labels-idx1-ubyte",
            Self::Test => "t10k-labels-idx1-ubyte",
        }
    }
}

/// The pixel `p` in `[-1, 1]`: `p / 127.5 - 1`.
pub fn pixel_to_signed(p: u8) -> f32 {
    p as f32 / 127.5 - 1.0
}

/// The inverse of [`pixel_to_signed`], clamping to `[-1, 1]` and rounding to the nearest level.
pub fn signed_to_pixel(x: f32) -> u8 {
    ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8
}

/// `dir/name` if it exists, else `dir/name.gz` if that exists.
pub fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))].into_iter().find(|p| p.is_file())
}

/// The folders [`locate`] searches for `kind`, in order, without duplicates. A `data_dir` the
/// caller names is honoured or refused: only `data_dir` and `data_dir/<kind>` are searched, so a
/// folder without the files is an error that names it, never a data set found elsewhere.
/// Without one: `$SCOREDIFF_DATA/<kind>` when set (not the variable's folder itself, which would
/// hold the same file names for every data set); `./data/<kind>` under the current directory;
/// `data/<kind>` under the workspace root; and Debian's folder for Fashion-MNIST.
pub fn search_dirs(kind: DatasetKind, data_dir: Option<&Path>) -> Vec<PathBuf> {
    if let Some(d) = data_dir {
        return vec![d.to_path_buf(), d.join(kind.name())];
    }
    let mut dirs = Vec::new();
    if let Some(env) = std::env::var_os(DATA_ENV).filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(env).join(kind.name()));
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    dirs.push(cwd.join("data").join(kind.name()));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    dirs.push(manifest.parent().unwrap_or(manifest).join("data").join(kind.name()));
    if kind == DatasetKind::FashionMnist {
        dirs.push(PathBuf::from(DEBIAN_FASHION_MNIST));
    }
    let mut unique: Vec<PathBuf> = Vec::with_capacity(dirs.len());
    for d in dirs {
        if !unique.contains(&d) {
            unique.push(d);
        }
    }
    unique
}

/// The first folder of `dirs` holding all four files of a data set (each plain or `.gz`).
pub fn locate_in(kind: DatasetKind, dirs: &[PathBuf]) -> Result<PathBuf, DataError> {
    let names: Vec<&str> = Split::ALL.iter().flat_map(|s| [s.images_file(), s.labels_file()]).collect();
    dirs.iter().find(|d| names.iter().all(|n| find_file(d, n).is_some())).cloned().ok_or_else(|| DataError::NotFound {
        dataset: kind.to_string(),
        files: names.iter().map(|n| format!("{n}[.gz]")).collect::<Vec<_>>().join(", "),
        searched: dirs.to_vec(),
    })
}

/// The folder holding `kind`, searched in the order of [`search_dirs`].
pub fn locate(kind: DatasetKind, data_dir: Option<&Path>) -> Result<PathBuf, DataError> {
    locate_in(kind, &search_dirs(kind, data_dir))
}

/// Labelled images, `u8` pixels, `[n, channels, height, width]` row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDataset {
    /// Pixels `[n, channels, height, width]`, row-major.
    pub images: Vec<u8>,
    /// One class label per image, in `0..CLASSES`.
    pub labels: Vec<u8>,
    /// Number of images.
    pub n: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Channels per pixel (1 for MNIST).
    pub channels: usize,
}

impl ImageDataset {
    /// Pairs grey-level IDX images with their labels, checking that the counts agree and that
    /// every label is a class in `0..CLASSES`; `images_name` and `labels_name` name the sources
    /// in errors.
    pub fn from_idx(images: IdxImages, labels: Vec<u8>, images_name: &str, labels_name: &str) -> Result<Self, DataError> {
        if images.n != labels.len() {
            return Err(DataError::CountMismatch { images: images_name.into(), labels: labels_name.into(), n_images: images.n, n_labels: labels.len() });
        }
        if let Some((index, &label)) = labels.iter().enumerate().find(|(_, l)| **l as usize >= CLASSES) {
            return Err(DataError::BadLabel { path: labels_name.into(), index, label, classes: CLASSES });
        }
        Ok(Self { images: images.pixels, labels, n: images.n, height: images.rows, width: images.cols, channels: 1 })
    }

    /// Reads the `split` files (plain or `.gz`, standard names) from `dir`.
    pub fn load_dir(dir: &Path, split: Split) -> Result<Self, DataError> {
        let file = |name: &str| find_file(dir, name).ok_or_else(|| DataError::Missing { path: dir.join(format!("{name}[.gz]")) });
        let (ip, lp) = (file(split.images_file())?, file(split.labels_file())?);
        Self::from_idx(idx::read_images(&ip)?, idx::read_labels(&lp)?, &ip.display().to_string(), &lp.display().to_string())
    }

    /// [`locate`]s `kind` and reads its `split`.
    pub fn load(kind: DatasetKind, split: Split, data_dir: Option<&Path>) -> Result<Self, DataError> {
        Self::load_dir(&locate(kind, data_dir)?, split)
    }

    /// Bytes per image, `channels * height * width`.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The pixels of image `i`.
    ///
    /// # Panics
    /// If `i >= n`.
    pub fn image(&self, i: usize) -> &[u8] {
        let len = self.image_len();
        &self.images[i * len..(i + 1) * len]
    }

    /// Images `indices` scaled to `[-1, 1]` ([`pixel_to_signed`]), row-major
    /// `[indices.len(), channels, height, width]`.
    ///
    /// # Panics
    /// If an index is `>= n`.
    pub fn batch(&self, indices: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            out.extend(self.image(i).iter().map(|&p| pixel_to_signed(p)));
        }
        out
    }

    /// [`batch`](Self::batch) as a tensor on `device`.
    ///
    /// # Shapes
    /// Returns `[indices.len(), channels, height, width]`.
    ///
    /// # Panics
    /// If an index is `>= n`.
    pub fn batch_tensor(&self, indices: &[usize], device: &Device) -> Tensor<4> {
        let shape = [indices.len(), self.channels, self.height, self.width];
        Tensor::from_data(TensorData::new(self.batch(indices), shape), device)
    }

    /// `batch` indices drawn uniformly with replacement.
    ///
    /// # Panics
    /// If the data set is empty and `batch > 0`.
    pub fn random_indices(&self, batch: usize, noise: &mut NoiseSource) -> Vec<usize> {
        (0..batch).map(|_| noise.index(self.n)).collect()
    }

    /// Number of images of each class `0..CLASSES` (labels outside are not counted).
    pub fn class_counts(&self) -> [usize; CLASSES] {
        let mut counts = [0; CLASSES];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// The first `per_class` images of each class, in data set order.
    pub fn balanced_indices(&self, per_class: usize) -> Result<Vec<usize>, DataError> {
        let mut taken = [0usize; CLASSES];
        let mut out = Vec::with_capacity(per_class * CLASSES);
        for (i, &l) in self.labels.iter().enumerate() {
            if let Some(t) = taken.get_mut(l as usize).filter(|t| **t < per_class) {
                *t += 1;
                out.push(i);
            }
        }
        if let Some(class) = (0..CLASSES).find(|&c| taken[c] < per_class) {
            return Err(DataError::TooFewExamples { class: class as u8, wanted: per_class, found: taken[class] });
        }
        Ok(out)
    }

    /// The images `indices`, in that order.
    ///
    /// # Panics
    /// If an index is `>= n`.
    pub fn subset(&self, indices: &[usize]) -> ImageDataset {
        ImageDataset {
            images: indices.iter().flat_map(|&i| self.image(i).iter().copied()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            n: indices.len(),
            ..*self
        }
    }

    /// Writes the data set as `split`'s two IDX files in `dir` (created if needed), with the
    /// standard names, plus `.gz` and gzip-compressed when `compress`.
    ///
    /// # Panics
    /// If `channels != 1` (IDX image files are grey-level).
    pub fn write_idx(&self, dir: &Path, split: Split, compress: bool) -> Result<(), DataError> {
        assert_eq!(self.channels, 1, "IDX image files hold one channel");
        std::fs::create_dir_all(dir).map_err(|error| DataError::Io { path: dir.display().to_string(), error })?;
        let ext = if compress { ".gz" } else { "" };
        let images = IdxImages { n: self.n, rows: self.height, cols: self.width, pixels: self.images.clone() };
        idx::write_file(&dir.join(format!("{}{ext}", split.images_file())), &idx::images_bytes(&images), compress)?;
        idx::write_file(&dir.join(format!("{}{ext}", split.labels_file())), &idx::labels_bytes(&self.labels), compress)
    }
}

/// Writes a class-balanced subset of `source`'s `split` to `dest` as gzip IDX files with the
/// standard names: the first `per_class` images of each class, in data set order. Returns the
/// subset. This made `tests/data/mnist-subset` (see its README).
pub fn write_subset(source: &Path, dest: &Path, split: Split, per_class: usize) -> Result<ImageDataset, DataError> {
    let full = ImageDataset::load_dir(source, split)?;
    let subset = full.subset(&full.balanced_indices(per_class)?);
    subset.write_idx(dest, split, true)?;
    Ok(subset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, to_vec};

    fn workspace() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
    }

    fn subset_dir() -> PathBuf {
        workspace().join("tests/data/mnist-subset")
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("scorediff-mnist-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn tiny(n: usize) -> ImageDataset {
        ImageDataset {
            images: (0..n * 4).map(|i| (i * 17 % 256) as u8).collect(),
            labels: (0..n).map(|i| (i % CLASSES) as u8).collect(),
            n,
            height: 2,
            width: 2,
            channels: 1,
        }
    }

    #[test]
    fn names_parse_display_and_serialize_alike() {
        crate::names::serde_agrees(&DatasetKind::ALL);
        crate::names::serde_agrees(&Split::ALL);
        assert_eq!(DatasetKind::FashionMnist.to_string(), "fashion-mnist");
        assert_eq!(serde_json::from_str::<DatasetKind>("\"fashion-mnist\"").unwrap(), DatasetKind::FashionMnist);
        let e = "fashion_mnist".parse::<DatasetKind>().unwrap_err();
        assert!(e.contains("unknown data set `fashion_mnist`") && e.contains("mnist, fashion-mnist"), "{e}");
        let e = "valid".parse::<Split>().unwrap_err();
        assert!(e.contains("unknown split `valid`") && e.contains("train, test"), "{e}");
        assert_eq!(Split::Test.images_file(), "t10k-images-idx3-ubyte");
        assert_eq!(DatasetKind::FashionMnist.class_names()[9], "Ankle boot");
    }

    #[test]
    fn pixel_scaling_maps_the_ends_and_inverts() {
        assert_eq!(pixel_to_signed(0), -1.0);
        assert_eq!(pixel_to_signed(255), 1.0);
        for p in 0..=255u8 {
            assert_eq!(signed_to_pixel(pixel_to_signed(p)), p);
        }
        assert_eq!(signed_to_pixel(7.0), 255);
        assert_eq!(signed_to_pixel(-7.0), 0);
    }

    #[test]
    fn batches_are_scaled_and_shaped() {
        let d = tiny(5);
        let b = d.batch(&[4, 0]);
        assert_eq!(b.len(), 2 * 4);
        assert_eq!(b[..4], d.image(4).iter().map(|&p| p as f32 / 127.5 - 1.0).collect::<Vec<_>>()[..]);
        assert_eq!(b[4..], d.image(0).iter().map(|&p| p as f32 / 127.5 - 1.0).collect::<Vec<_>>()[..]);
        let t = d.batch_tensor(&[4, 0], &device());
        assert_eq!(t.dims(), [2, 1, 2, 2]);
        assert_eq!(to_vec(t), b);
        let idx = d.random_indices(100, &mut NoiseSource::new(1));
        assert!(idx.iter().all(|&i| i < 5));
        assert_eq!(idx, d.random_indices(100, &mut NoiseSource::new(1)));
    }

    #[test]
    fn from_idx_checks_counts_and_labels() {
        let im = IdxImages { n: 2, rows: 1, cols: 1, pixels: vec![0, 255] };
        let e = ImageDataset::from_idx(im.clone(), vec![1], "im", "lab").unwrap_err();
        assert!(matches!(e, DataError::CountMismatch { n_images: 2, n_labels: 1, .. }), "{e:?}");
        assert!(e.to_string().contains("im holds 2 images but lab holds 1 labels"), "{e}");
        let e = ImageDataset::from_idx(im.clone(), vec![1, 10], "im", "lab").unwrap_err();
        assert!(matches!(e, DataError::BadLabel { index: 1, label: 10, .. }), "{e:?}");
        assert_eq!(ImageDataset::from_idx(im, vec![1, 9], "im", "lab").unwrap().class_counts()[9], 1);
    }

    #[test]
    fn write_then_load_and_mismatched_files_fail() {
        let dir = temp_dir("write-load");
        let d = tiny(23);
        d.write_idx(&dir, Split::Train, true).unwrap();
        d.subset(&[1, 2, 3]).write_idx(&dir, Split::Test, false).unwrap();
        assert_eq!(ImageDataset::load_dir(&dir, Split::Train).unwrap(), d);
        assert_eq!(ImageDataset::load_dir(&dir, Split::Test).unwrap().labels, vec![1, 2, 3]);
        // All four files present: the folder is found, directly or as `<dir>/mnist`.
        assert_eq!(locate(DatasetKind::Mnist, Some(&dir)).unwrap(), dir);
        // Labels of another split: a count mismatch naming both files.
        std::fs::copy(dir.join("t10k-labels-idx1-ubyte"), dir.join("train-labels-idx1-ubyte")).unwrap();
        let e = ImageDataset::load_dir(&dir, Split::Train).unwrap_err();
        assert!(matches!(e, DataError::CountMismatch { n_images: 23, n_labels: 3, .. }), "{e:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn search_order_and_not_found_lists_every_place() {
        let dirs = search_dirs(DatasetKind::FashionMnist, None);
        assert_eq!(dirs.last().unwrap(), Path::new(DEBIAN_FASHION_MNIST));
        assert!(dirs.contains(&workspace().join("data/fashion-mnist")));
        assert!(!search_dirs(DatasetKind::Mnist, None).iter().any(|d| d.starts_with(DEBIAN_FASHION_MNIST)));
        let empty = temp_dir("empty");
        let tried = vec![empty.clone(), empty.join("mnist")];
        let e = locate_in(DatasetKind::Mnist, &tried).unwrap_err();
        assert!(matches!(&e, DataError::NotFound { searched, .. } if *searched == tried), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains(&empty.join("mnist").display().to_string()) && msg.contains("scripts/fetch-data.sh") && msg.contains("t10k-labels-idx1-ubyte[.gz]"),
            "{msg}"
        );
        let e = ImageDataset::load_dir(&empty, Split::Train).unwrap_err();
        assert!(matches!(e, DataError::Missing { .. }) && e.to_string().contains("train-images-idx3-ubyte"), "{e}");
        std::fs::remove_dir_all(&empty).unwrap();
    }

    /// A folder the caller names is the only place searched: without the files it is an error
    /// that names it, never a data set found elsewhere (issue 18).
    #[test]
    fn explicit_data_dir_is_the_only_place_searched() {
        let given = Path::new("/nonexistent/scorediff-data");
        for kind in DatasetKind::ALL {
            assert_eq!(search_dirs(kind, Some(given)), [given.to_path_buf(), given.join(kind.name())]);
            let e = ImageDataset::load(kind, Split::Train, Some(given)).unwrap_err();
            assert!(matches!(&e, DataError::NotFound { .. }) && e.to_string().contains("/nonexistent/scorediff-data/"), "{e}");
        }
    }

    #[test]
    fn balanced_indices_take_the_first_of_each_class() {
        let d = tiny(35);
        let idx = d.balanced_indices(3).unwrap();
        assert_eq!(idx, (0..30).collect::<Vec<_>>());
        assert_eq!(d.subset(&idx).class_counts(), [3; CLASSES]);
        let e = d.balanced_indices(4).unwrap_err();
        assert!(matches!(e, DataError::TooFewExamples { class: 5, wanted: 4, found: 3 }), "{e:?}");
    }

    /// The subset shipped in `tests/data/mnist-subset`, found through [`locate`] and read by the
    /// loader: 10 train and 5 test images per class, full grey range.
    #[test]
    fn shipped_mnist_subset_is_balanced_and_in_range() {
        let dir = subset_dir();
        assert_eq!(locate(DatasetKind::Mnist, Some(&dir)).unwrap(), dir);
        for (split, per_class) in [(Split::Train, 10), (Split::Test, 5)] {
            let d = ImageDataset::load(DatasetKind::Mnist, split, Some(&dir)).unwrap();
            assert_eq!((d.n, d.channels, d.height, d.width), (10 * per_class, 1, 28, 28));
            assert_eq!(d.images.len(), d.n * 28 * 28);
            assert_eq!(d.class_counts(), [per_class; CLASSES]);
            assert_eq!(d.images.iter().min(), Some(&0));
            assert_eq!(d.images.iter().max(), Some(&255));
            // Digits are mostly background: the mean grey level of MNIST is about 0.13 * 255.
            let mean = d.images.iter().map(|&p| p as f64).sum::<f64>() / d.images.len() as f64 / 255.0;
            assert!((0.08..0.2).contains(&mean), "mean intensity {mean}");
            let b = d.batch(&(0..d.n).collect::<Vec<_>>());
            assert!(b.iter().all(|x| (-1.0..=1.0).contains(x)));
            assert!(b.contains(&-1.0) && b.contains(&1.0));
        }
    }

    /// Checks the full data sets after `scripts/fetch-data.sh`:
    /// `cargo test -p scorediff-core --lib full_data_sets -- --ignored`.
    #[test]
    #[ignore = "needs scripts/fetch-data.sh"]
    fn full_data_sets_have_the_standard_sizes() {
        for kind in DatasetKind::ALL {
            for (split, n) in [(Split::Train, 60_000), (Split::Test, 10_000)] {
                let d = ImageDataset::load(kind, split, None).unwrap();
                assert_eq!((d.n, d.height, d.width), (n, 28, 28), "{kind} {split}");
                let counts = d.class_counts();
                assert!(counts.iter().all(|&c| c > n / 20), "{kind} {split}: {counts:?}");
            }
        }
    }

    /// Regenerates `tests/data/mnist-subset` from the full MNIST:
    /// `cargo test -p scorediff-core --lib generate_mnist_subset -- --ignored`.
    #[test]
    #[ignore = "writes tests/data/mnist-subset; needs scripts/fetch-data.sh"]
    fn generate_mnist_subset() {
        let source = locate(DatasetKind::Mnist, None).unwrap();
        for (split, per_class) in [(Split::Train, 10), (Split::Test, 5)] {
            write_subset(&source, &subset_dir(), split, per_class).unwrap();
        }
    }
}
