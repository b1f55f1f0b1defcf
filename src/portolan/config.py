"""The configuration: one TOML file, environment overrides, clear errors.

The file has a few top-level keys (``sensor``, ``data_dir``...), one table per part of
Portolan (``[store]``, ``[pipeline]``, ``[geoip]``, ``[server]``...) and an array of
``[[sources]]``. Each part declares its own table as a ``msgspec.Struct`` and registers it
in :data:`SECTIONS`; the loader validates every table against its struct, so a typo or a
wrong type stops start-up with the file, the key and what is allowed.

Environment variables override the file: ``PORTOLAN_SENSOR=edge1`` sets a top-level key,
``PORTOLAN_STORE__URL=postgresql://...`` a key of a table (two underscores between table
and key). Values are read as TOML values where they parse as one (``100``, ``true``), as
strings otherwise.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import os
import re
import socket
import textwrap
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import platformdirs

from portolan.plugins import Registry, UnknownName
from portolan.sources.base import SOURCES, SourceOptions

S = TypeVar("S", bound=msgspec.Struct)

ENV_PREFIX = "PORTOLAN_"
#: Where the config is looked for when neither ``-c`` nor ``$PORTOLAN_CONFIG`` names one.
DEFAULT_LOCATIONS = (
    Path(platformdirs.user_config_dir("portolan")) / "portolan.toml",
    Path("/etc/portolan/portolan.toml"),
)


class ConfigError(Exception):
    """A configuration that cannot be used: says which file, which key, what is allowed."""


class Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every ``[table]`` of the config."""


@dataclass(frozen=True)
class NamedTables:
    """A table of named tables, each of one struct: ``[formats.myapp]``, ``[formats.other]``."""

    item: type[Section]


#: Every table of the config, by name: a :class:`Section` type, or :class:`NamedTables`.
SECTIONS: Registry[Any] = Registry("config table")

#: Called with every validated config (parts that register things named in the config,
#: such as user-defined formats). A hook raises :class:`ConfigError` for what it refuses.
LOAD_HOOKS: list[Callable[[Config], None]] = []


class StoreSection(Section):
    """Where events are kept."""

    enabled: bool = True
    """Store events in the database. A sensor that only forwards to a collector sets false."""
    url: str = ""
    """Database URL: ``sqlite:///path/portolan.db``, ``postgresql://user@host/db`` or
    ``mysql://user@host/db`` (MariaDB). Empty: SQLite in the data directory."""
    retention_days: int = 0
    """Delete events older than this many days (checked hourly), with the sessions,
    addresses and chart counts of that time (see docs/store.md); 0 keeps everything."""
    retry_max_seconds: float = 30.0
    """Longest wait between two tries when the database is unavailable."""


class PipelineSection(Section):
    """How events flow from sources to sinks."""

    batch_size: int = 5000
    """Most events per batch written to the store (one transaction each)."""
    batch_delay: float = 0.25
    """Longest wait, in seconds, before a batch that is not full is written anyway."""
    queue_size: int = 64
    """Batches that may wait between the sources and the store (back-pressure beyond)."""
    write_max: int = 50_000
    """Most events written in one transaction when batches wait for the store: batches
    that queue up while the store is busy are written together (group commit), so a
    loaded store catches up in fewer, larger transactions. At most ``batch_size``
    disables it."""


SECTIONS.add("store", StoreSection)
SECTIONS.add("pipeline", PipelineSection)


