package dev.tuneserve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.tuneserve.v1.ClassificationExample;
import dev.tuneserve.v1.ClassificationExamples;
import dev.tuneserve.v1.Dataset;
import dev.tuneserve.v1.Hyperparameters;
import dev.tuneserve.v1.JobState;
import dev.tuneserve.v1.PromotionPolicy;
import dev.tuneserve.v1.Task;
import dev.tuneserve.v1.TrainRequest;
import dev.tuneserve.v1.TrainingEvent;
import dev.tuneserve.v1.TrainingJob;
import dev.tuneserve.v1.TrainingStage;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** A real Train job on the live server, followed to the end, then promoted and rolled back. */
@ExtendWith(LiveServer.class)
class LiveTrainingTest {
  private final LiveServer.Info server;

  LiveTrainingTest(LiveServer.Info server) {
    this.server = server;
  }

  /** A fixture TSV (text TAB label, with a header line) as inline classification examples. */
  private Dataset sentiment(String name) throws IOException {
    ClassificationExamples.Builder examples = ClassificationExamples.newBuilder();
    List<String> lines = Files.readAllLines(server.fixtures().resolve(name), StandardCharsets.UTF_8);
    for (String line : lines.subList(1, lines.size())) {
      int tab = line.indexOf('\t');
      if (tab >= 0) {
        examples.addExamples(ClassificationExample.newBuilder()
            .setText(line.substring(0, tab)).addLabels(line.substring(tab + 1).strip()));
      }
    }
    return Dataset.newBuilder().setClassificationExamples(examples).build();
  }

  // A new version of tiny-sentiment, trained on the server, watched to the end, promoted, rolled back.
  @Test
  @Timeout(value = 5, unit = TimeUnit.MINUTES)
  void trainWatchPromoteRollback() throws Exception {
    try (TuneserveClient client = TuneserveClient.newBuilder(server.target()).bearerToken(server.adminToken()).build()) {
      TrainingJob job = client.train(TrainRequest.newBuilder()
          .setModel("tiny-sentiment")
          .setTask(Task.TASK_CLASSIFICATION)
          .setBaseModel(server.tinyBase())
          .setTrainingData(sentiment("sentiment_train.tsv"))
          .setValidationData(sentiment("sentiment_validation.tsv"))
          .setHyperparameters(Hyperparameters.newBuilder()
              .setEpochs(1).setBatchSize(8).setMaxLength(32).setLearningRate(1e-3f))
          .setPromotionPolicy(PromotionPolicy.PROMOTION_POLICY_REGISTER_ONLY)
          .build());
      assertFalse(job.getId().isEmpty(), job.toString());
      assertFalse(TuneserveClient.isFinished(job.getState()), job.toString());

      // An asynchronous watch, closed after its first event: the observer hears CANCELLED.
      CompletableFuture<TrainingEvent> first = new CompletableFuture<>();
      CompletableFuture<Throwable> stopped = new CompletableFuture<>();
      TuneserveClient.Watch early = client.watchTrainingJob(job.getId(), new StreamObserver<>() {
        @Override
        public void onNext(TrainingEvent event) {
          first.complete(event);
        }

        @Override
        public void onError(Throwable t) {
          stopped.complete(t);
        }

        @Override
        public void onCompleted() {
          stopped.complete(null);
        }
      });
      assertEquals(job.getId(), first.get(30, TimeUnit.SECONDS).getJobId());
      early.close();
      Throwable cancelled = stopped.get(30, TimeUnit.SECONDS);
      assertEquals(Status.Code.CANCELLED, Status.fromThrowable(cancelled).getCode(), String.valueOf(cancelled));

      List<TrainingEvent> events = new ArrayList<>();
      try (Stream<TrainingEvent> watch = client.watchTrainingJob(job.getId())) {
        watch.forEach(events::add);
      }
      assertFalse(events.isEmpty());
      events.forEach(e -> assertEquals(job.getId(), e.getJobId(), "event of another job: " + e));
      TrainingEvent last = events.get(events.size() - 1);
      assertEquals(JobState.JOB_STATE_SUCCEEDED, last.getState(), last.toString());
      Set<TrainingStage> stages = EnumSet.noneOf(TrainingStage.class);
      events.forEach(e -> stages.add(e.getStage()));
      assertTrue(stages.contains(TrainingStage.TRAINING_STAGE_TRAINING), "stages " + stages);

      TrainingJob done = client.getTrainingJob(job.getId());
      assertEquals(2, done.getVersion(), done.toString());
      assertFalse(done.getPromoted(), "REGISTER_ONLY promoted the version: " + done);

      // Watching a finished job, asynchronously: one event, then the end of the stream.
      List<TrainingEvent> again = new ArrayList<>();
      CompletableFuture<Void> ended = new CompletableFuture<>();
      client.watchTrainingJob(job.getId(), new StreamObserver<>() {
        @Override
        public void onNext(TrainingEvent event) {
          again.add(event);
        }

        @Override
        public void onError(Throwable t) {
          ended.completeExceptionally(t);
        }

        @Override
        public void onCompleted() {
          ended.complete(null);
        }
      });
      ended.get(30, TimeUnit.SECONDS);
      assertEquals(1, again.size(), again.toString());
      assertEquals(JobState.JOB_STATE_SUCCEEDED, again.get(0).getState());

      assertEquals(2, client.promote("tiny-sentiment", 2).getServingVersion());
      // The swap is effective for the next call.
      assertEquals(2, client.classify("tiny-sentiment", "the book was excellent").getVersion());
      assertEquals(1, client.rollback("tiny-sentiment").getServingVersion());
      assertEquals(1, client.classify("tiny-sentiment", "the book was excellent").getVersion());
      assertThrows(NoEarlierVersionException.class, () -> client.rollback("tiny-sentiment"));
      assertNotNull(client.getModel("tiny-sentiment").getVersionsList().stream()
          .filter(v -> v.getVersion() == 2).findFirst().orElse(null), "version 2 is kept");
    }
  }
}
