#!/usr/bin/env python3
"""Driver for bench/live/run.sh: capacity, overload and cost per stream of
`peregrine live` on RTSP cameras (scripts/rtsp_server.py), against the model
limit that bench/run.sh measures (`peregrine bench model`)."""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("PEREGRINE_TEST_DATA", ROOT.parent / "shared" / "data"))
MODEL = str(DATA / "models" / "yolox_nano.onnx")
CLIP = "traffic_intersection_cctv_640x480"
BIN = str(ROOT / "target" / "release" / "peregrine")
FPS = 5.0
QUICK = "--quick" in sys.argv
DURATION = 12 if QUICK else 20
PORT = 18654


def model_limit():
    best = 0.0
    for sessions, threads in ((1, 2), (2, 1)):
        p = subprocess.run([BIN, "bench", "model", str(DATA / "videos" / f"{CLIP}.mp4"), "--model", MODEL,
                            "--sessions", str(sessions), "--threads", str(threads), "--frames", "300"],
                           capture_output=True, text=True, check=True)
        best = max(best, json.loads(p.stdout.strip().splitlines()[-1])["fps"])
    return best


class Server:
    def __enter__(self):
        self.p = subprocess.Popen(["/usr/bin/python3", str(ROOT / "scripts" / "rtsp_server.py"), "--port", str(PORT),
                                   "--only", CLIP, "--loop", "3", "--videos", str(DATA / "videos")],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.p.stdout.readline()
        if not line.startswith("ready"):
            sys.exit("bench: rtsp_server.py did not start")
        return self

    def __exit__(self, *_):
        self.p.kill()
        self.p.wait()


def url():
    return f"rtsp://127.0.0.1:{PORT}/{CLIP}"


def live(n, priority=0, duration=DURATION):
    names = [f"s{i}" for i in range(n)]
    with tempfile.TemporaryDirectory() as d:
        cmd = ["/usr/bin/time", "-f", "TIME %P %M", BIN, "live", *([url()] * n), "--name", ",".join(names),
               "--fps", str(FPS), "--duration", str(duration), "--model", MODEL, "--db", f"{d}/live.db",
               "--json"]
        if priority:
            cmd += ["--priority", ",".join(names[:priority])]
        p = subprocess.run(cmd, capture_output=True, text=True)
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    if not lines or "summary" not in lines[-1]:
        sys.exit(f"bench: peregrine live failed:\n{p.stderr[-2000:]}")
    m = re.search(r"TIME (\d+)%\s+(\d+)", p.stderr)
    cpu, rss = (int(m.group(1)), int(m.group(2)) / 1024) if m else (0, 0)
    return lines[:-1], lines[-1]["summary"], cpu, rss


def ok(streams):
    return all(s["latency_ms"]["p95"] <= 100 and s["fps_analysed"] >= 0.9 * FPS for s in streams)


def python_ref(n, duration=DURATION):
    py = os.environ.get("LIVE_BENCH_PYTHON")
    if not py:
        return None
    p = subprocess.run(["/usr/bin/time", "-f", "TIME %P %M", py, str(ROOT / "bench" / "live" / "reference_live.py"),
                        MODEL, "--fps", str(FPS), "--duration", str(duration), *([url()] * n)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": p.stderr[-500:]}
    r = json.loads(p.stdout.strip().splitlines()[-1])
    m = re.search(r"TIME (\d+)%\s+(\d+)", p.stderr)
    r["cpu"], r["rss"] = (int(m.group(1)), int(m.group(2)) / 1024) if m else (0, 0)
    return r


def main():
    limit = model_limit()
    print(f"model limit {limit:.0f} fps", flush=True)
    rows, capacity, failures = [], 0, 0
    steps = [1, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40]
    with Server():
        time.sleep(1)
        for n in steps:
            streams, summary, cpu, rss = live(n)
            good = ok(streams)
            worst_p95 = max(s["latency_ms"]["p95"] for s in streams)
            min_fps = min(s["fps_analysed"] for s in streams)
            rows.append((n, good, min_fps, worst_p95, summary["fps_analysed"], summary["batch_size_mean"], cpu, rss))
            print(f"{n} streams: ok={good} min fps {min_fps:.2f} worst p95 {worst_p95:.0f} ms total "
                  f"{summary['fps_analysed']:.1f} fps batch {summary['batch_size_mean']:.2f} cpu {cpu}% rss {rss:.0f} MB",
                  flush=True)
            if good:
                capacity = n
                failures = 0
            else:
                # Two failures in a row end the search (one can be noise).
                failures += 1
                if failures == 2:
                    break
        over_n = max(2, 2 * capacity)
        prio = max(1, over_n // 4)
        streams, summary, cpu, rss = live(over_n, priority=prio)
        ps = [s for s in streams if s["priority"]]
        others = [s for s in streams if not s["priority"]]
        over = {
            "n": over_n, "priority": prio,
            "prio_min_fps": min(s["fps_analysed"] for s in ps),
            "prio_p95": max(s["latency_ms"]["p95"] for s in ps),
            "other_min_fps": min(s["fps_analysed"] for s in others) if others else 0,
            "total_fps": summary["fps_analysed"],
            "shed": summary["frames_shed"], "level": summary["max_shed_level"], "cpu": cpu, "rss": rss,
        }
        print("overload", over, flush=True)
        pyr = [(n, python_ref(n)) for n in sorted({1, max(1, capacity // 2), capacity}) if capacity]
        pyr = [(n, r) for n, r in pyr if r]
        for n, r in pyr:
            print("python", n, r, flush=True)
    report(limit, rows, capacity, over, pyr)


def report(limit, rows, capacity, over, pyr):
    cores = os.cpu_count()
    lines = [f"Measured {time.strftime('%Y-%m-%d')} on {cores} cores with `bench/live/run.sh`"
             f"{' --quick' if QUICK else ''}: {CLIP}.mp4 (640x480, 30 fps) served as RTSP/TCP cameras by "
             f"scripts/rtsp_server.py on the same machine (its CPU is included in nothing below but shares the "
             f"cores), {FPS:g} analysed fps per stream, yolox_nano.onnx, `peregrine live` defaults "
             f"(2 inference threads, batch 4), {DURATION} s per run. Model limit (`peregrine bench model`, best of "
             f"1x2 / 2x1 threads): **{limit:.0f} fps**.", "",
             "| streams | every stream ≥ 90 % fps and p95 ≤ 100 ms | slowest stream fps | worst p95 ms "
             "| total analysed fps | mean batch | CPU % | CPU % per stream | peak RSS MB | RSS MB per stream |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for n, good, mf, p95, tot, batch, cpu, rss in rows:
        lines.append(f"| {n} | {'yes' if good else 'no'} | {mf:.2f} | {p95:.0f} | {tot:.1f} | {batch:.2f} | {cpu} "
                     f"| {cpu / n:.0f} | {rss:.0f} | {rss / n:.1f} |")
    ratio = capacity * FPS / limit if limit else 0
    lines += ["", f"**Capacity**: {capacity} streams x {FPS:g} fps = {capacity * FPS:g} fps = **{ratio:.2f} x model "
                  f"limit** (goal ≥ 0.7).", "",
              f"**Overload** ({over['n']} streams, {over['priority']} priority): priority streams ≥ "
              f"{over['prio_min_fps']:.2f} fps (goal ≥ {0.9 * FPS:.1f}) at p95 ≤ {over['prio_p95']:.0f} ms "
              f"(goal ≤ 100); every other stream ≥ {over['other_min_fps']:.2f} fps (goal ≥ 1); total analysed "
              f"{over['total_fps']:.1f} fps = {over['total_fps'] / limit:.2f} x model limit (goal ≥ 0.8); "
              f"{over['shed']} frames shed, highest shedding level {over['level']}; CPU {over['cpu']} %, "
              f"RSS {over['rss']:.0f} MB."]
    if pyr:
        lines += ["", "Python reference (bench/live/reference_live.py: OpenCV capture thread per stream, one "
                      "onnxruntime session with 2 threads, same model, latest frame per stream at 5 fps):", "",
                  "| streams | slowest stream fps | worst p95 ms | CPU % | peak RSS MB |", "|---|---|---|---|---|"]
        for n, r in pyr:
            if "error" in r:
                lines.append(f"| {n} | failed: {r['error'][:80]} | | | |")
            else:
                lines.append(f"| {n} | {r['min_fps']:.2f} | {r['worst_p95_ms']:.0f} | {r['cpu']} | {r['rss']:.0f} |")
    section = "<!-- bench:live:start -->\n" + "\n".join(lines) + "\n<!-- bench:live:end -->"
    print(section)
    if QUICK:
        return
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text()
    if "<!-- bench:live:start -->" in text:
        text = re.sub(r"<!-- bench:live:start -->.*<!-- bench:live:end -->", lambda _: section, text, flags=re.S)
    else:
        text += "\n## Live streams (`bench/live/run.sh`)\n\n" + section + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
