package tuneserve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Option configures a Client in Dial.
type Option func(*config) error

type config struct {
	tls        *tls.Config
	token      string
	timeout    time.Duration
	retry      RetryPolicy
	roundRobin bool
	dialOpts   []grpc.DialOption
}

// RetryPolicy is gRPC's built-in retry: on UNAVAILABLE and RESOURCE_EXHAUSTED, up to MaxAttempts
// attempts in all (gRPC caps this at 5), waiting a random time between 0 and the current backoff
// (jitter), which starts at InitialBackoff and is multiplied by Multiplier up to MaxBackoff.
// Train is retried on RESOURCE_EXHAUSTED only (a full job queue), so a job is never submitted twice.
type RetryPolicy struct {
	MaxAttempts    int
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	Multiplier     float64
}

// DefaultRetryPolicy is used unless WithRetry or WithoutRetry says otherwise.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second, Multiplier: 2}

// DefaultTimeout is the deadline of each unary call whose context has none, unless WithTimeout says
// otherwise. Streams (WatchTrainingJob) get none.
const DefaultTimeout = 30 * time.Second

func defaults() *config {
	return &config{retry: DefaultRetryPolicy, timeout: DefaultTimeout, roundRobin: true}
}

// WithTLS speaks TLS with this configuration (nil: the system's root CAs). Without WithTLS or
// WithCAFile the connection is plaintext.
func WithTLS(c *tls.Config) Option {
	return func(cfg *config) error {
		if c == nil {
			c = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		cfg.tls = c
		return nil
	}
}

// WithCAFile speaks TLS and trusts the server certificates signed by the CAs of this PEM file.
func WithCAFile(path string) Option {
	return func(cfg *config) error {
		pem, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("tuneserve: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tuneserve: CA file %s: no PEM certificate", path)
		}
		if cfg.tls == nil {
			cfg.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		cfg.tls = cfg.tls.Clone()
		cfg.tls.RootCAs = pool
		return nil
	}
}

// WithBearerToken sends "authorization: Bearer <token>" with every call. Use TLS outside loopback:
// on a plaintext connection the token can be read on the network.
func WithBearerToken(token string) Option {
	return func(cfg *config) error {
		cfg.token = token
		return nil
	}
}

// WithTimeout sets the deadline of each unary call whose context has none (0: none).
func WithTimeout(d time.Duration) Option {
	return func(cfg *config) error {
		cfg.timeout = d
		return nil
	}
}

// WithRetry replaces DefaultRetryPolicy.
func WithRetry(p RetryPolicy) Option {
	return func(cfg *config) error {
		if p.MaxAttempts < 2 || p.InitialBackoff <= 0 || p.MaxBackoff < p.InitialBackoff || p.Multiplier <= 0 {
			return fmt.Errorf("tuneserve: invalid retry policy %+v", p)
		}
		cfg.retry = p
		return nil
	}
}

// WithoutRetry turns the retries off.
func WithoutRetry() Option {
	return func(cfg *config) error {
		cfg.retry = RetryPolicy{}
		return nil
	}
}

// WithPickFirst uses one server address at a time instead of round robin over all the addresses
// the target resolves to (a "dns:///host:port" target of a headless Kubernetes service, say).
func WithPickFirst() Option {
	return func(cfg *config) error {
		cfg.roundRobin = false
		return nil
	}
}

// WithDialOptions adds gRPC dial options (interceptors, stats handlers, keepalive, ...).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(cfg *config) error {
		cfg.dialOpts = append(cfg.dialOpts, opts...)
		return nil
	}
}

// serviceConfig is gRPC's JSON service config: the load balancing policy and the retry policies.
func (cfg *config) serviceConfig() string {
	sc := map[string]any{}
	if cfg.roundRobin {
		sc["loadBalancingConfig"] = []any{map[string]any{"round_robin": map[string]any{}}}
	}
	if cfg.retry.MaxAttempts >= 2 {
		policy := func(codes ...string) map[string]any {
			return map[string]any{
				"maxAttempts":          cfg.retry.MaxAttempts,
				"initialBackoff":       seconds(cfg.retry.InitialBackoff),
				"maxBackoff":           seconds(cfg.retry.MaxBackoff),
				"backoffMultiplier":    cfg.retry.Multiplier,
				"retryableStatusCodes": codes,
			}
		}
		sc["methodConfig"] = []any{
			map[string]any{
				"name":        []any{map[string]any{"service": "tuneserve.v1.TrainingService", "method": "Train"}},
				"retryPolicy": policy("RESOURCE_EXHAUSTED"),
			},
			map[string]any{
				"name": []any{
					map[string]any{"service": "tuneserve.v1.InferenceService"},
					map[string]any{"service": "tuneserve.v1.ModelService"},
					map[string]any{"service": "tuneserve.v1.TrainingService"},
				},
				"retryPolicy": policy("UNAVAILABLE", "RESOURCE_EXHAUSTED"),
			},
		}
	}
	out, _ := json.Marshal(sc)
	return string(out)
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

func (cfg *config) dialOptions() []grpc.DialOption {
	opts := []grpc.DialOption{grpc.WithDefaultServiceConfig(cfg.serviceConfig())}
	if cfg.tls != nil {
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg.tls)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if cfg.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: cfg.token, secure: cfg.tls != nil}))
	}
	if cfg.timeout > 0 {
		opts = append(opts, grpc.WithChainUnaryInterceptor(deadline(cfg.timeout)))
	}
	return append(opts, cfg.dialOpts...)
}

type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

// deadline gives each unary call whose context has no deadline one of d.
func deadline(d time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}