class TopLevel(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The keys that stand at the top of the file, outside any table."""

    sensor: str = ""
    """Name of this sensor in every event; empty: the host name."""
    data_dir: str = ""
    """Where Portolan keeps its database, positions of sources and secrets; empty: the
    user's data directory (``~/.local/share/portolan``)."""
    log_level: str = "info"
    """``debug``, ``info``, ``warning`` or ``error``."""


@dataclass
class Config:
    """A loaded, validated configuration."""

    top: TopLevel = field(default_factory=TopLevel)
    sections: dict[str, Any] = field(default_factory=dict)
    sources: list[SourceOptions] = field(default_factory=list)
    path: Path | None = None
    """The file it came from, if any."""
    raw: dict[str, Any] = field(default_factory=dict)
    """The merged TOML (file + environment), for parts that read extra tables."""

    @property
    def sensor(self) -> str:
        return self.top.sensor or socket.gethostname()

    @property
    def data_dir(self) -> Path:
        if self.top.data_dir:
            return Path(self.top.data_dir).expanduser()
        env = os.environ.get("PORTOLAN_DATA_DIR")
        return Path(env) if env else Path(platformdirs.user_data_dir("portolan"))

    def get(self, kind: type[S]) -> S:
        """The table of type ``kind`` (its defaults when the file does not have it)."""
        for name, typ in SECTIONS.items():
            if typ is kind:
                found = self.sections.get(name)
                return found if isinstance(found, kind) else kind()
        raise KeyError(f"{kind.__name__} is not a registered config table")

    @property
    def store(self) -> StoreSection:
        return self.get(StoreSection)

    @property
    def pipeline(self) -> PipelineSection:
        return self.get(PipelineSection)


def find_config(explicit: str | None) -> Path | None:
    """The config file to read: ``-c``, then ``$PORTOLAN_CONFIG``, then the defaults."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("PORTOLAN_CONFIG")
    if env:
        return Path(env)
    for candidate in DEFAULT_LOCATIONS:
        try:
            if candidate.is_file():
                return candidate
        except OSError:  # a folder this user may not enter: not a config of theirs
            continue
    return None


def load(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, merge with the environment, and validate. Raises :class:`ConfigError`."""
    where = str(path) if path else "configuration"
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    _apply_env(raw, os.environ if environ is None else environ)
    return validate(raw, where, path)


def validate(raw: dict[str, Any], where: str = "configuration", path: Path | None = None) -> Config:
    """Validate a config given as a dict (what the TOML file holds)."""
    top_keys = set(TopLevel.__struct_fields__)
    top = _convert({k: v for k, v in raw.items() if k in top_keys}, TopLevel, where, "")
    if top.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(
            f"{where}: log_level: {top.log_level!r} is not allowed; "
            "allowed: debug, info, warning, error"
        )
    config = Config(top=top, path=path, raw=raw)
    for key, value in raw.items():
        if key in top_keys:
            continue
        if key == "sources":
            config.sources = _sources(value, where)
            continue
        if key not in SECTIONS:
            allowed = sorted([*top_keys, "sources", *SECTIONS.names()])
            raise ConfigError(f"{where}: unknown key {key!r}; allowed: {', '.join(allowed)}")
        typ = SECTIONS.get(key)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key}: must be a table ([{key}])")
        if isinstance(typ, NamedTables):
            named = {}
            for name, table in value.items():
                if not isinstance(table, dict):
                    raise ConfigError(f"{where}: {key}.{name}: must be a table ([{key}.{name}])")
                named[name] = _convert(table, typ.item, where, f"{key}.{name}")
            config.sections[key] = named
        else:
            config.sections[key] = _convert(value, typ, where, key)
    if isinstance(config.sections.get("pipeline"), PipelineSection):  # defaults are fine
        _check_pipeline(config.sections["pipeline"], where)
    for hook in LOAD_HOOKS:
        hook(config)
    return config


def _check_pipeline(p: PipelineSection, where: str) -> None:
    for key in ("batch_size", "queue_size"):
        if getattr(p, key) < 1:
            raise ConfigError(f"{where}: pipeline.{key}: must be at least 1")
    if p.batch_delay <= 0:
        raise ConfigError(f"{where}: pipeline.batch_delay: must be more than 0 (seconds)")
    if p.write_max < 0:
        raise ConfigError(f"{where}: pipeline.write_max: must be 0 or more")


