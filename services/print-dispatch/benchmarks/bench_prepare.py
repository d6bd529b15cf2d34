"""Benchmark: prepare 2,500 mailpieces from a 10,000-page serial letter (4 pages per letter).

Measures the print-file step (merge, A4 checks, address check by text + rendered pixels, cover pages where
needed, save) and postage, in memory (no storage / network), with 1 and N worker processes.

    .venv/bin/python services/print-dispatch/benchmarks/bench_prepare.py [--letters 2500] [--workers 2]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

from smartpost_print_dispatch.adapters.pdf import PartPdf, PrepareRequest, UnsendableError, prepare_mailpiece
from smartpost_print_dispatch.domain.geometry import DIN5008_B
from smartpost_print_dispatch.domain.postage import PostageConfig, price
from smartpost_print_dispatch.testing import demo_address, write_letter
from smartpost_shared.contracts.letters import EnvelopeFormat, RegisteredMail

CONFIG = PostageConfig()


def work(request: PrepareRequest) -> tuple[bool, int]:
    try:
        result = prepare_mailpiece(request)
    except UnsendableError:
        return False, 0
    price(
        CONFIG,
        sheets=result.sheets,
        printed_pages=result.printed_pages,
        envelope=EnvelopeFormat.DL,
        color=False,
        registered=RegisteredMail.NONE,
    )
    return result.cover_page, result.sheets


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--letters", type=int, default=2500)
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    started = time.perf_counter()
    requests = []
    for index in range(args.letters):
        lines = demo_address(index)
        # Every 10th letter has no address in the window (cover page), every 25th a different address.
        mode = "missing" if index % 10 == 0 else "window"
        printed = demo_address(index + 1) if index % 25 == 1 else lines
        data = write_letter(printed, mode=mode, pages=args.pages)
        requests.append(
            PrepareRequest(f"mp-{index}", lines, DIN5008_B, [PartPdf(f"i{index}", data, 1, args.pages)], duplex=True)
        )
    generated = time.perf_counter() - started
    pages = args.letters * args.pages
    print(f"generated {args.letters} letters / {pages} pages in {generated:.1f} s (reportlab, not measured below)")

    for workers in sorted({1, args.workers}):
        started = time.perf_counter()
        if workers == 1:
            results = [work(r) for r in requests]
        else:
            with ProcessPoolExecutor(workers) as pool:
                results = list(pool.map(work, requests, chunksize=32))
        elapsed = time.perf_counter() - started
        covers = sum(1 for cover, _ in results if cover)
        sheets = sum(s for _, s in results)
        print(
            f"workers={workers}: {args.letters} mailpieces in {elapsed:.2f} s = {args.letters / elapsed:.0f} "
            f"mailpieces/s ({pages / elapsed:.0f} pages/s); cover pages {covers}, sheets {sheets}"
        )


if __name__ == "__main__":
    main()
