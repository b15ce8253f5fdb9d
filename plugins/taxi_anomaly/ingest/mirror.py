"""A local stand-in for the TLC trip-data CDN on 127.0.0.1 that can misbehave on demand.

It serves `/trip-data/{file}` and `/misc/{file}` from one or more data folders (each looked up at its top level
and in its `tlc/`, `trip-data/` and `misc/` subfolders, in the order given), so both ../shared/data and a
folder of generated months work as they are. Any path can also be mapped to a file (`alias`) and any path can
be made to fail (`Fault`): a status code such as 500/503/429/404/403, a connection dropped mid-body, a wrong
Content-Length, or a stall longer than the client's read timeout; each for a number of requests or forever.

In-process (tests): ``with Mirror([data_dir]) as m: m.add_fault(path, Fault("drop"))``.
Standalone: ``python -m taxi_anomaly.ingest.mirror --port 8765 --data-dir ../shared/data``; control it over
HTTP under ``/_mirror/`` (see `_ControlApi`), e.g.
``curl -X POST localhost:8765/_mirror/faults -d '{"path": "/trip-data/x.parquet", "mode": "status", "status": 500}'``.
"""

from __future__ import annotations

import argparse
import email.utils
import gzip
import json
import logging
import signal
import threading
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

LOOPBACK = "127.0.0.1"
SERVED_FOLDERS = ("trip-data", "misc")
SEARCH_SUBFOLDERS = ("", "tlc", "trip-data", "misc")
FAULT_MODES = ("status", "drop", "wrong_length", "stall", "trickle", "gzip")
CONTROL_PREFIX = "/_mirror/"

log = logging.getLogger(__name__)


@dataclass
class Fault:
    """How one path misbehaves.

    :param mode: ``status`` (answer `status` with a short body), ``drop`` (send `after_bytes` of the body, then
        close the connection), ``wrong_length`` (declare Content-Length = size + `length_delta`, send the real
        body, close), ``stall`` (send `after_bytes`, then go silent for `seconds`, then close), ``trickle`` (send
        `after_bytes`, then one byte every `seconds` to the end: a slow source that never trips a read timeout),
        ``gzip`` (the body gzip-compressed with Content-Encoding: gzip, whatever the client asked for, as a
        misconfigured CDN does).
    :param times: how many requests misbehave before the path is served normally again; None = forever.
    :param status: the status code of mode ``status``.
    :param after_bytes: body bytes sent before a drop or stall; None = half the file.
    :param length_delta: Content-Length error of mode ``wrong_length`` (negative under-declares).
    :param seconds: length of a stall.
    :param retry_after: Retry-After header (seconds) sent with mode ``status``.
    """

    mode: str
    times: int | None = 1
    status: int = 500
    after_bytes: int | None = None
    length_delta: int = 1000
    seconds: float = 30.0
    retry_after: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {self.mode!r}; expected one of {', '.join(FAULT_MODES)}")
        if self.mode == "status" and not 400 <= self.status <= 599:
            raise ValueError(f"a status fault needs a 4xx/5xx status, got {self.status}")
        if self.times is not None and self.times < 1:
            raise ValueError(f"times must be >= 1 or None (forever), got {self.times}")


@dataclass(frozen=True)
class RequestRecord:
    """One request the mirror answered (for tests to assert on what the client really did)."""

    method: str
    path: str
    status: int
    body_bytes: int  # what the mirror set out to send (less if the client went away)
    fault: str | None = None


@dataclass
class _State:
    data_dirs: list[Path]
    faults: dict[str, Fault] = field(default_factory=dict)
    aliases: dict[str, Path] = field(default_factory=dict)
    log: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=10_000))
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def take_fault(self, path: str) -> Fault | None:
        """The fault for this request, counting it down."""
        with self.lock:
            fault = self.faults.get(path)
            if fault is None:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[path]
            return fault

    def resolve(self, path: str) -> Path | None:
        """The file served at a URL path, or None."""
        with self.lock:
            alias = self.aliases.get(path)
        if alias is not None:
            return alias
        parts = path.strip("/").split("/")
        if len(parts) != 2 or parts[0] not in SERVED_FOLDERS or parts[1] in ("", ".", ".."):
            return None
        for data_dir in self.data_dirs:
            for sub in SEARCH_SUBFOLDERS:
                candidate = data_dir / sub / parts[1]
                if candidate.is_file():
                    return candidate
        return None

    def inside_data_dirs(self, file: Path) -> bool:
        resolved = file.resolve()
        return any(resolved.is_relative_to(d.resolve()) for d in self.data_dirs)


