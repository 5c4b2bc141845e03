"""rspamd 3.4 asks a real ``rbl serve``: its RBL module with ``returncodes``, IPv4 and IPv6.

rspamd runs from Debian's own configuration (/etc/rspamd) with a local directory of
overrides (``--var LOCAL_CONFDIR``): its resolver is rbl (``options.dns.nameserver``),
its workers listen on free loopback ports, and ``override.d/rbl.conf`` replaces the
stock list of RBLs (Spamhaus and the rest, which would be asked for nothing here) with
one rule for rbl's zone, a symbol per return code, as an operator configures a list.
``rspamc --ip`` scans a message as if it came from that address.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.support.consumers import (
    ALLOWLISTED,
    IN_NETWORK,
    LISTED_FOUR,
    LISTED_TWO,
    LISTED_V6,
    UNLISTED,
    message,
)
from tests.support.ports import free_port
from tests.support.processes import require_peer, stop
from tests.support.server import RunningServer

pytestmark = pytest.mark.slow

RSPAMD = shutil.which("rspamd")
RSPAMC = shutil.which("rspamc")

RBL_CONF = """\
rbls {
  rbltest {
    symbol = "RBLTEST";
    rbl = "bl.example.org";
    ipv4 = true;
    ipv6 = true;
    from = true;
    received = false;
    returncodes {
      RBLTEST_TWO = "127.0.0.2";
      RBLTEST_FOUR = "127.0.0.4";
    }
  }
}
"""


@pytest.fixture(scope="module")
def scanner(
    listed_server: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """A running rspamd; its normal worker's port."""
    require_peer(
        None if RSPAMD and RSPAMC else "rspamd is not installed (apt-get install rspamd)", "rspamd"
    )
    root = tmp_path_factory.mktemp("rspamd")
    local = root / "local"
    for name in ("local.d", "override.d"):
        (local / name).mkdir(parents=True)
    for name in ("db", "run", "log"):
        (root / name).mkdir()
    normal, controller, proxy = free_port(), free_port(), free_port()
    (local / "local.d" / "options.inc").write_text(
        f'dns {{\n  nameserver = ["127.0.0.1:{listed_server.port}"];\n'
        "  timeout = 2s;\n  retransmits = 2;\n}\n"
    )
    (local / "local.d" / "worker-normal.inc").write_text(
        f'bind_socket = "127.0.0.1:{normal}";\ncount = 1;\n'
    )
    (local / "local.d" / "worker-controller.inc").write_text(
        f'bind_socket = "127.0.0.1:{controller}";\n'
    )
    (local / "override.d" / "worker-proxy.inc").write_text(f'bind_socket = "127.0.0.1:{proxy}";\n')
    (local / "override.d" / "rbl.conf").write_text(RBL_CONF)
    as_root = ["-u", "root", "-g", "root", "-i"] if os.geteuid() == 0 else []
    log = (root / "stdout").open("wb")
    process = subprocess.Popen(
        [str(RSPAMD), "-f", *as_root, "-c", "/etc/rspamd/rspamd.conf"]
        + [f"--var={name}={root / value}" for name, value in _VARS.items()],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90  # it compiles its TLD list and regexps first
        while not _listening(normal):
            assert process.poll() is None, (root / "stdout").read_text()[-3000:]
            assert time.monotonic() < deadline, (root / "log" / "rspamd.log").read_text()[-3000:]
            time.sleep(0.2)
        yield normal
    finally:
        stop(process, timeout=15)
        log.close()


_VARS = {"LOCAL_CONFDIR": "local", "DBDIR": "db", "RUNDIR": "run", "LOGDIR": "log"}


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def symbols(port: int, ip: str) -> set[str]:
    """The symbols rspamd gives a message from ``ip``."""
    result = subprocess.run(
        [str(RSPAMC), "-h", f"127.0.0.1:{port}", "--ip", ip, "symbols"],
        input=message(ip),
        capture_output=True,
        timeout=60,
        check=True,
    )
    return set(re.findall(r"^Symbol: (\S+)", result.stdout.decode("utf-8", "replace"), re.M))


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        (LISTED_TWO, {"RBLTEST_TWO"}),
        (LISTED_FOUR, {"RBLTEST_FOUR"}),
        (IN_NETWORK, {"RBLTEST_TWO"}),
        (LISTED_V6, {"RBLTEST_TWO"}),
        (ALLOWLISTED, set()),
        (UNLISTED, set()),
    ],
)
def test_rspamd_rbl_module_sees_what_rbl_lists(scanner: int, ip: str, expected: set[str]) -> None:
    assert {s for s in symbols(scanner, ip) if s.startswith("RBLTEST")} == expected
