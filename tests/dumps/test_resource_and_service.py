"""The HTTP resource (ETag, Last-Modified, 304, types, no traversal) and the timer service."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer, task
from twisted.logger import globalLogPublisher
from twisted.web import http
from twisted.web.test.requesthelper import DummyRequest

from rbl.dumps import service as service_module
from rbl.dumps.resource import DumpResource
from rbl.dumps.service import DumpService
from rbl.dumps.writer import DumpReport, write_dumps
from tests.support.dump_seed import IP_ZONE, NOW, Seeded, seed


@pytest.fixture
def served(tmp_path: Path) -> tuple[Seeded, Path, DumpResource]:
    seeded = seed(tmp_path)
    out = tmp_path / "dumps"
    write_dumps(seeded.settings, seeded.reader, out, NOW)
    return seeded, out, DumpResource(out)


def get(
    resource: DumpResource, path: str, headers: dict[str, str] | None = None, method: bytes = b"GET"
) -> DummyRequest:
    request = DummyRequest([segment.encode() for segment in path.split("/")])
    request.method = method
    for name, value in (headers or {}).items():
        request.requestHeaders.setRawHeaders(name.encode(), [value.encode()])
    result = resource.render(request)
    if isinstance(result, bytes):
        request.write(result)
        request.finish()
    return request


def header(request: DummyRequest, name: str) -> str | None:
    values = request.responseHeaders.getRawHeaders(name.encode())
    return values[0].decode() if values else None


def test_files_with_types_etag_and_last_modified(
    served: tuple[Seeded, Path, DumpResource],
) -> None:
    _seeded, out, resource = served
    for path, kind in (
        (f"{IP_ZONE}/{IP_ZONE}.txt", "text/plain; charset=utf-8"),
        (f"{IP_ZONE}/{IP_ZONE}.ip4set", "text/plain; charset=utf-8"),
        (f"{IP_ZONE}/{IP_ZONE}.zone.gz", "application/gzip"),
        ("summary.json", "application/json"),
        ("summary.csv", "text/csv; charset=utf-8"),
        ("SHA256SUMS", "text/plain; charset=utf-8"),
    ):
        request = get(resource, path)
        assert request.responseCode in (None, 200), path
        assert header(request, "content-type") == kind
        assert b"".join(request.written) == (out / path).read_bytes()
        assert header(
            request,
            "etag",
        ).startswith('"')  # type: ignore[union-attr]
        mtime = int((out / path).stat().st_mtime)
        assert header(request, "last-modified") == http.datetimeToString(mtime).decode()


def test_conditional_get_answers_304(served: tuple[Seeded, Path, DumpResource]) -> None:
    seeded, out, resource = served
    path = f"{IP_ZONE}/{IP_ZONE}.zone"
    first = get(resource, path)
    etag, modified = header(first, "etag"), header(first, "last-modified")
    assert etag and modified
    again = get(resource, path, {"If-None-Match": etag})
    assert again.responseCode == http.NOT_MODIFIED and b"".join(again.written) == b""
    weak = get(resource, path, {"If-None-Match": f'"nope", W/{etag}'})
    assert weak.responseCode == http.NOT_MODIFIED
    since = get(resource, path, {"If-Modified-Since": modified})
    assert since.responseCode == http.NOT_MODIFIED
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    other = get(resource, path, {"If-None-Match": '"other"', "If-Modified-Since": modified})
    assert other.responseCode in (None, 200)
    old = get(resource, path, {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert old.responseCode in (None, 200)
    garbage = get(resource, path, {"If-Modified-Since": "yesterday"})
    assert garbage.responseCode in (None, 200)
    # A new generation changes the validators.
    os.utime(out / path, ns=(0, (out / path).stat().st_mtime_ns + 5_000_000_000))
    write_dumps(seeded.settings, seeded.reader, out, NOW.replace(hour=13))
    fresh = get(resource, path, {"If-None-Match": etag})
    assert fresh.responseCode in (None, 200) and header(fresh, "etag") != etag


def test_head_has_headers_and_no_body(served: tuple[Seeded, Path, DumpResource]) -> None:
    _seeded, out, resource = served
    request = get(resource, "summary.json", method=b"HEAD")
    assert header(request, "content-length") == str((out / "summary.json").stat().st_size)
    assert b"".join(request.written) == b""


@pytest.mark.parametrize(
    "path",
    [
        "",
        IP_ZONE,
        f"{IP_ZONE}/",
        "../rbl.sqlite",
        f"{IP_ZONE}/../../rbl.sqlite",
        f"{IP_ZONE}/.{IP_ZONE}.zone.rbl-dump-1-ab.tmp",
        ".hidden.txt",
        "nothing.txt",
        f"{IP_ZONE}/notes.exe",
        "%2e%2e/rbl.toml",
        "a\\..\\summary.json",
    ],
)
def test_everything_else_is_404(served: tuple[Seeded, Path, DumpResource], path: str) -> None:
    _seeded, out, resource = served
    (out / IP_ZONE / f".{IP_ZONE}.zone.rbl-dump-1-ab.tmp").write_text("temporary")
    (out / IP_ZONE / "notes.exe").write_text("x")
    request = get(resource, path)
    assert request.responseCode == http.NOT_FOUND


def test_symlink_out_of_the_directory_is_404(served: tuple[Seeded, Path, DumpResource]) -> None:
    seeded, out, resource = served
    (out / "escape.txt").symlink_to(seeded.directory / "rbl.toml")
    (seeded.directory / "rbl.toml").write_text("secret")
    assert get(resource, "escape.txt").responseCode == http.NOT_FOUND


def test_large_file_is_streamed(served: tuple[Seeded, Path, DumpResource]) -> None:
    _seeded, out, resource = served
    big = out / "big.txt"
    big.write_bytes(b"0123456789\n" * 100_000)
    request = get(resource, "big.txt")
    assert b"".join(request.written) == big.read_bytes()
    assert request.finished


def test_unsupported_method(served: tuple[Seeded, Path, DumpResource]) -> None:
    from twisted.web.error import UnsupportedMethod

    _seeded, _out, resource = served
    request = DummyRequest([b"summary.json"])
    request.method = b"PUT"
    with pytest.raises(UnsupportedMethod):
        resource.render(request)


# -- the timer service ------------------------------------------------------------------


def synchronous(fn: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
    return defer.maybeDeferred(fn, *args)


def test_service_dumps_on_start_and_every_interval(tmp_path: Path) -> None:
    seeded = seed(tmp_path)
    clock = task.Clock()
    clock.advance(NOW.timestamp())
    service = DumpService(
        seeded.settings, seeded.reader, tmp_path / "out", synchronous, clock, interval=3600
    )
    service.startService()
    assert service.runs == 1 and (tmp_path / "out" / "SHA256SUMS").exists()
    assert service.last_report is not None
    assert service.last_report.generated == NOW
    clock.advance(3600)
    assert service.runs == 2
    service.stopService()
    clock.advance(7200)
    assert service.runs == 2


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    observer = events.append
    globalLogPublisher.addObserver(observer)  # type: ignore[arg-type]
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(observer)  # type: ignore[arg-type]


def failures(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if "log_failure" in e]


def test_service_keeps_running_after_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logged: list[dict[str, Any]]
) -> None:
    seeded = seed(tmp_path)
    clock = task.Clock()
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> DumpReport:
        calls.append(1)
        if len(calls) in (1, 2):
            raise OSError("disk full")
        assert kwargs == {"gzip_level": 6}
        return write_dumps(*args, **kwargs)

    monkeypatch.setattr(service_module, "write_dumps", flaky)
    service = DumpService(
        seeded.settings, seeded.reader, tmp_path / "out", synchronous, clock, interval=60
    )
    service.startService()
    clock.advance(60)
    assert service.failures == 2 and service.runs == 0
    assert service.loop is not None and service.loop.running
    clock.advance(60)
    assert service.runs == 1 and service.failures == 2
    assert len(failures(logged)) == 2
    assert "disk full" in str(failures(logged)[0]["log_failure"].value)
    service.stopService()


def test_a_runner_that_raises_is_logged_too(tmp_path: Path, logged: list[dict[str, Any]]) -> None:
    seeded = seed(tmp_path)
    clock = task.Clock()

    def broken(fn: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        raise RuntimeError("pool stopped")

    service = DumpService(seeded.settings, seeded.reader, tmp_path / "out", broken, clock)
    service.startService()
    assert service.failures == 1 and service.loop is not None and service.loop.running
    assert not service.busy
    assert len(failures(logged)) == 1
    service.stopService()


def test_overlapping_tick_is_skipped(tmp_path: Path) -> None:
    seeded = seed(tmp_path)
    clock = task.Clock()
    pending: list[defer.Deferred[Any]] = []

    def slow(fn: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        pending.append(d)
        return d

    service = DumpService(seeded.settings, seeded.reader, tmp_path / "out", slow, clock, 10)
    service.startService()
    clock.advance(10)
    clock.advance(10)
    assert len(pending) == 1  # the loop waits for the running dump
    pending[0].callback(write_dumps(seeded.settings, seeded.reader, tmp_path / "out", NOW))
    assert service.runs == 1
    service.stopService()


# -- the CLI command ---------------------------------------------------------------------


def test_dump_command(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from rbl.cli.base import Context
    from rbl.cli.dump import dump

    seeded = seed(tmp_path)
    obj = Context(str(tmp_path / "rbl.toml"), None, "tester", _settings=seeded.settings)
    runner = CliRunner()
    out = tmp_path / "cli-dumps"
    result = runner.invoke(dump, ["--directory", str(out), "--zone", IP_ZONE], obj=obj)
    assert result.exit_code == 0, result.output
    assert f"{IP_ZONE}: 16 listings, 5 exclusions" in result.output
    assert (out / IP_ZONE / f"{IP_ZONE}.ip4set").exists()
    assert not (out / "dbl.example.org").exists()
    result = runner.invoke(dump, ["--directory", str(out), "--gzip-level", "1"], obj=obj)
    assert result.exit_code == 0 and (out / "dbl.example.org").exists()


def test_mounted_beside_a_leaf_site(served: tuple[Seeded, Path, DumpResource]) -> None:
    from twisted.web.resource import Resource, getChildForRequest

    from rbl.dumps.resource import mount_dumps

    _seeded, out, _resource = served

    class Leaf(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            return b"site:" + b"/".join(request.postpath)

    root = mount_dumps(Leaf(), out)

    def fetch(path: bytes) -> bytes:
        request = DummyRequest(path.split(b"/")[1:])
        request.prepath = []
        request.method = b"GET"
        resource = getChildForRequest(root, request)
        body = resource.render(request)
        assert isinstance(body, bytes)
        return body

    assert fetch(b"/lookup/192.0.2.1") == b"site:lookup/192.0.2.1"
    assert fetch(b"/dumps/summary.json") == (out / "summary.json").read_bytes()
    assert fetch(b"/") == b"site:"
