"""The HTTP client every front end uses (GUI, headless commands, tests).

It speaks only the `/jobs` API of DESIGN.md over httpx and maps HTTP errors onto
`skinapp.errors`. It knows nothing of Celery, Redis or the stack; where the local stack's URL
and admin token live is `skinapp.stack.runtime.local_connection()`'s business.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from skinapp import errors
from skinapp.contract.states import TERMINAL as TERMINAL_STATES

logger = logging.getLogger(__name__)

#: A file to upload: a path, or (file name, bytes).
Upload = Path | str | tuple[str, bytes]


#: For bodies without a known `code` (a proxy's page, an older API); a code wins over these.
_STATUS_ERRORS: dict[int, type[errors.SkinappError]] = {
    401: errors.AuthError,
    403: errors.Forbidden,
    404: errors.JobNotFound,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
    422: errors.InvalidRequest,
    503: errors.BrokerUnavailable,
}
_CODE_ERRORS = errors.by_code()


def _error_for(response: httpx.Response) -> errors.SkinappError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # FastAPI's own validation errors
        detail = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
        )
    message = str(detail or response.reason_phrase or f"HTTP {response.status_code}")
    code = body.get("code") if isinstance(body, dict) else None
    cls = _CODE_ERRORS.get(code or "") or _STATUS_ERRORS.get(
        response.status_code, errors.SkinappError
    )
    err = cls(message)
    err.http_status = response.status_code  # type: ignore[misc]
    return err


def _file_part(upload: Upload, field: str) -> tuple[str, tuple[str, bytes, str]]:
    if isinstance(upload, tuple):
        name, data = upload
    else:
        path = Path(upload)
        name, data = path.name, path.read_bytes()
    mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return field, (name, data, mime)


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Client:
    """A connection to one skinapp API. Thread-safe for concurrent calls (httpx.Client is)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # Plain HTTP needs no TLS context: building one (loading the CA bundle) cost every
        # client 40-220 ms, on every `skinapp batch` start and every dashboard client.
        plain = self.base_url.startswith("http://")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            verify=not plain,  # https keeps httpx's default verification
        )

    # --- plumbing ---------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise errors.ApiUnavailable(
                f"the skinapp API at {self.base_url} did not answer in time"
            ) from exc
        except httpx.TransportError as exc:
            raise errors.ApiUnavailable(
                f"cannot reach the skinapp API at {self.base_url}: {exc}"
            ) from exc
        if response.status_code >= 400:
            raise _error_for(response)
        return response

    def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        return self._request(method, url, **kwargs).json()  # type: ignore[no-any-return]

    # --- jobs -------------------------------------------------------------------------
    def submit(
        self, analysis: str, files: Upload | Iterable[Upload], **fields: Any
    ) -> dict[str, Any]:
        """Queue a job; returns the 202 body (`job_id`, `status`, `poll_url`, ...)."""
        uploads = [files] if isinstance(files, (str, Path, tuple)) else list(files)
        field = "files" if analysis == "batch-skin-check" else "file"
        parts = [_file_part(u, field) for u in uploads]
        data = {k: _form_value(v) for k, v in fields.items() if v is not None}
        return self._json("POST", f"/jobs/submit/{analysis}", files=parts, data=data)

    def analyze_sync(
        self,
        analysis: str,
        files: Upload | Iterable[Upload],
        *,
        timeout: float = 300.0,
        **fields: Any,
    ) -> dict[str, Any]:
        """The sync twin (`POST /full_classify/`, ...): waits and returns the result itself."""
        uploads = [files] if isinstance(files, (str, Path, tuple)) else list(files)
        field = "files" if analysis == "batch-skin-check" else "file"
        parts = [_file_part(u, field) for u in uploads]
        data = {k: _form_value(v) for k, v in fields.items() if v is not None}
        path = "/" + analysis.replace("-", "_") + "/"
        return self._json("POST", path, files=parts, data=data, timeout=timeout)

    def status(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/jobs/status/{job_id}")

    def result(self, job_id: str, *, wait: bool = False, timeout: float = 30.0) -> dict[str, Any]:
        """The job's result body; if it is not done (HTTP 202), its status body."""
        params = {"wait": "true" if wait else "false", "timeout": timeout}
        return self._json("GET", f"/jobs/result/{job_id}", params=params, timeout=timeout + 10)

    def wait(self, job_id: str, *, timeout: float = 300.0) -> dict[str, Any]:
        """Block until the job ends (SUCCESS, FAILURE or REVOKED) or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            body = self.result(job_id, wait=True, timeout=max(0.1, min(30.0, left)))
            if body.get("status") in TERMINAL_STATES or left <= 0:
                return body

    def image(self, job_id: str, n: int = 0) -> bytes:
        """The job's n-th image (0-based) as uploaded, from the workstation's image folder."""
        return self._request("GET", f"/jobs/image/{job_id}/{n}").content

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/jobs/cancel/{job_id}")

    def list_jobs(
        self,
        *,
        status: str | None = None,
        analysis: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """`{jobs: [...newest first], total, limit, offset}`."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        if analysis:
            params["analysis"] = analysis
        return self._json("GET", "/jobs/list", params=params)

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/jobs/health")

    def stats(self) -> dict[str, Any]:
        return self._json("GET", "/jobs/stats")

    def workers(self) -> dict[str, Any]:
        """`{workers: [{name, queues, active, device: {kind, name, memory_total_mb, memory_used_mb}}]}`."""
        return self._json("GET", "/jobs/workers")

    # --- models: what the stack's workers run, from the API (never the local disk) -------
    def models(self) -> list[dict[str, Any]]:
        """Installed checkpoints: card fields, `verified`/`problem`, `evaluation` (or None)."""
        return list(self._json("GET", "/models")["models"])

    def model_plot(self, model_id: str, plot: str) -> bytes:
        """One evaluation plot (PNG bytes) of checkpoint `model_id` (its folder name); `plot`
        is a file name from that checkpoint's `evaluation.plots`."""
        path = f"/models/{quote(model_id, safe='')}/plots/{quote(plot, safe='')}"
        return self._request("GET", path).content

    # --- phones (issue 12): pairing codes and paired devices, admin token only ----------
    def create_pairing(self, name: str = "phone") -> dict[str, Any]:
        """A single-use pairing code: `{code, url, fingerprint, expires_at, ttl, lan_url}`."""
        return self._json("POST", "/phone/pairings", json={"name": name})

    def devices(self) -> list[dict[str, Any]]:
        """Paired devices: `{id, name, paired_at, last_seen, address}` each."""
        return list(self._json("GET", "/phone/devices")["devices"])

    def revoke_device(self, device_id: str) -> dict[str, Any]:
        """Unpair a device; its open streams end within 2 s."""
        return self._json("DELETE", f"/phone/devices/{device_id}")

    def lan(self) -> dict[str, Any]:
        """The LAN listener: `{url, fingerprint}` (None each while LAN mode is off)."""
        return self._json("GET", "/phone/lan")

    def events(self, *, read_timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Server-sent events of status/progress for this token's jobs, as dicts.

        Blocks; run it in a thread. Ends when the server closes the stream.
        """
        timeout = httpx.Timeout(10.0, read=read_timeout)
        try:
            with self._http.stream("GET", "/jobs/events", timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_for(response)
                yield from _parse_sse(response.iter_lines())
        except httpx.TransportError as exc:
            raise errors.ApiUnavailable(f"event stream from {self.base_url} ended: {exc}") from exc


def _parse_sse(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    data: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            try:
                event = json.loads("\n".join(data))
            except ValueError:
                logger.warning("skipping a malformed event")
            else:
                if isinstance(event, Mapping):
                    yield dict(event)
            data = []
