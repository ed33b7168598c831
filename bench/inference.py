#!/usr/bin/env python3
"""Inference benchmark: latency p50/p95, throughput and peak memory per backend and network size, pre- and
post-processing timed apart from the forward pass; writes the "Inference on CPU" section of docs/RESULTS.md
(and "Inference on GPU" where CUDA is available), with the verdicts on issue 4's and issue 16's targets;
every precision by default, the int8 model (``fg-depth export --quantize int8``) included.

    .venv/bin/python bench/inference.py     # 640x192 and 1024x320, a few minutes on 2 cores
    .venv/bin/python bench/inference.py --sizes 128x64 --iterations 3 --results /tmp/r.md    # smoke

The measurement is ``fg-depth bench`` (fg_depth_core/commands/bench.py: the method); the section is written
by tools/inference_report.py.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

from fg_depth_core.commands import bench  # noqa: E402
from fg_depth_core.errors import FgDepthError  # noqa: E402
from tools.inference_report import verdicts, write_results  # noqa: E402
from tools.results import RESULTS_MD  # noqa: E402

PROG = "bench/inference.py"


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=PROG, description=bench.DESCRIPTION)
    bench.add_arguments(parser, bench.ROW_PRECISIONS)
    parser.add_argument(
        "--results",
        default=str(RESULTS_MD),
        help="markdown file whose inference sections are replaced with the tables (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        measured = bench.run_benchmark(args, " ".join(["python", PROG, *map(shlex.quote, argv)]))
    except FgDepthError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(["", *bench.table(measured.rows), "", *verdicts(measured.rows)]))
    write_results(Path(args.results), measured)
    print(f"results -> {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
