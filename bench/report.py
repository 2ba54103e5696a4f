"""What every benchmark shares: Markdown tables and the command line (--light, --runs)."""

from __future__ import annotations

import argparse
import os
from typing import Callable


def table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    return [f"## {title}", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]


def cli(run: Callable[[bool, int], list[str]], doc: str, light_help: str, runs_help: str,
        argv: list[str] | None = None, runs_default: int = 3) -> int:
    """`--light` (the default under CI=true) and `--runs N`, then print what `run` returns."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--light", action="store_true", default=os.environ.get("CI") == "true",
                        help=f"{light_help} (default under CI=true)")
    parser.add_argument("--runs", type=int, default=runs_default, help=runs_help)
    args = parser.parse_args(argv)
    print("\n".join(run(args.light, args.runs)))
    return 0
