"""Loading sparse autoencoders (sae-lens ``SAE`` objects) and checking them against a model.

:func:`load_sae` takes a spec:

* ``"default"``: the SAE shipped in ``mona/assets/saes/`` for the default model (Gemma 3 270M, layer 6);
* a local sae-lens folder (``cfg.json`` + ``sae_weights.safetensors``, what ``mona-sae train`` writes and
  ``SAE.save_model`` produces), read with ``SAE.load_from_disk``;
* a local sparsify folder (``cfg.json`` + ``sae.safetensors``, named ``layers.<L>``), or ``sparsify:<dir>``,
  converted on load by sae-lens's sparsify converter;
* ``"registry:<release>/<sae_id>"``: ``SAE.from_pretrained(release, sae_id)`` from sae-lens's registry (e.g.
  ``registry:gemma-scope-2-1b-pt-res/layer_13_width_16k_l0_medium``, ``registry:llama_scope_lxr_8x/l15r_8x``), or
  ``"registry:<org>/<repo>/<folder>"`` for any Hugging Face repo in sae-lens's format. Files come from the local
  Hugging Face hub cache when they are there (no network needed), from the hub otherwise; with
  ``HF_HUB_OFFLINE=1`` and nothing cached, a one-line :class:`ModelError` says what to download. The SAE's
  config is read and checked against the model before its weights.

Local SAEs are checked against the model from their ``cfg.json`` alone, before the weights are read and long
before any forward pass: ``d_in`` must equal the model's ``d_model`` and the SAE's hook must be the requested
one and exist in the model; otherwise :class:`mona.errors.ArtifactMismatch` says which in one line. Weights
are always loaded as float32 (the shipped SAE stores float16; sae-lens converts to the cfg dtype on load).

:func:`resolve_sae` is what stages call: it accepts a spec, a :class:`LoadedSAE` or a bare sae-lens ``SAE`` and
returns a :class:`LoadedSAE` whose :class:`SAEIdentity` (what manifests record) has the same fields, and the
same weights hash for the same weights, whatever the source.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from mona.errors import ArtifactMismatch, ModelError, MonaError
from mona.hub import download_hint, hub_cache_dir, hub_offline, is_offline_error
from mona.io import state_hash
from mona.models import LoadedModel, hook_layer

log = logging.getLogger(__name__)

DEFAULT_SAE_NAME = "gemma-3-270m-l6-topk-8k"
"""Folder name of the shipped default SAE under ``mona/assets/saes/``."""
DEFAULT_SAE_HOOK = "blocks.6.hook_resid_post"
"""Hook the default SAE reads (layer 6 residual stream of Gemma 3 270M)."""
ASSETS_DIR = Path(__file__).parent / "assets" / "saes"

SAE_CFG = "cfg.json"
SAE_WEIGHTS = "sae_weights.safetensors"
SPARSIFY_WEIGHTS = "sae.safetensors"


@dataclass(frozen=True)
class SAEIdentity:
    """What an SAE is, for manifests: equal identities mean interchangeable codes."""

    name: str
    """Short name: the folder name, ``default``'s asset name, or ``release/sae_id``."""
    source: str
    """``builtin:<name>``, ``local:<dir>``, ``sparsify:<dir>`` or ``registry:<release>/<sae_id>``."""
    weights_hash: str
    """sha256 of the loaded weight tensors as float32 (:func:`mona.io.state_hash`, first 16 hex digits)."""
    hook: str | None
    """Hook the SAE reads; ``None`` only for an in-memory SAE that does not record one."""
    d_in: int
    d_sae: int
    architecture: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedSAE:
    """An sae-lens SAE in eval mode with its identity."""

    sae: Any
    identity: SAEIdentity

    @property
    def d_sae(self) -> int:
        return self.identity.d_sae

    @property
    def hook(self) -> str:
        return self.identity.hook

    @torch.no_grad()
    def encode(self, x: Float[Tensor, "N d"]) -> Float[Tensor, "N F"]:
        """Feature activations of residual vectors (``sae.encode``, float32, no grad)."""
        return self.sae.encode(x.to(device=self.sae.W_enc.device, dtype=self.sae.W_enc.dtype)).float()

    @torch.no_grad()
    def decode(self, codes: Float[Tensor, "N F"]) -> Float[Tensor, "N d"]:
        """Reconstruction of residual vectors from feature activations."""
        return self.sae.decode(codes.to(device=self.sae.W_dec.device, dtype=self.sae.W_dec.dtype)).float()


