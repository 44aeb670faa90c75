#!/usr/bin/env python3
"""Driver for bench/run.sh: runs every tool on the same clips in one
invocation, takes medians, prints a Markdown table with ratios and (unless
--smoke) rewrites the analysis section of BENCHMARKS.md."""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PEREGRINE_TEST_DATA", ROOT.parent / "shared" / "data"))
PEREGRINE = str(ROOT / "target" / "release" / "peregrine")
MODEL = str(DATA / "models" / "yolox_nano.onnx")
CLIPS = ["traffic_intersection_cctv_640x480.mp4", "ped_concourse_overhead_1280x720.mp4",
         "sport_soccer_broadcast_1280x720.mp4"]
THREADS = 2


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time; returns (stdout, stderr, wall seconds, peak RSS MB)."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "PEAKRSS=%M"] + cmd, capture_output=True, text=True,
                       env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    rss = int(re.findall(r"PEAKRSS=(\d+)", p.stderr)[-1]) / 1024
    return p.stdout, p.stderr, wall, rss


def ffmpeg_decode(video):
    _, err, _, rss = timed(["ffmpeg", "-nostdin", "-benchmark", "-threads", str(THREADS), "-i", video,
                            "-f", "null", "-"])
    rtime = float(re.findall(r"rtime=([\d.]+)s", err)[-1])
    frames = int(re.findall(r"frame=\s*(\d+)", err)[-1])  # frames ffmpeg decoded and output
    return frames / rtime, rss


def peregrine_json(args, env=None, binary=None):
    out, _, wall, rss = timed([binary or PEREGRINE] + args, env)
    return json.loads(out.strip().splitlines()[-1]), wall, rss


def analyze(video, extra=(), binary=None):
    with tempfile.TemporaryDirectory() as d:
        j, wall, rss = peregrine_json(["analyze", video, "--model", MODEL, "--db", f"{d}/p.db", "--threads",
                                       str(THREADS), "--json", "-q", "--no-cache", *extra], binary=binary)
    assert j["status"] == "complete", j
    return j["fps"], wall, rss


def python_ref(video):
    with tempfile.TemporaryDirectory() as d:
        out, _, _, rss = timed([sys.executable, str(ROOT / "bench" / "reference_pipeline.py"), video, MODEL,
                                "--threads", str(THREADS), "--db", f"{d}/ref.db"])
    return json.loads(out)["fps"], rss


