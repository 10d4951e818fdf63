"""TLS for the development server: server contexts and self-signed certificates.

:func:`load_ssl_context` turns ``run_simple``'s ``ssl_context`` argument
(``"adhoc"``, a ``(cert_file, key_file)`` pair or an :class:`ssl.SSLContext`)
into a server-side context; :func:`make_ssl_devcert` writes a certificate and
key for development that carry the host as a subjectAltName, so that clients
accept them once told to trust the certificate. Certificates are made with the
optional ``cryptography`` package (``citus[ssl]``); everything else uses only
:mod:`ssl`. The handshake itself happens in :mod:`.server`, per connection;
:func:`handshake_failure` says in words why one failed.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import ssl
import tempfile
import typing as t

if t.TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.x509 import Certificate

#: How long a generated certificate is valid (browsers refuse more than 825
#: days for certificates they are told to trust).
CERT_LIFETIME = datetime.timedelta(days=365)

#: The names a certificate covers when no host is given.
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")


class TLSConfigError(ValueError):
    """TLS cannot be set up as asked: a missing file, a bad key, no ``cryptography``.

    The message is one sentence for the user, ending with the fix;
    ``run_simple`` prints it and exits with status 1.
    """


def load_ssl_context(
    value: ssl.SSLContext | tuple[str, str] | list[str] | str | None,
) -> ssl.SSLContext | None:
    """Turn ``run_simple``'s ``ssl_context`` argument into a server context.

    :param value: ``None`` (plain HTTP); an :class:`ssl.SSLContext`, returned
        as it is; ``"adhoc"``, a fresh self-signed certificate for localhost
        (needs ``cryptography``: ``citus[ssl]``); or a ``(cert_file, key_file)``
        pair of PEM files.
    :raises TLSConfigError: when the files cannot be used or ``cryptography``
        is missing for ``"adhoc"``.
    """
    if value is None or isinstance(value, ssl.SSLContext):
        return value
    if isinstance(value, str):
        if value == "adhoc":
            return _adhoc_context()
        raise TLSConfigError(
            f"ssl_context={value!r} is not understood: pass 'adhoc', a"
            " (cert_file, key_file) pair or an ssl.SSLContext."
        )
    if isinstance(value, (tuple, list)) and len(value) == 2:
        cert_file, key_file = (os.fspath(item) for item in value)
        return _files_context(cert_file, key_file)
    raise TLSConfigError(
        f"ssl_context={value!r} is not understood: pass 'adhoc', a"
        " (cert_file, key_file) pair or an ssl.SSLContext."
    )


def server_context() -> ssl.SSLContext:
    """A server-side context with citus's defaults: TLS 1.2 or newer, HTTP/1.1."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context


def _check_readable(path: str, what: str, option: str) -> None:
    if not os.path.exists(path):
        raise TLSConfigError(
            f"The {what} file {path!r} does not exist. Give the path of a PEM"
            f" file ({option}), or use ssl_context='adhoc' (citus run --cert adhoc)."
        )
    if os.path.isdir(path):
        raise TLSConfigError(
            f"The {what} file {path!r} is a folder. Give the path of a PEM file"
            f" ({option})."
        )
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise TLSConfigError(
            f"The {what} file {path!r} cannot be read ({error.strerror}). Give"
            " citus read access to it, or use another file."
        ) from error


def _files_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    _check_readable(cert_file, "certificate", "--cert")
    _check_readable(key_file, "key", "--key")
    context = server_context()

    def no_passphrase() -> bytes:
        # OpenSSL would ask on the terminal (again in every reloader child),
        # or fail with a bare EINVAL when there is none.
        raise TLSConfigError(
            f"The key file {key_file!r} is protected by a passphrase, which"
            " citus does not ask for. Write an unprotected copy for development"
            f" (openssl pkey -in {key_file} -out dev.key) and use that, or pass"
            " an ssl.SSLContext that you loaded with the passphrase."
        )

    try:
        context.load_cert_chain(cert_file, key_file, password=no_passphrase)
    except ssl.SSLError as error:
        if _holds(cert_file, b"PRIVATE KEY-----") and _holds(
            key_file, b"CERTIFICATE-----"
        ):
            raise TLSConfigError(
                f"The certificate {cert_file!r} and the key {key_file!r} look"
                " swapped: the first holds a private key, the second a"
                f" certificate. Swap them: --cert {key_file} --key {cert_file}."
            ) from error
        # "[SSL] PEM lib (_ssl.c:3905)": the source position says nothing here.
        reason = error.reason or _SSL_SOURCE.sub("", str(error))
        raise TLSConfigError(
            f"Could not use the certificate {cert_file!r} with the key"
            f" {key_file!r} ({reason}). Check that both are PEM"
            " files and that the key belongs to the certificate"
            " (make_ssl_devcert() writes a matching pair)."
        ) from error
    return context


_SSL_SOURCE = re.compile(r"\s*\(_ssl\.c:\d+\)")


def _holds(path: str, marker: bytes) -> bool:
    """Whether the start of the file at ``path`` contains ``marker``."""
    try:
        with open(path, "rb") as file:
            return marker in file.read(1 << 16)
    except OSError:
        return False


