"""Content credentials (C2PA): every take and cut says, in a signed manifest inside the file,
that it was made by a trained model (EU AI Act Art. 50), which one, how, and from what.

The manifests are written and read by c2pa-python (the Content Authenticity Initiative's
bindings): no manifest format is written by hand here. What previz decides is their content:

- a take: the `c2pa.created` action with the generator's digital source type (a diffusion model's
  `trainedAlgorithmicMedia`, the draft's `algorithmicMedia`) and the model as its software agent;
  a `org.previz.recipe` assertion with the take key, model, weights (location and revision),
  seed, steps, guidance, size, frames and the prompt's sha256 (the prompt itself only when
  PREVIZ_C2PA_PROMPTS=include: studios treat prompts as confidential); the storyboard files it
  was conditioned on (reference images, first and last frames) as `inputTo` ingredients;
- a cut, review copy, editorial media or contact sheet: `c2pa.created` as a composite, with the
  takes it shows as `componentOf` ingredients (whose own manifests travel inside, so a cut's
  credentials chain to its shots'). A cut is joined by stream copy, which keeps no manifest: it
  is signed after the join.

The signing certificate and key come from the environment of the process that signs (workers
sign takes, the render's driver signs cuts), as paths: PREVIZ_C2PA_CERT (the certificate, then
its chain, PEM) and PREVIZ_C2PA_KEY (its private key, PEM). Their contents are never logged and
never written into a manifest, a take record or the ledger; only the signer's subject is.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from previz import __version__
from previz.errors import InvalidInput

__all__ = ["ENV_CERT", "ENV_KEY", "ENV_TSA", "ENV_PROMPTS", "ENV_TRUST", "Signing",
           "Ingredient", "Verification", "signing_from_env", "sign_take", "sign_derived",
           "verify_file", "is_signed", "describe", "json_of", "CredentialsError", "TRAINED", "ALGORITHMIC", "COMPOSITE_TRAINED", "COMPOSITE"]

ENV_CERT = "PREVIZ_C2PA_CERT"
ENV_KEY = "PREVIZ_C2PA_KEY"
ENV_TSA = "PREVIZ_C2PA_TSA_URL"  # an RFC 3161 timestamp authority (optional)
ENV_PROMPTS = "PREVIZ_C2PA_PROMPTS"  # "include": prompts in clear; otherwise their sha256
ENV_TRUST = "PREVIZ_C2PA_TRUST"  # `previz verify`: the CA certificates to trust (PEM)

_IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# IPTC digital source types (generators declare theirs: GeneratorDeclaration)
TRAINED = "trainedAlgorithmicMedia"
ALGORITHMIC = "algorithmicMedia"
COMPOSITE_TRAINED = "compositeWithTrainedAlgorithmicMedia"
COMPOSITE = "composite"
RECIPE_LABEL = "org.previz.recipe"
MIME_TYPES = {".mp4": "video/mp4", ".mov": "video/quicktime", ".jpg": "image/jpeg",
              ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
              ".wav": "audio/wav", ".m4v": "video/mp4"}


class CredentialsError(InvalidInput):
    """The signing settings are unusable: names the variable, the value and the fix."""


@dataclass(frozen=True)
class Signing:
    """Where the signing certificate and key are, and what goes into manifests."""

    cert_path: Path
    key_path: Path
    tsa_url: str | None = None
    include_prompts: bool = False
    subject: str = ""  # the certificate's subject, for take records and messages

    def signer(self):
        """A c2pa Signer, made from the files each time (nothing secret is kept in memory
        longer than one signing)."""
        import c2pa

        certs, key = self.cert_path.read_bytes(), self.key_path.read_bytes()
        return c2pa.Signer.from_info(c2pa.C2paSignerInfo(
            _algorithm(key), certs, key, self.tsa_url or None))


@dataclass(frozen=True)
class Ingredient:
    path: Path
    title: str
    relationship: str  # componentOf, inputTo, parentOf


def signing_from_env(environ: Mapping[str, str] | None = None) -> Signing | None:
    """The signing settings of this process, checked (files readable, key matching the
    certificate, certificate in its validity period); None when neither variable is set."""
    environ = os.environ if environ is None else environ
    cert, key = environ.get(ENV_CERT, ""), environ.get(ENV_KEY, "")
    if not cert and not key:
        return None
    if not cert or not key:
        given, missing = (ENV_CERT, ENV_KEY) if cert else (ENV_KEY, ENV_CERT)
        raise CredentialsError(f"{given} is set but {missing} is not — content credentials need "
                               "both the certificate (PEM, with its chain) and its private key")
    tsa = environ.get(ENV_TSA) or None
    if tsa and not tsa.startswith(("http://", "https://")):
        raise CredentialsError(f"{ENV_TSA}={tsa!r}: not an http(s) URL of a timestamp authority")
    settings = Signing(Path(cert).expanduser(), Path(key).expanduser(), tsa,
                       environ.get(ENV_PROMPTS, "").strip().lower() == "include")
    return _checked(settings)


def _checked(settings: Signing) -> Signing:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    for variable, path in ((ENV_CERT, settings.cert_path), (ENV_KEY, settings.key_path)):
        if not path.is_file():
            raise CredentialsError(f"{variable}={path}: no such file — point it at the studio's "
                                   "signing " + ("certificate (PEM)" if variable == ENV_CERT
                                                 else "private key (PEM)"))
    try:
        certs = x509.load_pem_x509_certificates(settings.cert_path.read_bytes())
    except ValueError:
        raise CredentialsError(f"{ENV_CERT}={settings.cert_path}: not PEM certificates — "
                               "export the signing certificate and its chain as PEM") from None
    try:
        key = serialization.load_pem_private_key(settings.key_path.read_bytes(), password=None)
    except (ValueError, TypeError):
        # (the error text could quote the key: it is not repeated)
        raise CredentialsError(f"{ENV_KEY}={settings.key_path}: not an unencrypted PEM private "
                               "key — export it without a passphrase (PKCS#8), readable only "
                               "by the render's user") from None
    leaf = certs[0]
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*public) != leaf.public_key().public_bytes(*public):
        raise CredentialsError(f"{ENV_KEY}={settings.key_path}: not the private key of the "
                               f"certificate in {ENV_CERT} ({leaf.subject.rfc4514_string()})")
    now = datetime.now(timezone.utc)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise CredentialsError(
            f"{ENV_CERT}={settings.cert_path}: the certificate is valid from "
            f"{leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d}, not "
            "now — renew it")
    if len(certs) == 1 and leaf.issuer == leaf.subject:
        raise CredentialsError(f"{ENV_CERT}={settings.cert_path}: a self-signed certificate, "
                               "which C2PA refuses for signing — use one issued by a CA")
    return Signing(settings.cert_path, settings.key_path, settings.tsa_url,
                   settings.include_prompts, leaf.subject.rfc4514_string())


def _algorithm(key_pem: bytes):
    """The C2PA signing algorithm the key's type calls for."""
    import c2pa
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: c2pa.C2paSigningAlg.ES256, 384: c2pa.C2paSigningAlg.ES384,
                521: c2pa.C2paSigningAlg.ES512}[key.curve.key_size]
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return c2pa.C2paSigningAlg.ED25519
    if isinstance(key, rsa.RSAPrivateKey):
        return c2pa.C2paSigningAlg.PS256
    raise CredentialsError(f"{ENV_KEY}: a {type(key).__name__} cannot sign C2PA manifests — use "
                           "an EC (P-256), Ed25519 or RSA key")


