//! benchmarks/convergence.svg: T_raw, T_children, T_ready_raw, T_ready and the
//! peer operator's T_children against N (log scale).

use std::fmt::Write as _;

use crate::results::SizeResult;

/// Label, colour and value of one line of the plot.
type Series = (&'static str, &'static str, fn(&SizeResult) -> Option<f64>);

pub fn svg(results: &[SizeResult]) -> String {
    let (w, h) = (760.0, 460.0);
    let (left, right, top, bottom) = (70.0, 170.0, 40.0, 60.0);
    let series: [Series; 5] = [
        ("T_raw", "#4c78a8", |r| r.t_raw),
        ("T_children", "#f58518", |r| r.footprint.t_children),
        ("T_ready_raw", "#b279a2", |r| r.t_ready_raw),
        ("T_ready", "#54a24b", |r| r.t_ready),
        ("peer T_children", "#e45756", |r| r.peer.as_ref()?.footprint.t_children),
    ];
    let ns: Vec<f64> = results.iter().map(|r| r.n as f64).collect();
    let (min_n, max_n) = (ns.iter().copied().fold(f64::INFINITY, f64::min), ns.iter().copied().fold(0.0, f64::max));
    let max_t = results.iter().flat_map(|r| series.iter().filter_map(|s| (s.2)(r))).fold(0.0, f64::max).max(1.0);
    let y_max = nice_ceiling(max_t * 1.05);
    let (lo, hi) = if min_n.is_finite() && max_n > min_n { (min_n.log10(), max_n.log10()) } else { (-0.5, 0.5) };
    let x = |n: f64| {
        let v = if max_n > min_n { (n.log10() - lo) / (hi - lo) } else { 0.5 };
        left + v * (w - left - right)
    };
    let y = |t: f64| top + (1.0 - t / y_max) * (h - top - bottom);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">Convergence time against N (slim WebClusters)</text>"#,
        (w - right + left) / 2.0
    );
    for i in 0..=5 {
        let t = y_max * i as f64 / 5.0;
        let _ = writeln!(
            out,
            r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            w - right,
            y(t),
            y(t)
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y(t) + 4.0,
            trim_number(t)
        );
    }
    for n in &ns {
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" x2="{:.1}" y1="{top}" y2="{}" stroke="#eee"/>"##,
            x(*n),
            x(*n),
            h - bottom
        );
        let _ = writeln!(out, r#"<text x="{:.1}" y="{}" text-anchor="middle">{n}</text>"#, x(*n), h - bottom + 18.0);
    }
    let _ = writeln!(out, r##"<line x1="{left}" x2="{left}" y1="{top}" y2="{}" stroke="#333"/>"##, h - bottom);
    let _ = writeln!(
        out,
        r##"<line x1="{left}" x2="{}" y1="{}" y2="{}" stroke="#333"/>"##,
        w - right,
        h - bottom,
        h - bottom
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">N (WebClusters, log scale)</text>"#,
        (w - right + left) / 2.0,
        h - 18.0
    );
    let _ = writeln!(
        out,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">seconds</text>"#,
        (h - bottom + top) / 2.0,
        (h - bottom + top) / 2.0
    );
    for (i, (label, color, value)) in series.iter().enumerate() {
        let points: Vec<(f64, f64)> = results.iter().filter_map(|r| value(r).map(|t| (x(r.n as f64), y(t)))).collect();
        if points.len() > 1 {
            let path: Vec<String> = points.iter().map(|(px, py)| format!("{px:.1},{py:.1}")).collect();
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                path.join(" ")
            );
        }
        for (px, py) in &points {
            let _ = writeln!(out, r#"<circle cx="{px:.1}" cy="{py:.1}" r="4" fill="{color}"/>"#);
        }
        let ly = top + 20.0 + 22.0 * i as f64;
        let lx = w - right + 20.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="3"/>"#,
            lx + 24.0
        );
        let _ = writeln!(out, r#"<text x="{}" y="{}">{label}</text>"#, lx + 30.0, ly + 4.0);
    }
    let _ = writeln!(out, "</svg>");
    out
}

fn nice_ceiling(v: f64) -> f64 {
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|c| *c >= v).unwrap_or(10.0 * magnitude)
}

fn trim_number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 { format!("{v:.0}") } else { format!("{v:.1}") }
}
