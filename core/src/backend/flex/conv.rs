//! 2-D convolution on Flex as im2col and one matrix product per image, with its gradients as
//! matrix products too.
//!
//! For one image `x` `[c_in, h, w]` the convolution is `out = W cols` (Chellapilla, Puri &
//! Simard 2006, section 2): `W` `[c_out, c_in k_h k_w]` is the kernel as it is stored, and
//! `cols` `[c_in k_h k_w, h_out w_out]` holds in row `(c, i, j)` the input plane `c` shifted by
//! the kernel offset `(i, j)`, sampled at the stride, zero outside the padding. The gradients
//! follow from the product rule: `dW = sum_images dout cols^T`, `dcols = W^T dout`, and `dx` is
//! `dcols` added back onto the positions each row was read from (col2im); `db` sums `dout` over
//! images and positions. The forward pass of 3x3, stride-1, same-size convolutions (most of the
//! U-Net's) uses Winograd's minimal filtering F(2x2, 3x3) instead (Lavin & Gray 2016), 2.25
//! times fewer multiplications; the gradients stay the products above.
//!
//! Why: burn 0.22's Flex converts the whole batch to NHWC on one thread, multiplies 512-position
//! tiles and scatters the result back element by element; its autodiff takes the weight
//! gradient as a convolution whose "kernel" is the output gradient, which Flex turns into
//! products with only `k_h k_w` rows. Here every product has the network's widths as its sides
//! and the image's positions as the third, writes straight into the NCHW output, and the
//! images run in parallel (`rayon`). [`conv2d`](crate::nn::conv::conv2d) takes this path on Flex for ungrouped,
//! undilated convolutions with a bias and explicit padding, and burn's `Conv2d::forward`
//! everywhere else, the reference of the tests.
//!
//! Shapes: `x` `[batch, c_in, h, w]`, output `[batch, c_out, h_out, w_out]` with
//! `h_out = (h + pad_top + pad_bottom - k_h) / stride_h + 1` (likewise `w_out`).

#[cfg(feature = "flex")]
pub(crate) mod ops {
    use super::super::group_norm::{register, values};
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension, tensor::FloatTensor};
    use burn::tensor::{Tensor, TensorData};

    /// Stride and padding of a convolution.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Geometry {
        pub stride: [usize; 2],
        pub pad_top: usize,
        pub pad_bottom: usize,
        pub pad_left: usize,
        pub pad_right: usize,
    }

    /// The backend extension: Flex runs the kernels, its autodiff wrapper records their gradient.
    #[backend_extension(Flex, Autodiff)]
    pub trait Conv2dIm2colOps: Backend {
        /// The convolution with `geometry`'s stride and padding.
        fn conv2d_im2col(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self>;
    }

    pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, g: Geometry) -> Tensor<4> {
        let device = x.device();
        let out = <burn::backend::Dispatch as Conv2dIm2colOps>::conv2d_im2col(
            x.into_dispatch(),
            weight.to_device(&device).into_dispatch(),
            bias.to_device(&device).into_dispatch(),
            g,
        );
        Tensor::from_dispatch(out)
    }

    impl Conv2dIm2colOps for Flex {
        fn conv2d_im2col(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, geometry: Geometry) -> FlexTensor {
            forward(&x, &weight, &bias, geometry)
        }
    }

    #[derive(Clone, Debug)]
    struct Saved {
        x: FlexTensor,
        weight: FlexTensor,
        geometry: Geometry,
    }

    #[derive(Debug)]
    struct Conv2dIm2colBackward;

    impl Backward<Flex, 3> for Conv2dIm2colBackward {
        type State = Saved;

        fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let grad = grads.consume::<Flex>(&ops.node);
            let s = ops.state;
            let parents = ops.parents.map(|p| p.map(|node| node.id));
            let (dx, dw, db) = backward(&s.x, &s.weight, &grad, s.geometry, parents[0].is_some());
            register(grads, parents, [dx, Some(dw), Some(db)]);
        }
    }

    impl<C: CheckpointStrategy> Conv2dIm2colOps for Autodiff<Flex, C> {
        fn conv2d_im2col(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self> {
            let prep = Conv2dIm2colBackward.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful();
            let (x, weight, bias) = (x.into_primitive(), weight.into_primitive(), bias.into_primitive());
            let out = forward(&x, &weight, &bias, geometry);
            match prep {
                OpsKind::Tracked(prep) => prep.finish(Saved { x, weight, geometry }, out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            }
        }
    }

    fn problem(x: &FlexTensor, weight: &FlexTensor, g: Geometry) -> super::kernel::Problem {
        let (xs, ws) = (x.shape(), weight.shape());
        super::kernel::Problem {
            batch: xs[0],
            c_in: xs[1],
            h: xs[2],
            w: xs[3],
            c_out: ws[0],
            k_h: ws[2],
            k_w: ws[3],
            stride: g.stride,
            pad_top: g.pad_top,
            pad_left: g.pad_left,
            h_out: (xs[2] + g.pad_top + g.pad_bottom - ws[2]) / g.stride[0] + 1,
            w_out: (xs[3] + g.pad_left + g.pad_right - ws[3]) / g.stride[1] + 1,
        }
    }

    fn forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor, g: Geometry) -> FlexTensor {
        let p = problem(x, weight, g);
        let out = super::kernel::forward(&values(x), &values(weight), &values(bias), p);
        FlexTensor::from_data(TensorData::new(out, [p.batch, p.c_out, p.h_out, p.w_out]))
    }

    fn backward(x: &FlexTensor, weight: &FlexTensor, grad: &FlexTensor, g: Geometry, want_dx: bool) -> (Option<FlexTensor>, FlexTensor, FlexTensor) {
        let p = problem(x, weight, g);
        let (dx, dw, db) = super::kernel::backward(&values(x), &values(weight), &values(grad), p, want_dx);
        (
            dx.map(|dx| FlexTensor::from_data(TensorData::new(dx, [p.batch, p.c_in, p.h, p.w]))),
            FlexTensor::from_data(TensorData::new(dw, [p.c_out, p.c_in, p.k_h, p.k_w])),
            FlexTensor::from_data(TensorData::new(db, [p.c_out])),
        )
    }
}

