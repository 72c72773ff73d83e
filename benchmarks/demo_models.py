"""How the demo models (trained on synthetic data) do on real data: SST-2 test and CoNLL-2003 test.

python benchmarks/demo_models.py --model-root models
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tuneserve import data as datasets
from tuneserve.evaluation import evaluate_classification, evaluate_ner
from tuneserve.inference import OnnxModel
from tuneserve.localstore import LocalModelStore

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-root", default=str(REPO / "models"))
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    store, data = LocalModelStore(args.model_root), Path(args.data)
    report = {}

    sentiment = store.open_version("sentiment")
    m = sentiment.manifest
    model = OnnxModel(sentiment.path, m.onnx_file, m.max_length)
    names = {"0": "negative", "1": "positive"}
    sst2 = [
        datasets.TextExample(ex.text, (names[ex.labels[0]],), ex.line)
        for ex in datasets.read_classification(data / "sst2" / "test.tsv", text_column="sentence")
    ]
    report["sentiment_on_sst2_test"] = evaluate_classification(
        model.logits, model.tokenizer, sst2, m.labels, False
    )
    report["sentiment_on_own_validation"] = m.metrics["served"]

    ner = store.open_version("ner")
    m = ner.manifest
    model = OnnxModel(ner.path, m.onnx_file, m.max_length)
    conll = datasets.read_ner(data / "conll2003" / "test.txt")
    report["ner_on_conll_test"] = evaluate_ner(model.logits, model.tokenizer, conll, m.labels, m.max_length)
    report["ner_on_own_validation"] = m.metrics["served"]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