def default_sae_dir() -> Path:
    return ASSETS_DIR / DEFAULT_SAE_NAME


def sae_metadata(path: str | Path) -> dict[str, Any]:
    """The ``metadata`` block of a local sae-lens folder's ``cfg.json`` (model, hook, ...), without loading weights.

    Older flat configs (``hook_name`` at the top level) are read too.
    """
    cfg = _read_cfg(Path(path))
    meta = dict(cfg.get("metadata") or {})
    for key in ("hook_name", "model_name", "context_size", "prepend_bos"):
        if key not in meta and key in cfg:
            meta[key] = cfg[key]
    return meta


def _read_cfg(path: Path) -> dict[str, Any]:
    cfg_path = path / SAE_CFG
    if not cfg_path.exists():
        raise ArtifactMismatch(f"{path} is not an SAE folder (no {SAE_CFG})")
    try:
        return json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactMismatch(f"{cfg_path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _validate(where: str, d_in: int, sae_hook: str | None, model: LoadedModel | None, hook: str | None,
              meta: dict[str, Any] | None = None, require_hook: bool = True) -> str | None:
    """Check an SAE's d_in and hook against the request and the model; return the SAE's hook."""
    if not sae_hook:
        if hook is None and require_hook:
            raise ArtifactMismatch(f"SAE {where} does not record its hook; pass the hook it was trained on")
        sae_hook = hook
    if hook is not None and hook != sae_hook:
        raise ArtifactMismatch(f"SAE {where} was trained on hook {sae_hook!r}, but hook {hook!r} was requested")
    if model is not None:
        if d_in != model.d_model:
            raise ArtifactMismatch(
                f"SAE {where} has d_in={d_in}, but model {model.identity.name} has d_model={model.d_model}"
            )
        try:
            layer = hook_layer(sae_hook) if sae_hook else None
        except ModelError:
            layer = None
        if layer is not None and layer >= model.n_layers:
            raise ArtifactMismatch(
                f"SAE {where} reads hook {sae_hook!r} (layer {layer}), but model {model.identity.name} has "
                f"{model.n_layers} layers"
            )
        trained = (meta or {}).get("model_identity") or {}
        want, have = trained.get("weights_hash"), model.identity.weights_hash
        if want and have and "unknown" not in (want, have) and want != have:
            log.warning("SAE %s was trained on model weights %s (%s), this model's weights are %s (%s)", where,
                        want, trained.get("name"), have, model.identity.name)
        named, source = (meta or {}).get("model_name"), model.identity.source
        if named and source.startswith("hub:") and source[4:].lower() != str(named).lower():
            log.warning("SAE %s was trained on %s, but the model is %s", where, named, source[4:])
    return sae_hook


def load_sae(spec: str | Path = "default", *, model: LoadedModel | None = None, hook: str | None = None,
             device: str = "cpu") -> LoadedSAE:
    """Load an SAE (see the module docstring for specs) and check it against ``model`` and ``hook``."""
    text = str(spec)
    if text == "default":
        path = default_sae_dir()
        if not (path / SAE_WEIGHTS).exists():
            raise ModelError(f"the default SAE is missing from this install ({path}); train one with `mona-sae train`")
        return _load_folder(path, f"builtin:{DEFAULT_SAE_NAME}", DEFAULT_SAE_NAME, model, hook, device)
    if text.startswith("registry:"):
        return _load_registry(text[len("registry:"):], model, hook, device)
    if text.startswith("sparsify:"):
        return _load_sparsify(Path(text[len("sparsify:"):]).expanduser(), model, hook, device)
    path = Path(text).expanduser()
    if not path.exists():
        raise ModelError(
            f"SAE {text!r} not found: expected 'default', a folder with {SAE_CFG} + {SAE_WEIGHTS}, "
            f"'sparsify:<dir>' or 'registry:<release>/<sae_id>'"
        )
    if not (path / SAE_WEIGHTS).exists() and (path / SPARSIFY_WEIGHTS).exists():
        return _load_sparsify(path, model, hook, device)
    if not (path / SAE_WEIGHTS).exists():
        raise ArtifactMismatch(f"{path} is not an SAE folder (no {SAE_WEIGHTS})")
    return _load_folder(path, f"local:{path.resolve()}", path.resolve().name, model, hook, device)