/// The kernels on plain NCHW slices.
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
pub(crate) mod kernel {
    /// One convolution's sizes.
    #[derive(Clone, Copy, Debug)]
    pub struct Problem {
        pub batch: usize,
        pub c_in: usize,
        pub h: usize,
        pub w: usize,
        pub c_out: usize,
        pub k_h: usize,
        pub k_w: usize,
        pub stride: [usize; 2],
        pub pad_top: usize,
        pub pad_left: usize,
        pub h_out: usize,
        pub w_out: usize,
    }

    impl Problem {
        /// Rows of `cols` (`c_in k_h k_w`).
        fn k(&self) -> usize {
            self.c_in * self.k_h * self.k_w
        }
        /// Output positions per image.
        fn n(&self) -> usize {
            self.h_out * self.w_out
        }
        /// A 1x1, stride-1, unpadded convolution: `cols` is the image itself.
        fn pointwise(&self) -> bool {
            self.k_h == 1 && self.k_w == 1 && self.stride == [1, 1] && self.pad_top == 0 && self.pad_left == 0 && self.h_out == self.h && self.w_out == self.w
        }
        /// The output positions `o` whose input `o s + k - pad` lies in `[0, len)`.
        fn valid(out: usize, len: usize, s: usize, k: usize, pad: usize) -> std::ops::Range<usize> {
            let lo = pad.saturating_sub(k).div_ceil(s);
            let hi = (len + pad).saturating_sub(k).div_ceil(s).min(out);
            lo.min(hi)..hi
        }
        /// Calls `f(src, ow_range, dst)` for every run of in-bounds positions (one output row
        /// `oh` of one `cols` row): position `ow` of the run reads input index
        /// `src + (ow - ow_range.start) * stride_w` and is `cols` index `dst + ow - ow_range.start`.
        fn for_each_run(&self, mut f: impl FnMut(usize, std::ops::Range<usize>, usize)) {
            let [sh, sw] = self.stride;
            let n = self.n();
            for c in 0..self.c_in {
                for i in 0..self.k_h {
                    let rows = Self::valid(self.h_out, self.h, sh, i, self.pad_top);
                    for j in 0..self.k_w {
                        let row = (c * self.k_h + i) * self.k_w + j;
                        let cols = Self::valid(self.w_out, self.w, sw, j, self.pad_left);
                        if cols.is_empty() {
                            continue;
                        }
                        for oh in rows.clone() {
                            let ih = oh * sh + i - self.pad_top;
                            let iw = cols.start * sw + j - self.pad_left;
                            let src = (c * self.h + ih) * self.w + iw;
                            let dst = row * n + oh * self.w_out + cols.start;
                            f(src, cols.clone(), dst);
                        }
                    }
                }
            }
        }
    }