def mime_type(path: Path) -> str:
    return MIME_TYPES.get(path.suffix.lower(), "application/octet-stream")


# -- signing ------------------------------------------------------------------------------------

def sign_take(media: Path, signing: Signing, *, task: Any, take_key: str, source_type: str,
              generator_version: str) -> Path:
    """Sign a take's media in place: what made it, and from what. `task` is the take's last
    ShotTask (its recipe); `source_type` the generator's IPTC digital source type term."""
    prompt = {"prompt": task.prompt} if signing.include_prompts else {
        "prompt_sha256": hashlib.sha256(task.prompt.encode()).hexdigest()}
    recipe = {
        "take_key": take_key, "shot": task.shot_id, "take": task.take, "model": task.model,
        "pipeline": task.pipeline, "generator": task.generator,
        "generator_version": generator_version, "weights": _weights_identity(task),
        "seed": task.seed, "steps": task.steps, "guidance": task.guidance,
        "width": task.width, "height": task.height, "frames": task.num_frames, "fps": task.fps,
        "conditioning": [{"role": c.role, "name": c.name, "sha256": c.sha256,
                          "from_key": c.from_key} for c in task.conditioning],
        **prompt,
    }
    conditioning = [Ingredient(Path(c.path), f"{c.role}: {Path(c.path).name}", "inputTo")
                    for c in task.conditioning if c.path and Path(c.path).is_file()]
    manifest = _manifest(
        title=f"{task.shot_id} take {task.take} ({take_key[:12]})",
        source_type=source_type,
        agent={"name": task.model, "version": recipe["weights"].get("revision") or ""},
        assertions=[{"label": RECIPE_LABEL, "data": recipe}])
    return _sign(media, signing, manifest, conditioning)


