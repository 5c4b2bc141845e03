"""SpamAssassin 4 asks a real ``rbl serve``: the DNSBL rules a mail operator writes for it.

``check_rbl`` (any listing), ``check_rbl_sub`` per return code, ``check_rbl`` on the
last external relay with a code pattern, and ``check_rbl_txt`` on the TXT record, as
SpamAssassin's own 20_dnsbl_tests.cf writes them for Spamhaus ZEN. SpamAssassin runs
as ``spamassassin -t`` with only these rules (no sa-update rules, which would ask the
internet's lists), its resolver pointed at rbl with ``dns_server``; the relay is the
first hop outside ``trusted_networks``. What it reports is X-Spam-Status' ``tests=``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.consumers import (
    ALLOWLISTED,
    IN_NETWORK,
    LISTED_FOUR,
    LISTED_TWO,
    UNLISTED,
    message,
)
from tests.support.processes import require_peer
from tests.support.server import RunningServer

pytestmark = pytest.mark.slow

SA = shutil.which("spamassassin")
SITE = Path("/etc/spamassassin")  # Debian's init.pre and v*.pre: which plugins load

RULES = r"""
dns_server 127.0.0.1:{port}
dns_available yes
use_bayes 0
trusted_networks 192.0.2.0/24
internal_networks 192.0.2.0/24

header __RBLTEST eval:check_rbl('rbltest', 'bl.example.org.')
tflags __RBLTEST net
header RBLTEST_TWO eval:check_rbl_sub('rbltest', '127.0.0.2')
tflags RBLTEST_TWO net
score RBLTEST_TWO 2.0
header RBLTEST_FOUR eval:check_rbl_sub('rbltest', '127.0.0.4')
tflags RBLTEST_FOUR net
score RBLTEST_FOUR 2.0
header RBLTEST_LAST eval:check_rbl('rbltest-lastexternal', 'bl.example.org.', '^127\.0\.0\.[24]$')
tflags RBLTEST_LAST net
score RBLTEST_LAST 1.0
header RBLTEST_TXT eval:check_rbl_txt('rbltest-txt', 'bl.example.org.', '(?i)lookup/45\.1\.1\.1$')
tflags RBLTEST_TXT net
score RBLTEST_TXT 0.5
"""


@pytest.fixture(scope="module")
def configured(listed_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_peer(
        None if SA else "SpamAssassin is not installed (apt-get install spamassassin)",
        "spamassassin",
    )
    directory = tmp_path_factory.mktemp("spamassassin")
    (directory / "site").mkdir()
    for pre in SITE.glob("*.pre"):
        shutil.copy(pre, directory / "site")
    rules = directory / "rules"
    rules.mkdir()
    shutil.copy("/usr/share/spamassassin/10_default_prefs.cf", rules)  # the X-Spam-* headers
    (rules / "50_rbltest.cf").write_text(RULES.format(port=listed_server.port))
    return directory


def rules_hit(directory: Path, relay: str) -> set[str]:
    """The rules X-Spam-Status names for a message from ``relay``."""
    site, rules = directory / "site", directory / "rules"
    result = subprocess.run(
        [str(SA), f"--siteconfigpath={site}", f"--configpath={rules}", "-t"],
        input=message(relay),
        capture_output=True,
        timeout=60,
        check=True,
    )
    headers = result.stdout.decode("utf-8", "replace").split("\n\n", 1)[0]
    headers = re.sub(r"\n[ \t]+", " ", headers)  # unfolded: SA wraps the list of tests
    status = re.search(r"^X-Spam-Status: .* tests=(.*?) autolearn=", headers, re.MULTILINE)
    assert status is not None, result.stdout.decode(errors="replace")[:2000]
    names = re.sub(r",\s+", ",", status.group(1))
    return set() if names == "none" else set(names.split(","))


@pytest.mark.parametrize(
    ("relay", "expected"),
    [
        (LISTED_TWO, {"RBLTEST_TWO", "RBLTEST_LAST", "RBLTEST_TXT"}),
        (LISTED_FOUR, {"RBLTEST_FOUR", "RBLTEST_LAST"}),
        (IN_NETWORK, {"RBLTEST_TWO", "RBLTEST_LAST"}),
        (ALLOWLISTED, set()),
        (UNLISTED, set()),
    ],
)
def test_spamassassin_rules_see_what_rbl_lists(
    configured: Path, relay: str, expected: set[str]
) -> None:
    assert {t for t in rules_hit(configured, relay) if t.startswith("RBLTEST")} == expected
