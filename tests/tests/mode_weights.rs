//! Plain Langevin dynamics loses the weights of separated modes, annealed Langevin keeps them
//! (Song & Ermon 2019, section 3.2.2, Fig. 3), with the exact score of the page's mixture
//! (`www/models/mixtures/pitfalls.json`: `0.2 N((-5, -5), I) + 0.8 N((5, 5), I)` under VE with
//! `sigma` from 0.1 to 20) and the settings of `scorediff::sampler::mode_weights`, which the page
//! runs too.
//!
//! Each run draws `PARTICLES = 1000` particles from the prior with a fixed seed, as the page's
//! worker does (`NoiseSource::new(seed).for_samples(0, n)`), and assigns them to components by
//! their largest responsibility (`GaussianMixture::component_shares`). A fraction of `n`
//! particles each in a component with probability `w` has the binomial standard error
//! `sqrt(w (1 - w) / n)`:
//!
//! - annealed Langevin: every component's fraction within 4 standard errors of its weight (a
//!   sampler of the right distribution fails this with probability below 1e-4 per component);
//! - plain Langevin: the minor component's fraction more than 4 standard errors from its
//!   weight (it is near 0.5, about 24 standard errors away).
//!
//! Three seeds, the page's first (0).

use scorediff::burn::tensor::Device;
use scorediff::mixture::{ComponentShares, MixtureFile};
use scorediff::model::ScoreFn;
use scorediff::noise::NoiseSource;
use scorediff::sampler::mode_weights::{PARTICLES, contrast};
use scorediff::sampler::{SamplerSpec, sample};

const Z: f64 = 4.0;

fn page_mixture() -> MixtureFile {
    MixtureFile::from_json(include_str!("../../www/models/mixtures/pitfalls.json")).expect("the page's mixture file parses")
}

fn shares(file: &MixtureFile, spec: &SamplerSpec, seed: u64) -> ComponentShares {
    let device = Device::flex();
    let model = file.model(&device).expect("a valid mixture");
    let f = ScoreFn::new(&model, model.sde.as_ref());
    let config = spec.clone().build().expect("a valid sampler config");
    let mut noise = NoiseSource::new(seed).for_samples(0, PARTICLES);
    let x = sample(&config, &f, [PARTICLES, 2], &mut noise, &device, |_, _, _| {});
    let points: Vec<f64> = x.into_data().try_to_vec::<f32>().expect("f32 samples").into_iter().map(f64::from).collect();
    file.mixture.component_shares(&points).expect("points")
}

fn describe(s: &ComponentShares) -> String {
    let parts: Vec<String> = s.shares.iter().map(|c| format!("{:.3} (w {:.1}, se {:.4}, z {:+.1})", c.fraction, c.weight, c.se, c.z)).collect();
    format!("{} of {} unassigned; {}", s.unassigned, s.n, parts.join(", "))
}

#[test]
fn annealed_langevin_keeps_the_weights_plain_langevin_loses_them() {
    let file = page_mixture();
    let sde = file.sde.build().expect("a valid SDE");
    let [plain, annealed] = contrast(sde.as_ref());
    for seed in [0, 1, 2] {
        let a = shares(&file, &annealed, seed);
        let p = shares(&file, &plain, seed);
        println!("seed {seed}: annealed {}", describe(&a));
        println!("seed {seed}: plain    {}", describe(&p));
        assert_eq!(a.unassigned + p.unassigned, 0, "every particle is finite");
        assert!(a.max_abs_z() < Z, "seed {seed}: annealed Langevin's fractions are within {Z} standard errors of the weights: {}", describe(&a));
        assert!(p.shares[0].z.abs() > Z, "seed {seed}: plain Langevin's minor-mode fraction is more than {Z} standard errors off: {}", describe(&p));
    }
}
