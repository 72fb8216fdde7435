"""``python -m bench``: list the benchmarks, or run some and print JSON lines."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from bench.runner import DB_KINDS, DbKind, load_all, run


def main(argv: list[str] | None = None) -> int:
    benchmarks = load_all()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run engine benchmarks; each figure is printed as one JSON line on stdout.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"{'|'.join(benchmarks)}|all (none: list them)")
    parser.add_argument("--n", type=int, help="messages per measurement (default: per benchmark)")
    parser.add_argument("--db", choices=[*DB_KINDS, "both"], default="both", help="journal database (default: both)")
    parser.add_argument("--quick", action="store_true", help="small n, for the smoke test")
    args = parser.parse_args(argv)
    if not args.names:
        for bench in benchmarks.values():
            print(f"{bench.name:10} n={bench.n:<6} {bench.summary}")
        return 0
    names = list(benchmarks) if args.names == ["all"] else args.names
    unknown = [name for name in names if name not in benchmarks]
    if unknown:
        parser.error(f"unknown benchmark '{unknown[0]}' (known: {', '.join(benchmarks)}, all)")
    if args.n is not None and args.n < 1:
        parser.error(f"--n must be a positive number of messages (got {args.n})")
    kinds: tuple[DbKind, ...] = DB_KINDS if args.db == "both" else (args.db,)
    # SIGTERM ends the run like Ctrl-C, so a PostgreSQL schema of ours is still dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    report = run(names, kinds, n=args.n, quick=args.quick)
    for failure in report.failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
