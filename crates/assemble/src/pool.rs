//! The pool that encodes ahead of the remux thread: smart-cut pieces
//! ([`crate::smart`]) and whole shots converted to the target format
//! ([`crate::mixed`]), in timeline order, on OS threads, at most `window`
//! jobs ahead of the one the remux thread is waiting for, so memory holds
//! a bounded number of encoded jobs.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};

use peregrine_media::ffmpeg::Packet;

use crate::mixed::{convert_shot, ConvertJob, Formats};
use crate::options::EncodeSettings;
use crate::plan::Shot;
use crate::smart::{encode_piece, Opened, PieceJob};

/// One job of the pool.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Job {
    Piece(PieceJob),
    Convert(ConvertJob),
}

/// An encoded job: length-prefixed H.264 packets (pts = dts, in the target
/// video timebase, from the shot's in point) and, for conversions, the
/// shot's audio packets (see [`crate::mixed::convert_audio`]).
pub(crate) struct PieceOut {
    pub packets: Vec<Packet>,
    pub frames: u64,
    pub end: i64,
    pub audio: Vec<Packet>,
}

/// Runs `job`, handing its video packets to `emit` as they come.
pub(crate) fn run_job(
    job: &Job,
    shots: &[Shot],
    settings: &EncodeSettings,
    formats: &Formats,
    opened: &mut Opened,
    emit: &mut dyn FnMut(Packet) -> Result<(), String>,
) -> Result<PieceOut, String> {
    match job {
        Job::Piece(p) => {
            let (frames, end) = encode_piece(p, &shots[p.shot], settings, opened, emit)?;
            Ok(PieceOut {
                packets: Vec::new(),
                frames,
                end,
                audio: Vec::new(),
            })
        }
        Job::Convert(c) => convert_shot(c, &shots[c.shot], settings, formats, emit),
    }
}

/// Encodes [`Job`]s on worker threads in order, at most `window` jobs ahead
/// of the one the remux thread is waiting for.
pub(crate) struct PiecePool<'a> {
    jobs: &'a [Job],
    shots: &'a [Shot],
    settings: &'a EncodeSettings,
    formats: &'a Formats,
    window: usize,
    state: Mutex<PoolState>,
    cv: Condvar,
}

#[derive(Default)]
struct PoolState {
    next: usize,
    consumed: usize,
    results: BTreeMap<usize, Result<PieceOut, String>>,
    stop: bool,
}

impl<'a> PiecePool<'a> {
    pub fn new(
        jobs: &'a [Job],
        shots: &'a [Shot],
        settings: &'a EncodeSettings,
        formats: &'a Formats,
        window: usize,
    ) -> Self {
        Self {
            jobs,
            shots,
            settings,
            formats,
            window: window.max(1),
            state: Mutex::new(PoolState::default()),
            cv: Condvar::new(),
        }
    }

    /// A worker thread's body: returns when every job is taken or on stop.
    pub fn work(&self) {
        let mut opened: Opened = None;
        loop {
            let i = {
                let mut st = self.state.lock().expect("pool lock");
                while !st.stop && st.next < self.jobs.len() && st.next >= st.consumed + self.window
                {
                    st = self.cv.wait(st).expect("pool lock");
                }
                if st.stop || st.next >= self.jobs.len() {
                    return;
                }
                st.next += 1;
                st.next - 1
            };
            let job = &self.jobs[i];
            // A panic must still answer `take`, or the remux thread would wait forever.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut packets = Vec::new();
                let mut keep = |p: Packet| {
                    packets.push(p);
                    Ok(())
                };
                let out = run_job(
                    job,
                    self.shots,
                    self.settings,
                    self.formats,
                    &mut opened,
                    &mut keep,
                )?;
                Ok(PieceOut { packets, ..out })
            }))
            .unwrap_or_else(|_| {
                opened = None;
                Err("the piece encoder failed unexpectedly".into())
            });
            let mut st = self.state.lock().expect("pool lock");
            st.results.insert(i, r);
            self.cv.notify_all();
        }
    }

    /// Waits for job `i` (they must be taken in order).
    pub fn take(&self, i: usize) -> Result<PieceOut, String> {
        let mut st = self.state.lock().expect("pool lock");
        loop {
            if let Some(r) = st.results.remove(&i) {
                st.consumed = i + 1;
                self.cv.notify_all();
                return r;
            }
            if st.stop {
                return Err("cancelled".into());
            }
            st = self.cv.wait(st).expect("pool lock");
        }
    }

    /// Makes every worker return (at the end, or on error).
    pub fn stop(&self) {
        let mut st = self.state.lock().expect("pool lock");
        st.stop = true;
        st.results.clear();
        self.cv.notify_all();
    }
}
