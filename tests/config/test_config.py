"""rbl.config: the TOML file parsed into frozen settings; errors name file and setting."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from rbl.config import (
    DEFAULT_UDP_PAYLOAD,
    ConfigError,
    Settings,
    SoaSettings,
    ZoneSettings,
    load_settings,
    parse_settings,
)
from rbl.errors import RblError
from rbl.model.keys import ZoneKind

FULL = """\
[database]
url = "sqlite:///data/rbl.sqlite"

[dns]
listen = ["127.0.0.1:5353", "[::1]:5354", "0.0.0.0"]
udp_payload = 1400

[sync]
poll_interval = 0.5

[[zones]]
name = "BL.Example.ORG."
kind = "ip"
ttl = 900
ns = ["ns1.example.org", "NS2.example.net."]
default_code = "127.0.0.3, 127.0.0.2"
txt = "{key} is listed, see {url}"
lookup_url = "https://example.org/lookup?ip={key}"

[zones.soa]
mname = "master.example.org"
rname = "hostmaster@example.org"
refresh = 7200
retry = 900
expire = 1209600
minimum = 60

[zones.codes]
"127.0.0.4" = "dialup"
"127.0.0.2" = "greytrap"

[[zones]]
name = "dbl.example.org"
kind = "domain"
ns = ["ns1.example.org"]
"""


def write(tmp_path: Path, text: str, name: str = "rbl.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def minimal(**zone: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "bl.example.org", "ns": ["ns1.example.org"]}
    base.update(zone)
    return {"zones": [base]}


SOURCE = Path("/etc/rbl/rbl.toml")


def parse(data: dict[str, Any], **kwargs: Any) -> Settings:
    return parse_settings(data, source=SOURCE, **kwargs)


def config_error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(data)
    assert isinstance(caught.value, RblError)
    message = str(caught.value)
    assert str(SOURCE) in message
    return message


# -- a full, valid file -----------------------------------------------------------------


def test_full_config(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    settings = load_settings(path)
    assert settings.source == str(path)
    assert settings.database.url == "sqlite:///" + str((tmp_path / "data/rbl.sqlite").resolve())
    assert settings.dns.listen == (("127.0.0.1", 5353), ("::1", 5354), ("0.0.0.0", 53))
    assert settings.dns.udp_payload == 1400
    assert settings.sync.poll_interval == 0.5
    bl, dbl = settings.zones
    assert bl == ZoneSettings(
        name="bl.example.org",
        kind=ZoneKind.IP,
        soa=SoaSettings(
            mname="master.example.org",
            rname="hostmaster.example.org",
            refresh=7200,
            retry=900,
            expire=1209600,
            minimum=60,
        ),
        ns=("ns1.example.org", "ns2.example.net"),
        ttl=900,
        default_codes=("127.0.0.2", "127.0.0.3"),
        txt="{key} is listed, see {url}",
        lookup_url="https://example.org/lookup?ip={key}",
        code_meanings=(("127.0.0.2", "greytrap"), ("127.0.0.4", "dialup")),
    )
    assert dbl.kind is ZoneKind.DOMAIN
    assert dbl.name == "dbl.example.org"
    assert bl.txt_for("192.0.2.1") == (
        "192.0.2.1 is listed, see https://example.org/lookup?ip=192.0.2.1"
    )
    assert bl.txt_for("192.0.2.1", "own {key}") == "own 192.0.2.1"


def test_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        [[zones]]
        name = "bl.example.org"
        ns = ["ns1.example.org"]
        """,
    )
    settings = load_settings(path)
    assert settings.database.url == "sqlite:///" + str((tmp_path / "rbl.sqlite").resolve())
    assert settings.dns.listen == (("127.0.0.1", 5353),)
    assert settings.dns.udp_payload == DEFAULT_UDP_PAYLOAD == 1232
    assert settings.sync.poll_interval == 0.2
    (zone,) = settings.zones
    assert zone.kind is ZoneKind.IP
    assert zone.ttl == 300
    assert zone.default_codes == ("127.0.0.2",)
    assert zone.txt == "Listed: {url}"
    assert zone.lookup_url == ""
    assert zone.code_meanings == ()
    assert zone.soa == SoaSettings(
        mname="ns1.example.org",
        rname="hostmaster.bl.example.org",
        refresh=3600,
        retry=600,
        expire=604800,
        minimum=300,
    )
    assert zone.txt_for("192.0.2.1") == "Listed: "


