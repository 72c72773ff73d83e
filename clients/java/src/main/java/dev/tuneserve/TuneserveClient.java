package dev.tuneserve;

import com.google.common.util.concurrent.ListenableFuture;
import dev.tuneserve.v1.CancelTrainingJobRequest;
import dev.tuneserve.v1.ClassifyRequest;
import dev.tuneserve.v1.ClassifyResponse;
import dev.tuneserve.v1.ExtractEntitiesRequest;
import dev.tuneserve.v1.ExtractEntitiesResponse;
import dev.tuneserve.v1.GetModelRequest;
import dev.tuneserve.v1.GetTrainingJobRequest;
import dev.tuneserve.v1.InferenceServiceGrpc;
import dev.tuneserve.v1.JobState;
import dev.tuneserve.v1.ListModelsRequest;
import dev.tuneserve.v1.ListModelsResponse;
import dev.tuneserve.v1.Model;
import dev.tuneserve.v1.ModelServiceGrpc;
import dev.tuneserve.v1.ModelVersion;
import dev.tuneserve.v1.SetServingVersionRequest;
import dev.tuneserve.v1.TrainRequest;
import dev.tuneserve.v1.TrainingEvent;
import dev.tuneserve.v1.TrainingJob;
import dev.tuneserve.v1.TrainingServiceGrpc;
import dev.tuneserve.v1.WatchTrainingJobRequest;
import dev.tuneserve.v1.WatchTrainingJobResponse;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ChannelCredentials;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.Context;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.MethodDescriptor;
import io.grpc.TlsChannelCredentials;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;

/**
 * Java client of the tuneserve gRPC API: inference ({@link #classify}, {@link #extractEntities}), the model
 * registry ({@link #listModels}, {@link #getModel}, {@link #promote}, {@link #rollback}) and retraining
 * ({@link #train}, {@link #watchTrainingJob}). The generated stubs ({@link #inference()}, {@link #models()},
 * {@link #training()}, or any stub of package {@code dev.tuneserve.v1} over {@link #channel()}) cover every
 * other RPC and request field, with the same token, deadline and retries.
 *
 * <pre>{@code
 * try (TuneserveClient client = TuneserveClient.newBuilder("dns:///tuneserve.example:50051")
 *     .caFile(Path.of("ca.pem")).bearerToken(System.getenv("TUNESERVE_TOKEN")).build()) {
 *   ClassifyResponse resp = client.classify("sentiment", "the show was great");
 * }
 * }</pre>
 *
 * <p>Thread-safe. Errors are {@link io.grpc.StatusRuntimeException}s: read their code with {@code
 * Status.fromThrowable(e).getCode()} (NOT_FOUND for an unknown model, INVALID_ARGUMENT, UNAUTHENTICATED, ...).
 * A call made with a deadline (a stub's {@code withDeadlineAfter}, or a {@link Context} with one) keeps it;
 * other unary calls get the builder's {@link Builder#timeout} (30 s by default). Streams get none.
 */
public final class TuneserveClient implements AutoCloseable {
  /** The deadline of each unary call that has none, unless {@link Builder#timeout} says otherwise. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(30);

  private static final String PACKAGE = "tuneserve.v1.";

  private final ManagedChannel managed;
  private final Channel channel;
  private final InferenceServiceGrpc.InferenceServiceBlockingStub inference;
  private final InferenceServiceGrpc.InferenceServiceFutureStub inferenceFuture;
  private final ModelServiceGrpc.ModelServiceBlockingStub models;
  private final TrainingServiceGrpc.TrainingServiceBlockingStub training;
  private final TrainingServiceGrpc.TrainingServiceStub trainingAsync;

  private TuneserveClient(ManagedChannel managed, ClientInterceptor defaults) {
    this.managed = managed;
    this.channel = ClientInterceptors.intercept(managed, defaults);
    this.inference = InferenceServiceGrpc.newBlockingStub(channel);
    this.inferenceFuture = InferenceServiceGrpc.newFutureStub(channel);
    this.models = ModelServiceGrpc.newBlockingStub(channel);
    this.training = TrainingServiceGrpc.newBlockingStub(channel);
    this.trainingAsync = TrainingServiceGrpc.newStub(channel);
  }

  /**
   * A builder of a client of the server(s) at {@code target}, a gRPC target: {@code "host:port"}, or {@code
   * "dns:///host:port"} to balance over every address the name resolves to. Building does not wait for a
   * connection: the first call does.
   */
  public static Builder newBuilder(String target) {
    return new Builder(target);
  }

