#!/usr/bin/env python3
"""Parity of peregrine-eval with the reference tools, on real data.

CLEAR and Identity vs py-motmetrics 1.4.0 (its eval_motchallenge conventions:
Peregrine's `motmetrics` protocol), HOTA vs TrackEval 1.3.0 (MOTChallenge
preprocessing: Peregrine's default `motchallenge` protocol), COCO AP/AR vs
pycocotools. Inputs: the TUD-Campus and TUD-Stadtmitte ground truth and
tracker outputs shipped in motmetrics/data, the sequences in
../shared/data/mot, and seeded perturbations (dropped boxes, swapped ids,
jitter, false positives). Per sequence and combined.

Run: cargo build --release -p peregrine-eval --examples  (CARGO_TARGET_DIR=target-eval)
     bench/.venv-eval/bin/python bench/eval/parity.py [--write-fixtures]
"""
import json
import shutil
import sys

from common import (MM_DATA, OUT, ROOT, TRACK_OUT, build_inputs, coco_from_mot, coco_multiclass,
                    run_pycocotools_per_class, run_motmetrics, run_pycocotools,
                    run_rust_det, run_rust_mot, run_trackeval)

TOL_MOT = 1e-6
TOL_COCO = 1e-4


def compare(ref, got, tol, label, failures, stats):
    for k, v in ref.items():
        g = got.get(k)
        if g is None:
            failures.append(f"{label}: {k} missing")
            continue
        d = abs(float(g) - v) if not (v != v and g != g) else 0.0
        stats["n"] += 1
        stats["max"] = max(stats["max"], d)
        if d > tol:
            failures.append(f"{label}: {k} ref={v!r} peregrine={g!r} diff={d:.3g}")


