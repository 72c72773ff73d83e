"""The server's error tree. Domain code raises these; only ``interceptors.py`` turns them into statuses.

Every message says what was wrong and what is allowed, and is sent to the client as is::

    TuneserveError                  INTERNAL (never raised directly; anything unexpected also maps here)
    ├── InvalidInput                INVALID_ARGUMENT  malformed request: empty batch, too many texts, ...
    ├── ModelNotFound               NOT_FOUND         unknown model or version
    ├── ModelNotReady               UNAVAILABLE       starting, draining, or the model failed to load
    ├── Overloaded                  RESOURCE_EXHAUSTED queue full; the message has retry advice
    ├── StorageFull                 RESOURCE_EXHAUSTED the disk the server writes to is full
    ├── DeadlineExceeded            DEADLINE_EXCEEDED the caller's deadline passed before the work ran
    ├── Unimplemented               UNIMPLEMENTED     an RPC this server does not implement
    ├── JobConflict                 ALREADY_EXISTS    a job for the model is already queued or running
    ├── GateFailed                  FAILED_PRECONDITION  a version that may not serve (or be deleted)
    ├── ConcurrentChange            ABORTED           another writer changed the same record at once: retry
    ├── StoreUnavailable            UNAVAILABLE       the model store (an object store) cannot be reached
    ├── TrainingUnavailable         FAILED_PRECONDITION  training is off, or not installed, on this server
    ├── Unauthenticated             UNAUTHENTICATED   no bearer token, a malformed one, or an unknown one
    └── PermissionDenied            PERMISSION_DENIED a read-only token on an RPC that needs an admin token

The store's own ``ConflictError`` and ``StoreUnavailableError`` map to ``ConcurrentChange`` and
``StoreUnavailable`` wherever they surface (``from_store_error``).

Errors that belong to one item of a batch are set on that item's future only: the other callers of the
same batch are not affected.
"""

from __future__ import annotations

import grpc

from tuneserve.repository import ConflictError, StoreUnavailableError


class TuneserveError(Exception):
    """Base class; ``code`` is the gRPC status the interceptor answers with."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(TuneserveError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class ModelNotFound(TuneserveError):
    code = grpc.StatusCode.NOT_FOUND


class ModelNotReady(TuneserveError):
    code = grpc.StatusCode.UNAVAILABLE


class Overloaded(TuneserveError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class StorageFull(TuneserveError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(TuneserveError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(TuneserveError):
    code = grpc.StatusCode.UNIMPLEMENTED


class JobConflict(TuneserveError):
    code = grpc.StatusCode.ALREADY_EXISTS


class GateFailed(TuneserveError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ConcurrentChange(TuneserveError):
    """Another writer changed the same record at the same moment (a lost compare-and-set): retry."""

    code = grpc.StatusCode.ABORTED


class StoreUnavailable(TuneserveError):
    """The model store cannot be reached (an object store that is down): retry later."""

    code = grpc.StatusCode.UNAVAILABLE


class TrainingUnavailable(TuneserveError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(TuneserveError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(TuneserveError):
    code = grpc.StatusCode.PERMISSION_DENIED


def from_store_error(exc: BaseException) -> BaseException:
    """The status-carrying error for a store error that a caller can act on (retry); ``exc`` otherwise."""
    if isinstance(exc, ConflictError):
        return ConcurrentChange(str(exc))
    if isinstance(exc, StoreUnavailableError):
        return StoreUnavailable(f"the model store cannot be reached; retry later ({exc})")
    return exc
