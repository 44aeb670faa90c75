//! The gait report: one self-contained HTML page (inline CSS, inline SVG
//! charts, key frames as inline base64 JPEG), readable offline.

use std::fmt::Write;

use crate::analysis::{AngleCycle, Sides, SubjectGait};
use crate::events::{EventKind, Foot};

/// A frame of the video with the skeleton drawn, as JPEG bytes.
pub struct KeyFrame {
    pub caption: String,
    pub jpeg: Vec<u8>,
}

/// One subject of the report.
pub struct ReportSubject<'a> {
    pub gait: &'a SubjectGait,
    pub key_frames: Vec<KeyFrame>,
}

/// What the report is about.
pub struct Report<'a> {
    pub input: &'a str,
    pub run_id: i64,
    pub mode: &'a str,
    pub height_m: Option<f64>,
    pub subjects: Vec<ReportSubject<'a>>,
}

const LEFT: &str = "#1f63b4";
const RIGHT: &str = "#d2461e";

/// Approximate normal sagittal knee flexion over the gait cycle (degrees,
/// mean at % of cycle), after the adult means of Perry & Burnfield (2010)
/// and Kadaba et al. (1990); drawn as mean ± `BAND_SD`.
const KNEE_NORMAL: [(f64, f64); 14] = [
    (0.0, 5.0),
    (5.0, 12.0),
    (12.0, 18.0),
    (20.0, 15.0),
    (30.0, 8.0),
    (40.0, 5.0),
    (50.0, 9.0),
    (60.0, 35.0),
    (66.0, 52.0),
    (72.0, 60.0),
    (80.0, 50.0),
    (88.0, 25.0),
    (95.0, 8.0),
    (100.0, 5.0),
];

/// Approximate normal hip flexion (degrees, + flexion), same sources.
const HIP_NORMAL: [(f64, f64); 10] = [
    (0.0, 30.0),
    (10.0, 27.0),
    (25.0, 15.0),
    (40.0, 0.0),
    (52.0, -10.0),
    (60.0, -5.0),
    (70.0, 10.0),
    (85.0, 33.0),
    (92.0, 32.0),
    (100.0, 30.0),
];

const BAND_SD: f64 = 7.0;

fn interp(table: &[(f64, f64)], x: f64) -> f64 {
    for w in table.windows(2) {
        if x <= w[1].0 {
            let f = (x - w[0].0) / (w[1].0 - w[0].0);
            return w[0].1 + (w[1].1 - w[0].1) * f;
        }
    }
    table[table.len() - 1].1
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Standard base64 (RFC 4648) with padding.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= c.len() {
                out.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) => format!("{x:.digits$}"),
        None => "–".into(),
    }
}

fn row(out: &mut String, name: &str, all: Option<f64>, sides: Option<Sides>, d: usize, typ: &str) {
    let (l, r, si) = match sides {
        Some(s) => (num(s.left, d), num(s.right, d), num(s.symmetry_index(), 1)),
        None => ("".into(), "".into(), "".into()),
    };
    let _ = writeln!(
        out,
        "<tr><th>{name}</th><td class=v>{}</td><td>{l}</td><td>{r}</td><td>{si}</td><td class=ref>{typ}</td></tr>",
        num(all, d)
    );
}

fn metrics_table(out: &mut String, g: &SubjectGait, metric: bool) {
    let p = &g.per_foot;
    let lu = if metric { "m" } else { "body heights" };
    let su = if metric { "m/s" } else { "body heights/s" };
    out.push_str("<table class=metrics><thead><tr><th>Metric</th><th>Value</th><th>Left</th><th>Right</th><th>Symmetry index %</th><th>Typical adult</th></tr></thead><tbody>\n");
    let _ = writeln!(
        out,
        "<tr><th>Steps (heel strikes)</th><td class=v>{}</td><td>{}</td><td>{}</td><td></td><td></td></tr>",
        g.steps,
        g.events
            .iter()
            .filter(|e| e.foot == Foot::Left && e.kind == EventKind::HeelStrike)
            .count(),
        g.events
            .iter()
            .filter(|e| e.foot == Foot::Right && e.kind == EventKind::HeelStrike)
            .count()
    );
    row(
        out,
        "Cadence (steps/min)",
        g.cadence_spm,
        None,
        1,
        "100–125",
    );
    row(
        out,
        "Step time (s)",
        g.step_time_s,
        Some(p.step_time_s),
        3,
        "0.48–0.60",
    );
    row(
        out,
        "Stride time (s)",
        g.stride_time_s,
        Some(p.stride_time_s),
        3,
        "0.96–1.20",
    );
    row(
        out,
        "Stance (% of cycle)",
        g.stance_pct,
        Some(p.stance_pct),
        1,
        "≈ 60",
    );
    row(
        out,
        "Swing (% of cycle)",
        g.swing_pct,
        Some(p.swing_pct),
        1,
        "≈ 40",
    );
    row(
        out,
        "Double support (% of cycle)",
        g.double_support_pct,
        None,
        1,
        "≈ 20",
    );
    let (lt, st) = if metric {
        ("0.60–0.80", "1.1–1.5")
    } else {
        ("≈ 0.40", "≈ 0.75")
    };
    row(
        out,
        &format!("Step length ({lu})"),
        g.step_length,
        Some(p.step_length),
        3,
        lt,
    );
    row(out, &format!("Walking speed ({su})"), g.speed, None, 2, st);
    out.push_str("</tbody></table>\n");
}

