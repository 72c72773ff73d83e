// Package tuneserve is a Go client of the tuneserve gRPC API: inference (Classify, ExtractEntities),
// the model registry (ListModels, GetModel, Promote, Rollback) and retraining (Train,
// WatchTrainingJob). The generated stubs of package tuneservev1 remain available on Client for every
// RPC and request field not covered here.
//
//	c, err := tuneserve.Dial("dns:///tuneserve.example:50051", tuneserve.WithCAFile("ca.pem"),
//		tuneserve.WithBearerToken(os.Getenv("TUNESERVE_TOKEN")))
//	if err != nil { ... }
//	defer c.Close()
//	resp, err := c.Classify(ctx, "sentiment", "the show was great")
package tuneserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	"google.golang.org/grpc"

	pb "github.com/tuneserve/tuneserve/clients/go/tuneservev1"
)

// Client is safe for concurrent use. Errors are gRPC status errors: read their code with
// status.Code(err) (NOT_FOUND for an unknown model, INVALID_ARGUMENT, UNAUTHENTICATED, ...).
type Client struct {
	conn *grpc.ClientConn
	// The generated stubs, for the RPCs and request fields the methods below do not cover.
	Inference pb.InferenceServiceClient
	Models    pb.ModelServiceClient
	Training  pb.TrainingServiceClient
}

// ErrNoEarlierVersion is returned by Rollback when the model keeps no version below its serving one.
var ErrNoEarlierVersion = errors.New("tuneserve: no earlier version to roll back to")

// Dial creates a client of the server(s) at target, a gRPC target: "host:port", or
// "dns:///host:port" to balance over every address the name resolves to. It does not wait for a
// connection: the first call does.
func Dial(target string, opts ...Option) (*Client, error) {
	cfg := defaults()
	for _, opt := range opts {
		if err := opt(cfg); err != nil {
			return nil, err
		}
	}
	conn, err := grpc.NewClient(target, cfg.dialOptions()...)
	if err != nil {
		return nil, fmt.Errorf("tuneserve: %w", err)
	}
	return &Client{
		conn:      conn,
		Inference: pb.NewInferenceServiceClient(conn),
		Models:    pb.NewModelServiceClient(conn),
		Training:  pb.NewTrainingServiceClient(conn),
	}, nil
}

// Close closes the connections; calls in flight fail with CANCELED.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the underlying connection (for the health service, say).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Classify labels texts with the serving version of model: one result per text, labels by score.
func (c *Client) Classify(ctx context.Context, model string, texts ...string) (*pb.ClassifyResponse, error) {
	return c.Inference.Classify(ctx, &pb.ClassifyRequest{Model: model, Texts: texts})
}

// ExtractEntities finds the entities of texts with the serving version of model. Entity start and
// end are code point offsets; ByteOffsets converts them to indices into the Go string.
func (c *Client) ExtractEntities(ctx context.Context, model string, texts ...string) (*pb.ExtractEntitiesResponse, error) {
	return c.Inference.ExtractEntities(ctx, &pb.ExtractEntitiesRequest{Model: model, Texts: texts})
}

// ListModels returns every model of the registry (all pages).
func (c *Client) ListModels(ctx context.Context) ([]*pb.Model, error) {
	var models []*pb.Model
	token := ""
	for {
		resp, err := c.Models.ListModels(ctx, &pb.ListModelsRequest{PageToken: token})
		if err != nil {
			return nil, err
		}
		models = append(models, resp.GetModels()...)
		if token = resp.GetNextPageToken(); token == "" {
			return models, nil
		}
	}
}

// GetModel returns one model with its versions.
func (c *Client) GetModel(ctx context.Context, name string) (*pb.Model, error) {
	resp, err := c.Models.GetModel(ctx, &pb.GetModelRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetModel(), nil
}

// Promote makes version the serving version of model.
func (c *Client) Promote(ctx context.Context, model string, version int64) (*pb.Model, error) {
	resp, err := c.Models.SetServingVersion(ctx, &pb.SetServingVersionRequest{Name: model, Version: version})
	if err != nil {
		return nil, err
	}
	return resp.GetModel(), nil
}

// Rollback serves the newest kept version of model below the serving one (ErrNoEarlierVersion if
// there is none).
func (c *Client) Rollback(ctx context.Context, model string) (*pb.Model, error) {
	m, err := c.GetModel(ctx, model)
	if err != nil {
		return nil, err
	}
	var target int64
	for _, v := range m.GetVersions() {
		if v.GetVersion() < m.GetServingVersion() && v.GetVersion() > target {
			target = v.GetVersion()
		}
	}
	if target == 0 {
		return nil, fmt.Errorf("%w: %s serves version %d", ErrNoEarlierVersion, model, m.GetServingVersion())
	}
	return c.Promote(ctx, model, target)
}

// Train submits a training job and returns it (QUEUED or RUNNING); follow it with WatchTrainingJob.
func (c *Client) Train(ctx context.Context, req *pb.TrainRequest) (*pb.TrainingJob, error) {
	resp, err := c.Training.Train(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.GetJob(), nil
}

// GetTrainingJob returns a job's current state.
func (c *Client) GetTrainingJob(ctx context.Context, jobID string) (*pb.TrainingJob, error) {
	resp, err := c.Training.GetTrainingJob(ctx, &pb.GetTrainingJobRequest{JobId: jobID})
	if err != nil {
		return nil, err
	}
	return resp.GetJob(), nil
}

// CancelTrainingJob cancels a queued or running job.
func (c *Client) CancelTrainingJob(ctx context.Context, jobID string) (*pb.TrainingJob, error) {
	resp, err := c.Training.CancelTrainingJob(ctx, &pb.CancelTrainingJobRequest{JobId: jobID})
	if err != nil {
		return nil, err
	}
	return resp.GetJob(), nil
}

// WatchTrainingJob yields the events of a job (state, stage, progress, metrics) until it ends
// (SUCCEEDED, FAILED or CANCELLED), ctx is done or the stream fails; a failure is yielded once, with
// a nil event, as the last item. Stopping the loop early ends the stream.
//
//	for ev, err := range c.WatchTrainingJob(ctx, job.GetId()) {
//		if err != nil { return err }
//		fmt.Println(ev.GetState(), ev.GetStage(), ev.GetMessage())
//	}
func (c *Client) WatchTrainingJob(ctx context.Context, jobID string) iter.Seq2[*pb.TrainingEvent, error] {
	return func(yield func(*pb.TrainingEvent, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.Training.WatchTrainingJob(ctx, &pb.WatchTrainingJobRequest{JobId: jobID})
		if err != nil {
			yield(nil, err)
			return
		}
		for {
			resp, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					yield(nil, err)
				}
				return
			}
			if !yield(resp.GetEvent(), nil) {
				return
			}
		}
	}
}

// Finished reports whether a job in this state has ended.
func Finished(s pb.JobState) bool {
	return s == pb.JobState_JOB_STATE_SUCCEEDED || s == pb.JobState_JOB_STATE_FAILED || s == pb.JobState_JOB_STATE_CANCELLED
}
