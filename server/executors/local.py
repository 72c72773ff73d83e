"""The local executor: each job is ``python -m tuneserve.pipeline.job SPEC EVENTS_FD``, a process of this
server in a new process group (niced, with its own thread count), reporting JSON events over a pipe. A
cancel sends SIGTERM to the group, then SIGKILL after ``cancel_grace_s``. A job does not survive the
server: after a restart its process group is killed and the job fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import structlog

from tuneserve.server.executors import Apply, Ended, Save
from tuneserve.server.jobstore import JobRecord
from tuneserve.server.settings import TrainingSettings

log = structlog.get_logger("tuneserve.server.executors.local")

_LOG_TAIL = 1500


class LocalExecutor:
    survives_restart = False

    def __init__(self, settings: TrainingSettings) -> None:
        self.settings = settings
        self._procs: dict[str, asyncio.subprocess.Process] = {}

    async def run(self, job: JobRecord, apply: Apply, save: Save, attach: bool = False) -> Ended:
        work = Path(job.work_dir)
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(job.spec))
        read_fd, write_fd = os.pipe()
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(job.spec["threads"]),
            "MKL_NUM_THREADS": str(job.spec["threads"]),
            "TOKENIZERS_PARALLELISM": "false",
            "TUNESERVE_JOB_NICE": str(self.settings.nice),
        }
        log_path = work / "job.log"
        with log_path.open("wb") as log_file:
            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "tuneserve.pipeline.job",
                    str(spec_path),
                    str(write_fd),
                    pass_fds=(write_fd,),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    env=env,
                )
            finally:
                os.close(write_fd)
        self._procs[job.id] = proc
        try:
            job.pid = proc.pid
            await save()
            log.info(
                "job started",
                job=job.id,
                model=job.model,
                pid=proc.pid,
                threads=job.spec["threads"],
                nproc_per_node=job.spec.get("nproc_per_node", 1),
            )
            if job.cancel_requested:  # cancelled between the queue and the spawn
                _signal_group(proc, signal.SIGTERM)
            await _follow(fd=read_fd, apply=apply)
            code = await proc.wait()
        finally:
            self._procs.pop(job.id, None)
        return Ended(code, _crash_message(code, log_path) if code else "")

    async def cancel(self, job: JobRecord) -> None:
        proc = self._procs.get(job.id)
        _signal_group(proc, signal.SIGTERM)
        if not (job.spec.get("search") or {}).get("keep_best_on_cancel"):
            # A search that keeps its best trial goes on to export it: no deadline (a second cancel
            # during the export stops it at the next stage).
            loop = asyncio.get_running_loop()
            loop.call_later(self.settings.cancel_grace_s, _signal_group, proc, signal.SIGKILL)

    async def stop(self, job: JobRecord) -> None:
        _signal_group(self._procs.get(job.id), signal.SIGTERM)

    async def recover(self, job: JobRecord) -> bool:
        await asyncio.to_thread(_kill_orphan, job)
        return False

    def clean(self, job: JobRecord) -> None:
        pass

    def describe(self, job: JobRecord) -> str:
        return f"process {job.pid}" if job.pid else "a process of this server"


async def _follow(fd: int, apply: Apply) -> None:
    """Hand the worker's events to ``apply`` until the pipe closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        async for line in reader:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            await apply(event)
    finally:
        transport.close()


def _crash_message(code: int, log_path: Path) -> str:
    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
    tail = ""
    with contextlib.suppress(OSError):
        tail = log_path.read_text(errors="replace")[-_LOG_TAIL:].strip()
    return f"the job process {how}" + (f"; its log ends with: {tail}" if tail else "")


def _kill_orphan(job: JobRecord) -> None:
    """Kill the process group of a job whose server died, if it is still that job's process."""
    if not job.pid:
        return
    try:
        cmdline = Path(f"/proc/{job.pid}/cmdline").read_bytes()
    except OSError:
        cmdline = b""
    if b"tuneserve.pipeline.job" in cmdline and job.id.encode() in cmdline:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(job.pid, signal.SIGKILL)


def _signal_group(proc: asyncio.subprocess.Process | None, sig: int) -> None:
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
