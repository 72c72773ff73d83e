"""Auth and TLS without a network: token files, the role check, the settings and flags, the TLS files."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import trustme
from click.testing import CliRunner
from pydantic import ValidationError

from tuneserve.server import auth, errors, tls
from tuneserve.server.auth import Authenticator, Role, parse_tokens, read_token_file
from tuneserve.server.cli import build_settings, serve
from tuneserve.server.settings import AuthSettings, ConfigError, Settings, TLSSettings
from tuneserve.v1 import training_pb2

ADMIN, READ = "admin-token-123", "read-token-456"
SET_SERVING = "/tuneserve.v1.ModelService/SetServingVersion"
CLASSIFY = "/tuneserve.v1.InferenceService/Classify"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TUNESERVE_AUTH__ADMIN_TOKENS",
        "TUNESERVE_AUTH__READ_TOKENS",
        "TUNESERVE_AUTH__ADMIN_TOKENS_FILE",
        "TUNESERVE_AUTH__READ_TOKENS_FILE",
        "TUNESERVE_AUTH__REQUIRE_TOKEN_FOR_INFERENCE",
        "TUNESERVE_TLS__CERT_FILE",
        "TUNESERVE_TLS__KEY_FILE",
        "TUNESERVE_TLS__CLIENT_CA_FILE",
    ):
        monkeypatch.delenv(name, raising=False)


def bearer(token: str, scheme: str = "Bearer") -> tuple[tuple[str, str], ...]:
    return (("authorization", f"{scheme} {token}"),)


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
        (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    ],
)
def test_auth_errors_carry_their_status(cls: type[errors.TuneserveError], code: grpc.StatusCode) -> None:
    assert cls("why").code == code and issubclass(cls, errors.TuneserveError)


def test_token_file_parsing(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text(f"# ops team\n\n  {ADMIN}  \r\n\t#{READ} (commented out)\nsecond-token\n")
    assert read_token_file(f, "--admin-tokens-file") == [ADMIN, "second-token"]
    assert parse_tokens(f" {ADMIN}, ,{READ},".split(","), "env", "item") == [ADMIN, READ]
    f.write_text(f"{ADMIN}\nhas space\n")
    with pytest.raises(ConfigError, match=r"tokens, line 2: a token must be printable ASCII") as info:
        read_token_file(f, "--admin-tokens-file")
    assert "has space" not in str(info.value)
    with pytest.raises(ConfigError, match="item 1"):
        parse_tokens(["tökén"], "TUNESERVE_AUTH__ADMIN_TOKENS", "item")


def test_unusable_token_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--read-tokens-file: token file .*nope does not exist"):
        read_token_file(tmp_path / "nope", "--read-tokens-file")
    with pytest.raises(ConfigError, match="cannot read token file"):
        read_token_file(tmp_path, "--read-tokens-file")  # a directory
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_token_file(tmp_path / "binary", "--read-tokens-file")
    (tmp_path / "empty").write_text("# none yet\n\n")
    with pytest.raises(ConfigError, match="holds no token: put one token per line"):
        read_token_file(tmp_path / "empty", "--read-tokens-file")


def test_from_settings_merges_files_and_environment(tmp_path: Path) -> None:
    assert Authenticator.from_settings(AuthSettings()) is None
    assert Authenticator.from_settings(AuthSettings(admin_tokens=" , ")) is None
    with pytest.raises(ConfigError, match="--auth-inference needs tokens"):
        Authenticator.from_settings(AuthSettings(require_token_for_inference=True))
    (tmp_path / "admin").write_text("file-admin\n")
    (tmp_path / "read").write_text(f"file-read\n{ADMIN}\n")
    a = Authenticator.from_settings(
        AuthSettings(
            admin_tokens=ADMIN,
            admin_tokens_file=tmp_path / "admin",
            read_tokens=f"{READ},env-read-2",
            read_tokens_file=tmp_path / "read",
        )
    )
    assert a is not None and a.mode == "privileged"
    roles = {t: a.role_of(t) for t in (ADMIN, "file-admin", READ, "env-read-2", "file-read", "other")}
    assert roles == {
        ADMIN: Role.ADMIN,  # in both lists: admin
        "file-admin": Role.ADMIN,
        READ: Role.READ,
        "env-read-2": Role.READ,
        "file-read": Role.READ,
        "other": None,
    }


def test_which_rpc_needs_what() -> None:
    open_ = Authenticator([ADMIN], [READ], require_token_for_inference=False)
    closed = Authenticator([ADMIN], [READ], require_token_for_inference=True)
    training = training_pb2.DESCRIPTOR.services_by_name["TrainingService"]
    privileged = [f"/tuneserve.v1.TrainingService/{m.name}" for m in training.methods]
    privileged += [SET_SERVING, "/tuneserve.v1.ModelService/DeleteModelVersion", "/tuneserve.v1.X/New"]
    for method in privileged:
        assert open_.needs(method) is Role.ADMIN and closed.needs(method) is Role.ADMIN
    assert len(privileged) == 8
    expected_reads = {
        CLASSIFY,
        "/tuneserve.v1.InferenceService/ExtractEntities",
        "/tuneserve.v1.InferenceService/ClassifyStream",
        "/tuneserve.v1.InferenceService/ExtractEntitiesStream",
        "/tuneserve.v1.ModelService/ListModels",
        "/tuneserve.v1.ModelService/GetModel",
    } | {
        f"/inference.GRPCInferenceService/{m}"
        for m in ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer")
    }
    assert expected_reads == auth.READ_METHODS
    for method in auth.READ_METHODS:
        assert open_.needs(method) is None and closed.needs(method) is Role.READ
    assert closed.mode == "all"


def test_check() -> None:
    a = Authenticator([ADMIN], [READ], require_token_for_inference=True)
    a.check(SET_SERVING, bearer(ADMIN))
    a.check(CLASSIFY, bearer(READ))
    for scheme in ("bearer", "BEARER", "bEArer"):
        a.check(SET_SERVING, bearer(ADMIN, scheme))
    a.check(SET_SERVING, (("x-other", "1"), ("authorization", f"Bearer {ADMIN}".encode())))
    with pytest.raises(errors.PermissionDenied, match="needs an admin token") as info:
        a.check(SET_SERVING, bearer(READ))
    assert READ not in info.value.message
    for metadata in (None, (), bearer(ADMIN, "Basic"), (("authorization", ADMIN),), bearer("")):
        with pytest.raises(errors.Unauthenticated, match=r"send 'authorization: Bearer <token>' metadata"):
            a.check(SET_SERVING, metadata)
    with pytest.raises(errors.Unauthenticated, match="unknown bearer token") as info:
        a.check(CLASSIFY, bearer("guess"))
    assert "guess" not in info.value.message and "a read or admin token" in info.value.message
    # Only the first authorization entry counts.
    with pytest.raises(errors.Unauthenticated):
        a.check(SET_SERVING, (*bearer("guess"), *bearer(ADMIN)))


def test_every_configured_token_is_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit on a match: the time taken does not tell which token (or whether one) matched."""
    a = Authenticator([ADMIN, "a2", "a3"], [READ, "r2"], require_token_for_inference=False)
    compared: list[int] = []
    real = auth.hmac.compare_digest

    def counting(x: bytes, y: bytes) -> bool:
        compared.append(len(x) + len(y))
        return real(x, y)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    for token in (ADMIN, "r2", "unknown", "x" * 1000):
        compared.clear()
        a.role_of(token)
        assert compared == [64] * 5  # every token, as fixed-size digests