def test_settings_zone_lookup() -> None:
    settings = parse(
        {
            "zones": [
                {"name": "bl.example.org", "ns": ["ns1.example.org"]},
                {"name": "dbl.example.org", "kind": "domain", "ns": ["ns1.example.org"]},
            ]
        }
    )
    assert settings.zone("bl.example.org").kind is ZoneKind.IP
    assert settings.zone(" DBL.Example.org. ").kind is ZoneKind.DOMAIN
    with pytest.raises(ConfigError) as caught:
        settings.zone("other.example.org")
    message = str(caught.value)
    assert "'other.example.org'" in message
    assert str(SOURCE) in message
    assert "bl.example.org, dbl.example.org" in message


# -- the database URL -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///rbl.sqlite", "sqlite:///{base}/rbl.sqlite"),
        ("sqlite:///sub/../db/rbl.sqlite", "sqlite:///{base}/db/rbl.sqlite"),
        ("sqlite:////var/lib/rbl.sqlite", "sqlite:////var/lib/rbl.sqlite"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite://", "sqlite://"),
        ("postgresql://rbl@db/rbl", "postgresql://rbl@db/rbl"),
    ],
)
def test_sqlite_path_is_relative_to_the_config_file(
    tmp_path: Path, url: str, expected: str
) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    path = write(
        conf_dir,
        f"""\
        [database]
        url = "{url}"
        [[zones]]
        name = "bl.example.org"
        ns = ["ns1.example.org"]
        """,
    )
    settings = load_settings(path)
    assert settings.database.url == expected.format(base=conf_dir.resolve())


