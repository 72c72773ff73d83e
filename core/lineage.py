"""Lineage: what a model version was trained from, recorded under ``lineage`` in every manifest.

The trainer computes it (``compute``) while it trains and writes it into the checkpoint's ``training.json``
(key ``lineage``); the exporter copies it into ``manifest.json``, where the manifest's digest and signature
cover it like every other field. A hyperparameter search, when one ran, leaves its summary under
``search`` in ``training.json``; the exporter copies that, as it is, into ``lineage.search``.

The ``lineage`` object (a contract; readers must ignore keys they do not know)::

    base_model   {"name", "revision", "source", "package", "package_version"}
                 source "hub": revision is the commit the hub (or its local cache) resolved;
                 source "folder": revision is "sha256:<hex>" of the folder's weights (see weights_revision);
                 source "package": a folder inside an installed Python package, revised like a folder,
                 with the distribution's name and version.
    data         {"train": {"sha256", "rows"}, "validation": {"sha256", "rows"}}: the data as the trainer
                 read it (see data_record).
    tuneserve    {"version", "git_commit"}: the package version; the commit from TUNESERVE_GIT_COMMIT (set
                 when the image is built) or from a source checkout's git, else null.
    seed, device ("cpu", "cuda", "cuda:0"...), world_size (processes of a DDP run; 1 otherwise)
    search       the search summary (trials, best trial, objective, chosen values...), or null.

This module imports neither torch nor transformers: the server reads manifests with it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

GIT_COMMIT_ENV = "TUNESERVE_GIT_COMMIT"
# Weight files of a Hugging Face model folder, sharded or not.
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


class BaseModelLineage(BaseModel):
    """The pretrained encoder a version was fine-tuned from."""

    model_config = ConfigDict(frozen=True, extra="allow")
    name: str
    revision: str | None = None
    source: Literal["hub", "folder", "package"]
    package: str | None = None
    package_version: str | None = None


class DataLineage(BaseModel):
    """One data file as the trainer read it."""

    model_config = ConfigDict(frozen=True, extra="allow")
    sha256: str
    rows: int


class CodeLineage(BaseModel):
    """The tuneserve that trained."""

    model_config = ConfigDict(frozen=True, extra="allow")
    version: str | None = None
    git_commit: str | None = None


class Lineage(BaseModel):
    """What a version was trained from (the manifest's ``lineage``)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    base_model: BaseModelLineage
    data: dict[str, DataLineage]
    tuneserve: CodeLineage
    seed: int
    device: str
    world_size: int = 1
    search: dict[str, Any] | None = None


def sha256_bytes_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_revision(folder: Path) -> str | None:
    """``sha256:<hex>`` of a model folder's weights, or None when it has no weight file.

    One weight file: its own sha256 (what ``sha256sum`` prints). Several (shards, or safetensors beside
    a .bin): the sha256 of their ``sha256sum`` listing, ``"<hex>  <name>\\n"`` per file sorted by name.
    """
    files = sorted({p for pattern in WEIGHT_PATTERNS for p in Path(folder).glob(pattern) if p.is_file()})
    if not files:
        return None
    if len(files) == 1:
        return f"sha256:{sha256_bytes_of(files[0])}"
    listing = "".join(f"{sha256_bytes_of(p)}  {p.name}\n" for p in files)
    return f"sha256:{hashlib.sha256(listing.encode()).hexdigest()}"


def package_of(folder: Path) -> tuple[str, str] | None:
    """``(distribution, version)`` of the installed Python package that ``folder`` lies inside, if any."""
    folder = Path(folder).resolve()
    roots = {Path(p).resolve() for p in sys.path if p and Path(p).is_dir()}
    for parent in (folder, *folder.parents):
        if parent.parent in roots:
            dists = metadata.packages_distributions().get(parent.name, [])
            if dists:
                return dists[0], metadata.version(dists[0])
            return None
    return None


def hub_revision(repo_id: str, config_commit: str | None = None) -> str | None:
    """The commit the hub resolved for ``repo_id``: the one transformers recorded in the loaded config
    (``_commit_hash``), else the one the local hub cache's ``refs/main`` names. Never reaches the hub."""
    if config_commit:
        return config_commit
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - installed with transformers
        return None
    cached = try_to_load_from_cache(repo_id, "config.json")
    if isinstance(cached, str):  # .../snapshots/<commit>/config.json
        return Path(cached).parent.name
    return None


def base_record(name: str, resolved: str, config_commit: str | None = None) -> BaseModelLineage:
    """The lineage of a base model given as ``name`` and resolved (``trainer.train.resolve_base``) to
    ``resolved``: a local folder, or a hub id."""
    folder = Path(resolved)
    if not folder.is_dir():
        return BaseModelLineage(name=name, revision=hub_revision(resolved, config_commit), source="hub")
    revision = weights_revision(folder)
    if (package := package_of(folder)) is not None:
        return BaseModelLineage(
            name=name, revision=revision, source="package", package=package[0], package_version=package[1]
        )
    return BaseModelLineage(name=name, revision=revision, source="folder")


def data_record(path: Path, rows: int) -> DataLineage:
    """A data file as the trainer read it: the sha256 of the file's bytes and ``rows``, the number of
    examples parsed from it (sentences for NER, texts for classification).

    "As read" is the file the trainer was handed: locally, the user's file as given to ``tuneserve
    train``; for a server's training job, the JSON Lines the server prepared in the job's work folder from
    the request's data (so the same examples, sent as CSV or JSON Lines, may give different digests).
    """
    return DataLineage(sha256=sha256_bytes_of(path), rows=rows)


def git_commit() -> str | None:
    """``TUNESERVE_GIT_COMMIT`` (set at image build time), else the HEAD of the tuneserve git checkout this
    code runs from or was installed into (an editable install, or a venv inside the checkout), else None.
    Never raises."""
    if commit := os.environ.get(GIT_COMMIT_ENV, "").strip():
        return commit
    here = Path(__file__).resolve().parent
    checkout = next((p for p in (here, *here.parents) if (p / ".git").exists()), None)
    if checkout is None or not _is_tuneserve_source(checkout):
        return None  # not run from a checkout of tuneserve (a venv inside another project's repository)
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out else None


def _is_tuneserve_source(folder: Path) -> bool:
    try:
        return 'name = "tuneserve"' in (folder / "pyproject.toml").read_text()
    except OSError:
        return False


def code_record() -> CodeLineage:
    try:
        version: str | None = metadata.version("tuneserve")
    except metadata.PackageNotFoundError:
        version = None
    return CodeLineage(version=version, git_commit=git_commit())


def from_record(record: dict[str, Any]) -> Lineage | None:
    """The manifest's lineage from a checkpoint's ``training.json``: its ``lineage`` with the search
    summary (``search``) copied in; None for checkpoints of a tuneserve that did not record it."""
    if "lineage" not in record:
        return None
    return Lineage.model_validate({**record["lineage"], "search": record.get("search")})