def _require_cryptography(what: str) -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise TLSConfigError(
            f"{what} needs the 'cryptography' package, which is not installed:"
            " install 'citus[ssl]' (pip install 'citus[ssl]')."
        ) from None


def _adhoc_context() -> ssl.SSLContext:
    _require_cryptography("ssl_context='adhoc'")
    cert_pem, key_pem = generate_certificate()
    context = server_context()
    # load_cert_chain reads files only: write them to a private folder briefly.
    with tempfile.TemporaryDirectory(prefix="citus-adhoc-") as folder:
        cert_file = os.path.join(folder, "adhoc.crt")
        key_file = os.path.join(folder, "adhoc.key")
        with open(cert_file, "wb") as file:
            file.write(cert_pem)
        _write_private(key_file, key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context


def _names(host: str | None) -> list[str]:
    # citus's "localhost" is 127.0.0.1 and ::1, and the banner shows those
    # URLs: the certificate must be good for them too.
    if host is None or host.strip("[]").lower() == "localhost":
        return list(DEFAULT_NAMES)
    return [host.strip("[]")]


def generate_certificate(
    host: str | None = None, cn: str | None = None
) -> tuple[bytes, bytes]:
    """A fresh self-signed certificate and its private key, both PEM.

    :param host: the name or address the certificate is for; it goes in the
        subjectAltName (as an IP address when it is one, else as a DNS name).
        ``None`` and ``"localhost"`` cover ``localhost``, ``127.0.0.1`` and
        ``::1``.
    :param cn: the subject's common name; defaults to ``host`` or ``localhost``.
    :raises TLSConfigError: when ``cryptography`` is not installed.
    """
    _require_cryptography("Making a certificate")
    from cryptography.hazmat.primitives import serialization

    key, cert = _build(host, cn)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def _build(
    host: str | None, cn: str | None
) -> tuple[EllipticCurvePrivateKey, Certificate]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names = _names(host)
    common_name = cn or (host.strip("[]") if host else "localhost")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "citus development server"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    # An address goes in as an IPAddress only: "::1" is not a valid DNS name,
    # and clients match IP URLs against IPAddress entries.
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _write_private(path: str, data: bytes) -> None:
    """Write ``data`` to ``path``, readable and writable by the owner only."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o600)
    try:
        os.chmod(path, 0o600)  # the file may have existed with wider rights
        os.write(fd, data)
    finally:
        os.close(fd)


def make_ssl_devcert(
    base_path: str | os.PathLike[str], host: str | None = None, cn: str | None = None
) -> tuple[str, str]:
    """Write a self-signed certificate and key for development.

    Creates ``base_path.crt`` and ``base_path.key`` (the key readable by its
    owner only), replacing files of those names. The certificate names ``host``
    in its subjectAltName, so that a client told to trust the certificate
    accepts it for that host. Pass the pair to ``run_simple(...,
    ssl_context=(crt, key))`` or ``citus run --cert crt --key key``.

    :param base_path: the path of both files, without the extension.
    :param host: the host name or IP address to serve; ``None`` and
        ``"localhost"`` cover ``localhost``, ``127.0.0.1`` and ``::1`` (the
        addresses citus serves for ``localhost``).
    :param cn: the certificate's common name (defaults to ``host``).
    :returns: the certificate's path and the key's path.
    :raises TLSConfigError: when ``cryptography`` is not installed
        (``citus[ssl]``).
    """
    cert_pem, key_pem = generate_certificate(host, cn)
    base = os.fspath(base_path)
    cert_file = f"{base}.crt"
    key_file = f"{base}.key"
    with open(cert_file, "wb") as file:
        file.write(cert_pem)
    _write_private(key_file, key_pem)
    return cert_file, key_file


#: The answer to a plain HTTP request on an HTTPS port (with status 400).
PLAIN_HTTP_MESSAGE = (
    "the client sent a plain HTTP request to an HTTPS server: use https:// in the URL."
)

_NOT_TRUSTED = (
    "the client does not trust the certificate, as expected for a self-signed"
    " one until the client is told to trust it"
)
#: OpenSSL's reasons for a failed handshake, in words (the usual ones in
#: development: a browser or tool that does not trust a self-signed certificate).
_TLS_REASONS = {
    "TLSV1_ALERT_UNKNOWN_CA": _NOT_TRUSTED,
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": _NOT_TRUSTED,
    "SSLV3_ALERT_BAD_CERTIFICATE": "the client refused the certificate (is it"
    " for another host name?)",
    "UNSUPPORTED_PROTOCOL": "the client offers only TLS versions older than 1.2",
    "UNEXPECTED_EOF_WHILE_READING": "the client closed the connection during"
    " the handshake",
    "NO_SHARED_CIPHER": "the client and the server have no cipher in common",
}


def handshake_failure(error: BaseException) -> str:
    """One readable reason for a failed handshake (without ``_ssl.c:NNN``)."""
    reason = getattr(error, "reason", None)
    if isinstance(reason, str) and reason in _TLS_REASONS:
        return f"{_TLS_REASONS[reason]} ({reason})"
    if isinstance(error, TimeoutError):
        return "the client sent nothing in time"
    if isinstance(error, ConnectionError):
        return "the client closed the connection during the handshake"
    text = str(error)
    cut = text.rfind(" (_ssl.c:")
    return text[:cut] if cut > 0 else text