def _load_folder(path: Path, source: str, name: str, model: LoadedModel | None, hook: str | None,
                 device: str) -> LoadedSAE:
    from sae_lens import SAE

    cfg = _read_cfg(path)
    meta = sae_metadata(path)
    if "d_in" not in cfg or "d_sae" not in cfg:
        raise ArtifactMismatch(f"{path / SAE_CFG} lacks d_in/d_sae; not an sae-lens SAE config")
    sae_hook = _validate(str(path), int(cfg["d_in"]), meta.get("hook_name"), model, hook, meta)
    try:
        sae = SAE.load_from_disk(path, device=device, dtype="float32")
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ArtifactMismatch(f"{path}: sae-lens cannot load this SAE ({str(exc).splitlines()[0]})") from None
    sae.eval()
    return LoadedSAE(sae, _identity(sae, name, source, sae_hook))


def _load_sparsify(path: Path, model: LoadedModel | None, hook: str | None, device: str) -> LoadedSAE:
    from sae_lens import SAE
    from sae_lens.loading.pretrained_sae_loaders import sparsify_disk_loader

    cfg = _read_cfg(path)
    if not (path / SPARSIFY_WEIGHTS).exists():
        raise ArtifactMismatch(f"{path} is not a sparsify SAE folder (no {SPARSIFY_WEIGHTS})")
    d_in = int(cfg["d_in"]) if "d_in" in cfg else None
    try:
        layer = int(path.name.split(".")[-1].split("_")[-1])
        sae_hook = f"blocks.{layer}.hook_resid_post"
    except ValueError:
        sae_hook = None
    if d_in is not None:
        _validate(str(path), d_in, sae_hook, model, hook)
    def converter(folder: Any, device: str = "cpu", cfg_overrides: dict[str, Any] | None = None) -> Any:
        cfg_dict, state = sparsify_disk_loader(folder, device=device, cfg_overrides=cfg_overrides)
        # sparsify stores W_dec as (latents, d_in) like sae-lens; the converter transposes it regardless
        w_dec, d_sae = state["W_dec"], int(cfg_dict["d_sae"])
        if w_dec.shape[0] != d_sae and w_dec.shape[1] == d_sae:
            state["W_dec"] = w_dec.T.contiguous()
        return cfg_dict, state

    try:
        sae = SAE.load_from_disk(path, device=device, dtype="float32", converter=converter)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ArtifactMismatch(f"{path}: not a sparsify SAE folder sae-lens can convert ({exc})") from None
    sae.eval()
    sae_hook = _validate(str(path), int(sae.cfg.d_in), sae.cfg.metadata.hook_name, model, hook)
    return LoadedSAE(sae, _identity(sae, path.resolve().name, f"sparsify:{path.resolve()}", sae_hook))


