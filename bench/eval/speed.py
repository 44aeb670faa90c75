#!/usr/bin/env python3
"""Speed of peregrine-eval against py-motmetrics, TrackEval and motrics, in
one run on the same inputs.

Workloads (built by common.build_inputs and below, seeded):
  parity  every sequence x tracker variant of parity.py (26 sequence
          evaluations: TUD-Campus, TUD-Stadtmitte, PETS09-S2L1, MOT17-04-mini8)
  long    TUD-Stadtmitte ground truth tiled 20 times (3580 frames, 22k boxes)
          against a perturbed copy (drops, swaps, jitter, false positives)

Each tool reads the files and computes its metrics; medians of N runs.
Python tools are timed in-process (imports excluded); peregrine-eval is timed
as a whole process per (group, variant) (start-up and file reads included).

Run: bench/.venv-eval/bin/python bench/eval/speed.py [--runs 5]
"""
import contextlib
import io
import statistics
import subprocess
import sys
import time

import numpy as np

import json

from common import (EVAL_DET, EVAL_MOT, OUT, SEED, build_inputs, coco_from_mot, coco_multiclass, mm,
                    perturb, read_mot, run_pycocotools, run_trackeval, write_mot)
import motrics


def add_long(groups):
    rng = np.random.default_rng(SEED + 1)
    src = read_mot(OUT / "mot15" / "gt" / "TUD-Stadtmitte" / "gt" / "gt.txt")
    n = max(int(r[0]) for r in src)
    rows = []
    for k in range(20):
        rows += [[r[0] + k * n, r[1] + 1000 * k] + r[2:] for r in src]
    gdir = OUT / "long"
    write_mot(gdir / "gt" / "TUD-Stadtmitte-x20" / "gt" / "gt.txt", rows)
    (gdir / "gt" / "TUD-Stadtmitte-x20" / "seqinfo.ini").write_text(
        f"[Sequence]\nname=TUD-Stadtmitte-x20\nseqLength={20 * n}\n")
    write_mot(gdir / "trackers" / "mix" / "data" / "TUD-Stadtmitte-x20.txt", perturb(rows, "mix", rng, 640, 480))
    return {"long": {"benchmark": "MOT15", "seqs": {"TUD-Stadtmitte-x20": 20 * n}, "variants": ["mix"]}}


def jobs(groups):
    for gname, g in groups.items():
        for variant in g["variants"]:
            seqs = {s: n for s, n in g["seqs"].items()
                    if (OUT / gname / "trackers" / variant / "data" / f"{s}.txt").exists()}
            gt_dir = OUT / gname / "gt"
            if len(seqs) < len(g["seqs"]):
                gt_dir = OUT / gname / f"gt-{variant}"
                gt_dir.mkdir(exist_ok=True)
                for s in seqs:
                    if not (gt_dir / s).exists():
                        (gt_dir / s).symlink_to(OUT / gname / "gt" / s)
            yield gname, g["benchmark"], variant, seqs, gt_dir


def motmetrics_all(js):
    out = {}
    for gname, _, variant, seqs, _ in js:
        accs = []
        for seq in seqs:
            gt = mm.io.loadtxt(str(OUT / gname / "gt" / seq / "gt" / "gt.txt"), fmt="mot15-2D", min_confidence=1)
            ts = mm.io.loadtxt(str(OUT / gname / "trackers" / variant / "data" / f"{seq}.txt"), fmt="mot15-2D")
            accs.append(mm.utils.compare_to_groundtruth(gt, ts, "iou", distth=0.5))
        s = mm.metrics.create().compute_many(accs, names=list(seqs), metrics=mm.metrics.motchallenge_metrics,
                                             generate_overall=True)
        out[(gname, variant)] = (float(s.loc["OVERALL", "mota"]), float(s.loc["OVERALL", "idf1"]))
    return out


def trackeval_all(js):
    return {(g, v): run_trackeval(OUT / g, seqs, v, b)["combined"]["hota"] for g, b, v, seqs, _ in js}


def motrics_all(js):
    out = {}
    for gname, bench, variant, seqs, _ in js:
        res = []
        for seq in seqs:
            gt_path = OUT / gname / "gt" / seq / "gt" / "gt.txt"
            pred = motrics.load_motchallenge(OUT / gname / "trackers" / variant / "data" / f"{seq}.txt")
            if bench == "MOT15":
                gi, gb, pi, pb = motrics.align_frames(motrics.load_motchallenge(gt_path, min_confidence=1), pred)
            else:
                gi, gb, pi, pb = motrics.preprocess_motchallenge(motrics.load_motchallenge_gt(gt_path), pred,
                                                                 benchmark=bench)
            res.append(motrics.evaluate(motrics.Frames(ids=gi, boxes=gb), motrics.Frames(ids=pi, boxes=pb)))
        out[(gname, variant)] = res
    return out


