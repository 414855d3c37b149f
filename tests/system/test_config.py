"""Settings from the environment, a TOML file and the command line; the README reference table."""

from __future__ import annotations

import dataclasses
import enum
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from lookalike.cli import _settings, build_parser
from lookalike.config import Bucket, ConfigError, Settings, _show, env_name, env_values, settings_reference
from lookalike.domain.image_limits import ImageLimits

ROOT = Path(__file__).resolve().parents[2]


def test_from_env_parses_each_kind_of_field() -> None:
    settings = Settings.from_env(
        {
            "LOOKALIKE_DATA_DIR": "/srv/lookalike",
            "LOOKALIKE_DATABASE_URL": "postgresql+psycopg://u@db/x",
            "LOOKALIKE_TRIAL_SEATS": "1_000",
            "LOOKALIKE_SWEEP_INTERVAL_S": "2.5",
            "LOOKALIKE_EMBED_THREADS": "",  # empty unsets an optional setting
            "LOOKALIKE_BUCKETS": "imports@acme=/srv/import, archive@* = /srv/archive",
            "LOOKALIKE_CALLBACK_HOSTS": "Hooks.Example.com,b",
            "LOOKALIKE_IMAGE_LIMITS_MAX_BYTES": "8388608",
            "LOOKALIKE_PUBLIC_URL": "https://search.example.com",  # the older name still works
            "LOOKALIKE_SERVER_KEY": "not a setting: ignored here",
        }
    )
    assert settings.data_dir == Path("/srv/lookalike")
    assert settings.database_url == "postgresql+psycopg://u@db/x"
    assert settings.trial_seats == 1000 and settings.sweep_interval_s == 2.5
    assert settings.embed_threads is None
    assert settings.buckets == {
        "imports": Bucket(Path("/srv/import"), frozenset({"acme"})),
        "archive": Bucket(Path("/srv/archive"), frozenset({"*"})),
    }
    assert settings.callback_hosts == frozenset({"hooks.example.com", "b"})
    assert settings.image_limits == ImageLimits(max_bytes=8388608)
    assert settings.public_base_url == "https://search.example.com"
    assert Settings.from_env(
        {"LOOKALIKE_PUBLIC_BASE_URL": "https://a", "LOOKALIKE_PUBLIC_URL": "https://b"}
    ) == (Settings(public_base_url="https://a"))


def test_defaults_never_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings() is the defaults; only from_env/load read variables (tests build Settings side by side)."""
    monkeypatch.setenv("LOOKALIKE_REDIS_URL", "redis://elsewhere:6379/0")
    monkeypatch.setenv("LOOKALIKE_BUCKETS", "x@*=/y")
    assert Settings().redis_url is None and Settings().buckets == {}
    assert Settings.from_env().redis_url == "redis://elsewhere:6379/0"


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Future:
    """Field types a future setting may use: all parse without any code of their own."""

    flag: bool = False
    backend: Literal["faiss", "milvus"] = "faiss"
    colour: Colour = Colour.RED
    names: tuple[str, ...] = ()
    sizes: frozenset[int] = frozenset()
    weights: Mapping[str, float] = field(default_factory=dict)
    maybe: int | None = None


def test_env_values_follow_the_annotations_generically() -> None:
    values = env_values(
        Future,
        {
            "LOOKALIKE_FLAG": "yes",
            "LOOKALIKE_BACKEND": "milvus",
            "LOOKALIKE_COLOUR": "blue",
            "LOOKALIKE_NAMES": "a, b",
            "LOOKALIKE_SIZES": "1,2,2",
            "LOOKALIKE_WEIGHTS": "x=0.5,y=2",
            "LOOKALIKE_MAYBE": "7",
        },
    )
    assert Future(**values) == Future(
        True, "milvus", Colour.BLUE, ("a", "b"), frozenset({1, 2}), {"x": 0.5, "y": 2.0}, 7
    )


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("LOOKALIKE_TRIAL_SEATS", "many"),
        ("LOOKALIKE_BUCKETS", "no-equals-sign"),
        ("LOOKALIKE_BUCKETS", "imports=/srv/import"),  # no accounts: nobody said who may read it
        ("LOOKALIKE_SWEEP_INTERVAL_S", ""),  # not optional: empty is an error, not None
    ],
)
def test_a_bad_value_names_its_variable(name: str, text: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: text})


def test_bad_literal_is_refused() -> None:
    with pytest.raises(ConfigError, match="faiss"):
        env_values(Future, {"LOOKALIKE_BACKEND": "qdrant"})


def test_every_setting_reads_back_from_its_own_default_text() -> None:
    """A field whose type the generic parser cannot handle fails here, not in an operator's deployment."""
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(value):
            continue
        text = "" if value is None or _show(value) == "(empty)" else _show(value)
        parsed = Settings.from_env({env_name(f.name): text})
        assert getattr(parsed, f.name) == value, f.name


def test_file_then_environment_then_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "lookalike.toml"
    config.write_text(
        """
data_dir = "/from/file"
database_url = "postgresql+psycopg://file@db/x"
trial_seats = 5
sweep_interval_s = 10
callback_hosts = ["A.example"]
redis_url = "redis://file:6379/0"

[buckets.imports]
path = "/srv/import"
accounts = ["acme", "globex"]

[image_limits]
min_side = 50
""",
        encoding="utf-8",
    )
    from_file = Settings.from_file(config)
    assert from_file.data_dir == Path("/from/file") and from_file.trial_seats == 5
    assert from_file.sweep_interval_s == 10.0 and isinstance(from_file.sweep_interval_s, float)
    assert from_file.callback_hosts == frozenset({"a.example"})
    assert from_file.buckets == {"imports": Bucket(Path("/srv/import"), frozenset({"acme", "globex"}))}
    assert from_file.image_limits == ImageLimits(min_side=50)

    loaded = Settings.load({"LOOKALIKE_TRIAL_SEATS": "7", "LOOKALIKE_REDIS_URL": ""}, config)
    assert loaded.trial_seats == 7 and loaded.redis_url is None  # the environment wins over the file
    assert loaded.database_url == "postgresql+psycopg://file@db/x"

    for name in [n for n in list(__import__("os").environ) if n.startswith("LOOKALIKE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LOOKALIKE_TRIAL_SEATS", "9")
    args = build_parser().parse_args(["serve", "--config", str(config), "--data-dir", str(tmp_path / "d")])
    settings = _settings(args)
    assert settings.data_dir == tmp_path / "d"  # the option wins over the file
    assert settings.trial_seats == 9 and settings.redis_url == "redis://file:6379/0"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trail_seats = 5\n", "unknown setting"),  # a typo is an error, not a silently unused key
        ("trial_seats = 'x'\n", "trial_seats"),
        ("image_limits = 5\n", "must be a table"),
        ("trial_seats = \n", "cannot read"),
    ],
)
def test_bad_config_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        Settings.from_file(config)


def test_cli_reports_a_bad_config_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("trail_seats = 5\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "lookalike.cli", "admin", "list-accounts", "--config", str(config)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "unknown setting(s) trail_seats" in done.stderr


def test_readme_reference_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for doc in settings_reference():
        assert f"| `{doc.name}` | `{doc.env}` |" in readme, f"{doc.name}: run scripts/settings-table --write"
        assert doc.meaning, f"{doc.name} has no comment in lookalike/config.py to explain it"
    check = subprocess.run(
        [str(ROOT / "scripts" / "settings-table"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
