"""Downloads that give up: a connect timeout, then a limit on silence while reading.

A workshop's Wi-Fi or a proxy may accept a connection and then send nothing; a download
that waits for it would hang a lesson. :func:`copy_url` gives up after
``CONNECT_TIMEOUT`` seconds without a connection or ``STALL_TIMEOUT`` seconds without a
byte, and says which, so the caller can fall back at once.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request

from forge_course.errors import DownloadError

__all__ = ["CONNECT_TIMEOUT", "STALL_TIMEOUT", "copy_url", "file_sha256"]

CONNECT_TIMEOUT = 5.0  # seconds to open a connection to the mirror
STALL_TIMEOUT = 8.0  # seconds without a byte from the mirror before a download gives up


def copy_url(url: str, out, what: str) -> None:
    """Copy ``url`` into the open binary file ``out``; ``what`` names it in errors.

    Raises:
        DownloadError: the server is absent, answers with an error, or stalls.
    """
    opener = urllib.request.build_opener(_StallHTTPHandler, _StallHTTPSHandler)
    try:
        with opener.open(url, timeout=CONNECT_TIMEOUT) as response:
            while chunk := response.read(1 << 16):
                out.write(chunk)
    except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(exc, urllib.error.HTTPError):
            why = f"the server answered HTTP {exc.code} for {url}"
        elif isinstance(reason, TimeoutError):
            why = (
                f"the network stalled: {url} did not connect within {CONNECT_TIMEOUT:g} s "
                f"or sent nothing for {STALL_TIMEOUT:g} s"
            )
        else:
            why = f"{type(reason).__name__}: {reason} ({url})"
        raise DownloadError(f"downloading {what} failed ({why})") from None


class _StallHTTPConnection(http.client.HTTPConnection):
    """Connects within the opener's timeout, then allows ``STALL_TIMEOUT`` between bytes."""

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(STALL_TIMEOUT)


class _StallHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(STALL_TIMEOUT)


class _StallHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_StallHTTPConnection, req)


class _StallHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_StallHTTPSConnection, req, context=self._context)


def file_sha256(path) -> str:
    """The SHA-256 of a file, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
