package dev.tuneserve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.tuneserve.v1.Entity;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class OffsetsTest {
  /** The code point offsets of {@code part} in {@code text}, as the server computes them (Python indices). */
  private static Entity entity(String text, String part) {
    int utf16 = text.indexOf(part);
    assertTrue(utf16 >= 0, part + " not in " + text);
    int start = text.codePointCount(0, utf16);
    return Entity.newBuilder().setText(part).setStart(start).setEnd(start + part.codePointCount(0, part.length())).build();
  }

  @ParameterizedTest
  @CsvSource(delimiter = '|', value = {
      "Angela Merkel visited Paris|Paris", // ASCII: code points and UTF-16 agree
      "José Álvarez visited Zürich|Zürich", // accents: one UTF-16 unit each (precomposed)
      "東京 Tokyo で Apple Inc. in 大阪|大阪", // CJK of the Basic Multilingual Plane: one unit each
      "🎉 Apple Inc. in Paris|Apple Inc.", // emoji: a surrogate pair, so UTF-16 runs one ahead
      "Ünal 👩‍👩‍👧 met Barack Obama|Barack Obama", // ZWJ sequence: 5 code points, 8 UTF-16 units
      "𠮷野家 in Tokyo|𠮷野家", // a CJK ideograph outside the BMP, at the start
      "in Tokyo 𠮷野家|𠮷野家", // ... and at the very end
      "café|é",
  })
  void entityIsTheSubstring(String text, String part) {
    Entity e = entity(text, part);
    Offsets.Span span = Offsets.of(text, e);
    assertEquals(part, text.substring(span.start(), span.end()));
    assertEquals(part, Offsets.substring(text, e));
    assertEquals(part, span.of(text));
    assertEquals(text.indexOf(part), span.start());
  }

  @Test
  void surrogatePairsShiftTheIndices() {
    String text = "🎉🎉 Paris"; // Paris is code points [3, 8), UTF-16 [5, 10)
    assertEquals(new Offsets.Span(5, 10), Offsets.toUtf16(text, 3, 8));
    assertEquals(new Offsets.Span(0, 2), Offsets.toUtf16(text, 0, 1)); // one emoji, both halves
    assertEquals(new Offsets.Span(2, 2), Offsets.toUtf16(text, 1, 1)); // empty span between the emoji
  }

  @Test
  void spansAtTheEnd() {
    String text = "a😀";
    assertEquals(new Offsets.Span(1, 3), Offsets.toUtf16(text, 1, 2));
    assertEquals(new Offsets.Span(3, 3), Offsets.toUtf16(text, 2, 2));
    assertEquals(new Offsets.Span(0, 0), Offsets.toUtf16("", 0, 0));
  }

  @Test
  void unpairedSurrogateIsOneCodePoint() {
    String text = "\uD83Dx"; // a high surrogate without its low half, as String.codePointCount counts it
    assertEquals(new Offsets.Span(1, 2), Offsets.toUtf16(text, 1, 2));
  }

  @ParameterizedTest
  @CsvSource({
      "-1, 2", // negative start
      "3, 2", // end before start
      "0, 9", // end past the 8 code points of the text
      "8, 9",
      "9, 9", // start past the end
  })
  void outOfRange(int start, int end) {
    String text = "naïve 🎉x"; // 8 code points, 9 UTF-16 units: [0, 9) would fit in UTF-16 indices but not here
    IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class, () -> Offsets.toUtf16(text, start, end));
    assertTrue(e.getMessage().contains("[" + start + ", " + end + ")"), e.getMessage());
  }

  @Test
  void outOfRangeEntity() {
    Entity e = Entity.newBuilder().setStart(2).setEnd(5).build();
    assertThrows(IndexOutOfBoundsException.class, () -> Offsets.of("🎉🎉", e));
  }
}
