#!/usr/bin/env python3
"""Inference benchmark: latency p50/p95, throughput and peak memory per backend and network size, pre- and
post-processing timed apart from the forward pass; writes the "Inference on CPU" section of docs/RESULTS.md
(and "Inference on GPU" where CUDA is available).

    .venv/bin/python bench/inference.py     # 640x192 and 1024x320, a few minutes on 2 cores
    .venv/bin/python bench/inference.py --sizes 128x64 --iterations 3 --results /tmp/r.md    # smoke

The same as ``fg-depth bench --results docs/RESULTS.md``; see fg_depth_core/commands/bench.py for the method.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

from fg_depth_core.commands.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(results_default=str(ROOT / "docs" / "RESULTS.md"), prog="bench/inference.py"))