def main():
    groups = build_inputs()
    failures = []
    table = []
    fixtures = {}
    coco_rows = []
    for gname, g in groups.items():
        gdir = OUT / gname
        for variant in g["variants"]:
            seqs = {s: n for s, n in g["seqs"].items()
                    if (gdir / "trackers" / variant / "data" / f"{s}.txt").exists()}
            pred_dir = gdir / "trackers" / variant
            gt_dir = gdir / "gt"
            if len(seqs) < len(g["seqs"]):
                # Only the sequences this tracker ran on (peregrine-eval
                # rejects a sequence without results).
                gt_dir = gdir / f"gt-{variant}"
                gt_dir.mkdir(exist_ok=True)
                for s in seqs:
                    (gt_dir / s).symlink_to(gdir / "gt" / s)
            mm_ref = run_motmetrics(gdir, seqs, variant)
            te_ref = run_trackeval(gdir, seqs, variant, g["benchmark"])
            rs_mm, _ = run_rust_mot(gt_dir, pred_dir, "motmetrics")
            rs_te, _ = run_rust_mot(gt_dir, pred_dir, "motchallenge")
            coco_gt, coco_dt = coco_from_mot(gdir, seqs, variant, g["benchmark"])
            gt_json = gdir / f"coco_gt_{variant}.json"
            dt_json = gdir / f"coco_dt_{variant}.json"
            gt_json.write_text(json.dumps(coco_gt))
            dt_json.write_text(json.dumps(coco_dt))
            coco_ref = run_pycocotools(coco_gt, coco_dt)
            rs_coco = run_rust_det("coco", gt_json, dt_json)
            for seq in list(seqs) + ["combined"]:
                label = f"{gname}/{variant}/{seq}"
                st_mm, st_te = {"n": 0, "max": 0.0}, {"n": 0, "max": 0.0}
                compare(mm_ref[seq], rs_mm[seq], TOL_MOT, label + " [motmetrics]", failures, st_mm)
                compare(te_ref[seq], rs_te[seq], TOL_MOT, label + " [trackeval]", failures, st_te)
                row = {"case": label, "mota": mm_ref[seq]["mota"], "idf1": mm_ref[seq]["idf1"],
                       "hota": te_ref[seq]["hota"], "mm_max_diff": st_mm["max"], "te_max_diff": st_te["max"]}
                if seq == "combined":
                    st_c = {"n": 0, "max": 0.0}
                    compare(coco_ref, rs_coco, TOL_COCO, label + " [pycocotools]", failures, st_c)
                    row.update({"ap": coco_ref["ap"], "coco_max_diff": st_c["max"]})
                table.append(row)
                if variant in ("shipped", "shipped-mix", "gt-shift") or seq == "combined" and variant == "gt-mix":
                    key = f"{gname}/{seq}" if seq == "combined" else seq
                    fixtures[f"{key}/{variant}"] = {"motmetrics": mm_ref[seq], "trackeval": te_ref[seq]}
            # Per-sequence MOT-format detection input must equal the JSON route.
            for si, (seq, n) in enumerate(seqs.items()):
                if len(seqs) == 1 or si == 0:
                    single_gt, single_dt = coco_from_mot(gdir, {seq: n}, variant, g["benchmark"])
                    ref = run_pycocotools(single_gt, single_dt)
                    got = run_rust_det("mot", gdir / "gt" / seq / "gt" / "gt.txt",
                                       gdir / "trackers" / variant / "data" / f"{seq}.txt", n)
                    st = {"n": 0, "max": 0.0}
                    compare(ref, got, TOL_COCO, f"{gname}/{variant}/{seq} [pycocotools, MOT input]", failures, st)
                    if variant in ("shipped", "gt-shift"):
                        fixtures.setdefault("coco", {})[f"{seq}/{variant}"] = ref
                    coco_rows.append((f"{gname}/{variant}/{seq} (MOT input)", ref["ap"], ref["ap50"], st["max"]))
    # Real detector output (YOLOX-Nano, Peregrine's model) for COCO AP only:
    # its rows carry no track ids.
    dets = TRACK_OUT / "det_reference.txt"
    pets = OUT / "mot15" / "gt" / "PETS09-S2L1"
    if dets.exists() and pets.exists():
        d = OUT / "mot15" / "trackers" / "yolox-dets" / "data"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(dets, d / "PETS09-S2L1.txt")
        cg, cd = coco_from_mot(OUT / "mot15", {"PETS09-S2L1": 124}, "yolox-dets", "MOT15")
        ref = run_pycocotools(cg, cd)
        got = run_rust_det("mot", pets / "gt" / "gt.txt", d / "PETS09-S2L1.txt", 124)
        st = {"n": 0, "max": 0.0}
        compare(ref, got, TOL_COCO, "mot15/yolox-dets/PETS09-S2L1 [pycocotools, MOT input]", failures, st)
        coco_rows.append(("mot15/yolox-dets/PETS09-S2L1", ref["ap"], ref["ap50"], st["max"]))
    else:
        print(f"note: {dets} not found; run bench/track/detect_reference.py for the YOLOX detection case")
    # Several classes, crowd regions, score ties, more than 100 detections.
    mc_gt, mc_dt = coco_multiclass()
    (OUT / "coco_multiclass_gt.json").write_text(json.dumps(mc_gt))
    (OUT / "coco_multiclass_dt.json").write_text(json.dumps(mc_dt))
    mc_ref = run_pycocotools(mc_gt, mc_dt)
    mc_cls = run_pycocotools_per_class(mc_gt, mc_dt)
    mc_got = run_rust_det("coco", OUT / "coco_multiclass_gt.json", OUT / "coco_multiclass_dt.json")
    st = {"n": 0, "max": 0.0}
    compare(mc_ref, mc_got, TOL_COCO, "coco-multiclass/TUD-Stadtmitte", failures, st)
    for c in mc_got["per_class"]:
        compare(mc_cls[str(c["category_id"])], c, TOL_COCO, f"coco-multiclass/TUD-Stadtmitte class {c['category_id']}",
                failures, st)
    coco_rows.append(("coco-multiclass/TUD-Stadtmitte (3 classes)", mc_ref["ap"], mc_ref["ap50"], st["max"]))
    fixtures.setdefault("coco", {})["multiclass/TUD-Stadtmitte"] = mc_ref
    fixtures["coco"]["multiclass/TUD-Stadtmitte/per_class"] = mc_cls
    if not (TRACK_OUT / "peregrine.txt").exists():
        print(f"note: {TRACK_OUT / 'peregrine.txt'} not found: no case with Peregrine's own tracks")
    print(f"{'case':48} {'MOTA':>8} {'IDF1':>8} {'HOTA':>8} {'AP':>8} {'max|d| mm':>10} {'max|d| te':>10} {'max|d| coco':>11}")
    for r in table:
        ap = f"{r['ap']:8.4f}" if "ap" in r else " " * 8
        cd = f"{r['coco_max_diff']:11.1e}" if "coco_max_diff" in r else " " * 11
        print(f"{r['case']:48} {r['mota']:8.4f} {r['idf1']:8.4f} {r['hota']:8.4f} {ap} "
              f"{r['mm_max_diff']:10.1e} {r['te_max_diff']:10.1e} {cd}")
    print(f"\n{'detection case (COCO)':48} {'AP':>8} {'AP50':>8} {'max|d|':>10}")
    for name, ap, ap50, d in coco_rows:
        print(f"{name:48} {ap:8.4f} {ap50:8.4f} {d:10.1e}")
    if "--write-fixtures" in sys.argv:
        path = ROOT / "crates" / "eval" / "tests" / "fixtures" / "reference_values.json"
        path.write_text(json.dumps(fixtures, indent=1, sort_keys=True) + "\n")
        # The motmetrics data (MIT) and tracker outputs derived from it only.
        fx = path.parent
        for seq in ("TUD-Campus", "TUD-Stadtmitte"):
            (fx / "motmetrics-data" / seq).mkdir(parents=True, exist_ok=True)
            for f in ("gt.txt", "test.txt"):
                shutil.copy(MM_DATA / seq / f, fx / "motmetrics-data" / seq / f)
            shutil.copy(OUT / "mot15" / "trackers" / "shipped-mix" / "data" / f"{seq}.txt",
                        fx / "motmetrics-data" / seq / "test-mix.txt")
        print(f"wrote {path} and {fx / 'motmetrics-data'}")
    if failures:
        print(f"\n{len(failures)} mismatches:")
        for f in failures[:60]:
            print("  " + f)
        sys.exit(1)
    print(f"\nall {len(table)} cases agree (MOT within {TOL_MOT}, COCO within {TOL_COCO})")


if __name__ == "__main__":
    main()
