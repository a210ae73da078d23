"""`python tools/benchmark.py`: ka_tf's benchmarks, run from a checkout.

The harness lives outside the library, in benchmarks/ (benchmark_tool.py: the
sections and tables; harness.py: timing, workers, FLOPs), as KerasHub keeps its own.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.benchmark_tool import run

if __name__ == "__main__":
    run()
