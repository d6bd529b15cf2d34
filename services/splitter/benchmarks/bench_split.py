"""Launcher of the splitter benchmark (see splitbench.py).

    .venv/bin/python services/splitter/benchmarks/bench_split.py [--processes 2] [--pages 1000 10000]

Deliberately empty at import time: the splitter's worker processes are spawned, and a spawned process imports the
main script again; what is imported here would sit in every worker's memory and distort the numbers.
"""

if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from splitbench import main

    main()
