"""tuneserve.pipeline: train → export orchestration, above both the trainer and the exporter.

- ``job``: one Train RPC job in its own process (train, export, quantize, validate, gate, register).
- ``demo``: the demo models of ``tuneserve demo`` and ``tuneserve serve --demo``.
"""
