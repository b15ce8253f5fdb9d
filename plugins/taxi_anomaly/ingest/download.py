"""Stream a URL to a local file, hashing as it goes, with retries and backoff on transient errors only.

Transient (retried): connection errors and resets, timeouts, a body shorter or longer than its Content-Length,
5xx and 429 (honouring Retry-After), an attempt slower than `min_throughput_bytes_s`. Final: 404/403
(`NotPublished`: the TLC publishes with a lag), other 4xx, and the overall `download_deadline_s` (`DownloadError`).
Every failure names the URL. The file is stored as the server meant it: `Accept-Encoding: identity` is asked for,
and a body sent compressed anyway (Content-Encoding gzip/deflate) is decoded, its Content-Length checked against
the bytes on the wire. Nothing here touches the object store.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from taxi_anomaly.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]
NOT_PUBLISHED_STATUSES = (403, 404)


class NotPublished(Exception):
    """The source answered 404/403: the file is not published (yet), or does not exist."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"{url} answered HTTP {status}: not published yet or not found (not retried)")
        self.url = url
        self.status = status


class DownloadError(Exception):
    """The download failed for good: a non-retryable answer, or every attempt failed."""


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RemoteFile:
    """What a HEAD request says about a source file."""

    url: str
    content_length: int | None
    etag: str | None
    last_modified: str | None


@dataclass(frozen=True)
class Downloaded:
    """A completed download: the local file, its size and sha256, and how it went."""

    url: str
    path: Path
    bytes: int
    sha256: str
    content_length: int | None
    etag: str | None
    last_modified: str | None
    attempts: int
    seconds: float


class LogProgress:
    """Logs `name: x of y MiB (p%), r MiB/s` at most every `interval_s`, for files of at least `min_bytes`."""

    def __init__(self, name: str, min_bytes: int, interval_s: float) -> None:
        self.name = name
        self.min_bytes = min_bytes
        self.interval_s = interval_s
        self._start = time.monotonic()
        self._last = self._start

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if (total or done) < self.min_bytes or (now - self._last < self.interval_s and not finished):
            return
        self._last = now
        rate = done / max(now - self._start, 1e-6) / 2**20
        of_total = f" of {total / 2**20:.1f} MiB ({100 * done / total:.0f}%)" if total else " MiB"
        log.info("%s: %.1f%s, %.1f MiB/s", self.name, done / 2**20, of_total, rate)


def _session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = "taxi-anomaly-platform-ingest/1"
    # requests asks for gzip/deflate by default; the files are stored as they are, so ask for them as they are.
    session.headers["Accept-Encoding"] = "identity"
    return session


def probe(url: str, settings: IngestSettings) -> RemoteFile:
    """HEAD the source. Raises NotPublished on 404/403, DownloadError on other errors (no retries)."""
    try:
        with _session() as session:
            response = session.head(
                url, timeout=(settings.connect_timeout_s, settings.read_timeout_s), allow_redirects=True
            )
    except requests.RequestException as err:
        raise DownloadError(f"HEAD {url} failed: {err}") from err
    if response.status_code in NOT_PUBLISHED_STATUSES:
        raise NotPublished(url, response.status_code)
    if response.status_code >= 400:
        raise DownloadError(f"HEAD {url} answered HTTP {response.status_code}")
    length = response.headers.get("Content-Length")
    return RemoteFile(
        url, int(length) if length else None, response.headers.get("ETag"), response.headers.get("Last-Modified")
    )


def download(url: str, dest: Path, settings: IngestSettings, progress: Progress | None = None) -> Downloaded:
    """Download `url` to `dest` (overwritten), retrying transient failures with exponential backoff and jitter.

    Raises NotPublished (404/403) or DownloadError; on any failure `dest` is removed.
    """
    started = time.monotonic()
    last_error = ""
    for attempt in range(1, settings.max_attempts + 1):
        try:
            return _attempt(url, dest, settings, progress, attempt, started)
        except _Transient as err:
            last_error = str(err)
            dest.unlink(missing_ok=True)
            if attempt == settings.max_attempts:
                break
            wait = _backoff(settings, attempt, err.retry_after)
            if time.monotonic() - started + wait >= settings.download_deadline_s:
                raise DownloadError(
                    f"downloading {url} gave up at the {settings.download_deadline_s:.0f} s deadline after "
                    f"{attempt} attempt(s); last error: {last_error}"
                ) from None
            log.warning("%s (attempt %d of %d); retrying in %.1f s", err, attempt, settings.max_attempts, wait)
            time.sleep(wait)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
    raise DownloadError(f"downloading {url} failed after {settings.max_attempts} attempt(s); last error: {last_error}")