def _normalise_path(path: str) -> str:
    return "/" + unquote(urlsplit(path).path).lstrip("/")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tap-tlc-mirror/1"
    state: _State  # set on the subclass made per mirror

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("mirror %s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def do_POST(self) -> None:  # noqa: N802
        _ControlApi(self).post()

    def do_DELETE(self) -> None:  # noqa: N802
        _ControlApi(self).delete()

    def _record(self, status: int, body_bytes: int, fault: Fault | None = None) -> None:
        record = RequestRecord(self.command, _normalise_path(self.path), int(status), body_bytes, fault and fault.mode)
        self.state.log.append(record)

    def _serve(self, head: bool) -> None:
        path = _normalise_path(self.path)
        if path.startswith(CONTROL_PREFIX):
            _ControlApi(self).get()
            return
        fault = self.state.take_fault(path)
        if fault is not None and fault.mode == "status":
            self._send_status_fault(fault, head)
            return
        file = self.state.resolve(path)
        if file is None:
            self.send_json(HTTPStatus.NOT_FOUND, {"error": "not found", "path": path}, head=head)
            return
        if fault is not None and fault.mode == "gzip":
            self._send_gzipped(file, head, fault)
            return
        size = file.stat().st_size
        declared = size + fault.length_delta if fault is not None and fault.mode == "wrong_length" else size
        limit = 0 if head else size
        if not head and fault is not None and fault.mode in ("drop", "stall", "trickle"):
            limit = size // 2 if fault.after_bytes is None else min(fault.after_bytes, size)
        elif not head and fault is not None and fault.mode == "wrong_length":
            limit = min(size, max(declared, 0))
        # Recorded before the headers go out: a HEAD's client may read the log as soon as it has them.
        self._record(HTTPStatus.OK, limit, fault)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", _content_type(file))
        self.send_header("Content-Length", str(max(declared, 0)))
        self.send_header("ETag", f'"{size:x}-{file.stat().st_mtime_ns:x}"')
        self.send_header("Last-Modified", email.utils.formatdate(file.stat().st_mtime, usegmt=True))
        if fault is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        with file.open("rb") as body:
            _copy(body, self.wfile, limit)
            if not head and fault is not None and fault.mode == "trickle":
                self._trickle(body, size - limit, fault.seconds)
        if fault is not None and fault.mode == "stall":
            self.wfile.flush()
            self.state.stopping.wait(fault.seconds)

    def _trickle(self, body: BinaryIO, remaining: int, every_s: float) -> None:
        try:
            while remaining > 0 and not self.state.stopping.is_set():
                self.wfile.write(body.read(1))
                self.wfile.flush()
                remaining -= 1
                self.state.stopping.wait(every_s)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def _send_gzipped(self, file: Path, head: bool, fault: Fault) -> None:
        compressed = gzip.compress(file.read_bytes(), mtime=0)
        self._record(HTTPStatus.OK, 0 if head else len(compressed), fault)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", _content_type(file))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(compressed)))
        self.end_headers()
        if not head:
            self.wfile.write(compressed)

    def _send_status_fault(self, fault: Fault, head: bool) -> None:
        self.close_connection = True
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        body = {"error": "injected fault", "status": fault.status}
        self.send_json(fault.status, body, head=head, headers=headers, fault=fault)

    def send_json(
        self,
        status: int,
        document: Any,
        head: bool = False,
        headers: dict[str, str] | None = None,
        fault: Fault | None = None,
    ) -> None:
        body = json.dumps(document, default=str).encode()
        if not self.path.startswith(CONTROL_PREFIX):
            self._record(status, 0 if head else len(body), fault)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


class _ControlApi:
    """The control endpoint, for a mirror running in another process.

    GET    /_mirror/health                  -> {"data_dirs": [...]}
    GET    /_mirror/requests[?path=P]       -> the request log (method, path, status, body_bytes, fault)
    POST   /_mirror/faults   {"path": P, "mode": ..., "times": ..., "status": ..., ...}  (see Fault)
    DELETE /_mirror/faults[?path=P]         -> clears one path's fault, or all
    POST   /_mirror/aliases  {"path": P, "file": F}  (F must lie inside a data folder)
    DELETE /_mirror/aliases[?path=P]
    """

    def __init__(self, handler: _Handler) -> None:
        self.handler = handler
        self.state = handler.state
        url = urlsplit(handler.path)
        self.route = url.path.removeprefix(CONTROL_PREFIX).strip("/")
        self.query = {k: v[0] for k, v in parse_qs(url.query).items()}

    def get(self) -> None:
        if self.route == "health":
            self.handler.send_json(HTTPStatus.OK, {"data_dirs": [str(d) for d in self.state.data_dirs]})
        elif self.route == "requests":
            path = self.query.get("path")
            records = [asdict(r) for r in self.state.log if path is None or r.path == _normalise_path(path)]
            self.handler.send_json(HTTPStatus.OK, records)
        else:
            self.handler.send_json(HTTPStatus.NOT_FOUND, {"error": f"no control route {self.route!r}"})

    def post(self) -> None:
        try:
            length = int(self.handler.headers.get("Content-Length") or 0)
            body = json.loads(self.handler.rfile.read(length) or b"{}")
            path = _normalise_path(body.pop("path"))
            if self.route == "faults":
                fault = Fault(**body)
                with self.state.lock:
                    self.state.faults[path] = fault
                self.handler.send_json(HTTPStatus.CREATED, {"path": path, **asdict(fault)})
            elif self.route == "aliases":
                file = Path(body["file"])
                if not file.is_file() or not self.state.inside_data_dirs(file):
                    raise ValueError(f"{file} is not a file inside the mirror's data folders")
                with self.state.lock:
                    self.state.aliases[path] = file
                self.handler.send_json(HTTPStatus.CREATED, {"path": path, "file": str(file)})
            else:
                self.handler.send_json(HTTPStatus.NOT_FOUND, {"error": f"no control route {self.route!r}"})
        except (KeyError, TypeError, ValueError) as err:
            self.handler.send_json(HTTPStatus.BAD_REQUEST, {"error": str(err)})

    def delete(self) -> None:
        table = {"faults": self.state.faults, "aliases": self.state.aliases}.get(self.route)
        if table is None:
            self.handler.send_json(HTTPStatus.NOT_FOUND, {"error": f"no control route {self.route!r}"})
            return
        with self.state.lock:
            if "path" in self.query:
                table.pop(_normalise_path(self.query["path"]), None)
            else:
                table.clear()
        self.handler.send_json(HTTPStatus.OK, {"cleared": self.route})


def _copy(source: BinaryIO, sink: BinaryIO, limit: int, chunk: int = 1 << 20) -> int:
    sent = 0
    try:
        while sent < limit:
            block = source.read(min(chunk, limit - sent))
            if not block:
                break
            sink.write(block)
            sent += len(block)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client went away; nothing to do
    return sent


def _content_type(file: Path) -> str:
    if file.suffix == ".csv":
        return "text/csv"
    return "binary/octet-stream"  # what the TLC's CloudFront answers for parquet files


class Mirror:
    """The mirror server, bound to 127.0.0.1 only.

    :param data_dirs: folders to serve, searched in order.
    :param port: TCP port; 0 picks a free one (see `url`).
    """

    def __init__(self, data_dirs: list[Path] | tuple[Path, ...], port: int = 0) -> None:
        dirs = [Path(d) for d in data_dirs]
        missing = [str(d) for d in dirs if not d.is_dir()]
        if not dirs or missing:
            raise ValueError(f"mirror data folders must exist; missing: {missing or 'none given'}")
        self._state = _State(dirs)
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the mirror is not running; call start() first")
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def start(self) -> Mirror:
        handler = type("MirrorHandler", (_Handler,), {"state": self._state})
        self._server = ThreadingHTTPServer((LOOPBACK, self._port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="tlc-mirror", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None

    def __enter__(self) -> Mirror:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Run in the calling thread until SIGINT/SIGTERM (the CLI)."""
        self.start()
        log.info("TLC mirror on %s serving %s", self.url, ", ".join(str(d) for d in self._state.data_dirs))
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        done.wait()
        self.stop()

    def add_fault(self, path: str, fault: Fault) -> None:
        """Make `path` misbehave (a copy of `fault` is kept, so one Fault can serve several mirrors)."""
        with self._state.lock:
            self._state.faults[_normalise_path(path)] = replace(fault)

    def clear_faults(self) -> None:
        with self._state.lock:
            self._state.faults.clear()

    def alias(self, path: str, file: Path) -> None:
        """Serve `file` at `path` (e.g. a broken download under a month's file name)."""
        if not Path(file).is_file():
            raise ValueError(f"cannot alias {path} to {file}: no such file")
        with self._state.lock:
            self._state.aliases[_normalise_path(path)] = Path(file)

    def requests(self, path: str | None = None) -> list[RequestRecord]:
        wanted = None if path is None else _normalise_path(path)
        return [r for r in list(self._state.log) if wanted is None or r.path == wanted]


def main(argv: list[str] | None = None) -> None:
    from taxi_anomaly.ingest.settings import shared_data_dir

    parser = argparse.ArgumentParser(description="Serve TLC files on 127.0.0.1 like the TLC's CDN.")
    parser.add_argument("--port", type=int, default=8765, help="TCP port on 127.0.0.1 (0 = any free port)")
    parser.add_argument(
        "--data-dir",
        action="append",
        type=Path,
        help="folder to serve (repeatable; searched in order); default: the shared reference data",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    Mirror(args.data_dir or [shared_data_dir()], port=args.port).serve_forever()


if __name__ == "__main__":
    main()
