//! Rendering a stored run: the source video with its detections and tracks
//! drawn on, without running inference again. A read path from the store
//! to the media layer; the analysis pipeline is not involved.

pub mod gait;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use peregrine_analytics::{Crossing, LineCounter, Polygon};
use peregrine_core::Labels;
use peregrine_media::{
    detection_annotation, discover_inputs, palette_color, render, Annotation, MediaError,
    RenderOptions, RenderStats,
};
use peregrine_store::{DbTarget, DetectionQuery, DetectionRow, Results, RunRecord, StoreError};

/// Why a stored run could not be drawn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Media(#[from] MediaError),
    /// The run's video is no longer there as an input.
    #[error("{input}: {reason}")]
    Input { input: String, reason: String },
}

/// Recent (frame, centre) points of one track.
type Trail = VecDeque<(u64, (f32, f32))>;

/// Trail length in frames.
const TRAIL_FRAMES: u64 = 30;

/// Pulls a run's detections frame by frame, one keyset page at a time.
struct DetectionCursor<'a> {
    store: &'a Results,
    run: i64,
    query: DetectionQuery,
    page: VecDeque<DetectionRow>,
    done: bool,
}

impl DetectionCursor<'_> {
    fn peek(&mut self) -> Result<Option<&DetectionRow>, StoreError> {
        if self.page.is_empty() && !self.done {
            let p = self.store.detections_page(self.run, &self.query)?;
            self.done = p.next.is_none();
            self.query.after = p.next;
            self.page = p.items.into();
        }
        Ok(self.page.front())
    }
}

/// How one stored detection is drawn. Tracked boxes get their track's
/// colour and a "class id" tag; untracked ones in a tracked run (not yet
/// confirmed) are drawn thin and untagged; with tracking off, boxes are
/// tagged with class and score.
fn annotation(
    d: &DetectionRow,
    labels: &Labels,
    tracked_run: bool,
    trail: Vec<(f32, f32)>,
) -> Annotation {
    let mut a = detection_annotation(
        d.bbox,
        &labels.name(d.class_id),
        u32::from(d.class_id),
        d.track_id,
        d.score,
        tracked_run,
    );
    a.trail = trail;
    a.keypoints = d.keypoints.iter().map(|k| [k.x, k.y, k.score]).collect();
    a
}

fn is_tracked(run: &RunRecord) -> bool {
    !run.params.get("track").is_none_or(|t| t.is_null())
}

fn run_input(run: &RunRecord) -> Result<peregrine_media::InputSpec, RenderError> {
    let source = PathBuf::from(&run.video_path);
    discover_inputs(std::slice::from_ref(&source))?
        .into_iter()
        .next()
        .ok_or_else(|| RenderError::Input {
            input: run.video_path.clone(),
            reason: "no input".into(),
        })
}

/// What drawing one frame of a run needs from the database: the run and
/// the frame's detections. Read first, so that the decoding, which may
/// take a while, holds no database connection.
pub struct FrameToDraw {
    run: RunRecord,
    frame: u64,
    detections: Vec<DetectionRow>,
}

impl FrameToDraw {
    /// Reads run `run_id` and its detections of frame `frame`.
    pub fn read(store: &Results, run_id: i64, frame: u64) -> Result<Self, StoreError> {
        let run = store.run(run_id)?;
        let page = store.detections_page(
            run_id,
            &DetectionQuery {
                frame_from: Some(frame),
                frame_to: Some(frame),
                limit: 10_000,
                ..Default::default()
            },
        )?;
        Ok(Self {
            run,
            frame,
            detections: page.items,
        })
    }

    pub fn run(&self) -> &RunRecord {
        &self.run
    }

    /// The frame of the run's video with its detections drawn on, as a
    /// JPEG (for the service's frame viewer).
    pub fn jpeg(&self, labels: &Labels) -> Result<Vec<u8>, RenderError> {
        let spec = run_input(&self.run)?;
        let tracked = is_tracked(&self.run);
        let mut anns: Vec<Annotation> = self
            .detections
            .iter()
            .map(|d| annotation(d, labels, tracked, Vec::new()))
            .collect();
        if let Some(mut o) = SpatialOverlay::geometry(&self.run) {
            o.annotate(self.frame, &self.detections, &mut anns);
        }
        Ok(peregrine_media::annotated_frame_jpeg(
            &spec, self.frame, &anns,
        )?)
    }
}

/// Frame `frame` of run `run_id`'s video with the run's detections drawn
/// on, as a JPEG.
pub fn render_frame_jpeg(
    store: &Results,
    run_id: i64,
    frame: u64,
    labels: &Labels,
) -> Result<Vec<u8>, RenderError> {
    FrameToDraw::read(store, run_id, frame)?.jpeg(labels)
}

