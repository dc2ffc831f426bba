"""Configuration: precedence, types and errors that name the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.common.config import ConfigError, ServerConfig, load_config


@dataclass
class DemoConfig(ServerConfig):
    store: str = field(default="sqlite", metadata={"choices": ("sqlite", "etcd")})
    replicas: int = 1
    cooldown_seconds: float = 30.0
    strict: bool = False
    endpoints: list[str] = field(default_factory=list)


BASE = ["--listen", "127.0.0.1:0"]


def test_defaults() -> None:
    cfg = load_config(DemoConfig, prog="demo", argv=BASE, env={})
    assert (cfg.store, cfg.replicas, cfg.strict, cfg.endpoints) == ("sqlite", 1, False, [])
    assert cfg.socket_mode == "0600"


def test_flags_beat_env_beat_file(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("replicas: 2\nstore: etcd\ncooldown-seconds: 5\nendpoints: [a, b]\n")
    env = {"KOVN_DEMO_REPLICAS": "3", "KOVN_DEMO_STRICT": "yes"}
    cfg = load_config(
        DemoConfig, prog="demo", argv=[*BASE, "--config", str(file), "--replicas", "4"], env=env
    )
    assert cfg.replicas == 4  # flag
    assert cfg.strict is True  # env
    assert (cfg.store, cfg.cooldown_seconds, cfg.endpoints) == ("etcd", 5.0, ["a", "b"])  # file


def test_env_config_file_and_lists(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("store: etcd\n")
    cfg = load_config(
        DemoConfig,
        prog="demo",
        argv=[*BASE, "--endpoints", "http://a:2379, http://b:2379"],
        env={"KOVN_DEMO_CONFIG": str(file)},
    )
    assert cfg.store == "etcd"
    assert cfg.endpoints == ["http://a:2379", "http://b:2379"]


@pytest.mark.parametrize(
    ("argv", "env", "yaml", "key", "source"),
    [
        (["--replicas", "two"], {}, None, "replicas", "--replicas"),
        ([], {"KOVN_DEMO_STRICT": "maybe"}, None, "strict", "KOVN_DEMO_STRICT"),
        ([], {}, "replicas: 1.5\n", "replicas", "file"),
        ([], {}, "store: [etcd]\n", "store", "file"),
        ([], {}, "store: postgres\n", "store", "file"),
        ([], {}, "colour: blue\n", "colour", "file"),
        ([], {}, "- a list\n", "config", ""),
        (["--metrics", "9090"], {}, None, "metrics", ""),
        (["--tls-cert", "/etc/hostname"], {}, None, "tls_key", ""),
    ],
)
def test_errors_name_key_and_source(
    tmp_path: Path,
    argv: list[str],
    env: dict[str, str],
    yaml: str | None,
    key: str,
    source: str,
) -> None:
    if yaml is not None:
        file = tmp_path / "c.yaml"
        file.write_text(yaml)
        argv = [*argv, "--config", str(file)]
    with pytest.raises(ConfigError) as err:
        load_config(DemoConfig, prog="demo", argv=[*BASE, *argv], env=env)
    assert err.value.key == key
    assert str(err.value).startswith(f"invalid configuration: {key}=")
    assert source in str(err.value)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config='.*nope.yaml'"):
        load_config(DemoConfig, prog="demo", argv=[*BASE, "--config", str(tmp_path / "nope.yaml")])
