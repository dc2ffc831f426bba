"""CNI request validation and result conversion (pure logic)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cni_shim import fastjson, spec
from cni_shim.launcher import install

CONF = {"cniVersion": "1.0.0", "name": "kovn", "type": "kovn-cni"}
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/run/netns/x",
       "CNI_IFNAME": "eth0", "CNI_ARGS": "K8S_POD_NAME=p;K8S_POD_NAMESPACE=n"}  # fmt: skip
RESULT: dict[str, Any] = {
    "cniVersion": "1.1.0",
    "interfaces": [{"name": "kvx", "mac": "aa"}, {"name": "eth0", "mac": "bb", "mtu": 1400,
                                                  "sandbox": "/run/netns/x"}],
    "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 1},
            {"address": "fd00::2/64", "interface": 1}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
    "dns": {},
}  # fmt: skip


def test_parse_add() -> None:
    r = spec.parse(ENV, json.dumps(CONF).encode())
    assert (r.command, r.container_id, r.ifname) == ("ADD", "abc", "eth0")
    assert r.args == {"K8S_POD_NAME": "p", "K8S_POD_NAMESPACE": "n"}


def test_del_needs_no_netns() -> None:
    env = {k: v for k, v in ENV.items() if k != "CNI_NETNS"} | {"CNI_COMMAND": "DEL"}
    assert spec.parse(env, json.dumps(CONF).encode()).netns == ""


@pytest.mark.parametrize(
    ("env", "conf", "code"),
    [
        ({**ENV, "CNI_IFNAME": "a/b"}, CONF, 4),
        ({**ENV, "CNI_IFNAME": ".."}, CONF, 4),
        ({**ENV, "CNI_CONTAINERID": "-x"}, CONF, 4),
        ({**ENV, "CNI_CONTAINERID": "a" * 300}, CONF, 4),
        (ENV, {**CONF, "cniVersion": "0.3.1"}, 1),
        (ENV, {**CONF, "type": 3}, 7),
        ({"CNI_COMMAND": "GC"}, CONF, 1),
    ],
)
def test_parse_rejects(env: dict[str, str], conf: dict[str, object], code: int) -> None:
    with pytest.raises(spec.CniError) as info:
        spec.parse(env, json.dumps(conf).encode())
    assert info.value.code == code


def test_convert_versions() -> None:
    v11 = spec.convert_result(RESULT, "1.1.0")
    assert v11["interfaces"][1]["mtu"] == 1400
    v10 = spec.convert_result(RESULT, "1.0.0")
    assert "mtu" not in v10["interfaces"][1] and v10["cniVersion"] == "1.0.0"
    v04 = spec.convert_result(RESULT, "0.4.0")
    assert [ip["version"] for ip in v04["ips"]] == ["4", "6"]
    assert RESULT["interfaces"][1]["mtu"] == 1400  # input untouched


def test_error_json_and_version_reply() -> None:
    err = spec.CniError(4, "CNI_NETNS: missing", "d")
    want = {"cniVersion": "1.0.0", "code": 4, "msg": "CNI_NETNS: missing", "details": "d"}
    assert json.loads(err.to_json("1.0.0")) == want
    assert json.loads(spec.version_reply(b"garbage"))["cniVersion"] == spec.LATEST


def test_launcher_runs_the_shim_isolated(tmp_path: Path) -> None:
    exe = install(str(tmp_path / "bin" / "kovn-cni"))
    assert exe.read_text().splitlines()[0].endswith(" -IS")
    proc = subprocess.run(
        [str(exe)], input=b'{"cniVersion": "0.4.0"}', capture_output=True,
        env={"CNI_COMMAND": "VERSION"}, check=True,
    )  # fmt: skip
    assert json.loads(proc.stdout)["cniVersion"] == "0.4.0"


def test_vendored_launcher_runs_on_the_system_python(tmp_path: Path) -> None:
    python = "/usr/bin/python3"
    if not Path(python).exists():
        pytest.skip("no system python3")
    exe = install(str(tmp_path / "bin" / "kovn-cni"), python, vendor=True)
    assert (tmp_path / "bin" / "kovn-cni.lib" / "cni_shim" / "h2grpc.py").exists()
    conf = b'{"cniVersion": "1.0.0", "name": "n", "type": "kovn-cni", "socket": "/nonexistent"}'
    proc = subprocess.run([str(exe)], input=conf, capture_output=True,
                          env={"CNI_COMMAND": "ADD"}, check=False)  # fmt: skip
    # The forwarding path imports (socket, HTTP/2) work without the venv.
    assert proc.returncode == 1 and json.loads(proc.stdout)["code"] == 11


def test_fastjson_matches_json() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )

    @given(values)
    def same(value: object) -> None:
        text = json.dumps(value)
        assert fastjson.dumps(value) == text
        assert fastjson.loads(text.encode()) == json.loads(text)

    same()
    for bad in (b"{", b"[1,]", b"{} x", b"", b"\xff", b"\xef\xbb\xbf{}"):
        with pytest.raises(ValueError):
            fastjson.loads(bad)
