"""SIGHUP with ``[[transfer.secondaries]]``: new keys, bound networks and signed NOTIFY
targets apply in place (in-process ``make_service``, task.Clock); TSIG counters survive."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from twisted.internet import task

from rbl.config import load_settings
from rbl.config.secondaries import SecondarySettings
from rbl.server.reload import apply_settings
from rbl.server.service import make_service
from tests.support.config import write_config

KEY = "ns2-key:hmac-sha256:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def test_reload_applies_secondaries_keys_and_signed_notify(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, extra='\n[transfer]\nallow = ["127.0.0.1/32"]\nnotify = ["127.0.0.1:5300"]\n'
    )
    settings = load_settings(config)
    server = make_service(settings, task.Clock(), dns_only=True)
    keys = server.dns.responder.tsig
    assert keys is not None and keys.keys == {}
    keys.errors["BADKEY"] = 3  # as if three signed queries had come before any key
    assert server.notify is not None and server.notify.keys == {}
    entry = SecondarySettings("192.0.2.53/32", "ns2-key.", ("192.0.2.53", 53))
    keyed = replace(
        settings, transfer=replace(settings.transfer, tsig=(KEY,), secondaries=(entry,))
    )
    report = apply_settings(server, keyed)
    assert "[transfer]" in report.applied and "[transfer] notify" in report.applied
    now = server.dns.responder.tsig
    assert now is not None and now is not keys and now.errors == {"BADKEY": 3}
    assert now.usable(now.key("ns2-key").wire, "192.0.2.53")
    assert not now.usable(now.key("ns2-key").wire, "127.0.0.1")
    assert server.dns.transfers is not None and server.dns.transfers.tsig is now
    assert server.dns.transfers.policy.allows("192.0.2.53")
    assert server.notify.targets == (("127.0.0.1", 5300), ("192.0.2.53", 53))
    assert set(server.notify.keys) == {("192.0.2.53", 53)}
