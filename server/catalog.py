"""What ModelService reports: the models in the store, their kept versions, and how loaded ones are served.

Version folders are immutable, so each version's verified manifest is cached after its first read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass

import structlog

from tuneserve.repository import ConflictError, Manifest, ModelStore, StoreError, StoreUnavailableError
from tuneserve.server.errors import (
    ConcurrentChange,
    GateFailed,
    InvalidInput,
    ModelNotFound,
    StoreUnavailable,
)
from tuneserve.server.registry import ModelRegistry

log = structlog.get_logger("tuneserve.server.catalog")
# The metrics key (in the manifest) of each servable ONNX file.
_METRICS_KEY = {"model.onnx": "onnx_fp32", "model_int8.onnx": "onnx_int8", "model_fp16.onnx": "onnx_fp16"}
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class VersionInfo:
    manifest: Manifest
    serving: bool
    provider: str  # "" when not loaded
    quantization: str  # of the file served (or, if not loaded, the manifest's)
    metrics: dict[str, float]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    task: str
    serving_version: int  # 0 when no version serves here
    versions: list[VersionInfo]
    load_error: str = ""  # why the serving version recorded in the store is not serving here


class Catalog:
    def __init__(self, store: ModelStore, registry: ModelRegistry) -> None:
        self.store = store
        self.registry = registry
        self._manifests: dict[tuple[str, int], Manifest] = {}

    async def list(self, page_size: int = 0, page_token: str = "") -> tuple[list[ModelInfo], str]:
        """A page of models sorted by name, and the token of the next page ("" if none)."""
        if page_size < 0:
            raise InvalidInput(
                f"page_size is {page_size}: use 0 for the default ({DEFAULT_PAGE_SIZE}) or a positive "
                f"number (at most {MAX_PAGE_SIZE} are returned)"
            )
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _decode_token(page_token)
        with self.store.cached_reads():  # an object store that is down: what this replica last saw
            names = [n for n in await asyncio.to_thread(self.store.models) if n > after]
            page = names[:size]
            models = [await self._describe(n) for n in page]
        next_token = _encode_token(page[-1]) if len(names) > size else ""
        return models, next_token

    async def get(self, name: str) -> ModelInfo:
        if not name:
            raise InvalidInput("name is required: the name of a model (ListModels lists them)")
        with self.store.cached_reads():  # an object store that is down: what this replica last saw
            models = await asyncio.to_thread(self.store.models)
            if name not in models:
                known = ", ".join(models) or "none"
                raise ModelNotFound(f"model {name[:80]!r} is not in the model store; known models: {known}")
            return await self._describe(name)

    async def set_serving(self, name: str, version: int) -> ModelInfo:
        """Promote or roll back: ``version`` is loaded, verified and warmed, then serves (atomically)."""
        await self._validate(name, version)
        live = self.registry.serving(name)
        if live is None or live.version != version:
            try:
                await self.registry.promote(name, version)
            except ConflictError as exc:
                raise ConcurrentChange(str(exc)) from exc
            except StoreUnavailableError as exc:
                raise StoreUnavailable(f"version {version} of {name!r} cannot be read now: {exc}") from exc
            except (StoreError, OSError) as exc:
                raise GateFailed(f"version {version} of {name!r} cannot serve: {exc}") from exc
        return await self._describe(name)

    async def delete(self, name: str, version: int) -> None:
        """Remove a kept version that is not serving (its number is never reused)."""
        await self._validate(name, version)
        await self.registry.delete(name, version)
        self._manifests.pop((name, version), None)
        log.info("version deleted", model=name, version=version)

    async def retain(self, name: str, keep: int, protect: int) -> None:
        """Delete the oldest versions beyond the newest ``keep`` (never the serving one nor ``protect``)."""
        if keep <= 0:
            return
        versions = await asyncio.to_thread(self.store.versions, name)
        serving = await asyncio.to_thread(self.store.serving_version, name)
        excess = len(versions) - keep
        for v in versions:
            if excess <= 0:
                break
            if v in (serving, protect):
                continue
            await self.delete(name, v)
            excess -= 1

    async def _validate(self, name: str, version: int) -> None:
        """Validate the request; whether ``version`` is kept is checked by the registry, under the model's
        lock, so that a promotion and a deletion of it are decided in one order."""
        if not name:
            raise InvalidInput("name is required: the name of a model (ListModels lists them)")
        if version <= 0:
            raise InvalidInput(f"version is {version}: name a kept version (a positive number)")
        await self.get(name)

    async def _describe(self, name: str) -> ModelInfo:
        # Only a version that serves here is reported as serving, never one that failed to load; and it is
        # always listed (from memory, even if another process removed its folder).
        live = self.registry.serving(name)
        serving = live.version if live else 0
        # Listed from their manifests (files are checked when a version loads); one that failed to load
        # here is left out, as it cannot serve.
        failed = self.registry.failed_version(name)
        versions = sorted({*await asyncio.to_thread(self.store.versions, name), serving} - {0, failed})
        infos = []
        for v in versions:
            manifest = await self._manifest(name, v)
            if manifest is not None:
                infos.append(self._version(name, manifest, serving))
        task = infos[-1].manifest.task if infos else ""
        return ModelInfo(name, task, serving, infos, self.registry.load_error(name))

    def _version(self, name: str, manifest: Manifest, serving: int) -> VersionInfo:
        loaded = self.registry.loaded(name, manifest.version)
        served_metrics = manifest.metrics.get("served", {})
        if loaded is None:
            return VersionInfo(
                manifest, manifest.version == serving, "", manifest.quantization.served, served_metrics
            )
        placement = loaded.runtime.placement
        if placement.onnx_file != manifest.onnx_file:
            served_metrics = manifest.metrics.get(_METRICS_KEY.get(placement.onnx_file, ""), {})
        return VersionInfo(
            manifest,
            manifest.version == serving,
            loaded.runtime.provider,
            placement.quantization,
            served_metrics,
        )

    async def _manifest(self, name: str, version: int) -> Manifest | None:
        key = (name, version)
        if key not in self._manifests:
            loaded = self.registry.loaded(name, version)
            if loaded is not None:
                self._manifests[key] = loaded.runtime.manifest
            else:
                try:
                    self._manifests[key] = await asyncio.to_thread(self.store.read_manifest, name, version)
                except StoreUnavailableError:
                    raise
                except StoreError as exc:
                    log.warning("version not listed", model=name, version=version, error=str(exc))
                    return None
        return self._manifests[key]


def _encode_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def _decode_token(token: str) -> str:
    if not token:
        return ""
    try:
        return base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(
            "page_token is not one this server returned: pass the previous response's "
            "next_page_token, or empty for the first page"
        ) from exc
