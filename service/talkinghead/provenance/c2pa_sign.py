"""Signed content credentials (C2PA) on rendered MP4s, and reading them back.

Every MP4 `render_video` writes gets a C2PA manifest (c2pa-python, the Content Authenticity
Initiative's library) with one `c2pa.created` action whose digitalSourceType is IPTC's
`trainedAlgorithmicMedia` ("created by a trained algorithm"), the generator (talkinghead and
its version) and a `talkinghead.watermark` assertion saying whether the frames carry the
invisible watermark and with which payload. The manifest is signed and hard-bound to the file
(a BMFF hash over every box): changing one byte of the video makes validation fail.

Who signs (`resolve_signer`):

1. the certificate chain and key given explicitly (CLI `--c2pa-cert/--c2pa-key`), else
2. `$TALKINGHEAD_C2PA_CERT` / `$TALKINGHEAD_C2PA_KEY`, else
3. a per-install TEST signer, generated once into the cache (`<model cache>/c2pa/test-signer.pem`,
   a local CA and a signing certificate under it) with a warning in the log. Such a manifest
   validates (the file is intact and says how it was made) but is not trusted: no validator
   has its CA among its trust anchors. For production, sign with a certificate from a CA on
   the C2PA trust list.

A signing certificate must be a C2PA end-entity certificate: X.509 v3, not a CA, keyUsage
digitalSignature, an extendedKeyUsage such as emailProtection or documentSigning; the PEM
chain lists it first, then its intermediates (not the root). Keys: EC P-256/384/521 (ES256/384/
512), RSA (PS256) or Ed25519; the algorithm follows from the key. `resolve_signer` checks the
key against the certificate and signs a tiny PNG in memory, so a certificate c2pa refuses
fails before a render starts, not after it.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from talkinghead.errors import MediaError, OptionsError

log = structlog.get_logger(__name__)

CERT_ENV, KEY_ENV = "TALKINGHEAD_C2PA_CERT", "TALKINGHEAD_C2PA_KEY"
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
WATERMARK_ASSERTION = "talkinghead.watermark"
LOCAL_SIGNER_FILE = "test-signer.pem"  # key + signing certificate + CA, in the cache's c2pa/ folder
LOCAL_SIGNER_NAME = "talkinghead local test signer (not trusted)"
LOCAL_SIGNER_DAYS = 3650
_PROBE_PNG = (  # 16 x 16 grey: signed in memory to check a signer
    "89504e470d0a1a0a0000000d49484452000000100000001008020000009091683600000034494441"
    "54281595c1010100000001209e37dd0655e451e451e451e451e451e451e451e451e451e451e451e4"
    "51e451e451e451e431fb521811a48adb070000000049454e44ae426082"
)


@dataclass(frozen=True)
class SigningOptions:
    """Who signs the manifest: `cert` (PEM chain: signing certificate first, then
    intermediates) and `key` (its PEM private key, unencrypted); both None: the environment,
    else the per-install test signer (see the module docstring). `tsa_url`: an RFC 3161
    time-stamp authority to countersign with (None: no time stamp, works offline)."""

    cert: Path | None = None
    key: Path | None = None
    tsa_url: str | None = None


DEFAULT_SIGNING = SigningOptions()  # environment, else the local test signer


@dataclass(frozen=True)
class Signer:
    """A resolved signer: PEM bytes of the chain and of the key (PKCS#8), and the algorithm."""

    chain: bytes
    key: bytes
    alg: str  # "es256", "ps256", ...
    test: bool  # the per-install test signer
    source: str  # where it came from, for the log
    tsa_url: str | None = None


_warned_local = False  # the test-signer warning is logged once per process


def resolve_signer(options: SigningOptions) -> Signer:
    """The signer `options` name (see the module docstring for the order). Raises OptionsError
    for a missing, unreadable or mismatched certificate or key."""
    cert, key = options.cert, options.key
    source = "options"
    if cert is None and key is None and (os.environ.get(CERT_ENV) or os.environ.get(KEY_ENV)):
        cert, key = _env_path(CERT_ENV), _env_path(KEY_ENV)
        source = f"${CERT_ENV}"
    if cert is None and key is None:
        path = local_signer_path()
        chain, key_pem = _local_signer(path)
        global _warned_local
        if not _warned_local:
            _warned_local = True
            log.warning("c2pa.test_signer", path=str(path),
                        note="signing with the local TEST certificate: the C2PA manifest validates but is not "
                             "trusted; pass --c2pa-cert/--c2pa-key or set TALKINGHEAD_C2PA_CERT/KEY for production")
        return Signer(chain, key_pem, "es256", True, str(path), options.tsa_url)
    if cert is None or key is None:
        raise OptionsError("Give both the C2PA certificate chain and its key (--c2pa-cert and --c2pa-key), "
                           "or neither to sign with the local test signer.")
    chain = _read(Path(cert), "C2PA certificate chain")
    key_pem, alg = _load_key(_read(Path(key), "C2PA key"), Path(key), chain)
    signer = Signer(chain, key_pem, alg, False, source, options.tsa_url)
    _probe(signer)
    return signer


def _probe(signer: Signer) -> None:
    """Sign a 16 x 16 PNG in memory: c2pa checks the certificate's profile only when signing,
    and a bad certificate should fail before the render, not after it."""
    import c2pa

    try:
        with c2pa.Signer.from_info(_signer_info(signer, probe=True)) as c2pa_signer, \
                c2pa.Builder(manifest_definition("probe.png", {}, "probe", "image/png")) as builder:
            builder.sign(c2pa_signer, "image/png", io.BytesIO(bytes.fromhex(_PROBE_PNG)), io.BytesIO())
    except c2pa.C2paError as error:
        raise OptionsError(_bad_certificate(error)) from error


def _signer_info(signer: Signer, probe: bool = False):
    import c2pa

    tsa = None if probe or not signer.tsa_url else signer.tsa_url.encode()  # the probe stays offline
    return c2pa.C2paSignerInfo(alg=signer.alg.encode(), sign_cert=signer.chain, private_key=signer.key, ta_url=tsa)


def _bad_certificate(error: Exception) -> str:
    return (f"C2PA signing failed ({error}). Check that the certificate is a C2PA signing certificate (not a CA, "
            "keyUsage digitalSignature, extendedKeyUsage emailProtection or documentSigning, subject and authority "
            "key identifiers), listed first in the chain, and that the key belongs to it.")


def sign_mp4(src: Path, dst: Path, signer: Signer, *, title: str, watermark: dict, generator: str) -> dict:
    """Write `src` (an MP4) with a signed manifest to `dst` (temporary file + rename: nothing
    is left at `dst` on failure). `watermark`: the `talkinghead.watermark` assertion's data.
    Returns the manifest definition that was signed."""
    import c2pa

    manifest = manifest_definition(title, watermark, generator)
    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.part")
    try:
        with c2pa.Signer.from_info(_signer_info(signer)) as c2pa_signer, c2pa.Builder(manifest) as builder, \
                open(src, "rb") as source, open(tmp, "w+b") as dest:
            builder.sign(c2pa_signer, "video/mp4", source, dest)
        os.replace(tmp, dst)
    except c2pa.C2paError as error:
        tmp.unlink(missing_ok=True)
        raise OptionsError(_bad_certificate(error)) from error
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise MediaError(f"Cannot write the signed video '{dst}': {error.strerror or error}. "
                         "Check the folder is writable and the disk has space.") from error
    log.info("c2pa.signed", path=str(dst), alg=signer.alg, signer=signer.source, test_signer=signer.test)
    return manifest


def manifest_definition(title: str, watermark: dict, generator: str, media_type: str = "video/mp4") -> dict:
    """The manifest: created by a trained algorithm, with talkinghead `generator` (its version)."""
    agent = {"name": "talkinghead", "version": generator}
    return {
        "claim_generator_info": [agent],
        "title": title,
        "format": media_type,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.created",
                "digitalSourceType": DIGITAL_SOURCE_TYPE,
                "softwareAgent": agent,
                "description": "A talking face animated from one photo and speech audio by talkinghead.",
            }]}},
            {"label": WATERMARK_ASSERTION, "data": watermark},
        ],
    }


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestReport:
    """The C2PA manifest of a file. `present`: it has one; `valid`: the signature and the
    hard binding check out (the file is as signed); `trusted`: the signer chains to one of
    the given trust anchors; `state`: c2pa's "Invalid" / "Valid" / "Trusted";
    `failures`: the validation failure codes with explanations."""

    present: bool
    valid: bool = False
    trusted: bool = False
    state: str | None = None
    failures: list[dict] = field(default_factory=list)
    generated_by_ai: bool = False
    claim_generator: str | None = None
    title: str | None = None
    signer: dict | None = None
    actions: list[dict] = field(default_factory=list)
    watermark: dict | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return {
            "present": self.present, "valid": self.valid, "trusted": self.trusted, "state": self.state,
            "generated_by_ai": self.generated_by_ai, "digital_source_type": DIGITAL_SOURCE_TYPE
            if self.generated_by_ai else None, "claim_generator": self.claim_generator, "title": self.title,
            "signer": self.signer, "actions": self.actions, "watermark_assertion": self.watermark,
            "failures": self.failures, "error": self.error,
        }


