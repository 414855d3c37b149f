"""Settings for one Lookalike process (the embedded default needs none of them set).

Every field can be set from the environment (LOOKALIKE_<FIELD_NAME_UPPER>, e.g. LOOKALIKE_REDIS_URL) or from
a TOML file whose keys are the field names (`lookalike serve --config FILE`); the environment wins over the
file, command-line options over both. Values are parsed from the field's annotation, so a new field needs
no parsing code: int, float, str, bool, Path, Literal, enums, optionals ("" means None in the environment),
sets and sequences ("a,b"), mappings ("name=value,other=value2"), and nested dataclasses
(LOOKALIKE_IMAGE_LIMITS_MAX_BYTES, or an [image_limits] table). A field with special syntax names its
parser in `field(metadata={"parse": fn})`. README's "Configuration reference" is generated from this class
(scripts/settings-table), comments included: the comment above a field and the one after it say what it is.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import io
import os
import textwrap
import tokenize
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, Union, cast, get_args, get_origin

from lookalike.domain.image_limits import ImageLimits
from lookalike.domain.loose_values import CONFIG_YES_NO, parse_bool

EVERY_ACCOUNT: Final = "*"


@dataclass(frozen=True)
class Bucket:
    """An IncreaseInstance bucket: a local directory and the accounts (ids or names) that may read it."""

    root: Path
    accounts: frozenset[str]  # EVERY_ACCOUNT lets every account use it (a single-tenant server)

    def allows(self, account_id: str, account_name: str) -> bool:
        return bool({EVERY_ACCOUNT, account_id, account_name} & self.accounts)


BUCKET_FORMAT: Final = "NAME@ACCOUNT[+ACCOUNT...]=DIR (NAME@*=DIR lets every account use it)"


def _bucket(name: str, path: str, accounts: list[str], entry: str) -> tuple[str, Bucket]:
    name, path = name.strip(), path.strip()
    names = frozenset(a.strip() for a in accounts if a.strip())
    if not name or not path:
        raise ValueError(f"bucket mapping {entry!r} is not {BUCKET_FORMAT}")
    if not names:
        # A bucket nobody was given would be readable by every tenant: say who may use it.
        raise ValueError(f"bucket mapping {entry!r} names no accounts: write {BUCKET_FORMAT}")
    return name, Bucket(Path(path), names)


def parse_buckets(text: str) -> dict[str, Bucket]:
    """Parse "name@acme+globex=/path,other@*=/path2"; a malformed entry is an error, never dropped."""
    buckets: dict[str, Bucket] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        left, sep, path = entry.partition("=")
        if not sep:
            raise ValueError(f"bucket mapping {entry!r} is not {BUCKET_FORMAT}")
        name, _, accounts = left.partition("@")
        key, bucket = _bucket(name, path, accounts.split("+"), entry)
        buckets[key] = bucket
    return buckets


def buckets_from_toml(raw: object) -> dict[str, Bucket]:
    """`[buckets.NAME]` tables with `path` and `accounts` (a list of account ids or names, or ["*"])."""
    if not isinstance(raw, Mapping):
        raise ValueError("[buckets] must be a table of `[buckets.NAME]` tables with path and accounts")
    buckets: dict[str, Bucket] = {}
    for name, spec in raw.items():
        if not isinstance(spec, Mapping) or not isinstance(spec.get("path"), str):
            raise ValueError(f'[buckets.{name}] needs path = "/dir" and accounts = ["ACCOUNT", ...]')
        accounts = spec.get("accounts")
        if isinstance(accounts, str):
            accounts = [accounts]
        if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
            raise ValueError(f'[buckets.{name}] accounts must be a list of account ids or names, or ["*"]')
        key, bucket = _bucket(str(name), spec["path"], accounts, f"[buckets.{name}]")
        buckets[key] = bucket
    return buckets


def parse_hosts(text: str) -> frozenset[str]:
    return frozenset(h.strip().lower() for h in text.split(",") if h.strip())


@dataclass(frozen=True)
class RequestLimits:
    """Bounds on one HTTP request, enforced while it is read, before routing or authentication."""

    # Largest request body on any route, in bytes; 0: twice image_limits.max_bytes plus 1 MiB (room for a
    # base64 picture, urlencoded, and the other fields).
    max_body_bytes: int = 0
    max_header_bytes: int = 16 * 1024  # the request line and all headers together
    max_headers: int = 100  # header lines of one request
    max_form_fields: int = 1000  # fields of one form body (urlencoded or multipart) or query string

    def body_bytes(self, image_limits: ImageLimits) -> int:
        return self.max_body_bytes or image_limits.max_bytes * 2 + 1024 * 1024


@dataclass(frozen=True)
class Settings:
    # Local state of this process: the SQLite database, vector indexes, server and link keys, models, uploads.
    data_dir: Path = Path("./data")
    # SQLAlchemy URL of the SQL store, e.g. postgresql+psycopg://user:pass@host/db. Unset: SQLite in data_dir.
    database_url: str | None = None
    # SQLite PRAGMA synchronous: NORMAL keeps every commit across a crash; FULL also across power loss.
    sqlite_synchronous: str = "NORMAL"
    image_limits: ImageLimits = field(default_factory=ImageLimits)
    request_limits: RequestLimits = field(default_factory=RequestLimits)
    # Instances with fewer pictures are searched exactly (float16 rows), without the IVF index
    # (lookalike.vectors.planner).
    index_exact_below: int = 10_000
    index_save_interval_s: float = 30.0  # how often indexes are saved; the change log replays the rest
    embed_max_batch: int = 16  # most pictures embedded in one model run (micro-batching)
    embed_max_wait_ms: float = 3.0  # how long a picture waits for others to fill a batch
    embed_threads: int | None = None  # ONNX Runtime intra-op threads; unset: its default (all cores)
    # Where the image model runs: auto = CUDA when onnxruntime-gpu and a GPU are there, else CPU; cuda asked
    # for and absent falls back to CPU with a warning. The log says which at start.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Advance uploads (AuthorizeFileUpload + OSS PostObject; api/alibaba/upload.py). The "host:port" clients
    # reach the HTTPS upload listener at; the SDK posts to https://{Bucket}.{Endpoint}/, so it is split at its
    # first dot into Bucket and Endpoint. None: uploads disabled (plain base64 PicContent still works).
    upload_public_host: str | None = None
    upload_ttl_s: float = 2 * 3600.0  # upload window after AuthorizeFileUpload, then object lifetime
    upload_max_pending: int = 1000  # live upload grants per account
    # PEM certificate and key of the upload listener; unset: self-signed, generated once into
    # <data_dir>/upload-tls/.
    upload_cert: Path | None = None
    upload_key: Path | None = None  # the private key of upload_cert
    admin_name: str = "admin"  # the operator account created on the first start
    model_cache_dir: Path | None = None  # default: <data_dir>/models
    catalogue_path: Path | None = None  # default: the packaged catalogue (lookalike/data/catalogue.json)
    trial_seats: int = 100  # free-trial seats until the operator sets a number
    sweep_interval_s: float = 60.0  # seconds between lifecycle sweeps (notices, auto-renew, expiry, release)
    # Export/batch tasks: base of the signed download links (MetaUrl, ErrorUrl), i.e. what clients reach this
    # server at. `lookalike serve` defaults it to its own listening address. Also read from the older
    # LOOKALIKE_PUBLIC_URL.
    public_base_url: str = field(default="http://127.0.0.1:8000", metadata={"env_aliases": ("PUBLIC_URL",)})
    # IncreaseInstance buckets: name -> local directory and the accounts (ids or names) that may use it
    # ("imports@acme+globex=/srv/import,shared@*=/srv/shared"; TOML: [buckets.NAME] path, accounts).
    buckets: Mapping[str, Bucket] = field(
        default_factory=dict, metadata={"parse": parse_buckets, "from_toml": buckets_from_toml}
    )
    # Export and batch task workers per process. Tasks are served round-robin across accounts (then
    # instances); a batch task hands its worker back after task_slice_s, so one tenant's long import
    # delays another tenant's task by at most a slice.
    task_workers: int = 2
    task_slice_s: float = 2.0  # seconds a batch task runs before it goes back behind the other tenants
    # Ray cluster that IncreaseInstance tasks analyse their pictures on (decode, embed, local features), as
    # `lookalike import --engine ray` does: "HOST:PORT" of its head (this server joined to it as a node) or
    # "auto"; needs the [ray] extra, and the buckets mounted at the same paths on every node. Empty: on this
    # server. Unreachable at start: on this server, said in the start-up log (deploy/README.md).
    ray_address: str = ""
    # Hosts a task's CallbackAddress may name (exact host names, "a.example,b").
    callback_hosts: frozenset[str] = field(default=frozenset(), metadata={"parse": parse_hosts})
    callback_timeout_s: float = 5.0  # seconds one task-completion callback request may take
    # Accept 2019-03-25 ROA requests (HMAC-SHA1, `Authorization: acs`) without x-acs-signature-nonce, as the
    # legacy aliyun-python-sdk-core sends them. Such a request must carry a Content-MD5 of its body (ROA
    # signs no body otherwise), and the same bytes can be replayed within the 15-minute Date window.
    alibaba_roa_allow_no_nonce: bool = False
    # Shared state for several replicas: rate limits, signature nonces and the sweep lock live in this Redis
    # (redis://host:port/db; needs the [scale] extra). None: in memory per process and the SQL job_leases.
    redis_url: str | None = None
    # Prefix of every key Lookalike writes, so several deployments (or test runs) can share one Redis.
    redis_prefix: str = "lookalike:"
    # Vector index: "faiss" (in process, one copy per replica under data_dir/index) or "milvus" (one copy
    # shared by every replica; needs the [scale] extra and milvus_uri).
    vector_backend: Literal["faiss", "milvus"] = "faiss"
    # Milvus endpoint, e.g. http://127.0.0.1:19530 (a standalone server or a cluster's proxy).
    milvus_uri: str | None = None
    milvus_token: str | None = None  # Milvus credentials ("user:password" or an API key), if it has auth on
    # Start of every Milvus collection name Lookalike creates, so deployments (or test runs) can share one.
    milvus_collection_prefix: str = "lookalike_"
    # Milvus search consistency: Strong waits for the server's time tick (~200 ms per search on 2.3.5); hits
    # are re-read from SQL anyway, so Bounded (or Eventually) is enough.
    milvus_consistency: Literal["Strong", "Bounded", "Session", "Eventually"] = "Bounded"
    # Milvus index of the shared collection: IVF_SQ8 (1 byte/dim, for tens of millions), IVF_PQ (smaller),
    # DISKANN (graph on disk), HNSW or IVF_FLAT (float32 in memory). Read when the collection is created.
    milvus_index_type: Literal["IVF_SQ8", "IVF_PQ", "DISKANN", "HNSW", "IVF_FLAT"] = "IVF_SQ8"
    # Keep a small JPEG of every added picture so the web console can show pictures and search results
    # (1-11 KB each at the default size, 5 KB on average; deploy/README.md counts them in the sizing guide).
    thumbnails: bool = True
    thumbnail_size: int = 160  # longest side of a thumbnail, in pixels
    # Instances whose package holds more pictures keep no thumbnails: at ~5 KB each they would be most of
    # the SQL store (deploy/README.md sizes both). Unset: every instance keeps them.
    thumbnails_max_capacity: int | None = 1_000_000
    # Store ~2 KB of local features (ORB) per picture and check a search's first 10 hits against them: it
    # finds scribbled, pasted and cropped copies that the global vectors rank second (bench/README.md,
    # "geometric check"). Off: nothing is stored and searches rank by the vectors alone.
    copy_verification: bool = True
    console_signup: bool = False  # tenants may create their own account and password at /console/sign-up
    # Send the console's session cookie only over HTTPS (the Secure flag). Browsers treat http://localhost and
    # http://127.0.0.1 as secure, so a local start works with it on; keep it on behind TLS.
    console_secure_cookies: bool = True
    console_session_ttl_s: float = 12 * 3600.0  # a console session ends this long after sign-in
    # Log lines as plain text, or as one JSON object each (time, level, logger, message, and the request_id
    # that the response's X-Request-Id also carries) for a log collector.
    log_format: Literal["text", "json"] = "text"
    # One log line per HTTP request (logger lookalike.access: method, route, status, duration, request id).
    access_log: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, base: Settings | None = None) -> Settings:
        """`base` (default: the defaults) with every LOOKALIKE_<FIELD> variable of `environ` applied."""
        environ = os.environ if environ is None else environ
        return _apply(base or cls(), env_values(cls, environ), "environment")

    @classmethod
    def from_file(cls, path: Path, *, base: Settings | None = None) -> Settings:
        """`base` (default: the defaults) with a TOML file's keys (field names) applied."""
        return _apply(base or cls(), file_values(cls, path), str(path))

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        config_file: Path | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Defaults, then the config file, then the environment, then the command line's `options` (field
        name -> value): the operator's deployment order."""
        base = cls.from_file(config_file) if config_file is not None else cls()
        return cls.from_env(environ, base=base).with_options(options or {})

    def with_options(self, options: Mapping[str, Any]) -> Settings:
        """These settings with command-line values (field name -> value) replaced in: the last word."""
        return _apply(self, options, "command line")

    @staticmethod
    def configured(name: str, environ: Mapping[str, str], config_file: Path | None = None) -> bool:
        """Whether the config file or the environment sets field `name` (a command's own default for it must
        then give way)."""
        return name in env_values(Settings, environ) or (
            config_file is not None and name in file_values(Settings, config_file)
        )

    @property
    def models_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"