/// An angle chart: each cycle thin, the mean of each side bold, the
/// normal band shaded.
fn angle_chart(
    out: &mut String,
    title: &str,
    cycles: &[AngleCycle],
    normal: &[(f64, f64)],
    (ymin, ymax): (f64, f64),
) {
    let (w, h) = (480.0, 280.0);
    let (l, r, t, b) = (48.0, 12.0, 28.0, 36.0);
    let x = |p: f64| l + (w - l - r) * p / 100.0;
    let y = |d: f64| t + (h - t - b) * (ymax - d.clamp(ymin, ymax)) / (ymax - ymin);
    let _ = writeln!(
        out,
        "<svg class=chart viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=img aria-label=\"{title}\">"
    );
    let _ = writeln!(
        out,
        "<text x=\"{l}\" y=\"18\" class=ct>{}</text>",
        esc(title)
    );
    // Grid and axes.
    let mut d = (ymin / 10.0).ceil() * 10.0;
    while d <= ymax {
        let _ = writeln!(
            out,
            "<line x1=\"{l}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" class=grid /><text x=\"{}\" y=\"{:.1}\" class=ax text-anchor=end>{d:.0}°</text>",
            w - r,
            y(d),
            y(d),
            l - 6.0,
            y(d) + 4.0
        );
        d += 10.0;
    }
    for p in (0..=100).step_by(20) {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" class=ax text-anchor=middle>{p}%</text>",
            x(p as f64),
            h - b + 16.0
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{}\" class=ax text-anchor=middle>gait cycle (heel strike to heel strike)</text>",
        x(50.0),
        h - 4.0
    );
    // Normal band.
    let mut pts = Vec::new();
    for p in 0..=100 {
        let m = interp(normal, p as f64);
        pts.push(format!("{:.1},{:.1}", x(p as f64), y(m + BAND_SD)));
    }
    for p in (0..=100).rev() {
        let m = interp(normal, p as f64);
        pts.push(format!("{:.1},{:.1}", x(p as f64), y(m - BAND_SD)));
    }
    let _ = writeln!(out, "<polygon points=\"{}\" class=band />", pts.join(" "));
    let line = |out: &mut String, v: &[f64], color: &str, width: f64, opacity: f64| {
        let pts: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(p, d)| format!("{:.1},{:.1}", x(p as f64), y(*d)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline points=\"{}\" fill=none stroke=\"{color}\" stroke-width=\"{width}\" stroke-opacity=\"{opacity}\" />",
            pts.join(" ")
        );
    };
    for c in cycles {
        let color = if c.foot == Foot::Left { LEFT } else { RIGHT };
        line(out, &c.degrees, color, 1.0, 0.45);
    }
    for (f, color) in [(Foot::Left, LEFT), (Foot::Right, RIGHT)] {
        let mine: Vec<&AngleCycle> = cycles.iter().filter(|c| c.foot == f).collect();
        if mine.is_empty() {
            continue;
        }
        let m: Vec<f64> = (0..=100)
            .map(|p| mine.iter().map(|c| c.degrees[p]).sum::<f64>() / mine.len() as f64)
            .collect();
        line(out, &m, color, 2.6, 1.0);
    }
    let n = |f: Foot| cycles.iter().filter(|c| c.foot == f).count();
    let _ = writeln!(
        out,
        "<g class=legend><rect x=\"{}\" y=\"8\" width=\"12\" height=\"8\" class=band /><text x=\"{}\" y=\"16\">normal</text>\
         <line x1=\"{}\" x2=\"{}\" y1=\"12\" y2=\"12\" stroke=\"{LEFT}\" stroke-width=\"2.6\" /><text x=\"{}\" y=\"16\">left ({})</text>\
         <line x1=\"{}\" x2=\"{}\" y1=\"12\" y2=\"12\" stroke=\"{RIGHT}\" stroke-width=\"2.6\" /><text x=\"{}\" y=\"16\">right ({})</text></g>",
        w - 250.0,
        w - 234.0,
        w - 180.0,
        w - 166.0,
        w - 162.0,
        n(Foot::Left),
        w - 92.0,
        w - 78.0,
        w - 74.0,
        n(Foot::Right)
    );
    out.push_str("</svg>\n");
}

