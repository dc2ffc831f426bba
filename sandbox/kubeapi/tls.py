"""Optional HTTPS for the embedded API server: a private CA and a serving
certificate for the loopback address, made once per state dir with the
openssl CLI (no extra Python dependency) and reused across restarts, so a
kubeconfig's certificate-authority-data stays valid.
"""

from __future__ import annotations

import base64
import ssl
import subprocess
import tempfile
from pathlib import Path


def _openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def ensure_certificates(state_dir: Path, host: str) -> tuple[Path, Path, Path]:
    """(ca.crt, server.crt, server.key) under state_dir/tls, made if absent."""
    d = state_dir / "tls"
    ca_crt, ca_key = d / "ca.crt", d / "ca.key"
    crt, key = d / "server.crt", d / "server.key"
    if ca_crt.exists() and crt.exists() and key.exists():
        return ca_crt, crt, key
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    days = "3650"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_crt),
        "-days",
        days,
        "-subj",
        "/CN=kovn-sandbox-ca",
    )
    with tempfile.TemporaryDirectory(dir=d) as tmp:
        csr, ext = Path(tmp) / "server.csr", Path(tmp) / "san.ext"
        sans = {"IP:127.0.0.1", "DNS:localhost"}
        sans.add(f"IP:{host}" if host.replace(".", "").isdigit() or ":" in host else f"DNS:{host}")
        ext.write_text(
            "subjectAltName=" + ",".join(sorted(sans)) + "\nextendedKeyUsage=serverAuth\n"
        )
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            "/CN=kovn-sandbox-apiserver",
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca_crt),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-out",
            str(crt),
            "-days",
            days,
            "-extfile",
            str(ext),
        )
    key.chmod(0o600)
    ca_key.chmod(0o600)
    return ca_crt, crt, key


def server_context(crt: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(crt), str(key))
    return ctx


def ca_data(ca_crt: Path) -> str:
    return base64.b64encode(ca_crt.read_bytes()).decode()
