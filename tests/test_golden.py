"""Every answer set renders as at the baseline commit, apart from the differences tests/golden_allow.yaml explains."""

from __future__ import annotations

import pytest

import golden
from answer_sets import SUPPORTED


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    return golden.baseline_template(tmp_path_factory.mktemp("golden") / "baseline")


def test_allow_list_entries_give_reasons():
    assert all(entry["reason"].strip() for entry in golden.allow_list())


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_render_differs_from_the_baseline_only_as_explained(baseline, tmp_path, name):
    old = golden.render(baseline, tmp_path / "old", SUPPORTED[name])
    new = golden.render(golden.ROOT, tmp_path / "new", SUPPORTED[name], vcs_ref="HEAD")
    found = golden.unexplained(name, old, new)
    assert not found, f"{len(found)} difference(s) not in tests/golden_allow.yaml:\n" + "\n".join(
        d.excerpt() for d in found[:15])
