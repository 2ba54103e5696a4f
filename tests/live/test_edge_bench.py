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
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in lines if line.startswith("| ")]
    rows = {row[0]: row for row in cells}
    # h2load's rows: every server over both protocols, each with traffic and not one failed request.
    servers = ("stock nginx", "generated edge")
    load = {(row[0], row[1]): row for row in cells if row[0] in servers}
    assert set(load) == {(server, protocol) for server in servers for protocol in ("HTTP/1.1", "HTTP/2")}, sorted(load)
    for row in load.values():
        assert int(row[3]) > 100 and float(row[4].replace(",", "")) > 50 and row[6] == "0", row
    assert re.search(r"edge/stock = HTTP/1\.1 \d+\.\d\d, HTTP/2 \d+\.\d\d", text)
    assert rows["gzip"][1] == "gzip" and int(rows["gzip"][3].rstrip("%")) < 60, rows["gzip"]
    for version in ("TLSv1.2", "TLSv1.3"):
        assert int(rows[version][2].rstrip("%")) >= 90, rows[version]  # sessions resume from the shared cache
