"""One exception tree for the whole of skinapp.

    SkinappError
    ├── ConfigError                 bad settings (an env var, .env, a flag)
    ├── InvalidImage                bytes that are not an image we can analyse (bad, bomb, too small)
    ├── InvalidRequest              a bad field or option (HTTP 422)
    ├── PayloadTooLarge             an upload over the size or count limit (HTTP 413)
    ├── UnsupportedMediaType        an upload that is not an image at all (HTTP 415)
    ├── AuthError                   no token or a bad one (HTTP 401)
    ├── Forbidden                   someone else's job, or an admin-only action (HTTP 403)
    ├── JobNotFound                 an unknown job id (HTTP 404)
    ├── JobCancelled                the job was cancelled while it ran
    ├── ModelError
    │   ├── ModelNotInstalled       no checkpoint for a task in the models dir
    │   ├── CheckpointInvalid       a checkpoint whose files or sha256 do not match its card
    │   └── ModelNotFound           an unknown checkpoint or evaluation plot name (HTTP 404)
    ├── BrokerUnavailable           the Redis-compatible server does not answer (HTTP 503)
    ├── ApiUnavailable              the skinapp API does not answer (client side)
    └── StackError                  the local stack could not start, stop or attach
        └── StackAlreadyRunning     another stack owns this data dir

Each front end maps the tree in one place: the API to status codes (`skinapp.server.errors`),
the CLI to one line and a non-zero exit, the GUI to a notification. An error that crossed a
boundary as its `code` (an HTTP error body, a failed job's record) becomes its class again
through `by_code()`, so the code → class map is derived here and written nowhere else.
"""

from __future__ import annotations

import functools

__all__ = [
    "ApiUnavailable",
    "AuthError",
    "BrokerUnavailable",
    "CheckpointInvalid",
    "ConfigError",
    "Forbidden",
    "InvalidImage",
    "InvalidRequest",
    "JobCancelled",
    "JobNotFound",
    "ModelError",
    "ModelNotFound",
    "ModelNotInstalled",
    "PayloadTooLarge",
    "SkinappError",
    "StackAlreadyRunning",
    "StackError",
    "UnsupportedMediaType",
]


class SkinappError(Exception):
    """Base of every error skinapp raises on purpose; `str(err)` is meant for a person."""

    http_status = 500
    code = "internal_error"


class ConfigError(SkinappError):
    code = "config_error"


class InvalidImage(SkinappError):
    http_status = 415
    code = "invalid_image"


class InvalidRequest(SkinappError):
    http_status = 422
    code = "invalid_request"


class PayloadTooLarge(SkinappError):
    http_status = 413
    code = "payload_too_large"


class UnsupportedMediaType(SkinappError):
    http_status = 415
    code = "unsupported_media_type"


class AuthError(SkinappError):
    http_status = 401
    code = "unauthorized"


class Forbidden(SkinappError):
    http_status = 403
    code = "forbidden"


class JobNotFound(SkinappError):
    http_status = 404
    code = "job_not_found"


class JobCancelled(SkinappError):
    http_status = 409
    code = "job_cancelled"


class ModelError(SkinappError):
    http_status = 503
    code = "model_error"


class ModelNotInstalled(ModelError):
    code = "model_not_installed"


class CheckpointInvalid(ModelError):
    code = "checkpoint_invalid"


class ModelNotFound(ModelError):
    http_status = 404
    code = "model_not_found"


class BrokerUnavailable(SkinappError):
    http_status = 503
    code = "broker_unavailable"


class ApiUnavailable(SkinappError):
    http_status = 503
    code = "api_unavailable"


class StackError(SkinappError):
    code = "stack_error"


class StackAlreadyRunning(StackError):
    code = "stack_already_running"


@functools.cache
def _registry() -> dict[str, type[SkinappError]]:
    # codes are unique (tests/test_errors_and_client.py checks it), so order does not matter
    return {cls.code: cls for cls in (globals()[name] for name in __all__)}


def by_code() -> dict[str, type[SkinappError]]:
    """Every class of the tree by its `code` (a copy: callers may filter it)."""
    return dict(_registry())
