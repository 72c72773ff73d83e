package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	pb "github.com/tuneserve/tuneserve/clients/go/tuneservev1"
)

func write(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var plain = columns{text: "text", label: "label"}

func TestReadDataset(t *testing.T) {
	tsv := write(t, "train.tsv", "label\ttext\npositive\tthe show was great\n\nnegative\tcafé froid 😞\r\n")
	ds, err := readDataset(tsv, pb.Task_TASK_CLASSIFICATION, plain)
	if err != nil {
		t.Fatal(err)
	}
	ex := ds.GetClassificationExamples().GetExamples()
	if len(ex) != 2 || ex[1].GetText() != "café froid 😞" || ex[1].GetLabels()[0] != "negative" {
		t.Fatalf("tsv: %v", ex)
	}

	jsonl := write(t, "train.jsonl", `{"text": "a scary night", "label": "thriller"}
{"text": "a thriller with a love story", "label": ["thriller", "romance"]}
`)
	ds, err = readDataset(jsonl, pb.Task_TASK_CLASSIFICATION, plain)
	if err != nil {
		t.Fatal(err)
	}
	ex = ds.GetClassificationExamples().GetExamples()
	if len(ex) != 2 || len(ex[1].GetLabels()) != 2 || ex[0].GetLabels()[0] != "thriller" {
		t.Fatalf("jsonl: %v", ex)
	}

	ner := write(t, "ner.jsonl", `{"tokens": ["Alice", "Smith", "works"], "tags": ["B-PER", "I-PER", "O"]}`)
	ds, err = readDataset(ner, pb.Task_TASK_TOKEN_CLASSIFICATION, plain)
	if err != nil {
		t.Fatal(err)
	}
	if tex := ds.GetTokenExamples().GetExamples(); len(tex) != 1 || tex[0].GetTags()[1] != "I-PER" {
		t.Fatalf("ner: %v", tex)
	}
}

func TestReadCSVLikeThePythonCLI(t *testing.T) {
	csv := write(t, "intents.csv", "\ufeffutterance,intent\n\"hi, there\",greet\n\"two\nlines\",\"a | b\"\n")
	cols := columns{text: "utterance", label: "intent", multiLabel: true}
	ds, err := readDataset(csv, pb.Task_TASK_CLASSIFICATION, cols)
	if err != nil {
		t.Fatal(err)
	}
	ex := ds.GetClassificationExamples().GetExamples()
	if len(ex) != 2 || ex[0].GetText() != "hi, there" || ex[1].GetText() != "two\nlines" ||
		len(ex[1].GetLabels()) != 2 || ex[1].GetLabels()[1] != "b" {
		t.Fatalf("csv: %v", ex)
	}
	if _, err := readDataset(csv, pb.Task_TASK_CLASSIFICATION, plain); err == nil {
		t.Fatal("csv without the named columns: no error")
	}
}

func TestFlagsReadTheEnvironmentAndOldNames(t *testing.T) {
	t.Setenv("TUNESERVE_MODEL", "from-env")
	t.Setenv("TUNESERVE_TARGET", "old:1")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	model := fs.String("model", "", "")
	epochs := fs.Int("epochs", 0, "")
	fs.String("target", "", "")
	if err := parse(fs, []string{"--epochs", "4"}); err != nil {
		t.Fatal(err)
	}
	if *model != "from-env" || *epochs != 4 || !isSet(fs, "target") || isSet(fs, "server") {
		t.Fatalf("model %q epochs %d", *model, *epochs)
	}
	if code := run([]string{"--model", "m", "--train", "x.csv", "--promotion-policy", "promote-always"}); code != 2 {
		t.Fatalf("an unknown policy: exit %d, want 2", code)
	}
}

func TestReadDatasetErrors(t *testing.T) {
	for _, c := range []struct {
		name, content string
		task          pb.Task
	}{
		{"no-header.tsv", "the show was great\tpositive\n", pb.Task_TASK_CLASSIFICATION},
		{"bad.jsonl", `{"text": "x", "label": 3}`, pb.Task_TASK_CLASSIFICATION},
		{"ner.jsonl", `{"tokens": ["a", "b"], "tags": ["O"]}`, pb.Task_TASK_TOKEN_CLASSIFICATION},
		{"ner.tsv", "text\tlabel\n", pb.Task_TASK_TOKEN_CLASSIFICATION},
	} {
		if _, err := readDataset(write(t, c.name, c.content), c.task, plain); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}
