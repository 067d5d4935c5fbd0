"""Celery side of skinapp: the app, the job task, blobs, the job index, worker lifecycle.

Importing this package never imports torch or `skinapp.models`; the task body does, in the
worker's pool children only.
"""

from __future__ import annotations

from skinapp.tasks.blobs import BlobStore
from skinapp.tasks.celery_app import TASK_NAME, celery_app, configure
from skinapp.tasks.jobs import TERMINAL, JobIndex, NewJob

__all__ = ["TASK_NAME", "TERMINAL", "BlobStore", "JobIndex", "NewJob", "celery_app", "configure"]
