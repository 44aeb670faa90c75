"""Benchmark of `peregrine assemble` against ffmpeg (concat demuxer / concat filter).

Generates sources and shot lists (deterministic), then for each shot count
times both tools alternately, reports medians, ratios and peak RSS
(/usr/bin/time -v). Stdlib only. See bench/assemble/NOTES.md.
"""
import json
import os
import random
import statistics
import subprocess
import sys
import time

PEREGRINE = os.path.abspath(sys.argv[1])
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.environ.get("PEREGRINE_TEST_DATA", os.path.join(ROOT, "..", "shared", "data"))
VIDEOS = os.path.join(DATA, "videos")
WORK = os.environ.get("WORK", "/tmp/peregrine-assemble-bench")
SIZES = [int(s) for s in os.environ.get("SIZES", "500 1000 2000").split()]
REPEATS = int(os.environ.get("REPEATS", "3"))
NORM_REPEATS = int(os.environ.get("NORM_REPEATS", "1"))
NORM_SIZE = os.environ.get("NORM_SIZE", "640x360")
NORM_PRESET = os.environ.get("NORM_PRESET", "veryfast")
# ffmpeg's concat filter opens every input at once (about 17 MB each here):
# above this many shots it is not run, to keep the shared machine alive.
PATHS = os.environ.get("PATHS", "copy smart normalize mixed").split()
# Mixed row: shot counts timed against normalise-all and the concat filter,
# and the count whose peak memory alone is measured.
MIXED_SIZES = [int(s) for s in os.environ.get("MIXED_SIZES", "500").split()]
MIXED_MEMORY = int(os.environ.get("MIXED_MEMORY", "2000"))
FF_NORM_MAX = int(os.environ.get("FF_NORM_MAX", "500"))
CRF = "23"
FPS = "25"

# Shared videos with an audio track (the normalising path mixes them as they are).
WITH_AUDIO = [
    "sport_soccer_broadcast_1280x720.mp4",
    "sport_basketball_indoor_1280x720.mp4",
    "ped_pets09s2l1_campus_480x360.mp4",
    "gait_sideon_whitewall_640x352.mp4",
    "gait_sideon_livingroom_960x540.mp4",
]
NO_AUDIO = [
    "traffic_intersection_cctv_640x480.mp4",
    "traffic_highway_1280x720.mp4",
    "traffic_highway_cctv_320x240.avi",
    "ped_concourse_overhead_1280x720.mp4",
]


def sh(args, **kw):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


def ff(*args):
    sh(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args])


def duration(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
        check=True, capture_output=True, text=True).stdout
    return float(out.strip())


