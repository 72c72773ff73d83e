"""Tests for tuneserve.data: readers, tag normalisation, label sets and DataError reporting."""

import pickle
from pathlib import Path

import pytest

from tuneserve.data import (
    DataError,
    TextExample,
    TokenExample,
    check_validation_labels,
    label_set_classification,
    label_set_ner,
    read_classification,
    read_ner,
    split_tokens,
)


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def assert_error(exc: pytest.ExceptionInfo[DataError], path: Path, line: int | None, fragment: str) -> None:
    err = exc.value
    assert err.path == str(path)
    assert err.line == line
    assert fragment in err.message
    where = str(path) if line is None else f"{path}:{line}"
    assert str(err) == f"{where}: {err.message}"


# ---------------------------------------------------------------- DataError


def test_data_error_str_and_pickle() -> None:
    err = DataError("data/train.tsv", "empty text in column 'text'", 17)
    assert str(err) == "data/train.tsv:17: empty text in column 'text'"
    assert isinstance(err, ValueError)
    assert str(DataError(Path("x.tsv"), "file not found")) == "x.tsv: file not found"
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.path, copy.line, copy.message) == (err.path, err.line, err.message)


# ---------------------------------------------------------------- classification formats


def test_tsv(tmp_path: Path) -> None:
    path = write(tmp_path, "t.tsv", 'sentence\tlabel\nit \'s good \t1\n\n  \nbad , "really"\t 0 \n')
    examples = read_classification(path, text_column="sentence")
    assert examples == [
        TextExample("it 's good ", ("1",), 2),
        TextExample('bad , "really"', ("0",), 5),
    ]


def test_tsv_crlf_and_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "t.tsv", b"\xef\xbb\xbftext\tlabel\r\nhello\tpos\r\n")
    assert read_classification(path) == [TextExample("hello", ("pos",), 2)]


def test_csv_quoted(tmp_path: Path) -> None:
    content = 'id,text,label\n1,"Hello, world",greeting\n\n2,"She said ""hi""\nand left",story\n3,plain,x\n'
    examples = read_classification(write(tmp_path, "t.csv", content))
    assert examples == [
        TextExample("Hello, world", ("greeting",), 2),
        TextExample('She said "hi"\nand left', ("story",), 4),
        TextExample("plain", ("x",), 6),
    ]


def test_tsv_and_csv_multi_label(tmp_path: Path) -> None:
    path = write(tmp_path, "m.tsv", "text\tlabels\na\tx|y\nb\t\nc\t y | x|y\n")
    examples = read_classification(path, label_column="labels", multi_label=True)
    assert [ex.labels for ex in examples] == [("x", "y"), (), ("y", "x")]
    path = write(tmp_path, "m.csv", 'text,labels\na,"x;y"\n')
    examples = read_classification(path, label_column="labels", multi_label=True, label_separator=";")
    assert examples[0].labels == ("x", "y")


def test_jsonl_single_label(tmp_path: Path) -> None:
    content = '{"text": "good", "label": "pos"}\n\n{"text": "bad", "label": 0, "extra": 1}\n'
    examples = read_classification(write(tmp_path, "t.jsonl", content))
    assert examples == [TextExample("good", ("pos",), 1), TextExample("bad", ("0",), 3)]


def test_jsonl_list_labels_without_flag(tmp_path: Path) -> None:
    content = '{"body": "a", "tags": ["x", 2]}\n{"body": "b", "tags": []}\n'
    path = write(tmp_path, "t.json", content)
    examples = read_classification(path, text_column="body", label_column="tags")
    assert [ex.labels for ex in examples] == [("x", "2"), ()]


def test_jsonl_multi_label_flag_splits_strings(tmp_path: Path) -> None:
    content = '{"text": "a", "label": "x|y"}\n{"text": "b", "label": ["z"]}\n{"text": "c", "label": 3}\n'
    examples = read_classification(write(tmp_path, "t.jsonl", content), multi_label=True)
    assert [ex.labels for ex in examples] == [("x", "y"), ("z",), ("3",)]


# ---------------------------------------------------------------- NER formats


def test_conll_two_columns(tmp_path: Path) -> None:
    content = "EU B-ORG\nrejects O\n\n\nPeter B-PER\nBlackburn I-PER\n"
    examples = read_ner(write(tmp_path, "t.txt", content))
    assert examples == [
        TokenExample(("EU", "rejects"), ("B-ORG", "O"), 1),
        TokenExample(("Peter", "Blackburn"), ("B-PER", "I-PER"), 5),
    ]