/// Event timeline: per foot, stance (heel strike to toe-off) as a bar,
/// heel strikes as triangles, toe-offs as circles.
fn timeline(out: &mut String, g: &SubjectGait) {
    let (t0, t1) = g.span_t;
    let span = (t1 - t0).max(1e-3);
    let (w, h) = (960.0, 130.0);
    let (l, r) = (70.0, 14.0);
    let x = |t: f64| l + (w - l - r) * (t - t0) / span;
    let _ = writeln!(
        out,
        "<svg class=timeline viewBox=\"0 0 {w} {h}\" width=\"100%\" role=img aria-label=\"event timeline\">"
    );
    for (k, f) in [Foot::Left, Foot::Right].into_iter().enumerate() {
        let yc = 30.0 + 40.0 * k as f64;
        let color = if f == Foot::Left { LEFT } else { RIGHT };
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" class=lab text-anchor=end>{}</text><line x1=\"{l}\" x2=\"{}\" y1=\"{yc}\" y2=\"{yc}\" class=grid />",
            l - 8.0,
            yc + 4.0,
            if f == Foot::Left { "Left" } else { "Right" },
            w - r
        );
        let mine: Vec<_> = g.events.iter().filter(|e| e.foot == f).collect();
        for (i, e) in mine.iter().enumerate() {
            if e.kind != EventKind::HeelStrike {
                continue;
            }
            if let Some(to) = mine[i + 1..]
                .first()
                .filter(|n| n.kind == EventKind::ToeOff)
            {
                let _ = writeln!(
                    out,
                    "<rect x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"14\" fill=\"{color}\" fill-opacity=\"0.35\" />",
                    x(e.t),
                    yc - 7.0,
                    (x(to.t) - x(e.t)).max(1.0)
                );
            }
        }
        for e in mine {
            let cx = x(e.t);
            match e.kind {
                EventKind::HeelStrike => {
                    let _ = writeln!(
                        out,
                        "<polygon points=\"{:.1},{} {:.1},{} {cx:.1},{}\" fill=\"{color}\"><title>{} heel strike {:.2} s</title></polygon>",
                        cx - 6.0,
                        yc - 14.0,
                        cx + 6.0,
                        yc - 14.0,
                        yc - 2.0,
                        f.name(),
                        e.t
                    );
                }
                EventKind::ToeOff => {
                    let _ = writeln!(
                        out,
                        "<circle cx=\"{cx:.1}\" cy=\"{}\" r=\"5\" fill=\"white\" stroke=\"{color}\" stroke-width=\"2\"><title>{} toe-off {:.2} s</title></circle>",
                        yc + 10.0,
                        f.name(),
                        e.t
                    );
                }
            }
        }
    }
    // Time axis.
    let tick = if span > 20.0 {
        5.0
    } else if span > 6.0 {
        1.0
    } else {
        0.5
    };
    let mut t = (t0 / tick).ceil() * tick;
    while t <= t1 + 1e-9 {
        let _ = writeln!(
            out,
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"92\" y2=\"97\" class=axl /><text x=\"{:.1}\" y=\"110\" class=ax text-anchor=middle>{t:.1} s</text>",
            x(t),
            x(t),
            x(t)
        );
        t += tick;
    }
    let _ = writeln!(
        out,
        "<line x1=\"{l}\" x2=\"{}\" y1=\"92\" y2=\"92\" class=axl /><text x=\"{l}\" y=\"126\" class=ax>▼ heel strike   ○ toe-off   bar: stance</text>",
        w - r
    );
    out.push_str("</svg>\n");
}

