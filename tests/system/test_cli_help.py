"""`lookalike` explains itself: help for every command and option (the parser walked, not a list), --version,
and errors as one line with the fix instead of a traceback. Runs the installed `lookalike` executable."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import lookalike
from alibaba_live import live_server
from conftest import Tenant
from lookalike.cli import build_parser
from lookalike.cli.errors import explain
from lookalike.service.container import Services
from server import free_port

LOOKALIKE = Path(sys.executable).with_name("lookalike")  # the console script next to this interpreter


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert LOOKALIKE.exists(), f"{LOOKALIKE}: install the package (pip install -e .)"
    return subprocess.run([str(LOOKALIKE), *args], capture_output=True, text=True, timeout=120, env=env)


def squeezed(text: str) -> str:
    """Text without whitespace: help wraps lines (and breaks words at hyphens) to the terminal's width."""
    return "".join(text.split())


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser of the command line, nested subcommands included, by its words after `lookalike`."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


PARSERS = dict(commands(build_parser()))


def test_the_walk_reaches_nested_commands() -> None:
    # Guards the walk itself: were it to find only the top, every help test below would pass vacuously.
    assert {("serve",), ("import",), ("admin", "create-account"), ("tenant", "order")} <= set(PARSERS)


@pytest.mark.parametrize("path", list(PARSERS), ids=lambda path: " ".join(path) or "lookalike")
def test_help_describes_the_command_and_every_option(path: tuple[str, ...]) -> None:
    parser = PARSERS[path]
    done = run_cli(*path, "--help")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    shown = squeezed(done.stdout)
    assert parser.description, f"lookalike {' '.join(path)} has no description"
    assert squeezed(parser.description) in shown
    formatter = parser._get_formatter()
    for action in parser._actions:
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"{name} of {path} has no help"
        for option in action.option_strings:
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", done.stdout), f"{option} of {path}"
        # The help as argparse prints it (defaults filled in) is on the page.
        assert squeezed(formatter._expand_help(action)) in shown, f"{name} of {path}"
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help, f"{choice.dest} of {path} has no summary"
                assert choice.dest in done.stdout and squeezed(choice.help) in shown


def test_defaults_are_shown_where_they_tell_something() -> None:
    page = squeezed(run_cli("import", "--help").stdout)
    assert squeezed("pictures a worker embeds at once (default: 16)") in page
    assert squeezed("(default: local)") in page  # --engine
    assert squeezed("(default: None)") not in page  # an unset default says where the value comes from


def test_version() -> None:
    done = run_cli("--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"lookalike {lookalike.__version__}\n", "")


# --- errors: one line on stderr, `lookalike: error: <what> — <how to fix>`, no traceback --------------


def assert_one_line(done: subprocess.CompletedProcess[str], status: int, *needles: str) -> str:
    assert done.returncode == status, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith("lookalike: error: ") and " — " in line, line
    for needle in needles:
        assert needle in line, line
    return line


def test_a_usage_mistake_names_the_help_to_read() -> None:
    assert_one_line(run_cli("import"), 2, "required", "see `lookalike import --help`")
    assert_one_line(run_cli(), 2, "COMMAND", "see `lookalike --help`")


def test_a_configuration_error_names_the_setting_and_the_reference(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("trail_seats = 5\n", encoding="utf-8")
    done = run_cli("admin", "list-accounts", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert_one_line(done, 2, "unknown setting(s) trail_seats", "Configuration reference")


def test_a_database_that_cannot_be_reached(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://lookalike:pw@127.0.0.1:{free_port()}/nowhere"  # nothing listens there
    done = run_cli("admin", "list-accounts", "--database-url", url, "--data-dir", str(tmp_path / "d"))
    assert_one_line(done, 1, "cannot use the database", "Connection refused", "--database-url")


def test_a_port_in_use_is_said_before_the_model_loads(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("serve", "--port", str(port), "--data-dir", str(tmp_path / "d"))
    assert_one_line(done, 1, f"127.0.0.1:{port} is already in use", "another port with --port")
    assert not (tmp_path / "d").exists()  # refused before anything was made


def test_a_missing_import_source(tmp_path: Path) -> None:
    done = run_cli("import", str(tmp_path / "nope"), "--instance", "shop", "--key-id", "k", "--secret", "s")
    assert_one_line(done, 1, f"no such directory or manifest: {tmp_path / 'nope'}", "a .jsonl manifest")


def test_a_ray_cluster_that_cannot_be_reached(tmp_path: Path) -> None:
    """Said at once: Ray itself would retry its connection for minutes."""
    pictures = tmp_path / "pics"
    pictures.mkdir()
    address = f"127.0.0.1:{free_port()}"
    done = run_cli(
        "import", str(pictures), "--instance", "shop", "--engine", "ray", "--ray-address", address,
        "--data-dir", str(tmp_path / "d"),
    )  # fmt: skip
    assert_one_line(done, 1, f"cannot reach the Ray cluster at {address}", "ray start --head")


def test_debug_adds_the_traceback(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("trail_seats = 5\n", encoding="utf-8")
    base = ["admin", "list-accounts", "--config", str(config), "--data-dir", str(tmp_path / "d")]
    for done in (
        run_cli(*base, "--debug"),
        run_cli("--debug", *base),
        run_cli(*base, env={**os.environ, "LOOKALIKE_DEBUG": "1"}),
    ):
        assert done.returncode == 2 and "Traceback" in done.stderr and "ConfigError" in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("lookalike: error: configuration: ")


def test_an_unexpected_exception_is_one_line_with_the_debug_hint() -> None:
    line = explain(RuntimeError("boom\nsecond line"), "lookalike serve").line()
    assert line == (
        "lookalike: error: unexpected RuntimeError: boom second line — re-run with --debug (or "
        "LOOKALIKE_DEBUG=1) to see the traceback, and report it if it is a bug"
    )


# --- against a live server ---------------------------------------------------------------------------------


def test_the_server_refusing_the_key_or_the_input(services: Services, tenant: Tenant, tmp_path: Path) -> None:
    with live_server(services) as endpoint:
        url = f"http://{endpoint}"
        wrong = ["--url", url, "--key-id", tenant.key_id, "--secret", tenant.secret + "x"]
        right = ["--url", url, "--key-id", tenant.key_id, "--secret", tenant.secret]
        refused = run_cli("tenant", "catalogue", *wrong)
        assert_one_line(refused, 1, f"{url} refused the AccessKey", "check --key-id/--secret")
        assert "code" in json.loads(refused.stdout)  # the answer itself still goes to stdout, as before

        pictures = tmp_path / "pics"
        pictures.mkdir()
        done = run_cli("import", str(pictures), "--instance", tenant.instance.name, *wrong)
        assert_one_line(done, 1, "refused the AccessKey", "lookalike admin create-key")
        done = run_cli("import", str(pictures), "--instance", "nope", *right)
        assert_one_line(done, 1, "no instance named 'nope'", "check --instance")

        manifest = tmp_path / "pictures.jsonl"
        manifest.write_text('{"path": "a.jpg"}\n{"product_id": "p2"}\n', encoding="utf-8")
        done = run_cli(
            "import", str(manifest), "--instance", tenant.instance.name, "--no-progress",
            "--data-dir", str(tmp_path / "d"), *right,
        )  # fmt: skip
        assert_one_line(done, 1, f"{manifest}:2: bad manifest line", 'JSON object with a "path"')