def test_auth_and_tls_settings_from_flags_and_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    default = build_settings({})
    assert default.auth == AuthSettings() and not default.auth.configured
    assert default.tls.mode == "off"
    monkeypatch.setenv("TUNESERVE_AUTH__ADMIN_TOKENS", f"{ADMIN},other")
    monkeypatch.setenv("TUNESERVE_AUTH__READ_TOKENS_FILE", "/etc/tuneserve/read.tokens")
    monkeypatch.setenv("TUNESERVE_TLS__CERT_FILE", "/etc/tls/cert.pem")
    monkeypatch.setenv("TUNESERVE_TLS__KEY_FILE", "/etc/tls/key.pem")
    env = build_settings({"auth__admin_tokens_file": None, "tls__client_ca_file": None})
    assert env.auth.admin_tokens.get_secret_value() == f"{ADMIN},other"
    assert env.auth.read_tokens_file == Path("/etc/tuneserve/read.tokens")
    assert ADMIN not in repr(env) and ADMIN not in str(env.model_dump())
    assert env.tls.mode == "tls" and env.tls.cert_file == Path("/etc/tls/cert.pem")
    cli = build_settings(
        {
            "auth__admin_tokens_file": tmp_path / "admin",
            "auth__require_token_for_inference": True,
            "tls__client_ca_file": tmp_path / "ca.pem",
        }
    )
    assert cli.auth.admin_tokens_file == tmp_path / "admin"
    assert cli.auth.admin_tokens.get_secret_value() == f"{ADMIN},other"  # the environment's
    assert cli.auth.require_token_for_inference and cli.tls.mode == "mtls"


