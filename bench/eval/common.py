"""Shared helpers for the evaluation parity and speed scripts.

Builds the inputs (real ground truth and tracker outputs, plus seeded
perturbations) in a MOTChallenge/TrackEval folder layout under bench/out/eval,
and runs each reference tool on them.
"""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

# motmetrics 1.4.0 predates numpy 2 (np.asfarray was removed there).
if not hasattr(np, "asfarray"):
    np.asfarray = lambda a, dtype=float: np.asarray(a, dtype=dtype)

import motmetrics as mm  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out" / "eval"
DATA = Path(os.environ.get("PEREGRINE_TEST_DATA", ROOT.parent / "shared" / "data"))
MM_DATA = Path(mm.__file__).parent / "data"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target-eval"))
EVAL_MOT = TARGET / "release" / "examples" / "eval_mot"
EVAL_DET = TARGET / "release" / "examples" / "eval_det"
SEED = 20261122
# Peregrine's own ByteTrack tracks and YOLOX-Nano detections on PETS09-S2L1
# (frames 1-124), written by bench/track (see its scripts).
TRACK_OUT = ROOT / "bench" / "out" / "track"


def read_mot(path):
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            rows.append([float(v) for v in line.replace(" ", ",").split(",") if v != ""])
    return rows


def write_mot(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in rows:
            f.write(",".join(_fmt(v) for v in r) + "\n")


def _fmt(v):
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def shift(rows):
    """A deterministic perturbation that crates/eval/tests reproduces in Rust
    (tests/reference.rs, `shifted`): drop every 7th row (file order, from
    index 3), move odd ids 3 px right, widen ids divisible by 3 by 10 %,
    confidence 1, -1 world coordinates."""
    out = []
    for i, r in enumerate(rows):
        if i % 7 == 3:
            continue
        x, w = r[2], r[4]
        if int(r[1]) % 2 == 1:
            x = x + 3.0
        if int(r[1]) % 3 == 0:
            w = w * 1.1
        out.append([r[0], r[1], x, r[3], w, r[5], 1, -1, -1, -1])
    return out


def perturb(rows, kind, rng, width=1920, height=1080):
    """Tracker output derived from ground truth or from another tracker:
    drop boxes, swap ids, jitter boxes, add false positives. 10 columns,
    confidence in column 7, -1 world coordinates."""
    out = []
    ids = sorted({int(r[1]) for r in rows})
    swap_at = {}
    if kind in ("swap", "mix") and len(ids) >= 2:
        frames = sorted({int(r[0]) for r in rows})
        for _ in range(max(1, len(ids) // 2)):
            a, b = rng.choice(ids, 2, replace=False)
            f0 = int(rng.choice(frames))
            swap_at[(int(a), int(b))] = f0
    for r in rows:
        frame, tid, x, y, w, h = int(r[0]), int(r[1]), r[2], r[3], r[4], r[5]
        if kind in ("drop", "mix") and rng.random() < 0.15:
            continue
        for (a, b), f0 in swap_at.items():
            if frame >= f0:
                if tid == a:
                    tid = b + 100000
                elif tid == b:
                    tid = a + 100000
        tid = tid % 100000 + (1000 if tid >= 100000 else 0)
        if kind in ("jitter", "mix"):
            s = 0.06 if kind == "jitter" else 0.12
            x += rng.normal(0, s * w)
            y += rng.normal(0, s * h)
            w = max(1.0, w * (1 + rng.normal(0, s)))
            h = max(1.0, h * (1 + rng.normal(0, s)))
        conf = float(np.round(rng.uniform(0.3, 1.0), 3))
        out.append([frame, tid, round(x, 2), round(y, 2), round(w, 2), round(h, 2), conf, -1, -1, -1])
    if kind == "mix":
        frames = sorted({int(r[0]) for r in rows})
        for k in range(max(5, len(rows) // 20)):
            w, h = rng.uniform(20, 120), rng.uniform(40, 240)
            out.append([int(rng.choice(frames)), 5000 + k, round(rng.uniform(0, width - w), 2),
                        round(rng.uniform(0, height - h), 2), round(w, 2), round(h, 2),
                        float(np.round(rng.uniform(0.05, 0.6), 3)), -1, -1, -1])
    out.sort(key=lambda r: (r[0], r[1]))
    # Ids must be unique per frame (both references require it).
    seen, uniq = set(), []
    for r in out:
        if (r[0], r[1]) not in seen:
            seen.add((r[0], r[1]))
            uniq.append(r)
    return uniq


def seq_length(*files):
    return max(int(r[0]) for f in files for r in read_mot(f))


def build_inputs():
    """Writes OUT/<group>/gt/<seq>/{gt/gt.txt,seqinfo.ini} and
    OUT/<group>/trackers/<variant>/data/<seq>.txt. Groups: mot15 (TUD-Campus,
    TUD-Stadtmitte, PETS09-S2L1), mot17 (MOT17-04-mini8). Returns
    {group: {"benchmark", "seqs", "variants"}}."""
    rng = np.random.default_rng(SEED)
    if OUT.exists():
        shutil.rmtree(OUT)
    groups = {"mot15": {"benchmark": "MOT15", "seqs": {}, "variants": set()},
              "mot17": {"benchmark": "MOT17", "seqs": {}, "variants": set()}}

    def add(group, seq, gt_src, trackers, length=None):
        g = groups[group]
        d = OUT / group / "gt" / seq
        (d / "gt").mkdir(parents=True, exist_ok=True)
        shutil.copy(gt_src, d / "gt" / "gt.txt")
        length = length or seq_length(gt_src, *[t for t in trackers.values() if isinstance(t, Path)])
        for name, rows in trackers.items():
            p = OUT / group / "trackers" / name / "data" / f"{seq}.txt"
            if isinstance(rows, Path):
                p.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(rows, p)
            else:
                write_mot(p, rows)
            g["variants"].add(name)
        # A length covering every row of every tracker.
        length = max([length] + [seq_length(OUT / group / "trackers" / n / "data" / f"{seq}.txt")
                                 for n in trackers if read_mot(OUT / group / "trackers" / n / "data" / f"{seq}.txt")])
        (d / "seqinfo.ini").write_text(f"[Sequence]\nname={seq}\nseqLength={length}\n")
        g["seqs"][seq] = length

    for seq in ("TUD-Campus", "TUD-Stadtmitte"):
        gt = MM_DATA / seq / "gt.txt"
        test = MM_DATA / seq / "test.txt"
        trk = read_mot(test)
        add("mot15", seq, gt, {
            "shipped": test,
            "gt-shift": shift(read_mot(gt)),
            "shipped-mix": perturb(trk, "mix", rng, 640, 480),
            "gt-jitter": perturb(read_mot(gt), "jitter", rng, 640, 480),
            "gt-drop": perturb(read_mot(gt), "drop", rng, 640, 480),
            "gt-swap": perturb(read_mot(gt), "swap", rng, 640, 480),
            "gt-mix": perturb(read_mot(gt), "mix", rng, 640, 480),
        })
    pets = DATA / "mot" / "PETS09-S2L1-480x360"
    if pets.exists():
        gt = pets / "gt" / "gt.txt"
        rows = read_mot(gt)
        own = TRACK_OUT / "peregrine.txt"
        extra = {"peregrine-bytetrack": own} if own.exists() else {}
        add("mot15", "PETS09-S2L1", gt, {
            **extra,
            "gt-shift": shift(rows),
            "gt-jitter": perturb(rows, "jitter", rng, 480, 360),
            "gt-drop": perturb(rows, "drop", rng, 480, 360),
            "gt-swap": perturb(rows, "swap", rng, 480, 360),
            "gt-mix": perturb(rows, "mix", rng, 480, 360),
        }, length=124)
    mot17 = DATA / "mot" / "MOT17-04-mini8"
    if mot17.exists():
        gt = mot17 / "gt" / "gt.txt"
        # Pedestrians and distractor classes, as a person tracker would see them.
        rows = [r for r in read_mot(gt) if int(r[7]) in (1, 2, 7, 8, 12)]
        add("mot17", "MOT17-04-mini8", gt, {
            "gt-shift": shift(read_mot(gt)),
            "gt-jitter": perturb(rows, "jitter", rng),
            "gt-drop": perturb(rows, "drop", rng),
            "gt-swap": perturb(rows, "swap", rng),
            "gt-mix": perturb(rows, "mix", rng),
        }, length=8)
    for g in groups.values():
        g["variants"] = sorted(g["variants"])
    return groups


# ---- reference tools -------------------------------------------------------

MM_FIELDS = {
    "mota": "mota", "motp": "motp", "recall": "recall", "precision": "precision",
    "fp": "num_false_positives", "fn": "num_misses", "idsw": "num_switches",
    "frag": "num_fragmentations", "mt": "mostly_tracked", "pt": "partially_tracked",
    "ml": "mostly_lost", "num_objects": "num_objects", "num_predictions": "num_predictions",
    "num_unique_objects": "num_unique_objects", "num_transfer": "num_transfer",
    "num_ascend": "num_ascend", "num_migrate": "num_migrate",
    "idf1": "idf1", "idp": "idp", "idr": "idr", "idtp": "idtp", "idfp": "idfp", "idfn": "idfn",
}


def run_motmetrics(group_dir, seqs, variant):
    """py-motmetrics as its eval_motchallenge app does it."""
    accs, names = [], []
    for seq in seqs:
        gt = mm.io.loadtxt(str(group_dir / "gt" / seq / "gt" / "gt.txt"), fmt="mot15-2D", min_confidence=1)
        ts = mm.io.loadtxt(str(group_dir / "trackers" / variant / "data" / f"{seq}.txt"), fmt="mot15-2D")
        accs.append(mm.utils.compare_to_groundtruth(gt, ts, "iou", distth=0.5))
        names.append(seq)
    mh = mm.metrics.create()
    summary = mh.compute_many(accs, names=names, metrics=sorted(set(MM_FIELDS.values())),
                              generate_overall=True)
    out = {}
    for name in names + ["OVERALL"]:
        row = summary.loc[name]
        out["combined" if name == "OVERALL" else name] = {k: float(row[v]) for k, v in MM_FIELDS.items()}
    return out


HOTA_FIELDS = ["HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr", "OWTA"]


def run_trackeval(group_dir, seqs, variant, benchmark):
    import trackeval
    eval_cfg = trackeval.Evaluator.get_default_eval_config()
    eval_cfg.update({"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False,
                     "TIME_PROGRESS": False, "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False,
                     "PLOT_CURVES": False, "OUTPUT_EMPTY_CLASSES": False, "DISPLAY_LESS_PROGRESS": True})
    ds_cfg = trackeval.datasets.MotChallenge2DBox.get_default_dataset_config()
    ds_cfg.update({"GT_FOLDER": str(group_dir / "gt"), "TRACKERS_FOLDER": str(group_dir / "trackers"),
                   "OUTPUT_FOLDER": str(group_dir / "te_out"), "TRACKERS_TO_EVAL": [variant],
                   "BENCHMARK": benchmark, "SKIP_SPLIT_FOL": True, "PRINT_CONFIG": False,
                   "SEQ_INFO": dict(seqs)})
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = trackeval.Evaluator(eval_cfg)
        res, _ = evaluator.evaluate([trackeval.datasets.MotChallenge2DBox(ds_cfg)], [trackeval.metrics.HOTA()])
    r = res["MotChallenge2DBox"][variant]
    out = {}
    for seq in list(seqs) + ["COMBINED_SEQ"]:
        h = r[seq]["pedestrian"]["HOTA"]
        out["combined" if seq == "COMBINED_SEQ" else seq] = {f.lower(): float(np.mean(h[f])) for f in HOTA_FIELDS}
    return out


def coco_from_mot(group_dir, seqs, variant, benchmark):
    """COCO gt and results from MOT files, by the rules of CocoData::add_mot."""
    images, anns, dets = [], [], []
    for si, (seq, length) in enumerate(seqs.items()):
        base = si * 1_000_000
        images += [{"id": base + f} for f in range(1, length + 1)]
        for r in read_mot(group_dir / "gt" / seq / "gt" / "gt.txt"):
            keep = int(r[6]) != 0
            cls = int(r[7]) if len(r) > 7 else -1
            if benchmark == "MOT15":
                use, crowd = keep, 0
            elif cls == 1:
                use, crowd = keep, 0
            else:
                use, crowd = cls in (2, 7, 8, 12), 1
            if use:
                anns.append({"id": len(anns) + 1, "image_id": base + int(r[0]), "category_id": 1,
                             "bbox": r[2:6], "area": r[4] * r[5], "iscrowd": crowd})
        for r in read_mot(group_dir / "trackers" / variant / "data" / f"{seq}.txt"):
            dets.append({"image_id": base + int(r[0]), "category_id": 1, "bbox": r[2:6],
                         "score": r[6] if len(r) > 6 else 1.0})
    return ({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "pedestrian"}]}, dets)


COCO_KEYS = ["ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
             "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large"]


def run_pycocotools(gt_json, dets):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads(json.dumps(gt_json))
        gt.createIndex()
        dt = gt.loadRes(json.loads(json.dumps(dets))) if dets else COCO()
        e = COCOeval(gt, dt, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return dict(zip(COCO_KEYS, map(float, e.stats)))


def run_rust_mot(gt_dir, pred_dir, protocol, repeat=None):
    cmd = [str(EVAL_MOT), str(gt_dir), str(pred_dir), protocol]
    if repeat:
        cmd += ["--repeat", str(repeat)]
    p = subprocess.run(cmd, check=True, capture_output=True, text=True)
    rep = json.loads(p.stdout)
    out = {s["name"]: s for s in rep["sequences"]}
    out["combined"] = rep["combined"]
    return out, p.stderr


def run_rust_det(*args):
    p = subprocess.run([str(EVAL_DET), *map(str, args)], check=True, capture_output=True, text=True)
    return json.loads(p.stdout)


def coco_multiclass(seq="TUD-Stadtmitte"):
    """A three-class COCO case built deterministically from the motmetrics
    data (crates/eval/tests/reference.rs rebuilds it in Rust): gt category
    id % 3 + 1, every 11th id a crowd region; detections from the shipped
    tracker output with category id % 3 + 1 and score
    ((7 frame + 13 id) % 100) / 100 (ties on purpose), plus 120 low-score
    boxes in frame 1 to exercise the 100-detection cut."""
    gt_rows = read_mot(MM_DATA / seq / "gt.txt")
    dt_rows = read_mot(MM_DATA / seq / "test.txt")
    n = max(int(r[0]) for r in gt_rows + dt_rows)
    anns = []
    for r in gt_rows:
        i = int(r[1])
        anns.append({"id": len(anns) + 1, "image_id": int(r[0]), "category_id": i % 3 + 1, "bbox": r[2:6],
                     "area": r[4] * r[5], "iscrowd": 1 if i % 11 == 0 else 0})
    dets = [{"image_id": int(r[0]), "category_id": int(r[1]) % 3 + 1, "bbox": r[2:6],
             "score": ((7 * int(r[0]) + 13 * int(r[1])) % 100) / 100} for r in dt_rows]
    dets += [{"image_id": 1, "category_id": 1, "bbox": [5.0 * k, 0.0, 20.0, 40.0], "score": 0.001 * k}
             for k in range(120)]
    gt = {"images": [{"id": f} for f in range(1, n + 1)], "annotations": anns,
          "categories": [{"id": c, "name": f"class{c}"} for c in (1, 2, 3)]}
    return gt, dets


def run_pycocotools_per_class(gt_json, dets):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads(json.dumps(gt_json))
        gt.createIndex()
        dt = gt.loadRes(json.loads(json.dumps(dets)))
        for c in sorted(gt.getCatIds()):
            e = COCOeval(gt, dt, "bbox")
            e.params.catIds = [c]
            e.evaluate()
            e.accumulate()
            e.summarize()
            out[str(c)] = dict(zip(COCO_KEYS, map(float, e.stats)))
    return out
