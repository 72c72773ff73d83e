"""A small typed Python client for tuneserve's gRPC API (importable as ``tuneserve.client``).

    from tuneserve.client import TuneserveClient

    with TuneserveClient("localhost:50051") as client:
        result = client.classify("sentiment", ["What a great film!"], top_k=1)
        print(result.results[0].labels[0])
        entities = client.extract_entities("ner", ["Angela Merkel visited Paris."])

It also trains and follows jobs (``train``, ``watch``, ``get_job``, ``list_jobs``, ``cancel_job``) and
manages versions (``promote``, ``rollback``, ``delete_version``), like the Go and Java clients.

Calls that fail with UNAVAILABLE (starting, draining, connection lost) or RESOURCE_EXHAUSTED (queue full)
are retried by gRPC with exponential backoff and jitter, within the call's overall deadline (``timeout``);
the policy is the Go and Java clients' (``Train`` only on RESOURCE_EXHAUSTED). Other failures raise
``TuneserveError`` with the server's status code and message.
Entity offsets are Unicode code points: ``text[e.start:e.end] == e.text`` for a Python ``str``.
"""

from ._client import (
    Classification,
    Classified,
    Entity,
    Extracted,
    LabelScore,
    NoEarlierVersionError,
    TuneserveClient,
    TuneserveError,
)

__all__ = [
    "Classification",
    "Classified",
    "Entity",
    "Extracted",
    "LabelScore",
    "NoEarlierVersionError",
    "TuneserveClient",
    "TuneserveError",
]