    impl Problem {
        /// Stride 1 and `w_out == w`: each `cols` row is its input plane read at one constant
        /// offset, apart from the columns that fall into the left or right padding.
        fn same_width(&self) -> bool {
            self.stride == [1, 1] && self.w_out == self.w
        }

        /// For a [`Self::same_width`] problem, calls `f(row, q, d, valid)` for every `cols` row
        /// with in-bounds entries: `cols[row * n + q]` is `x[plane + q + d]` (`plane` the row's
        /// input plane, `c h w`) for every `q` in the range `q` whose column `q % w` lies in
        /// `valid`; the other columns of those output rows are padding (zero), as are the
        /// output rows outside `q`. The reads `plane + q + d` stay inside the plane.
        fn for_each_shift(&self, mut f: impl FnMut(usize, usize, std::ops::Range<usize>, isize, std::ops::Range<usize>)) {
            let (h, w) = (self.h as isize, self.w as isize);
            for c in 0..self.c_in {
                for i in 0..self.k_h {
                    let rows = Self::valid(self.h_out, self.h, 1, i, self.pad_top);
                    for j in 0..self.k_w {
                        let valid = Self::valid(self.w_out, self.w, 1, j, self.pad_left);
                        if rows.is_empty() || valid.is_empty() {
                            continue;
                        }
                        let row = (c * self.k_h + i) * self.k_w + j;
                        let d = (i as isize - self.pad_top as isize) * w + (j as isize - self.pad_left as isize);
                        let lo = (rows.start as isize * w).max(-d);
                        let hi = (rows.end as isize * w).min(h * w - d);
                        f(row, c * self.h * self.w, lo as usize..hi as usize, d, valid);
                    }
                }
            }
        }
    }

    /// Zeroes the columns outside `valid` of the output rows that `q` touches in one `cols` row.
    fn zero_edges(row: &mut [f32], w: usize, q: &std::ops::Range<usize>, valid: &std::ops::Range<usize>) {
        if valid.start == 0 && valid.end == w {
            return;
        }
        for oh in q.start / w..q.end.div_ceil(w) {
            row[oh * w..oh * w + valid.start].fill(0.0);
            row[oh * w + valid.end..(oh + 1) * w].fill(0.0);
        }
    }

    /// `cols` `[k, n]` of one image `[c_in, h, w]`. Writes only the rows' in-bounds output
    /// rows: the rest (padding) depends on the geometry alone, so `cols` must come zeroed from
    /// its allocation and be reused only for the same problem, which keeps it zero.
    fn im2col(p: &Problem, x: &[f32], cols: &mut [f32]) {
        if p.same_width() {
            // One copy per row, then the padding columns it overwrote set back to zero.
            let n = p.n();
            p.for_each_shift(|row, plane, q, d, valid| {
                let dst = &mut cols[row * n..(row + 1) * n];
                let src = (plane as isize + q.start as isize + d) as usize;
                dst[q.clone()].copy_from_slice(&x[src..src + q.len()]);
                zero_edges(dst, p.w, &q, &valid);
            });
            return;
        }
        let sw = p.stride[1];
        p.for_each_run(|src, ows, dst| {
            let len = ows.len();
            if sw == 1 {
                cols[dst..dst + len].copy_from_slice(&x[src..src + len]);
            } else {
                for (d, s) in cols[dst..dst + len].iter_mut().zip(x[src..].iter().step_by(sw)) {
                    *d = *s;
                }
            }
        });
    }

    /// Adds `cols` `[k, n]` back onto the image gradient `[c_in, h, w]` (zeroed first). The
    /// entries of `cols` at padding positions are ignored (and may be overwritten).
    fn col2im(p: &Problem, cols: &mut [f32], dx: &mut [f32]) {
        dx.fill(0.0);
        if p.same_width() {
            // Zero the padding columns, then one shifted add per row.
            let n = p.n();
            p.for_each_shift(|row, plane, q, d, valid| {
                let src = &mut cols[row * n..(row + 1) * n];
                zero_edges(src, p.w, &q, &valid);
                let at = (plane as isize + q.start as isize + d) as usize;
                for (a, v) in dx[at..at + q.len()].iter_mut().zip(&src[q]) {
                    *a += v;
                }
            });
            return;
        }
        let sw = p.stride[1];
        p.for_each_run(|src, ows, dst| {
            let len = ows.len();
            if sw == 1 {
                for (d, s) in dx[src..src + len].iter_mut().zip(&cols[dst..dst + len]) {
                    *d += *s;
                }
            } else {
                for (d, s) in dx[src..].iter_mut().step_by(sw).zip(&cols[dst..dst + len]) {
                    *d += *s;
                }
            }
        });
    }