def sign_derived(media: Path, signing: Signing, *, title: str, source_type: str,
                 ingredients: Iterable[Ingredient], about: Mapping[str, Any]) -> Path:
    """Sign media previz made from other media (a cut from its takes): `about` is recorded
    as the recipe (version, edit key)."""
    manifest = _manifest(title=title, source_type=source_type,
                         agent={"name": "previz", "version": __version__},
                         assertions=[{"label": RECIPE_LABEL, "data": dict(about)}])
    return _sign(media, signing, manifest, ingredients)


def _manifest(*, title: str, source_type: str, agent: dict[str, str],
              assertions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "claim_generator_info": [{"name": "previz", "version": __version__}],
        "title": title,
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [{
            "action": "c2pa.created", "digitalSourceType": _IPTC + source_type,
            "softwareAgent": {k: v for k, v in agent.items() if v}}]}}, *assertions],
    }


def _sign(media: Path, signing: Signing, manifest: dict[str, Any],
          ingredients: Iterable[Ingredient]) -> Path:
    """Sign into a new file beside `media`, then put it in `media`'s place."""
    import c2pa

    builder = c2pa.Builder(manifest)
    for ingredient in ingredients:
        with open(ingredient.path, "rb") as stream:
            builder.add_ingredient({"title": ingredient.title,
                                    "relationship": ingredient.relationship},
                                   mime_type(ingredient.path), stream)
    handle, signed = tempfile.mkstemp(prefix=".signing-", suffix=media.suffix, dir=media.parent)
    os.close(handle)
    try:
        builder.sign_file(str(media), signed, signing.signer())
        os.replace(signed, media)
    except BaseException:
        Path(signed).unlink(missing_ok=True)
        raise
    return media


def _weights_identity(task: Any) -> dict[str, Any]:
    """Which weights: where they were read (folder or hub id) and which revision — for a hub id
    not pinned by the storyboard, the snapshot the Hugging Face cache resolved."""
    identity: dict[str, Any] = {"location": task.weights, "revision": task.revision}
    if task.weights and not task.revision and not task.weights.startswith(("/", "~")):
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(task.weights, "model_index.json")
            if isinstance(cached, str):
                identity["revision"] = Path(cached).parent.name  # snapshots/<commit>/
        except ImportError:
            pass
    return identity


# -- verifying ----------------------------------------------------------------------------------

def is_signed(path: Path) -> bool:
    """Whether the file carries a C2PA manifest that can be read (not whether it validates)."""
    import c2pa

    try:
        reader = c2pa.Reader.try_create(str(path))
    except c2pa.C2paError:
        return False
    if reader is None:
        return False
    reader.close()
    return True


