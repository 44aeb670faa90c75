//! Rendering a stored run: the source video with its detections and tracks
//! drawn on, without running inference again. A read path from the store
//! to the media layer; the analysis pipeline is not involved.

pub mod gait;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use peregrine_core::Labels;
use peregrine_media::{
    discover_inputs, palette_color, render, Annotation, MediaError, RenderOptions, RenderStats,
};
use peregrine_store::{DetectionQuery, DetectionRow, RunRecord, Store, StoreError};

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
    store: &'a Store,
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
    let class = labels.name(d.class_id);
    let class_color = palette_color(1000 + d.class_id as u32);
    let (label, color, secondary) = match d.track_id {
        Some(id) => (format!("{class} {id}"), palette_color(id), false),
        None if tracked_run => (String::new(), class_color, true),
        None => (format!("{class} {:.2}", d.score), class_color, false),
    };
    Annotation {
        bbox: d.bbox,
        label,
        color,
        trail,
        secondary,
        keypoints: d.keypoints.iter().map(|k| [k.x, k.y, k.score]).collect(),
    }
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
    pub fn read(store: &Store, run_id: i64, frame: u64) -> Result<Self, StoreError> {
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
        let anns: Vec<Annotation> = self
            .detections
            .iter()
            .map(|d| annotation(d, labels, tracked, Vec::new()))
            .collect();
        Ok(peregrine_media::annotated_frame_jpeg(
            &spec, self.frame, &anns,
        )?)
    }
}

/// Frame `frame` of run `run_id`'s video with the run's detections drawn
/// on, as a JPEG.
pub fn render_frame_jpeg(
    store: &Store,
    run_id: i64,
    frame: u64,
    labels: &Labels,
) -> Result<Vec<u8>, RenderError> {
    FrameToDraw::read(store, run_id, frame)?.jpeg(labels)
}

/// Renders run `run_id` from the database at `db`.
pub fn render_run(
    db: &Path,
    run_id: i64,
    labels: &Labels,
    opts: &RenderOptions,
) -> Result<RenderStats, RenderError> {
    let store = Store::open(db)?;
    let run = store.run(run_id)?;
    let spec = run_input(&run)?;
    // Detections of a sampled run stay on screen until the next analysed
    // frame, but not longer than one second.
    let hold = (run.video_fps.max(1.0)).round() as u64;
    let tracked_run = is_tracked(&run);
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
        if current_frame.is_none_or(|f| frame > f + hold) {
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