/// A run's lines and zones as drawn: lines with their in/out counts so
/// far, zones with their occupancy in the frame. Crossings come from a
/// replay of the stored frames through the same [`LineCounter`]s the
/// analysis ran, read before drawing (one entry per crossing).
struct SpatialOverlay {
    spec: peregrine_core::SpatialSpec,
    zones: Vec<peregrine_analytics::Polygon>,
    /// (frame, line, in) in frame order.
    crossings: Vec<(u64, usize, bool)>,
    next: usize,
    totals: Vec<(u64, u64)>,
    /// Lines tagged with their counts (a whole video), or with their name
    /// only (one frame, drawn without replaying the run).
    with_counts: bool,
}

impl SpatialOverlay {
    fn read(store: &Results, run: &RunRecord) -> Result<Option<Self>, StoreError> {
        let Some(spec) = run.spatial() else {
            return Ok(None);
        };
        let mut lines: Vec<LineCounter> = spec.lines.iter().map(LineCounter::new).collect();
        let mut crossings = Vec::new();
        let mut tracked = Vec::new();
        store
            .for_each_frame(run.id, run.width, run.height, |meta, rows| {
                tracked.clear();
                tracked.extend(
                    rows.iter().filter_map(|d| {
                        Some((d.track_id?, d.class_id, spec.anchor.point(&d.bbox)))
                    }),
                );
                for (i, line) in lines.iter_mut().enumerate() {
                    for (_, c) in line.frame(&tracked) {
                        crossings.push((meta.index, i, c == Crossing::In));
                    }
                }
                Ok::<(), ()>(())
            })?
            .ok();
        Ok(Some(Self {
            zones: spec.zones.iter().map(|z| Polygon::new(&z.points)).collect(),
            totals: vec![(0, 0); spec.lines.len()],
            spec,
            crossings,
            next: 0,
            with_counts: true,
        }))
    }

    /// The run's lines and zones without their crossings, for one frame.
    fn geometry(run: &RunRecord) -> Option<Self> {
        let spec = run.spatial()?;
        Some(Self {
            zones: spec.zones.iter().map(|z| Polygon::new(&z.points)).collect(),
            totals: vec![(0, 0); spec.lines.len()],
            spec,
            crossings: Vec::new(),
            next: 0,
            with_counts: false,
        })
    }

    /// Lines and zones of `frame`, drawn as polylines (an annotation's
    /// trail) with a tag at their first point.
    fn annotate(&mut self, frame: u64, shown: &[DetectionRow], out: &mut Vec<Annotation>) {
        while let Some(&(f, line, is_in)) = self.crossings.get(self.next) {
            if f > frame {
                break;
            }
            let t = &mut self.totals[line];
            if is_in {
                t.0 += 1;
            } else {
                t.1 += 1;
            }
            self.next += 1;
        }
        let tag = |p: (f64, f64), label: String, color, trail| Annotation {
            bbox: peregrine_core::BBox::new(p.0 as f32, p.1 as f32, p.0 as f32, p.1 as f32),
            label,
            color,
            trail,
            secondary: false,
            keypoints: Vec::new(),
        };
        for (z, (spec, poly)) in self.spec.zones.iter().zip(&self.zones).enumerate() {
            let n = shown
                .iter()
                .filter(|d| d.track_id.is_some() && poly.contains(self.spec.anchor.point(&d.bbox)))
                .count();
            let mut ring: Vec<(f32, f32)> = spec
                .points
                .iter()
                .map(|&(x, y)| (x as f32, y as f32))
                .collect();
            ring.push(ring[0]);
            let color = palette_color(2000 + z as u32);
            out.push(tag(
                spec.points[0],
                format!("{} {n}", spec.name),
                color,
                ring,
            ));
        }
        for (l, (spec, (n_in, n_out))) in self.spec.lines.iter().zip(&self.totals).enumerate() {
            let trail = vec![
                (spec.start.0 as f32, spec.start.1 as f32),
                (spec.end.0 as f32, spec.end.1 as f32),
            ];
            let color = palette_color(3000 + l as u32);
            let label = if self.with_counts {
                format!("{} in {n_in} out {n_out}", spec.name)
            } else {
                spec.name.clone()
            };
            out.push(tag(spec.start, label, color, trail));
        }
    }
}

