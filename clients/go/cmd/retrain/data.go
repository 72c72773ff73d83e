package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	pb "github.com/tuneserve/tuneserve/clients/go/tuneservev1"
)

// readDataset reads a local file into inline examples: for classification a .tsv with a header line
// naming the "text" and "label" columns, or a .jsonl of {"text": ..., "label": "pos" or ["a", "b"]};
// for NER a .jsonl of {"tokens": [...], "tags": [...]}.
func readDataset(path string, task pb.Task) (*pb.Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	ext := strings.ToLower(filepath.Ext(path))

	switch {
	case task == pb.Task_TASK_CLASSIFICATION && ext == ".tsv":
		var out pb.ClassificationExamples
		textCol, labelCol := -1, -1
		for n := 1; sc.Scan(); n++ {
			cells := strings.Split(strings.TrimRight(sc.Text(), "\r"), "\t")
			if n == 1 {
				for i, c := range cells {
					switch strings.TrimSpace(c) {
					case "text":
						textCol = i
					case "label":
						labelCol = i
					}
				}
				if textCol < 0 || labelCol < 0 {
					return nil, fmt.Errorf("%s: the header line must name a text and a label column", path)
				}
				continue
			}
			if strings.TrimSpace(sc.Text()) == "" {
				continue
			}
			if len(cells) <= max(textCol, labelCol) {
				return nil, fmt.Errorf("%s:%d: %d cells", path, n, len(cells))
			}
			out.Examples = append(out.Examples, &pb.ClassificationExample{
				Text: cells[textCol], Labels: []string{strings.TrimSpace(cells[labelCol])},
			})
		}
		return classification(&out, sc.Err())

	case task == pb.Task_TASK_CLASSIFICATION && ext == ".jsonl":
		var out pb.ClassificationExamples
		err := eachJSON(sc, path, func(line []byte) error {
			var row struct {
				Text  string          `json:"text"`
				Label json.RawMessage `json:"label"`
			}
			if err := json.Unmarshal(line, &row); err != nil {
				return err
			}
			var labels []string
			if err := json.Unmarshal(row.Label, &labels); err != nil {
				var one string
				if err := json.Unmarshal(row.Label, &one); err != nil {
					return fmt.Errorf("label: a string or a list of strings")
				}
				labels = []string{one}
			}
			out.Examples = append(out.Examples, &pb.ClassificationExample{Text: row.Text, Labels: labels})
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
	return nil, fmt.Errorf("%s: expected .tsv or .jsonl for classification, .jsonl for ner", path)
}

func classification(out *pb.ClassificationExamples, err error) (*pb.Dataset, error) {
	if err != nil {
		return nil, err
	}
	return &pb.Dataset{Source: &pb.Dataset_ClassificationExamples{ClassificationExamples: out}}, nil
}

func eachJSON(sc *bufio.Scanner, path string, row func([]byte) error) error {
	for n := 1; sc.Scan(); n++ {
		line := []byte(strings.TrimSpace(sc.Text()))
		if len(line) == 0 {
			continue
		}
		if err := row(line); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}
