#!/usr/bin/env python3
"""Driver for bench/live/run.sh: capacity, overload and cost per stream of
`peregrine live` on RTSP cameras (scripts/rtsp_server.py), against the model
limit that bench/run.sh measures (`peregrine bench model`); decode-side
shedding (decode cost per skip level, and overload on a camera-like 1 s GOP
encoding of the clip with and without it) and motion gating (cameras with
idle periods, with and without the gate), each pair side by side.

Variants of the clip are made at bench time with the ffmpeg CLI in a
temporary folder (never committed):
  CLIP_gop30   the clip re-encoded as many IP cameras send it: a keyframe
               every second, no B-frames.
  CLIP_idleA/B the clip with 10 s freeze-frame segments every 20 s (A moves
               in the first half of each 20 s, B in the second), so half of
               the cameras are idle at any time.

`--streams N` skips the capacity search and runs only the side-by-side
pairs (decode-side shedding at N streams, N/4 priority, on the 1 s GOP
variant and on the sample; motion gating at N streams, or M with
`--gate-streams M`), printing them."""

import json
import os
import re
import shutil
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
FIXED = int(sys.argv[sys.argv.index("--streams") + 1]) if "--streams" in sys.argv else None
GATE_N = int(sys.argv[sys.argv.index("--gate-streams") + 1]) if "--gate-streams" in sys.argv else None
GATE_DURATION = 30
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


GOP30 = f"{CLIP}_gop30"
IDLE = (f"{CLIP}_idleA", f"{CLIP}_idleB")


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def make_clips(videos):
    """The served clips: the sample, and its variants (module docstring)."""
    src = DATA / "videos" / f"{CLIP}.mp4"
    os.symlink(src, videos / f"{CLIP}.mp4")
    x264 = ["-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-profile:v", "main", "-bf", "0", "-crf", "23"]
    ffmpeg("-i", str(src), *x264, "-g", "30", "-sc_threshold", "0", str(videos / f"{GOP30}.mp4"))
    # Frames of the idle halves are dropped and `fps` repeats the last kept
    # one: a frozen picture, as a still scene gives.
    moves = {IDLE[0]: "lt(mod(t,20),10)", IDLE[1]: "gte(mod(t,20),10)+eq(n,0)"}
    for name, expr in moves.items():
        ffmpeg("-i", str(src), "-vf", f"select='{expr}',fps=30", *x264, "-g", "128",
               str(videos / f"{name}.mp4"))


