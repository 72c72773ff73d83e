package dev.tuneserve;

import io.grpc.CallCredentials;
import io.grpc.Metadata;
import io.grpc.SecurityLevel;
import io.grpc.Status;
import java.util.concurrent.Executor;

/** Sends {@code authorization: Bearer <token>} with every call; never over plaintext when TLS was asked for. */
final class BearerToken extends CallCredentials {
  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private final String value;
  private final boolean requirePrivacy;

  BearerToken(String token, boolean requirePrivacy) {
    this.value = "Bearer " + token;
    this.requirePrivacy = requirePrivacy;
  }

  @Override
  public void applyRequestMetadata(RequestInfo info, Executor executor, MetadataApplier applier) {
    if (requirePrivacy && info.getSecurityLevel() != SecurityLevel.PRIVACY_AND_INTEGRITY) {
      applier.fail(Status.UNAUTHENTICATED.withDescription(
          "tuneserve: the bearer token is only sent over TLS, and this connection is not"));
      return;
    }
    Metadata headers = new Metadata();
    headers.put(AUTHORIZATION, value);
    applier.apply(headers);
  }
}
