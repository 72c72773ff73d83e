"""tuneserve.server: the gRPC inference server (``tuneserve serve``, or ``python -m tuneserve.server``).

Calls flow servicer → dataplane → batcher → runtime:

- ``settings``: typed configuration (flags, TUNESERVE_* environment, defaults); ``cli``: the command.
- ``app``: wiring, health, reflection, start-up and graceful shutdown.
- ``servicer``: thin proto ↔ domain methods; ``convert``: the message mapping; ``streams``: ordered streams.
- ``interceptors``: the one error → status map, per-RPC metrics and logs, drain.
- ``errors``: the ``TuneserveError`` tree, each class with its status code.
- ``dataplane``: validation, model lookup, admission, tokenization, batching, post-processing.
- ``batcher``: dynamic batching per loaded model version; ``runtime``: ONNX Runtime, provider, warmup.
- ``registry``: model name → loaded version; ``catalog``: what ModelService reports.
- ``metrics``: Prometheus metrics on their own port; ``reflection``: server reflection v1 and v1alpha.
- ``tasks``: post-processing per task (classification scores, NER windows and entities).

Nothing here imports torch or transformers.
"""

import os

# Before anything in this process imports grpc (it reads the variable once, at import): serve calls
# through gRPC's classic listener, not its EventEngine one. The EventEngine listener reads each request
# on one of its own threads and hands it over to the thread that polls the completion queue; the classic
# one reads on the polling thread itself. That hop cost 15 % of a minimal unary call (C=1 p50, 0.82 ->
# 0.70 ms, fixed-reply grpc.aio server, 16 alternating rounds on 2 cores). A GRPC_EXPERIMENTS set by the
# operator wins; an experiment unknown to a later grpcio only logs a line.
os.environ.setdefault("GRPC_EXPERIMENTS", "-event_engine_listener")
