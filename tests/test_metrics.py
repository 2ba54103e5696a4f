"""scripts/lib/metrics.sh: the node-exporter textfile writer every script uses (no Docker needed)."""

from __future__ import annotations

import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from deployment import METRICS, TEXTFILE_DIR
from script_helpers import bash, private_copy


@pytest.fixture(scope="module")
def deploy(rendered, tmp_path_factory):
    return private_copy(rendered, tmp_path_factory.mktemp("metrics"))


def write(deploy, directory, *calls: str):
    code = "metrics_write demo prod " + " ".join(f'"$(metric {call})"' for call in calls)
    return bash(deploy, code, libs=("common", "metrics"), env={"METRICS_TEXTFILE_DIR": str(directory)})


def test_the_default_directory_and_names_come_from_the_model(deploy):
    text = (deploy / "scripts/lib/metrics.sh").read_text()
    assert f'METRICS_DIR="${{METRICS_TEXTFILE_DIR:-{TEXTFILE_DIR}}}"' in text
    for name, (_, _, help_text) in METRICS.items():
        assert f"        {name})" in text and f'help="{help_text}"' in text


def test_exposition_format_parses_with_help_type_and_escaped_labels(deploy, tmp_path):
    proc = write(deploy, tmp_path,
                 "petory_deploy_version_info 1 env=prod app=backend 'version=sha-1\"2\\3' colour=blue",
                 "petory_deploy_last_success_timestamp_seconds 1767225600 env=prod",
                 "petory_deploy_version_info 1 env=prod app=frontend version=v1 colour=green")
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "petory_demo_prod.prom"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert sorted(os.listdir(tmp_path)) == ["petory_demo_prod.prom"]  # the temporary file was renamed
    families = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    info = families["petory_deploy_version_info"]
    assert info.type == "gauge" and info.documentation == METRICS["petory_deploy_version_info"][2]
    assert [s.labels for s in info.samples] == [
        {"env": "prod", "app": "backend", "version": 'sha-1"2\\3', "colour": "blue"},
        {"env": "prod", "app": "frontend", "version": "v1", "colour": "green"},
    ]  # grouped under one # HELP / # TYPE although written apart
    [success] = families["petory_deploy_last_success_timestamp_seconds"].samples
    assert success.value == 1767225600 and success.labels == {"env": "prod"}
    lines = path.read_text().splitlines()
    assert lines[0] == f"# HELP petory_deploy_version_info {METRICS['petory_deploy_version_info'][2]}"
    assert lines[1] == "# TYPE petory_deploy_version_info gauge"


def test_a_missing_directory_is_one_log_line_and_no_failure(deploy, tmp_path):
    proc = write(deploy, tmp_path / "absent", "petory_backup_last_size_bytes 10 env=prod")
    assert proc.returncode == 0 and proc.stderr.count("\n") == 1 and "not exported" in proc.stderr
    assert not (tmp_path / "absent").exists()


def test_a_file_in_place_of_the_directory_is_one_log_line_and_no_failure(deploy, tmp_path):
    (tmp_path / "textfile").write_text("not a directory\n")
    proc = write(deploy, tmp_path / "textfile", "petory_backup_last_size_bytes 10 env=prod")
    assert proc.returncode == 0 and "not exported" in proc.stderr
    assert (tmp_path / "textfile").read_text() == "not a directory\n"


def test_an_unknown_name_is_left_out(deploy, tmp_path):
    proc = write(deploy, tmp_path, "petory_typo 1 env=prod", "petory_backup_last_size_bytes 10 env=prod")
    assert proc.returncode == 0 and "petory_typo is not one of the exported metrics" in proc.stderr
    text = (tmp_path / "petory_demo_prod.prom").read_text()
    assert "petory_typo" not in text and 'petory_backup_last_size_bytes{env="prod"} 10' in text


def test_a_rewrite_replaces_the_file_and_values_can_be_carried_over(deploy, tmp_path):
    assert write(deploy, tmp_path, "petory_backup_last_size_bytes 10 env=prod").returncode == 0
    code = ('metrics_write demo prod "$(metric petory_backup_last_duration_seconds 3 env=prod)"\n'
            'metrics_value demo prod petory_backup_last_duration_seconds\n')
    proc = bash(deploy, code, libs=("common", "metrics"), env={"METRICS_TEXTFILE_DIR": str(tmp_path)})
    assert proc.stdout == "3\n", proc.stderr
    assert "petory_backup_last_size_bytes" not in (tmp_path / "petory_demo_prod.prom").read_text()