  /** The channel with this client's token, default deadline and retries, for any generated stub. */
  public Channel channel() {
    return channel;
  }

  /** The generated blocking stub of InferenceService (ClassifyRequest fields such as top_k, version, ...). */
  public InferenceServiceGrpc.InferenceServiceBlockingStub inference() {
    return inference;
  }

  /** The generated blocking stub of ModelService (DeleteModelVersion, paging, ...). */
  public ModelServiceGrpc.ModelServiceBlockingStub models() {
    return models;
  }

  /** The generated blocking stub of TrainingService (ListTrainingJobs, ...). */
  public TrainingServiceGrpc.TrainingServiceBlockingStub training() {
    return training;
  }

  /** Labels texts with the serving version of model: one result per text, labels by score. */
  public ClassifyResponse classify(String model, String... texts) {
    return classify(model, Arrays.asList(texts));
  }

  /** {@link #classify(String, String...)} for a list of texts. */
  public ClassifyResponse classify(String model, List<String> texts) {
    return inference.classify(classifyRequest(model, texts));
  }

  /**
   * {@link #classify(String, String...)} without blocking. The future completes on a gRPC thread (chain
   * blocking work with the {@code ...Async} methods); cancelling it cancels the call.
   */
  public CompletableFuture<ClassifyResponse> classifyAsync(String model, String... texts) {
    return toCompletableFuture(inferenceFuture.classify(classifyRequest(model, Arrays.asList(texts))));
  }

  /**
   * Finds the entities of texts with the serving version of model. Entity start and end are code point
   * offsets; {@link Offsets} converts them to indices into the Java string.
   */
  public ExtractEntitiesResponse extractEntities(String model, String... texts) {
    return extractEntities(model, Arrays.asList(texts));
  }

  /** {@link #extractEntities(String, String...)} for a list of texts. */
  public ExtractEntitiesResponse extractEntities(String model, List<String> texts) {
    return inference.extractEntities(extractRequest(model, texts));
  }

  /** {@link #extractEntities(String, String...)} without blocking, like {@link #classifyAsync}. */
  public CompletableFuture<ExtractEntitiesResponse> extractEntitiesAsync(String model, String... texts) {
    return toCompletableFuture(inferenceFuture.extractEntities(extractRequest(model, Arrays.asList(texts))));
  }

  /** Every model of the registry (all pages), sorted by name. */
  public List<Model> listModels() {
    List<Model> all = new ArrayList<>();
    String token = "";
    do {
      ListModelsResponse page = models.listModels(ListModelsRequest.newBuilder().setPageToken(token).build());
      all.addAll(page.getModelsList());
      token = page.getNextPageToken();
    } while (!token.isEmpty());
    return all;
  }

  /** One model with its versions. */
  public Model getModel(String name) {
    return models.getModel(GetModelRequest.newBuilder().setName(name).build()).getModel();
  }

  /** Makes {@code version} the serving version of {@code model} (SetServingVersion); needs an admin token. */
  public Model promote(String model, long version) {
    return models
        .setServingVersion(SetServingVersionRequest.newBuilder().setName(model).setVersion(version).build())
        .getModel();
  }

  /**
   * Serves the newest kept version of {@code model} below the serving one.
   *
   * @throws NoEarlierVersionException if there is none
   */
  public Model rollback(String model) {
    Model current = getModel(model);
    long target = 0;
    for (ModelVersion v : current.getVersionsList()) {
      if (v.getVersion() < current.getServingVersion() && v.getVersion() > target) {
        target = v.getVersion();
      }
    }
    if (target == 0) {
      throw new NoEarlierVersionException(model, current.getServingVersion());
    }
    return promote(model, target);
  }

