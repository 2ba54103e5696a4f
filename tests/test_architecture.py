"""docs/architecture.md states the shared contracts; these tests keep it equal to the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import deployment
import sizing

DOC = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text()


def block(name: str) -> str:
    return re.search(rf"<!-- {name} -->\n(.*?)\n<!-- /{name} -->", DOC, re.S).group(1)


def test_size_matrix_in_the_doc_is_the_one_sizing_computes():
    assert block("size-matrix") == sizing.size_matrix()


def test_metric_table_lists_exactly_the_model_metrics():
    rows = [line for line in block("metrics").splitlines()[2:]]
    documented = {re.match(r"\| `([a-z_]+)` \| (\w+) \| ([a-z, ]+) \| (.+) \|$", row).groups() for row in rows}
    expected = {(name, kind, ", ".join(labels), text) for name, (kind, labels, text) in deployment.METRICS.items()}
    assert documented == expected
    assert f"`{deployment.TEXTFILE_DIR}`" in DOC


def test_every_model_field_is_documented(tmp_path):
    from test_model import model

    for field in model():
        assert f"`{field}`" in DOC, field


@pytest.mark.parametrize("name", list(sizing.PRESETS))
def test_disk_rule_admits_every_preset_and_leaves_room_for_a_database(name):
    disk = sizing.disk_plan(sizing.DISK_GB[name])
    assert disk["fits"] and disk["max_database_gb"] >= sizing.MIN_DATABASE_GB


def test_rule_refuses_what_does_not_fit():
    assert not sizing.disk_plan(20)["fits"]  # 20 GB leaves no room for the 2 GB database floor
    a = sizing.admission(2, 4, 1, 50)
    assert a["fits"]["memory_steady"] and a["fits"]["cpus"]
    # The deploy peak: a second colour beside the first.
    plan = sizing.plan(4, 8, 2)
    backend, frontend = plan["services"]["backend"], plan["services"]["frontend"]
    assert sizing.deploy_peak_mb(plan) == plan["total"]["memory_limit_mb"] + 2 * backend["memory_limit_mb"] + frontend["memory_limit_mb"]
