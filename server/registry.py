"""``ModelRegistry``: which loaded version answers for a model name.

At start-up the serving version of every model in the store is verified, loaded, warmed up and given
its batcher (``load_all``); a model that fails to load is logged and reported UNAVAILABLE, the others
serve. Other kept versions load on first use. ``promote()`` loads and warms a new version before it
replaces the serving one atomically; calls already holding the old version (``LoadedVersion.lease``)
finish on it, then it is unloaded. ``follow_store()`` applies serving records that another process
changed in a shared store (a trainer or another replica on the same volume): new models load, changed
serving versions switch the same way, a version that fails to load leaves the old one serving.
Blocking work (checksums, ONNX Runtime session creation, warmup) runs in threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from tokenizers import Tokenizer

from tuneserve.repository import ModelStore, ModelVersion, StoreError
from tuneserve.server.batcher import Batcher
from tuneserve.server.errors import ModelNotFound, ModelNotReady
from tuneserve.server.metrics import Metrics
from tuneserve.server.runtime import OrtRuntime
from tuneserve.server.settings import Settings
from tuneserve.server.tasks import ner

log = structlog.get_logger("tuneserve.server.registry")


def _no_extra(runtime: OrtRuntime) -> Tokenizer | None:
    return None


def _ner_windows(runtime: OrtRuntime) -> Tokenizer | None:
    return ner.window_tokenizer(runtime.tokenizer, runtime.max_length)


# Per task: what to build once per loaded version besides the runtime (NER: its windowing tokenizer).
_PREPARE = {"classification": _no_extra, "ner": _ner_windows}


@dataclass(eq=False)
class LoadedVersion:
    """A version ready to serve: runtime, batcher, and per-task extras."""

    name: str
    version: int
    runtime: OrtRuntime
    batcher: Batcher
    window_tokenizer: Tokenizer | None = None
    info: dict[str, Any] = field(default_factory=dict)
    users: int = 0  # requests between lookup and response (see ``lease``)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._idle.set()

    @property
    def task(self) -> str:
        return str(self.runtime.manifest.task)

    @contextlib.contextmanager
    def lease(self) -> Iterator[LoadedVersion]:
        """Held by a request from its lookup to its response: a retired version is unloaded only when no
        request holds it any more, so a hot swap never fails a call that started on the old version."""
        self.users += 1
        self._idle.clear()
        try:
            yield self
        finally:
            self.users -= 1
            if self.users == 0:
                self._idle.set()

    async def wait_unused(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        return self.users == 0


class ModelRegistry:
    """Name (and version) to loaded version; see the module docstring."""

    def __init__(self, store: ModelStore, settings: Settings, metrics: Metrics) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.ready = False
        self._serving: dict[str, LoadedVersion] = {}
        self._loaded: dict[tuple[str, int], LoadedVersion] = {}
        self._failed: dict[str, str] = {}
        self._tried: dict[str, int] = {}  # per model: the serving version last loaded or tried
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    def names(self) -> list[str]:
        """Models this server serves or tried to (the ``model`` metric label is limited to these)."""
        return sorted({*self._serving, *self._failed})

    def is_known(self, name: str) -> bool:
        """``name in names()``, without building the list (asked on every call)."""
        return name in self._serving or name in self._failed

    def loaded(self, name: str, version: int) -> LoadedVersion | None:
        return self._loaded.get((name, version))

    def serving(self, name: str) -> LoadedVersion | None:
        return self._serving.get(name)

    async def load_all(self) -> None:
        """Load the serving version of every model in the store; then ``ready`` is true."""
        names = await asyncio.to_thread(self.store.models)
        if not names:
            log.warning(
                "no models",
                model_root=str(self.store.root),
                hint="publish one with `tuneserve export`, or build the demo models with `tuneserve demo`",
            )

        async def load(name: str) -> None:
            try:
                self._serving[name] = await self._load(name, None)
            except Exception as exc:
                self._failed[name] = str(exc)
                log.error("model failed to load", model=name, error=str(exc))

        # Concurrently: creating ORT sessions and loading tokenizers release the GIL, so on several cores
        # the models load in about the time of the largest rather than the sum.
        await asyncio.gather(*(load(name) for name in names))
        self.ready = True

    async def follow_store(self) -> None:
        """Serve what the store's serving records say now, where another process changed them. A version
        that fails to load is logged, counted and not retried until the record changes again; the version
        serving before goes on serving."""
        for name in await asyncio.to_thread(self.store.models):
            try:
                version = await asyncio.to_thread(self.store.serving_version, name)
            except (StoreError, OSError, ValueError, KeyError) as exc:
                log.debug("serving record unreadable", model=name, error=str(exc))
                continue
            live = self._serving.get(name)
            if version is None or (live is not None and live.version == version):
                continue
            if self._tried.get(name) == version:
                continue  # failed before: wait for the record to change
            try:
                if await self._switch(name, version, record=False):
                    self.metrics.store_reloads.labels(name, "loaded").inc()
            except Exception as exc:
                self.metrics.store_reloads.labels(name, "failed").inc()
                if live is None:
                    self._failed[name] = str(exc)
                log.error(
                    "serving version from the store failed to load",
                    model=name,
                    version=version,
                    still_serving=live.version if live else None,
                    error=str(exc),
                )

    async def get(self, name: str, version: int = 0) -> LoadedVersion:
        """The loaded version for a request: the serving one for ``version`` 0, else that version (loaded now
        if it is kept but not loaded yet). Raises ``ModelNotFound`` or ``ModelNotReady``."""
        if not self.ready:
            raise ModelNotReady("the server is starting and its models are still loading; retry in a moment")
        live = self._serving.get(name)
        if live is None:
            if name in self._failed:
                raise ModelNotReady(
                    f"model {name!r} failed to load on this server ({self._failed[name]}); "
                    "fix or re-export it, then restart or set its serving version"
                )
            served = ", ".join(sorted(self._serving)) or "none"
            raise ModelNotFound(f"model {name!r} is not served here; served models: {served}")
        if version in (0, live.version):
            return live
        loaded = self._loaded.get((name, version))
        if loaded is not None:
            return loaded
        kept = await asyncio.to_thread(self.store.versions, name)
        if version not in kept:
            raise ModelNotFound(
                f"model {name!r} has no version {version}; kept versions: "
                f"{', '.join(map(str, kept))} (0 means the serving version, {live.version})"
            )
        try:
            return await self._load(name, version)
        except StoreError as exc:
            raise ModelNotReady(f"model {name!r} version {version} cannot be loaded: {exc}") from exc

    async def promote(self, name: str, version: int) -> LoadedVersion:
        """Make ``version`` serve ``name``: load and warm it first, record it in the store (serving.json),
        switch atomically, then retire the old one once the calls holding it have finished. Promotions of
        one model are serialized."""
        await self._switch(name, version, record=True)
        return self._serving[name]

    async def _switch(self, name: str, version: int, record: bool) -> bool:
        """Load ``version``, record it in the store if ``record``, make it serve; False if it already did."""
        async with self._model_lock(name):
            old = self._serving.get(name)
            self._tried[name] = version
            if old is not None and old.version == version and not record:
                return False
            new = await self._load(name, version)
            if record:
                await asyncio.to_thread(self.store.set_serving_version, name, version)
            self._serving[name] = new
            self._failed.pop(name, None)
            log.info(
                "serving version set",
                model=name,
                version=version,
                previous=old.version if old else None,
                source="rpc" if record else "store",
            )
        if old is not None and old is not new:
            asyncio.get_running_loop().create_task(self._retire(old))
        return old is not new

    async def forget(self, name: str, version: int) -> None:
        """Unload ``version`` if loaded (before it is deleted); it must not be the serving version."""
        loaded = self._loaded.get((name, version))
        if loaded is not None and self._serving.get(name) is not loaded:
            await self._retire(loaded)

    def _model_lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault((name, -1), asyncio.Lock())

    async def _retire(self, loaded: LoadedVersion) -> None:
        """Unload a version no longer serving, after the requests holding it finish (30 s at most)."""
        if not await loaded.wait_unused(30.0):
            log.warning("unloading a version still in use", model=loaded.name, version=loaded.version)
        await self._unload(loaded)

    async def close(self) -> None:
        for loaded in list(self._loaded.values()):
            await self._unload(loaded, timeout=1.0)

    async def _load(self, name: str, version: int | None) -> LoadedVersion:
        if version is None:
            version = await asyncio.to_thread(self.store.serving_version, name)
            if version is not None:
                self._tried[name] = version
            if version is None:
                raise StoreError(
                    f"model {name!r} has no serving version (no serving.json under {self.store.root})"
                )
        key = (name, version)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._loaded:
                return self._loaded[key]
            loaded = await asyncio.to_thread(self._build, name, version)
            loaded.batcher.start()
            self._loaded[key] = loaded
            self.metrics.model_info.labels(
                name, str(version), loaded.runtime.placement.quantization, loaded.runtime.provider
            ).set(1)
            log.info("model loaded", model=name, **loaded.info)
            return loaded

    def _build(self, name: str, version: int) -> LoadedVersion:
        opened: ModelVersion = self.store.open_version(name, version)
        runtime = OrtRuntime(
            opened,
            device=self.settings.device,
            intra_op_threads=self.settings.intra_op_threads,
            idle_session=self.settings.idle_session,
        )
        runtime.warmup(self.settings.batch.max_batch_size)
        extra = _PREPARE[opened.manifest.task](runtime)
        batcher = Batcher(
            runtime.run,
            self.settings.batch,
            run_idle=runtime.run_idle,
            label=f"model {name!r} version {version}",
            observer=self.metrics.observer(name),
        )
        info = {
            "version": version,
            "task": opened.manifest.task,
            "onnx_file": runtime.placement.onnx_file,
            "quantization": runtime.placement.quantization,
            "provider": runtime.provider,
            "warmup_s": round(runtime.warmup_seconds, 3),
        }
        return LoadedVersion(name, version, runtime, batcher, extra, info)

    async def _unload(self, loaded: LoadedVersion, timeout: float = 30.0) -> None:
        self._loaded.pop((loaded.name, loaded.version), None)
        await loaded.batcher.close(timeout)
        rt = loaded.runtime
        self.metrics.model_info.remove(
            loaded.name, str(loaded.version), rt.placement.quantization, rt.provider
        )
        log.info("model unloaded", model=loaded.name, version=loaded.version)
