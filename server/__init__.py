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