class Server:
    def __init__(self, videos):
        self.videos = videos

    def __enter__(self):
        only = ",".join([CLIP, GOP30, *IDLE])
        self.p = subprocess.Popen(["/usr/bin/python3", str(ROOT / "scripts" / "rtsp_server.py"), "--port", str(PORT),
                                   "--only", only, "--loop", "3", "--videos", str(self.videos)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.p.stdout.readline()
        if not line.startswith("ready"):
            sys.exit("bench: rtsp_server.py did not start")
        return self

    def cpu_seconds(self):
        """User + system CPU seconds the server has used so far."""
        fields = Path(f"/proc/{self.p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *_):
        self.p.kill()
        self.p.wait()


SERVER = None


def url(clip=CLIP):
    return f"rtsp://127.0.0.1:{PORT}/{clip}"


def live(n, priority=0, duration=DURATION, clips=(CLIP,), extra=()):
    """`peregrine live` on n cameras (cycling through `clips`): per-stream
    lines, the summary, its CPU % and peak RSS MB, and the server's CPU %."""
    names = [f"s{i}" for i in range(n)]
    with tempfile.TemporaryDirectory() as d:
        cmd = ["/usr/bin/time", "-f", "TIME %P %M", BIN, "live", *[url(clips[i % len(clips)]) for i in range(n)],
               "--name", ",".join(names), "--fps", str(FPS), "--duration", str(duration), "--model", MODEL,
               "--db", f"{d}/live.db", "--json", *extra]
        if priority:
            cmd += ["--priority", ",".join(names[:priority])]
        cpu0, t0 = SERVER.cpu_seconds(), time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True)
        server_cpu = 100 * (SERVER.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    if not lines or "summary" not in lines[-1]:
        sys.exit(f"bench: peregrine live failed:\n{p.stderr[-2000:]}")
    m = re.search(r"TIME (\d+)%\s+(\d+)", p.stderr)
    cpu, rss = (int(m.group(1)), int(m.group(2)) / 1024) if m else (0, 0)
    SERVER.last_cpu = server_cpu
    return lines[:-1], lines[-1]["summary"], cpu, rss


def ok(streams):
    return all(s["latency_ms"]["p95"] <= 100 and s["fps_analysed"] >= 0.9 * FPS for s in streams)


def decode_costs(videos):
    """CPU of decoding one second of each clip at each skip level (ffmpeg,
    one thread, the same libavcodec): (clip, level, frames decoded of the
    clip, % of a core per real-time stream)."""
    out = []
    for clip in (CLIP, GOP30, "traffic_highway_1280x720"):
        path = videos / f"{clip}.mp4" if (videos / f"{clip}.mp4").exists() else DATA / "videos" / f"{clip}.mp4"
        dur = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                                    str(path)], capture_output=True, text=True, check=True).stdout)
        for level in ("default", "noref", "nokey"):
            best = None
            for _ in range(3):
                p = subprocess.run(["ffmpeg", "-hide_banner", "-threads", "1", "-skip_frame", level, "-benchmark",
                                    "-i", str(path), "-vsync", "passthrough", "-f", "null", "-"],
                                   capture_output=True, text=True, check=True)
                frames = int(re.findall(r"frame=\s*(\d+)", p.stderr)[-1])
                utime = float(re.search(r"utime=([\d.]+)s", p.stderr).group(1))
                best = min(best or utime, utime)
            out.append((clip, level, frames, 100 * best / dur))
    return out


def overload_row(streams, summary, cpu, rss):
    ps = [s for s in streams if s["priority"]]
    others = [s for s in streams if not s["priority"]]
    return {
        "n": len(streams), "priority": len(ps),
        "prio_min_fps": min(s["fps_analysed"] for s in ps),
        "prio_p95": max(s["latency_ms"]["p95"] for s in ps),
        "other_min_fps": min(s["fps_analysed"] for s in others) if others else 0,
        "total_fps": summary["fps_analysed"],
        "shed": summary["frames_shed"], "level": summary["max_shed_level"], "cpu": cpu, "rss": rss,
        "skipped": summary.get("frames_skipped", 0), "received": summary["frames_received"],
        "server_cpu": SERVER.last_cpu,
    }


def gate_row(streams, summary, cpu):
    """Motion-gated streams keep up when analysed + gated frames reach 90 %
    of their fps (a gated frame is one the detector did not need)."""
    secs = [max(s["connected_s"], 1e-9) for s in streams]
    kept = [(s["frames_analysed"] + s["frames_gated"]) / t for s, t in zip(streams, secs)]
    return {
        "n": len(streams), "ok": all(s["latency_ms"]["p95"] <= 100 for s in streams) and min(kept) >= 0.9 * FPS,
        "min_fps": min(kept), "p95": max(s["latency_ms"]["p95"] for s in streams),
        "analysed": summary["frames_analysed"], "gated": summary["frames_gated"],
        "detections": sum(s["detections"] for s in streams), "cpu": cpu, "server_cpu": SERVER.last_cpu,
    }


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
    global SERVER
    load_before = os.getloadavg()
    videos = Path(tempfile.mkdtemp(prefix="peregrine-live-bench-"))
    try:
        make_clips(videos)
        if FIXED:
            limit = model_limit()
            print(f"model limit {limit:.0f} fps", flush=True)
            with Server(videos) as server:
                SERVER = server
                time.sleep(1)
                pairs(FIXED)
            return
        costs = decode_costs(videos)
        for c in costs:
            print("decode", c, flush=True)
        limit = model_limit()
        print(f"model limit {limit:.0f} fps", flush=True)
        with Server(videos) as server:
            SERVER = server
            time.sleep(1)
            rows, capacity, over, pyr, gop, gate = measure()
    finally:
        shutil.rmtree(videos, ignore_errors=True)
    load = (load_before, os.getloadavg())
    report(limit, rows, capacity, over, pyr, costs, gop, gate, load)