def _sources(value: Any, where: str) -> list[SourceOptions]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: sources: must be an array of tables ([[sources]])")
    out: list[SourceOptions] = []
    for index, entry in enumerate(value):
        label = f"sources[{index}]"
        if not isinstance(entry, dict) or "type" not in entry:
            raise ConfigError(
                f"{where}: {label}: needs a 'type'; allowed: {', '.join(SOURCES.names())}"
            )
        try:
            spec = SOURCES.get(str(entry["type"]))
        except UnknownName as exc:
            raise ConfigError(f"{where}: {label}.type: {exc}") from None
        out.append(_convert(entry, spec.options, where, label))
    return out


_AT = re.compile(r"^(?P<msg>.*) - at `\$(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`$")


def _convert(value: Any, typ: type[S], where: str, prefix: str) -> S:
    try:
        return msgspec.convert(value, typ)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(str(exc), typ, where, prefix)) from None


def _explain(message: str, typ: type[Any], where: str, prefix: str) -> str:
    match = _AT.match(message)
    msg, path = (match["msg"], match["path"]) if match else (message, "")
    key = (prefix + path.replace("[", ".[").replace(".[", "[")).strip(".") if path else prefix
    unknown = _UNKNOWN.match(msg)
    if unknown:
        target = typ
        for part in [p for p in path.split(".") if p and not p.startswith("[")]:
            hints = _hints(target)
            target = hints.get(part, target)
        allowed = ", ".join(getattr(target, "__struct_fields__", ())) or "none"
        name = f"{key}.{unknown['name']}" if key else unknown["name"]
        return f"{where}: unknown key {name!r}; allowed here: {allowed}"
    return f"{where}: {key or 'value'}: {msg}"