  /** Submits a training job and returns it (QUEUED or RUNNING); follow it with {@link #watchTrainingJob}. */
  public TrainingJob train(TrainRequest request) {
    return training.train(request).getJob();
  }

  /** A job's current state. */
  public TrainingJob getTrainingJob(String jobId) {
    return training.getTrainingJob(GetTrainingJobRequest.newBuilder().setJobId(jobId).build()).getJob();
  }

  /** Asks a queued or running job to stop; it becomes CANCELLED once its trainer has stopped. */
  public TrainingJob cancelTrainingJob(String jobId) {
    return training.cancelTrainingJob(CancelTrainingJobRequest.newBuilder().setJobId(jobId).build()).getJob();
  }

  /**
   * The events of a job (state, stage, progress, metrics) until it ends (SUCCEEDED, FAILED or CANCELLED). The
   * stream blocks for each event; a failure is thrown from the stream as a {@link
   * io.grpc.StatusRuntimeException}. Close it (try-with-resources) to stop watching early:
   *
   * <pre>{@code
   * try (Stream<TrainingEvent> events = client.watchTrainingJob(job.getId())) {
   *   events.forEach(e -> System.out.println(e.getState() + " " + e.getStage() + " " + e.getMessage()));
   * }
   * }</pre>
   */
  public Stream<TrainingEvent> watchTrainingJob(String jobId) {
    WatchTrainingJobRequest request = WatchTrainingJobRequest.newBuilder().setJobId(jobId).build();
    Context.CancellableContext context = Context.current().withCancellation();
    Iterator<WatchTrainingJobResponse> responses;
    try {
      responses = context.call(() -> training.watchTrainingJob(request));
    } catch (RuntimeException e) {
      context.cancel(e);
      throw e;
    } catch (Exception e) { // Callable.call declares it; the stub throws none checked
      context.cancel(e);
      throw new IllegalStateException(e);
    }
    Iterator<TrainingEvent> events = new Iterator<>() {
      @Override
      public boolean hasNext() {
        return responses.hasNext();
      }

      @Override
      public TrainingEvent next() {
        return responses.next().getEvent();
      }
    };
    Spliterator<TrainingEvent> spliterator =
        Spliterators.spliteratorUnknownSize(events, Spliterator.ORDERED | Spliterator.NONNULL);
    return StreamSupport.stream(spliterator, false).onClose(() -> context.cancel(null));
  }

  /**
   * {@link #watchTrainingJob(String)} without blocking: {@code observer} gets each event, then {@code
   * onCompleted} once the job has ended, or {@code onError} with the failure. Closing the returned handle
   * stops watching (the observer then gets {@code onError} with CANCELLED).
   */
  public Watch watchTrainingJob(String jobId, StreamObserver<TrainingEvent> observer) {
    CompletableFuture<ClientCallStreamObserver<WatchTrainingJobRequest>> call = new CompletableFuture<>();
    trainingAsync.watchTrainingJob(
        WatchTrainingJobRequest.newBuilder().setJobId(jobId).build(),
        new ClientResponseObserver<WatchTrainingJobRequest, WatchTrainingJobResponse>() {
          @Override
          public void beforeStart(ClientCallStreamObserver<WatchTrainingJobRequest> requestStream) {
            call.complete(requestStream);
          }

          @Override
          public void onNext(WatchTrainingJobResponse response) {
            observer.onNext(response.getEvent());
          }

          @Override
          public void onError(Throwable t) {
            observer.onError(t);
          }

          @Override
          public void onCompleted() {
            observer.onCompleted();
          }
        });
    return () -> call.thenAccept(c -> c.cancel("watch closed by the client", null));
  }

  /** A running {@link #watchTrainingJob(String, StreamObserver)}; closing it stops watching. */
  public interface Watch extends AutoCloseable {
    @Override
    void close();
  }

  /** Whether a job in this state has ended. */
  public static boolean isFinished(JobState state) {
    return state == JobState.JOB_STATE_SUCCEEDED
        || state == JobState.JOB_STATE_FAILED
        || state == JobState.JOB_STATE_CANCELLED;
  }

