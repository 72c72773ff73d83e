package dev.tuneserve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.tuneserve.v1.Entity;
import dev.tuneserve.v1.ExtractEntitiesResponse;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** The Java example of the README compiles: it is {@link #example}, line for line. */
class ReadmeExampleTest {
  private static final Path BASEDIR = Path.of(System.getProperty("basedir", System.getProperty("user.dir")));

  @SuppressWarnings("unused") // compiled, not run: it needs a TLS server named tuneserve
  static void example(String text) {
    // README start
    try (TuneserveClient client = TuneserveClient.newBuilder("dns:///tuneserve:50051") // round robin
        .caFile(Path.of("ca.pem")).bearerToken(System.getenv("TUNESERVE_TOKEN")).build()) {
      // Throws a StatusRuntimeException: Status.fromThrowable(e).getCode() == Status.Code.NOT_FOUND, ...
      ExtractEntitiesResponse resp = client.extractEntities("ner", text);
      for (Entity e : resp.getResults(0).getEntitiesList()) {
        Offsets.Span span = Offsets.of(text, e); // code point offsets → String (UTF-16) indices
        System.out.println(e.getLabel() + " " + text.substring(span.start(), span.end()));
      }
    }
    // README end
  }

  /** The non-blank lines of the first ```java block after "## Java client" in the README, stripped. */
  private static List<String> readmeExample() throws IOException {
    String readme = Files.readString(BASEDIR.resolve("../../README.md"), StandardCharsets.UTF_8);
    int section = readme.indexOf("\n## Java client\n");
    assertTrue(section >= 0, "no Java client section in README.md");
    int start = readme.indexOf("```java\n", section) + "```java\n".length();
    int end = readme.indexOf("```", start);
    return lines(readme.substring(start, end));
  }

  private static List<String> lines(String block) {
    return block.lines().map(String::strip).filter(l -> !l.isEmpty()).collect(Collectors.toList());
  }

  @Test
  void readmeExampleIsThisClassesExample() throws IOException {
    String source = Files.readString(
        BASEDIR.resolve("src/test/java/dev/tuneserve/ReadmeExampleTest.java"), StandardCharsets.UTF_8);
    int start = source.indexOf("// README start\n") + "// README start\n".length();
    int end = source.indexOf("    // README end");
    assertEquals(lines(source.substring(start, end)), readmeExample(),
        "README.md's Java example and ReadmeExampleTest.example differ: keep them in sync");
  }
}
