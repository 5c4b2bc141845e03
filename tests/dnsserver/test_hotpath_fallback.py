"""Without the compiled hot path (not built, or forced off) rbl answers in Python and says so."""

from __future__ import annotations

import pytest
from twisted.internet import reactor

from rbl.dnsserver import hotpath
from rbl.dnsserver.protocol import Counters, DnsUdpPort
from tests.support.dns_zones import make_responder


@pytest.mark.parametrize("value", ["0", "off", "false", "no", " OFF "])
def test_the_environment_forces_the_python_path(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(hotpath.ENV, value)
    assert hotpath.status() == (
        f"compiled hot path not available: {hotpath.ENV}={value} forces the Python path; "
        "answering in Python"
    )
    port = DnsUdpPort(0, make_responder(), Counters(), "127.0.0.1", reactor)
    assert port.hotpath is None


def test_a_missing_extension_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hotpath.ENV, raising=False)
    monkeypatch.setattr(hotpath, "_hotpath", None)
    monkeypatch.setattr(hotpath, "_MISSING", "the extension rbl.dnsserver._hotpath is not built")
    assert hotpath.status() == (
        "compiled hot path not available: the extension rbl.dnsserver._hotpath is not built; "
        "answering in Python"
    )
    assert DnsUdpPort(0, make_responder(), Counters(), "127.0.0.1", reactor).hotpath is None
    with pytest.raises(RuntimeError, match="not available"):
        hotpath.HotPath(make_responder())


def test_the_compiled_path_runs_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rbl.dnsserver._hotpath")
    for value in (None, "1", "on"):
        if value is None:
            monkeypatch.delenv(hotpath.ENV, raising=False)
        else:
            monkeypatch.setenv(hotpath.ENV, value)
        assert hotpath.status() == "answering with the compiled hot path"
        port = DnsUdpPort(0, make_responder(), Counters(), "127.0.0.1", reactor)
        assert port.hotpath is not None
