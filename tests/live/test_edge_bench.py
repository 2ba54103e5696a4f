"""Runs bench/edge_bench.py in light mode and prints its tables in the test report."""

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


@pytest.mark.bench
def test_edge_benchmark_prints_its_tables(docker_engine, summary):
    import edge_bench

    lines = edge_bench.run(light=True, log=lambda _: None)
    summary.extend(lines)
    text = "\n".join(lines)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]] for line in lines
            if line.startswith("| ")}
    for server in ("stock nginx (default.conf)", "generated edge"):
        assert float(rows[server][3].replace(",", "")) > 50 and rows[server][4] == "0", rows[server]
    assert re.search(r"edge/stock = \d+\.\d\d", text)
    assert rows["gzip"][1] == "gzip" and int(rows["gzip"][3].rstrip("%")) < 60, rows["gzip"]
    for version in ("TLSv1.2", "TLSv1.3"):
        assert int(rows[version][2].rstrip("%")) >= 90, rows[version]  # sessions resume from the shared cache
