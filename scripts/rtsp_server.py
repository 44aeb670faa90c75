#!/usr/bin/python3
"""RTSP cameras for tests and benchmarks: serves H.264 MP4 files in real time.

Each file NAME.mp4 of --videos (default ../shared/data/videos) is served at
rtsp://127.0.0.1:PORT/NAME, one pipeline per client (every client sees the
clip from its start, paced by the pipeline clock as a camera would send it).

Fault modes, for tests:
  rtsp://127.0.0.1:PORT/stall/NAME  plays --stall-after seconds, then keeps the
                                    session open but sends no more packets.
  --garbage-port P                  a TCP port answering every connection with
                                    random bytes (not RTSP, not video).
  --loop N                          serve each clip repeated N times (a copy
                                    made with ffmpeg -c copy in a temp folder),
                                    for runs longer than one clip.

Prints "ready PORT" on stdout once listening. Needs python3-gi,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good and -bad (see
scripts/setup.sh).
"""

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def launch(path, stall):
    valve = " ! valve name=v drop=false" if stall else ""
    return (
        f"( filesrc location={path} ! qtdemux ! h264parse config-interval=-1"
        f"{valve} ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def make_factory(path, stall_after=None):
    f = GstRtspServer.RTSPMediaFactory()
    f.set_launch(launch(path, stall_after is not None))
    f.set_shared(False)
    f.set_eos_shutdown(True)
    if stall_after is not None:

        def configure(_factory, media):
            v = media.get_element().get_by_name("v")

            def stall():
                v.set_property("drop", True)
                return False

            GLib.timeout_add(int(stall_after * 1000), stall)

        f.connect("media-configure", configure)
    return f


def garbage_server(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)

    def serve(conn):
        try:
            for _ in range(64):
                conn.sendall(random.randbytes(4096))
        except OSError:
            pass
        finally:
            conn.close()

    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def looped(path, n, tmp):
    out = os.path.join(tmp, os.path.basename(path))
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-stream_loop", str(n - 1), "-i", path,
         "-map", "0:v:0", "-c", "copy", out],
        check=True,
    )
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_videos = os.environ.get("PEREGRINE_TEST_DATA")
    default_videos = (
        os.path.join(default_videos, "videos")
        if default_videos
        else os.path.join(here, "..", "..", "shared", "data", "videos")
    )
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--videos", default=default_videos)
    ap.add_argument("--only", default="", help="comma-separated clip names to serve")
    ap.add_argument("--stall-after", type=float, default=2.0)
    ap.add_argument("--garbage-port", type=int, default=0)
    ap.add_argument("--loop", type=int, default=1)
    a = ap.parse_args()

    Gst.init(None)
    tmp = tempfile.mkdtemp(prefix="peregrine-rtsp-") if a.loop > 1 else None
    only = {n for n in a.only.split(",") if n}
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    mounts = server.get_mount_points()
    names = []
    for fname in sorted(os.listdir(a.videos)):
        stem, ext = os.path.splitext(fname)
        if ext.lower() != ".mp4" or (only and stem not in only):
            continue
        path = os.path.abspath(os.path.join(a.videos, fname))
        if tmp:
            path = looped(path, a.loop, tmp)
        mounts.add_factory(f"/{stem}", make_factory(path))
        mounts.add_factory(f"/stall/{stem}", make_factory(path, a.stall_after))
        names.append(stem)
    if not names:
        sys.exit(f"rtsp_server: no .mp4 clips in {a.videos}")
    if server.attach(None) == 0:
        sys.exit(f"rtsp_server: cannot listen on 127.0.0.1:{a.port}")
    if a.garbage_port:
        threading.Thread(target=garbage_server, args=(a.garbage_port,), daemon=True).start()
    print(f"ready {a.port} {' '.join(names)}", flush=True)
    try:
        GLib.MainLoop().run()
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
