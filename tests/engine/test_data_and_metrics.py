"""Reading CSV/TSV/JSONL, the errors on bad data, and the metrics."""

import json

import pytest

from common.errors import DataError, EngineError
from common.task import TaskSpec, default_template
from workers.engine.inference.evaluation import accuracy, exact_match, macro_f1
from workers.engine.training.data import check_labels, infer_task, read_rows, split_train_dev, to_examples


def test_reads_csv_tsv_and_jsonl(tmp_path):
    (tmp_path / "a.csv").write_text('text,label\n"hi, there",positive\nbad,negative\n')
    (tmp_path / "a.tsv").write_text("text\tlabel\nhi, there\tpositive\nbad\tnegative\n")
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"text": "hi, there", "label": "positive"})
        + "\n\n"
        + json.dumps({"text": "bad", "label": "negative"})
    )
    for name in ("a.csv", "a.tsv", "a.jsonl"):
        assert read_rows(tmp_path / name) == [
            {"text": "hi, there", "label": "positive"},
            {"text": "bad", "label": "negative"},
        ]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "has no rows"),
        (b"text,label\n", "has no rows"),
        (b"text,label\n\xff\xfe,positive\n", "not UTF-8"),
    ],
)
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "d.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_rows(path)


def test_bad_jsonl_line_names_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{oops\n')
    with pytest.raises(DataError, match="Line 2"):
        read_rows(path)


def test_missing_columns_and_empty_values_are_named():
    rows = [{"sentence": "a", "label": "x"}]
    with pytest.raises(DataError, match=r"no column\(s\) \['text'\]"):
        to_examples(rows, "{text}", "label")
    with pytest.raises(DataError, match=r"Row 3 .* empty 'label'"):
        to_examples([{"text": "a", "label": "x"}, {"text": "b", "label": " "}], "{text}", "label")


def test_unknown_dev_label_is_refused():
    spec = TaskSpec("classification", "{text}", ["a", "b"])
    examples = to_examples([{"text": "t", "label": "a"}, {"text": "u", "label": "c"}], "{text}", "label")
    with pytest.raises(DataError, match=r"Row 3 .* label 'c'"):
        check_labels(examples, spec, "dev.csv")


def test_task_inference_and_templates():
    cls = to_examples([{"text": str(i), "label": "ab"[i % 2]} for i in range(10)], "{text}", "label")
    assert infer_task(cls, "{text}").task_type == "classification"
    gen = to_examples([{"text": str(i), "label": f"answer {i}"} for i in range(10)], "{text}", "label")
    assert infer_task(gen, "{text}").task_type == "generation"
    assert default_template(["text_a", "text_b", "label"]) == "{text_a}\n{text_b}\nAnswer:"
    with pytest.raises(DataError):
        default_template(["body", "label"])
    with pytest.raises(EngineError):
        TaskSpec("classification", "no fields", ["a", "b"])
    with pytest.raises(EngineError, match="share a verbalizer"):
        TaskSpec("classification", "{text}", ["a", "b"], verbalizer={"a": "same", "b": "same"})


def test_split_is_seeded_and_disjoint():
    examples = to_examples([{"text": str(i), "label": "ab"[i % 2]} for i in range(50)], "{text}", "label")
    train, dev = split_train_dev(examples, 0.2, seed=7)
    assert len(dev) == 10 and len(train) == 40
    assert not {e.fields["text"] for e in train} & {e.fields["text"] for e in dev}
    assert split_train_dev(examples, 0.2, seed=7) == (train, dev)


def test_metrics():
    gold = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", "b"]
    assert accuracy(gold, pred) == 0.5
    # per-label F1: a 2/3, b 2/3 (tp1 fp2 fn0 -> 2/4=.5), c 0
    assert macro_f1(gold, pred, ["a", "b", "c"]) == pytest.approx((2 / 3 + 0.5 + 0) / 3)
    assert exact_match(["The Cat ", "dog"], ["the  cat", "cat"]) == 0.5
