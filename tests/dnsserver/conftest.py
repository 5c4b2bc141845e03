"""Fixtures of the DNS tests: a real ``rbl serve`` with the DNSBL consumer tests' listings
(tests/support/consumers.py), shared by the tests of a module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.config import write_config
from tests.support.consumers import ALLOWLISTED, LISTINGS
from tests.support.processes import rbl_command
from tests.support.server import RunningServer, start_server, stop_server


@pytest.fixture(scope="module")
def listed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    config = write_config(tmp_path_factory.mktemp("rbl"))
    rbl_command(config, "db", "init")
    for key, *extra in LISTINGS:
        rbl_command(config, "list", "add", key, *extra, "--reason", "consumer test")
    rbl_command(config, "allowlist", "add", ALLOWLISTED, "--reason", "consumer test")
    server = start_server(config)
    try:
        yield server
    finally:
        stop_server(server)