def prepare_sources():
    """Copy sources: 10 s each, 640x360 25 fps H.264 (GOP 1 s) + AAC stereo,
    identical encoder settings, so cuts on whole seconds are stream-copyable.
    Normalising sources: the shared videos as they are + two FFmpeg test sources."""
    os.makedirs(os.path.join(WORK, "src"), exist_ok=True)
    copy_srcs, norm_srcs = [], []
    inputs = [(os.path.join(VIDEOS, v), True) for v in WITH_AUDIO]
    inputs += [(os.path.join(VIDEOS, v), False) for v in NO_AUDIO]
    inputs += [("testsrc2=size=640x360:rate=25", False), ("mandelbrot=size=640x360:rate=25", False)]
    venc = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-r", "25",
            "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]
    aenc = ["-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2"]
    vf = "setpts=PTS-STARTPTS,fps=25,scale=640:360:force_original_aspect_ratio=decrease,pad=640:360:(ow-iw)/2:(oh-ih)/2,setsar=1,tpad=stop_mode=clone:stop_duration=2"
    for i, (src, has_audio) in enumerate(inputs):
        out = os.path.join(WORK, "src", f"copy{i:02d}.mp4")
        if not os.path.exists(out):
            if os.path.exists(src):
                loop = ["-stream_loop", "-1"] if duration(src) < 11 else []
                vin = [*loop, "-i", src]
            else:
                vin = ["-f", "lavfi", "-i", src]
            if has_audio:
                amap = ["-map", "0:v", "-map", "0:a"]
                ain = []
            else:
                ain = ["-f", "lavfi", "-i", f"sine=frequency={300 + 50 * i}:sample_rate=48000"]
                amap = ["-map", "0:v", "-map", "1:a"]
            ff(*vin, *ain, *amap, "-t", "10", "-frames:v", "250", "-vf", vf, *venc, *aenc, out)
        copy_srcs.append(out)
    for name in WITH_AUDIO:
        norm_srcs.append(os.path.join(VIDEOS, name))
    for j, (spec, size, rate) in enumerate([("testsrc2", "320x240", 30), ("mandelbrot", "800x600", 24)]):
        out = os.path.join(WORK, "src", f"norm_lavfi{j}.mp4")
        if not os.path.exists(out):
            ff("-f", "lavfi", "-i", f"{spec}=size={size}:rate={rate}",
               "-f", "lavfi", "-i", "sine=frequency=600:sample_rate=44100", "-t", "12",
               "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
               "-c:a", "aac", "-ac", "1", out)
        norm_srcs.append(out)
    return copy_srcs, [(s, duration(s)) for s in norm_srcs]


def prepare_sar_sources(copy_srcs):
    """The first three copy sources re-encoded with 4:3 pixels (otherwise
    identical settings): inserts whose only difference is their SAR."""
    out = []
    for i, src in enumerate(copy_srcs[:3]):
        p = os.path.join(WORK, "src", f"sar{i:02d}.mp4")
        if not os.path.exists(p):
            ff("-i", src, "-vf", "setsar=4/3", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
               "-pix_fmt", "yuv420p", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
               "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
               "-color_range", "tv", "-c:a", "copy", p)
        out.append(p)
    return out


def mixed_lists(n, srcs, sar_srcs):
    """One-second shots on whole seconds; every third from a SAR source."""
    rng = random.Random(2000 + n)
    shots = []
    for i in range(n):
        src = rng.choice(sar_srcs if i % 3 == 2 else srcs)
        start = rng.randint(0, 9)
        shots.append((src, start, start + 1))
    base = os.path.join(WORK, f"mixed{n}")
    with open(base + ".json", "w") as f:
        json.dump({"shots": [{"source": s, "in": a, "out": b} for s, a, b in shots]}, f)
    # The same list through ffmpeg's concat filter: 4:3 pixels shown 853x360,
    # so 640x270 letterboxed, like Peregrine's conversion.
    args, graph, pads = [], [], []
    for i, (s, a, b) in enumerate(shots):
        args += ["-ss", f"{a}", "-t", f"{b - a}", "-i", s]
        fit = "scale=640:270:flags=bicubic,pad=640:360:0:45," if s in sar_srcs else ""
        graph.append(f"[{i}:v]{fit}setsar=1,fps={FPS},format=yuv420p[v{i}];"
                     f"[{i}:a]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo[a{i}]")
        pads.append(f"[v{i}][a{i}]")
    graph.append("".join(pads) + f"concat=n={n}:v=1:a=1[v][a]")
    with open(base + ".filter", "w") as f:
        f.write(";\n".join(graph))
    return base, args, float(n)


def copy_lists(n, srcs, smart=False):
    """Cuts on whole seconds (keyframes), or with `smart` on arbitrary frames
    (25 to 75 frames long), which Peregrine's auto mode smart-cuts."""
    rng = random.Random(n + (7 if smart else 0))
    shots = []
    for _ in range(n):
        src = rng.choice(srcs)
        if smart:
            d = rng.randint(25, 75)
            start = rng.randint(0, 250 - d)
            shots.append((src, start / 25, (start + d) / 25))
        else:
            d = rng.choice([1, 2, 3])
            start = rng.randint(0, 10 - d)
            shots.append((src, start, start + d))
    base = os.path.join(WORK, f"{'smart' if smart else 'copy'}{n}")
    with open(base + ".json", "w") as f:
        json.dump({"shots": [{"source": s, "in": a, "out": b} for s, a, b in shots]}, f)
    with open(base + ".ffconcat", "w") as f:
        f.write("ffconcat version 1.0\n")
        for s, a, b in shots:
            f.write(f"file '{s}'\ninpoint {a}\noutpoint {b}\n")
    return base, sum(b - a for _, a, b in shots)