    /// A row-major or transposed view of a matrix for [`gemm`]: `(ptr, col stride, row stride)`.
    type View = (*const f32, isize, isize);

    fn rows(a: &[f32], cols: usize) -> View {
        (a.as_ptr(), 1, cols as isize)
    }

    fn transposed(a: &[f32], cols: usize) -> View {
        (a.as_ptr(), cols as isize, 1)
    }

    /// `dst [m, n] (+)= lhs [m, k] rhs [k, n]`, `dst` row-major.
    fn gemm(m: usize, n: usize, k: usize, dst: &mut [f32], accumulate: bool, lhs: View, rhs: View, parallel: bool) {
        assert!(dst.len() >= m * n);
        #[cfg(feature = "rayon")]
        let par = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
        #[cfg(not(feature = "rayon"))]
        let par = {
            let _ = parallel;
            gemm::Parallelism::None
        };
        // SAFETY: the views address `m x k` and `k x n` elements inside their slices (the
        // callers pass slices of exactly those sizes) and `dst` holds `m x n`.
        unsafe {
            gemm::gemm(m, n, k, dst.as_mut_ptr(), 1, n as isize, accumulate, lhs.0, lhs.1, lhs.2, rhs.0, rhs.1, rhs.2, 1.0, 1.0, false, false, false, par)
        }
    }

    /// Runs `f(image, scratch)` for every image: in parallel over images when there are at
    /// least as many as threads, else one after the other with each product parallel inside
    /// (`f`'s second argument says which).
    fn over_images<S: Send>(batch: usize, init: impl Fn() -> S + Sync + Send, f: impl Fn(usize, &mut S, bool) + Sync + Send) {
        #[cfg(feature = "rayon")]
        if batch >= rayon::current_num_threads() {
            use rayon::prelude::*;
            (0..batch).into_par_iter().for_each_init(&init, |s, b| f(b, s, false));
            return;
        }
        let mut s = init();
        for b in 0..batch {
            f(b, &mut s, cfg!(feature = "rayon"));
        }
    }

    /// A raw pointer that may cross threads; each image writes a disjoint range through it.
    #[derive(Clone, Copy)]
    struct Shared(*mut f32);
    // SAFETY: only used to hand disjoint per-image ranges of one buffer to parallel tasks.
    unsafe impl Send for Shared {}
    unsafe impl Sync for Shared {}
    impl Shared {
        /// The `len` elements from `offset`.
        /// SAFETY: the range lies inside the buffer and no other task touches it.
        #[allow(clippy::mut_from_ref)]
        unsafe fn slice(&self, offset: usize, len: usize) -> &mut [f32] {
            unsafe { std::slice::from_raw_parts_mut(self.0.add(offset), len) }
        }
    }

    /// The convolution of every image, `[batch, c_out, h_out, w_out]`.
    pub fn forward(x: &[f32], weight: &[f32], bias: &[f32], p: Problem) -> Vec<f32> {
        if winograd::applies(&p) {
            return winograd::forward(x, weight, bias, p);
        }
        let (k, n, img) = (p.k(), p.n(), p.c_in * p.h * p.w);
        let mut out = vec![0f32; p.batch * p.c_out * n];
        let shared = Shared(out.as_mut_ptr());
        let scratch = || if p.pointwise() { Vec::new() } else { vec![0f32; k * n] };
        over_images(p.batch, scratch, |b, cols, parallel| {
            // SAFETY: image `b`'s output range, disjoint from every other image's.
            let dst = unsafe { shared.slice(b * p.c_out * n, p.c_out * n) };
            for (row, &bias) in dst.chunks_exact_mut(n).zip(bias) {
                row.fill(bias);
            }
            let xb = &x[b * img..(b + 1) * img];
            let cols: &[f32] = if p.pointwise() {
                xb
            } else {
                im2col(&p, xb, cols);
                cols
            };
            gemm(p.c_out, n, k, dst, true, rows(weight, k), rows(cols, n), parallel);
        });
        out
    }

