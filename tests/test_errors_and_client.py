"""The exception tree's public surface and the client's pieces that need no server."""

from __future__ import annotations

import skinapp.errors as errors
from skinapp.client import _parse_sse


def test_public_names_are_the_tree() -> None:
    public = {n for n in dir(errors) if isinstance(getattr(errors, n), type) and n[0].isupper()}
    assert set(errors.__all__) == public
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.SkinappError)


def test_http_codes_of_the_design() -> None:
    expected = {
        errors.AuthError: 401,
        errors.Forbidden: 403,
        errors.JobNotFound: 404,
        errors.PayloadTooLarge: 413,
        errors.UnsupportedMediaType: 415,
        errors.InvalidImage: 415,
        errors.InvalidRequest: 422,
        errors.BrokerUnavailable: 503,
    }
    assert {cls: cls.http_status for cls in expected} == expected


def test_sse_parser_joins_data_lines_and_skips_comments_and_garbage() -> None:
    lines = [
        ": keep-alive",
        "",
        'data: {"job_id": "a",',
        'data: "status": "PROGRESS"}',
        "",
        "data: not json",
        "",
        "event: x",
        'data: {"job_id": "b"}',
        "",
    ]
    assert list(_parse_sse(lines)) == [{"job_id": "a", "status": "PROGRESS"}, {"job_id": "b"}]