def _backoff(settings: IngestSettings, attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, settings.backoff_max_s)
    ceiling = min(settings.backoff_initial_s * 2 ** (attempt - 1), settings.backoff_max_s)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


def _attempt(
    url: str, dest: Path, settings: IngestSettings, progress: Progress | None, attempt: int, started: float
) -> Downloaded:
    digest = hashlib.sha256()
    received = 0
    try:
        with (
            _session() as session,
            session.get(url, stream=True, timeout=(settings.connect_timeout_s, settings.read_timeout_s)) as response,
        ):
            _check_status(url, response)
            length_header = response.headers.get("Content-Length")
            expected = int(length_header) if length_header else None
            report = progress or LogProgress(dest.name, settings.progress_min_bytes, settings.progress_interval_s)
            pace = _Pace(url, settings, started)
            with dest.open("wb") as out:
                while block := response.raw.read1(settings.chunk_bytes, decode_content=True):
                    out.write(block)
                    digest.update(block)
                    received += len(block)
                    report(received, expected)
                    pace.check(response.raw.tell())
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
        raise _Transient(f"GET {url}: connection failed after {received} bytes: {_short(err)}") from err
    except Exception as err:
        if _is_transport_error(err):
            raise _Transient(f"GET {url}: transfer broke after {received} bytes: {_short(err)}") from err
        raise
    on_wire = response.raw.tell()  # bytes as sent (compressed, if the server compressed); Content-Length counts these
    if expected is not None and on_wire != expected:
        raise _Transient(f"GET {url}: received {on_wire} bytes but Content-Length said {expected}")
    return Downloaded(
        url=url,
        path=dest,
        bytes=received,
        sha256=digest.hexdigest(),
        content_length=expected,
        etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
        attempts=attempt,
        seconds=time.monotonic() - started,
    )


class _Pace:
    """The overall deadline (final) and the minimum throughput of one attempt (transient), checked per block."""

    def __init__(self, url: str, settings: IngestSettings, started: float) -> None:
        self.url, self.settings, self.started = url, settings, started
        self.marks: list[tuple[float, int]] = [(time.monotonic(), 0)]

    def check(self, on_wire: int) -> None:
        now, settings = time.monotonic(), self.settings
        if now - self.started > settings.download_deadline_s:
            raise DownloadError(
                f"GET {self.url}: not finished after the {settings.download_deadline_s:.0f} s deadline "
                f"({on_wire} bytes received in this attempt); not retried"
            )
        self.marks.append((now, on_wire))
        window = settings.throughput_window_s
        while len(self.marks) > 2 and self.marks[1][0] <= now - window:
            self.marks.pop(0)
        since, then = self.marks[0]
        if now - since >= window and (on_wire - then) / (now - since) < settings.min_throughput_bytes_s:
            rate = (on_wire - then) / (now - since)
            raise _Transient(
                f"GET {self.url}: {rate:.0f} B/s over the last {now - since:.0f} s, below the minimum "
                f"{settings.min_throughput_bytes_s:.0f} B/s ({on_wire} bytes received)"
            )


def _check_status(url: str, response: requests.Response) -> None:
    status = response.status_code
    if status in NOT_PUBLISHED_STATUSES:
        raise NotPublished(url, status)
    if status == 429 or status >= 500:
        retry_after = response.headers.get("Retry-After")
        seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
        raise _Transient(f"GET {url} answered HTTP {status}", seconds)
    if status >= 400:
        raise DownloadError(f"GET {url} answered HTTP {status} {response.reason}: not retried")


def _is_transport_error(err: Exception) -> bool:
    """urllib3's errors from reading the raw stream (IncompleteRead, ProtocolError, ReadTimeout...)."""
    from urllib3.exceptions import HTTPError as Urllib3Error

    return isinstance(err, Urllib3Error | ConnectionError | TimeoutError)


def _short(err: Exception) -> str:
    text = str(err)
    return text if len(text) <= 300 else text[:300] + "..."