def test_database_url_override(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    settings = load_settings(path, database_url="postgresql://rbl@db/rbl")
    assert settings.database.url == "postgresql://rbl@db/rbl"
    settings = load_settings(path, database_url="sqlite:////srv/rbl.sqlite")
    assert settings.database.url == "sqlite:////srv/rbl.sqlite"


def test_bad_file_database_url_is_reported_even_with_an_override() -> None:
    data = minimal()
    data["database"] = {"url": 42}
    assert "url must be a str" in config_error(data)
    with pytest.raises(ConfigError, match="url must be a str"):
        parse(data, database_url="sqlite://")


def test_relative_override_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = parse(minimal(), database_url="sqlite:///here.sqlite")
    assert settings.database.url == f"sqlite:///{tmp_path.resolve() / 'here.sqlite'}"


# -- reading the file -------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(path) in str(caught.value)
    assert "cannot read" in str(caught.value)


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[[zones]\nname = \n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(path) in str(caught.value)
    assert "not valid TOML" in str(caught.value)


def test_error_from_a_file_names_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        [[zones]]
        name = "bl.example.org"
        ns = ["ns1.example.org"]
        colour = "blue"
        """,
        name="named.toml",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert str(path) in message
    assert "[[zones]] #1" in message
    assert "colour" in message


# -- each kind of error -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({**minimal(), "extra": 1}, ["unknown setting(s) extra"]),
        ({**minimal(), "database": {"path": "x"}}, ["[database]", "unknown", "path"]),
        ({**minimal(), "dns": {"port": 53}}, ["[dns]", "unknown", "port"]),
        ({**minimal(), "sync": {"interval": 1}}, ["[sync]", "unknown", "interval"]),
        (minimal(colour="blue"), ["[[zones]] #1:", "colour"]),
        (minimal(soa={"serial": 1}), ["[[zones]] #1 (bl.example.org) [soa]", "serial"]),
    ],
)
def test_unknown_keys(data: dict[str, Any], names: list[str]) -> None:
    message = config_error(data)
    for name in names:
        assert name in message


@pytest.mark.parametrize(
    "data",
    [{}, {"zones": []}, {"zones": {"name": "bl.example.org"}}, {"database": {"url": "sqlite://"}}],
)
def test_zones_required(data: dict[str, Any]) -> None:
    assert "at least one [[zones]]" in config_error(data)


def test_zone_not_a_table() -> None:
    assert "[[zones]] #1 is not a table" in config_error({"zones": ["bl.example.org"]})


def test_zone_name_required() -> None:
    message = config_error({"zones": [{"ns": ["ns1.example.org"]}]})
    assert "[[zones]] #1" in message
    assert "name is required" in message


@pytest.mark.parametrize(
    "ns",
    [None, [], "ns1.example.org", [1], ["ns1.example.org", 2]],
)
def test_missing_or_bad_ns(ns: Any) -> None:
    zone: dict[str, Any] = {"name": "bl.example.org"}
    if ns is not None:
        zone["ns"] = ns
    message = config_error({"zones": [zone]})
    assert "(bl.example.org)" in message
    assert "ns must be a non-empty list" in message


def test_bad_ns_name() -> None:
    message = config_error(minimal(ns=["ns1..example.org"]))
    assert "(bl.example.org): ns:" in message
    assert "'ns1..example.org'" in message


@pytest.mark.parametrize("name", ["bl..example.org", "*.example.org", "-bl.example.org", ""])
def test_bad_zone_name(name: str) -> None:
    message = config_error(minimal(name=name))
    assert "[[zones]] #1: name:" in message


@pytest.mark.parametrize("kind", ["IP", "dnsbl", "rhsbl", ""])
def test_bad_kind(kind: str) -> None:
    message = config_error(minimal(kind=kind))
    assert f"kind {kind!r} is not 'ip' or 'domain'" in message
    assert "(bl.example.org)" in message


@pytest.mark.parametrize(
    ("zone", "fragment"),
    [
        ({"kind": 4}, "kind must be a str"),
        ({"ttl": "300"}, "ttl must be a int"),
        ({"ttl": True}, "ttl must be a int"),
        ({"ttl": -1}, "ttl -1 is outside"),
        ({"ttl": 604801}, "ttl 604801 is outside"),
        ({"txt": 5}, "txt must be a str"),
        ({"soa": "x"}, "soa must be a table"),
        ({"soa": {"minimum": -1}}, "minimum -1 is outside"),
        ({"soa": {"refresh": 2**31}}, "refresh 2147483648 is outside"),
        ({"soa": {"mname": "bad..name"}}, "mname:"),
        ({"soa": {"rname": "bad name@example.org"}}, "rname:"),
        ({"codes": "127.0.0.2"}, "codes must be a table"),
    ],
)
def test_bad_zone_values(zone: dict[str, Any], fragment: str) -> None:
    message = config_error(minimal(**zone))
    assert fragment in message
    assert "(bl.example.org)" in message


@pytest.mark.parametrize(
    ("zone", "bad"),
    [
        ({"default_code": "127.0.0.1"}, "'127.0.0.1'"),
        ({"default_code": "127.0.0.2,10.0.0.2"}, "'10.0.0.2'"),
        ({"default_code": "127.255.255.3"}, "'127.255.255.3'"),
        ({"default_code": "listed"}, "'listed'"),
        ({"default_code": ""}, "no return code"),
        (
            {"default_code": ",".join(f"127.0.0.{n}" for n in range(2, 103))},
            "101 codes, at most 100 per listing",
        ),
        ({"codes": {"127.0.0.0": "zero"}}, "'127.0.0.0'"),
        ({"codes": {"garbage": "x"}}, "'garbage'"),
    ],
)
def test_bad_codes(zone: dict[str, Any], bad: str) -> None:
    message = config_error(minimal(**zone))
    assert bad in message
    assert "(bl.example.org)" in message


def test_soa_rname_at_sign_and_defaults_follow_ns() -> None:
    settings = parse(minimal(ns=["NS9.example.net."], soa={"rname": "abuse@Example.org"}))
    soa = settings.zones[0].soa
    assert soa.mname == "ns9.example.net"
    assert soa.rname == "abuse.example.org"


@pytest.mark.parametrize(
    ("field", "template"),
    [
        ("txt", "{foo}"),
        ("txt", "{key!r}"),
        ("txt", "{key:>20}"),
        ("txt", "{}"),
        ("txt", "{0}"),
        ("txt", "{key.upper}"),
        ("txt", "{key[0]}"),
        ("lookup_url", "https://x/{url}"),
        ("lookup_url", "https://x/{key!s}"),
    ],
)
def test_bad_template_fields(field: str, template: str) -> None:
    message = config_error(minimal(**{field: template}))
    assert f"(bl.example.org) {field}" in message
    assert repr(template) in message
    assert "may only use" in message


@pytest.mark.parametrize("template", ["{key", "key}", "{{key}"])
def test_malformed_template(template: str) -> None:
    message = config_error(minimal(txt=template))
    assert "(bl.example.org) txt" in message
    assert "malformed" in message


def test_escaped_braces_are_fine() -> None:
    zone = parse(minimal(txt="{{literal}} {key}")).zones[0]
    assert zone.txt_for("192.0.2.1") == "{literal} 192.0.2.1"


def test_duplicate_zone() -> None:
    data = {
        "zones": [
            {"name": "bl.example.org", "ns": ["ns1.example.org"]},
            {"name": "BL.example.org.", "kind": "domain", "ns": ["ns1.example.org"]},
        ]
    }
    message = config_error(data)
    assert "'bl.example.org' is defined twice" in message


@pytest.mark.parametrize(
    ("listen", "fragment"),
    [
        ([], "non-empty list"),
        ("127.0.0.1:53", "non-empty list"),
        ([53], "listen entry 53 is not a string"),
        (["127.0.0.1:dns"], "'127.0.0.1:dns' has no numeric port"),
        (["127.0.0.1:"], "'127.0.0.1:' has no numeric port"),
        (["127.0.0.1:65536"], "'127.0.0.1:65536' is not 'address:port'"),
        (["127.0.0.1:-1"], "'127.0.0.1:-1' is not 'address:port'"),
        ([":53"], "':53' is not 'address:port'"),
        (["[]:53"], "'[]:53' is not 'address:port'"),
    ],
)
def test_bad_listen_entry(listen: Any, fragment: str) -> None:
    message = config_error({**minimal(), "dns": {"listen": listen}})
    assert "[dns]" in message
    assert fragment in message


@pytest.mark.parametrize("key", ["notify", "check"])
@pytest.mark.parametrize("entry", ["ns2.example.net:53", "localhost", "[ns2.example.net]:53"])
def test_secondaries_by_name_are_refused(key: str, entry: str) -> None:
    """NOTIFY and the doctor's checks go to addresses: a name is refused when the
    configuration is read, not when the first datagram would be sent."""
    message = config_error({**minimal(), "transfer": {key: ["192.0.2.53", entry]}})
    assert f"[transfer]: {key} entry {entry!r} is not an IP address" in message


def test_secondaries_by_address_are_read() -> None:
    settings = parse({**minimal(), "transfer": {"notify": ["192.0.2.53", "[2001:db8::53]:5300"]}})
    assert settings.transfer.notify == (("192.0.2.53", 53), ("2001:db8::53", 5300))


@pytest.mark.parametrize(
    ("dns", "fragment"),
    [
        ({"udp_payload": 511}, "udp_payload 511 is outside 512..4096"),
        ({"udp_payload": 4097}, "udp_payload 4097 is outside"),
        ({"udp_payload": "1232"}, "udp_payload must be a int"),
    ],
)
def test_bad_dns_values(dns: dict[str, Any], fragment: str) -> None:
    message = config_error({**minimal(), "dns": dns})
    assert "[dns]" in message
    assert fragment in message


@pytest.mark.parametrize(
    ("interval", "fragment"),
    [
        (0, "poll_interval 0 is outside"),
        (61, "poll_interval 61 is outside"),
        ("1", "poll_interval must be a number"),
        (True, "poll_interval must be a number"),
    ],
)
def test_bad_sync_values(interval: Any, fragment: str) -> None:
    message = config_error({**minimal(), "sync": {"poll_interval": interval}})
    assert "[sync]" in message
    assert fragment in message


@pytest.mark.parametrize(
    ("keep", "fragment"),
    [
        ("30m", "keep_changes 1800s is under an hour"),
        ("soon", "'soon' is not a duration"),
        (-5, "must be positive"),
    ],
)
def test_bad_keep_changes(keep: Any, fragment: str) -> None:
    message = config_error({**minimal(), "sync": {"keep_changes": keep}})
    assert "[sync]" in message and fragment in message


def test_keep_changes_default_and_off() -> None:
    assert parse(minimal()).sync.keep_changes == 7 * 86400
    assert parse({**minimal(), "sync": {"keep_changes": "2d"}}).sync.keep_changes == 2 * 86400
    assert parse({**minimal(), "sync": {"keep_changes": 0}}).sync.keep_changes == 0


def test_sync_accepts_int_seconds() -> None:
    settings = parse({**minimal(), "sync": {"poll_interval": 2}})
    assert settings.sync.poll_interval == 2.0
    assert isinstance(settings.sync.poll_interval, float)


@pytest.mark.parametrize("table", ["dns", "sync", "database"])
def test_sections_must_be_tables(table: str) -> None:
    message = config_error({**minimal(), table: "x"})
    assert f"{table} must be a table" in message


def test_second_zone_error_names_its_position() -> None:
    data = {
        "zones": [
            {"name": "bl.example.org", "ns": ["ns1.example.org"]},
            {"name": "dbl.example.org", "kind": "domain", "ns": ["ns1.example.org"], "ttl": -5},
        ]
    }
    message = config_error(data)
    assert "[[zones]] #2 (dbl.example.org)" in message


def test_settings_are_frozen() -> None:
    settings = parse(minimal())
    with pytest.raises(AttributeError):
        settings.zones[0].ttl = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("[::1]:5353", ("::1", 5353)),
        ("[2001:db8::53]:53", ("2001:db8::53", 53)),
        ("192.0.2.53:0", ("192.0.2.53", 0)),
        ("localhost", ("localhost", 53)),
    ],
)
def test_listen_entries(entry: str, expected: tuple[str, int]) -> None:
    assert parse({**minimal(), "dns": {"listen": [entry]}}).dns.listen == (expected,)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("::1", ("::1", 53)),
        ("2001:db8::53", ("2001:db8::53", 53)),
        ("::", ("::", 53)),
        ("[::1]", ("::1", 53)),
        ("[::]:5300", ("::", 5300)),
    ],
)
def test_ipv6_listen_entries_without_port_or_brackets(
    entry: str, expected: tuple[str, int]
) -> None:
    assert parse({**minimal(), "dns": {"listen": [entry]}}).dns.listen == (expected,)


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("[::1", "is not '[address]:port'"),
        ("[::1]53", "is not '[address]:port'"),
        ("[::1]:", "has no numeric port"),
        ("[::1]:x", "has no numeric port"),
    ],
)
def test_bad_bracketed_listen_entries(entry: str, fragment: str) -> None:
    message = config_error({**minimal(), "dns": {"listen": [entry]}})
    assert repr(entry) in message
    assert fragment in message


def test_rname_mailbox_with_a_dot_is_refused() -> None:
    message = config_error(minimal(soa={"rname": "john.doe@example.org"}))
    assert "john.doe@example.org" in message
    assert parse(minimal(soa={"rname": "hostmaster@example.org"})).zones[0].soa.rname == (
        "hostmaster.example.org"
    )


def test_code_meaning_keyed_by_several_codes_is_refused() -> None:
    message = config_error(minimal(codes={"127.0.0.2,127.0.0.3": "two"}))
    assert "127.0.0.2,127.0.0.3" in message


def test_empty_listing_template_gives_empty_txt() -> None:
    zone = parse(minimal(txt="zone {key}")).zones[0]
    assert zone.txt_for("192.0.2.1") == "zone 192.0.2.1"
    assert zone.txt_for("192.0.2.1", "") == ""


def test_public_section_defaults_opt_ins_and_errors() -> None:
    """[public]: the safe default, the two documented opt-ins, and clear errors."""
    default = parse(minimal()).public
    assert (default.time_resolution, default.show_trap_domains) == ("day", False)
    chosen = parse({**minimal(), "public": {"time_resolution": "hour", "show_trap_domains": True}})
    assert (chosen.public.time_resolution, chosen.public.show_trap_domains) == ("hour", True)
    assert "[public]: time_resolution 'minute' is not one of day, hour" in config_error(
        {**minimal(), "public": {"time_resolution": "minute"}}
    )
    assert "show_trap_domains must be true or false, not 'yes'" in config_error(
        {**minimal(), "public": {"show_trap_domains": "yes"}}
    )
    assert "unknown setting(s) per_hit_rows" in config_error(
        {**minimal(), "public": {"per_hit_rows": True}}
    )
