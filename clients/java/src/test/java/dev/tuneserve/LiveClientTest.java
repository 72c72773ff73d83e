package dev.tuneserve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.tuneserve.v1.ClassificationResult;
import dev.tuneserve.v1.ClassifyRequest;
import dev.tuneserve.v1.ClassifyResponse;
import dev.tuneserve.v1.Entity;
import dev.tuneserve.v1.EntityResult;
import dev.tuneserve.v1.ExtractEntitiesResponse;
import dev.tuneserve.v1.LabelScore;
import dev.tuneserve.v1.Model;
import dev.tuneserve.v1.Task;
import dev.tuneserve.v1.TrainRequest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.function.Executable;

/** The client against a live server with tiny models (clients/testserver.py): inference, models, auth, errors. */
@ExtendWith(LiveServer.class)
class LiveClientTest {
  private final LiveServer.Info server;
  private final AtomicInteger attempts = new AtomicInteger();
  private TuneserveClient client;

  LiveClientTest(LiveServer.Info server) {
    this.server = server;
  }

  @BeforeEach
  void dial() {
    client = TuneserveClient.newBuilder(server.target())
        .bearerToken(server.adminToken())
        .customizeChannel(b -> b.intercept(Attempts.counting(attempts)))
        .build();
  }

  @AfterEach
  void close() {
    client.close();
  }

  static Status.Code code(Executable call) {
    return Status.fromThrowable(assertThrows(StatusRuntimeException.class, call)).getCode();
  }

  private static void assertSentiment(ClassificationResult r) {
    Set<String> labels = r.getLabelsList().stream().map(LabelScore::getLabel).collect(Collectors.toSet());
    assertEquals(Set.of("positive", "negative"), labels);
    double sum = 0;
    float previous = Float.MAX_VALUE;
    for (LabelScore l : r.getLabelsList()) {
      assertTrue(l.getScore() >= 0 && l.getScore() <= 1, "score out of [0, 1]: " + l);
      assertTrue(l.getScore() <= previous, "labels not sorted by score: " + r);
      previous = l.getScore();
      sum += l.getScore();
    }
    assertEquals(1.0, sum, 1e-4, "softmax scores of a single-label model sum to 1: " + r);
  }

  @Test
  void classify() {
    ClassifyResponse resp = client.classify("tiny-sentiment", "the show was great", "our dinner was awful");
    assertEquals("tiny-sentiment", resp.getModel());
    assertTrue(resp.getVersion() >= 1, "version " + resp.getVersion());
    assertEquals(2, resp.getResultsCount());
    resp.getResultsList().forEach(LiveClientTest::assertSentiment);
    assertEquals(1, attempts.get());
  }

  @Test
  void classifyAsync() throws Exception {
    List<CompletableFuture<ClassifyResponse>> futures = List.of(
        client.classifyAsync("tiny-sentiment", "a wonderful film"),
        client.classifyAsync("tiny-sentiment", "a dull book", "a fine meal"));
    CompletableFuture.allOf(futures.toArray(CompletableFuture[]::new)).get(30, TimeUnit.SECONDS);
    assertEquals(1, futures.get(0).get().getResultsCount());
    assertEquals(2, futures.get(1).get().getResultsCount());
    futures.get(1).get().getResultsList().forEach(LiveClientTest::assertSentiment);

    // A failed call fails the future with the call's status.
    ExecutionException e = assertThrows(ExecutionException.class,
        () -> client.classifyAsync("no-such-model", "text").get(30, TimeUnit.SECONDS));
    assertEquals(Status.Code.NOT_FOUND, Status.fromThrowable(e.getCause()).getCode());
  }

  @Test
  void rawStubWithRequestFields() {
    ClassifyResponse resp = client.inference()
        .withDeadlineAfter(10, TimeUnit.SECONDS)
        .classify(ClassifyRequest.newBuilder().setModel("tiny-sentiment").addTexts("fine").setTopK(1).build());
    assertEquals(1, resp.getResults(0).getLabelsCount());
  }

