"""Celery side of skinapp: the app, the job task, blobs, the job store, worker lifecycle.

Importing this package never imports torch or `skinapp.models`, nor registers anything:
the worker entry point (`skinapp.tasks.worker`) registers the task body and the signal
handlers, and the task body imports the models in the worker's pool children only.
"""

from __future__ import annotations

from skinapp.tasks.blobs import BlobStore
from skinapp.tasks.celery_app import TASK_NAME, configure
from skinapp.tasks.jobs import TERMINAL, JobRecord, JobStore, NewJob

__all__ = ["TASK_NAME", "TERMINAL", "BlobStore", "JobRecord", "JobStore", "NewJob", "configure"]