def registry_ref(ref: str) -> tuple[str, str]:
    """Split ``<release>/<sae_id>`` (the part after ``registry:``) into sae-lens's release and SAE id.

    A release of sae-lens's registry (``pretrained_saes.yaml``) takes the first path component and the id the
    rest (ids may hold slashes). Anything else with at least three components is a Hugging Face repository in
    sae-lens's own format, ``<org>/<repo>/<folder>``, which ``SAE.from_pretrained`` loads as release
    ``<org>/<repo>``. Unknown releases and ids are one-line :class:`ModelError` s; no network is used.
    """
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    release, _, sae_id = ref.partition("/")
    if release in directory:
        ids = directory[release].saes_map
        if sae_id not in ids:
            close = difflib.get_close_matches(sae_id, list(ids), n=3, cutoff=0.6) or list(ids)[:3]
            raise ModelError(f"registry release {release!r} has no SAE {sae_id!r} ({len(ids)} SAEs, e.g. "
                             f"{', '.join(close)})")
        return release, sae_id
    parts = ref.split("/")
    if len(parts) >= 3 and all(parts):
        return "/".join(parts[:2]), "/".join(parts[2:])
    close = difflib.get_close_matches(release, list(directory), n=3, cutoff=0.6)
    raise ModelError(
        f"unknown registry SAE {ref!r}: expected registry:<release>/<sae_id> with a release of sae-lens's "
        f"pretrained_saes.yaml{' (close: ' + ', '.join(close) + ')' if close else ''}, or "
        "registry:<org>/<repo>/<folder> for a Hugging Face repo in sae-lens's format"
    )


def _load_registry(ref: str, model: LoadedModel | None, hook: str | None, device: str) -> LoadedSAE:
    """``SAE.from_pretrained(release, sae_id)``, with the SAE's config read (and checked against the model and the
    hook) before its weights. Files come from the hub cache when they are there; offline and not cached is one
    line saying how to get them."""
    from sae_lens import SAE
    from sae_lens.loading.pretrained_sae_loaders import load_sae_config_from_huggingface

    release, sae_id = registry_ref(ref)
    where = f"{release}/{sae_id}"
    with _registry_errors(release, sae_id):
        cfg = load_sae_config_from_huggingface(release, sae_id, device="cpu")
    meta = {**(cfg.get("metadata") or {}), **{k: cfg[k] for k in ("hook_name", "model_name") if cfg.get(k)}}
    if "d_in" not in cfg:
        raise ArtifactMismatch(f"registry SAE {where}: sae-lens's config has no d_in")
    _validate(where, int(cfg["d_in"]), meta.get("hook_name"), model, hook, meta)
    with _registry_errors(release, sae_id):
        sae = SAE.from_pretrained(release, sae_id, device=device, dtype="float32")
    sae.eval()
    sae_hook = _validate(where, int(sae.cfg.d_in), sae.cfg.metadata.hook_name, model, hook)
    return LoadedSAE(sae, _identity(sae, where, f"registry:{where}", sae_hook))


@contextlib.contextmanager
def _registry_errors(release: str, sae_id: str) -> Iterator[None]:
    """Turn what sae-lens and huggingface_hub raise into one-line errors, and read cached tensor shapes locally."""
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

    try:
        with _tensor_shapes_from_cache():
            yield
    except MonaError:
        raise
    except Exception as exc:  # hub, registry and converter errors come in many types
        repo_id, folder = get_repo_id_and_folder_name(release, sae_id)
        if is_offline_error(exc):
            state = "offline (HF_HUB_OFFLINE=1)" if hub_offline() else "unreachable"
            raise ModelError(
                f"registry SAE {release}/{sae_id} (repo {repo_id}, folder {folder}) is not in the local Hugging Face "
                f"cache ({hub_cache_dir()}) and the hub is {state}; {download_hint(repo_id, f'{folder}/*')}"
            ) from None
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = lines[0][:300] if lines else type(exc).__name__
        raise ModelError(f"cannot load registry SAE {release}/{sae_id}: {reason}") from None


@contextlib.contextmanager
def _tensor_shapes_from_cache() -> Iterator[None]:
    """sae-lens reads the tensor shapes of some releases (Gemma Scope 2) with HTTP range requests that bypass the
    hub cache and fail without a network. While loading, answer them from the cached file when it is there (the
    same bytes the loader reads next), and ask the hub only when it is not and the hub may be used."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import LocalEntryNotFoundError
    from sae_lens.loading import pretrained_sae_loaders as loaders

    remote = loaders.get_safetensors_tensor_shapes

    def shapes(repo_id: str, filename: str) -> dict[str, list[int]]:
        cached = try_to_load_from_cache(repo_id, filename)
        if isinstance(cached, str):
            return safetensors_shapes(Path(cached))
        if hub_offline():
            raise LocalEntryNotFoundError(f"{repo_id}/{filename} is not in the local hub cache")
        return remote(repo_id, filename)

    loaders.get_safetensors_tensor_shapes = shapes
    try:
        yield
    finally:
        loaders.get_safetensors_tensor_shapes = remote


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor shapes from a safetensors file's header (8-byte length + JSON), without reading the tensors."""
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
    return {name: list(info["shape"]) for name, info in header.items() if name != "__metadata__"}


