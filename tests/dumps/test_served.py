"""A real ``rbl serve`` writes the dumps on start and serves them with conditional GET."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.config import write_config
from tests.support.processes import rbl_command
from tests.support.server import start_server, stop_server

pytestmark = pytest.mark.slow

SERVED = """
[web]
listen = "127.0.0.1:0"

[dumps]
directory = "dumps"
interval = "1h"
"""


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_dumps_written_at_start_and_served_with_etags(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra=SERVED)
    rbl_command(config, "list", "add", "45.8.8.0/24", "--reason", "spam")
    server = start_server(config)
    try:
        checksums = tmp_path / "dumps" / "SHA256SUMS"
        deadline = time.monotonic() + 30
        while not checksums.exists():
            assert time.monotonic() < deadline, "no dump written within 30 s of start"
            time.sleep(0.1)
        web = server.info["web"]
        assert isinstance(web, dict)
        url = f"http://127.0.0.1:{web['port']}/dumps/bl.example.org/bl.example.org.txt"
        status, headers, body = fetch(url)
        assert status == 200, body
        assert b"45.8.8.0/24" in body
        etag, modified = headers["ETag"], headers["Last-Modified"]
        assert fetch(url, {"If-None-Match": etag})[0] == 304
        assert fetch(url, {"If-Modified-Since": modified})[0] == 304
        assert fetch(url.replace(".txt", ".nothing"))[0] == 404
        assert fetch(f"http://127.0.0.1:{web['port']}/dumps/../rbl.sqlite")[0] == 404
        status, _, sums = fetch(f"http://127.0.0.1:{web['port']}/dumps/SHA256SUMS")
        assert status == 200 and b"bl.example.org.txt" in sums
    finally:
        stop_server(server)
