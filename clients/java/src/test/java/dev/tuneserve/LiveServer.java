package dev.tuneserve;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * A live tuneserve server with tiny models for the tests: {@code clients/testserver.py}, run with the Python
 * of {@code TUNESERVE_PYTHON} (default {@code <repo>/.venv/bin/python}, from {@code make install}), started
 * once for all the test classes that use this extension and stopped (by closing its stdin) when they are all
 * done. {@code TUNESERVE_TESTSERVER_CACHE} keeps its tiny models between runs (default: the user cache
 * folder, shared with the Go client's tests). Without that Python the classes are skipped. The server's logs
 * go to {@code target/testserver-*.log}.
 *
 * <p>Test methods and constructors may take a {@link LiveServer} parameter.
 */
public final class LiveServer implements BeforeAllCallback, ParameterResolver {
  /** What testserver.py printed once serving. */
  public record Info(String target, int port, String tinyBase, Path fixtures, String adminToken) {}

  private static final AtomicBoolean SKIP_SAID = new AtomicBoolean();

  private static final Path REPO = Path.of(System.getProperty("basedir", System.getProperty("user.dir")))
      .resolve("../..").normalize();

  @Override
  public void beforeAll(ExtensionContext context) throws Exception {
    Python python = Python.find();
    if (python.path == null && SKIP_SAID.compareAndSet(false, true)) {
      System.err.println(python.skipReason); // once, where a quiet Maven run still shows it
    }
    assumeTrue(python.path != null, python.skipReason);
    context.getRoot().getStore(ExtensionContext.Namespace.GLOBAL)
        .getOrComputeIfAbsent(Running.class, k -> start(python.path, "--admin-token", randomToken()), Running.class);
  }

  @Override
  public boolean supportsParameter(ParameterContext p, ExtensionContext e) {
    return p.getParameter().getType() == Info.class;
  }

  @Override
  public Object resolveParameter(ParameterContext p, ExtensionContext e) {
    return e.getRoot().getStore(ExtensionContext.Namespace.GLOBAL).get(Running.class, Running.class).info;
  }

  /** The Python to run testserver.py with, or why there is none. */
  record Python(Path path, String skipReason) {
    static Python find() {
      String env = System.getenv("TUNESERVE_PYTHON");
      Path python = env != null && !env.isEmpty() ? Path.of(env) : REPO.resolve(".venv/bin/python");
      if (!Files.isExecutable(python)) {
        return new Python(null, "live tests skipped: no Python at " + python
            + " (run `make install` or set TUNESERVE_PYTHON)");
      }
      return new Python(python, null);
    }
  }

  static String randomToken() {
    byte[] token = new byte[16];
    new SecureRandom().nextBytes(token);
    return HexFormat.of().formatHex(token);
  }

  static Path cacheDir() {
    String env = System.getenv("TUNESERVE_TESTSERVER_CACHE");
    if (env != null && !env.isEmpty()) {
      return Path.of(env);
    }
    String xdg = System.getenv("XDG_CACHE_HOME"); // where Go's os.UserCacheDir looks first, on Linux
    Path base = xdg != null && !xdg.isEmpty() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
    return base.resolve("tuneserve").resolve("testserver");
  }

  /**
   * Starts {@code python clients/testserver.py --cache DIR args...} and waits (10 minutes at most: the first
   * start builds the tiny models) for the JSON line it prints once serving.
   */
  static Running start(Path python, String... args) {
    List<String> cmd = new ArrayList<>(List.of(python.toString(),
        REPO.resolve("clients/testserver.py").toString(), "--cache", cacheDir().toString()));
    cmd.addAll(List.of(args));
    Path log;
    Process process;
    try {
      Path target = REPO.resolve("clients/java/target");
      Files.createDirectories(target);
      log = Files.createTempFile(target, "testserver-", ".log");
      process = new ProcessBuilder(cmd).redirectError(log.toFile()).start();
    } catch (IOException e) {
      throw new IllegalStateException("clients/testserver.py did not start: " + e, e);
    }
    Running running = new Running(process, log);
    CompletableFuture<String> line = CompletableFuture.supplyAsync(() -> {
      try {
        BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
        return out.readLine();
      } catch (IOException e) {
        throw new IllegalStateException(e);
      }
    });
    try {
      String json = line.get(10, TimeUnit.MINUTES);
      if (json == null) {
        throw new IllegalStateException("exited before serving");
      }
      JsonObject o = JsonParser.parseString(json).getAsJsonObject();
      running.info = new Info(o.get("target").getAsString(), o.get("port").getAsInt(),
          o.get("tiny_base").getAsString(), Path.of(o.get("fixtures").getAsString()),
          o.get("admin_token").getAsString());
      return running;
    } catch (InterruptedException | ExecutionException | TimeoutException | RuntimeException e) {
      running.close();
      throw new IllegalStateException("clients/testserver.py did not start: " + e + "\n" + running.logTail(), e);
    }
  }

  /** A started testserver.py; closing it closes its stdin, which stops the server. */
  static final class Running implements AutoCloseable {
    private final Process process;
    private final Path log;
    Info info;

    Running(Process process, Path log) {
      this.process = process;
      this.log = log;
    }

    Info info() {
      return info;
    }

    String logTail() {
      try {
        String s = Files.readString(log, StandardCharsets.UTF_8);
        return s.length() > 6000 ? s.substring(s.length() - 6000) : s;
      } catch (IOException e) {
        return "(no logs: " + e + ")";
      }
    }

    @Override
    public void close() {
      try {
        process.getOutputStream().close();
        if (!process.waitFor(60, TimeUnit.SECONDS)) {
          process.destroyForcibly().waitFor();
        }
      } catch (IOException | InterruptedException e) {
        process.destroyForcibly();
      }
    }
  }
}
