"""The exception tree's public surface and the client's pieces that need no server."""

from __future__ import annotations

import httpx
import pytest

import skinapp.errors as errors
from skinapp.client import _error_for, _parse_sse


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


def test_code_map_is_every_class_once() -> None:
    table = errors.by_code()
    classes = [getattr(errors, name) for name in errors.__all__]
    assert len({cls.code for cls in classes}) == len(classes)  # no two classes share a code
    assert sorted(table.values(), key=lambda c: c.__name__) == sorted(
        classes, key=lambda c: c.__name__
    )
    assert all(table[cls.code] is cls for cls in classes)
    table.clear()  # a copy: a caller cannot change the map for the others
    assert errors.by_code()["job_not_found"] is errors.JobNotFound


def _answer(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("GET", "http://x/jobs"))


def test_client_maps_a_body_code_to_its_class_before_the_status() -> None:
    for cls in (getattr(errors, name) for name in errors.__all__):
        err = _error_for(_answer(cls.http_status, {"detail": "why", "code": cls.code}))
        assert type(err) is cls and str(err) == "why"
    # a 503 whose code says the model is missing is that, not "broker unavailable"
    err = _error_for(_answer(503, {"detail": "no checkpoint", "code": "model_not_installed"}))
    assert type(err) is errors.ModelNotInstalled and err.http_status == 503
    # no code we know: the status decides
    assert type(_error_for(_answer(404, {"detail": "gone"}))) is errors.JobNotFound
    assert type(_error_for(_answer(418, {"detail": "teapot", "code": "x"}))) is errors.SkinappError


def test_sync_twins_map_client_side_faults_by_code_and_keep_server_faults_plain() -> None:
    from skinapp.server.routes.sync import raise_failure
    from skinapp.tasks import JobRecord

    def failed(code: str, error: str, status: str = "FAILURE") -> JobRecord:
        return JobRecord(job_id="j", status=status, error=error, error_code=code)

    with pytest.raises(errors.InvalidImage, match="too small"):
        raise_failure(failed("invalid_image", "too small"))
    with pytest.raises(errors.SkinappError) as caught:
        raise_failure(failed("model_not_installed", "gone"))
    assert type(caught.value) is errors.SkinappError and caught.value.code == "model_not_installed"
    with pytest.raises(errors.JobCancelled):
        raise_failure(failed("invalid_image", "cancelled", status="REVOKED"))


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
