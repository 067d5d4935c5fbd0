"""Settings: the seed's names work as written, ours are SKINAPP_*, bad values say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from skinapp.config import ANALYSES, load_settings, queue_for
from skinapp.errors import ConfigError


def test_defaults_match_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "CELERY_TASK_SOFT_TIME_LIMIT",
        "CELERY_TASK_TIME_LIMIT",
        "CELERY_WORKER_CONCURRENCY",
    ):
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert (s.celery_task_soft_time_limit, s.celery_task_time_limit) == (120, 180)
    assert (s.celery_worker_concurrency, s.celery_worker_prefetch_multiplier) == (2, 1)
    assert s.batch_max_images == 50 and s.max_upload_bytes == 25 * 1024 * 1024
    assert s.external_broker is None
    assert s.visibility_timeout > s.celery_task_time_limit


def test_seed_variable_names_are_read_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/0")
    monkeypatch.setenv("CELERY_TASK_TIME_LIMIT", "300")
    monkeypatch.setenv("CELERY_WORKER_CONCURRENCY", "1")
    s = load_settings()
    assert s.external_broker == "redis://example:6379/0"
    assert s.celery_task_time_limit == 300 and s.celery_worker_concurrency == 1


def test_broker_url_wins_over_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://a:1/0")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://b:2/0")
    assert load_settings().external_broker == "redis://b:2/0"


def test_our_variables_use_the_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SKINAPP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SKINAPP_DEVICE", "CUDA:1")
    s = load_settings()
    assert s.resolved_models_dir == tmp_path / "models"
    assert s.device == "cuda:1"


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SKINAPP_BATCH_MAX_IMAGES", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SKINAPP_BATCH_MAX_IMAGES=12\nCELERY_TASK_SOFT_TIME_LIMIT=30\n")
    s = load_settings()
    assert s.batch_max_images == 12 and s.celery_task_soft_time_limit == 30


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("SKINAPP_DEVICE", "tpu", "cuda:N"),
        ("CELERY_WORKER_CONCURRENCY", "0", "greater than or equal to 1"),
        ("CELERY_TASK_SOFT_TIME_LIMIT", "500", "must be below CELERY_TASK_TIME_LIMIT"),
        ("SKINAPP_PORT", "port", "valid integer"),
    ],
)
def test_bad_values_raise_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=words):
        load_settings()


def test_batches_go_to_their_own_queue() -> None:
    assert queue_for("batch-skin-check") == "batch"
    assert {queue_for(a) for a in ANALYSES[:-1]} == {"analysis"}
