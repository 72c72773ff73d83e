package dev.tuneserve;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it, made with the
 * JDK's keytool. PEM files in {@code dir}: ca.pem, server.pem, server.key, client.pem, client.key (keys in
 * PKCS#8, as both gRPC Java and Python read them).
 */
final class Pki {
  private static final String PASSWORD = "changeit";

  final Path ca;
  final Path serverCert;
  final Path serverKey;
  final Path clientCert;
  final Path clientKey;

  private final Path dir;

  Pki(Path dir) throws IOException, InterruptedException, GeneralSecurityException {
    this.dir = dir;
    keytool("-genkeypair", "-alias", "ca", "-keyalg", "EC", "-groupname", "secp256r1", "-dname", "CN=test CA",
        "-ext", "bc:c", "-validity", "2", "-keystore", "ca.p12");
    keytool("-exportcert", "-rfc", "-alias", "ca", "-keystore", "ca.p12", "-file", "ca.pem");
    ca = dir.resolve("ca.pem");
    serverCert = leaf("server", "san=ip:127.0.0.1", "eku=serverAuth");
    serverKey = key("server");
    clientCert = leaf("client", "eku=clientAuth");
    clientKey = key("client");
  }

  /** A key pair in NAME.p12 and its certificate, signed by the CA, in NAME.pem. */
  private Path leaf(String name, String... extensions) throws IOException, InterruptedException {
    keytool("-genkeypair", "-alias", name, "-keyalg", "EC", "-groupname", "secp256r1", "-dname", "CN=" + name,
        "-validity", "2", "-keystore", name + ".p12");
    keytool("-certreq", "-alias", name, "-keystore", name + ".p12", "-file", name + ".csr");
    List<String> args = new ArrayList<>(List.of("-gencert", "-rfc", "-alias", "ca", "-keystore", "ca.p12",
        "-infile", name + ".csr", "-outfile", name + ".pem", "-validity", "2"));
    for (String ext : extensions) {
      args.addAll(List.of("-ext", ext));
    }
    keytool(args.toArray(String[]::new));
    return dir.resolve(name + ".pem");
  }

  /** The private key of NAME.p12 as NAME.key (PKCS#8 PEM). */
  private Path key(String name) throws IOException, GeneralSecurityException {
    KeyStore store = KeyStore.getInstance("PKCS12");
    try (InputStream in = Files.newInputStream(dir.resolve(name + ".p12"))) {
      store.load(in, PASSWORD.toCharArray());
    }
    PrivateKey key = (PrivateKey) store.getKey(name, PASSWORD.toCharArray());
    String pem = "-----BEGIN PRIVATE KEY-----\n"
        + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(key.getEncoded())
        + "\n-----END PRIVATE KEY-----\n";
    Path file = dir.resolve(name + ".key");
    Files.writeString(file, pem, StandardCharsets.US_ASCII);
    return file;
  }

  private void keytool(String... args) throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "keytool").toString(), "-noprompt",
        "-storetype", "PKCS12", "-storepass", PASSWORD, "-keypass", PASSWORD));
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
    // keytool -certreq and -gencert read and write files here; nothing goes through stdin.
    p.getOutputStream().close();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (p.waitFor() != 0) {
      throw new IOException("keytool " + String.join(" ", args) + " failed:\n" + out);
    }
  }
}