def test_conll_four_columns_docstart(tmp_path: Path) -> None:
    content = (
        "-DOCSTART- -X- -X- O\n\n"
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n"
        "-DOCSTART- -X- -X- O\n"
        "German\tJJ\tB-NP\tB-MISC\ncall NN I-NP O\n"
    )
    examples = read_ner(write(tmp_path, "t.conll", content))
    assert examples == [
        TokenExample(("EU", "rejects"), ("B-ORG", "O"), 3),
        TokenExample(("German", "call"), ("B-MISC", "O"), 6),
    ]


def test_jsonl_ner(tmp_path: Path) -> None:
    content = (
        '{"tokens": ["Paris", "is"], "tags": ["B-LOC", "O"]}\n'
        "\n"
        '{"tokens": ["Ann"], "ner_tags": ["S-PER"], "id": 7}\n'
        '{"tokens": [], "tags": []}\n'
    )
    examples = read_ner(write(tmp_path, "t.jsonl", content))
    assert examples == [
        TokenExample(("Paris", "is"), ("B-LOC", "O"), 1),
        TokenExample(("Ann",), ("B-PER",), 3),
    ]


def test_jsonl_ner_tokens_are_split_at_whitespace(tmp_path: Path) -> None:
    content = (
        '{"tokens": ["in", "New York", " City", "@user", "U.S."], '
        '"tags": ["O", "B-LOC", "I-LOC", "S-PER", "B-LOC"]}\n'
        '{"tokens": ["a b", "c"], "tags": ["O", "O"]}\n'
    )
    examples = read_ner(write(tmp_path, "t.jsonl", content))
    assert examples == [
        TokenExample(
            ("in", "New", "York", "City", "@user", "U.S."),
            ("O", "B-LOC", "I-LOC", "I-LOC", "B-PER", "B-LOC"),
            1,
        ),
        TokenExample(("a", "b", "c"), ("O", "O", "O"), 2),
    ]


def entities(tags: tuple[str, ...]) -> list[tuple[str, int, int]]:
    """(type, first, last) token of each IOB2 entity."""
    out: list[tuple[str, int, int]] = []
    for i, tag in enumerate(tags):
        if tag.startswith("I-") and out and out[-1][0] == tag[2:] and out[-1][2] == i - 1:
            out[-1] = (out[-1][0], out[-1][1], i)
        elif tag != "O":
            out.append((tag[2:], i, i))
    return out


def test_split_tokens_spreads_each_tag_and_keeps_the_entities() -> None:
    example = TokenExample(
        ("RT", "@user", "#tag", "#tag", "New-York", "U.S.", "x"),
        ("O", "B-PER", "B-MISC", "I-MISC", "B-LOC", "B-LOC", "O"),
        7,
    )
    cut = split_tokens(example, lambda w: [w] if w.isalnum() else [w[:1], w[1:]])
    assert cut == TokenExample(
        ("RT", "@", "user", "#", "tag", "#", "tag", "N", "ew-York", "U", ".S.", "x"),
        (
            "O",
            "B-PER",
            "I-PER",
            "B-MISC",
            "I-MISC",
            "I-MISC",
            "I-MISC",
            "B-LOC",
            "I-LOC",
            "B-LOC",
            "I-LOC",
            "O",
        ),
        7,
    )
    assert len(entities(cut.tags)) == len(entities(example.tags)) == 4
    assert split_tokens(example, lambda w: []) == example  # a token cut into nothing stays whole


def ner_tags(tmp_path: Path, tags: list[str]) -> tuple[str, ...]:
    content = "".join(f"w{i} {tag}\n" for i, tag in enumerate(tags))
    [example] = read_ner(write(tmp_path, "tags.txt", content))
    return example.tags


def test_iobes_normalised(tmp_path: Path) -> None:
    tags = ["S-PER", "B-ORG", "I-ORG", "E-ORG", "O", "B-LOC", "E-LOC", "S-LOC", "S-LOC", "E-MISC", "I-MISC"]
    assert ner_tags(tmp_path, tags) == (
        "B-PER", "B-ORG", "I-ORG", "I-ORG", "O", "B-LOC", "I-LOC", "B-LOC", "B-LOC", "B-MISC", "B-MISC",
    )  # fmt: skip


def test_iob1_normalised(tmp_path: Path) -> None:
    tags = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-ORG", "O", "B-MISC", "I-MISC"]
    assert ner_tags(tmp_path, tags) == (
        "B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-ORG", "O", "B-MISC", "I-MISC",
    )  # fmt: skip


# ---------------------------------------------------------------- label sets


def test_label_set_classification_numeric_and_text() -> None:
    def exs(*labels: tuple[str, ...]) -> list[TextExample]:
        return [TextExample("t", lab, i + 1) for i, lab in enumerate(labels)]

    assert label_set_classification(exs(("10",), ("2",), ("-1",), ("2",))) == ["-1", "2", "10"]
    assert label_set_classification(exs(("b",), ("10",), ("2",))) == ["10", "2", "b"]
    assert label_set_classification(exs(("y", "x"), (), ("x",))) == ["x", "y"]
    assert label_set_classification([]) == []


