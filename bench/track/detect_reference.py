#!/usr/bin/env python3
"""Reference person detections for the tracker comparison.

Runs the shared YOLOX-Nano ONNX model with onnxruntime on the PETS09-S2L1
JPEGs and writes MOTChallenge detections `frame,-1,x,y,w,h,score,-1,-1,-1`
(frames 1-based, person class only). The confidence floor is low (0.1) so that
ByteTrack's second, low-score association has something to work with.

Preprocessing follows shared/data/MANIFEST.md: BGR, raw 0-255, letterbox with
the image at the top-left and pad 114; decode with strides 8/16/32.
"""

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

INPUT = 416
STRIDES = (8, 16, 32)
PERSON = 0


def data_dir() -> Path:
    env = os.environ.get("PEREGRINE_TEST_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def letterbox(img: np.ndarray) -> tuple[np.ndarray, float]:
    h, w = img.shape[:2]
    r = min(INPUT / h, INPUT / w)
    nh, nw = int(round(h * r)), int(round(w * r))
    canvas = np.full((INPUT, INPUT, 3), 114, dtype=np.uint8)
    canvas[:nh, :nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    blob = canvas.transpose(2, 0, 1)[None].astype(np.float32)  # BGR, raw 0-255
    return blob, r


def grids() -> tuple[np.ndarray, np.ndarray]:
    g, s = [], []
    for stride in STRIDES:
        n = INPUT // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        g.append(np.stack([xs, ys], -1).reshape(-1, 2))
        s.append(np.full((n * n, 1), stride))
    return np.concatenate(g).astype(np.float32), np.concatenate(s).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    order = scores.argsort()[::-1]
    keep = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        o = inter / (areas[i] + areas[rest] - inter + 1e-12)
        order = rest[o <= iou]
    return keep


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq", type=Path, default=data_dir() / "mot" / "PETS09-S2L1-480x360")
    ap.add_argument("--model", type=Path, default=data_dir() / "models" / "yolox_nano.onnx")
    ap.add_argument("--conf", type=float, default=0.1)
    ap.add_argument("--nms", type=float, default=0.45)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(args.model), opts, providers=["CPUExecutionProvider"])
    grid, stride = grids()
    frames = sorted((args.seq / "img1").glob("*.jpg"))
    if not frames:
        print(f"{args.seq / 'img1'}: no JPEG frames", file=sys.stderr)
        return 1
    lines = []
    for path in frames:
        frame = int(path.stem)
        img = cv2.imread(str(path))
        blob, r = letterbox(img)
        out = sess.run(None, {"images": blob})[0][0]
        xy = (out[:, :2] + grid) * stride
        wh = np.exp(out[:, 2:4]) * stride
        score = out[:, 4] * out[:, 5 + PERSON]
        m = score > args.conf
        xy, wh, score = xy[m] / r, wh[m] / r, score[m]
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)
        h, w = img.shape[:2]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        for i in nms(boxes, score, args.nms):
            x1, y1, x2, y2 = boxes[i]
            lines.append(
                f"{frame},-1,{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score[i]:.4f},-1,-1,-1"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"{args.out}: {len(lines)} detections in {len(frames)} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