  /** Closes the connections; calls in flight fail with CANCELLED. */
  @Override
  public void close() {
    managed.shutdownNow();
    try {
      managed.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static ClassifyRequest classifyRequest(String model, List<String> texts) {
    return ClassifyRequest.newBuilder().setModel(model).addAllTexts(texts).build();
  }

  private static ExtractEntitiesRequest extractRequest(String model, List<String> texts) {
    return ExtractEntitiesRequest.newBuilder().setModel(model).addAllTexts(texts).build();
  }

  /** A CompletableFuture that follows a ListenableFuture of the future stub, and cancels it when cancelled. */
  static <T> CompletableFuture<T> toCompletableFuture(ListenableFuture<T> future) {
    CompletableFuture<T> result = new CompletableFuture<>() {
      @Override
      public boolean cancel(boolean mayInterruptIfRunning) {
        future.cancel(mayInterruptIfRunning);
        return super.cancel(mayInterruptIfRunning);
      }
    };
    future.addListener(
        () -> {
          try {
            result.complete(future.get()); // done: get() does not block
          } catch (ExecutionException e) {
            result.completeExceptionally(e.getCause());
          } catch (CancellationException e) {
            result.cancel(false);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            result.completeExceptionally(e);
          }
        },
        Runnable::run);
    return result;
  }

  /** Adds the token and the default deadline to the calls of the channel. */
  private static final class Defaults implements ClientInterceptor {
    private final BearerToken token;
    private final Duration timeout;

    Defaults(BearerToken token, Duration timeout) {
      this.token = token;
      this.timeout = timeout;
    }

    @Override
    public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
        MethodDescriptor<ReqT, RespT> method, CallOptions options, Channel next) {
      if (token != null && options.getCredentials() == null) {
        options = options.withCallCredentials(token);
      }
      if (!timeout.isZero()
          && method.getType() == MethodDescriptor.MethodType.UNARY
          && options.getDeadline() == null
          && Context.current().getDeadline() == null) {
        options = options.withDeadlineAfter(timeout.toNanos(), TimeUnit.NANOSECONDS);
      }
      return next.newCall(method, options);
    }
  }

  /** Configures a {@link TuneserveClient}. Without {@link #tls()} or {@link #caFile} the connection is plaintext. */
  public static final class Builder {
    private final String target;
    private boolean tls;
    private Path caFile;
    private Path clientCertFile;
    private Path clientKeyFile;
    private String token;
    private Duration timeout = DEFAULT_TIMEOUT;
    private RetryPolicy retry = RetryPolicy.DEFAULT;
    private boolean roundRobin = true;
    private final List<Consumer<ManagedChannelBuilder<?>>> customizers = new ArrayList<>();

    private Builder(String target) {
      this.target = Objects.requireNonNull(target, "target");
    }

    /** Speaks TLS, trusting the system's root CAs (unless {@link #caFile} is given too). */
    public Builder tls() {
      this.tls = true;
      return this;
    }

    /** Speaks TLS and trusts the server certificates signed by the CAs of this PEM file. */
    public Builder caFile(Path pemFile) {
      this.tls = true;
      this.caFile = Objects.requireNonNull(pemFile, "caFile");
      return this;
    }

    /**
     * Speaks TLS and presents this client certificate (PEM chain) and its PKCS#8 PEM private key, for
     * servers that require mutual TLS.
     */
    public Builder clientCertificate(Path certChainFile, Path privateKeyFile) {
      this.tls = true;
      this.clientCertFile = Objects.requireNonNull(certChainFile, "certChainFile");
      this.clientKeyFile = Objects.requireNonNull(privateKeyFile, "privateKeyFile");
      return this;
    }

    /**
     * Sends {@code authorization: Bearer <token>} with every call. With TLS, the token is never sent over a
     * plaintext connection; without TLS it is (loopback, a sidecar), and can be read on the network.
     * Null or empty: no token.
     */
    public Builder bearerToken(String token) {
      this.token = token;
      return this;
    }

    /** The deadline of each unary call that has none ({@link Duration#ZERO}: none). Default 30 s. */
    public Builder timeout(Duration timeout) {
      if (timeout == null || timeout.isNegative()) {
        throw new IllegalArgumentException("tuneserve: timeout must be >= 0, got " + timeout);
      }
      this.timeout = timeout;
      return this;
    }

    /** Replaces {@link RetryPolicy#DEFAULT}. */
    public Builder retryPolicy(RetryPolicy policy) {
      this.retry = Objects.requireNonNull(policy, "policy");
      return this;
    }

    /** Turns the retries off. */
    public Builder withoutRetry() {
      this.retry = null;
      return this;
    }

    /**
     * Uses one server address at a time instead of round robin over all the addresses the target resolves
     * to (the {@code "dns:///host:port"} target of a headless Kubernetes service, say).
     */
    public Builder pickFirst() {
      this.roundRobin = false;
      return this;
    }

    /** Changes the channel builder before the channel is built: interceptors, keepalive, executor, ... */
    public Builder customizeChannel(Consumer<ManagedChannelBuilder<?>> customizer) {
      customizers.add(Objects.requireNonNull(customizer, "customizer"));
      return this;
    }

    /**
     * Builds the client.
     *
     * @throws UncheckedIOException if a CA, certificate or key file cannot be read or holds no usable PEM
     */
    public TuneserveClient build() {
      ManagedChannelBuilder<?> builder = Grpc.newChannelBuilder(target, credentials())
          .defaultServiceConfig(serviceConfig());
      if (retry != null) {
        builder.enableRetry(); // attempts capped at 5, as in every gRPC implementation
      } else {
        builder.disableRetry();
      }
      customizers.forEach(c -> c.accept(builder));
      boolean hasToken = token != null && !token.isEmpty();
      return new TuneserveClient(builder.build(), new Defaults(hasToken ? new BearerToken(token, tls) : null, timeout));
    }

    private ChannelCredentials credentials() {
      if (!tls) {
        return InsecureChannelCredentials.create();
      }
      TlsChannelCredentials.Builder creds = TlsChannelCredentials.newBuilder();
      try {
        if (caFile != null) {
          creds.trustManager(caFile.toFile());
        }
        if (clientCertFile != null) {
          creds.keyManager(clientCertFile.toFile(), clientKeyFile.toFile());
        }
      } catch (IOException | IllegalArgumentException e) {
        throw new UncheckedIOException(new IOException("tuneserve: TLS files: " + e.getMessage(), e));
      }
      return creds.build();
    }

    /** gRPC's service config: the load balancing policy and the retry policies. */
    Map<String, Object> serviceConfig() {
      Map<String, Object> config = new LinkedHashMap<>();
      if (roundRobin) {
        config.put("loadBalancingConfig", List.of(Map.of("round_robin", Map.of())));
      }
      if (retry != null) {
        config.put("methodConfig", List.of(
            // Train first: the most specific name wins. A job whose submission failed UNAVAILABLE may
            // still have been queued, so only a full queue (the server refused it) is retried.
            Map.of(
                "name", List.of(Map.of("service", PACKAGE + "TrainingService", "method", "Train")),
                "retryPolicy", retryPolicy("RESOURCE_EXHAUSTED")),
            Map.of(
                "name", List.of(
                    Map.of("service", PACKAGE + "InferenceService"),
                    Map.of("service", PACKAGE + "ModelService"),
                    Map.of("service", PACKAGE + "TrainingService")),
                "retryPolicy", retryPolicy("UNAVAILABLE", "RESOURCE_EXHAUSTED"))));
      }
      return config;
    }

    private Map<String, Object> retryPolicy(String... codes) {
      return Map.of(
          "maxAttempts", (double) retry.maxAttempts(),
          "initialBackoff", seconds(retry.initialBackoff()),
          "maxBackoff", seconds(retry.maxBackoff()),
          "backoffMultiplier", retry.multiplier(),
          "retryableStatusCodes", List.of(codes));
    }

    private static String seconds(Duration d) {
      return String.format(java.util.Locale.ROOT, "%.3fs", d.toNanos() / 1e9);
    }
  }
}
