"""Unit tests of secret generation and the env-file contract (hooks/env_files.py)."""

import stat

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
