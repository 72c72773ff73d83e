package dev.tuneserve;

import dev.tuneserve.v1.Entity;

/**
 * Converts the entity offsets of ExtractEntities to Java string indices.
 *
 * <p>The server counts Unicode code points: {@code start} and {@code end} (exclusive) index the text as a
 * Python string would. A Java {@link String} indexes UTF-16 code units, where a character outside the Basic
 * Multilingual Plane (most emoji, rarer CJK ideographs) is two {@code char}s, a surrogate pair. Accented
 * letters and common CJK characters are one code unit, so the two only differ after such a character:
 *
 * <pre>{@code
 * String text = "🎉 Paris";                          // the server says Paris is [2, 7)
 * Offsets.Span span = Offsets.of(text, entity);       // [3, 8)
 * text.substring(span.start(), span.end());           // "Paris"
 * }</pre>
 */
public final class Offsets {
  private Offsets() {}

  /** A range of UTF-16 indices of a string, {@code end} exclusive, as {@link String#substring(int, int)} takes. */
  public record Span(int start, int end) {
    /** The part of {@code text} this span covers. */
    public String of(String text) {
      return text.substring(start, end);
    }
  }

  /**
   * Converts the code point offsets {@code [start, end)} over {@code text} into UTF-16 indices.
   *
   * @throws IndexOutOfBoundsException if {@code start < 0}, {@code end < start}, or the span runs past the
   *     code points of {@code text}
   */
  public static Span toUtf16(CharSequence text, int start, int end) {
    if (start < 0 || end < start) {
      throw new IndexOutOfBoundsException("tuneserve: invalid span [" + start + ", " + end + ")");
    }
    int length = text.length();
    int i = 0; // UTF-16 index of code point n
    int n = 0;
    int utf16Start = -1;
    while (true) {
      if (n == start) {
        utf16Start = i;
      }
      if (n == end) {
        return new Span(utf16Start, i);
      }
      if (i >= length) {
        throw new IndexOutOfBoundsException(
            "tuneserve: span [" + start + ", " + end + ") beyond the " + n + " code points of the text");
      }
      // A surrogate pair is one code point; an unpaired surrogate counts as one, as in String.codePointCount.
      if (Character.isHighSurrogate(text.charAt(i++)) && i < length && Character.isLowSurrogate(text.charAt(i))) {
        i++;
      }
      n++;
    }
  }

  /** {@link #toUtf16} for an entity that ExtractEntities found in {@code text}. */
  public static Span of(CharSequence text, Entity entity) {
    return toUtf16(text, entity.getStart(), entity.getEnd());
  }

  /** The part of {@code text} that {@code entity} covers (equal to {@code entity.getText()}). */
  public static String substring(String text, Entity entity) {
    return of(text, entity).of(text);
  }
}
