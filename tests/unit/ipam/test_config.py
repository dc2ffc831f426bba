"""IpamConfig: store choices and the errors that name the bad key."""

from __future__ import annotations

import pytest

from services.common.config import ConfigError, load_config
from services.ipam.config import IpamConfig


def load(*argv: str, env: dict[str, str] | None = None) -> IpamConfig:
    return load_config(
        IpamConfig, prog="ipam", argv=["--listen", "127.0.0.1:0", *argv], env=env or {}
    )


def test_defaults_and_etcd_from_env() -> None:
    cfg = load()
    assert (cfg.store, cfg.cooldown_seconds) == ("sqlite", 30.0)
    cfg = load(env={"KOVN_IPAM_STORE": "etcd", "KOVN_IPAM_ETCD_ENDPOINTS": "127.0.0.1:1,h:2"})
    assert cfg.store == "etcd" and cfg.etcd_endpoints == ["127.0.0.1:1", "h:2"]


@pytest.mark.parametrize(
    ("argv", "key"),
    [
        (["--store", "zookeeper"], "store"),
        (["--store", "etcd"], "etcd_endpoints"),
        (["--store", "etcd", "--etcd-endpoints", "nohostport"], "etcd_endpoints"),
        (["--store", "etcd", "--etcd-endpoints", "h:1", "--etcd-prefix", "x/"], "etcd_prefix"),
        (["--cooldown-seconds", "-1"], "cooldown_seconds"),
        (["--sqlite-path", ""], "sqlite_path"),
    ],
)
def test_bad_settings_name_the_key(argv: list[str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(*argv)
    assert info.value.key == key
