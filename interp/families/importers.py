"""Foreign checkpoint formats ↔ interp's model families.

Three formats come in, each read from a `.pt`/`.pth` (torch.load with `weights_only=True`: no
arbitrary object is unpickled) or a `.safetensors` file, and each becomes a model built by its
family (`FAMILY.build(spec, p)` with the mapped weights loaded strictly), so every analysis
works on it:

- `hooked-transformer`: a legacy TransformerLens `HookedTransformer` state dict (`embed.W_E`,
  `blocks.0.attn.W_Q`, …) of Nanda et al.'s model on tokens `a b =` → the native
  `TransformerBridge` of `interp.families.transformer`, with the same logits;
- `embed-mlp`: Chughtai et al.'s embedding MLP (`W_x`, `W_y`, `W`, `W_U`) → a two-layer net,
  folded exactly;
- `two-layer`: interp's own two-layer state dict (`U`, `V`, `W`, optional `mu`), e.g. written by
  a plain PyTorch user.

`to_hooked_transformer` goes the other way, so legacy code reads an interp transformer.
The conventions (names, shapes, what is refused) are tabled in docs/checkpoints.md.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from ..core.specs import RunSpec, SpecError, TaskSpec, TransformerSpec, TwoLayerSpec, memory_limit
from .base import family_of
from .transformer import BLOCK_NAMES, N_CTX, TOP_NAMES


class CheckpointImportError(ValueError):
    """A foreign checkpoint cannot be read or mapped; the one-line message names the file or key
    and the problem."""


StateDict = dict[str, Tensor]

# --- reading files --------------------------------------------------------------------------

NESTING_KEYS_NOTE = "a dict holding exactly one dict of tensors (under 'model', 'state_dict', …)"


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """The tensors of a `.pt`/`.pth` or `.safetensors` file, by name.

    `.pt`/`.pth` files are read with `torch.load(path, weights_only=True, map_location="cpu")`
    only, so nothing but tensors and plain containers is unpickled; a file torch refuses under
    `weights_only` is refused. The file must hold a flat dict of tensors, or a dict holding
    exactly one dict of tensors (under any key: "model", "state_dict", …), which is taken — the
    other entries (an optimizer's state, a config, an epoch count) are ignored. Anything else
    raises `CheckpointImportError`.

    What a file may cost is bounded by the memory limit (`INTERP_MAX_BYTES`, as for a spec)
    before it is read and again before any tensor is laid out: the file's size, the sizes its
    zip archive records for its storages (torch unpacks deflated ones), and the tensors' shapes
    — a view that repeats one number (a stride-0 `expand`) counts at the size it claims. Meta,
    sparse and quantized tensors are refused: an importer reads dense numbers.
    """
    path = Path(path)
    if not path.is_file():
        if path.is_symlink():
            raise CheckpointImportError(f"{path} is a symbolic link to {os.readlink(path)}, which is not a file")
        raise CheckpointImportError(f"{path} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix not in (".safetensors", ".pt", ".pth"):
        raise CheckpointImportError(f"{path}: unknown file type {suffix or '(none)'!r}; expected .pt, .pth or .safetensors")
    _check_bytes(path, path.stat().st_size, "the file")
    if suffix == ".safetensors":
        state = _read_safetensors(path)
    else:
        _check_bytes(path, _zip_storage_bytes(path), "its storages, unpacked,")
        state = _state_dict_in(path, _torch_load(path))
    _check_tensors(path, state)
    return state


def _check_bytes(path: Path, size: int, what: str) -> None:
    limit = memory_limit()
    if size > limit:
        raise CheckpointImportError(f"{path}: {what} would take {_gib(size)}, over the memory limit of {_gib(limit)}; "
                                    "set INTERP_MAX_BYTES to raise it")


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"


def _zip_storage_bytes(path: Path) -> int:
    """What a torch zip file unpacks to, from the sizes its central directory records (read
    without unpacking anything); 0 for the legacy format, whose storages are no larger than
    the file."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return 0


def _check_tensors(path: Path, state: StateDict) -> None:
    """Every tensor dense, with numbers on the CPU, and all of them, laid out, within the limit."""
    for key, tensor in state.items():
        if tensor.device.type != "cpu":  # map_location moved every real device's tensors here
            hint = " (a shape without numbers)" if tensor.is_meta else ""
            raise CheckpointImportError(f"{path}: {key} is a {tensor.device.type} tensor{hint}; save the weights")
        if tensor.layout != torch.strided:
            raise CheckpointImportError(f"{path}: {key} is a {str(tensor.layout).replace('torch.', '')} tensor; "
                                        "save dense tensors (`.to_dense()`)")
        if tensor.is_quantized:
            raise CheckpointImportError(f"{path}: {key} is a quantized tensor; save float weights (`.dequantize()`)")
    claimed = sum(tensor.numel() * tensor.element_size() for tensor in state.values())
    if claimed > memory_limit():
        key, tensor = max(state.items(), key=lambda item: item[1].numel() * item[1].element_size())
        _check_bytes(path, claimed, f"its tensors (the largest, {key}, of shape {list(tensor.shape)})")


def _read_safetensors(path: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointImportError(f"{path} is not a readable safetensors file: {_first_line(err)}") from None


def _torch_load(path: Path) -> object:
    import warnings

    try:
        with warnings.catch_warnings():  # torch's advice on pickle protocols is not the user's business
            warnings.simplefilter("ignore")
            return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:  # torch's wording changes between releases; ours does not
        found = re.search(r"GLOBAL\s+([\w.]+)", str(err))  # the class or function pickled, when torch names it
        if found:
            raise CheckpointImportError(
                f"{path} pickles objects other than tensors and plain containers ({found[1]}), which are never "
                "unpickled here (torch.load weights_only=True); save a state dict of tensors") from None
        raise CheckpointImportError(
            f"{path} is not a readable torch file: torch.load(weights_only=True), the only way files are read "
            "here, takes tensors and plain containers, not what this file holds (a pickled object, or no pickle)") from None
    except Exception as err:  # truncated, not a torch file, …: one line, not a traceback
        raise CheckpointImportError(f"{path} is not a readable torch file: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _is_tensor_dict(obj: object) -> bool:
    return (isinstance(obj, dict) and len(obj) > 0
            and all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()))


def _state_dict_in(path: Path, obj: object) -> StateDict:
    """`obj` itself if it is a flat dict of tensors, else its one entry that is."""
    if _is_tensor_dict(obj):
        return dict(obj)
    if not isinstance(obj, dict):
        raise CheckpointImportError(f"{path} holds a {type(obj).__name__}, not a state dict")
    if not obj:
        raise CheckpointImportError(f"{path} holds an empty dict, not a state dict")
    nested = [key for key, value in obj.items() if _is_tensor_dict(value)]
    if len(nested) == 1:
        return dict(obj[nested[0]])
    if nested:
        raise CheckpointImportError(f"{path} holds several state dicts (under {', '.join(map(repr, nested))}); "
                                    "save the one to import alone")
    raise CheckpointImportError(f"{path} holds a dict that is neither a state dict nor {NESTING_KEYS_NOTE} "
                                f"(keys: {', '.join(map(repr, list(obj)[:8]))})")


# --- checking -------------------------------------------------------------------------------


def _check_keys(state: StateDict, expected: dict[str, tuple[int, ...]], what: str) -> None:
    """Raise unless `state` has exactly the keys of `expected`, each a float tensor of that shape."""
    for problem, keys in (("missing", [k for k in expected if k not in state]),
                          ("unknown", [k for k in state if k not in expected])):
        if keys:
            more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
            raise CheckpointImportError(f"{what}: {problem} key {keys[0]}{more}")
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise CheckpointImportError(f"{what}: {key} has shape {tuple(state[key].shape)}, expected {shape}")
        if not state[key].is_floating_point():
            raise CheckpointImportError(f"{what}: {key} has dtype {state[key].dtype}, expected a float tensor")


def _dims(state: StateDict, key: str, n: int, what: str) -> tuple[int, ...]:
    """The shape of `state[key]`, which must have `n` axes (the dimensions are read from it)."""
    if key not in state:
        raise CheckpointImportError(f"{what}: missing key {key}")
    shape = tuple(state[key].shape)
    if len(shape) != n:
        raise CheckpointImportError(f"{what}: {key} has shape {shape}, expected {n} axes")
    return shape


def _check_finite(state: StateDict, keys, what: str) -> None:
    """Every weight a number: NaN or ±inf, named with its key, is refused before anything is built."""
    for key in keys:
        nan, inf = int(state[key].isnan().sum()), int(state[key].isinf().sum())
        if nan or inf:
            kinds = " and ".join(kind for kind, count in (("NaN", nan), ("inf", inf)) if count)
            raise CheckpointImportError(f"{what}: weights contain {kinds} in {key} ({nan + inf} of "
                                        f"{state[key].numel()} entries); only finite weights can be imported")


def _loaded(family, spec, p: int, state: StateDict, what: str) -> nn.Module:
    """A model built by `family` for (spec, p) holding `state`, loaded strictly; its weights
    must still be finite in the family's dtype (float32 overflows beyond ±3.4e38)."""
    model = family.build(spec, p)
    model.load_state_dict(state, strict=True)  # copies into the family's own dtype (float32)
    for name, value in model.state_dict().items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointImportError(f"{what}: weights overflow float32 in {name} (values beyond ±3.4e38); "
                                        "only finite weights can be imported")
    return model.eval()


def _spec(kind: type, p: int, what: str, **fields):
    """The model's spec, after checking that a run of it over Z_p fits the memory limit (the
    estimate `RunSpec.memory_bytes`, from shapes alone, before any model is built)."""
    try:
        spec = kind(**fields)
        RunSpec(task=TaskSpec(p=p), model=spec)
    except SpecError as err:
        raise CheckpointImportError(f"{what}: {err}") from None
    return spec


# --- legacy HookedTransformer ↔ native bridge --------------------------------------------------

# persistent buffers of the legacy attention (the causal mask and its fill value), not weights
_LEGACY_BUFFER = re.compile(r"blocks\.\d+\.attn\.(mask|IGNORE)$")
# LayerNorm / RMSNorm scales and biases: ln1, ln2, ln_final, the SoLU mlp.ln
_LAYERNORM = re.compile(r"(^|\.)ln[^.]*\.(w|b)$")
_LAYER = re.compile(r"blocks\.(\d+)\.")


def _legacy_shapes(n_layers: int, p: int, d_model: int, n_heads: int, d_head: int, d_mlp: int,
                   d_vocab_out: int) -> dict[str, tuple[int, ...]]:
    """Every legacy weight's name and shape for these dimensions (d_vocab = p + 1)."""
    shapes = {"embed.W_E": (p + 1, d_model), "pos_embed.W_pos": (N_CTX, d_model)}
    for layer in range(n_layers):
        b = f"blocks.{layer}."
        for name in ("Q", "K", "V"):
            shapes[f"{b}attn.W_{name}"] = (n_heads, d_model, d_head)
            shapes[f"{b}attn.b_{name}"] = (n_heads, d_head)
        shapes[f"{b}attn.W_O"], shapes[f"{b}attn.b_O"] = (n_heads, d_head, d_model), (d_model,)
        shapes[f"{b}mlp.W_in"], shapes[f"{b}mlp.b_in"] = (d_model, d_mlp), (d_mlp,)
        shapes[f"{b}mlp.W_out"], shapes[f"{b}mlp.b_out"] = (d_mlp, d_model), (d_model,)
    shapes["unembed.W_U"], shapes["unembed.b_U"] = (d_model, d_vocab_out), (d_vocab_out,)
    return shapes


def _without_extras(state: StateDict, what: str) -> StateDict:
    """`state` less the legacy attention buffers and Chughtai et al.'s `x_embed`/`y_embed`
    (copies of embed.W_E, checked equal); LayerNorm weights are refused here."""
    norms = [k for k in state if _LAYERNORM.search(k)]
    if norms:
        raise CheckpointImportError(
            f"{what}: {norms[0]} is a LayerNorm weight; interp's transformer has no LayerNorm, so "
            "a model trained with one cannot be mapped (fold it first, or train without)")
    kept = {k: v for k, v in state.items() if not _LEGACY_BUFFER.fullmatch(k)}
    for key in ("x_embed", "y_embed"):
        if key in kept:
            extra = kept.pop(key)
            embed = state.get("embed.W_E")
            if embed is None or extra.shape != embed.shape or not torch.equal(extra, embed):
                raise CheckpointImportError(f"{what}: {key} differs from embed.W_E; only copies of it can be ignored")
    return kept


def _hooked_dims(state: StateDict, what: str) -> dict[str, int]:
    """n_layers, p, d_model, n_heads, d_head, d_mlp, d_vocab_out read from the shapes."""
    d_vocab, d_model = _dims(state, "embed.W_E", 2, what)
    n_ctx, _ = _dims(state, "pos_embed.W_pos", 2, what)
    if n_ctx != N_CTX:
        raise CheckpointImportError(f"{what}: pos_embed.W_pos has n_ctx = {n_ctx}; interp's transformer reads "
                                    f"exactly {N_CTX} tokens `a b =`")
    n_heads, _, d_head = _dims(state, "blocks.0.attn.W_Q", 3, what)
    _, d_mlp = _dims(state, "blocks.0.mlp.W_in", 2, what)
    _, d_vocab_out = _dims(state, "unembed.W_U", 2, what)
    p = d_vocab - 1  # `=` is the last token
    if d_vocab_out not in (p, p + 1):
        raise CheckpointImportError(f"{what}: unembed.W_U has d_vocab_out = {d_vocab_out}; with d_vocab = {d_vocab} "
                                    f"(p = {p} residues and `=`) it must be {p} (or {p + 1}, whose `=` column is dropped)")
    layers = sorted({int(m.group(1)) for k in state if (m := _LAYER.match(k))})
    if layers != list(range(len(layers))):
        raise CheckpointImportError(f"{what}: block indices {layers} are not 0..n_layers-1")
    return {"n_layers": len(layers), "p": p, "d_model": d_model, "n_heads": n_heads, "d_head": d_head,
            "d_mlp": d_mlp, "d_vocab_out": d_vocab_out}


def from_hooked_transformer(state: StateDict, act: str = "relu", what: str = "HookedTransformer state dict") -> nn.Module:
    """The native bridge model (`interp.families.transformer`) computing the logits of the legacy
    TransformerLens `HookedTransformer` whose state dict is `state`.

    Conventions: tokens `a b =` with `=` the last vocabulary token, so p = d_vocab − 1 and
    n_ctx must be 3; no LayerNorm (normalization_type=None); causal attention scaled by
    1/√d_head; `act` is the MLP's activation (relu or gelu; the state dict does not say).
    d_vocab_out must be p; when it is p + 1 (the HookedTransformer default d_vocab_out = d_vocab),
    the `=` output column is dropped and the logits over the p residues are kept (unchanged:
    logits need no normalisation). n_layers, d_model, n_heads, d_head, d_mlp are read from the
    shapes. Ignored: the buffers `blocks.L.attn.mask` and `blocks.L.attn.IGNORE`, and
    `x_embed`/`y_embed` (copies of embed.W_E in Chughtai et al.'s models; refused if they
    differ). Refused with one line naming the key: LayerNorm weights, missing or unknown keys,
    shapes that disagree, n_ctx ≠ 3. `what` names the source in the messages.
    """
    from .transformer import FAMILY

    if "embed.weight" in state:
        raise CheckpointImportError(f"{what}: embed.weight is a TransformerBridge name; this is already a native "
                                    "state dict (load it into FAMILY.build(spec, p)), not a legacy HookedTransformer one")
    state = _without_extras(state, what)
    dims = _hooked_dims(state, what)
    shapes = _legacy_shapes(**dims)
    _check_keys(state, shapes, what)
    p = dims["p"]
    if p < 2:
        raise CheckpointImportError(f"{what}: embed.W_E has d_vocab = {p + 1}, so p = {p} < 2")
    spec = _spec(TransformerSpec, p, what, n_layers=dims["n_layers"], d_model=dims["d_model"],
                 n_heads=dims["n_heads"], d_head=dims["d_head"], d_mlp=dims["d_mlp"], act=act)
    _check_finite(state, shapes, what)
    return _loaded(FAMILY, spec, p, _bridge_state(state, dims["n_layers"], p), what)


def _bridge_state(state: StateDict, n_layers: int, p: int) -> StateDict:
    """The bridge's state dict from a checked legacy one (W_U and b_U cut to the p residues)."""
    out = {bridge: to_bridge(state[legacy]) for legacy, (bridge, to_bridge, _) in TOP_NAMES.items()}
    out["unembed.weight"], out["unembed.bias"] = out["unembed.weight"][:p], out["unembed.bias"][:p]
    for layer in range(n_layers):
        for legacy, (bridge, to_bridge, _) in BLOCK_NAMES.items():
            out[f"blocks.{layer}.{bridge}"] = to_bridge(state[f"blocks.{layer}.{legacy}"])
    return out


def to_hooked_transformer(model: nn.Module) -> StateDict:
    """A legacy TransformerLens `HookedTransformer` state dict (legacy names and shapes, table in
    docs/checkpoints.md) of an interp transformer, so older code reads it: a HookedTransformer
    with d_vocab = p + 1, d_vocab_out = p, n_ctx = 3, normalization_type=None and the model's
    act_fn computes the same logits. It includes the persistent attention buffers
    `blocks.L.attn.mask` (lower-triangular, bool) and `blocks.L.attn.IGNORE` (−inf) that a strict
    `load_state_dict` of a HookedTransformer expects. Tensors are fresh copies on the CPU."""
    from .transformer import FAMILY

    if not FAMILY.owns(model):
        raise CheckpointImportError(f"to_hooked_transformer takes an interp transformer, not a {type(model).__name__}")
    cfg, state = model.cfg, {k: v.detach().cpu() for k, v in model.state_dict().items()}
    out = {legacy: to_legacy(state[bridge], cfg.n_heads) for legacy, (bridge, _, to_legacy) in TOP_NAMES.items()}
    for layer in range(cfg.n_layers):
        b = f"blocks.{layer}."
        for legacy, (bridge, _, to_legacy) in BLOCK_NAMES.items():
            out[b + legacy] = to_legacy(state[b + bridge], cfg.n_heads)
        out[b + "attn.mask"] = torch.tril(torch.ones(N_CTX, N_CTX, dtype=torch.bool))
        out[b + "attn.IGNORE"] = torch.tensor(float("-inf"))
    return {k: v.contiguous().clone() for k, v in out.items()}


# --- two-layer formats ------------------------------------------------------------------------


def from_embed_mlp(state: StateDict, act: str = "relu", what: str = "embedding-MLP state dict") -> nn.Module:
    """The two-layer net computing Chughtai et al.'s embedding MLP, folded exactly.

    The embedding MLP has `W_x`, `W_y` [p, e] (a's and b's embeddings), `W` [2e, h] (the hidden
    layer on the concatenated embeddings), `W_U` [h, p], no biases:
    logits = φ([W_x[a]; W_y[b]]·W)·W_U with φ = ReLU (`act` for other elementwise φ). Since
    [W_x[a]; W_y[b]]·W = W_x[a]·W[:e] + W_y[b]·W[e:], it is the two-layer net
    U = (W_x·W[:e])ᵀ, V = (W_y·W[e:])ᵀ [h, p], W = W_Uᵀ [p, h], no μ, untied, width h.
    Extra or missing keys and mismatched shapes are refused.
    """
    from .two_layer import FAMILY

    p, e = _dims(state, "W_x", 2, what)
    _, h = _dims(state, "W", 2, what)
    shapes = {"W_x": (p, e), "W_y": (p, e), "W": (2 * e, h), "W_U": (h, p)}
    _check_keys(state, shapes, what)
    spec = _spec(TwoLayerSpec, p, what, width=h, act=act, tied=False, bias=False)
    _check_finite(state, shapes, what)
    w_x, w_y, w, w_u = (state[k].double() for k in ("W_x", "W_y", "W", "W_U"))  # fold in float64
    folded = {"U": (w_x @ w[:e]).T, "V": (w_y @ w[e:]).T, "W": w_u.T}
    return _loaded(FAMILY, spec, p, {k: v.float().contiguous() for k, v in folded.items()}, what)


def from_two_layer(state: StateDict, act: str = "relu", what: str = "two-layer state dict") -> nn.Module:
    """interp's two-layer net from its own state dict: U [width, p], V [width, p] (absent: a tied
    net, V = U), W [p, width], mu [p] (absent: no output bias); width and p are read from U.
    `act` is φ in f = W·φ(U e_a + V e_b) + μ (the state dict does not say)."""
    from .two_layer import FAMILY

    width, p = _dims(state, "U", 2, what)
    expected = {"U": (width, p), "V": (width, p), "W": (p, width), "mu": (p,)}
    tied, bias = "V" not in state, "mu" in state
    shapes = {k: s for k, s in expected.items() if (k != "V" or not tied) and (k != "mu" or bias)}
    _check_keys(state, shapes, what)
    spec = _spec(TwoLayerSpec, p, what, width=width, act=act, tied=tied, bias=bias)
    _check_finite(state, shapes, what)
    return _loaded(FAMILY, spec, p, dict(state), what)


# --- plain PyTorch MLPs -----------------------------------------------------------------------


def from_torch_mlp(state: StateDict, act: str = "relu", what: str = "torch-mlp state dict") -> nn.Module:
    """interp's MLP over features from the state dict of a plain `nn.Sequential(Linear, act,
    Linear, act, …, Linear)` (keys `K.weight`, `K.bias`; `act` between the Linear layers)."""
    from .mlp import from_sequential_state

    _check_finite(state, [key for key, value in state.items() if value.is_floating_point()], what)
    try:
        return from_sequential_state(state, act)
    except ValueError as err:
        raise CheckpointImportError(f"{what}: {err}") from None


def to_torch_mlp(model: nn.Module) -> StateDict:
    """The state dict of the plain `nn.Sequential` that computes `model`'s logits (`from_torch_mlp`
    reads it back)."""
    from .mlp import MLPNet, sequential_state

    if not isinstance(model, MLPNet):
        raise CheckpointImportError(f"torch-mlp exports a model of the mlp family, not a {family_of(model).name} "
                                    "model")
    return sequential_state(model)


# --- one entry point --------------------------------------------------------------------------

#: format name → importer(state, act, what)
FORMATS: dict[str, Callable[..., nn.Module]] = {
    "hooked-transformer": from_hooked_transformer,
    "embed-mlp": from_embed_mlp,
    "two-layer": from_two_layer,
    "torch-mlp": from_torch_mlp,
}

#: format name → exporter(model) → state dict (the formats other tools load without interp)
EXPORT_FORMATS: dict[str, Callable[[nn.Module], StateDict]] = {
    "hooked-transformer": to_hooked_transformer,
    "torch-mlp": to_torch_mlp,
}


#: export format → the model family it writes
EXPORT_FAMILIES = {"hooked-transformer": "transformer", "torch-mlp": "mlp"}


def export_state(model: nn.Module, format: str) -> StateDict:
    """`model` as a state dict in the export `format`, refused in one line, naming the formats
    that its family exports to, when the format is another family's."""
    family = family_of(model).name
    if EXPORT_FAMILIES.get(format) != family:
        fits = [name for name, owner in EXPORT_FAMILIES.items() if owner == family]
        raise CheckpointImportError(
            f"--format {format} writes a model of the {EXPORT_FAMILIES.get(format, '?')} family; this run's is of the "
            f"{family} family, which exports to " + (f"--format {' or '.join(fits)}" if fits else
                                                    "no state-dict format (its release folder, interp export RUN --to "
                                                    "DIR, loads in plain PyTorch: docs/checkpoints.md)"))
    return EXPORT_FORMATS[format](model)


def import_model(path: str | os.PathLike, format: str, act: str = "relu", p: int | None = None) -> nn.Module:
    """The interp model held by the checkpoint file `path` (`.pt`, `.pth` or `.safetensors`)
    in `format` (a key of `FORMATS`), with MLP activation `act`. When `p` is given, the model
    must be over Z_p. Every problem raises `CheckpointImportError` with one line."""
    if format not in FORMATS:
        raise CheckpointImportError(f"unknown checkpoint format {format!r}; formats: {', '.join(FORMATS)}")
    model = FORMATS[format](read_state_dict(path), act, what=str(path))
    model_p = family_of(model).unembedding(model).shape[-1]
    if p is not None and model_p != p:
        what = "classes" if family_of(model).inputs == "features" else "residues"
        raise CheckpointImportError(f"{path} holds a model over p = {model_p} {what}, not p = {p}")
    return model


__all__ = ["BLOCK_NAMES", "CheckpointImportError", "EXPORT_FAMILIES", "EXPORT_FORMATS", "export_state",
           "FORMATS", "TOP_NAMES", "from_embed_mlp",
           "from_hooked_transformer", "from_torch_mlp", "from_two_layer", "to_torch_mlp", "import_model",
           "read_state_dict", "to_hooked_transformer"]