def test_label_set_ner() -> None:
    examples = [
        TokenExample(("a", "b"), ("B-PER", "I-PER"), 1),
        TokenExample(("c", "d"), ("B-LOC", "O"), 4),
        TokenExample(("e",), ("B-MISC",), 7),
    ]
    assert label_set_ner(examples) == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-PER", "I-PER"]
    assert label_set_ner([]) == ["O"]


# ---------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.tsv"
    with pytest.raises(DataError) as exc:
        read_classification(path)
    assert_error(exc, path, None, "file not found")
    with pytest.raises(DataError) as exc:
        read_ner(tmp_path / "nope.txt")
    assert_error(exc, tmp_path / "nope.txt", None, "file not found")


@pytest.mark.parametrize(
    ("name", "content"),
    [("e.tsv", ""), ("h.tsv", "text\tlabel\n\n"), ("e.csv", "\n\n"), ("e.jsonl", "\n")],
)
def test_no_examples(tmp_path: Path, name: str, content: str) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as exc:
        read_classification(path)
    assert_error(exc, path, None, "no examples")


@pytest.mark.parametrize(("name", "content"), [("e.txt", "\n-DOCSTART- O\n\n"), ("e.jsonl", "\n \n")])
def test_ner_no_sentences(tmp_path: Path, name: str, content: str) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as exc:
        read_ner(path)
    assert_error(exc, path, None, "no sentences")


def test_unsupported_extension(tmp_path: Path) -> None:
    path = write(tmp_path, "t.txt", "text\tlabel\n")
    with pytest.raises(DataError) as exc:
        read_classification(path)
    assert_error(exc, path, None, "expected .tsv, .csv, .jsonl or .json")


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("bad.tsv", b"text\tlabel\nok\ta\nok\ta\ncaf\xe9\ta\n", 4),
        ("bad.csv", b"text,label\nok,a\ncaf\xe9,a\n", 3),
        ("bad.jsonl", b'{"text": "ok", "label": "a"}\n\n{"text": "caf\xe9", "label": "a"}\n', 3),
    ],
)
def test_invalid_utf8(tmp_path: Path, name: str, content: bytes, line: int) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as exc:
        read_classification(path)
    assert_error(exc, path, line, "invalid UTF-8 (byte 0xe9")


