"""Background work the screens start. Tasks are thin: they call the job's runner and return."""

from __future__ import annotations

from huey.contrib.djhuey import db_task

from .export_jobs import export_job_run


@db_task()
def run_export_job(job_id: str) -> None:
    export_job_run(job_id=job_id)