def peregrine_all(js):
    out = {}
    for gname, _, variant, _, gt_dir in js:
        p = subprocess.run([str(EVAL_MOT), str(gt_dir), str(OUT / gname / "trackers" / variant)],
                           check=True, capture_output=True)
        out[(gname, variant)] = p.stdout
    return out


def coco_cases(groups):
    cases = []
    for gname, bench, variant, seqs, _ in jobs(groups):
        gt, dt = coco_from_mot(OUT / gname, seqs, variant, bench)
        cases.append((OUT / gname / f"speed_gt_{variant}.json", OUT / gname / f"speed_dt_{variant}.json", gt, dt))
    gt, dt = coco_multiclass()
    cases.append((OUT / "speed_mc_gt.json", OUT / "speed_mc_dt.json", gt, dt))
    for gp, dp, gt, dt in cases:
        gp.write_text(json.dumps(gt))
        dp.write_text(json.dumps(dt))
    return cases


def pycocotools_all(cases):
    # From the JSON files, as a user would run it.
    return [run_pycocotools(json.loads(gp.read_text()), json.loads(dp.read_text()))["ap"]
            for gp, dp, _, _ in cases]


def peregrine_det_all(cases):
    return [subprocess.run([str(EVAL_DET), "coco", str(gp), str(dp)], check=True, capture_output=True).stdout
            for gp, dp, _, _ in cases]


def median_time(fn, js, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            fn(js)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
    groups = build_inputs()
    long_group = add_long(groups)
    workloads = {
        "parity (26 sequences)": list(jobs(groups)),
        "long (1 x 3580 frames)": list(jobs(long_group)),
    }
    tools = [
        ("py-motmetrics 1.4.0 (CLEAR+Identity)", motmetrics_all),
        ("TrackEval 1.3.0 (HOTA only)", trackeval_all),
        ("motrics 0.3.0 (CLEAR+Identity+HOTA)", motrics_all),
        ("peregrine-eval (CLEAR+Identity+HOTA)", peregrine_all),
    ]
    for js in workloads.values():  # warm-up: page cache, lazy imports
        for _, fn in tools:
            with contextlib.redirect_stdout(io.StringIO()):
                fn(js)
    results = {w: {name: median_time(fn, js, runs) for name, fn in tools} for w, js in workloads.items()}
    print(f"median of {runs} runs, seconds; ratio = tool time / peregrine-eval time\n")
    print("| workload | tool | median s | ratio |")
    print("|---|---|---:|---:|")
    for w, r in results.items():
        base = r["peregrine-eval (CLEAR+Identity+HOTA)"]
        for name, t in r.items():
            print(f"| {w} | {name} | {t:.4f} | {t / base:.1f}x |")
    # The numbers being timed agree (combined values of the long workload).
    js = workloads["long (1 x 3580 frames)"]
    pe = json.loads(peregrine_all(js)[("long", "mix")])["combined"]
    mmv = motmetrics_all(js)[("long", "mix")]
    tev = trackeval_all(js)[("long", "mix")]
    mo = motrics_all(js)[("long", "mix")][0]
    print(f"\nlong workload: MOTA motmetrics {mmv[0]:.6f} peregrine {pe['mota']:.6f} motrics {mo.clear.mota:.6f}; "
          f"IDF1 motmetrics {mmv[1]:.6f} peregrine {pe['idf1']:.6f}; "
          f"HOTA trackeval {tev:.6f} peregrine {pe['hota']:.6f} motrics {mo.hota.hota:.6f}")
    cases = coco_cases(groups)
    t_py = median_time(pycocotools_all, cases, runs)
    t_rs = median_time(peregrine_det_all, cases, runs)
    print(f"\n| detection ({len(cases)} COCO files) | pycocotools (AP/AR) | {t_py:.4f} | {t_py / t_rs:.1f}x |")
    print(f"| detection ({len(cases)} COCO files) | peregrine-eval (AP/AR) | {t_rs:.4f} | 1.0x |")
    # In-process time of the Rust library on the long workload (no process start-up).
    for gname, _, variant, _, gt_dir in workloads["long (1 x 3580 frames)"]:
        p = subprocess.run([str(EVAL_MOT), str(gt_dir), str(OUT / gname / "trackers" / variant),
                            "--repeat", "21"], check=True, capture_output=True, text=True)
        print(f"\nperegrine-eval in-process on long, median of 21: {float(p.stderr.split()[-1]):.4f} s")


if __name__ == "__main__":
    main()