# --- loading from the environment and from files -------------------------------------------------------

ENV_PREFIX: Final = "LOOKALIKE_"
_D = TypeVar("_D")


class ConfigError(ValueError):
    """A setting's value does not fit its field (the message names the variable or file and the field)."""


def env_name(field_name: str, prefix: str = ENV_PREFIX) -> str:
    return prefix + field_name.upper()


def _fields(cls: type[Any]) -> list[tuple[dataclasses.Field[Any], Any]]:
    """Each field with its resolved annotation (the module uses postponed annotations)."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.init]


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def env_values(cls: type[Any], environ: Mapping[str, str], prefix: str = ENV_PREFIX) -> dict[str, Any]:
    """Parsed values of the variables in `environ` that name a field of `cls`; nested dataclasses give dicts.

    Unknown LOOKALIKE_* variables are ignored: some are read elsewhere (LOOKALIKE_SERVER_KEY)."""
    values: dict[str, Any] = {}
    for f, tp in _fields(cls):
        if _is_dataclass_type(tp):
            nested = env_values(tp, environ, env_name(f.name, prefix) + "_")
            if nested:
                values[f.name] = nested
            continue
        names = [env_name(f.name, prefix)] + [prefix + alias for alias in f.metadata.get("env_aliases", ())]
        for name in names:
            if name in environ:
                values[f.name] = _parse_text(environ[name], tp, f, where=name)
                break
    return values


def file_values(cls: type[Any], path: Path) -> dict[str, Any]:
    """Values of a TOML file's keys (field names; a nested dataclass is a table); an unknown key is an error,
    so a misspelt setting never goes silently unused."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    return _table_values(cls, document, str(path))


