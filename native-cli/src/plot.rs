//! `native-cli plot`: scatter plots of 2-D samples as one SVG, a panel per `.npy` file, on
//! shared axes, optionally over samples of a mixture's target drawn in grey.

use crate::ModelSource;
use anyhow::{Context, Result, bail};
use clap::Args;
use scorediff::eval::target;
use scorediff::io::read_npy;
use scorediff::noise::NoiseSource;
use std::fmt::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct PlotArgs {
    /// .npy files of shape [n, 2] (further columns are ignored); one panel each.
    #[arg(long, value_name = "PATH", num_args = 1.., required = true)]
    data: Vec<PathBuf>,
    /// A mixture .json whose target is drawn in grey under every panel.
    #[arg(long, value_name = "PATH")]
    reference: Option<PathBuf>,
    /// Output .svg file.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
}

const PANEL: f64 = 260.0;
const PAD: f64 = 24.0;

pub fn plot(args: &PlotArgs) -> Result<()> {
    let mut sets = vec![];
    for path in &args.data {
        let a = read_npy(path)?;
        if a.shape[1] < 2 {
            bail!("{}: expected at least 2 columns to plot, found shape {:?}", path.display(), a.shape);
        }
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let pts: Vec<(f64, f64)> = a.data.chunks_exact(a.shape[1]).map(|r| (r[0], r[1])).filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        sets.push((name, pts));
    }
    let reference: Vec<(f64, f64)> = match &args.reference {
        Some(path) => {
            let ModelSource::Mixture { file, .. } = ModelSource::open(path)? else {
                bail!("{}: expected a Gaussian-mixture .json as the reference, found a trained network", path.display());
            };
            let tgt = target(&file)?;
            if tgt.dim() != 2 {
                bail!("{}: expected a 2-D mixture to plot, found dimension {}", path.display(), tgt.dim());
            }
            tgt.sample(2000, &mut NoiseSource::new(0)).chunks_exact(2).map(|r| (r[0], r[1])).collect()
        }
        None => vec![],
    };
    // Shared axes: the 0.5% to 99.5% range of everything, with a margin.
    let mut xs: Vec<f64> = sets.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)).chain(reference.iter().map(|q| q.0)).collect();
    let mut ys: Vec<f64> = sets.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)).chain(reference.iter().map(|q| q.1)).collect();
    if xs.is_empty() {
        bail!("no finite points to plot");
    }
    let range = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let (lo, hi) = (v[v.len() / 200], v[v.len() - 1 - v.len() / 200]);
        let m = 0.1 * (hi - lo).max(1e-9);
        (lo - m, hi + m)
    };
    let ((x0, x1), (y0, y1)) = (range(&mut xs), range(&mut ys));
    let cols = sets.len().min(4);
    let rows = sets.len().div_ceil(cols);
    let (w, h) = (cols as f64 * (PANEL + PAD) + PAD, rows as f64 * (PANEL + 2.0 * PAD) + PAD);
    let mut svg = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="13">"#);
    svg.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, (name, pts)) in sets.iter().enumerate() {
        let (ox, oy) = (PAD + (i % cols) as f64 * (PANEL + PAD), 2.0 * PAD + (i / cols) as f64 * (PANEL + 2.0 * PAD));
        let _ = write!(svg, r#"<text x="{}" y="{}">{} ({} points)</text>"#, ox, oy - 8.0, escape(name), pts.len());
        let _ = write!(svg, r##"<rect x="{ox}" y="{oy}" width="{PANEL}" height="{PANEL}" fill="none" stroke="#999"/>"##);
        let map = |(x, y): (f64, f64)| (ox + (x - x0) / (x1 - x0) * PANEL, oy + PANEL - (y - y0) / (y1 - y0) * PANEL);
        for (color, p) in [("#bbb", &reference), ("#1f5fbf", pts)] {
            for &q in p.iter() {
                let (px, py) = map(q);
                if (ox..=ox + PANEL).contains(&px) && (oy..=oy + PANEL).contains(&py) {
                    let _ = write!(svg, r#"<circle cx="{px:.1}" cy="{py:.1}" r="1.2" fill="{color}"/>"#);
                }
            }
        }
    }
    svg.push_str("</svg>\n");
    let tmp = args.out.with_extension("svg.tmp");
    std::fs::write(&tmp, svg).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    Ok(())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
