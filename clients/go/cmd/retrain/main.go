// Command retrain fine-tunes a model on a tuneserve server from local files and follows the job to the
// end: exit status 0 when it succeeds, 1 when it fails or is cancelled, 2 on bad usage, 130 when
// interrupted (the job goes on; the message says how to cancel it).
//
//	go run ./cmd/retrain --server localhost:50051 --model reviews --task classification \
//		--train train.csv --validation valid.csv --epochs 3
//
// Its flags, environment variables and policy names are the tuneserve CLI's (`tuneserve train --server`):
// every flag also reads TUNESERVE_<FLAG> (--ca-cert: TUNESERVE_CA_CERT), and the base model is the
// server's default (the packaged one) unless --base says otherwise. Prefer TUNESERVE_TOKEN to --token.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tuneserve/tuneserve/clients/go/tuneserve"
	pb "github.com/tuneserve/tuneserve/clients/go/tuneservev1"
)

func main() { os.Exit(run(os.Args[1:])) }

// deprecated flags: the old name -> the flag that replaces it.
var deprecated = map[string]string{"target": "server", "ca-file": "ca-cert", "register-only": "promotion-policy"}

func run(args []string) int {
	fs := flag.NewFlagSet("retrain", flag.ContinueOnError)
	var (
		server       = fs.String("server", "localhost:50051", "HOST:PORT (or dns:///host:port) of a tuneserve server")
		token        = fs.String("token", "", "bearer token for servers that require one (prefer TUNESERVE_TOKEN)")
		caCert       = fs.String("ca-cert", "", "use TLS, trusting this CA certificate (PEM)")
		clientCert   = fs.String("client-cert", "", "client certificate for mutual TLS (PEM)")
		clientKey    = fs.String("client-key", "", "client private key for mutual TLS (PEM)")
		model        = fs.String("model", "", "the model to train a new version of (required)")
		task         = fs.String("task", "", "classification or ner (required for a new model)")
		base         = fs.String("base", "", "base model: a folder or hub id on the server (default: the server's, the packaged one)")
		train        = fs.String("train", "", "training data: .csv, .tsv or .jsonl (classification), .jsonl (ner)")
		validation   = fs.String("validation", "", "validation data, same formats (default: held out from --train by the server)")
		trainURI     = fs.String("train-uri", "", "training data under the server's data root")
		validURI     = fs.String("validation-uri", "", "validation data under the server's data root")
		textColumn   = fs.String("text-column", "text", "text column (classification)")
		labelColumn  = fs.String("label-column", "label", "label column (classification)")
		multiLabel   = fs.Bool("multi-label", false, "classification with several labels per text (cells split on |)")
		epochs       = fs.Int("epochs", 0, "training epochs (0: the server's default)")
		batchSize    = fs.Int("batch-size", 0, "examples per step (0: the server's default)")
		maxLength    = fs.Int("max-length", 0, "maximum tokens per input (0: the server's default)")
		lr           = fs.Float64("learning-rate", 0, "peak learning rate (0: the server's default)")
		quantization = fs.String("quantization", "", "int8-dynamic, int8-static, fp16 or none (default: the server's)")
		policy       = fs.String("promotion-policy", "promote-if-better", "promote-if-better or register-only")
		tolerance    = fs.Float64("promotion-tolerance", 0, "points of the primary metric the new version may lose and still be promoted")
		minimum      = fs.Float64("minimum-metric", -1, "the primary metric a version needs to be promoted (-1: none)")
		timeout      = fs.Duration("timeout", 2*time.Hour, "give up (and cancel the job) after this long")
		target       = fs.String("target", "", "deprecated: --server")
		caFile       = fs.String("ca-file", "", "deprecated: --ca-cert")
		registerOnly = fs.Bool("register-only", false, "deprecated: --promotion-policy register-only")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: retrain --model NAME --train FILE [flags]\n")
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(fs.Output(), "  --%s (env %s, default %q)\n    \t%s\n", f.Name, envName(f.Name), f.DefValue, f.Usage)
		})
	}
	if err := parse(fs, args); err != nil {
		return 2
	}
	if *target != "" && !isSet(fs, "server") {
		*server = *target
	}
	if *caFile != "" && *caCert == "" {
		*caCert = *caFile
	}
	if *registerOnly {
		*policy = "register-only"
	}
	if *model == "" || (*train == "" && *trainURI == "") || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "retrain: --model and --train FILE (or --train-uri) are required")
		fs.Usage()
		return 2
	}
	req := &pb.TrainRequest{Model: *model, BaseModel: *base, MultiLabel: *multiLabel, Hyperparameters: &pb.Hyperparameters{}}
	var ok bool
	if req.Quantization, ok = quantizations[*quantization]; !ok {
		return usage("--quantization %q: want int8-dynamic, int8-static, fp16 or none", *quantization)
	}
	if req.PromotionPolicy, ok = policies[*policy]; !ok {
		return usage("--promotion-policy %q: want promote-if-better or register-only", *policy)
	}
	req.PromotionTolerance = float32(*tolerance)
	if *minimum >= 0 {
		req.MinimumMetric = proto.Float32(float32(*minimum))
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

	opts := []tuneserve.Option{}
	if *token != "" {
		opts = append(opts, tuneserve.WithBearerToken(*token))
	}
	if *clientCert != "" || *clientKey != "" {
		pair, err := tls.LoadX509KeyPair(*clientCert, *clientKey)
		if err != nil {
			return usage("--client-cert and --client-key: %v", err)
		}
		opts = append(opts, tuneserve.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}))
	}
	if *caCert != "" {
		opts = append(opts, tuneserve.WithCAFile(*caCert))
	}
	secure := *caCert != "" || *clientCert != ""
	c, err := tuneserve.Dial(*server, opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "retrain: %v\n", err)
		return 1
	}
	defer c.Close()
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "retrain: %s: %v%s\n", what, err, tlsHint(err, secure))
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	switch *task {
	case "classification":
		req.Task = pb.Task_TASK_CLASSIFICATION
	case "ner":
		req.Task = pb.Task_TASK_TOKEN_CLASSIFICATION
	case "": // an existing model keeps its task: ask it, to read the files its way
		m, err := c.GetModel(ctx, *model)
		if status.Code(err) == codes.NotFound {
			return usage("--task is required for the new model %q", *model)
		} else if err != nil {
			return fail("GetModel", err)
		}
		req.Task = m.GetTask()
	default:
		return usage("--task %q: want classification or ner", *task)
	}
	cols := columns{text: *textColumn, label: *labelColumn, multiLabel: *multiLabel}
	if req.TrainingData, err = dataset(*train, *trainURI, req.Task, cols); err != nil {
		return usage("%v", err)
	}
	if req.ValidationData, err = dataset(*validation, *validURI, req.Task, cols); err != nil {
		return usage("%v", err)
	}
	if *trainURI != "" || *validURI != "" {
		if isSet(fs, "text-column") {
			req.TextColumn = textColumn
		}
		if isSet(fs, "label-column") {
			req.LabelColumn = labelColumn
		}
	}

	job, err := c.Train(ctx, req)
	if err != nil {
		return fail("Train", err)
	}
	fmt.Printf("job %s: model %s, %s\n", job.GetId(), job.GetModel(), job.GetState())

	var last *pb.TrainingEvent
	for ev, err := range c.WatchTrainingJob(ctx, job.GetId()) {
		if err != nil {
			if errors.Is(ctx.Err(), context.Canceled) { // Ctrl-C: stop watching; the job goes on
				at := " --server " + *server
				fmt.Fprintf(os.Stderr, "retrain: interrupted: job %s goes on running on the server. Follow it: tuneserve jobs watch %s%s; cancel it: tuneserve jobs cancel %s%s\n",
					job.GetId(), job.GetId(), at, job.GetId(), at)
				return 130
			}
			fmt.Fprintf(os.Stderr, "retrain: watching job %s: %v\n", job.GetId(), err)
			if ctx.Err() != nil { // --timeout: do not leave the job running
				cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer ccancel()
				if _, err := c.CancelTrainingJob(cctx, job.GetId()); err == nil {
					fmt.Fprintf(os.Stderr, "retrain: job %s cancelled after --timeout %s\n", job.GetId(), *timeout)
				}
			}
			return 1
		}
		last = ev
		fmt.Println(describe(ev))
	}

	final, err := c.GetTrainingJob(context.Background(), job.GetId())
	if err != nil {
		return fail("GetTrainingJob", err)
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

var quantizations = map[string]pb.Quantization{
	"":             pb.Quantization_QUANTIZATION_UNSPECIFIED,
	"int8-dynamic": pb.Quantization_QUANTIZATION_INT8_DYNAMIC,
	"int8-static":  pb.Quantization_QUANTIZATION_INT8_STATIC,
	"fp16":         pb.Quantization_QUANTIZATION_FP16,
	"none":         pb.Quantization_QUANTIZATION_NONE,
}

var policies = map[string]pb.PromotionPolicy{
	"promote-if-better": pb.PromotionPolicy_PROMOTION_POLICY_PROMOTE_IF_BETTER,
	"register-only":     pb.PromotionPolicy_PROMOTION_POLICY_REGISTER_ONLY,
}

// parse reads args, then TUNESERVE_<FLAG> for each flag not on the command line, and warns about
// deprecated flags.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := os.LookupEnv(envName(f.Name)); ok && !set[f.Name] && err == nil {
			if err = fs.Set(f.Name, v); err != nil {
				err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, err)
				fmt.Fprintf(os.Stderr, "retrain: %v\n", err)
			}
		}
	})
	for old, now := range deprecated {
		if set[old] || os.Getenv(envName(old)) != "" {
			fmt.Fprintf(os.Stderr, "retrain: --%s (%s) is deprecated: use --%s (%s)\n", old, envName(old), now, envName(now))
		}
	}
	return err
}

