"""Speed, latency and quality benchmarks (python -m benchmarks.NAME)."""

import streamer  # noqa: F401  (first: it sets the BLAS thread count before numpy loads)