def test_incomplete_tls_settings_are_rejected() -> None:
    with pytest.raises(ValidationError, match="give --tls-cert and --tls-key together"):
        Settings.load(tls={"cert_file": "cert.pem"})
    with pytest.raises(ValidationError, match="give --tls-cert and --tls-key together"):
        TLSSettings(key_file=Path("key.pem"))
    with pytest.raises(ValidationError, match=r"--tls-client-ca \(mutual TLS\) needs TLS"):
        TLSSettings(client_ca_file=Path("ca.pem"))


def test_cli_has_the_auth_and_tls_flags_but_no_token_flag() -> None:
    result = CliRunner().invoke(serve, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for fragment in (
        "--admin-tokens-file",
        "TUNESERVE_AUTH__ADMIN_TOKENS_FILE",
        "TUNESERVE_AUTH__ADMIN_TOKENS.",
        "--read-tokens-file",
        "TUNESERVE_AUTH__READ_TOKENS_FILE",
        "--auth-inference / --no-auth-inference",
        "TUNESERVE_AUTH__REQUIRE_TOKEN_FOR_INFERENCE",
        "--tls-cert",
        "TUNESERVE_TLS__CERT_FILE",
        "--tls-key",
        "TUNESERVE_TLS__KEY_FILE",
        "--tls-client-ca",
        "TUNESERVE_TLS__CLIENT_CA_FILE",
    ):
        assert fragment in result.output
    result = CliRunner().invoke(serve, ["--admin-tokens", ADMIN])
    assert result.exit_code == 2 and "No such option" in result.output


@pytest.fixture()
def pem(tmp_path: Path) -> dict[str, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    files = {name: tmp_path / name for name in ("ca", "cert", "key", "other_key", "garbage")}
    ca.cert_pem.write_to_path(files["ca"])
    cert.cert_chain_pems[0].write_to_path(files["cert"])
    cert.private_key_pem.write_to_path(files["key"])
    ca.issue_cert("x.test").private_key_pem.write_to_path(files["other_key"])
    files["garbage"].write_text("not a certificate\n")
    return files


def test_server_credentials(pem: dict[str, Path]) -> None:
    assert tls.server_credentials(TLSSettings()) is None
    plain = tls.server_credentials(TLSSettings(cert_file=pem["cert"], key_file=pem["key"]))
    mutual = tls.server_credentials(
        TLSSettings(cert_file=pem["cert"], key_file=pem["key"], client_ca_file=pem["ca"])
    )
    assert isinstance(plain, grpc.ServerCredentials) and isinstance(mutual, grpc.ServerCredentials)


@pytest.mark.parametrize(
    ("cert", "key", "ca", "message"),
    [
        ("missing", "key", None, "--tls-cert: .*missing does not exist"),
        ("cert", "empty", None, "--tls-key: .*empty is empty"),
        ("garbage", "key", None, "cannot serve TLS"),
        ("cert", "garbage", None, "cannot serve TLS"),
        ("cert", "other_key", None, "KEY_VALUES_MISMATCH"),
        ("cert", "key", "garbage", "--tls-client-ca .*garbage holds no usable CA certificate"),
    ],
)
def test_unusable_tls_files_are_config_errors(
    pem: dict[str, Path], tmp_path: Path, cert: str, key: str, ca: str | None, message: str
) -> None:
    (tmp_path / "empty").write_text("")
    path = {**pem, "missing": tmp_path / "missing", "empty": tmp_path / "empty"}
    settings = TLSSettings(cert_file=path[cert], key_file=path[key], client_ca_file=ca and path[ca])
    with pytest.raises(ConfigError, match=message):
        tls.server_credentials(settings)


def test_encrypted_key_is_a_config_error(pem: dict[str, Path], tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem["key"].read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(ConfigError, match="encrypted"):
        tls.server_credentials(TLSSettings(cert_file=pem["cert"], key_file=encrypted))