def _identity(sae: Any, name: str, source: str, hook: str | None) -> SAEIdentity:
    """The identity of a loaded sae-lens SAE: the same fields, and the same weights hash, from every source."""
    cfg = sae.cfg
    arch = cfg.architecture() if callable(getattr(cfg, "architecture", None)) else type(sae).__name__
    return SAEIdentity(name, source, state_hash(sae), hook, int(cfg.d_in), int(cfg.d_sae), str(arch))


def resolve_sae(sae: Any, *, model: Any = None, hook: str | None = None, device: str = "cpu") -> LoadedSAE:
    """The one way to get an SAE and its identity from what a user passes.

    ``sae``: a spec for :func:`load_sae` (string or path), a :class:`LoadedSAE`, or a bare sae-lens ``SAE`` object
    (wrapped with name ``in-memory``, source ``object``; its hook from ``cfg.metadata.hook_name``, else ``hook``).
    ``model``: a ``LoadedModel`` to check ``d_in`` and the hook against (a model name or ``None`` skips that).
    ``device`` only applies to SAEs loaded here; objects stay where they are. Identities of the same weights agree
    whatever the source: ``weights_hash`` is :func:`mona.io.state_hash` of the loaded tensors.
    """
    checked = model if isinstance(model, LoadedModel) else None
    if isinstance(sae, (str, Path)):
        return load_sae(sae, model=checked, hook=hook, device=device)
    if isinstance(sae, LoadedSAE):
        ident = sae.identity
        _validate(ident.name, ident.d_in, ident.hook, checked, hook, require_hook=False)
        return sae
    if not hasattr(sae, "cfg") or not hasattr(sae, "encode"):
        raise ModelError(f"not an SAE: {type(sae).__name__} (pass a load_sae spec, a LoadedSAE or an sae-lens SAE)")
    meta = getattr(sae.cfg, "metadata", None)
    sae_hook = _validate("in memory", int(sae.cfg.d_in), getattr(meta, "hook_name", None) or None, checked, hook,
                         require_hook=False)
    return LoadedSAE(sae, _identity(sae, "in-memory", "object", sae_hook))


def sae_for_identity(identity: dict[str, Any], device: str = "cpu") -> LoadedSAE:
    """Load the SAE a store's manifest names (its ``sae`` entry), checking that its weights are the same.

    ``builtin:<name>`` reads the shipped asset, ``local:<dir>`` and ``sparsify:<dir>`` that folder and
    ``registry:<release>/<id>`` sae-lens's registry. Raises :class:`ModelError` when the SAE cannot be found and
    :class:`ArtifactMismatch` when its weights hash differs from the one recorded.
    """
    source = str(identity.get("source") or "")
    kind, _, rest = source.partition(":")
    if kind == "builtin":
        spec: str | Path = "default" if rest == DEFAULT_SAE_NAME else ASSETS_DIR / rest
    elif kind == "local":
        spec = rest
    elif kind in ("registry", "sparsify"):
        spec = source
    else:
        raise ModelError(
            f"cannot locate SAE {identity.get('name')!r} (source {source!r}) from the store's manifest; "
            "pass the SAE explicitly (sae= in Python, --sae for mona select)"
        )
    sae = load_sae(spec, hook=identity.get("hook"), device=device)
    want = identity.get("weights_hash")
    if want and sae.identity.weights_hash != want:
        raise ArtifactMismatch(
            f"SAE {spec} has weights {sae.identity.weights_hash} but the store was embedded with {want}; "
            "pass the SAE that made the codes (sae= in Python, --sae for mona select)"
        )
    return sae