# Failure codes that say nothing about the file's integrity: the signer is simply not one of
# the reader's trust anchors (reported as `trusted: false`), or revocation was not checked.
_TRUST_ONLY = {"signingCredential.untrusted", "signingCredential.ocsp.skipped"}


def read_manifest(path: str | os.PathLike, trust_anchors: bytes | None = None) -> ManifestReport:
    """Read and validate the C2PA manifest of `path`. `trust_anchors`: PEM CA certificates to
    trust (None: none; the report then says valid but not trusted). Never raises for a file
    without a manifest or with a broken one: that is the report."""
    import c2pa

    path = Path(path)
    settings = {"verify": {"verify_trust": True}}
    if trust_anchors:
        settings["trust"] = {"trust_anchors": trust_anchors.decode("utf-8", "replace")}
    try:
        with c2pa.Context.from_dict(settings) as ctx, c2pa.Reader(str(path), context=ctx) as reader:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
            results = reader.get_validation_results() or {}
    except c2pa.C2paError as error:
        kind = type(error).__name__.lstrip("_").removeprefix("C2pa")
        if kind == "ManifestNotFound":
            return ManifestReport(present=False)
        if kind == "NotSupported":
            return ManifestReport(present=False, error=f"C2PA cannot read {path.suffix or 'extension-less'} files")
        if kind == "Io" and not path.is_file():
            raise MediaError(f"Cannot read '{path}': {error}.") from error
        return ManifestReport(present=True, valid=False, state="Invalid", error=str(error),
                              failures=[{"code": kind, "explanation": str(error)}])
    active = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    failures = [{"code": f.get("code"), "explanation": f.get("explanation")}
                for f in (results.get("activeManifest") or {}).get("failure", [])]
    integrity = [f for f in failures if f["code"] not in _TRUST_ONLY]
    actions, watermark = [], None
    for assertion in active.get("assertions", []):
        label = assertion.get("label", "")
        if label.startswith("c2pa.actions"):
            actions += assertion.get("data", {}).get("actions", [])
        elif label == WATERMARK_ASSERTION:
            watermark = assertion.get("data")
    generators = active.get("claim_generator_info") or []
    sig = active.get("signature_info") or {}
    return ManifestReport(
        present=True,
        valid=state in ("Valid", "Trusted") and not integrity,
        trusted=state == "Trusted",
        state=state,
        failures=failures,
        generated_by_ai=any(a.get("digitalSourceType") == DIGITAL_SOURCE_TYPE for a in actions),
        claim_generator=" ".join(filter(None, [generators[0].get("name"), generators[0].get("version")]))
        if generators else active.get("claim_generator"),
        title=active.get("title"),
        signer={k: sig.get(k) for k in ("issuer", "common_name", "alg", "time") if sig.get(k)} or None,
        actions=[{k: a[k] for k in ("action", "digitalSourceType", "softwareAgent") if k in a} for a in actions],
        watermark=watermark,
    )


