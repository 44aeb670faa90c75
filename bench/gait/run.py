#!/usr/bin/env python3
"""`peregrine gait` per mode: speed against the pose model's limit, accuracy
against heel strikes counted by eye, and peak memory against video length.

    bench/gait/run.sh            both clips, median of 3 runs
    bench/gait/run.sh --smoke    one clip, one run (CI)

Heel strike frames counted by eye from contact sheets of the feet (see
crates/peregrine/tests/gait.rs for how).
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target/release/peregrine")
DATA = os.environ.get("PEREGRINE_TEST_DATA", os.path.join(ROOT, "../shared/data"))
MODEL = os.path.join(DATA, "models/yolo11n_pose_int8.onnx")
CLIPS = {
    "gait_sideon_whitewall_640x352.mp4": (29.76, [22, 48, 68, 89, 110]),
    "gait_sideon_livingroom_960x540.mp4": (29.97, [24, 41.5, 60, 77, 95, 112]),
}
MODES = ["fast", "balanced", "accurate"]


def timed(args):
    """Runs args under /usr/bin/time -v: (wall s, peak RSS MB, stdout)."""
    t = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-v"] + args, capture_output=True, text=True)
    wall = time.monotonic() - t
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} failed: {p.stderr[-2000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    return wall, rss / 1024.0, p.stdout


def frames_of(video):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", video],
        capture_output=True, text=True, check=True).stdout
    return int(out.strip().split(",")[0])


def gait(video, mode, db):
    wall, rss, out = timed([BIN, "gait", video, "--model", MODEL, "--db", db,
                            "--mode", mode, "--no-cache", "--json", "-q"])
    return wall, rss, json.loads(out.splitlines()[0])


def accuracy(result, fps, truth):
    s = result["subjects"][0] if result["subjects"] else None
    if s is None:
        return 0, None, None
    hs = [e["t"] * fps for e in s["events"] if e["kind"] == "heel_strike"]
    err = [min(abs(h - t) for t in truth) for h in hs]
    return s["steps"], s["cadence_spm"], statistics.mean(err) if err else None


def model_limit(video):
    best = 0.0
    for sessions, threads in [(1, 2), (2, 1)]:
        out = subprocess.run([BIN, "bench", "model", video, "--model", MODEL,
                              "--sessions", str(sessions), "--threads", str(threads),
                              "--frames", "150"], capture_output=True, text=True, check=True)
        best = max(best, json.loads(out.stdout.strip().splitlines()[-1])["fps"])
    return best


def main():
    smoke = "--smoke" in sys.argv
    runs = 1 if smoke else 3
    clips = list(CLIPS)[:1] if smoke else list(CLIPS)
    tmp = tempfile.mkdtemp()
    rows = []
    for clip in clips:
        video = os.path.join(DATA, "videos", clip)
        fps, truth = CLIPS[clip]
        n = frames_of(video)
        limit = model_limit(video)
        cad_truth = 60 * (len(truth) - 1) / ((truth[-1] - truth[0]) / fps)
        for mode in MODES:
            walls = []
            for i in range(runs):
                wall, rss, res = gait(video, mode, os.path.join(tmp, f"{mode}{i}.db"))
                walls.append(wall)
            wall = statistics.median(walls)
            steps, cad, err = accuracy(res, fps, truth)
            rows.append((clip, mode, n / wall, limit, n / wall / limit, rss, steps, len(truth),
                         cad, cad_truth, err))
    print(f"pose model {os.path.basename(MODEL)}, 2 threads, median of {runs} run(s); "
          "fps = video frames / wall time of the whole command (model load included)")
    print("| clip | mode | gait fps | model limit fps | gait / limit | peak RSS MB "
          "| steps (counted) | cadence (counted) | heel strike error, frames |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (clip, mode, gfps, limit, ratio, rss, steps, tsteps, cad, tcad, err) in rows:
        print(f"| {clip} | {mode} | {gfps:.1f} | {limit:.1f} | {ratio:.2f} | {rss:.0f} "
              f"| {steps} ({tsteps}) | {cad:.1f} ({tcad:.1f}) | "
              f"{'-' if err is None else f'{err:.1f}'} |")
    if smoke:
        return
    # Memory against length: the whitewall clip 1x and 8x (stream copy).
    clip = os.path.join(DATA, "videos", "gait_sideon_whitewall_640x352.mp4")
    lst = os.path.join(tmp, "list.txt")
    with open(lst, "w") as f:
        f.write(f"file '{clip}'\n" * 8)
    long = os.path.join(tmp, "long.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", lst,
                    "-c", "copy", long], check=True)
    _, rss1, _ = gait(clip, "balanced", os.path.join(tmp, "m1.db"))
    wall8, rss8, res8 = gait(long, "balanced", os.path.join(tmp, "m8.db"))
    print()
    print("| measurement | result |")
    print("|---|---|")
    print(f"| peak RSS, whitewall clip 1x (145 frames) | {rss1:.0f} MB |")
    print(f"| peak RSS, same clip concatenated 8x ({frames_of(long)} frames) | "
          f"{rss8:.0f} MB ({rss8 / rss1:.2f}x), {len(res8['subjects'])} walking passes found |")


if __name__ == "__main__":
    main()
