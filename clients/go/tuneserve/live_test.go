package tuneserve

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/tuneserve/tuneserve/clients/go/tuneservev1"
)

func dialLive(t *testing.T, opts ...Option) *Client {
	t.Helper()
	srv := needServer(t)
	c, err := Dial(srv.Target, append([]Option{WithBearerToken(srv.AdminToken)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClassify(t *testing.T) {
	c := dialLive(t)
	resp, err := c.Classify(context.Background(), "tiny-sentiment", "the show was great", "our dinner was awful")
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetModel() != "tiny-sentiment" || resp.GetVersion() < 1 || len(resp.GetResults()) != 2 {
		t.Fatalf("unexpected response: %v", resp)
	}
	for _, r := range resp.GetResults() {
		labels := map[string]bool{}
		for _, l := range r.GetLabels() {
			labels[l.GetLabel()] = true
			if l.GetScore() < 0 || l.GetScore() > 1 {
				t.Errorf("score out of [0, 1]: %v", l)
			}
		}
		if !labels["positive"] || !labels["negative"] {
			t.Errorf("labels %v, want positive and negative", r.GetLabels())
		}
	}
}

func TestExtractEntitiesOffsets(t *testing.T) {
	c := dialLive(t)
	texts := []string{
		"José Álvarez visited Zürich with Angela Merkel",
		"東京 Tokyo 🎉 Apple Inc. in Paris",
		"Ünal Öztürk 👩‍👩‍👧 met Barack Obama in Berlin and Paris",
	}
	resp, err := c.ExtractEntities(context.Background(), "tiny-ner", texts...)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResults()) != len(texts) {
		t.Fatalf("%d results for %d texts", len(resp.GetResults()), len(texts))
	}
	shifted := 0 // entities after a multi-byte character, where code point and byte offsets differ
	for i, r := range resp.GetResults() {
		for _, e := range r.GetEntities() {
			bs, be, err := EntityBytes(texts[i], e)
			if err != nil {
				t.Fatalf("%q: %v: %v", texts[i], e, err)
			}
			if texts[i][bs:be] != e.GetText() {
				t.Errorf("%q: entity %v: text[%d:%d] = %q", texts[i], e, bs, be, texts[i][bs:be])
			}
			if bs != int(e.GetStart()) {
				shifted++
			}
		}
	}
	if shifted == 0 {
		t.Fatalf("no entity after a multi-byte character, the offsets were not put to the test: %v", resp)
	}
}

func TestListAndGetModels(t *testing.T) {
	c := dialLive(t)
	ctx := context.Background()
	models, err := c.ListModels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tasks := map[string]pb.Task{}
	for _, m := range models {
		tasks[m.GetName()] = m.GetTask()
	}
	if tasks["tiny-sentiment"] != pb.Task_TASK_CLASSIFICATION || tasks["tiny-ner"] != pb.Task_TASK_TOKEN_CLASSIFICATION {
		t.Fatalf("models: %v", models)
	}
	m, err := c.GetModel(ctx, "tiny-ner")
	if err != nil {
		t.Fatal(err)
	}
	if m.GetServingVersion() != 1 || len(m.GetVersions()) != 1 || !m.GetVersions()[0].GetServing() {
		t.Fatalf("tiny-ner: %v", m)
	}
}

// attempts counts the RPC attempts the client makes, retries included.
type attempts struct{ n atomic.Int32 }

func (a *attempts) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (a *attempts) HandleRPC(_ context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.Begin); ok {
		a.n.Add(1)
	}
}
func (a *attempts) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (a *attempts) HandleConn(context.Context, stats.ConnStats)                       {}

func TestUnknownModelIsNotFoundWithoutRetry(t *testing.T) {
	counter := &attempts{}
	c := dialLive(t, WithDialOptions(grpc.WithStatsHandler(counter)))
	_, err := c.Classify(context.Background(), "no-such-model", "text")
	if status.Code(err) != codes.NotFound {
		t.Fatalf("got %v, want NOT_FOUND", err)
	}
	if n := counter.n.Load(); n != 1 {
		t.Fatalf("%d attempts, want 1 (NOT_FOUND is not retried)", n)
	}
	if _, err := c.GetModel(context.Background(), "no-such-model"); status.Code(err) != codes.NotFound {
		t.Fatalf("GetModel: got %v, want NOT_FOUND", err)
	}
}

func TestTrainNeedsToken(t *testing.T) {
	srv := needServer(t)
	c, err := Dial(srv.Target)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Train(context.Background(), &pb.TrainRequest{Model: "x", Task: pb.Task_TASK_CLASSIFICATION})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("got %v, want UNAUTHENTICATED", err)
	}
}

// sentiment reads a fixture TSV (text<TAB>label, with a header line).
func sentiment(t *testing.T, name string) *pb.Dataset {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(live.Fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	var examples []*pb.ClassificationExample
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		text, label, ok := strings.Cut(line, "\t")
		if i == 0 || !ok {
			continue
		}
		examples = append(examples, &pb.ClassificationExample{Text: text, Labels: []string{label}})
	}
	return &pb.Dataset{Source: &pb.Dataset_ClassificationExamples{
		ClassificationExamples: &pb.ClassificationExamples{Examples: examples},
	}}
}

// A new version of tiny-sentiment trained on the server, followed to the end, promoted, rolled back.
func TestTrainWatchPromoteRollback(t *testing.T) {
	srv := needServer(t)
	c := dialLive(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	job, err := c.Train(ctx, &pb.TrainRequest{
		Model:          "tiny-sentiment",
		Task:           pb.Task_TASK_CLASSIFICATION,
		BaseModel:      srv.TinyBase,
		TrainingData:   sentiment(t, "sentiment_train.tsv"),
		ValidationData: sentiment(t, "sentiment_validation.tsv"),
		Hyperparameters: &pb.Hyperparameters{
			Epochs: proto.Int32(1), BatchSize: proto.Int32(8), MaxLength: proto.Int32(32), LearningRate: proto.Float32(1e-3),
		},
		PromotionPolicy: pb.PromotionPolicy_PROMOTION_POLICY_REGISTER_ONLY,
	})
	if err != nil {
		t.Fatal(err)
	}
	if job.GetId() == "" || Finished(job.GetState()) {
		t.Fatalf("job: %v", job)
	}
	var last *pb.TrainingEvent
	stages := map[pb.TrainingStage]bool{}
	for ev, err := range c.WatchTrainingJob(ctx, job.GetId()) {
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		if ev.GetJobId() != job.GetId() {
			t.Fatalf("event of another job: %v", ev)
		}
		stages[ev.GetStage()] = true
		last = ev
	}
	if last == nil || last.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("last event: %v", last)
	}
	if !stages[pb.TrainingStage_TRAINING_STAGE_TRAINING] {
		t.Errorf("no TRAINING stage among %v", stages)
	}
	done, err := c.GetTrainingJob(ctx, job.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if done.GetVersion() != 2 || done.GetPromoted() {
		t.Fatalf("finished job: %v", done)
	}

	m, err := c.Promote(ctx, "tiny-sentiment", 2)
	if err != nil || m.GetServingVersion() != 2 {
		t.Fatalf("promote: %v, %v", m, err)
	}
	// The swap is effective for the next call.
	if resp, err := c.Classify(ctx, "tiny-sentiment", "the book was excellent"); err != nil || resp.GetVersion() != 2 {
		t.Fatalf("classify after promote: %v, %v", resp, err)
	}
	m, err = c.Rollback(ctx, "tiny-sentiment")
	if err != nil || m.GetServingVersion() != 1 {
		t.Fatalf("rollback: %v, %v", m, err)
	}
	if _, err := c.Rollback(ctx, "tiny-sentiment"); !errors.Is(err, ErrNoEarlierVersion) {
		t.Fatalf("second rollback: got %v, want ErrNoEarlierVersion", err)
	}
}