# --- certificates --------------------------------------------------------------------------


@dataclass(frozen=True)
class CertChain:
    """A throwaway C2PA chain: `chain` (signing certificate PEM), `key` (its PKCS#8 PEM) and
    `root` (the CA's certificate PEM, to pass as a trust anchor)."""

    chain: bytes
    key: bytes
    root: bytes


def make_chain(common_name: str = LOCAL_SIGNER_NAME, days: int = LOCAL_SIGNER_DAYS) -> CertChain:
    """A CA and an ES256 signing certificate under it with the extensions C2PA requires."""
    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "talkinghead (testing only)")])

    def usage(sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=not sign,
                             crl_sign=not sign, encipher_only=False, decipher_only=False)

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name(f"{common_name} CA")).issuer_name(name(f"{common_name} CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(usage(False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name(common_name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return CertChain(
        chain=cert.public_bytes(pem),
        key=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        root=ca.public_bytes(pem),
    )


def local_signer_path() -> Path:
    """Where the per-install test signer lives (created on first use)."""
    from talkinghead.models import cache_dir

    return cache_dir() / "c2pa" / LOCAL_SIGNER_FILE


def _local_signer(path: Path) -> tuple[bytes, bytes]:
    """(chain, key) of the per-install test signer at `path`, generating it when missing or
    expiring within a month. The file holds key, signing certificate and CA, in that order."""
    try:
        blob = path.read_bytes()
        certs = x509.load_pem_x509_certificates(blob)
        left = certs[0].not_valid_after_utc - datetime.datetime.now(datetime.UTC)
        if left > datetime.timedelta(days=30):
            key_end = blob.index(b"-----END PRIVATE KEY-----") + len(b"-----END PRIVATE KEY-----\n")
            return certs[0].public_bytes(serialization.Encoding.PEM), blob[:key_end]
    except (OSError, ValueError):
        pass
    chain = make_chain()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        tmp.write_bytes(chain.key + chain.chain + chain.root)
        os.chmod(tmp, 0o600)  # a private key, even a test one
        os.replace(tmp, path)
    except OSError as error:
        raise OptionsError(f"Cannot write the C2PA test signer to {path} ({error.strerror or error}); set "
                           f"TALKINGHEAD_CACHE to a writable folder or pass --c2pa-cert and --c2pa-key.") from error
    log.info("c2pa.test_signer_created", path=str(path))
    return chain.chain, chain.key


def _env_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise OptionsError(f"Set both {CERT_ENV} and {KEY_ENV} (the C2PA certificate chain and its key), not "
                           "only one.")
    return Path(value).expanduser()


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise OptionsError(f"Cannot read the {what} '{path}': {error.strerror or error}; give a readable PEM file.") from error


def _load_key(key_pem: bytes, key_path: Path, chain: bytes) -> tuple[bytes, str]:
    """(PKCS#8 PEM, c2pa algorithm) for the key, checked against the chain's first certificate."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError as error:
        raise OptionsError(f"The C2PA key '{key_path}' is encrypted; give an unencrypted PEM key.") from error
    except ValueError as error:
        raise OptionsError(f"'{key_path}' is not a PEM private key ({error}); give the signing key in PEM.") from error
    try:
        certs = x509.load_pem_x509_certificates(chain)
    except ValueError as error:
        raise OptionsError(f"The C2PA certificate chain has no readable PEM certificate ({error}).") from error
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if certs[0].public_key().public_bytes(serialization.Encoding.PEM, pub) != \
            key.public_key().public_bytes(serialization.Encoding.PEM, pub):
        raise OptionsError(f"The C2PA key '{key_path}' does not belong to the first certificate of the chain; "
                           "list the signing certificate first, then its intermediates.")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algs = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name not in algs:
            raise OptionsError(f"C2PA signs with EC keys on P-256, P-384 or P-521, not {key.curve.name}.")
        alg = algs[key.curve.name]
    elif isinstance(key, rsa.RSAPrivateKey):
        alg = "ps256"
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        alg = "ed25519"
    else:
        raise OptionsError(f"C2PA cannot sign with a {type(key).__name__}; use an EC (P-256), RSA or Ed25519 key.")
    pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    return pkcs8, alg
