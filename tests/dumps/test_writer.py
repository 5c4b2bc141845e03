"""The dump files: content of every format, atomicity, checksums, gzip, summaries, zone file."""

from __future__ import annotations

import gzip
import ipaddress
import itertools
import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest

from rbl.dnsserver.zone import LISTED, Zone
from rbl.dumps import writer
from rbl.dumps.formats.zonefile import zone_txt
from rbl.dumps.publish import TEMP_MARK, DumpError
from rbl.dumps.writer import write_dumps
from rbl.server.follower import IndexFollower, build_zones, load_index
from rbl.zonedata.names import cidr_blocks, zone_names
from tests.support.dump_seed import DOMAIN_ZONE, IP_ZONE, NOW, TRAP, Seeded, seed

IP_BASE = f"{IP_ZONE}/{IP_ZONE}"
DOMAIN_BASE = f"{DOMAIN_ZONE}/{DOMAIN_ZONE}"


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    return seed(tmp_path)


def dump(seeded: Seeded, **kwargs: Any) -> writer.DumpReport:
    return write_dumps(seeded.settings, seeded.reader, seeded.directory / "dumps", NOW, **kwargs)


def body(path: Path) -> list[str]:
    """The lines of a file that are not comments."""
    return [
        line for line in path.read_text().splitlines() if line and not line.startswith(("#", ";"))
    ]


def test_every_file_is_written_with_gzip_sums_and_summaries(seeded: Seeded) -> None:
    report = dump(seeded)
    out = seeded.directory / "dumps"
    expected = {
        f"{IP_BASE}.txt",
        f"{IP_BASE}.ipv6.txt",
        f"{IP_BASE}.ip4set",
        f"{IP_BASE}.ip6trie",
        f"{IP_BASE}.zone",
        f"{DOMAIN_BASE}.txt",
        f"{DOMAIN_BASE}.dnset",
        f"{DOMAIN_BASE}.zone",
    }
    expected |= {name + ".gz" for name in expected}
    expected |= {"summary.json", "summary.csv", "SHA256SUMS"}
    assert set(report.files) == expected
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert on_disk == expected  # and no temporary file left behind
    for rel, size in report.files.items():
        assert (out / rel).stat().st_size == size
    for rel in expected:
        if rel.endswith(".gz"):
            assert gzip.decompress((out / rel).read_bytes()) == (out / rel[:-3]).read_bytes()


def test_sha256sums_verifies_with_sha256sum(seeded: Seeded) -> None:
    dump(seeded)
    out = seeded.directory / "dumps"
    lines = (out / "SHA256SUMS").read_text().splitlines()
    assert len(lines) == 18  # every file but SHA256SUMS itself
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum not installed")
    result = subprocess.run(
        ["sha256sum", "--check", "--strict", "SHA256SUMS"],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": OK") == 18


def test_plain_ipv4_list_is_the_exact_listed_set(seeded: Seeded) -> None:
    dump(seeded)
    path = seeded.directory / "dumps" / f"{IP_BASE}.txt"
    text = path.read_text()
    header = text.splitlines()[:3]
    assert header[0].startswith(f"# rbl dump of {IP_ZONE}: IPv4")
    assert "generated 2026-11-23T12:00:00Z" in header[1]
    entries = body(path)
    assert f"{len(entries)} entries" in header[1]
    networks = [ipaddress.ip_network(e) for e in entries]
    covered = lambda a: any(ipaddress.ip_address(a) in n for n in networks)  # noqa: E731
    assert covered("192.0.2.1") and covered("198.51.100.8") and covered("10.200.1.1")
    assert not covered("198.51.100.7")  # allowlisted inside a listed /24
    assert not covered("10.1.2.3")  # allowlisted /24 inside the /16
    assert covered("10.1.3.3")
    assert not covered("100.64.1.10") and covered("100.64.1.100")
    assert covered("100.64.2.10") and not covered("100.64.2.100")
    assert not covered("127.0.0.2")  # test points are for DNS only
    for a, b in itertools.combinations(networks, 2):
        assert not a.overlaps(b)
    assert "198.51.100.0/30" in entries and "198.51.100.6" in entries
    v6 = body(seeded.directory / "dumps" / f"{IP_BASE}.ipv6.txt")
    assert "2001:db8::1" in v6 and "2001:db8:2::/47" in v6 and "::ffff:7f00:2" not in v6
    assert "2001:db8:1::/48" not in v6 and "2001:db8:1::4" in v6 and "2001:db8:1::6/127" in v6


