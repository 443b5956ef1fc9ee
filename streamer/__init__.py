"""headcast runtime: camera → tracker → motion → renderer → sink. Never imports torch."""

import os

# numpy's OpenBLAS only sees small matrices here (head pose, the warp's spline), too small
# to split, but its idle worker threads spin: on a 2-core machine they took half the CPU
# from tracking and rendering (benchmarks.latency). One thread, unless the user chose.
# Effective when headcast is imported before numpy (the CLI, the benchmarks).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