const STYLE: &str = "body{font:15px/1.45 -apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#1d2430;margin:0;background:#f4f6f9}
main{max-width:1000px;margin:0 auto;padding:24px 28px 40px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:30px 0 8px;border-bottom:2px solid #e3e7ee;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px;color:#3b4658}.meta{color:#5b6678;font-size:13px}
table.metrics{border-collapse:collapse;width:100%;font-size:14px}table.metrics th,table.metrics td{padding:5px 10px;border-bottom:1px solid #e6e9ef;text-align:right}
table.metrics th:first-child{text-align:left;font-weight:600}table.metrics thead th{background:#eef1f6;font-weight:600}
td.v{font-weight:700}td.ref{color:#6b7686}.charts{display:flex;flex-wrap:wrap;gap:12px}
svg text{font:12px 'DejaVu Sans',sans-serif;fill:#3b4658}.ct{font-weight:700;font-size:13px}.ax{fill:#5b6678}.lab{font-weight:600}
.grid{stroke:#e3e7ee;stroke-width:1}.axl{stroke:#8a94a6}.band{fill:#8fbf8f;fill-opacity:.3;stroke:none}
.frames{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0;flex:1 1 440px;max-width:470px}figure img{width:100%;border:1px solid #d5dae3;border-radius:3px}
figcaption{font-size:12px;color:#5b6678}.notes{font-size:12.5px;color:#4a5566}.notes li{margin:3px 0}";

/// The report page.
pub fn html(r: &Report) -> String {
    let mut out = String::new();
    let metric = r.height_m.is_some();
    let _ = writeln!(
        out,
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Gait report: {}</title><style>{STYLE}</style></head><body><main>",
        esc(r.input)
    );
    let _ = writeln!(
        out,
        "<h1>Gait report</h1><div class=meta>{} · run {} · mode {}{}</div>",
        esc(r.input),
        r.run_id,
        esc(r.mode),
        match r.height_m {
            Some(h) => format!(" · subject height {h:.2} m"),
            None => " · no subject height given: lengths in body heights".into(),
        }
    );
    if r.subjects.is_empty() {
        out.push_str("<p><b>No walking subject found.</b> A subject must be tracked for at least a second and travel across at least one body height of the frame.</p>");
    }
    for (i, s) in r.subjects.iter().enumerate() {
        let g = s.gait;
        let _ = writeln!(
            out,
            "<h2>{} — track {}</h2><div class=meta>{:.2}–{:.2} s, {} frames detected{}</div>",
            if i == 0 {
                "Main subject".to_string()
            } else {
                format!("Subject {}", i + 1)
            },
            g.track_id,
            g.span_t.0,
            g.span_t.1,
            g.frames,
            if g.swapped_frames > 0 {
                format!(
                    ", left/right leg labels corrected in {} frames",
                    g.swapped_frames
                )
            } else {
                String::new()
            }
        );
        out.push_str("<h3>Spatio-temporal metrics</h3>");
        metrics_table(&mut out, g, metric);
        out.push_str("<h3>Events</h3>");
        timeline(&mut out, g);
        out.push_str("<h3>Joint angles per gait cycle (sagittal plane)</h3><div class=charts>");
        angle_chart(
            &mut out,
            "Knee flexion",
            &g.knee,
            &KNEE_NORMAL,
            (-20.0, 80.0),
        );
        angle_chart(&mut out, "Hip flexion", &g.hip, &HIP_NORMAL, (-30.0, 50.0));
        out.push_str("</div>");
        if g.knee.is_empty() {
            out.push_str("<p class=notes>No complete gait cycle with all leg keypoints known: no angle curves.</p>");
        }
        if !s.key_frames.is_empty() {
            out.push_str("<h3>Key frames</h3><div class=frames>");
            for k in &s.key_frames {
                let _ = writeln!(
                    out,
                    "<figure><img alt=\"{}\" src=\"data:image/jpeg;base64,{}\"><figcaption>{}</figcaption></figure>",
                    esc(&k.caption),
                    base64(&k.jpeg),
                    esc(&k.caption)
                );
            }
            out.push_str("</div>");
        }
    }
    out.push_str(
        "<h2>Method</h2><ul class=notes>\
<li>Pose: COCO-17 keypoints per frame from the pose model, people tracked with ByteTrack. Keypoints below the confidence threshold are not used; gaps up to 0.2 s are interpolated, longer gaps split the analysis.</li>\
<li>Smoothing: Savitzky-Golay (zero phase, so event times are not delayed).</li>\
<li>Left/right: leg labels exchanged by the model in side-on views are corrected by following each leg from frame to frame.</li>\
<li>Events: coordinate method of Zeni et al. (2008): heel strike where the ankle is furthest ahead of the pelvis, toe-off where it is furthest behind. Steps are heel strikes; cadence = 60 / mean step time.</li>\
<li>Step length: distance between the ankles at heel strike along the walking direction, scaled by the box height (body height) or the given subject height. Speed = step length × cadence.</li>\
<li>Angles are 2-D, from the video plane: accurate for side-on filming only. Hip flexion is measured against the trunk line (shoulders to hips), not the pelvis. Normal bands: approximate adult mean ± 7° after Perry &amp; Burnfield (2010) and Kadaba et al. (1990), 3-D motion capture.</li>\
<li>Symmetry index = 100 × |L − R| / ((L + R) / 2) (Robinson et al. 1987); 0 is symmetric.</li>\
<li>Typical adult values are for orientation only, not a clinical reference for this subject.</li></ul>",
    );
    out.push_str("</main></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
