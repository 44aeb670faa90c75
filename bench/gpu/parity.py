"""Detection parity between two exports of the same video (JSON lines from
`peregrine export`): detections matched per frame and class by IoU, then
the largest box-corner and score differences. Prints one table.

    python3 bench/gpu/parity.py reference.jsonl other.jsonl
"""
import json
import sys
from collections import defaultdict


def load(path):
    frames = defaultdict(list)
    for line in open(path):
        if line.strip():
            d = json.loads(line)
            frames[d["frame"]].append(d)
    return frames


def box(d):
    b = d.get("bbox") or [d["x1"], d["y1"], d["x2"], d["y2"]]
    return [float(v) for v in b]


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def main():
    ref, other = load(sys.argv[1]), load(sys.argv[2])
    matched = unmatched_ref = unmatched_other = 0
    max_px = max_score = 0.0
    within = 0
    for f in sorted(set(ref) | set(other)):
        a, b = ref.get(f, []), list(other.get(f, []))
        for d in a:
            best, bi = 0.0, -1
            for i, e in enumerate(b):
                if e.get("class") == d.get("class"):
                    v = iou(box(d), box(e))
                    if v > best:
                        best, bi = v, i
            if bi < 0 or best < 0.5:
                unmatched_ref += 1
                continue
            e = b.pop(bi)
            matched += 1
            px = max(abs(x - y) for x, y in zip(box(d), box(e)))
            sc = abs(float(d.get("score", 0)) - float(e.get("score", 0)))
            max_px, max_score = max(max_px, px), max(max_score, sc)
            within += px <= 1.0 and sc <= 1e-3
        unmatched_other += len(b)
    total = matched + unmatched_ref
    print(f"detections: reference {total}, matched {matched}, only in reference {unmatched_ref}, only in other {unmatched_other}")
    print(f"largest difference of a matched box corner: {max_px:.4f} px; of a score: {max_score:.6f}")
    print(f"matched within 1 px and 1e-3: {within} of {matched} ({100.0 * within / max(matched, 1):.2f} %)")


if __name__ == "__main__":
    main()
