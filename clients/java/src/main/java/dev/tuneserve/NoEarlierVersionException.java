package dev.tuneserve;

/** Thrown by {@link TuneserveClient#rollback} when the model keeps no version below its serving one. */
public final class NoEarlierVersionException extends IllegalStateException {
  private static final long serialVersionUID = 1L;

  NoEarlierVersionException(String model, long servingVersion) {
    super("tuneserve: no earlier version to roll back to: " + model + " serves version " + servingVersion);
  }
}
