#!/usr/bin/env python3
"""The reference a typical Python user would write for the same job as
`peregrine analyze`: OpenCV decode, letterbox, onnxruntime (same model, same
thresholds, same thread budget), NumPy decoding and OpenCV NMS, supervision's
ByteTrack, detections written to SQLite in batches.

    python bench/reference_pipeline.py VIDEO MODEL [--threads 2] [--db out.db]

Prints one JSON object: frames, detections, seconds, fps.
"""
import argparse
import json
import sqlite3
import time

import cv2
import numpy as np
import onnxruntime as ort
import supervision as sv

p = argparse.ArgumentParser()
p.add_argument("video")
p.add_argument("model")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--conf", type=float, default=0.25)
p.add_argument("--iou", type=float, default=0.45)
p.add_argument("--db", default=":memory:")
a = p.parse_args()

cv2.setNumThreads(1)
so = ort.SessionOptions()
so.intra_op_num_threads = a.threads
so.inter_op_num_threads = 1
sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
inp = sess.get_inputs()[0]
size = inp.shape[2]

grids, strides = [], []
for s in (8, 16, 32):
    g = size // s
    ys, xs = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
    grids.append(np.stack([xs.ravel(), ys.ravel()], 1))
    strides.append(np.full((g * g, 1), s))
grids = np.concatenate(grids).astype(np.float32)
strides = np.concatenate(strides).astype(np.float32)

db = sqlite3.connect(a.db)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE IF NOT EXISTS detections (frame INT, t REAL, class_id INT, score REAL, "
           "x1 REAL, y1 REAL, x2 REAL, y2 REAL, track_id INT)")
tracker = None
cap = cv2.VideoCapture(a.video)
fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
tracker = sv.ByteTrack(frame_rate=int(round(fps)))
rows, frames, total = [], 0, 0
t0 = time.perf_counter()
while True:
    ok, img = cap.read()
    if not ok:
        break
    h, w = img.shape[:2]
    r = min(size / h, size / w)
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[: int(h * r), : int(w * r)] = cv2.resize(img, (int(w * r), int(h * r)), interpolation=cv2.INTER_LINEAR)
    blob = canvas.transpose(2, 0, 1)[None].astype(np.float32)
    out = sess.run(None, {inp.name: blob})[0][0]
    scores = out[:, 4:5] * out[:, 5:]
    cls = scores.argmax(1)
    score = scores[np.arange(len(cls)), cls]
    keep = score >= a.conf
    xy = (out[keep, :2] + grids[keep]) * strides[keep]
    wh = np.exp(out[keep, 2:4]) * strides[keep]
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1) / r
    score, cls = score[keep], cls[keep]
    if len(boxes):
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
        idx = cv2.dnn.NMSBoxesBatched(xywh.tolist(), score.tolist(), cls.tolist(), a.conf, a.iou)
        idx = np.array(idx, dtype=int).reshape(-1)
        boxes, score, cls = boxes[idx], score[idx], cls[idx]
    dets = sv.Detections(xyxy=boxes.reshape(-1, 4), confidence=score, class_id=cls)
    dets = tracker.update_with_detections(dets)
    t = frames / fps
    for b, s, c, tid in zip(dets.xyxy, dets.confidence, dets.class_id, dets.tracker_id):
        rows.append((frames, t, int(c), float(s), *map(float, b), int(tid)))
    total += len(dets)
    frames += 1
    if frames % 128 == 0:
        with db:
            db.executemany("INSERT INTO detections VALUES (?,?,?,?,?,?,?,?,?)", rows)
        rows.clear()
with db:
    db.executemany("INSERT INTO detections VALUES (?,?,?,?,?,?,?,?,?)", rows)
secs = time.perf_counter() - t0
print(json.dumps({"frames": frames, "detections": total, "seconds": secs, "fps": frames / secs}))