/// Renders run `run_id` from the database `db` names (a SQLite file or
/// PostgreSQL).
pub fn render_run(
    db: &DbTarget,
    run_id: i64,
    labels: &Labels,
    opts: &RenderOptions,
) -> Result<RenderStats, RenderError> {
    let store = Results::open(db, std::time::Duration::from_secs(5))?;
    let run = store.run(run_id)?;
    let spec = run_input(&run)?;
    // Detections of a sampled run stay on screen until the next analysed
    // frame, but not longer than one second.
    let hold = (run.video_fps.max(1.0)).round() as u64;
    let tracked_run = is_tracked(&run);
    let mut overlay = SpatialOverlay::read(&store, &run)?;
    let mut cursor = DetectionCursor {
        store: &store,
        run: run_id,
        query: DetectionQuery {
            limit: 4096,
            ..Default::default()
        },
        page: VecDeque::new(),
        done: false,
    };
    let mut current: Vec<DetectionRow> = Vec::new();
    let mut current_frame: Option<u64> = None;
    let mut trails: HashMap<u32, Trail> = HashMap::new();
    let mut error: Option<StoreError> = None;
    let stats = render(&spec, opts, |frame, _t, out| {
        if error.is_some() {
            return;
        }
        loop {
            match cursor.peek() {
                Ok(Some(row)) if row.frame <= frame => {
                    let row = cursor.page.pop_front().expect("peeked");
                    if current_frame != Some(row.frame) {
                        current.clear();
                        current_frame = Some(row.frame);
                    }
                    if let Some(id) = row.track_id {
                        let t = trails.entry(id).or_default();
                        t.push_back((row.frame, row.bbox.center()));
                        while t.front().is_some_and(|(f, _)| f + TRAIL_FRAMES < row.frame) {
                            t.pop_front();
                        }
                    }
                    current.push(row);
                }
                Ok(_) => break,
                Err(e) => {
                    error = Some(e);
                    return;
                }
            }
        }
        trails.retain(|_, t| t.back().is_some_and(|(f, _)| f + TRAIL_FRAMES >= frame));
        let stale = current_frame.is_none_or(|f| frame > f + hold);
        if let Some(o) = overlay.as_mut() {
            o.annotate(frame, if stale { &[] } else { &current }, out);
        }
        if stale {
            return;
        }
        for d in &current {
            let trail = d
                .track_id
                .and_then(|id| trails.get(&id))
                .map(|t| t.iter().map(|(_, c)| *c).collect())
                .unwrap_or_default();
            out.push(annotation(d, labels, tracked_run, trail));
        }
    })?;
    if let Some(e) = error {
        return Err(e.into());
    }
    Ok(stats)
}

/// What `peregrine heatmap` accumulates.
#[derive(Clone, Debug, Default)]
pub struct HeatmapOptions {
    /// Only detections of this class.
    pub class: Option<peregrine_core::ClassId>,
    /// Only this track.
    pub track: Option<u32>,
    /// The box point accumulated (default: the run's anchor, else
    /// bottom-centre).
    pub anchor: Option<peregrine_core::Anchor>,
    /// Grid cell, pixels.
    pub cell: u32,
    /// Frame of the video drawn underneath (default: the middle one).
    pub frame: Option<u64>,
}

/// A heat map of run `run_id`'s tracked anchors over a still of its video,
/// as a PNG, and the number of anchors accumulated. Untracked boxes are
/// left out when the run was tracked.
pub fn heatmap_png(
    store: &Results,
    run_id: i64,
    opts: &HeatmapOptions,
) -> Result<(Vec<u8>, u64), RenderError> {
    let run = store.run(run_id)?;
    let spec = run_input(&run)?;
    let anchor = opts
        .anchor
        .or_else(|| run.spatial().map(|s| s.anchor))
        .unwrap_or_default();
    let tracked = is_tracked(&run);
    let mut heat =
        peregrine_analytics::heatmap::Heatmap::new(run.width, run.height, opts.cell.max(1));
    let mut last_frame = 0;
    store
        .for_each_detection(run_id, |d| {
            last_frame = d.frame;
            if (tracked && d.track_id.is_none())
                || opts.class.is_some_and(|c| c != d.class_id)
                || opts.track.is_some_and(|t| Some(t) != d.track_id)
            {
                return Ok::<(), ()>(());
            }
            heat.add(anchor.point(&d.bbox));
            Ok(())
        })?
        .ok();
    let frame = opts.frame.unwrap_or(last_frame / 2);
    let (w, h, mut rgb) = peregrine_media::frame_rgb(&spec, frame)?;
    if (w, h) != (run.width, run.height) {
        return Err(RenderError::Input {
            input: run.video_path.clone(),
            reason: format!(
                "the video is now {w}x{h}, the run analysed {}x{}",
                run.width, run.height
            ),
        });
    }
    let radius = (24 / opts.cell.max(1)).max(1) as usize;
    heat.blend_over(&mut rgb, w as usize * 3, radius);
    let png = peregrine_media::encode_png(&rgb, w, h).map_err(|e| RenderError::Input {
        input: run.video_path.clone(),
        reason: format!("PNG encoder: {e}"),
    })?;
    Ok((png, heat.points()))
}
