"""The committed generated code matches protos/ (run `make protos` if not)."""

from __future__ import annotations

from services.common import protogen


def test_generated_code_is_fresh() -> None:
    problems = protogen.check()
    assert problems == [], "stale generated code, run `make protos`:\n" + "\n".join(problems)


def test_every_contract_package_is_versioned() -> None:
    for proto in protogen.PROTOS.rglob("*.proto"):
        text = proto.read_text()
        rel = proto.relative_to(protogen.PROTOS)
        package = ".".join(rel.parts[:-1])
        assert f"package {package};" in text, f"{rel} must declare package {package}"
