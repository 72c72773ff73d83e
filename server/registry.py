"""``ModelRegistry``: which loaded version answers for a model name.

At start-up the serving version of every model in the store is verified, loaded, warmed up and given
its batcher (``load_all``). A model whose serving version fails to load is logged, counted and reported
UNAVAILABLE, or, with ``on_load_failure="serve-previous"``, served from the newest intact version before
it; the others serve. Other kept versions load on first use (at most ``max_loaded_versions`` per model
besides the serving one, least recently used unloaded first, and none idle longer than
``loaded_version_idle_s``). ``promote()`` loads and warms a new version before it replaces the serving one
atomically; calls already holding the old version (``LoadedVersion.lease``) finish on it, then it is
unloaded. ``follow_store()`` applies serving records that another process changed in a shared store (a
trainer or another replica on the same volume) the same way; a version that fails to load is retried when
its files or the record change, or after a growing backoff.

Each loaded version has a lifecycle, changed only on the event loop and, where a change spans an
``await``, under its model's lock::

    loading -> ready -> serving -> retiring -> closed

A version loaded for calls that name it goes from ready to retiring directly (evicted or idle); a retiring
version that is promoted or named by a call again goes back to ready (revived), then on.

The serving pointer only ever names a ``serving`` version; a version closes only from ``retiring`` and
only when no call holds it, so a version promoted again while it retires is revived, never closed under
its callers. Blocking work (checksums, ONNX Runtime session creation, warmup) runs in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from tokenizers import Tokenizer

from tuneserve.repository import ModelNotFoundError, ModelStore, ModelVersion, StoreError
from tuneserve.server.batcher import Batcher
from tuneserve.server.errors import GateFailed, ModelNotFound, ModelNotReady
from tuneserve.server.metrics import Metrics
from tuneserve.server.runtime import OrtRuntime
from tuneserve.server.settings import Settings
from tuneserve.server.tasks import ner

log = structlog.get_logger("tuneserve.server.registry")
# A serving version that failed to load is tried again when its files or the serving record change, or
# after this backoff, doubled on each failure up to the maximum.
RETRY_BACKOFF_S = 60.0
RETRY_BACKOFF_MAX_S = 900.0
MODELS_MAX_AGE_S = 30.0  # how stale the model list may be when following the store (new models)


def _no_extra(runtime: OrtRuntime) -> Tokenizer | None:
    return None


def _ner_windows(runtime: OrtRuntime) -> Tokenizer | None:
    return ner.window_tokenizer(runtime.tokenizer, runtime.max_length)


# Per task: what to build once per loaded version besides the runtime (NER: its windowing tokenizer).
_PREPARE = {"classification": _no_extra, "ner": _ner_windows}


class LoadError(StoreError):
    """A version that verified but could not be loaded or warmed up (ONNX Runtime refused it)."""


class State(enum.Enum):
    """Where a loaded version is in its life (see the module docstring)."""

    LOADING = "loading"
    READY = "ready"  # answers calls that name its version
    SERVING = "serving"  # answers calls for version 0 too
    RETIRING = "retiring"  # no longer wanted: closes once its calls finish, unless revived
    CLOSED = "closed"


@dataclass(eq=False)
class LoadedVersion:
    """A loaded version: runtime, batcher, per-task extras, and where it is in its lifecycle."""

    name: str
    version: int
    runtime: OrtRuntime
    batcher: Batcher
    window_tokenizer: Tokenizer | None = None
    info: dict[str, Any] = field(default_factory=dict)
    state: State = State.LOADING
    users: int = 0  # requests between lookup and response (see ``lease``)
    last_used: float = field(default_factory=time.monotonic)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._idle.set()

    @property
    def task(self) -> str:
        return str(self.runtime.manifest.task)

    @contextlib.contextmanager
    def lease(self) -> Iterator[LoadedVersion]:
        """Held by a request from its lookup to its response: a version closes only when no request holds
        it, so a hot swap never fails a call that started on the old version. Take it right after
        ``ModelRegistry.get``, with no ``await`` between."""
        if self.state is State.CLOSED:
            raise ModelNotReady(
                f"model {self.name!r} version {self.version} was unloaded; retry (version 0 gets the "
                "serving version)"
            )
        self.users += 1
        self._idle.clear()
        try:
            yield self
        finally:
            self.users -= 1
            self.last_used = time.monotonic()
            if self.users == 0:
                self._idle.set()

    async def wait_unused(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        return self.users == 0


@dataclass(frozen=True)
class _Failure:
    """The last failed load of a model's recorded serving version, and when to try it again."""

    version: int
    error: str
    fingerprint: Hashable
    retry_at: float
    backoff: float


