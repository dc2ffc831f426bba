"""Parsing Multus' network selection annotation into kovn NICs."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument
from services.controller.attachments import Attachment, parse_networks


def test_short_form_with_namespaces_and_interface_names() -> None:
    got = parse_networks("storage, infra/backup@bk0 ,other", "apps")
    assert got == [
        Attachment("net1", "storage", "apps"),
        Attachment("bk0", "backup", "infra"),
        Attachment("net3", "other", "apps"),
    ]
    assert got[1].providers == ("backup.infra", "backup.infra.ovn")


def test_json_form() -> None:
    got = parse_networks(
        '[{"name": "a", "interface": "fast0"}, {"name": "b", "namespace": "x"}]', "ns"
    )
    assert got == [Attachment("fast0", "a", "ns"), Attachment("net2", "b", "x")]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("[{bad json", "not valid JSON"),
        ('{"name": "a"}', "not a valid"),
        ("a@eth0", "used twice"),
        ("a@x1, b@x1", "used twice"),
        ("Bad_Name", "NetworkAttachmentDefinition name"),
        ("a@this-name-is-far-too-long", "interface name"),
    ],
)
def test_bad_annotations_name_the_annotation(value: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_networks(value, "ns")
    assert err.value.field == "k8s.v1.cni.cncf.io/networks"
    assert fragment in str(err.value)


def test_empty_means_no_attachments() -> None:
    assert parse_networks("  ", "ns") == []