def measure():
    rows, capacity, failures = [], 0, 0
    steps = [1, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40]
    if QUICK:
        steps = [1, 4, 8, 12, 16]
    for n in steps:
        streams, summary, cpu, rss = live(n)
        good = ok(streams)
        worst_p95 = max(s["latency_ms"]["p95"] for s in streams)
        min_fps = min(s["fps_analysed"] for s in streams)
        rows.append((n, good, min_fps, worst_p95, summary["fps_analysed"], summary["batch_size_mean"], cpu, rss,
                     SERVER.last_cpu))
        print(f"{n} streams: ok={good} min fps {min_fps:.2f} worst p95 {worst_p95:.0f} ms total "
              f"{summary['fps_analysed']:.1f} fps batch {summary['batch_size_mean']:.2f} cpu {cpu}% rss {rss:.0f} MB "
              f"server cpu {SERVER.last_cpu:.0f}%", flush=True)
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
    over = overload_row(*live(over_n, priority=prio))
    print("overload", over, flush=True)
    gop, gate = pairs(over_n, capacity)
    pyr = [(n, python_ref(n)) for n in sorted({1, max(1, capacity // 2), capacity}) if capacity]
    pyr = [(n, r) for n, r in pyr if r]
    for n, r in pyr:
        print("python", n, r, flush=True)
    return rows, capacity, over, pyr, gop, gate


def pairs(over_n, capacity=None):
    """The overload of `over_n` cameras on the 1 s GOP variant, decode-side
    shedding on and off, and motion gating on 1.5 x capacity cameras
    (`over_n` with --streams) idle half the time, gate off and on: each
    pair side by side."""
    prio = max(1, over_n // 4)
    gop = [overload_row(*live(over_n, priority=prio, clips=(GOP30,), extra=x)) for x in ((), ("--decode-all",))]
    print("overload gop30", gop, flush=True)
    if FIXED:
        base = [overload_row(*live(over_n, priority=prio, extra=x)) for x in ((), ("--decode-all",))]
        print("overload sample", base, flush=True)
    gate_n = GATE_N or (max(2, (3 * capacity + 1) // 2) if capacity else over_n)
    gate = []
    for extra in ((), ("--motion-gate",)):
        streams, summary, cpu, _ = live(gate_n, clips=IDLE, extra=extra, duration=GATE_DURATION)
        gate.append(gate_row(streams, summary, cpu))
    print("motion gate", gate, flush=True)
    return gop, gate


def report(limit, rows, capacity, over, pyr, costs, gop, gate, load):
    cores = os.cpu_count()
    lines = [f"Measured {time.strftime('%Y-%m-%d')} on {cores} cores with `bench/live/run.sh`"
             f"{' --quick' if QUICK else ''}: {CLIP}.mp4 (640x480, 30 fps) served as RTSP/TCP cameras by "
             f"scripts/rtsp_server.py on the same machine (its CPU is included in nothing below but shares the "
             f"cores), {FPS:g} analysed fps per stream, yolox_nano.onnx, `peregrine live` defaults "
             f"(2 inference threads, batch 4), {DURATION} s per run. Model limit (`peregrine bench model`, best of "
             f"1x2 / 2x1 threads): **{limit:.0f} fps**. Load average (1 min) {load[0][0]:.2f} before, "
             f"{load[1][0]:.2f} after.", "",
             "| streams | every stream ≥ 90 % fps and p95 ≤ 100 ms | slowest stream fps | worst p95 ms "
             "| total analysed fps | mean batch | CPU % | CPU % per stream | peak RSS MB | RSS MB per stream "
             "| RTSP server CPU % |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, good, mf, p95, tot, batch, cpu, rss, scpu in rows:
        lines.append(f"| {n} | {'yes' if good else 'no'} | {mf:.2f} | {p95:.0f} | {tot:.1f} | {batch:.2f} | {cpu} "
                     f"| {cpu / n:.0f} | {rss:.0f} | {rss / n:.1f} | {scpu:.0f} |")
    ratio = capacity * FPS / limit if limit else 0
    lines += ["", f"**Capacity**: {capacity} streams x {FPS:g} fps = {capacity * FPS:g} fps = **{ratio:.2f} x model "
                  f"limit** (goal ≥ 0.7).", "",
              f"**Overload** ({over['n']} streams, {over['priority']} priority): priority streams ≥ "
              f"{over['prio_min_fps']:.2f} fps (goal ≥ {0.9 * FPS:.1f}) at p95 ≤ {over['prio_p95']:.0f} ms "
              f"(goal ≤ 100); every other stream ≥ {over['other_min_fps']:.2f} fps (goal ≥ 1); total analysed "
              f"{over['total_fps']:.1f} fps = {over['total_fps'] / limit:.2f} x model limit (goal ≥ 0.8); "
              f"{over['shed']} frames shed, highest shedding level {over['level']}; {over['skipped']} of "
              f"{over['received']} frames received left undecoded; CPU {over['cpu']} %, RSS {over['rss']:.0f} MB, "
              f"RTSP server CPU {over['server_cpu']:.0f} %."]
    lines += ["", "Decode cost per skip level (`ffmpeg -threads 1 -skip_frame LEVEL -benchmark`, same libavcodec; "
                  "best of 3): % of one core per real-time stream.", "",
              "| clip | decode all | non-reference skipped (`noref`) | keyframes only (`nokey`) |", "|---|---|---|---|"]
    for clip in dict.fromkeys(c[0] for c in costs):
        cells = [f"{pct:.2f} % ({frames} frames)" for c, _, frames, pct in costs if c == clip]
        lines.append(f"| {clip} | " + " | ".join(cells) + " |")
    lines += ["", f"Overload on camera-like streams ({GOP30}: keyframe every second, no B-frames), same "
                  f"{gop[0]['n']} streams / {gop[0]['priority']} priority, side by side:", "",
              "| decoding | priority min fps | priority p95 ms | others min fps | total fps | x model limit "
              "| frames left undecoded | CPU % | RTSP server CPU % |", "|---|---|---|---|---|---|---|---|---|"]
    for name, g in zip(("skips what the rate does not need (default)", "every frame (`--decode-all`)"), gop):
        lines.append(f"| {name} | {g['prio_min_fps']:.2f} | {g['prio_p95']:.0f} | {g['other_min_fps']:.2f} "
                     f"| {g['total_fps']:.1f} | {g['total_fps'] / limit:.2f} | {g['skipped']} of {g['received']} "
                     f"| {g['cpu']} | {g['server_cpu']:.0f} |")
    lines += ["", f"Motion gating: {gate[0]['n']} cameras idle half the time ({IDLE[0]}/{IDLE[1]}: 10 s frozen in "
                  f"every 20 s, alternating), {GATE_DURATION} s runs side by side. A gated frame counts as kept up with.", "",
              "| | every stream ≥ 90 % fps and p95 ≤ 100 ms | slowest stream fps | worst p95 ms | frames analysed "
              "| frames gated | detections stored | CPU % |", "|---|---|---|---|---|---|---|---|"]
    for name, g in zip(("no gate", "`--motion-gate`"), gate):
        lines.append(f"| {name} | {'yes' if g['ok'] else 'no'} | {g['min_fps']:.2f} | {g['p95']:.0f} "
                     f"| {g['analysed']} | {g['gated']} | {g['detections']} | {g['cpu']} |")
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
