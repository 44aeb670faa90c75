"""Runs a command and writes "WALL_SECONDS PEAK_RSS_KB" to a file (for
machines without /usr/bin/time). stdout and stderr pass through.

    python3 bench/gpu/timed.py OUT_FILE CMD [ARGS...]
"""
import resource
import subprocess
import sys
import time

t0 = time.perf_counter()
rc = subprocess.call(sys.argv[2:])
wall = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
open(sys.argv[1], "w").write(f"{wall:.3f} {rss}\n")
sys.exit(rc)
