package dev.tuneserve;

import java.time.Duration;

/**
 * gRPC's built-in retry, as the client configures it: on UNAVAILABLE and RESOURCE_EXHAUSTED, up to
 * {@code maxAttempts} attempts in all (gRPC caps this at 5), waiting a random time between 0 and the current
 * backoff (jitter), which starts at {@code initialBackoff} and is multiplied by {@code multiplier} up to
 * {@code maxBackoff}. Train is retried on RESOURCE_EXHAUSTED only (a full job queue), so a job is never
 * submitted twice.
 */
public record RetryPolicy(int maxAttempts, Duration initialBackoff, Duration maxBackoff, double multiplier) {
  /** Used unless the builder says otherwise: 5 attempts, backoff from 100 ms, doubling, up to 2 s. */
  public static final RetryPolicy DEFAULT = new RetryPolicy(5, Duration.ofMillis(100), Duration.ofSeconds(2), 2);

  public RetryPolicy {
    if (maxAttempts < 2
        || initialBackoff == null
        || initialBackoff.isNegative()
        || initialBackoff.isZero()
        || maxBackoff == null
        || maxBackoff.compareTo(initialBackoff) < 0
        || !(multiplier > 0)) {
      throw new IllegalArgumentException("tuneserve: invalid retry policy " + maxAttempts + " attempts, backoff "
          + initialBackoff + " to " + maxBackoff + " x" + multiplier);
    }
  }
}
