"""A small typed Python client for tuneserve's gRPC API (importable as ``tuneserve.client``).

    from tuneserve.client import TuneserveClient

    with TuneserveClient("localhost:50051") as client:
        result = client.classify("sentiment", ["What a great film!"], top_k=1)
        print(result.results[0].labels[0])
        entities = client.extract_entities("ner", ["Angela Merkel visited Paris."])

Calls that fail with UNAVAILABLE (starting, draining, connection lost) or RESOURCE_EXHAUSTED (queue full)
are retried with exponential backoff and jitter, within the call's overall deadline (``timeout``).
Other failures raise ``TuneserveError`` with the server's status code and message.
Entity offsets are Unicode code points: ``text[e.start:e.end] == e.text`` for a Python ``str``.
"""

from ._client import (
    Classification,
    Classified,
    Entity,
    Extracted,
    LabelScore,
    TuneserveClient,
    TuneserveError,
)

__all__ = [
    "Classification",
    "Classified",
    "Entity",
    "Extracted",
    "LabelScore",
    "TuneserveClient",
    "TuneserveError",
]
