"""`--quick` for every benchmark: the same script at a tiny size, so that the test suite can run it.

A quick run proves that the script still works end to end against today's code (the test suite
runs each one this way: tests/test_benchmarks.py); its figures and verdicts say nothing about
the targets. Not a benchmark itself.
"""

from __future__ import annotations

import argparse
from typing import Any


def parse_args(parser: argparse.ArgumentParser, **tiny: Any) -> argparse.Namespace:
    """The script's options, with `--quick` added: it puts the `tiny` values in place of the
    defaults (an option given on the command line still wins)."""
    sizes = " ".join(f"--{name.replace('_', '-')} {value}" for name, value in tiny.items())
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run at a tiny size ({sizes}): checks the script works, measures nothing")
    if parser.parse_args().quick:
        parser.set_defaults(**tiny)
        print(f"quick run ({sizes}): the figures below say nothing about the targets", flush=True)
    return parser.parse_args()
