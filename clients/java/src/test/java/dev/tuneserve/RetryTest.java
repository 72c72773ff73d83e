package dev.tuneserve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.tuneserve.v1.ClassifyRequest;
import dev.tuneserve.v1.ClassifyResponse;
import dev.tuneserve.v1.InferenceServiceGrpc;
import dev.tuneserve.v1.Task;
import dev.tuneserve.v1.TrainRequest;
import dev.tuneserve.v1.TrainResponse;
import dev.tuneserve.v1.TrainingJob;
import dev.tuneserve.v1.TrainingServiceGrpc;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.UnaryOperator;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The client's own retries, deadline and token. A live tuneserve server cannot be made to answer UNAVAILABLE
 * or RESOURCE_EXHAUSTED on demand, so these use a port nobody listens on, and a stand-in server that fails
 * a set number of calls with a set code (as the Go client's options_test.go does); everything the real server
 * does is tested against it in the Live*Test classes.
 */
class RetryTest {
  private static final RetryPolicy FAST = new RetryPolicy(5, Duration.ofMillis(10), Duration.ofMillis(50), 2);

  private Server server;

  @AfterEach
  void stop() throws InterruptedException {
    if (server != null) {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  @Test
  void unreachableServerIsUnavailableAfterTheRetries() throws IOException {
    AtomicInteger attempts = new AtomicInteger();
    Duration timeout = Duration.ofSeconds(20);
    try (TuneserveClient client = TuneserveClient.newBuilder("dns:///127.0.0.1:" + freePort())
        .timeout(timeout)
        .customizeChannel(b -> b.intercept(Attempts.counting(attempts)))
        .build()) {
      long start = System.nanoTime();
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> client.classify("m", "text"));
      Duration took = Duration.ofNanos(System.nanoTime() - start);
      assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), e.toString());
      assertEquals(RetryPolicy.DEFAULT.maxAttempts(), attempts.get(), "attempts");
      assertTrue(took.compareTo(timeout) < 0, "gave up after " + took + ", not within the deadline");
    }
  }

  @Test
  void unreachableServerWithoutRetryIsOneAttempt() throws IOException {
    AtomicInteger attempts = new AtomicInteger();
    try (TuneserveClient client = TuneserveClient.newBuilder("127.0.0.1:" + freePort())
        .withoutRetry()
        .customizeChannel(b -> b.intercept(Attempts.counting(attempts)))
        .build()) {
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> client.classify("m", "text"));
      assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
      assertEquals(1, attempts.get());
    }
  }

  /** Fails the first {@code failures} calls with {@code code}; remembers the token and deadline of the last. */
  static final class Flaky {
    final AtomicInteger calls = new AtomicInteger();
    final AtomicReference<String> authorization = new AtomicReference<>();
    final AtomicLong deadlineMillis = new AtomicLong(-1);
    final int failures;
    final Status.Code code;

    Flaky(int failures, Status.Code code) {
      this.failures = failures;
      this.code = code;
    }

    /** The error of this call, or null to answer it. */
    StatusRuntimeException fail() {
      Deadline deadline = Context.current().getDeadline();
      deadlineMillis.set(deadline == null ? -1 : deadline.timeRemaining(TimeUnit.MILLISECONDS));
      return calls.incrementAndGet() <= failures ? Status.fromCode(code).withDescription("try again").asRuntimeException() : null;
    }
  }

  /** Starts the stand-in server and a client of it, with the fast retry policy and these options. */
  private TuneserveClient flakyClient(Flaky flaky, UnaryOperator<TuneserveClient.Builder> options) throws IOException {
    Metadata.Key<String> authorization = Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    ServerInterceptor auth = new ServerInterceptor() {
      @Override
      public <ReqT, RespT> ServerCall.Listener<ReqT> interceptCall(
          ServerCall<ReqT, RespT> call, Metadata headers, ServerCallHandler<ReqT, RespT> next) {
        flaky.authorization.set(headers.get(authorization));
        return next.startCall(call, headers);
      }
    };
    if (server != null) { // a second client of the same stand-in
      return options.apply(TuneserveClient.newBuilder("127.0.0.1:" + server.getPort()).retryPolicy(FAST)).build();
    }
    server = Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
        .addService(ServerInterceptors.intercept(new InferenceServiceGrpc.InferenceServiceImplBase() {
          @Override
          public void classify(ClassifyRequest request, StreamObserver<ClassifyResponse> out) {
            StatusRuntimeException error = flaky.fail();
            if (error != null) {
              out.onError(error);
              return;
            }
            out.onNext(ClassifyResponse.newBuilder().setModel(request.getModel()).build());
            out.onCompleted();
          }
        }, auth))
        .addService(ServerInterceptors.intercept(new TrainingServiceGrpc.TrainingServiceImplBase() {
          @Override
          public void train(TrainRequest request, StreamObserver<TrainResponse> out) {
            StatusRuntimeException error = flaky.fail();
            if (error != null) {
              out.onError(error);
              return;
            }
            out.onNext(TrainResponse.newBuilder().setJob(TrainingJob.newBuilder().setId("j")).build());
            out.onCompleted();
          }
        }, auth))
        .build()
        .start();
    return options.apply(TuneserveClient.newBuilder("127.0.0.1:" + server.getPort()).retryPolicy(FAST)).build();
  }

  private static final TrainRequest TRAIN = TrainRequest.newBuilder().setModel("m").setTask(Task.TASK_CLASSIFICATION).build();

  @Test
  void classifyIsRetriedOnUnavailable() throws IOException {
    Flaky flaky = new Flaky(2, Status.Code.UNAVAILABLE);
    try (TuneserveClient client = flakyClient(flaky, b -> b)) {
      assertEquals("m", client.classify("m", "text").getModel());
      assertEquals(3, flaky.calls.get());
    }
  }

  @Test
  void classifyGivesUpAfterMaxAttempts() throws IOException {
    Flaky flaky = new Flaky(100, Status.Code.RESOURCE_EXHAUSTED);
    try (TuneserveClient client = flakyClient(flaky, b -> b)) {
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> client.classify("m", "text"));
      assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode());
      assertEquals(FAST.maxAttempts(), flaky.calls.get());
    }
  }

  @Test
  void trainIsNotRetriedOnUnavailable() throws IOException {
    Flaky flaky = new Flaky(1, Status.Code.UNAVAILABLE); // the job may have been queued: never submit it twice
    try (TuneserveClient client = flakyClient(flaky, b -> b)) {
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> client.train(TRAIN));
      assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
      assertEquals(1, flaky.calls.get());
    }
  }

  @Test
  void trainIsRetriedOnResourceExhausted() throws IOException {
    Flaky flaky = new Flaky(2, Status.Code.RESOURCE_EXHAUSTED); // a full queue refused the job: safe to resend
    try (TuneserveClient client = flakyClient(flaky, b -> b)) {
      assertEquals("j", client.train(TRAIN).getId());
      assertEquals(3, flaky.calls.get());
    }
  }

  @Test
  void withoutRetryFailsAtOnce() throws IOException {
    Flaky flaky = new Flaky(1, Status.Code.UNAVAILABLE);
    try (TuneserveClient client = flakyClient(flaky, TuneserveClient.Builder::withoutRetry)) {
      assertThrows(StatusRuntimeException.class, () -> client.classify("m", "text"));
      assertEquals(1, flaky.calls.get());
    }
  }

  @Test
  void defaultDeadlineAndToken() throws IOException {
    Flaky flaky = new Flaky(0, Status.Code.OK);
    try (TuneserveClient client = flakyClient(flaky, b -> b.bearerToken("s3cret"))) {
      client.classify("m", "text");
      assertEquals("Bearer s3cret", flaky.authorization.get());
      long left = flaky.deadlineMillis.get();
      assertTrue(left > 25_000 && left <= 30_000, "deadline in " + left + " ms, want about 30 s");

      // A deadline of the caller's wins over the default.
      client.inference().withDeadlineAfter(3, TimeUnit.SECONDS).classify(ClassifyRequest.newBuilder().setModel("m").build());
      assertTrue(flaky.deadlineMillis.get() <= 3_000, "deadline in " + flaky.deadlineMillis.get() + " ms, want 3 s");
      ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();
      try (Context.CancellableContext withDeadline = Context.current().withDeadlineAfter(2, TimeUnit.SECONDS, timer)) {
        withDeadline.run(() -> client.classify("m", "text"));
      } finally {
        timer.shutdownNow();
      }
      assertTrue(flaky.deadlineMillis.get() <= 2_000, "deadline in " + flaky.deadlineMillis.get() + " ms, want 2 s");
    }
    try (TuneserveClient client = flakyClient(flaky, b -> b.timeout(Duration.ZERO))) {
      client.classify("m", "text");
      assertEquals(-1, flaky.deadlineMillis.get(), "a deadline was set with timeout(ZERO)");
      assertEquals(null, flaky.authorization.get(), "a token was sent without bearerToken");
    }
  }
}