def test_ip4set_carries_soa_ns_timestamp_exclusions_and_templates(seeded: Seeded) -> None:
    dump(seeded)
    lines = (seeded.directory / "dumps" / f"{IP_BASE}.ip4set").read_text().splitlines()
    serial = seeded.reader.change_positions()[IP_ZONE]
    assert f"$SOA 300 ns1.example.org hostmaster.example.org {serial} 3600 600 604800 120" in lines
    assert "$NS 300 ns1.example.org ns2.example.net" in lines
    assert "$TTL 300" in lines
    assert "$TIMESTAMP 2026:11:23:11:50:00 +605400" in lines
    assert ":127.0.0.2:Listed: https://www.example.org/lookup/$" in lines
    assert "127.0.0.2 :127.0.0.2:RFC 5782 test point: $ is listed for testing" in lines
    assert "!127.0.0.1" in lines
    assert "192.0.2.1" in lines  # the zone's default value: a bare line
    assert "192.0.2.77 :127.0.0.3:Own text for $" in lines
    assert "198.51.100.0/24 :127.0.0.3:Net $ costs $$5" in lines
    assert "!198.51.100.7" in lines
    assert "10.0.0.0/8" in lines and "!10.1.2.0/24" in lines
    # Same octet level, nested: the outer entry is written around the inner one.
    assert "203.0.113.0/25" not in "\n".join(lines)
    assert "203.0.113.64/26 :127.0.0.2:Listed: https://www.example.org/lookup/$" in lines
    assert "203.0.113.64/26 :127.0.0.4:Listed: https://www.example.org/lookup/$" in lines
    assert "203.0.113.0/26 :127.0.0.5:Listed: https://www.example.org/lookup/$" in lines
    assert "172.16.0.0/22" in lines and "172.16.8.0/21" in lines
    assert "!100.64.1.0/26" in lines and "100.64.1.64/26" in lines
    assert "!100.64.2.64/26" in lines and "100.64.2.0/26" in lines
    assert "!100.64.2.0/25" not in lines


def test_ip6trie_and_dnset(seeded: Seeded) -> None:
    dump(seeded)
    out = seeded.directory / "dumps"
    v6 = (out / f"{IP_BASE}.ip6trie").read_text().splitlines()
    assert "::ffff:7f00:2 :127.0.0.2:RFC 5782 test point: $ is listed for testing" in v6
    assert "!::ffff:7f00:1" in v6 and "!2001:db8:1::5" in v6
    assert "2001:db8:1::/48 :127.0.0.3:Listed: https://www.example.org/lookup/$" in v6
    dnset = (out / f"{DOMAIN_BASE}.dnset").read_text().splitlines()
    assert ":127.0.1.2:Domain $ listed" in dnset
    assert "$SOA 600 ns1.example.org hostmaster.dbl.example.org" in "\n".join(dnset)
    for line in ("spam.example", "*.spam.example", "*.bad.example", "!good.bad.example"):
        assert line in dnset
    assert "!*.good.bad.example" in dnset and "!invalid" in dnset
    assert "test :127.0.0.2:RFC 5782 test point: $ is listed for testing" in dnset
    plain = body(out / f"{DOMAIN_BASE}.txt")
    assert sorted(plain) == sorted(
        ["spam.example", "*.spam.example", "*.bad.example", "a.b.c.bad.example", "x.example"]
    )


def test_no_trap_address_in_any_file(seeded: Seeded) -> None:
    dump(seeded)
    out = seeded.directory / "dumps"
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".gz":
                data = gzip.decompress(data)
            assert TRAP.encode() not in data, path
            assert b"secret-trap" not in data, path


def test_summaries_count_without_keys(seeded: Seeded) -> None:
    dump(seeded)
    out = seeded.directory / "dumps"
    document = json.loads((out / "summary.json").read_text())
    assert document["generated"] == "2026-11-23T12:00:00Z"
    zones = {z["zone"]: z for z in document["zones"]}
    ip = zones[IP_ZONE]
    # 14 manual listings + 1 late one + 1 from the trap hit
    assert ip["listings"] == 16
    assert ip["exclusions"] == 5
    assert ip["serial"] == seeded.reader.change_positions()[IP_ZONE]
    assert ip["by_prefix"]["ipv4/32"] == 3 and ip["by_prefix"]["ipv6/48"] == 1
    assert ip["by_code"]["127.0.0.4"] == 1 and ip["by_code"]["127.0.0.3"] == 3
    domain = zones[DOMAIN_ZONE]
    assert domain["by_prefix"] == {"exact": 3, "subdomains": 2}
    assert domain["by_code"] == {"127.0.1.2": 5}
    csv_text = (out / "summary.csv").read_text()
    assert csv_text.startswith("zone,kind,serial,generated,metric,item,count\n")
    assert f"{IP_ZONE},ip,{ip['serial']},2026-11-23T12:00:00Z,listings,,16" in csv_text
    for needle in ("192.0.2.1", "spam.example", "45.200.1.2"):
        assert needle not in csv_text and needle not in json.dumps(document)


