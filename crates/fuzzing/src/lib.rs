//! The fuzz targets' logic, as plain functions of the input bytes.
//!
//! A key design decision here is that the targets live in the workspace
//! and not only in `fuzz/` (the cargo-fuzz crate, outside the workspace):
//! each libFuzzer target there is one line calling [`run`], and `cargo test`
//! replays every target over its seed corpus ([`seeds`]) and the crash
//! inputs kept in `fuzz/regressions/`, so the targets compile and pass with
//! every change without a sanitizer build in CI.
//!
//! A target panics when an invariant breaks (libFuzzer reports a panic as a
//! crash); a parser refusing its input with an error is the expected
//! outcome for most inputs. Bounded memory is checked by libFuzzer's
//! `-rss_limit_mb` and `-malloc_limit_mb` (see `fuzz/run.sh`).

pub mod jobs;
pub mod seeds;
pub mod text;
pub mod video;

/// One fuzz target: its name (the file `fuzz/fuzz_targets/<name>.rs`) and
/// its logic.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    /// What it feeds and what it checks.
    pub about: &'static str,
}

/// Every fuzz target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "shotlist",
        run: text::shotlist,
        about: "shot lists (first byte: JSON, TOML, CMX3600 EDL or OTIO)",
    },
    Target {
        name: "motfile",
        run: text::motfile,
        about: "MOTChallenge text (first byte: ground truth or results); rows round-trip through text; scored against itself",
    },
    Target {
        name: "seqinfo",
        run: text::seqinfo,
        about: "seqinfo.ini, as eval and as the image-sequence input read it",
    },
    Target {
        name: "coco",
        run: text::coco,
        about: "COCO JSON (first byte: ground truth, or results against a fixed ground truth); scored",
    },
    Target {
        name: "labels",
        run: text::labels,
        about: "class names files; names round-trip and look up",
    },
    Target {
        name: "config_toml",
        run: text::config_toml,
        about: "TOML configuration (first byte: streams.toml or the server's config file)",
    },
    Target {
        name: "job_request",
        run: jobs::job_request,
        about: "POST /api/v1/jobs through the real router (first byte: JSON or multipart); documented answers only; accepted parameters round-trip",
    },
    Target {
        name: "video",
        run: video::video,
        about: "video bytes through probe, open, decode, letterbox and the run's outcome",
    },
];

/// Runs target `name` on `data` (the libFuzzer entry point of every
/// target in `fuzz/`).
pub fn run(name: &str, data: &[u8]) {
    match TARGETS.iter().find(|t| t.name == name) {
        Some(t) => (t.run)(data),
        None => panic!("no fuzz target {name:?}"),
    }
}

/// The input after the selector byte, and the selector.
pub(crate) fn split_selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(s, rest)| (*s, rest))
}