def _table_values(cls: type[Any], table: Mapping[str, Any], where: str) -> dict[str, Any]:
    known = {f.name: (f, tp) for f, tp in _fields(cls)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for key, raw in table.items():
        f, tp = known[key]
        if _is_dataclass_type(tp):
            if not isinstance(raw, Mapping):
                raise ConfigError(f"{where}: {key} must be a table")
            values[key] = _table_values(tp, raw, f"{where} [{key}]")
        else:
            values[key] = _coerce(raw, tp, f, where=f"{where}: {key}")
    return values


def _apply(base: _D, values: Mapping[str, Any], where: str) -> _D:
    """`base` with `values` replaced in; dict values of dataclass fields merge into the nested dataclass."""
    changes: dict[str, Any] = {}
    for name, value in values.items():
        current = getattr(base, name)
        if isinstance(value, dict) and dataclasses.is_dataclass(current) and not isinstance(current, type):
            changes[name] = _apply(current, value, where)
        else:
            changes[name] = value
    try:
        return cast(_D, dataclasses.replace(cast(Any, base), **changes))
    except (TypeError, ValueError) as exc:  # a dataclass's own __post_init__ checks
        raise ConfigError(f"{where}: {exc}") from exc


def _parse_text(text: str, tp: Any, f: dataclasses.Field[Any] | None, *, where: str) -> Any:
    """One environment variable's text as a value of type `tp`."""
    try:
        parser: Callable[[str], Any] | None = f.metadata.get("parse") if f is not None else None
        if parser is not None:
            return parser(text)
        return _from_text(text, tp)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}={text!r}: {exc}") from exc


