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


@pytest.fixture
def repo(tmp_path):
    """A deployment folder with all three environments and their env files, complete."""
    (tmp_path / "env").mkdir()
    (tmp_path / "env/.env.example").write_text("A=1\nB=<generated:32>\n")
    for env in env_files.ENVIRONMENTS:
        (tmp_path / f"compose.{env}.yaml").write_text("services: {}\n")
        (tmp_path / f"env/{env}.env").write_text("A=1\nB=kept-secret-of-the-database\n")
    return tmp_path


@pytest.mark.parametrize("env", env_files.SERVER_ENVIRONMENTS)
def test_env_sync_does_not_make_a_server_env_file_from_nothing(repo, capsys, env):
    """New secrets would lock the server's database out: the file comes from the secret store."""
    (repo / f"env/{env}.env").unlink()
    assert env_files.main(["--repo", str(repo), "--env", env, "--add-missing"]) == 1
    assert not (repo / f"env/{env}.env").exists()
    err = capsys.readouterr().err
    assert err == (f"env-sync: {repo}/env/{env}.env is missing: copy it from the secret store (new secrets would not "
                   f"match the {env} database); only for a new server: python3 scripts/env_files.py --env {env} "
                   "--add-missing --force\n")
    assert env_files.main(["--repo", str(repo), "--env", env]) == 1  # the check gives the same advice
    assert "make env-sync" not in capsys.readouterr().err
    assert env_files.main(["--repo", str(repo), "--env", env, "--add-missing", "--force"]) == 0
    assert f"{env}.env: created with new secrets" in capsys.readouterr().out
    assert len(env_files.parse_env((repo / f"env/{env}.env").read_text())["B"]) == 32


def test_env_sync_still_completes_an_existing_server_env_file(repo):
    (repo / "env/.env.example").write_text("A=1\nB=<generated:32>\nC=<generated:40>\n")
    assert env_files.main(["--repo", str(repo), "--env", "prod", "--add-missing"]) == 0
    values = env_files.parse_env((repo / "env/prod.env").read_text())
    assert values["B"] == "kept-secret-of-the-database" and len(values["C"]) == 40


def test_env_sync_makes_a_dev_env_file(repo, capsys):
    (repo / "env/dev.env").unlink()
    assert env_files.main(["--repo", str(repo), "--env", "dev"]) == 1
    assert capsys.readouterr().err == f"env-sync: {repo}/env/dev.env is missing: create it with: make env-sync ENV=dev\n"
    assert env_files.main(["--repo", str(repo), "--env", "dev", "--add-missing"]) == 0
    assert set(env_files.parse_env((repo / "env/dev.env").read_text())) == {"A", "B"}


def test_env_sync_refuses_an_environment_the_repository_lacks(repo, capsys):
    (repo / "compose.dev.yaml").unlink()
    (repo / "env/dev.env").unlink()
    assert env_files.main(["--repo", str(repo), "--env", "dev", "--add-missing"]) == 2
    assert capsys.readouterr().err == (f"env-sync: dev is not an environment of {repo} (no compose.<env>.yaml); "
                                       "use one of: staging, prod\n")
    assert not (repo / "env/dev.env").exists()


def test_server_environments_are_the_models():
    import deployment

    assert env_files.ENVIRONMENTS == deployment.ENVIRONMENTS
    assert env_files.SERVER_ENVIRONMENTS == deployment.SERVER_ENVIRONMENTS


def test_set_replaces_values_in_place_without_a_secret_on_the_command_line(repo, capsys):
    """What scripts/rotate-secret.sh does: the old key's value moves, a new secret is made."""
    env_file = repo / "env/prod.env"
    env_file.write_text("# header\nA=1\nB=old-signing-key\nC=2\n")
    env_file.chmod(0o600)
    assert env_files.main(["--repo", str(repo), "--env", "prod", "--set", "C=<key:B>", "--set", "B=<generated:40>"]) == 0
    assert capsys.readouterr().out == f"env-sync: {env_file}: set C, B\n"
    text = env_file.read_text()
    values = env_files.parse_env(text)
    assert text.startswith("# header\nA=1\n") and values["C"] == "old-signing-key"
    assert len(values["B"]) == 40 and values["B"] != "old-signing-key"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert sorted(path.name for path in (repo / "env").iterdir()) == sorted([".env.example", *(
        f"{env}.env" for env in env_files.ENVIRONMENTS)])  # no temporary file left


@pytest.mark.parametrize("argv,message", [
    (["--env", "prod", "--set", "D=1"], "has no D; run make env-sync first"),
    (["--env", "prod", "--set", "A=<key:NOPE>"], "has no NOPE; run make env-sync first"),
])
def test_set_refuses_unknown_keys_and_changes_nothing(repo, capsys, argv, message):
    before = (repo / "env/prod.env").read_bytes()
    assert env_files.main(["--repo", str(repo), *argv]) == 1
    assert message in capsys.readouterr().err
    assert (repo / "env/prod.env").read_bytes() == before


def test_set_takes_one_environment(repo):
    with pytest.raises(SystemExit) as exit_info:
        env_files.main(["--repo", str(repo), "--set", "A=2"])
    assert exit_info.value.code == 2


def test_monitoring_keys_are_only_in_the_watched_environments_file(tmp_path):
    import deployment

    monitoring = {"mode": "bundled", "env": deployment.MONITORED_ENV, "receivers": {"webhook": True}}
    keys = {env: [e["key"] for e in env_files.env_entries(env, "petory", True, True, monitoring)]
            for env in env_files.ENVIRONMENTS}
    only = set(keys["prod"]) - set(keys["dev"])
    assert only == set(env_files.ONLY_IN) and set(env_files.ONLY_IN.values()) == {deployment.MONITORED_ENV}
    assert keys["dev"] == keys["staging"]
    # env/.env.example (rendered for prod) lists them; a dev file without them is complete.
    example = tmp_path / ".env.example"
    example.write_text("".join(f"{k}=x\n" for k in keys["prod"]))
    dev = tmp_path / "dev.env"
    dev.write_text("".join(f"{k}=x\n" for k in keys["dev"]))
    assert env_files.missing_keys(example, dev) == []
    prod = tmp_path / "prod.env"
    prod.write_text("".join(f"{k}=x\n" for k in keys["dev"]))
    assert env_files.missing_keys(example, prod) == sorted(only, key=keys["prod"].index)
    assert env_files.add_missing(example, dev) == []


def test_the_webhook_url_is_pasted_by_the_operator_never_generated():
    monitoring = {"mode": "bundled", "env": "prod", "receivers": {"webhook": True}}
    entry = next(e for e in env_files.env_entries("prod", "petory", True, True, monitoring) if e["key"] == "ALERT_WEBHOOK_URL")
    assert entry["value"] == "" and entry["secret"] and entry["key"] in env_files.SUPPLIED_SECRETS