class ModelRegistry:
    """Name (and version) to loaded version; see the module docstring."""

    def __init__(self, store: ModelStore, settings: Settings, metrics: Metrics) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.ready = False
        # Called after the serving state of a model may have changed (the app updates health).
        self.on_change: Callable[[], Awaitable[None]] | None = None
        self._serving: dict[str, LoadedVersion] = {}
        self._loaded: dict[tuple[str, int], LoadedVersion] = {}
        self._failures: dict[str, _Failure] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._store_down = False  # the last read while following the store failed

    def names(self) -> list[str]:
        """Models this server serves or tried to (the ``model`` metric label is limited to these)."""
        return sorted({*self._serving, *self._failures})

    def is_known(self, name: str) -> bool:
        """``name in names()``, without building the list (asked on every call)."""
        return name in self._serving or name in self._failures

    def down(self) -> list[str]:
        """Models tried here that no version serves (their serving version failed to load)."""
        return sorted(n for n in self._failures if n not in self._serving)

    def load_error(self, name: str) -> str:
        """Why the model's recorded serving version is not serving here ("" when it is)."""
        failure = self._failures.get(name)
        if failure is None:
            return ""
        if failure.version == 0:
            return failure.error
        return f"version {failure.version} failed to load: {failure.error}"

    def failed_version(self, name: str) -> int:
        """The version of ``name`` that last failed to load as its serving version (0: none)."""
        failure = self._failures.get(name)
        return failure.version if failure is not None else 0

    def loaded(self, name: str, version: int) -> LoadedVersion | None:
        return self._loaded.get((name, version))

    def serving(self, name: str) -> LoadedVersion | None:
        return self._serving.get(name)

    async def load_all(self) -> None:
        """Load the serving version of every model in the store; then ``ready`` is true."""
        with self.store.cached_reads():  # an object store that is down: start from the cache if it can
            names = await asyncio.to_thread(self.store.models)
        if not names:
            log.warning(
                "no models",
                model_root=self.store.url,
                hint="publish one with `tuneserve export`, or build the demo models with `tuneserve demo`",
            )

        async def load(name: str) -> None:
            async with self._lock(name):
                await self._apply_record(name, startup=True)

        # Concurrently: creating ORT sessions and loading tokenizers release the GIL, so on several cores
        # the models load in about the time of the largest rather than the sum.
        with self.store.cached_reads():
            await asyncio.gather(*(load(name) for name in names))
        self.ready = True
        await self._changed()

    async def follow_store(self) -> None:
        """Serve what the store's serving records say now, where another process changed them. A version
        that fails to load is logged and counted; the version serving before goes on serving (or, with
        ``serve-previous``, the newest intact one before it). It is tried again when its files or the
        record change, or after a backoff."""
        try:  # new models are noticed within MODELS_MAX_AGE_S: a poll is not a listing
            names = await asyncio.to_thread(self.store.models, MODELS_MAX_AGE_S)
        except (StoreError, OSError) as exc:
            self._store_failed(exc)
            return
        for name in names:
            async with self._lock(name):
                await self._apply_record(name, startup=False)
        await self._changed()

    def _store_failed(self, exc: Exception) -> None:
        """Count a failed read of the store while following it; log the first of a run of them."""
        self.metrics.store_errors.labels("follow").inc()
        if not self._store_down:
            log.error(
                "the model store cannot be read: loaded models keep serving",
                store=self.store.url,
                error=str(exc),
            )
        self._store_down = True

    def _store_read(self) -> None:
        if self._store_down:
            log.info("the model store can be read again", store=self.store.url)
        self._store_down = False

    async def get(self, name: str, version: int = 0) -> LoadedVersion:
        """The loaded version for a request: the serving one for ``version`` 0, else that version (loaded now
        if it is kept but not loaded yet). Raises ``ModelNotFound`` or ``ModelNotReady``."""
        if not self.ready:
            raise ModelNotReady("the server is starting and its models are still loading; retry in a moment")
        live = self._serving.get(name)
        if live is None:
            if name in self._failures:
                raise ModelNotReady(
                    f"model {name!r} failed to load on this server ({self.load_error(name)}); "
                    "fix or re-export it, then restart or set its serving version"
                )
            served = ", ".join(sorted(self._serving)) or "none"
            raise ModelNotFound(f"model {name!r} is not served here; served models: {served}")
        if version in (0, live.version):
            return live
        loaded = self._loaded.get((name, version))
        if loaded is not None and loaded.state is State.READY:
            return loaded
        async with self._lock(name):
            await self._check_kept(name, version)
            try:
                loaded = await self._ensure_loaded(name, version, "request")
            except StoreError as exc:
                raise ModelNotReady(f"model {name!r} version {version} cannot be loaded: {exc}") from exc
            if loaded.state is State.READY:
                loaded.last_used = time.monotonic()
                self._evict(name, keep=loaded)
        return loaded

    async def promote(self, name: str, version: int) -> LoadedVersion:
        """Make ``version`` serve ``name``: load and warm it first, record it in the store (serving.json),
        switch atomically, then retire the old one once the calls holding it have finished. Promotions,
        deletions and loads of one model are serialized. Raises ``ModelNotFound`` for a version that is not
        kept (or was just deleted), ``StoreError`` for one that cannot load."""
        async with self._lock(name):
            await self._check_kept(name, version)
            try:
                new = await self._serve(name, version, record=True, phase="promotion")
            except ModelNotFoundError as exc:
                raise ModelNotFound(str(exc)) from exc
            except OSError as exc:  # the folder went away under the load (another process deleted it)
                raise StoreError(f"version {version} could not be read: {exc}") from exc
            self._clear_failure(name)
        await self._changed()
        return new

    async def delete(self, name: str, version: int) -> None:
        """Delete a kept version that is not serving (unloaded once its calls finish). Serialized with
        promotions: a version being promoted is either deleted first (the promotion gets NOT_FOUND) or serves
        first (the deletion gets FAILED_PRECONDITION)."""
        async with self._lock(name):
            await self._check_kept(name, version)
            live = self._serving.get(name)
            try:
                recorded = await asyncio.to_thread(self.store.serving_version, name)
            except (OSError, ValueError, KeyError):
                recorded = None
            if version in (live.version if live else None, recorded):
                raise GateFailed(
                    f"version {version} is the serving version of {name!r}; set another serving version "
                    "(SetServingVersion) before deleting it"
                )
            loaded = self._loaded.get((name, version))
            if loaded is not None:
                self._retire_later(loaded, "deleted")
            try:
                await asyncio.to_thread(self.store.delete_version, name, version)
            except ModelNotFoundError as exc:
                raise ModelNotFound(str(exc)) from exc
            except (StoreError, OSError) as exc:
                raise GateFailed(f"version {version} of {name!r} could not be deleted: {exc}") from exc

    async def unload_idle(self) -> None:
        """Unload versions loaded for calls that named them and unused for ``loaded_version_idle_s``."""
        idle = self.settings.loaded_version_idle_s
        if idle <= 0:
            return
        now = time.monotonic()
        for name in {n for n, _ in self._loaded}:
            async with self._lock(name):
                for loaded in self._versions(name, State.READY):
                    if loaded.users == 0 and now - loaded.last_used >= idle:
                        self._retire_later(loaded, "idle")

    async def close(self) -> None:
        for loaded in list(self._loaded.values()):
            loaded.state = State.CLOSED
            await self._unload(loaded, timeout=1.0)
        for task in list(self._tasks):
            task.cancel()

    # -- under the model's lock ----------------------------------------------------------------------

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def _check_kept(self, name: str, version: int) -> None:
        kept = await asyncio.to_thread(self.store.versions, name)
        if version not in kept:
            live = self._serving.get(name)
            raise ModelNotFound(
                f"model {name!r} has no version {version}; kept versions: "
                f"{', '.join(map(str, kept)) or 'none'}"
                + (f" (0 means the serving version, {live.version})" if live else "")
            )

    async def _apply_record(self, name: str, startup: bool) -> None:
        """Make the version in the model's serving record serve (see ``load_all`` and ``follow_store``)."""
        phase = "startup" if startup else "reload"
        try:
            version = await asyncio.to_thread(self.store.serving_version, name)
        except (StoreError, OSError, ValueError, KeyError) as exc:
            if startup:
                self.metrics.load_failures.labels(name, phase).inc()
                await self._record_failure(name, 0, f"its serving record cannot be read: {exc}")
                log.error("model failed to load", model=name, error=self.load_error(name))
            else:
                self._store_failed(exc)
            return
        if not startup:
            self._store_read()
        if version is None:
            if startup:
                error = f"model {name!r} has no serving version (no serving.json under {self.store.url})"
                self.metrics.load_failures.labels(name, phase).inc()
                await self._record_failure(name, 0, error)
                log.error("model failed to load", model=name, error=self.load_error(name))
            return
        live = self._serving.get(name)
        if live is not None and live.version == version:
            self._clear_failure(name)
            return
        if not startup and not await self._retry_due(name, version):
            return
        try:
            await self._serve(name, version, record=False, phase=phase)
        except Exception as exc:
            await self._record_failure(name, version, str(exc))
            if startup:
                log.error("model failed to load", model=name, version=version, error=str(exc), exc_info=True)
            else:
                self.metrics.store_reloads.labels(name, "failed").inc()
                log.error(
                    "serving version from the store failed to load",
                    model=name,
                    version=version,
                    still_serving=live.version if live else None,
                    error=str(exc),
                )
            if live is None and self.settings.on_load_failure == "serve-previous":
                await self._serve_previous(name, version, phase)
            return
        self._clear_failure(name)
        if not startup:
            self.metrics.store_reloads.labels(name, "loaded").inc()

    async def _serve_previous(self, name: str, failed: int, phase: str) -> None:
        """Serve the newest version before ``failed`` that loads, logged as an error."""
        older = [v for v in await asyncio.to_thread(self.store.versions, name) if v < failed]
        for version in reversed(older):
            try:
                await self._serve(name, version, record=False, phase=phase)
            except Exception as exc:
                log.warning("older version failed to load too", model=name, version=version, error=str(exc))
                continue
            log.error(
                "serving an older version: the serving version failed to load",
                model=name,
                version=version,
                failed_version=failed,
                error=self.load_error(name),
                hint="fix or re-export the failed version, or set the serving version (SetServingVersion)",
            )
            return
        log.error("no intact older version to serve", model=name, failed_version=failed)

    async def _serve(self, name: str, version: int, record: bool, phase: str) -> LoadedVersion:
        """Load ``version``, record it in the store if ``record``, make it serve, retire the old one."""
        old = self._serving.get(name)
        new = await self._ensure_loaded(name, version, phase)
        if record:
            await asyncio.to_thread(self.store.set_serving_version, name, version)
        if new is old:
            return new
        new.state = State.SERVING
        self._serving[name] = new
        if old is not None:
            self._retire_later(old, "replaced")
        log.info(
            "serving version set",
            model=name,
            version=version,
            previous=old.version if old else None,
            source="rpc" if record else "store",
        )
        return new

    async def _ensure_loaded(self, name: str, version: int, phase: str) -> LoadedVersion:
        """The loaded version (revived if it was retiring), or load it now; a failure is counted under
        ``phase`` (startup, reload, promotion or request)."""
        loaded = self._loaded.get((name, version))
        if loaded is not None:
            if loaded.state is State.RETIRING:
                loaded.state = State.READY
                log.info("retiring version revived", model=name, version=version)
            return loaded
        try:
            loaded = await asyncio.to_thread(self._build, name, version)
        except Exception as exc:
            self.metrics.load_failures.labels(name, phase).inc()
            if isinstance(exc, StoreError):
                raise
            log.error("version failed to load", model=name, version=version, exc_info=True)
            raise LoadError(f"version {version} of {name!r} cannot be loaded: {exc}") from exc
        loaded.batcher.start()
        loaded.state = State.READY
        self._loaded[(name, version)] = loaded
        self.metrics.model_info.labels(
            name, str(version), loaded.runtime.placement.quantization, loaded.runtime.provider
        ).set(1)
        log.info("model loaded", model=name, **loaded.info)
        return loaded

    def _evict(self, name: str, keep: LoadedVersion) -> None:
        """Retire the least recently used versions beyond ``max_loaded_versions`` (never ``keep``, and
        those in use last)."""
        others = [v for v in self._versions(name, State.READY) if v is not keep]
        others.sort(key=lambda v: (v.users > 0, v.last_used))
        for loaded in others[: max(0, len(others) + 1 - self.settings.max_loaded_versions)]:
            self._retire_later(loaded, "least recently used")

    def _versions(self, name: str, state: State) -> list[LoadedVersion]:
        return [v for (n, _), v in self._loaded.items() if n == name and v.state is state]

    def _retire_later(self, loaded: LoadedVersion, reason: str) -> None:
        """Mark a version that is not serving as retiring; it closes once unused, unless revived."""
        assert self._serving.get(loaded.name) is not loaded, "the serving version cannot retire"
        loaded.state = State.RETIRING
        log.info("version retiring", model=loaded.name, version=loaded.version, reason=reason)
        task = asyncio.get_running_loop().create_task(self._retire(loaded))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- failures ------------------------------------------------------------------------------------

    async def _record_failure(self, name: str, version: int, error: str) -> None:
        previous = self._failures.get(name)
        backoff = RETRY_BACKOFF_S
        if previous is not None and previous.version == version:
            backoff = min(previous.backoff * 2, RETRY_BACKOFF_MAX_S)
        fingerprint = await asyncio.to_thread(self.store.fingerprint, name, version)
        self._failures[name] = _Failure(version, error, fingerprint, time.monotonic() + backoff, backoff)
        self.metrics.load_failed.labels(name).set(1)

    def _clear_failure(self, name: str) -> None:
        if self._failures.pop(name, None) is not None:
            self.metrics.load_failed.labels(name).set(0)

    async def _retry_due(self, name: str, version: int) -> bool:
        """Whether to try loading ``version`` again: never tried, its backoff passed, or its files (or the
        serving record) changed since it failed."""
        failure = self._failures.get(name)
        if failure is None or failure.version != version or time.monotonic() >= failure.retry_at:
            return True
        return await asyncio.to_thread(self.store.fingerprint, name, version) != failure.fingerprint

    # -- closing -------------------------------------------------------------------------------------

    async def _retire(self, loaded: LoadedVersion) -> None:
        """Close a retiring version once no call holds it; give up if it is revived meanwhile."""
        warned = False
        while loaded.state is State.RETIRING and loaded.users:
            if not await loaded.wait_unused(30.0) and not warned:
                log.warning("a retiring version is still in use", model=loaded.name, version=loaded.version)
                warned = True
        if loaded.state is not State.RETIRING:
            return  # revived (or closed by ``close``)
        loaded.state = State.CLOSED
        await self._unload(loaded)

    async def _changed(self) -> None:
        if self.on_change is not None:
            await self.on_change()

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
            observer=self.metrics.observer(name, version),
            model=name,
            version=version,
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
        if self._loaded.get((loaded.name, loaded.version)) is loaded:
            del self._loaded[(loaded.name, loaded.version)]
        await loaded.batcher.close(timeout)
        rt = loaded.runtime
        with contextlib.suppress(KeyError):
            self.metrics.model_info.remove(
                loaded.name, str(loaded.version), rt.placement.quantization, rt.provider
            )
        log.info("model unloaded", model=loaded.name, version=loaded.version)