def _hints(typ: type[Any]) -> dict[str, Any]:
    try:
        import typing

        return dict(typing.get_type_hints(typ))
    except Exception:
        return {}


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Merge ``PORTOLAN_KEY`` / ``PORTOLAN_TABLE__KEY`` variables into ``raw``. Variables
    whose first part names no top-level key or table are not Portolan settings (other
    ``PORTOLAN_*`` variables) and are left alone; a wrong key inside a known table is an
    error, like in the file."""
    skip = {"PORTOLAN_CONFIG", "PORTOLAN_DATA_DIR"}
    known: set[str] | None = None  # the tables, once a variable needs them (all plugins load)
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or name in skip:
            continue
        if known is None:
            known = set(TopLevel.__struct_fields__) | set(SECTIONS.names())
        parts = name[len(ENV_PREFIX):].lower().split("__")
        if not all(parts) or parts[0] not in known:
            continue
        target = raw
        for part in parts[:-1]:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                break
            target = nested
        else:
            target[parts[-1]] = _env_value(text)


def _env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


# -- documentation of the options, from the code itself -----------------------------------


def field_docs(cls: type[Any]) -> dict[str, str]:
    """The docstrings written under each field of a class (``name: type = x`` then
    ``\"\"\"doc\"\"\"``), inherited ones included."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass in (object, msgspec.Struct):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a valid TOML basic string too
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return '""'


def _comment(text: str, indent: str = "# ") -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines():
        wrapped = textwrap.wrap(paragraph, 88) or [""]
        lines.extend(indent + w if w else indent.rstrip() for w in wrapped)
    return lines


def _struct_lines(typ: type[msgspec.Struct], instance: msgspec.Struct | None = None) -> list[str]:
    docs = field_docs(typ)
    lines: list[str] = []
    inst = instance if instance is not None else _maybe_default(typ)
    for name in typ.__struct_fields__:
        if name in docs:
            lines.extend(_comment(docs[name]))
        value = (_toml_value(msgspec.to_builtins(getattr(inst, name)))
                 if inst is not None else "...")
        lines.append(f"# {name} = {value}")
    return lines


def example_config() -> str:
    """A complete, commented config: every key at its default, commented out."""
    out = [
        "# Portolan configuration. Every key is shown at its default, commented out.",
        "# Environment variables override it: PORTOLAN_SENSOR=..., PORTOLAN_STORE__URL=...",
        "",
    ]
    out.extend(_struct_lines(TopLevel))
    for name, typ in SECTIONS.items():
        out.append("")
        if isinstance(typ, NamedTables):
            out.extend(_comment(inspect.cleandoc(typ.item.__doc__ or name)))
            out.append(f"# [{name}.NAME]")
            out.extend(_struct_lines(typ.item, _maybe_default(typ.item)))
            continue
        out.extend(_comment(inspect.cleandoc(typ.__doc__ or name)))
        out.append(f"[{name}]")
        out.extend(_struct_lines(typ))
    out.append("")
    out.append("# Inputs. With no [[sources]], `portolan run` starts the ones that make sense")
    out.append("# on this machine. One table per input; `type` says which kind:")
    for name, spec in SOURCES.items():
        out.append("")
        out.append(f"# {spec.summary}")
        out.append("# [[sources]]")
        example = _example_options(spec.options, name)
        out.extend(_struct_lines(spec.options, example))
    out.append("")
    return "\n".join(out)


def _example_options(typ: type[SourceOptions], name: str) -> SourceOptions | None:
    try:
        return msgspec.convert({"type": name}, typ)
    except msgspec.ValidationError:
        return None


def markdown_reference() -> str:
    """Every option as Markdown (``docs/configuration.md`` is this, kept in step by a test)."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by `portolan init --markdown`; do not edit by hand. -->",
        "",
        "Portolan reads one TOML file: `-c FILE`, else `$PORTOLAN_CONFIG`, else the first of "
        + ", ".join(f"`{p.name}` in the user's config directory" if i == 0 else f"`{p}`"
                    for i, p in enumerate(DEFAULT_LOCATIONS))
        + ". `portolan init` writes one with every key at its default.",
        "",
        "Environment variables override the file: `PORTOLAN_<KEY>` for a top-level key, "
        "`PORTOLAN_<TABLE>__<KEY>` for a key of a table (for example "
        "`PORTOLAN_STORE__URL=postgresql://portolan@db/portolan`).",
        "",
        "## Top level",
        "",
    ]
    out.extend(_md_table(TopLevel))
    for name, typ in SECTIONS.items():
        if isinstance(typ, NamedTables):
            out += ["", f"## `[{name}.NAME]`", "", inspect.cleandoc(typ.item.__doc__ or ""), ""]
            out.extend(_md_table(typ.item))
            continue
        intro = inspect.cleandoc(typ.__doc__ or "").replace("``", "`")
        out += ["", f"## `[{name}]`", "", intro, ""]
        out.extend(_md_table(typ))
    out += ["", "## `[[sources]]`", "",
            "One table per input. `type` chooses the kind; each kind adds its own keys.", ""]
    for name, spec in SOURCES.items():
        out += [f"### `type = \"{name}\"`", "", spec.summary, ""]
        out.extend(_md_table(spec.options, _example_options(spec.options, name)))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _md_table(typ: type[msgspec.Struct], instance: msgspec.Struct | None = None) -> list[str]:
    docs = field_docs(typ)
    rows = ["| key | default | meaning |", "|---|---|---|"]
    inst = instance if instance is not None else _maybe_default(typ)
    for name in typ.__struct_fields__:
        default = (
            _toml_value(msgspec.to_builtins(getattr(inst, name)))
            if inst is not None
            else "required"
        )
        doc = docs.get(name, "").replace("\n", " ").replace("|", "\\|").replace("``", "`")
        rows.append(f"| `{name}` | `{default}` | {doc} |")
    return rows


def _maybe_default(typ: type[msgspec.Struct]) -> msgspec.Struct | None:
    try:
        return typ()
    except TypeError:
        return None
