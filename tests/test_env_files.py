"""Unit tests of secret generation and the env-file contract (hooks/env_files.py)."""

import stat
from pathlib import Path

import pytest

import env_files


def test_secrets_are_long_distinct_and_url_safe():
    values = {env_files.new_secret(40) for _ in range(200)}
    assert len(values) == 200
    assert all(len(v) == 40 and v.isalnum() for v in values)
    assert len(env_files.new_secret(64)) == 64
    with pytest.raises(ValueError):
        env_files.new_secret(8)


def test_parse_ignores_comments_and_keeps_order():
    text = "# comment\nA=1\n\nexport B=two words\n  # C=3\nD=\n"
    assert env_files.parse_env(text) == {"A": "1", "B": "two words", "D": ""}


def test_add_missing_appends_only_new_keys_and_secures_the_file(tmp_path):
    example = tmp_path / ".env.example"
    example.write_text("APP_VERSION=local\nMYSQL_PASSWORD=<generated:40>\nNEW_SECRET=<generated:48>\nNEW_SETTING=on\n")
    env_file = tmp_path / "prod.env"
    env_file.write_text("APP_VERSION=sha-abc1234\nMYSQL_PASSWORD=keepme\n")
    env_file.chmod(0o644)
    assert env_files.missing_keys(example, env_file) == ["NEW_SECRET", "NEW_SETTING"]
    assert env_files.add_missing(example, env_file) == ["NEW_SECRET", "NEW_SETTING"]
    values = env_files.parse_env(env_file.read_text())
    assert values["APP_VERSION"] == "sha-abc1234" and values["MYSQL_PASSWORD"] == "keepme"
    assert len(values["NEW_SECRET"]) == 48 and values["NEW_SETTING"] == "on"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert env_files.add_missing(example, env_file) == []  # idempotent


def test_cli_reports_missing_keys_with_the_command(tmp_path, capsys):
    (tmp_path / "env").mkdir()
    (tmp_path / "compose.staging.yaml").write_text("services: {}\n")
    (tmp_path / "env/.env.example").write_text("A=1\nB=<generated:32>\n")
    (tmp_path / "env/staging.env").write_text("A=1\n")
    assert env_files.main(["--repo", str(tmp_path)]) == 1
    assert "lacks B; add them with: make env-sync ENV=staging" in capsys.readouterr().out
    assert env_files.main(["--repo", str(tmp_path), "--add-missing"]) == 0
    assert env_files.main(["--repo", str(tmp_path)]) == 0


def test_unfilled_placeholders_are_found(tmp_path):
    env_file = tmp_path / "x.env"
    env_file.write_text("A=<generated:40>\nB=\nC=ok\n")
    assert env_files.unfilled_keys(env_file) == ["A", "B"]


def test_env_entries_follow_bundled_services():
    keys = [e["key"] for e in env_files.env_entries("prod", "petory", True, True)]
    assert "MYSQL_ROOT_PASSWORD" in keys and keys.index("COMPOSE_PROJECT_NAME") == 0
    external = [e["key"] for e in env_files.env_entries("prod", "petory", False, False)]
    assert "MYSQL_ROOT_PASSWORD" not in external and "MYSQL_PASSWORD" in external
    dev = {e["key"]: e["value"] for e in env_files.env_entries("dev", "petory", True, True)}
    assert dev["EDGE_BIND_ADDRESS"] == "127.0.0.1" and dev["COMPOSE_PROJECT_NAME"] == "petory-dev"


def test_every_entry_is_filled_the_way_env_sync_fills_it():
    for entry in env_files.env_entries("staging", "petory", True, True):
        value = env_files.fill_value(entry["value"])
        length = env_files.generated_length(entry["example"])
        if length is None:
            assert value == entry["value"] and not env_files.GENERATED.match(entry["example"])
        else:
            assert len(value) == length >= 40 and value.isalnum(), entry["key"]
    assert env_files.generated_length("<generated:48>") == 48 and env_files.generated_length("local") is None
    assert env_files.fill_value("on") == "on"


def test_env_file_partial_fills_values_through_env_files():
    partial = (Path(__file__).resolve().parent.parent / "partials" / "env-file.jinja").read_text()
    assert "fill_value(e.value)" in partial and "<generated:" not in partial and "[11:" not in partial