def test_invalid_utf8_conll(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.txt", b"a O\n\nb\xff O\n")
    with pytest.raises(DataError) as exc:
        read_ner(path)
    assert_error(exc, path, 3, "invalid UTF-8")


def test_utf16_file(tmp_path: Path) -> None:
    path = write(tmp_path, "u.tsv", "text\tlabel\n".encode("utf-16"))
    with pytest.raises(DataError) as exc:
        read_classification(path)
    assert_error(exc, path, 1, "save it as UTF-8")


@pytest.mark.parametrize(
    ("name", "content", "line", "fragment"),
    [
        ("t.tsv", "text\tlabel\nok\t1\n  \t1\n", 3, "empty text in column 'text'"),
        ("t.csv", 'text,label\nok,1\n"",1\n', 3, "empty text in column 'text'"),
        ("t.jsonl", '{"text": "ok", "label": 1}\n{"text": " ", "label": 1}\n', 2, "empty text in key 'text'"),
        ("t.tsv", "text\tlabel\nok\t1\n\nok\t \n", 4, "empty label in column 'label'"),
        ("t.csv", "text,label\nok,\n", 2, "empty label in column 'label'"),
        ("t.jsonl", '{"text": "ok", "label": ""}\n', 1, "empty label in key 'label'"),
        ("t.jsonl", '{"text": "ok"}\n', 1, "missing key 'label'; the object has keys: 'text'"),
        ("t.jsonl", '{"text": "ok", "label": null}\n', 1, "'label' is null; expected a string or an integer"),
        ("t.jsonl", '{"text": 5, "label": "a"}\n', 1, "key 'text' is a number; expected a string"),
        ("t.jsonl", '{"text": "ok", "label": "a"}\n{"text": "x", "label": "a",}\n', 2, "invalid JSON"),
        (
            "t.jsonl",
            '{"text": "ok", "label": 1}\n["x"]\n',
            2,
            "expected one JSON object per line, found an array",
        ),
        (
            "t.jsonl",
            '{"text": "a", "label": 1}\n{"text": "b", "label": [1]}\n',
            2,
            "line 1 has a single label",
        ),
        (
            "t.jsonl",
            '{"text": "a", "label": [1]}\n{"text": "b", "label": 1}\n',
            2,
            "line 1 has a list of labels",
        ),
        (
            "t.tsv",
            "sentence\tlabel\nok\t1\n",
            1,
            "no column 'text' in the header; the columns are: 'sentence'",
        ),
        ("t.csv", "text;label\nok;1\n", 1, "is the file separated by ';'"),
        ("t.csv", "text,label\nhello, world,1\n", 2, "3 fields, but the header has 2"),
        ("t.tsv", "text\tlabel\nok\n", 2, "1 field, but the header has 2"),
        ("t.csv", 'text,label\nok,1\n"never closed,1\nmore,2\n', 3, "malformed CSV"),
    ],
)
def test_classification_errors(tmp_path: Path, name: str, content: str, line: int, fragment: str) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as exc:
        read_classification(path)
    assert_error(exc, path, line, fragment)


def test_multi_label_empty_part(tmp_path: Path) -> None:
    path = write(tmp_path, "m.tsv", "text\tlabel\na\tx|y\nb\tx||y\n")
    with pytest.raises(DataError) as exc:
        read_classification(path, multi_label=True)
    assert_error(exc, path, 3, "empty label in 'x||y' (column 'label'); expected labels separated by '|'")


@pytest.mark.parametrize(
    ("name", "content", "line", "fragment"),
    [
        ("t.txt", "EU B-ORG\nrejects\n", 2, "only one column ('rejects')"),
        ("t.txt", "a O\n\nb O\nc B_PER\n", 4, "invalid tag 'B_PER'; expected 'O' or B-, I-, E- or S-"),
        ("t.txt", "a O\nb B-\n", 2, "invalid tag 'B-'"),
        (
            "t.jsonl",
            '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a", "b"], "tags": ["O"]}\n',
            2,
            "2 tokens but 1 tag in 'tags'",
        ),
        ("t.jsonl", '{"tokens": ["a", " "], "ner_tags": ["O", "O"]}\n', 1, "empty token at position 1"),
        (
            "t.jsonl",
            '{"tokens": ["a", "b"], "tags": ["O", "X-PER"]}\n',
            1,
            "invalid tag 'X-PER' at position 1 in 'tags'",
        ),
        ("t.jsonl", '{"tokens": ["a"], "ner_tags": [3]}\n', 1, "integer tag ids"),
        ("t.jsonl", '{"tokens": ["a"]}\n', 1, "missing key 'tags' (or 'ner_tags')"),
        ("t.jsonl", '{"words": ["a"], "tags": ["O"]}\n', 1, "missing key 'tokens'"),
        ("t.jsonl", '{"tokens": "a b", "tags": ["O"]}\n', 1, "key 'tokens' is a string; expected a list"),
        ("t.json", '{"tokens": ["a"], "tags": ["O"]\n', 1, "invalid JSON"),
        ("t.json", '"just a string"\n', 1, "found a string"),
    ],
)
def test_ner_errors(tmp_path: Path, name: str, content: str, line: int, fragment: str) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as exc:
        read_ner(path)
    assert_error(exc, path, line, fragment)


# ---------------------------------------------------------------- validation labels


def test_check_validation_labels_classification(tmp_path: Path) -> None:
    train = read_classification(write(tmp_path, "train.tsv", "text\tlabel\na\tpos\nb\tneg\n"))
    known = label_set_classification(train)
    dev_path = write(tmp_path, "dev.tsv", "text\tlabel\nc\tneg\n\nd\tneutral\ne\tpos\n")
    dev = read_classification(dev_path)
    with pytest.raises(DataError) as exc:
        check_validation_labels(dev_path, dev, known)
    assert_error(exc, dev_path, 4, "label 'neutral' is not in the training data; known labels: 'neg', 'pos'")
    check_validation_labels(dev_path, dev[:1], known)


def test_check_validation_labels_ner(tmp_path: Path) -> None:
    train = read_ner(write(tmp_path, "train.txt", "Ann B-PER\nin O\nParis B-LOC\n"))
    known = label_set_ner(train)
    dev_path = write(tmp_path, "dev.txt", "Bob I-PER\n\nat O\nAcme B-ORG\nInc I-ORG\n")
    dev = read_ner(dev_path)
    with pytest.raises(DataError) as exc:
        check_validation_labels(dev_path, dev, known)
    assert_error(
        exc, dev_path, 4, "entity type 'ORG' (tag 'B-ORG' on token 'Acme') is not in the training data"
    )

    jsonl_path = write(
        tmp_path,
        "dev.jsonl",
        '{"tokens": ["x"], "tags": ["O"]}\n{"tokens": ["a", "b"], "tags": ["O", "S-ORG"]}\n',
    )
    with pytest.raises(DataError) as exc:
        check_validation_labels(jsonl_path, read_ner(jsonl_path), known)
    assert_error(exc, jsonl_path, 2, "entity type 'ORG'")
    check_validation_labels(dev_path, dev[:1], known)