def test_a_failed_write_leaves_the_previous_generation(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump(seeded)
    out = seeded.directory / "dumps"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "write_summaries", broken)
    with pytest.raises(OSError, match="No space"):
        write_dumps(seeded.settings, seeded.reader, out, NOW.replace(hour=13))
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # nothing renamed, every temporary file removed


def test_stale_temporaries_are_removed_and_unknown_zone_refused(seeded: Seeded) -> None:
    out = seeded.directory / "dumps" / IP_ZONE
    out.mkdir(parents=True)
    stale = out / f".{IP_ZONE}.zone{TEMP_MARK}1-abcd.tmp"
    stale.write_text("half")
    os.utime(stale, (0, 0))
    busy = out / f".{IP_ZONE}.txt{TEMP_MARK}2-beef.tmp"
    busy.write_text("another dump is writing this")
    keep = out / "operator-notes.txt"
    keep.write_text("mine")
    dump(seeded)
    assert not stale.exists() and keep.exists() and busy.exists()
    busy.unlink()
    with pytest.raises(Exception, match="no zone"):
        dump(seeded, zones=["nope.example"])


def test_one_zone_keeps_the_others_in_sums_and_summary(seeded: Seeded) -> None:
    dump(seeded)
    out = seeded.directory / "dumps"
    report = dump(seeded, zones=[DOMAIN_ZONE])
    assert [z.zone for z in report.zones] == [DOMAIN_ZONE]
    sums = (out / "SHA256SUMS").read_text()
    assert f"{IP_BASE}.zone" in sums and f"{DOMAIN_BASE}.zone" in sums
    zones = [z["zone"] for z in json.loads((out / "summary.json").read_text())["zones"]]
    assert zones == [IP_ZONE, DOMAIN_ZONE]


def test_dump_error_for_an_unwritable_directory(seeded: Seeded) -> None:
    blocker = seeded.directory / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DumpError):
        write_dumps(seeded.settings, seeded.reader, blocker / "dumps", NOW)


def test_helpers() -> None:
    assert list(cidr_blocks(0, 255, 32)) == [(0, 24)]
    assert list(cidr_blocks(1, 6, 32)) == [(1, 32), (2, 31), (4, 31), (6, 32)]
    names = list(zone_names(4, int(ipaddress.IPv4Address("192.0.2.0")), 23))
    assert [n for n, _w, _a in names] == ["*.2.0.192", "*.3.0.192"]
    assert zone_txt('a"b\\c') == '"a\\"b\\\\c"'
    assert zone_txt("é") == '"\\195\\169"'
    assert zone_txt("x" * 300).count('"') == 4
    assert zone_txt("") == '""'


# -- the zone file against the index ---------------------------------------------------


class ZoneFile:
    """Answers from a parsed master file with RFC 4592 wildcard rules (no delegation)."""

    def __init__(self, path: Path, origin: str) -> None:
        self.zone = dns.zone.from_file(str(path), origin=origin, relativize=False)
        self.origin = dns.name.from_text(origin)
        self.existing: set[dns.name.Name] = set()
        for name in self.zone.nodes:
            while name != self.origin and name not in self.existing:
                self.existing.add(name)
                name = name.parent()

    def answer(self, qname: dns.name.Name) -> tuple[str, list[str], list[str]]:
        node = self.zone.get_node(qname)
        if node is None:
            if qname in self.existing:
                return "NODATA", [], []
            encloser = qname.parent()
            while encloser != self.origin and encloser not in self.existing:
                encloser = encloser.parent()
            node = self.zone.get_node(dns.name.Name((b"*", *encloser.labels)))
            if node is None:
                return "NXDOMAIN", [], []
        a = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.A)
        txt = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.TXT)
        if a is None:
            return "NODATA", [], []
        texts = [b"".join(r.strings).decode() for r in txt] if txt else []
        return "LISTED", sorted(r.address for r in a), texts