def _from_text(text: str, tp: Any) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if type(None) in args and text.strip() == "":
            return None
        errors = []
        for option in options:
            try:
                return _from_text(text, option)
            except (ValueError, TypeError) as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors))
    if origin is Literal:
        for choice in args:
            if str(choice) == text.strip():
                return choice
        raise ValueError(f"expected one of {', '.join(map(str, args))}")
    if tp is bool:
        try:
            return parse_bool(text, CONFIG_YES_NO)
        except ValueError:
            raise ValueError("expected true/false (1/0, yes/no, on/off)") from None
    if tp in (int, float):
        return tp(text.strip().replace("_", ""))
    if tp is str:
        return text
    if tp is Path:
        return Path(text.strip()).expanduser()
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(text.strip())
    items = [item.strip() for item in text.split(",") if item.strip()]
    if origin in (Mapping, dict, typing.Mapping):
        key_type, value_type = args or (str, str)
        result = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"{item!r} is not key=value")
            result[_from_text(key.strip(), key_type)] = _from_text(value.strip(), value_type)
        return result
    if origin in (frozenset, set, list, tuple):
        item_type = args[0] if args else str
        parsed = [_from_text(item, item_type) for item in items]
        return origin(parsed)
    raise TypeError(f"no parser for {tp!r}: give the field metadata={{'parse': fn}}")


