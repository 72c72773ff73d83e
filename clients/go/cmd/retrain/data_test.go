package main

import (
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

func TestReadDataset(t *testing.T) {
	tsv := write(t, "train.tsv", "label\ttext\npositive\tthe show was great\n\nnegative\tcafé froid 😞\r\n")
	ds, err := readDataset(tsv, pb.Task_TASK_CLASSIFICATION)
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
	ds, err = readDataset(jsonl, pb.Task_TASK_CLASSIFICATION)
	if err != nil {
		t.Fatal(err)
	}
	ex = ds.GetClassificationExamples().GetExamples()
	if len(ex) != 2 || len(ex[1].GetLabels()) != 2 || ex[0].GetLabels()[0] != "thriller" {
		t.Fatalf("jsonl: %v", ex)
	}

	ner := write(t, "ner.jsonl", `{"tokens": ["Alice", "Smith", "works"], "tags": ["B-PER", "I-PER", "O"]}`)
	ds, err = readDataset(ner, pb.Task_TASK_TOKEN_CLASSIFICATION)
	if err != nil {
		t.Fatal(err)
	}
	if tex := ds.GetTokenExamples().GetExamples(); len(tex) != 1 || tex[0].GetTags()[1] != "I-PER" {
		t.Fatalf("ner: %v", tex)
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
		if _, err := readDataset(write(t, c.name, c.content), c.task); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}