    /// The forward pass of 3x3, stride-1, same-size convolutions by Winograd's minimal
    /// filtering F(2x2, 3x3) (Lavin & Gray 2016, section 4, eqs. 8-10): per 4x4 input tile `d`
    /// and 2x2 output tile `Y = A^T [(G g G^T) . (B^T d B)] A`, with
    /// `B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]]`, `G = [[1,0,0],[1/2,1/2,1/2],
    /// [1/2,-1/2,1/2],[0,0,1]]`, `A^T = [[1,1,1,0],[0,1,-1,-1]]`. Summed over input channels,
    /// the element-wise products become 16 matrix products `M_xi = U_xi V_xi`
    /// (`[c_out, c_in] x [c_in, tiles]`), 2.25 times fewer multiplications than `W cols`. The
    /// tiles of several images sit side by side in `V`, so the products stay wide at 14x14 and
    /// 7x7. The gradients are taken by [`super::backward`] (the same convolution).
    mod winograd {
        use super::{Problem, Shared, gemm, rows};

        pub fn applies(p: &Problem) -> bool {
            p.k_h == 3 && p.k_w == 3 && p.stride == [1, 1] && p.pad_top == 1 && p.pad_left == 1 && p.h_out == p.h && p.w_out == p.w
        }

        /// `U` `[16, c_out, c_in]`: `G g G^T` of every 3x3 kernel `g`.
        fn filters(weight: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
            let mut u = vec![0f32; 16 * c_out * c_in];
            let plane = c_out * c_in;
            for (oc, g) in weight.chunks_exact(9).enumerate() {
                // G g: 4 x 3.
                let mut gg = [[0f32; 3]; 4];
                for j in 0..3 {
                    let (a, b, c) = (g[j], g[3 + j], g[6 + j]);
                    gg[0][j] = a;
                    gg[1][j] = 0.5 * (a + b + c);
                    gg[2][j] = 0.5 * (a - b + c);
                    gg[3][j] = c;
                }
                // (G g) G^T: 4 x 4.
                for (i, r) in gg.iter().enumerate() {
                    let row = [r[0], 0.5 * (r[0] + r[1] + r[2]), 0.5 * (r[0] - r[1] + r[2]), r[2]];
                    for (j, v) in row.into_iter().enumerate() {
                        u[(i * 4 + j) * plane + oc] = v;
                    }
                }
            }
            u
        }

        /// `B^T d B` of every tile of one image `[c_in, h, w]` into columns `col0..` of `v`
        /// `[16, c_in, cols]`. Per channel the plane is copied into a zero border first, so the
        /// loops have no bounds tests: `B^T` runs along whole padded rows, `B` along the tiles.
        fn inputs(p: &Problem, x: &[f32], v: &mut [f32], cols: usize, col0: usize) {
            let (th, tw) = (p.h.div_ceil(2), p.w.div_ceil(2));
            // Padded plane: rows -1 ..= 2 th, columns -1 ..= 2 tw.
            let (ph, pw) = (2 * th + 2, 2 * tw + 2);
            let mut pad = vec![0f32; ph * pw];
            let mut bt = vec![0f32; 4 * pw];
            let plane = p.c_in * cols;
            for (c, xc) in x.chunks_exact(p.h * p.w).enumerate() {
                for (r, src) in xc.chunks_exact(p.w).enumerate() {
                    pad[(r + 1) * pw + 1..(r + 1) * pw + 1 + p.w].copy_from_slice(src);
                }
                for ty in 0..th {
                    let row = |i: usize| &pad[(2 * ty + i) * pw..(2 * ty + i + 1) * pw];
                    let (d0, d1, d2, d3) = (row(0), row(1), row(2), row(3));
                    let mut b = bt.chunks_exact_mut(pw);
                    let (b0, b1, b2, b3) = (b.next().unwrap(), b.next().unwrap(), b.next().unwrap(), b.next().unwrap());
                    for (((((e0, e1), e2), e3), (&x0, &x2)), (&x1, &x3)) in
                        b0.iter_mut().zip(b1.iter_mut()).zip(b2.iter_mut()).zip(b3.iter_mut()).zip(d0.iter().zip(d2)).zip(d1.iter().zip(d3))
                    {
                        *e0 = x0 - x2;
                        *e1 = x1 + x2;
                        *e2 = x2 - x1;
                        *e3 = x1 - x3;
                    }
                    let base = c * cols + col0 + ty * tw;
                    for (i, b) in bt.chunks_exact(pw).enumerate() {
                        let mut out = v[(i * 4) * plane..(i * 4 + 4) * plane].chunks_exact_mut(plane).map(|s| &mut s[base..base + tw]);
                        let (s0, s1, s2, s3) = (out.next().unwrap(), out.next().unwrap(), out.next().unwrap(), out.next().unwrap());
                        for ((((w, o0), o1), o2), o3) in b.windows(4).step_by(2).zip(s0.iter_mut()).zip(s1.iter_mut()).zip(s2.iter_mut()).zip(s3.iter_mut()) {
                            *o0 = w[0] - w[2];
                            *o1 = w[1] + w[2];
                            *o2 = w[2] - w[1];
                            *o3 = w[1] - w[3];
                        }
                    }
                }
            }
        }

