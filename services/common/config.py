"""Service configuration from flags, environment and an optional YAML file.

Every kovn service describes its settings as one dataclass (a subclass of
`ServerConfig`); this module turns that dataclass into command-line flags
(`--grace-period`), environment variables (`KOVN_IPAM_GRACE_PERIOD`) and YAML
keys (`grace_period` or `grace-period`), in that order of precedence. A value
that does not fit its field stops the service with an error naming the key,
the value and where it came from, because a CNI that starts with half its
configuration ignored fails later in ways that are much harder to see.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from services.common.logging import FORMATS, LEVELS


class ConfigError(Exception):
    """A configuration value is wrong; the message names key, value and source."""

    def __init__(self, key: str, value: object, reason: str, source: str = "") -> None:
        self.key, self.value, self.reason, self.source = key, value, reason, source
        where = f" (from {source})" if source else ""
        super().__init__(f"invalid configuration: {key}={value!r}{where}: {reason}")


def _help(text: str, choices: tuple[str, ...] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"help": text}
    if choices:
        meta["choices"] = choices
    return meta


@dataclass
class ServerConfig:
    """Settings every kovn gRPC service has."""

    listen: str = field(default="", metadata=_help("TCP host:port for gRPC (empty: none)"))
    socket: str = field(default="", metadata=_help("unix socket path for gRPC (empty: none)"))
    socket_mode: str = field(default="0600", metadata=_help("octal mode of the unix socket"))
    metrics: str = field(default="", metadata=_help("host:port for Prometheus /metrics"))
    tls_cert: str = field(default="", metadata=_help("PEM certificate for the TCP listener"))
    tls_key: str = field(default="", metadata=_help("PEM private key for the TCP listener"))
    tls_client_ca: str = field(
        default="", metadata=_help("PEM CA; when set, clients must present a certificate")
    )
    grace_period: float = field(
        default=10.0, metadata=_help("seconds in-flight calls get to finish on SIGTERM")
    )
    log_format: str = field(default="auto", metadata=_help("log format", FORMATS))
    log_level: str = field(default="info", metadata=_help("log level", LEVELS))
    ready_file: str = field(
        default="", metadata=_help("write bound addresses here as JSON once serving")
    )

    def validate(self) -> None:
        """Checks shared by every service; subclasses call super().validate()."""
        if not self.listen and not self.socket:
            raise ConfigError("listen", self.listen, "set listen or socket (or both)")
        if self.listen:
            parse_hostport(self.listen, "listen")
        if self.metrics:
            parse_hostport(self.metrics, "metrics")
        try:
            mode = int(self.socket_mode, 8)
        except ValueError:
            raise ConfigError("socket_mode", self.socket_mode, "not an octal number") from None
        if not 0 <= mode <= 0o777:
            raise ConfigError("socket_mode", self.socket_mode, "must be between 0000 and 0777")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_key", self.tls_key, "tls_cert and tls_key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigError("tls_client_ca", self.tls_client_ca, "mutual TLS needs tls_cert")
        for key in ("tls_cert", "tls_key", "tls_client_ca"):
            path = getattr(self, key)
            if path and not Path(path).is_file():
                raise ConfigError(key, path, "no such file")
        if self.grace_period < 0:
            raise ConfigError("grace_period", self.grace_period, "must not be negative")

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)


def parse_hostport(value: str, key: str) -> tuple[str, int]:
    """Split "host:port" (IPv6 as "[::1]:80"); raise ConfigError naming `key`."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ConfigError(key, value, "expected host:port")
    port = int(port_text)
    if port > 65535:
        raise ConfigError(key, value, "port out of range")
    return host.strip("[]") or "0.0.0.0", port


C = TypeVar("C", bound=ServerConfig)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(kind: Any, value: object, key: str, source: str) -> object:
    """Coerce a raw value (string from flags/env, or YAML scalar) to the field's type."""
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError("expected true or false")
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected an integer")
            return int(str(value).strip(), 0) if isinstance(value, str) else int(value)  # type: ignore[call-overload]
        if kind is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)  # type: ignore[arg-type]
        if kind is str:
            if isinstance(value, (dict, list)):
                raise ValueError("expected a string")
            return "" if value is None else str(value)
        if typing.get_origin(kind) is list:
            if isinstance(value, str):
                return [part.strip() for part in value.split(",") if part.strip()]
            if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
                return [str(v) for v in value]
            raise ValueError("expected a list of strings or a comma-separated string")
    except ValueError as err:
        raise ConfigError(key, value, str(err), source) from None
    raise ConfigError(key, value, f"unsupported field type {kind!r}", source)


def _field_types(cls: type[ServerConfig]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if isinstance(kind, types.UnionType):  # `str | None` is not supported: use ""
            raise TypeError(f"{cls.__name__}.{f.name}: optional fields are not supported")
        out[f.name] = kind
    return out


def env_prefix(prog: str) -> str:
    return "KOVN_" + prog.upper().replace("-", "_") + "_"


def load_config(
    cls: type[C],
    *,
    prog: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
) -> C:
    """Build `cls` from YAML (--config), environment and flags; flags win."""
    env = os.environ if env is None else env
    kinds = _field_types(cls)
    prefix = env_prefix(prog)
    parser = argparse.ArgumentParser(
        prog=f"kovn {prog} serve",
        description=f"Run the kovn {prog} service.",
        epilog=f"Every flag can also be set as {prefix}<NAME> or as a key in the --config file.",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML file with settings")
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        meta = dict(f.metadata)
        helptext = meta.get("help", "")
        if meta.get("choices"):
            helptext += f" (one of: {', '.join(meta['choices'])})"
        helptext += f" [default: {f.default!r}]" if f.default is not dataclasses.MISSING else ""
        if kinds[f.name] is bool:
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=helptext,
            )
        else:
            parser.add_argument(flag, dest=f.name, default=None, metavar="VALUE", help=helptext)
    args = parser.parse_args(list(argv))

    raw: dict[str, tuple[object, str]] = {}
    config_file = args.config or env.get(prefix + "CONFIG")
    if config_file:
        raw.update(_read_yaml(Path(config_file), kinds))
    for name in kinds:
        env_name = prefix + name.upper()
        if env_name in env:
            raw[name] = (env[env_name], f"environment {env_name}")
    for name in kinds:
        value = getattr(args, name)
        if value is not None:
            raw[name] = (value, "--" + name.replace("_", "-"))

    values: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        value, source = raw[f.name]
        converted = _convert(kinds[f.name], value, f.name, source)
        choices = f.metadata.get("choices")
        if choices and converted not in choices:
            raise ConfigError(f.name, value, f"must be one of {', '.join(choices)}", source)
        values[f.name] = converted
    config = cls(**values)  # type: ignore[arg-type]
    config.validate()
    return config


def _read_yaml(path: Path, kinds: Mapping[str, Any]) -> dict[str, tuple[object, str]]:
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError("config", str(path), err.strerror or str(err)) from None
    except yaml.YAMLError as err:
        raise ConfigError("config", str(path), f"not valid YAML: {err}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError("config", str(path), "the file must hold a mapping of settings")
    out: dict[str, tuple[object, str]] = {}
    for key, value in document.items():
        name = str(key).replace("-", "_")
        if name not in kinds:
            raise ConfigError(str(key), value, "unknown setting", f"file {path}")
        out[name] = (value, f"file {path}")
    return out


def exit_on_config_error(err: ConfigError) -> int:
    """Print the error for an operator and return the exit status (2, as argparse)."""
    print(f"kovn: {err}", file=sys.stderr)
    return 2