@dataclass(frozen=True)
class Verification:
    """What one file's credentials say."""

    path: Path
    # trusted (by the CAs given); valid (intact, no trust list given); untrusted (intact, its
    # signer not issued by the CAs given); invalid (changed since signed); absent
    state: str
    signer: str = ""
    title: str = ""
    source_type: str = ""
    agent: str = ""
    recipe: dict[str, Any] = field(default_factory=dict)
    ingredients: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.state in ("trusted", "valid")


def verify_file(path: Path, trust_pem: str | None = None) -> Verification:
    """Read a file's C2PA manifest with c2pa's own reader and validation (against `trust_pem`'s
    CAs when given)."""
    import c2pa

    context = None
    if trust_pem:
        context = c2pa.Context.from_dict({"verify": {"verify_trust": True},
                                          "trust": {"trust_anchors": trust_pem}})
    try:
        reader = c2pa.Reader(str(path), context=context)
    except c2pa.C2paError.ManifestNotFound:
        return Verification(path, "absent")
    except c2pa.C2paError as error:
        return Verification(path, "invalid", failures=(str(error),))
    with reader:
        state = (reader.get_validation_state() or "").lower()
        results = reader.get_validation_results() or {}
        manifest = reader.get_active_manifest() or {}
    failures = tuple(f"{f.get('code')}: {f.get('explanation', '')}"
                     for f in (results.get("activeManifest") or {}).get("failure", []))
    if state == "trusted":
        verdict = "trusted"
    elif state == "valid":  # intact; its signer is in no trust list given (or none was)
        verdict = "untrusted" if trust_pem else "valid"
    else:
        verdict = "invalid"
    actions = [a for assertion in manifest.get("assertions", [])
               if assertion.get("label", "").startswith("c2pa.actions")
               for a in assertion.get("data", {}).get("actions", [])]
    created = next((a for a in actions if a.get("action") == "c2pa.created"), {})
    recipe = next((a.get("data", {}) for a in manifest.get("assertions", [])
                   if a.get("label") == RECIPE_LABEL), {})
    agent = created.get("softwareAgent") or {}
    return Verification(
        path, verdict, signer=_signer(manifest), title=manifest.get("title", ""),
        source_type=str(created.get("digitalSourceType", "")).rpartition("/")[2],
        agent=" ".join(str(agent.get(k, "")) for k in ("name", "version")).strip()
        if isinstance(agent, dict) else str(agent),
        recipe=recipe, ingredients=tuple(i.get("title", "") for i in
                                         manifest.get("ingredients", [])),
        failures=failures if verdict in ("invalid", "untrusted") else ())


def _signer(manifest: dict[str, Any]) -> str:
    info = manifest.get("signature_info") or {}
    return ", ".join(str(info[k]) for k in ("common_name", "issuer") if info.get(k))


def describe(verification: Verification) -> str:
    """One line for `previz verify`."""
    v = verification
    if v.state == "absent":
        return f"none     {v.path}: no content credentials"
    if v.state == "invalid":
        return f"INVALID  {v.path}: {'; '.join(v.failures) or 'the manifest does not validate'}"
    if v.state == "untrusted":
        return (f"UNTRUSTED {v.path}: intact, but signed by {v.signer}, which the trusted CAs "
                "did not issue")
    made = v.recipe
    what = (f"{v.agent}, seed {made['seed']}, {made['steps']} steps, take {made['take_key'][:12]}"
            if "take_key" in made else f"{v.agent} from {len(v.ingredients)} ingredient(s)")
    trust = "" if v.state == "trusted" else (f" (not checked against a trust list: pass --trust "
                                             f"or set {ENV_TRUST})")
    return f"{v.state:<8} {v.path}: {v.source_type} by {what}; signed by {v.signer}{trust}"


def json_of(verification: Verification) -> str:
    return json.dumps({"path": str(verification.path), "state": verification.state,
                       "signer": verification.signer, "title": verification.title,
                       "source_type": verification.source_type, "agent": verification.agent,
                       "recipe": verification.recipe,
                       "ingredients": list(verification.ingredients),
                       "failures": list(verification.failures)})