def norm_lists(n, srcs):
    rng = random.Random(1000 + n)
    shots = []
    for _ in range(n):
        src, dur = rng.choice(srcs)
        d = round(rng.uniform(1.0, 3.0), 2)
        d = min(d, dur - 0.2)
        start = round(rng.uniform(0, dur - d - 0.1), 2)
        shots.append((src, start, round(start + d, 2)))
    base = os.path.join(WORK, f"norm{n}")
    with open(base + ".json", "w") as f:
        json.dump({"shots": [{"source": s, "in": a, "out": b} for s, a, b in shots]}, f)
    w, h = NORM_SIZE.split("x")
    args, graph, pads = [], [], []
    for i, (s, a, b) in enumerate(shots):
        args += ["-ss", f"{a}", "-t", f"{b - a:.2f}", "-i", s]
        graph.append(
            f"[{i}:v]scale={w}:{h}:force_original_aspect_ratio=decrease:flags=bicubic,"
            f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={FPS},format=yuv420p[v{i}];"
            f"[{i}:a]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo[a{i}]")
        pads.append(f"[v{i}][a{i}]")
    graph.append("".join(pads) + f"concat=n={n}:v=1:a=1[v][a]")
    with open(base + ".filter", "w") as f:
        f.write(";\n".join(graph))
    with open(base + ".args", "w") as f:
        json.dump(args, f)
    return base, sum(b - a for _, a, b in shots)


def timed(cmd):
    """Runs cmd under /usr/bin/time -v; returns (seconds, peak RSS MB, ok, error)."""
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    secs = time.monotonic() - t0
    rss = 0.0
    for line in p.stderr.splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.split(":")[1]) / 1024
    own = [l for l in p.stderr.split("\tCommand being timed")[0].splitlines()
           if l.strip() and not l.startswith("Command exited")]
    return secs, rss, p.returncode == 0, " ".join(own[-1:])


def measure(name, cmds, repeats, out_paths):
    """Alternates the commands `repeats` times; median seconds, max RSS."""
    times = {k: [] for k in cmds}
    rss = {k: 0.0 for k in cmds}
    ok = {k: True for k in cmds}
    err = {k: "" for k in cmds}
    for _ in range(repeats):
        for k, cmd in cmds.items():
            if os.path.exists(out_paths[k]):
                os.remove(out_paths[k])
            s, r, good, tail = timed(cmd)
            times[k].append(s)
            rss[k] = max(rss[k], r)
            if not good:
                ok[k], err[k] = False, tail
            elif (name, k) not in durs:
                durs[(name, k)] = duration(out_paths[k])
    return {k: (statistics.median(times[k]), rss[k], ok[k], err[k]) for k in cmds}


durs = {}


