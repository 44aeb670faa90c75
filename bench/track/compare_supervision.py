#!/usr/bin/env python3
"""Peregrine's ByteTracker against supervision's ByteTrack on the same detections.

Both trackers read one MOTChallenge detection file (`frame,-1,x,y,w,h,score,...`,
one class), run with the same parameters and frame rate, and are scored with
motmetrics (IoU 0.5) against the sequence's ground truth. Peregrine runs as the
`track_mot` example of peregrine-track, built with `cargo build --release`.

    bench/.venv-track/bin/python bench/track/compare_supervision.py \
        --dets bench/out/track/det_reference.txt
"""

import argparse
import configparser
import os
import subprocess
import sys
import time
from pathlib import Path

import motmetrics as mm
import numpy as np
import supervision as sv

REPO = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    env = os.environ.get("PEREGRINE_TEST_DATA")
    return Path(env) if env else REPO / ".." / "shared" / "data"


def load_dets(path: Path) -> dict[int, np.ndarray]:
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    by_frame: dict[int, np.ndarray] = {}
    for frame in np.unique(rows[:, 0]).astype(int):
        by_frame[int(frame)] = rows[rows[:, 0] == frame]
    return by_frame


def run_peregrine(args, n_frames: int, out: Path) -> float:
    env = dict(os.environ)
    target = Path(env.setdefault("CARGO_TARGET_DIR", str(REPO / "target-track")))
    subprocess.run(
        ["cargo", "build", "--quiet", "--release", "-p", "peregrine-track", "--example", "track_mot"],
        cwd=REPO, env=env, check=True,
    )
    cmd = [
        str(target / "release" / "examples" / "track_mot"),
        str(args.dets), str(out),
        "--frame-rate", str(args.frame_rate),
        "--track-thresh", str(args.track_thresh),
        "--new-track-thresh", str(args.track_thresh + 0.1),
        "--match-thresh", str(args.match_thresh),
        "--track-buffer", str(args.track_buffer),
        "--frames", str(n_frames),
    ]
    t = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True)
    return time.perf_counter() - t


def run_supervision(args, dets: dict[int, np.ndarray], n_frames: int, out: Path) -> float:
    tracker = sv.ByteTrack(
        track_activation_threshold=args.track_thresh,
        lost_track_buffer=args.track_buffer,
        minimum_matching_threshold=args.match_thresh,
        frame_rate=args.frame_rate,
        minimum_consecutive_frames=1,
    )
    lines = []
    t = time.perf_counter()
    for frame in range(1, n_frames + 1):
        rows = dets.get(frame, np.zeros((0, 10)))
        xyxy = rows[:, 2:6].copy()
        xyxy[:, 2:] += xyxy[:, :2]
        d = sv.Detections(
            xyxy=xyxy.astype(np.float32),
            confidence=rows[:, 6].astype(np.float32),
            class_id=np.zeros(len(rows), dtype=int),
        )
        d = tracker.update_with_detections(d)
        for (x1, y1, x2, y2), tid, s in zip(d.xyxy, d.tracker_id, d.confidence):
            lines.append(f"{frame},{tid},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{s:.4f},-1,-1,-1")
    elapsed = time.perf_counter() - t
    out.write_text("\n".join(lines) + "\n")
    return elapsed


def score(gt_file: Path, result: Path, name: str):
    gt = mm.io.loadtxt(str(gt_file), fmt="mot15-2D", min_confidence=1)
    ts = mm.io.loadtxt(str(result), fmt="mot15-2D")
    acc = mm.utils.compare_to_groundtruth(gt, ts, "iou", distth=0.5)
    mh = mm.metrics.create()
    return mh.compute(
        acc,
        metrics=["mota", "idf1", "num_switches", "num_false_positives",
                 "num_misses", "mostly_tracked", "num_unique_objects", "motp"],
        name=name,
    )


def same_output(a: Path, b: Path) -> bool:
    def load(p: Path) -> dict:
        rows = {}
        for line in p.read_text().splitlines():
            f = line.split(",")
            if len(f) >= 6:
                rows[(int(f[0]), *(round(float(v), 1) for v in f[2:6]))] = int(f[1])
        return rows
    ra, rb = load(a), load(b)
    if ra.keys() != rb.keys():
        return False
    fwd, back = {}, {}
    return all(fwd.setdefault(ra[k], rb[k]) == rb[k] and back.setdefault(rb[k], ra[k]) == ra[k] for k in ra)


def main() -> int:
    seq = data_dir() / "mot" / "PETS09-S2L1-480x360"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dets", type=Path, required=True, help="MOT detection file")
    ap.add_argument("--gt", type=Path, default=seq / "gt", help="folder with gt.txt (and seqinfo.ini beside it)")
    ap.add_argument("--frame-rate", type=int, default=None, help="default: seqinfo.ini frameRate")
    ap.add_argument("--track-thresh", type=float, default=0.5)
    ap.add_argument("--match-thresh", type=float, default=0.8)
    ap.add_argument("--track-buffer", type=int, default=30)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "track")
    args = ap.parse_args()

    gt_file = args.gt / "gt.txt" if args.gt.is_dir() else args.gt
    ini = configparser.ConfigParser()
    ini.read(gt_file.parent.parent / "seqinfo.ini")
    if args.frame_rate is None:
        args.frame_rate = int(ini.get("Sequence", "frameRate", fallback="30"))
    dets = load_dets(args.dets)
    n_frames = max(int(ini.get("Sequence", "seqLength", fallback="0")), max(dets))

    args.out.mkdir(parents=True, exist_ok=True)
    peregrine_out = args.out / "peregrine.txt"
    supervision_out = args.out / "supervision.txt"
    t_p = run_peregrine(args, n_frames, peregrine_out)
    t_s = run_supervision(args, dets, n_frames, supervision_out)

    import pandas as pd
    summary = pd.concat([
        score(gt_file, peregrine_out, "peregrine"),
        score(gt_file, supervision_out, f"supervision {sv.__version__}"),
    ])
    print(f"detections: {args.dets} ({sum(len(v) for v in dets.values())} in {n_frames} frames)")
    print(f"ground truth: {gt_file}; frame rate {args.frame_rate}, track_thresh {args.track_thresh}, "
          f"match_thresh {args.match_thresh}, track_buffer {args.track_buffer}; motmetrics IoU 0.5")
    print()
    print("| tracker | MOTA | IDF1 | ID sw. | FP | FN | MT | mean IoU | time (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    times = [t_p, t_s]
    for (name, r), t in zip(summary.iterrows(), times):
        print(f"| {name} | {r.mota * 100:.1f} | {r.idf1 * 100:.1f} | {int(r.num_switches)} | "
              f"{int(r.num_false_positives)} | {int(r.num_misses)} | "
              f"{int(r.mostly_tracked)}/{int(r.num_unique_objects)} | {1 - r.motp:.3f} | {t:.3f} |")
    print()
    print("time: Peregrine = whole process (parse, track, write); supervision = tracking loop only")
    same = same_output(peregrine_out, supervision_out)
    print("identical output (same tracked boxes, ids equal up to relabelling):", "yes" if same else "no")
    p, s = summary.iloc[0], summary.iloc[1]
    ok = p.mota >= s.mota - 1e-9 and p.idf1 >= s.idf1 - 1e-9 and p.num_switches <= s.num_switches
    print("peregrine >= supervision on MOTA, IDF1 and ID switches:", "yes" if ok else "NO")
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
