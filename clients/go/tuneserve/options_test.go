package tuneserve

// The client's own behaviour (retries, deadlines, token) against an in-process gRPC server that fails
// on purpose: a live tuneserve server cannot be made to return UNAVAILABLE on demand.

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/tuneserve/tuneserve/clients/go/tuneservev1"
)

type flaky struct {
	pb.UnimplementedInferenceServiceServer
	pb.UnimplementedTrainingServiceServer
	calls    atomic.Int32
	failures int32 // the first calls that fail
	code     codes.Code
	auth     atomic.Value // the authorization metadata of the last call
	deadline atomic.Value // time left on the last call
}

func (f *flaky) fail(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	f.auth.Store(md.Get("authorization"))
	if d, ok := ctx.Deadline(); ok {
		f.deadline.Store(time.Until(d))
	}
	if f.calls.Add(1) <= f.failures {
		return status.Error(f.code, "try again")
	}
	return nil
}

func (f *flaky) Classify(ctx context.Context, req *pb.ClassifyRequest) (*pb.ClassifyResponse, error) {
	if err := f.fail(ctx); err != nil {
		return nil, err
	}
	return &pb.ClassifyResponse{Model: req.GetModel()}, nil
}

func (f *flaky) Train(ctx context.Context, req *pb.TrainRequest) (*pb.TrainResponse, error) {
	if err := f.fail(ctx); err != nil {
		return nil, err
	}
	return &pb.TrainResponse{Job: &pb.TrainingJob{Id: "j"}}, nil
}

func serveFlaky(t *testing.T, f *flaky, opts ...Option) *Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterInferenceServiceServer(srv, f)
	pb.RegisterTrainingServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	fast := RetryPolicy{MaxAttempts: 4, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Multiplier: 2}
	// A dns:/// target, as for a headless Kubernetes service: resolved and balanced round robin.
	c, err := Dial("dns:///"+lis.Addr().String(), append([]Option{WithRetry(fast)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRetriesUnavailableAndResourceExhausted(t *testing.T) {
	for _, code := range []codes.Code{codes.Unavailable, codes.ResourceExhausted} {
		f := &flaky{failures: 3, code: code}
		c := serveFlaky(t, f)
		if _, err := c.Classify(context.Background(), "m", "x"); err != nil {
			t.Fatalf("%v: %v", code, err)
		}
		if n := f.calls.Load(); n != 4 {
			t.Fatalf("%v: %d calls, want 4", code, n)
		}
	}
}

func TestRetriesGiveUp(t *testing.T) {
	f := &flaky{failures: 10, code: codes.Unavailable}
	c := serveFlaky(t, f)
	if _, err := c.Classify(context.Background(), "m", "x"); status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v, want UNAVAILABLE", err)
	}
	if n := f.calls.Load(); n != 4 {
		t.Fatalf("%d calls, want MaxAttempts = 4", n)
	}
}

func TestNoRetryOfOtherCodesNorWhenOff(t *testing.T) {
	f := &flaky{failures: 1, code: codes.InvalidArgument}
	if _, err := serveFlaky(t, f).Classify(context.Background(), "m", "x"); status.Code(err) != codes.InvalidArgument || f.calls.Load() != 1 {
		t.Fatalf("got %v after %d calls, want INVALID_ARGUMENT after 1", err, f.calls.Load())
	}
	f = &flaky{failures: 1, code: codes.Unavailable}
	if _, err := serveFlaky(t, f, WithoutRetry()).Classify(context.Background(), "m", "x"); status.Code(err) != codes.Unavailable || f.calls.Load() != 1 {
		t.Fatalf("without retry: got %v after %d calls", err, f.calls.Load())
	}
}

// A Train that failed with UNAVAILABLE may have created a job: it is not sent again.
func TestTrainRetriedOnlyWhenQueueFull(t *testing.T) {
	f := &flaky{failures: 1, code: codes.Unavailable}
	if _, err := serveFlaky(t, f).Train(context.Background(), &pb.TrainRequest{}); status.Code(err) != codes.Unavailable || f.calls.Load() != 1 {
		t.Fatalf("UNAVAILABLE: got %v after %d calls", err, f.calls.Load())
	}
	f = &flaky{failures: 2, code: codes.ResourceExhausted}
	if job, err := serveFlaky(t, f).Train(context.Background(), &pb.TrainRequest{}); err != nil || job.GetId() != "j" || f.calls.Load() != 3 {
		t.Fatalf("RESOURCE_EXHAUSTED: got %v, %v after %d calls", job, err, f.calls.Load())
	}
}

func TestDefaultDeadlineAndToken(t *testing.T) {
	f := &flaky{}
	c := serveFlaky(t, f, WithTimeout(5*time.Second), WithBearerToken("t0ken"))
	if _, err := c.Classify(context.Background(), "m", "x"); err != nil {
		t.Fatal(err)
	}
	if left, _ := f.deadline.Load().(time.Duration); left <= 0 || left > 5*time.Second {
		t.Fatalf("deadline: %v left, want at most 5s", left)
	}
	if auth, _ := f.auth.Load().([]string); len(auth) != 1 || auth[0] != "Bearer t0ken" {
		t.Fatalf("authorization metadata: %v", auth)
	}
	// A deadline of the caller's own wins.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c = serveFlaky(t, f, WithTimeout(time.Second))
	if _, err := c.Classify(ctx, "m", "x"); err != nil {
		t.Fatal(err)
	}
	if left, _ := f.deadline.Load().(time.Duration); left < 30*time.Second {
		t.Fatalf("deadline: %v left, want the caller's minute", left)
	}
}

func TestInvalidOptions(t *testing.T) {
	if _, err := Dial("localhost:1", WithRetry(RetryPolicy{MaxAttempts: 1})); err == nil {
		t.Error("a retry policy of 1 attempt: no error")
	}
	if _, err := Dial("localhost:1", WithCAFile("/nonexistent/ca.pem")); err == nil {
		t.Error("a missing CA file: no error")
	}
}