def main():
    os.makedirs(WORK, exist_ok=True)
    copy_srcs, norm_srcs = prepare_sources()
    w, h = NORM_SIZE.split("x")
    rows, smart_rows = [], []
    for n in SIZES if "copy" in PATHS else []:
        base, expect = copy_lists(n, copy_srcs)
        outs = {"peregrine": base + ".pg.mp4", "ffmpeg": base + ".ff.mp4"}
        r = measure(f"copy{n}", {
            "peregrine": [PEREGRINE, "assemble", base + ".json", "-o", outs["peregrine"], "--mode", "copy", "--json"],
            "ffmpeg": ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
                       "-i", base + ".ffconcat", "-c", "copy", outs["ffmpeg"]],
        }, REPEATS, outs)
        rows.append(("copy", n, expect, r, f"copy{n}"))
        print_row(rows[-1], flush=True)
    # Off-keyframe cuts. ffmpeg's concat demuxer with -c copy is not frame
    # accurate here (it starts each shot at the keyframe before the in point,
    # see its output duration); it is the speed reference, not a peer.
    for n in SIZES if "smart" in PATHS else []:
        base, expect = copy_lists(n, copy_srcs, smart=True)
        outs = {"peregrine": base + ".pg.mp4", "ffmpeg": base + ".ff.mp4", "normalize": base + ".norm.mp4"}
        enc = ["--crf", CRF, "--preset", NORM_PRESET, "--json"]
        r = measure(f"smart{n}", {
            "peregrine": [PEREGRINE, "assemble", base + ".json", "-o", outs["peregrine"], "--mode", "auto", *enc],
            "ffmpeg": ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
                       "-i", base + ".ffconcat", "-c", "copy", outs["ffmpeg"]],
            # The frame-accurate alternative: re-encode every frame.
            "normalize": [PEREGRINE, "assemble", base + ".json", "-o", outs["normalize"], "--mode", "normalize",
                          *enc],
        }, NORM_REPEATS, outs)
        rows.append(("smart cut", n, expect, r, f"smart{n}"))
        smart_rows.append((n, r))
        print_row(rows[-1], flush=True)
    for n in SIZES if "normalize" in PATHS else []:
        base, expect = norm_lists(n, norm_srcs)
        outs = {"peregrine": base + ".pg.mp4", "ffmpeg": base + ".ff.mp4"}
        with open(base + ".args") as f:
            inputs = json.load(f)
        cmds = {
            "peregrine": [PEREGRINE, "assemble", base + ".json", "-o", outs["peregrine"], "--mode", "normalize",
                          "--size", NORM_SIZE, "--fps", FPS, "--crf", CRF, "--preset", NORM_PRESET, "--json"],
            "ffmpeg": ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *inputs,
                       "-filter_complex_script", base + ".filter", "-map", "[v]", "-map", "[a]",
                       "-c:v", "libx264", "-crf", CRF, "-preset", NORM_PRESET, "-c:a", "aac", "-b:a", "128k",
                       outs["ffmpeg"]],
        }
        if n > FF_NORM_MAX:
            del cmds["ffmpeg"]
        r = measure(f"norm{n}", cmds, NORM_REPEATS, outs)
        r.setdefault("ffmpeg", (0.0, 0.0, False, f"not run (> FF_NORM_MAX={FF_NORM_MAX} inputs)"))
        rows.append(("normalize", n, expect, r, f"norm{n}"))
        print_row(rows[-1], flush=True)
    mixed_rows = []
    if "mixed" in PATHS:
        sar_srcs = prepare_sar_sources(copy_srcs)
        enc = ["--crf", CRF, "--preset", NORM_PRESET, "--json"]
        for n in MIXED_SIZES:
            base, inputs, expect = mixed_lists(n, copy_srcs, sar_srcs)
            outs = {"peregrine": base + ".pg.mp4", "ffmpeg": base + ".ff.mp4", "normalize": base + ".norm.mp4"}
            cmds = {
                "peregrine": [PEREGRINE, "assemble", base + ".json", "-o", outs["peregrine"], "--mode", "auto", *enc],
                # Today's behaviour for such a list: every frame decoded and encoded again.
                "normalize": [PEREGRINE, "assemble", base + ".json", "-o", outs["normalize"], "--mode", "normalize",
                              *enc],
                "ffmpeg": ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *inputs,
                           "-filter_complex_script", base + ".filter", "-map", "[v]", "-map", "[a]",
                           "-c:v", "libx264", "-crf", CRF, "-preset", NORM_PRESET, "-c:a", "aac", "-b:a", "128k",
                           outs["ffmpeg"]],
            }
            if n > FF_NORM_MAX:
                del cmds["ffmpeg"]
            r = measure(f"mixed{n}", cmds, NORM_REPEATS, outs)
            r.setdefault("ffmpeg", (0.0, 0.0, False, f"not run (> FF_NORM_MAX={FF_NORM_MAX} inputs)"))
            rows.append(("mixed", n, expect, r, f"mixed{n}"))
            mixed_rows.append((n, r))
            print_row(rows[-1], flush=True)
        if MIXED_MEMORY:
            base, _, expect = mixed_lists(MIXED_MEMORY, copy_srcs, sar_srcs)
            out = base + ".pg.mp4"
            r = measure(f"mixed{MIXED_MEMORY}", {"peregrine": [PEREGRINE, "assemble", base + ".json", "-o", out,
                                                               "--mode", "auto", *enc]}, 1, {"peregrine": out})
            mixed_rows.append((MIXED_MEMORY, r))
    print()
    print(f"| path | shots | sum of shots (s) | peregrine (s) | ffmpeg (s) | ratio | peregrine out (s) | ffmpeg out (s) | peregrine RSS (MB) | ffmpeg RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(table_row(row))
    if smart_rows:
        print()
        print("| smart cut vs re-encoding every frame | peregrine auto (s) | peregrine normalize (s) | speed-up | RSS auto / normalize (MB) |")
        print("|---|---|---|---|---|")
        for n, r in smart_rows:
            a, z = r["peregrine"], r["normalize"]
            up = f"{z[0] / a[0]:.2f}" if a[2] and z[2] else "n/a"
            print(f"| {n} shots | {a[0]:.2f} | {z[0]:.2f} | {up} | {a[1]:.0f} / {z[1]:.0f} |")
    if mixed_rows:
        print_mixed(mixed_rows)


def print_mixed(mixed_rows):
    print()
    print("| mixed: a third of the shots differ in SAR | shots | auto (s) | normalise-all (s) | auto / normalise-all "
          "| ffmpeg concat filter (s) | auto / ffmpeg | out (s) | RSS auto / normalise / ffmpeg (MB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, r in mixed_rows:
        a = r["peregrine"]
        z = r.get("normalize", (0.0, 0.0, False, "not run"))
        f = r.get("ffmpeg", (0.0, 0.0, False, "not run"))
        t = lambda x: f"{x[0]:.2f}" if x[2] else "not run"
        q = lambda x, y: f"{x[0] / y[0]:.2f}" if x[2] and y[2] else "n/a"
        d = f"{durs[(f'mixed{n}', 'peregrine')]:.2f}" if (f"mixed{n}", "peregrine") in durs else "-"
        m = lambda x: f"{x[1]:.0f}" if x[2] else "-"
        print(f"| auto copies 2/3, encodes 1/3 | {n} | {t(a)} | {t(z)} | {q(a, z)} | {t(f)} | {q(a, f)} | {d} | "
              f"{m(a)} / {m(z)} / {m(f)} |")


def table_row(row):
    path, n, expect, r, key = row
    pg, ffm = r["peregrine"], r["ffmpeg"]
    def t(x):
        return f"{x[0]:.2f}" if x[2] else (x[3] if x[3].startswith("not run") else f"failed ({x[3][:60]})")
    ratio = f"{pg[0] / ffm[0]:.2f}" if pg[2] and ffm[2] else "n/a"
    d = lambda k: f"{durs[(key, k)]:.2f}" if (key, k) in durs else "-"
    return (f"| {path} | {n} | {expect:.2f} | {t(pg)} | {t(ffm)} | {ratio} | {d('peregrine')} | "
            f"{d('ffmpeg')} | {pg[1]:.0f} | {ffm[1]:.0f} |")


def print_row(row, flush=False):
    print(table_row(row), file=sys.stderr, flush=flush)


if __name__ == "__main__":
    main()
