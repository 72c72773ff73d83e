"""A job's inputs staged beside the model store, for a job worker that cannot see the server's work folder
(a Kubernetes Job's pod).

The server stages ``spec.json`` (the ``JobSpec``), ``train.jsonl`` and ``validation.jsonl`` under
``<model root>/.jobs/<job id>/``: objects under that prefix of an ``s3://`` store, or files in a local model
root (a volume the Job mounts at the same path). The worker (``python -m tuneserve.pipeline.job --staged
LOCATION``) fetches them into its own scratch folder; the server removes them when the job ends.
"""

from __future__ import annotations

import posixpath
import shutil
from pathlib import Path

from tuneserve import objects

FOLDER = ".jobs"
FILES = ("spec.json", "train.jsonl", "validation.jsonl")


def location(store_root: str, job_id: str) -> str:
    """Where the inputs of ``job_id`` are staged for the store at ``store_root``."""
    if objects.is_s3(store_root):
        return f"{store_root.rstrip('/')}/{FOLDER}/{job_id}"
    return str(Path(store_root) / FOLDER / job_id)


def stage(where: str, files: dict[str, Path]) -> None:
    """Copy ``files`` (staged name -> local file) to ``where``."""
    if objects.is_s3(where):
        client = objects.s3_client()
        for name, path in files.items():
            bucket, key = objects.split_s3(f"{where}/{name}")
            client.upload_file(str(path), bucket, key)
        return
    folder = Path(where)
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        shutil.copyfile(path, folder / name)


def fetch(where: str, folder: Path) -> None:
    """Copy the staged files at ``where`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if objects.is_s3(where):
            objects.download(f"{where}/{name}", folder)
        else:
            shutil.copyfile(Path(where) / name, folder / name)


def remove(where: str) -> None:
    """Delete what is staged at ``where`` (nothing there is fine)."""
    if not objects.is_s3(where):
        shutil.rmtree(where, ignore_errors=True)
        return
    client = objects.s3_client()
    bucket, prefix = objects.split_s3(where)
    for name in FILES:
        client.delete_object(Bucket=bucket, Key=posixpath.join(prefix, name))
