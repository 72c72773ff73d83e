package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	pb "github.com/tuneserve/tuneserve/clients/go/tuneservev1"
)

// columns says how to read a classification table: its column names, and whether a label cell holds
// several labels split on "|" (multi-label).
type columns struct {
	text, label string
	multiLabel  bool
}

// readDataset reads a local file into inline examples, as the Python CLI does: for classification a
// .tsv (cells split on tabs, no quoting) or .csv (RFC 4180 quoting) with a header line naming the text
// and label columns, or a .jsonl of {"text": ..., "label": "pos" or ["a", "b"]}; for NER a .jsonl of
// {"tokens": [...], "tags": [...]}.
func readDataset(path string, task pb.Task, cols columns) (*pb.Dataset, error) {
	ext := strings.ToLower(filepath.Ext(path))
	if task == pb.Task_TASK_CLASSIFICATION && (ext == ".tsv" || ext == ".csv") {
		return readTable(path, ext, cols)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)

	switch {
	case task == pb.Task_TASK_CLASSIFICATION && ext == ".jsonl":
		var out pb.ClassificationExamples
		err := eachJSON(sc, path, func(line []byte) error {
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(line, &fields); err != nil {
				return err
			}
			var text string
			if err := json.Unmarshal(fields[cols.text], &text); err != nil {
				return fmt.Errorf("%s: a string", cols.text)
			}
			var labels []string
			if err := json.Unmarshal(fields[cols.label], &labels); err != nil {
				var one string
				if err := json.Unmarshal(fields[cols.label], &one); err != nil {
					return fmt.Errorf("%s: a string or a list of strings", cols.label)
				}
				labels = labelsOf(one, cols.multiLabel)
			}
			out.Examples = append(out.Examples, &pb.ClassificationExample{Text: text, Labels: labels})
			return nil
		})
		return classification(&out, err)

	case task == pb.Task_TASK_TOKEN_CLASSIFICATION && ext == ".jsonl":
		var out pb.TokenExamples
		err := eachJSON(sc, path, func(line []byte) error {
			var row struct {
				Tokens []string `json:"tokens"`
				Tags   []string `json:"tags"`
			}
			if err := json.Unmarshal(line, &row); err != nil {
				return err
			}
			if len(row.Tokens) != len(row.Tags) {
				return fmt.Errorf("%d tokens, %d tags", len(row.Tokens), len(row.Tags))
			}
			out.Examples = append(out.Examples, &pb.TokenExample{Tokens: row.Tokens, Tags: row.Tags})
			return nil
		})
		if err != nil {
			return nil, err
		}
		return &pb.Dataset{Source: &pb.Dataset_TokenExamples{TokenExamples: &out}}, nil
	}
	return nil, fmt.Errorf("%s: expected .csv, .tsv or .jsonl for classification, .jsonl for ner", path)
}

// readTable reads a .tsv or .csv file with a header line.
func readTable(path, ext string, cols columns) (*pb.Dataset, error) {
	rows, err := tableRows(path, ext)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: empty file", path)
	}
	textCol, labelCol := -1, -1
	for i, c := range rows[0].cells {
		switch strings.TrimSpace(strings.TrimPrefix(c, "\ufeff")) {
		case cols.text:
			textCol = i
		case cols.label:
			labelCol = i
		}
	}
	if textCol < 0 || labelCol < 0 {
		return nil, fmt.Errorf("%s: the header line must name a %q and a %q column (-text-column, -label-column)", path, cols.text, cols.label)
	}
	var out pb.ClassificationExamples
	for _, row := range rows[1:] {
		if len(row.cells) <= max(textCol, labelCol) {
			return nil, fmt.Errorf("%s:%d: %d cells", path, row.line, len(row.cells))
		}
		out.Examples = append(out.Examples, &pb.ClassificationExample{
			Text: row.cells[textCol], Labels: labelsOf(row.cells[labelCol], cols.multiLabel),
		})
	}
	return classification(&out, nil)
}

type row struct {
	line  int
	cells []string
}

// tableRows reads the non-blank rows of a .tsv (split on tabs, no quoting, as in GLUE) or a .csv (RFC
// 4180 quoting: a quoted cell may hold commas and line breaks).
func tableRows(path, ext string) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []row
	if ext == ".tsv" {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for n := 1; sc.Scan(); n++ {
			if line := strings.TrimRight(sc.Text(), "\r"); strings.TrimSpace(line) != "" {
				rows = append(rows, row{n, strings.Split(line, "\t")})
			}
		}
		return rows, sc.Err()
	}
	r := csv.NewReader(bufio.NewReader(f))
	r.FieldsPerRecord = -1
	for {
		cells, err := r.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		rows = append(rows, row{line, cells})
	}
}

// labelsOf is a label cell's labels: the cell, or with multiLabel its parts split on "|".
func labelsOf(cell string, multiLabel bool) []string {
	if !multiLabel {
		return []string{strings.TrimSpace(cell)}
	}
	labels := []string{}
	for _, l := range strings.Split(cell, "|") {
		if l = strings.TrimSpace(l); l != "" {
			labels = append(labels, l)
		}
	}
	return labels
}

func classification(out *pb.ClassificationExamples, err error) (*pb.Dataset, error) {
	if err != nil {
		return nil, err
	}
	return &pb.Dataset{Source: &pb.Dataset_ClassificationExamples{ClassificationExamples: out}}, nil
}

func eachJSON(sc *bufio.Scanner, path string, row func([]byte) error) error {
	for n := 1; sc.Scan(); n++ {
		line := []byte(strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\ufeff")))
		if len(line) == 0 {
			continue
		}
		if err := row(line); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}
