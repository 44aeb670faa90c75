#!/usr/bin/env python3
"""The usual Python way to analyse many cameras, for bench/live/run.sh: an
OpenCV capture thread per stream keeping its latest frame, one onnxruntime
session (2 threads) serving the streams round-robin at FPS each, YOLOX
decoding and OpenCV NMS, detections written to SQLite per frame.

    reference_live.py MODEL [--fps 5] [--duration 20] URL...

Prints one JSON object: per-stream analysed fps, slowest stream fps and
worst p95 latency (capture to commit, ms).
"""
import argparse
import json
import os
import sqlite3
import threading
import time

os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("urls", nargs="+")
p.add_argument("--fps", type=float, default=5.0)
p.add_argument("--duration", type=float, default=20.0)
p.add_argument("--conf", type=float, default=0.25)
p.add_argument("--iou", type=float, default=0.45)
a = p.parse_args()

cv2.setNumThreads(1)
so = ort.SessionOptions()
so.intra_op_num_threads = 2
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

stop = threading.Event()


class Camera(threading.Thread):
    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.lock, self.latest, self.seq = url, threading.Lock(), None, 0

    def run(self):
        cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG)
        while not stop.is_set():
            ok, img = cap.read()
            t = time.perf_counter()
            if not ok:
                time.sleep(0.5)
                cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG)
                continue
            with self.lock:
                self.latest, self.seq = (img, t), self.seq + 1


def detect(img):
    h, w = img.shape[:2]
    r = min(size / h, size / w)
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[: int(h * r), : int(w * r)] = cv2.resize(img, (int(w * r), int(h * r)), interpolation=cv2.INTER_LINEAR)
    out = sess.run(None, {inp.name: canvas.transpose(2, 0, 1)[None].astype(np.float32)})[0][0]
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
        idx = np.array(cv2.dnn.NMSBoxesBatched(xywh.tolist(), score.tolist(), cls.tolist(), a.conf, a.iou),
                       dtype=int).reshape(-1)
        boxes, score, cls = boxes[idx], score[idx], cls[idx]
    return boxes, score, cls


cams = [Camera(u) for u in a.urls]
for c in cams:
    c.start()
db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE detections (stream INT, t REAL, class_id INT, score REAL, x1 REAL, y1 REAL, x2 REAL, y2 REAL)")
period = 1.0 / a.fps
due = [0.0] * len(cams)
seen = [0] * len(cams)
analysed = [0] * len(cams)
first = [None] * len(cams)
lat = [[] for _ in cams]
t0 = time.perf_counter()
while time.perf_counter() - t0 < a.duration:
    now = time.perf_counter()
    worked = False
    for i, c in enumerate(cams):
        if now < due[i]:
            continue
        with c.lock:
            latest, seq = c.latest, c.seq
        if latest is None or seq == seen[i]:
            continue
        seen[i] = seq
        due[i] = max(due[i] + period, now - period)
        img, captured = latest
        first[i] = first[i] or captured
        boxes, score, cls = detect(img)
        with db:
            db.executemany("INSERT INTO detections VALUES (?,?,?,?,?,?,?,?)",
                           [(i, captured, int(k), float(s), *map(float, b)) for b, s, k in zip(boxes, score, cls)])
        lat[i].append((time.perf_counter() - captured) * 1e3)
        analysed[i] += 1
        worked = True
    if not worked:
        time.sleep(0.002)
stop.set()
end = time.perf_counter()
fps = [n / (end - f) if f else 0.0 for n, f in zip(analysed, first)]
p95 = [float(np.percentile(x, 95)) if x else 0.0 for x in lat]
print(json.dumps({"streams": len(cams), "fps": fps, "min_fps": min(fps), "worst_p95_ms": max(p95)}), flush=True)
# The capture threads may be blocked inside OpenCV: leave without joining them.
os._exit(0)
