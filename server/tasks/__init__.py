"""Task post-processing used by the server, one module per task.

- ``classify``: softmax (single-label) or sigmoid (multi-label) scores, labels sorted, ``top_k``.
- ``ner``: overlapping windows over long texts, and IOB2 tags merged into entities with code-point offsets.

Pure functions over numpy and ``tokenizers``: nothing here imports torch, transformers or onnxruntime.
"""