func isSet(fs *flag.FlagSet, name string) bool {
	found := os.Getenv(envName(name)) != ""
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

func envName(flagName string) string {
	return "TUNESERVE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func usage(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "retrain: "+format+"\n", args...)
	return 2
}

// dataset is a local file read into inline examples, or a uri on the server, or nil for neither.
func dataset(path, uri string, task pb.Task, cols columns) (*pb.Dataset, error) {
	switch {
	case path != "" && uri != "":
		return nil, fmt.Errorf("give a file or a uri, not both (%s, %s)", path, uri)
	case uri != "":
		return &pb.Dataset{Source: &pb.Dataset_Uri{Uri: uri}}, nil
	case path != "":
		return readDataset(path, task, cols)
	}
	return nil, nil
}

// tlsHint says what a connection failure most likely means when one side speaks TLS and the other not.
func tlsHint(err error, secure bool) string {
	if status.Code(err) != codes.Unavailable {
		return ""
	}
	msg := strings.ToLower(err.Error())
	if !secure && (strings.Contains(msg, "server preface") || strings.Contains(msg, "frame too large") || strings.Contains(msg, "connection reset")) {
		return " (the server speaks TLS? pass --ca-cert)"
	}
	if secure && (strings.Contains(msg, "handshake") || strings.Contains(msg, "tls:")) {
		return " (the server speaks plaintext, or its certificate is not signed by --ca-cert?)"
	}
	return ""
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
