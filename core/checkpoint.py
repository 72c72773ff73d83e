"""Files tuneserve adds to a fine-tuned checkpoint folder: written by the trainer, read by the exporter."""

TRAINING_RECORD = "training.json"  # task, labels, max length, data files, hyperparameters, metrics
METRICS = "metrics.json"  # best and per-epoch validation metrics
CURVE = "training_curve.png"  # loss and metric per epoch (when matplotlib is installed)