        /// `A^T M A` of every tile of one image from columns `col0..` of `m` `[16, c_out, cols]`,
        /// plus the bias, into the image's output `[c_out, h, w]`: `A^T` along the tiles, `A`
        /// into two padded output rows, of which the in-bounds part is copied out.
        fn outputs(p: &Problem, m: &[f32], cols: usize, col0: usize, bias: &[f32], out: &mut [f32]) {
            let (th, tw) = (p.h.div_ceil(2), p.w.div_ceil(2));
            let plane = p.c_out * cols;
            let mut at = vec![0f32; 8 * tw];
            let mut y = vec![0f32; 2 * 2 * tw];
            for (c, oc) in out.chunks_exact_mut(p.h * p.w).enumerate() {
                for ty in 0..th {
                    let base = c * cols + col0 + ty * tw;
                    let t = |i: usize, j: usize| &m[(i * 4 + j) * plane + base..(i * 4 + j) * plane + base + tw];
                    for j in 0..4 {
                        let (m0, m1, m2, m3) = (t(0, j), t(1, j), t(2, j), t(3, j));
                        let (a0, a1) = at[2 * j * tw..(2 * j + 2) * tw].split_at_mut(tw);
                        for ((((e0, e1), &x0), (&x1, &x2)), &x3) in a0.iter_mut().zip(a1.iter_mut()).zip(m0).zip(m1.iter().zip(m2)).zip(m3) {
                            *e0 = x0 + x1 + x2;
                            *e1 = x1 - x2 - x3;
                        }
                    }
                    let bias = bias[c];
                    for i in 0..2 {
                        let a = |j: usize| &at[(2 * j + i) * tw..(2 * j + i + 1) * tw];
                        let (a0, a1, a2, a3) = (a(0), a(1), a(2), a(3));
                        let yr = &mut y[i * 2 * tw..(i + 1) * 2 * tw];
                        for ((pair, (&x0, &x1)), (&x2, &x3)) in yr.chunks_exact_mut(2).zip(a0.iter().zip(a1)).zip(a2.iter().zip(a3)) {
                            pair[0] = x0 + x1 + x2 + bias;
                            pair[1] = x1 - x2 - x3 + bias;
                        }
                        let r = 2 * ty + i;
                        if r < p.h {
                            oc[r * p.w..(r + 1) * p.w].copy_from_slice(&yr[..p.w]);
                        }
                    }
                }
            }
        }

        pub fn forward(x: &[f32], weight: &[f32], bias: &[f32], p: Problem) -> Vec<f32> {
            let (img, n) = (p.c_in * p.h * p.w, p.h * p.w);
            let tiles = p.h.div_ceil(2) * p.w.div_ceil(2);
            // Images per product: about 200 tile columns (so that V stays in L2).
            let per = 200usize.div_ceil(tiles).clamp(1, p.batch);
            let chunks = p.batch.div_ceil(per);
            let u = filters(weight, p.c_out, p.c_in);
            let mut out = vec![0f32; p.batch * p.c_out * n];
            let shared = Shared(out.as_mut_ptr());
            let cols_max = per * tiles;
            let scratch = || (vec![0f32; 16 * p.c_in * cols_max], vec![0f32; 16 * p.c_out * cols_max]);
            super::over_images(chunks, scratch, |chunk, (v, m), parallel| {
                let first = chunk * per;
                let count = per.min(p.batch - first);
                let cols = count * tiles;
                for i in 0..count {
                    inputs(&p, &x[(first + i) * img..(first + i + 1) * img], v, cols, i * tiles);
                }
                for xi in 0..16 {
                    let ui = &u[xi * p.c_out * p.c_in..(xi + 1) * p.c_out * p.c_in];
                    let vi = &v[xi * p.c_in * cols..(xi + 1) * p.c_in * cols];
                    let mi = &mut m[xi * p.c_out * cols..(xi + 1) * p.c_out * cols];
                    gemm(p.c_out, cols, p.c_in, mi, false, rows(ui, p.c_in), rows(vi, cols), parallel);
                }
                for i in 0..count {
                    // SAFETY: image `first + i`'s output range, disjoint from every other image's.
                    let dst = unsafe { shared.slice((first + i) * p.c_out * n, p.c_out * n) };
                    outputs(&p, m, cols, i * tiles, bias, dst);
                }
            });
            out
        }
    }