def med(xs):
    return statistics.median(xs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="one clip, one run, no BENCHMARKS.md update")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", metavar="BIN",
                    help="another peregrine binary (an earlier build) whose end-to-end speed is measured in the "
                         "same runs, interleaved, for a before/after column; printed, BENCHMARKS.md not updated")
    ap.add_argument("--device", choices=["cpu", "cuda", "tensorrt", "auto"],
                    help="where inference runs (PEREGRINE_DEVICE for every peregrine call); with a GPU device "
                         "the table is printed and BENCHMARKS.md's CPU section is not updated (bench/gpu/device.sh "
                         "is the full GPU benchmark)")
    a = ap.parse_args()
    if a.device:
        os.environ["PEREGRINE_DEVICE"] = a.device
    gpu = a.device in ("cuda", "tensorrt")
    clips = CLIPS[:1] if a.smoke else CLIPS
    runs = 1 if a.smoke else a.runs
    rows = []
    for clip in clips:
        v = str(DATA / "videos" / clip)
        r = {k: [] for k in ["ff", "ff_rss", "dec", "dec_rss", "m1", "m2", "e2e", "e2e_rss", "py", "py_rss",
                             "base", "base_rss"]}
        for _ in range(runs):
            f, rss = ffmpeg_decode(v); r["ff"].append(f); r["ff_rss"].append(rss)
            j, _, rss = peregrine_json(["bench", "decode", v, "--threads", str(THREADS)])
            r["dec"].append(j["fps"]); r["dec_rss"].append(rss)
            j, _, _ = peregrine_json(["bench", "model", v, "--model", MODEL, "--sessions", "1", "--threads", "2",
                                      "--frames", "300"])
            r["m1"].append(j["fps"])
            j, _, _ = peregrine_json(["bench", "model", v, "--model", MODEL, "--sessions", "2", "--threads", "1",
                                      "--frames", "300"])
            r["m2"].append(j["fps"])
            fps, _, rss = analyze(v); r["e2e"].append(fps); r["e2e_rss"].append(rss)
            if a.baseline:
                fps, _, rss = analyze(v, binary=a.baseline); r["base"].append(fps); r["base_rss"].append(rss)
            fps, rss = python_ref(v); r["py"].append(fps); r["py_rss"].append(rss)
        m = {k: med(x) for k, x in r.items() if x}
        m["clip"] = clip
        m["limit"] = max(m["m1"], m["m2"])
        rows.append(m)

    extra = []
    if not a.smoke and not a.baseline and not gpu:
        soccer = str(DATA / "videos" / CLIPS[2])
        with tempfile.TemporaryDirectory() as d:
            lst = Path(d) / "list.txt"
            lst.write_text("".join(f"file '{soccer}'\n" for _ in range(10)))
            long = Path(d) / "soccer_x10.mp4"
            subprocess.run(["ffmpeg", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(lst), "-c", "copy",
                            str(long)], check=True)
            short_rss = med([analyze(soccer)[2] for _ in range(runs)])
            long_fps, _, long_rss = analyze(str(long))
        full_wall = med([analyze(soccer)[1] for _ in range(runs)])
        fps5_wall = med([analyze(soccer, ["--fps", "5"])[1] for _ in range(runs)])
        extra = [
            ("Peak RSS, soccer 720p clip", f"{short_rss:.0f} MB"),
            ("Peak RSS, same clip concatenated 10x", f"{long_rss:.0f} MB ({long_rss / short_rss:.2f}x), {long_fps:.0f} fps"),
            ("`--fps 5` vs full rate on the 29.97 fps soccer clip (wall time)",
             f"{fps5_wall:.2f} s vs {full_wall:.2f} s: {full_wall / fps5_wall:.1f}x faster"),
        ]

    hdr = ("| clip | ffmpeg decode fps | Peregrine decode fps | model limit fps (1x2 thr / 2x1 thr) "
           "| Peregrine end-to-end fps | Python reference fps | e2e / model limit | e2e / Python "
           "| decode / ffmpeg | peak RSS Peregrine / Python / ffmpeg (MB) |")
    lines = [hdr, "|" + "---|" * 10]
    for m in rows:
        lines.append(
            f"| {m['clip']} | {m['ff']:.0f} | {m['dec']:.0f} | {m['limit']:.0f} ({m['m1']:.0f} / {m['m2']:.0f}) "
            f"| {m['e2e']:.0f} | {m['py']:.0f} | {m['e2e'] / m['limit']:.2f} | {m['e2e'] / m['py']:.2f} "
            f"| {m['dec'] / m['ff']:.2f} | {m['e2e_rss']:.0f} / {m['py_rss']:.0f} / {m['ff_rss']:.0f} |")
    if a.baseline:
        lines += ["", f"Against `{a.baseline}` (same runs, interleaved):", "",
                  "| clip | end-to-end fps, this build / baseline | ratio | peak RSS MB, this build / baseline |",
                  "|---|---|---|---|"]
        for m in rows:
            lines.append(f"| {m['clip']} | {m['e2e']:.0f} / {m['base']:.0f} | {m['e2e'] / m['base']:.2f} "
                         f"| {m['e2e_rss']:.0f} / {m['base_rss']:.0f} |")
    table = "\n".join(lines)
    if extra:
        table += "\n\n| measurement | result |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in extra)
    print(table)
    if a.smoke or a.baseline or gpu:
        return
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True,
                         text=True).stdout.strip()
    section = (f"<!-- bench:analyze:start -->\nMeasured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores "
               f"({cpu}), yolox_nano.onnx, {THREADS} threads everywhere, median of {runs} runs, "
               f"with `bench/run.sh`.\n\n{table}\n<!-- bench:analyze:end -->")
    bm = ROOT / "BENCHMARKS.md"
    text = bm.read_text() if bm.exists() else "# Benchmarks\n"
    if "<!-- bench:analyze:start -->" in text:
        text = re.sub(r"<!-- bench:analyze:start -->.*<!-- bench:analyze:end -->", lambda _: section, text,
                      flags=re.S)
    else:
        text += "\n## Analysis (`bench/run.sh`)\n\n" + section + "\n"
    bm.write_text(text)


if __name__ == "__main__":
    main()
