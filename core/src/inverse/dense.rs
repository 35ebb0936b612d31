//! A dense linear operator `y = A x` on `[batch, n]` points (`A`: `[m, n]`): the linear-Gaussian
//! problems whose posterior is known in closed form, used to test the methods.

use super::{LinearOperator, Matrix, Operator};
use burn::tensor::Tensor;

/// `x -> x A^T` for row vectors `x` (see the module docs).
#[derive(Debug, Clone)]
pub struct Dense {
    a: Matrix,
    pinv_scale: Option<f64>,
}

impl Dense {
    /// The operator of the `[m, n]` matrix `a`. Its rows are checked for being orthogonal with
    /// a common squared norm `c` (`A A^T = c I`), in which case `A^+ = A^T / c`.
    pub fn new(a: Matrix) -> Self {
        let m = a.rows;
        let row = |i: usize| &a.data[i * a.cols..(i + 1) * a.cols];
        let dot = |i: usize, j: usize| row(i).iter().zip(row(j)).map(|(p, q)| p * q).sum::<f64>();
        let c = dot(0, 0);
        let tight = (0..m).all(|i| (0..m).all(|j| (dot(i, j) - if i == j { c } else { 0.0 }).abs() <= 1e-12 * c.max(1e-300)));
        Self { pinv_scale: (tight && c > 0.0).then_some(c), a }
    }

    /// The matrix.
    pub fn matrix(&self) -> &Matrix {
        &self.a
    }
}

impl Operator<2> for Dense {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let at = self.a.t().tensor(&x.device()); // [n, m]
        x.matmul(at)
    }
    fn linear(&self) -> Option<&dyn LinearOperator<2>> {
        Some(self)
    }
    fn describe(&self) -> String {
        format!("dense {}x{} matrix", self.a.rows, self.a.cols)
    }
}

impl LinearOperator<2> for Dense {
    fn adjoint(&self, y: Tensor<2>) -> Tensor<2> {
        let a = self.a.tensor(&y.device()); // [m, n]
        y.matmul(a)
    }
    fn pinv_scale(&self) -> Option<f64> {
        self.pinv_scale
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn adjoint_and_tightness() {
        let general = Dense::new(Matrix { rows: 2, cols: 3, data: vec![1.0, 2.0, -1.0, 0.5, 0.0, 3.0] });
        check_adjoint(&general, [5, 3], 1);
        assert_eq!(general.pinv_scale(), None);
        let tight = Dense::new(Matrix { rows: 2, cols: 3, data: vec![1.0, 1.0, 0.0, 1.0, -1.0, 0.0] });
        assert_eq!(tight.pinv_scale(), Some(2.0));
        check_pinv_scale(&tight, [4, 3]);
    }
}
