package dev.tuneserve;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.grpc.Status;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/** TLS and mutual TLS against live servers of their own (clients/testserver.py with the server's TLS flags). */
@ExtendWith(LiveServer.class)
class LiveTlsTest {
  @TempDir
  Path dir;

  private final String token = LiveServer.randomToken();

  /** testserver.py with this admin token and these server flags. */
  private LiveServer.Running serve(String... serverArgs) {
    List<String> args = new ArrayList<>(List.of("--admin-token", token, "--"));
    args.addAll(List.of(serverArgs));
    return LiveServer.start(LiveServer.Python.find().path(), args.toArray(String[]::new));
  }

  /** A client that gives up at once: a refused handshake is UNAVAILABLE, and retrying it would only wait. */
  private static TuneserveClient.Builder once(String target) {
    return TuneserveClient.newBuilder(target).withoutRetry().timeout(Duration.ofSeconds(10));
  }

  @Test
  void tlsWithCaFile() throws Exception {
    Pki pki = new Pki(dir);
    try (LiveServer.Running server = serve("--tls-cert", pki.serverCert.toString(), "--tls-key", pki.serverKey.toString())) {
      String target = server.info().target();
      try (TuneserveClient client = TuneserveClient.newBuilder(target).caFile(pki.ca).build()) {
        assertEquals(1, client.classify("tiny-sentiment", "the show was great").getResultsCount());
      }
      try (TuneserveClient plain = once(target).build()) {
        assertEquals(Status.Code.UNAVAILABLE, LiveClientTest.code(() -> plain.classify("tiny-sentiment", "x")));
      }
      try (TuneserveClient untrusting = once(target).tls().build()) { // the system CAs do not know the test CA
        assertEquals(Status.Code.UNAVAILABLE, LiveClientTest.code(() -> untrusting.classify("tiny-sentiment", "x")));
      }
    }
  }

  @Test
  void mutualTlsWithToken() throws Exception {
    Pki pki = new Pki(dir);
    try (LiveServer.Running server = serve("--tls-cert", pki.serverCert.toString(), "--tls-key",
        pki.serverKey.toString(), "--tls-client-ca", pki.ca.toString())) {
      String target = server.info().target();
      try (TuneserveClient client = TuneserveClient.newBuilder(target)
          .caFile(pki.ca).clientCertificate(pki.clientCert, pki.clientKey).bearerToken(token).build()) {
        assertEquals(1, client.classify("tiny-sentiment", "the show was great").getResultsCount());
        // The admin token goes over TLS (a no-op promotion, past the token check).
        assertEquals(1, client.promote("tiny-ner", 1).getServingVersion());
      }
      try (TuneserveClient noToken = TuneserveClient.newBuilder(target)
          .caFile(pki.ca).clientCertificate(pki.clientCert, pki.clientKey).build()) {
        assertEquals(Status.Code.UNAUTHENTICATED, LiveClientTest.code(() -> noToken.promote("tiny-ner", 1)));
      }
      try (TuneserveClient noCertificate = once(target).caFile(pki.ca).build()) {
        assertEquals(Status.Code.UNAVAILABLE, LiveClientTest.code(() -> noCertificate.classify("tiny-sentiment", "x")));
      }
    }
  }
}
