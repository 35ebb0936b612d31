//! Helpers for unit tests.
use burn::tensor::{Device, Tensor};

/// A fresh directory under the system temp dir, unique to this process and `name`.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("scorediff-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn device() -> Device {
    Device::flex()
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

pub fn assert_close<const D: usize>(a: &Tensor<D>, b: &Tensor<D>, tol: f32) {
    let (a, b) = (to_vec(a.clone()), to_vec(b.clone()));
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "element {i}: {x} vs {y}");
    }
}

/// A model with a constant learned-variance output `v` on top of another model (`v = -1` and
/// `v = 1` are the ends of Nichol & Dhariwal's learned range).
pub struct WithV<'a, M>(pub &'a M, pub f32);

impl<M: crate::model::ScoreModel<2>> crate::model::ScoreModel<2> for WithV<'_, M> {
    fn parameterization(&self) -> crate::param::Parameterization {
        self.0.parameterization()
    }
    fn forward(&self, x: Tensor<2>, t: &[f64]) -> Tensor<2> {
        self.0.forward(x, t)
    }
    fn forward_with_variance(&self, x: Tensor<2>, t: &[f64]) -> (Tensor<2>, Option<Tensor<2>>) {
        let v = x.zeros_like().add_scalar(self.1);
        (self.0.forward(x, t), Some(v))
    }
}