    /// A thread's buffers for [`backward`]: `cols`, `dcols` and its share of `dW` and `db`.
    struct Scratch {
        cols: Vec<f32>,
        dcols: Vec<f32>,
        dw: Vec<f32>,
        db: Vec<f32>,
    }

    /// `(dx, dW, db)` from the output gradient `dout`; `dx` only when `want_dx`.
    pub fn backward(x: &[f32], weight: &[f32], dout: &[f32], p: Problem, want_dx: bool) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
        let (k, n, img) = (p.k(), p.n(), p.c_in * p.h * p.w);
        let mut dx = if want_dx { vec![0f32; p.batch * img] } else { Vec::new() };
        let shared = Shared(dx.as_mut_ptr());
        let new = || Scratch {
            cols: if p.pointwise() { Vec::new() } else { vec![0f32; k * n] },
            dcols: if want_dx && !p.pointwise() { vec![0f32; k * n] } else { Vec::new() },
            dw: vec![0f32; p.c_out * k],
            db: vec![0f32; p.c_out],
        };
        let image = |b: usize, s: &mut Scratch, parallel: bool| {
            let xb = &x[b * img..(b + 1) * img];
            let gb = &dout[b * p.c_out * n..(b + 1) * p.c_out * n];
            let cols: &[f32] = if p.pointwise() {
                xb
            } else {
                im2col(&p, xb, &mut s.cols);
                &s.cols
            };
            // dW += dout_b cols^T: [c_out, n] x [n, k].
            gemm(p.c_out, k, n, &mut s.dw, true, rows(gb, n), transposed(cols, n), parallel);
            for (acc, row) in s.db.iter_mut().zip(gb.chunks_exact(n)) {
                *acc += super::super::group_norm::kernel::sum2(row, row, |v, _| (v, 0.0)).0;
            }
            if want_dx {
                // SAFETY: image `b`'s input-gradient range, disjoint from every other image's.
                let dxb = unsafe { shared.slice(b * img, img) };
                // dcols = W^T dout_b: [k, c_out] x [c_out, n]; for a pointwise convolution
                // that is dx_b itself.
                if p.pointwise() {
                    gemm(k, n, p.c_out, dxb, false, transposed(weight, k), rows(gb, n), parallel);
                } else {
                    gemm(k, n, p.c_out, &mut s.dcols, false, transposed(weight, k), rows(gb, n), parallel);
                    col2im(&p, &mut s.dcols, dxb);
                }
            }
        };
        let add = |(mut w, mut b): (Vec<f32>, Vec<f32>), (w2, b2): (Vec<f32>, Vec<f32>)| {
            w.iter_mut().zip(&w2).for_each(|(a, v)| *a += v);
            b.iter_mut().zip(&b2).for_each(|(a, v)| *a += v);
            (w, b)
        };
        #[cfg(feature = "rayon")]
        if p.batch >= rayon::current_num_threads() {
            use rayon::prelude::*;
            let (dw, db) = (0..p.batch)
                .into_par_iter()
                .fold(new, |mut s, b| {
                    image(b, &mut s, false);
                    s
                })
                .map(|s| (s.dw, s.db))
                .reduce(|| (vec![0f32; p.c_out * k], vec![0f32; p.c_out]), add);
            return (want_dx.then_some(dx), dw, db);
        }
        let _ = add;
        let mut s = new();
        for b in 0..p.batch {
            image(b, &mut s, cfg!(feature = "rayon"));
        }
        (want_dx.then_some(dx), s.dw, s.db)
    }
}