  @Test
  void extractEntitiesOffsets() throws Exception {
    List<String> texts = List.of(
        "José Álvarez visited Zürich with Angela Merkel",
        "東京 Tokyo 🎉 Apple Inc. in Paris",
        "Ünal Öztürk 👩‍👩‍👧 met Barack Obama in Berlin and Paris");
    ExtractEntitiesResponse resp = client.extractEntities("tiny-ner", texts);
    assertEquals("tiny-ner", resp.getModel());
    assertEquals(texts.size(), resp.getResultsCount());
    int entities = 0;
    int shifted = 0; // entities after a surrogate pair, where code point and UTF-16 offsets differ
    for (int i = 0; i < texts.size(); i++) {
      String text = texts.get(i);
      for (Entity e : resp.getResults(i).getEntitiesList()) {
        Offsets.Span span = Offsets.of(text, e);
        assertEquals(e.getText(), text.substring(span.start(), span.end()), text + ": " + e);
        assertFalse(e.getLabel().isEmpty() || e.getLabel().startsWith("B-"), "label " + e.getLabel());
        entities++;
        if (span.start() != e.getStart()) {
          shifted++;
        }
      }
    }
    assertTrue(entities > 0, "no entity at all: " + resp);
    assertTrue(shifted > 0, "no entity after a surrogate pair, the offsets were not put to the test: " + resp);

    ExtractEntitiesResponse async = client.extractEntitiesAsync("tiny-ner", texts.get(0)).get(30, TimeUnit.SECONDS);
    EntityResult first = async.getResults(0);
    assertEquals(resp.getResults(0).getEntitiesList(), first.getEntitiesList());
  }

  @Test
  void unknownModelIsNotFoundWithoutRetry() {
    assertEquals(Status.Code.NOT_FOUND, code(() -> client.classify("no-such-model", "text")));
    assertEquals(1, attempts.get(), "NOT_FOUND is not retried");
    assertEquals(Status.Code.NOT_FOUND, code(() -> client.extractEntities("no-such-model", "text")));
    assertEquals(Status.Code.NOT_FOUND, code(() -> client.getModel("no-such-model")));
  }

  @Test
  void badRequestsAreInvalidArgument() {
    assertEquals(Status.Code.INVALID_ARGUMENT, code(() -> client.classify("tiny-sentiment")));
    assertEquals(1, attempts.get(), "INVALID_ARGUMENT is not retried");
    assertEquals(Status.Code.INVALID_ARGUMENT, code(() -> client.extractEntities("tiny-ner")));
    // A model of the other task.
    assertEquals(Status.Code.INVALID_ARGUMENT, code(() -> client.classify("tiny-ner", "text")));
    assertEquals(Status.Code.INVALID_ARGUMENT, code(() -> client.inference().classify(
        ClassifyRequest.newBuilder().setModel("tiny-sentiment").addTexts("x").setTopK(-1).build())));
  }

  @Test
  void listAndGetModels() {
    Map<String, Model> models = client.listModels().stream()
        .collect(Collectors.toMap(Model::getName, Function.identity()));
    assertEquals(Task.TASK_CLASSIFICATION, models.get("tiny-sentiment").getTask(), models.toString());
    assertEquals(Task.TASK_TOKEN_CLASSIFICATION, models.get("tiny-ner").getTask(), models.toString());

    Model ner = client.getModel("tiny-ner");
    assertEquals(1, ner.getServingVersion());
    assertEquals(1, ner.getVersionsCount());
    assertTrue(ner.getVersions(0).getServing());
    assertTrue(ner.getVersions(0).getLabelsList().contains("O"), ner.toString());
  }

  @Test
  void privilegedCallsNeedTheAdminToken() {
    TrainRequest train = TrainRequest.newBuilder().setModel("x").setTask(Task.TASK_CLASSIFICATION).build();
    try (TuneserveClient anonymous = TuneserveClient.newBuilder(server.target()).build();
        TuneserveClient wrong = TuneserveClient.newBuilder(server.target()).bearerToken("not-the-token").build()) {
      for (TuneserveClient c : List.of(anonymous, wrong)) {
        assertEquals(Status.Code.UNAUTHENTICATED, code(() -> c.train(train)));
        assertEquals(Status.Code.UNAUTHENTICATED, code(() -> c.promote("tiny-ner", 1)));
        assertEquals(Status.Code.UNAUTHENTICATED, code(() -> c.cancelTrainingJob("no-such-job")));
        // Inference and reads stay open.
        assertEquals(2, c.classify("tiny-sentiment", "good", "bad").getResultsCount());
        assertFalse(c.listModels().isEmpty());
      }
    }
    // With the token, past the check: setting the version that already serves is a no-op.
    assertEquals(1, client.promote("tiny-ner", 1).getServingVersion());
    assertEquals(Status.Code.NOT_FOUND, code(() -> client.getTrainingJob("no-such-job")));
  }

  @Test
  void rollbackWithoutEarlierVersion() {
    NoEarlierVersionException e = assertThrows(NoEarlierVersionException.class, () -> client.rollback("tiny-ner"));
    assertTrue(e.getMessage().contains("tiny-ner serves version 1"), e.getMessage());
    assertNotEquals(0, client.getModel("tiny-ner").getServingVersion());
  }
}