def rbl_answer(zone: Zone, qname: dns.name.Name) -> tuple[str, list[str], list[str]]:
    rel = [label.lower() for label in qname.relativize(dns.name.from_text(zone.name)).labels]
    outcome, vid = zone.resolve(rel)
    if outcome is LISTED:
        value = zone.index.values[vid]
        assert value is not None
        return "LISTED", sorted(value.codes), [zone.txt_text(vid, rel)]
    return outcome.name, [], []


def sample_ip_names(zone: str) -> list[str]:
    rng = random.Random(5782)
    addresses = [
        "192.0.2.1", "192.0.2.77", "192.0.2.2", "198.51.100.7", "198.51.100.8",
        "198.51.100.255", "203.0.113.1", "203.0.113.70", "203.0.113.128", "10.0.0.1",
        "10.1.1.1", "10.1.2.3", "10.1.3.3", "10.255.255.255", "172.16.0.1", "172.16.5.5",
        "172.16.15.255", "172.16.16.0", "100.64.1.1", "100.64.1.100", "100.64.2.1",
        "100.64.2.100", "127.0.0.2", "127.0.0.1", "127.0.0.3", "45.200.1.2",
        "2001:db8::1", "2001:db8::2", "2001:db8:1::1", "2001:db8:1::5", "2001:db8:3:ffff::9",
        "2001:db8:4::3", "2001:db8:4:4::", "::ffff:7f00:2", "::ffff:7f00:1",
    ]  # fmt: skip
    addresses += [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(200)]
    names = []
    for text in addresses:
        address = ipaddress.ip_address(text)
        if address.version == 4:
            names.append(".".join(reversed(text.split("."))))
        else:
            names.append(".".join(reversed(f"{int(address):032x}")))
    return [f"{n}.{zone}." for n in names]


def sample_domain_names(zone: str) -> list[str]:
    names = [
        "spam.example", "x.spam.example", "a.b.spam.example", "bad.example", "z.bad.example",
        "good.bad.example", "w.good.bad.example", "a.b.c.bad.example", "b.c.bad.example",
        "c.bad.example", "q.c.bad.example", "q.b.c.bad.example", "q.a.b.c.bad.example",
        "x.example", "y.x.example", "example", "test", "invalid", "clean.example",
    ]  # fmt: skip
    return [f"{n}.{zone}." for n in names]


def test_zone_files_parse_and_answer_like_the_index(seeded: Seeded) -> None:
    dump(seeded)
    follower = IndexFollower(build_zones(seeded.settings))
    load_index(seeded.reader, follower)
    out = seeded.directory / "dumps"
    for zone_name, base, names in (
        (IP_ZONE, IP_BASE, sample_ip_names(IP_ZONE)),
        (DOMAIN_ZONE, DOMAIN_BASE, sample_domain_names(DOMAIN_ZONE)),
    ):
        zone = follower.zones[zone_name]
        master = ZoneFile(out / f"{base}.zone", zone_name + ".")
        soa = master.zone.get_rdataset(master.origin, dns.rdatatype.SOA)
        assert soa is not None and soa[0].serial == zone.serial
        ns = master.zone.get_rdataset(master.origin, dns.rdatatype.NS)
        assert ns is not None and sorted(str(r.target) for r in ns) == sorted(
            n + "." for n in zone.settings.ns
        )
        listed = 0
        for text in names:
            qname = dns.name.from_text(text)
            expected = rbl_answer(zone, qname)
            got = master.answer(qname)
            assert got[:2] == expected[:2], text
            if got[0] == "LISTED":
                listed += 1
                key = expected[2][0]
                wildcard = master.zone.get_node(qname) is None
                if not wildcard:
                    assert got[2] == expected[2], text  # names get rbl's own text
                else:
                    assert got[2][0].startswith(key.split(" ")[0][:6]), text
        assert listed >= 10


def test_named_checkzone_accepts_the_zone_files(seeded: Seeded) -> None:
    checker = shutil.which("named-checkzone")
    if checker is None:
        pytest.skip("named-checkzone (bind9-utils) not installed")
    dump(seeded)
    out = seeded.directory / "dumps"
    for zone_name, base in ((IP_ZONE, IP_BASE), (DOMAIN_ZONE, DOMAIN_BASE)):
        result = subprocess.run(
            [checker, "-q", "-k", "fail", "-n", "ignore", zone_name, str(out / f"{base}.zone")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert os.access(out, os.R_OK)
