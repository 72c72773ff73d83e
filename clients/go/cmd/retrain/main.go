// Command retrain fine-tunes a model on a tuneserve server from local files and follows the job to the
// end: exit status 0 when it succeeds, 1 when it fails or is cancelled, 2 on bad usage.
//
//	TUNESERVE_TOKEN=... go run ./cmd/retrain -target dns:///tuneserve:50051 -model reviews \
//		-base sentence-transformers/all-MiniLM-L6-v2 -train train.tsv -validation valid.tsv -epochs 3
//
// The token (an admin token) comes from TUNESERVE_TOKEN, never from the command line.
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tuneserve/tuneserve/clients/go/tuneserve"
	pb "github.com/tuneserve/tuneserve/clients/go/tuneservev1"
)

func main() { os.Exit(run()) }

func run() int {
	var (
		target       = flag.String("target", envOr("TUNESERVE_TARGET", "localhost:50051"), "server: host:port or dns:///host:port (env TUNESERVE_TARGET)")
		caFile       = flag.String("ca-file", "", "CA bundle (PEM) of the server certificate: speak TLS")
		model        = flag.String("model", "", "model to train a new version of (required)")
		task         = flag.String("task", "classification", "classification or ner")
		base         = flag.String("base", "", "base model: a Hugging Face name or a folder on the server (required)")
		train        = flag.String("train", "", "training examples: .tsv (text, label columns) or .jsonl (required)")
		validation   = flag.String("validation", "", "validation examples, same formats (default: split from -train by the server)")
		epochs       = flag.Int("epochs", 0, "epochs (0: server default)")
		batchSize    = flag.Int("batch-size", 0, "batch size (0: server default)")
		maxLength    = flag.Int("max-length", 0, "max tokens per text (0: server default)")
		lr           = flag.Float64("learning-rate", 0, "learning rate (0: server default)")
		multiLabel   = flag.Bool("multi-label", false, "classification with any number of labels per text")
		registerOnly = flag.Bool("register-only", false, "register the new version without promoting it, even if better")
		timeout      = flag.Duration("timeout", 2*time.Hour, "give up (and cancel the job) after this long")
	)
	flag.Parse()
	if *model == "" || *base == "" || *train == "" || flag.NArg() > 0 {
		flag.Usage()
		return 2
	}
	req := &pb.TrainRequest{Model: *model, BaseModel: *base, MultiLabel: *multiLabel, Hyperparameters: &pb.Hyperparameters{}}
	switch *task {
	case "classification":
		req.Task = pb.Task_TASK_CLASSIFICATION
	case "ner":
		req.Task = pb.Task_TASK_TOKEN_CLASSIFICATION
	default:
		fmt.Fprintf(os.Stderr, "retrain: -task %q: want classification or ner\n", *task)
		return 2
	}
	var err error
	if req.TrainingData, err = readDataset(*train, req.Task); err != nil {
		fmt.Fprintf(os.Stderr, "retrain: %v\n", err)
		return 2
	}
	if *validation != "" {
		if req.ValidationData, err = readDataset(*validation, req.Task); err != nil {
			fmt.Fprintf(os.Stderr, "retrain: %v\n", err)
			return 2
		}
	}
	hp := req.Hyperparameters
	if *epochs > 0 {
		hp.Epochs = proto.Int32(int32(*epochs))
	}
	if *batchSize > 0 {
		hp.BatchSize = proto.Int32(int32(*batchSize))
	}
	if *maxLength > 0 {
		hp.MaxLength = proto.Int32(int32(*maxLength))
	}
	if *lr > 0 {
		hp.LearningRate = proto.Float32(float32(*lr))
	}
	if *registerOnly {
		req.PromotionPolicy = pb.PromotionPolicy_PROMOTION_POLICY_REGISTER_ONLY
	}

	opts := []tuneserve.Option{}
	if token := os.Getenv("TUNESERVE_TOKEN"); token != "" {
		opts = append(opts, tuneserve.WithBearerToken(token))
	}
	if *caFile != "" {
		opts = append(opts, tuneserve.WithCAFile(*caFile))
	}
	c, err := tuneserve.Dial(*target, opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "retrain: %v\n", err)
		return 1
	}
	defer c.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	job, err := c.Train(ctx, req)
	if err != nil {
		fmt.Fprintf(os.Stderr, "retrain: Train: %v\n", err)
		return 1
	}
	fmt.Printf("job %s: model %s, %s\n", job.GetId(), job.GetModel(), job.GetState())

	var last *pb.TrainingEvent
	for ev, err := range c.WatchTrainingJob(ctx, job.GetId()) {
		if err != nil {
			fmt.Fprintf(os.Stderr, "retrain: watching job %s: %v\n", job.GetId(), err)
			if ctx.Err() != nil { // interrupted or timed out: do not leave the job running
				cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer ccancel()
				if _, err := c.CancelTrainingJob(cctx, job.GetId()); err == nil {
					fmt.Fprintf(os.Stderr, "retrain: job %s cancelled\n", job.GetId())
				}
			}
			return 1
		}
		last = ev
		fmt.Println(describe(ev))
	}

	final, err := c.GetTrainingJob(context.Background(), job.GetId())
	if err != nil {
		fmt.Fprintf(os.Stderr, "retrain: %v\n", err)
		return 1
	}
	switch final.GetState() {
	case pb.JobState_JOB_STATE_SUCCEEDED:
		fmt.Printf("succeeded: %s version %d, %s %s (baseline version %d: %s); promoted: %v (%s)\n",
			final.GetModel(), final.GetVersion(), final.GetPrimaryMetric(), metrics(final.GetNewMetrics()),
			final.GetBaselineVersion(), metrics(final.GetBaselineMetrics()), final.GetPromoted(), final.GetPromotionReason())
		return 0
	default:
		msg := final.GetError()
		if msg == "" && last != nil {
			msg = last.GetMessage()
		}
		fmt.Fprintf(os.Stderr, "retrain: job %s %s: %s\n", final.GetId(), final.GetState(), msg)
		return 1
	}
}

func describe(ev *pb.TrainingEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-9s %-10s", ev.GetTime().AsTime().Format(time.TimeOnly),
		strings.TrimPrefix(ev.GetState().String(), "JOB_STATE_"), strings.TrimPrefix(ev.GetStage().String(), "TRAINING_STAGE_"))
	if p := ev.GetProgress(); p.GetTotalSteps() > 0 {
		fmt.Fprintf(&b, " step %d/%d epoch %.2f loss %.4f", p.GetStep(), p.GetTotalSteps(), p.GetEpoch(), p.GetLoss())
	}
	if len(ev.GetMetrics()) > 0 {
		b.WriteString(" " + metrics(ev.GetMetrics()))
	}
	if ev.GetMessage() != "" {
		b.WriteString(" " + ev.GetMessage())
	}
	return b.String()
}

func metrics(m map[string]float64) string {
	parts := []string{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%.4f", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