def _coerce(raw: Any, tp: Any, f: dataclasses.Field[Any], *, where: str) -> Any:
    """A TOML value as a value of type `tp`: strings parse like the environment's, the rest convert."""
    if isinstance(raw, str):
        return _parse_text(raw, tp, f, where=where)
    if f.metadata.get("from_toml") is not None:
        try:
            return f.metadata["from_toml"](raw)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    if f.metadata.get("parse") is not None and isinstance(raw, list | Mapping):
        # A field with its own parser (host names lower-cased, bucket paths checked) gets the same text
        # from a TOML array or table as it would from the environment.
        items = raw.items() if isinstance(raw, Mapping) else None
        text = ",".join(f"{k}={v}" for k, v in items) if items is not None else ",".join(map(str, raw))
        return _parse_text(text, tp, f, where=where)
    try:
        return _convert(raw, tp)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where} = {raw!r}: {exc}") from exc


def _convert(raw: Any, tp: Any) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(raw, option)
            except (ValueError, TypeError) as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors))
    if isinstance(raw, str):
        return _from_text(raw, tp)
    if tp is bool and isinstance(raw, bool):
        return raw
    if tp is int and isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if tp is float and isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if origin in (Mapping, dict, typing.Mapping) and isinstance(raw, Mapping):
        key_type, value_type = args or (str, str)
        return {_convert(k, key_type): _convert(v, value_type) for k, v in raw.items()}
    if origin in (frozenset, set, list, tuple) and isinstance(raw, list):
        item_type = args[0] if args else str
        return origin(_convert(item, item_type) for item in raw)
    raise TypeError(f"expected {getattr(tp, '__name__', tp)}, got {type(raw).__name__}")


# --- the reference table (README "Configuration reference", scripts/settings-table) ----------------------


@dataclass(frozen=True)
class SettingDoc:
    name: str  # as a config-file key ("image_limits.max_bytes" for a nested one)
    env: str
    default: str
    meaning: str


def settings_reference(
    cls: type[Any] = Settings, prefix: str = ENV_PREFIX, key: str = ""
) -> list[SettingDoc]:
    """One row per setting, the meaning taken from the comments around each field in the class's source."""
    comments = _field_comments(cls)
    rows: list[SettingDoc] = []
    defaults = cls()
    for f, tp in _fields(cls):
        if _is_dataclass_type(tp):
            rows += settings_reference(tp, env_name(f.name, prefix) + "_", f"{key}{f.name}.")
            continue
        env = env_name(f.name, prefix)
        aliases = [prefix + alias for alias in f.metadata.get("env_aliases", ())]
        if aliases:
            env += " (or " + ", ".join(aliases) + ")"
        rows.append(SettingDoc(key + f.name, env, _show(getattr(defaults, f.name)), comments.get(f.name, "")))
    return rows


def _show_bucket(bucket: Bucket) -> str:
    return f"@{'+'.join(sorted(bucket.accounts))}={bucket.root}"


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return (
            ",".join(
                f"{k}{_show_bucket(v) if isinstance(v, Bucket) else '=' + str(v)}" for k, v in value.items()
            )
            or "(empty)"
        )
    if isinstance(value, frozenset | set | list | tuple):
        return ",".join(sorted(map(str, value))) or "(empty)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) >= 1 else str(value)
    return str(value) or "(empty)"


def _field_comments(cls: type[Any]) -> dict[str, str]:
    """field name -> the comment lines right above it plus its trailing comment (the source is the doc)."""
    source = textwrap.dedent("".join(inspect.getsourcelines(cls)[0]))
    comments: dict[int, str] = {}  # line number -> comment text
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    lines = source.splitlines()
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    found: dict[str, str] = {}
    for node in body.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        row = node.lineno - 1
        while row in comments and lines[row - 1].lstrip().startswith("#"):  # whole-line comments only
            above.insert(0, comments[row])
            row -= 1
        last = node.end_lineno or node.lineno
        after = [comments[n] for n in range(node.lineno, last + 1) if n in comments]
        found[node.target.id] = " ".join(part for part in [*above, *after] if part)
    return found


def settings_table() -> str:
    """The Markdown table README's "Configuration reference" holds."""
    rows = ["| setting (config key) | environment variable | default | meaning |", "|---|---|---|---|"]
    for doc in settings_reference():
        cells = [f"`{doc.name}`", f"`{doc.env}`", f"`{doc.default}`", doc.meaning]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"
