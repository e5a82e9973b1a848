"""Frozen specs that fully describe a run: task, label noise, model and training.

Every run is reproducible from its `RunSpec` alone (each random choice has its own seed), and the
spec round-trips exactly through JSON. `RunSpec.with_overrides` implements the CLI's
`--set key=value`: a key is either `section.field` (`noise.rate`) or a bare field name when it is
unique across sections (`p`, `steps`).
"""

from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, Callable, Union

from .features import FEATURE_SETS
from .groups import Group, GroupError, cyclic, read_table
from .groups import group as built_in_group  # `group` is also a TaskSpec field

OPS = ("add", "sub", "mul", "div", "x2y2", "classify")
NOISE_KINDS = ("wrong", "uniform", "symmetric", "pair_flip", "matrix")
ACTIVATIONS = ("relu", "quadratic", "gelu", "abs", "reverse_relu")
INITS = ("standard", "doshi")
OPTIMIZERS = ("adamw", "adam", "sgd")
LOSSES = ("ce", "mse")
SCHEDULES = ("constant", "cosine")


class SpecError(ValueError):
    """A spec field has a value the library cannot use; the message says which and why."""


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SpecError(f"{name}={value!r} is not one of {', '.join(choices)}")


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise SpecError(f"{name} must be > 0, got {value!r}")


def check_integer(name: str, value: Any, minimum: int = 0, maximum: int | None = None) -> None:
    """An integer (never a float, which would be truncated, nor a bool) within bounds; else a
    SpecError naming the field (public: a family's spec validates its fields with it)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value >= maximum):
        bound = f" and < {maximum}" if maximum is not None else ""
        raise SpecError(f"{name} must be ≥ {minimum}{bound}, got {value!r}")


def _number(name: str, value: Any, positive: bool = False) -> None:
    """A finite real number, > 0 when `positive`, else ≥ 0."""
    _finite(name, value)
    if (positive and not value > 0) or value < 0:
        raise SpecError(f"{name} must be {'> 0' if positive else '≥ 0'}, got {value!r}")


def _finite(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise SpecError(f"{name} must be a finite number, got {value!r}")


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise SpecError(f"{name} must be true or false, got {value!r}")


#: seeds lie in [0, 2**63): what torch generators take, and what JSON readers keep exact as integers
SEED_LIMIT = 2**63


def check_seed(name: str, value: Any) -> None:
    """A seed: an integer in [0, SEED_LIMIT); else a SpecError naming the field (public)."""
    check_integer(name, value, 0, SEED_LIMIT)


_integer, _seed = check_integer, check_seed  # the short names the specs below use


TASK_P_DEFAULT = 113


class _DefaultP(int):
    """`TaskSpec.p` when it was not given: 113 for Z_p, but told apart from an explicit
    `p=113`, so a group task refuses a `p` that is not its order instead of taking it quietly."""

    def __repr__(self) -> str:
        return int.__repr__(self)


_P_NOT_GIVEN = _DefaultP(TASK_P_DEFAULT)

#: the ops that are composition in a group: a ∘ b and a ∘ b⁻¹ (for Z_p, a + b and a − b)
GROUP_OPS = ("add", "sub")


@lru_cache(maxsize=32)
def _group_of(name: str, table: tuple[tuple[int, ...], ...], elements: tuple[str, ...]) -> Group:
    """The task's group, built once per (name, table): a built-in by name, or a user's table
    (checked to be a group)."""
    if table:
        return Group.from_table(name, table, elements or None)
    return built_in_group(name)


def _index(x: Any) -> int:
    """An element index as given: an integer (int() would turn true/false and 0.5 into indices)."""
    if isinstance(x, bool):
        raise TypeError(f"{x!r} is not an element index")
    return operator.index(x)


@dataclass(frozen=True)
class TaskSpec:
    """a ∘ b mod p over all pairs (b ≠ 0 for div), split into train/test by `train_fraction`.

    With `group` set, the task is composition in that finite group instead (`op` add: a ∘ b,
    sub: a ∘ b⁻¹), its elements numbered 0..|G|−1 and `p` its order (set from it): a built-in
    by name ("S5", "A5", "D59", "C3xC3"; `groups.group`), or a user's own Cayley table
    (`table[a][b]` the index of a ∘ b) with its element names (`TaskSpec.from_group`). Without
    `group` (a config written before groups existed) it is the Z_p task of `op`.

    With `op="classify"`, the task is classification of feature vectors instead: `data` names a
    built-in data set (`features.FEATURE_SETS`: "digits", "mnist5k", "mnist1d"; `p`, its number of classes,
    is set from it) or a user's own (`Dataset.from_tensors`; give `p`), split per class by
    `train_fraction`.
    """

    op: str = "add"
    p: int = _P_NOT_GIVEN  # 113 for Z_p; with a group, leave it out (or give |G|)
    train_fraction: float = 0.3
    seed: int = 0  # train/test split
    group: str = ""  # "" for Z_p; else a built-in's name or the name of `table`'s group
    table: tuple[tuple[int, ...], ...] = ()  # a user's Cayley table; () for a built-in
    elements: tuple[str, ...] = ()  # the user table's element names, in its order
    data: str = ""  # with op classify: the feature data set's name

    def __post_init__(self) -> None:
        check_choice("task.op", self.op, OPS)
        if self.op == "classify" or self.data:
            self._check_features()
        if self.group or self.table or self.elements:
            self._check_group()
        if not isinstance(self.p, int) or isinstance(self.p, bool) or self.p < 2:
            raise SpecError(f"task.p must be an integer ≥ 2, got {self.p!r}")
        if self.op == "div" and not is_prime(self.p):
            raise SpecError(
                f"task.p={self.p} is not prime: division mod p needs every b ≠ 0 to be invertible"
            )
        if self.op == "mul" and not is_prime(self.p):
            raise SpecError(f"task.p={self.p} is not prime: multiplication mod p is a group on the non-zero "
                            "residues (what the Fourier analyses use) only for a prime p")
        _seed("task.seed", self.seed)
        _finite("task.train_fraction", self.train_fraction)
        if not 0 < self.train_fraction < 1:
            raise SpecError(f"task.train_fraction must lie in (0, 1), got {self.train_fraction!r}")

    def _check_features(self) -> None:
        """A classification task names its data; a built-in's `p` is its number of classes."""
        if self.op != "classify":
            raise SpecError(f"task.data={self.data!r} names a classification task's data: set task.op=classify")
        if not isinstance(self.data, str) or not self.data:
            raise SpecError(f"task.op=classify needs task.data, a data set's name ({', '.join(FEATURE_SETS)}, or your "
                            "own through Dataset.from_tensors)")
        if self.group:
            raise SpecError("task.group and task.data exclude each other: a task is over a group or over features")
        if self.data in FEATURE_SETS:
            classes = FEATURE_SETS[self.data][1]
            if self.p is not _P_NOT_GIVEN and self.p != classes:
                raise SpecError(f"task.p={self.p!r} but {self.data} has {classes} classes (leave p out, or name "
                                "your own data set: task.data=NAME)")
            object.__setattr__(self, "p", classes)
        elif self.p is _P_NOT_GIVEN:
            raise SpecError(f"task.data={self.data!r} is no built-in data set ({', '.join(FEATURE_SETS)}): give its "
                            "number of classes as task.p")

    @property
    def features(self) -> bool:
        """Whether the task classifies feature vectors (rather than composing a and b)."""
        return self.op == "classify"

    def _check_group(self) -> None:
        """Normalise the group fields (JSON gives lists) and set `p` to the group's order."""
        if not isinstance(self.group, str) or not self.group:
            raise SpecError(f"task.group must name the group (a built-in such as S5, or the name of task.table), "
                            f"got {self.group!r}")
        try:
            table = tuple(tuple(map(_index, row)) for row in self.table)
            elements = tuple(str(x) for x in self.elements)
        except (TypeError, ValueError):
            raise SpecError("task.table must be rows of element indices (from the CLI: task.group=FILE.json)") from None
        if elements and not table:
            raise SpecError("task.elements names the elements of a user's task.table; a built-in group names its own")
        if self.op not in GROUP_OPS:
            raise SpecError(f"task.op={self.op!r} is not a group operation: with task.group, op is add (a ∘ b) or "
                            "sub (a ∘ b⁻¹)")
        try:
            order = _group_of(self.group, table, elements).order
        except GroupError as err:
            raise SpecError(f"task.group: {err}") from None
        if self.p is not _P_NOT_GIVEN and self.p != order:
            raise SpecError(f"task.p={self.p!r} but {self.group} has {order} elements: with a group, p is its order "
                            "(leave p out)")
        for name, value in (("table", table), ("elements", elements), ("p", order)):
            object.__setattr__(self, name, value)

    @classmethod
    def from_group(cls, group: Group, **fields: Any) -> TaskSpec:
        """The task of composition in `group`, a built-in (`groups.group`) or any `Group`
        (`Group.from_table`, a user's table in its own element order, stored in the spec)."""
        try:
            same = built_in_group(group.name)
            user = not (same.order == group.order and bool((same.table == group.table).all())
                        and same.elements == group.elements)
        except ValueError:
            user = True
        if user:
            fields = {"table": tuple(map(tuple, group.table.tolist())), "elements": group.elements, **fields}
        return cls(group=group.name, **fields)

    @property
    def structure(self) -> Group:
        """The group the task composes in: `group`, or C_p for a Z_p add/sub task."""
        if self.group:
            return _group_of(self.group, self.table, self.elements)
        if self.op not in GROUP_OPS:
            raise SpecError(f"{self.op} mod {self.p} is not composition in a group given by its elements")
        return cyclic(self.p)

    @property
    def commutative(self) -> bool:
        if self.features:
            return False
        if self.group:
            return self.op == "add" and self.structure.abelian
        return self.op in ("add", "mul", "x2y2")

    def describe(self, markdown: bool = False) -> str:
        """The task in words: `add mod 113`, or `S5 (a∘b)` / `S5 (a∘b⁻¹)`; with `markdown`, the
        op as code (`` `add` mod 113 ``)."""
        if self.features:
            return f"classify {self.data}"
        if self.group:
            return f"{self.group} ({'a∘b' if self.op == 'add' else 'a∘b⁻¹'})"
        return f"`{self.op}` mod {self.p}" if markdown else f"{self.op} mod {self.p}"

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values; a Z_p task leaves out the group fields (so configs written
        before groups existed read back as they are), a built-in group its empty table."""
        out = dataclasses.asdict(self)
        out["p"] = int(self.p)  # a plain int, whether given or left out
        for name in ("group", "table", "elements", "data"):
            if not out[name]:
                del out[name]
        if "table" in out:
            out["table"] = [list(row) for row in out["table"]]
            out["elements"] = list(out["elements"])
        return out


@dataclass(frozen=True)
class NoiseSpec:
    """Label noise on training examples only; test labels stay clean.

    kind: `wrong` — a fraction `rate` of training examples gets a label drawn uniformly from the
    p−1 wrong classes (Liu & Lu); `uniform` — drawn from all p classes, so about 1/p of them stay
    correct (Doshi et al.); `symmetric` — like `wrong`, but (a, b) and (b, a) share the corrupted
    label (commutative ops only; on a task over features, where there are no pairs, it is the
    literature's symmetric noise: `wrong`'s draw); `pair_flip` — each corrupted example of class c
    is labelled c+1 mod p (one fixed other class); `matrix` — class-conditional: `matrix[i][j]` is
    the share of class i's training examples observed as j (rows sum to 1; `rate` stays 0, the
    matrix sets it).
    """

    kind: str = "wrong"
    rate: float = 0.0
    seed: int = 0
    matrix: tuple[tuple[float, ...], ...] = ()  # kind matrix only: p × p, row-stochastic

    def __post_init__(self) -> None:
        check_choice("noise.kind", self.kind, NOISE_KINDS)
        _seed("noise.seed", self.seed)
        _finite("noise.rate", self.rate)
        if not 0 <= self.rate < 1:
            raise SpecError(f"noise.rate must lie in [0, 1), got {self.rate!r}")
        if self.kind == "matrix" or self.matrix:
            self._check_matrix()

    def _check_matrix(self) -> None:
        if self.kind != "matrix":
            raise SpecError(f"noise.matrix is for noise.kind=matrix, not {self.kind!r}")
        try:
            rows = tuple(tuple(float(x) for x in row) for row in self.matrix)
        except (TypeError, ValueError):
            raise SpecError("noise.matrix must be rows of numbers (a p × p table)") from None
        if not rows or any(len(row) != len(rows) for row in rows):
            raise SpecError("noise.matrix must be a square p × p table")
        if any(not math.isfinite(x) or x < 0 for row in rows for x in row) or any(
                abs(sum(row) - 1) > 1e-6 for row in rows):
            raise SpecError("noise.matrix rows must be shares ≥ 0 summing to 1 (row i: where class i's labels go)")
        if self.rate != 0:
            raise SpecError("with noise.kind=matrix, leave noise.rate at 0: the matrix sets it")
        object.__setattr__(self, "matrix", rows)

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values (without `matrix` when there is none, as written before it existed)."""
        out = dataclasses.asdict(self)
        if not out["matrix"]:
            del out["matrix"]
        else:
            out["matrix"] = [list(row) for row in out["matrix"]]
        return out


@dataclass(frozen=True)
class TwoLayerSpec:
    """f(a, b) = W·φ(U e_a + V e_b) + μ with U, V ∈ R^{width×p}, W ∈ R^{p×width}.

    init: `standard` — nn.Linear's scaling for a layer on the concatenated one-hot input
    (U, V ~ Unif(±1/√(2p)), W, μ ~ Unif(±1/√width)); `doshi` — N(0, σ²), σ = 0.5/(2·width)^{1/3}.
    """

    arch = "two_layer"
    width: int = 513
    act: str = "relu"
    tied: bool = False  # U = V
    bias: bool = True  # output bias μ
    init: str = "standard"
    seed: int = 0

    def __post_init__(self) -> None:
        _integer("model.width", self.width, 1)
        _flag("model.tied", self.tied)
        _flag("model.bias", self.bias)
        _seed("model.seed", self.seed)
        check_choice("model.act", self.act, ACTIVATIONS)
        check_choice("model.init", self.init, INITS)


@dataclass(frozen=True)
class TransformerSpec:
    """Nanda et al.'s transformer on tokens `a b =`: no LayerNorm, d_vocab p+1, d_vocab_out p."""

    arch = "transformer"
    n_layers: int = 1
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    act: str = "relu"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model", "n_heads", "d_head", "d_mlp"):
            _integer(f"model.{name}", getattr(self, name), 1)
        _seed("model.seed", self.seed)
        check_choice("model.act", self.act, ("relu", "gelu"))


ModelSpec = Union[TwoLayerSpec, TransformerSpec]
MODEL_SPECS: dict[str, type] = {"two_layer": TwoLayerSpec, "transformer": TransformerSpec}
#: model.arch → its family's estimate of a model's training memory (`ModelFamily.memory_bytes`),
#: filled in by `interp.families.register` as MODEL_SPECS is
MODEL_MEMORY: dict[str, Callable[[Any, int], int]] = {}


@dataclass(frozen=True)
class TrainSpec:
    """Optimisation. batch_size 0 means full batch; `seed` orders minibatches."""

    steps: int = 1000
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.98
    momentum: float = 0.0  # SGD only
    loss: str = "ce"
    batch_size: int = 0
    warmup_steps: int = 0
    schedule: str = "constant"
    eval_every: int = 100
    checkpoint_every: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "eval_every", "checkpoint_every"):
            _integer(f"train.{name}", getattr(self, name), 1)
        for name in ("batch_size", "warmup_steps"):
            _integer(f"train.{name}", getattr(self, name), 0)
        _seed("train.seed", self.seed)
        _number("train.lr", self.lr, positive=True)
        for name in ("weight_decay", "momentum", "beta1", "beta2"):
            _number(f"train.{name}", getattr(self, name))
        check_choice("train.optimizer", self.optimizer, OPTIMIZERS)
        check_choice("train.loss", self.loss, LOSSES)
        check_choice("train.schedule", self.schedule, SCHEDULES)
        if self.weight_decay < 0 or self.batch_size < 0 or self.warmup_steps < 0:
            raise SpecError("train.weight_decay, train.batch_size and train.warmup_steps must be ≥ 0")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise SpecError(f"train.{name} must lie in [0, 1), got {getattr(self, name)!r}")


SECTIONS = ("task", "noise", "model", "train")

#: A spec whose estimated training memory exceeds this is refused (override: INTERP_MAX_BYTES).
DEFAULT_MAX_BYTES = 32 * 2**30


def memory_limit() -> int:
    import os

    raw = os.environ.get("INTERP_MAX_BYTES")
    if raw is None:
        return DEFAULT_MAX_BYTES
    try:
        return int(float(raw))
    except ValueError:
        raise SpecError(f"INTERP_MAX_BYTES={raw!r} is not a number of bytes") from None

#: When `steps` is overridden alone, the evaluation and checkpoint intervals shrink so that a
#: run keeps at least this many of each (a curve of 2 points tells nothing).
MIN_EVALS, MIN_CHECKPOINTS = 20, 5


@dataclass(frozen=True)
class RunSpec:
    task: TaskSpec = field(default_factory=TaskSpec)
    noise: NoiseSpec = field(default_factory=NoiseSpec)
    model: ModelSpec = field(default_factory=TwoLayerSpec)
    train: TrainSpec = field(default_factory=TrainSpec)

    def __post_init__(self) -> None:
        width = getattr(self.model, "d_in", None)  # a model over features reads this many
        if self.task.data in FEATURE_SETS and width is not None and width != FEATURE_SETS[self.task.data][2]:
            raise SpecError(f"model.d_in={width} but {self.task.data} has {FEATURE_SETS[self.task.data][2]} features "
                            f"per example: set model.d_in={FEATURE_SETS[self.task.data][2]}")
        if self.noise.matrix and len(self.noise.matrix) != self.task.p:
            raise SpecError(f"noise.matrix is {len(self.noise.matrix)} × {len(self.noise.matrix)} but the task has "
                            f"{self.task.p} classes")
        if (self.noise.kind == "symmetric" and self.noise.rate > 0 and not self.task.commutative
                and not self.task.features):
            raise SpecError(
                f"symmetric noise needs a commutative operation (add, mul, x2y2; add in an abelian group), not "
                f"{self.task.describe()!r}"
            )

        self.check_memory()

    def memory_bytes(self) -> int:
        """A rough upper estimate of the memory training takes: the p² dataset, the full-batch
        logits, and the model's activations, parameters, gradients and optimizer state (its
        family's estimate, `ModelFamily.memory_bytes`; 0 for a family that gives none)."""
        p = self.task.p
        pairs = p * p
        dataset = pairs * 36  # inputs (2 int64), two label vectors (int64), four masks
        logits = pairs * p * 4 * 3  # logits, their softmax and its gradient
        model = MODEL_MEMORY.get(self.model.arch)
        return dataset + logits + (model(self.model, p) if model else 0)

    def check_memory(self) -> None:
        """Refuse, before anything is allocated, a spec whose estimate exceeds the limit."""
        limit = memory_limit()
        need = self.memory_bytes()
        if need > limit:
            raise SpecError(f"this spec needs about {need / 2**30:.1f} GiB (p={self.task.p}, model "
                            f"{self.model.arch}), over the limit of {limit / 2**30:.1f} GiB; set INTERP_MAX_BYTES "
                            "to raise it")

    def to_dict(self) -> dict[str, Any]:
        # a section with fields that JSON would change (tuples) says how to write them
        out = {name: getattr(self, name).to_dict() if hasattr(getattr(self, name), "to_dict") else dataclasses.asdict(
            getattr(self, name)) for name in SECTIONS}
        out["model"] = {"arch": self.model.arch, **out["model"]}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSpec":
        unknown = set(data) - set(SECTIONS)
        if unknown:
            raise SpecError(f"unknown spec sections {sorted(unknown)}; valid: {', '.join(SECTIONS)}")
        if not isinstance(data, dict) or not all(isinstance(data.get(n, {}), dict) for n in SECTIONS):
            raise SpecError("a spec is a table of the sections task, noise, model and train, each a table")
        model = dict(data.get("model", {}))
        arch = model.pop("arch", "two_layer")
        if arch not in MODEL_SPECS:
            raise SpecError(f"model.arch={arch!r} is not one of {', '.join(MODEL_SPECS)}")
        kinds = {"task": TaskSpec, "noise": NoiseSpec, "model": MODEL_SPECS[arch], "train": TrainSpec}
        parts = {}
        for name, kind in kinds.items():
            values = model if name == "model" else data.get(name, {})
            valid = {f.name for f in fields(kind)}
            bad = set(values) - valid
            if bad:
                raise SpecError(
                    f"unknown {name} keys {sorted(bad)}; valid: {', '.join(sorted(valid))}"
                )
            parts[name] = kind(**values)
        return cls(**parts)

    def settable_keys(self) -> dict[str, tuple[str, str]]:
        """Every key `--set` accepts, mapped to (section, field)."""
        qualified = {
            f"{section}.{f.name}": (section, f.name)
            for section in SECTIONS
            for f in fields(getattr(self, section))
        }
        bare: dict[str, list[tuple[str, str]]] = {}
        for target in qualified.values():
            bare.setdefault(target[1], []).append(target)
        return {**qualified, **{k: v[0] for k, v in bare.items() if len(v) == 1}}

    def with_overrides(self, overrides: dict[str, str] | list[str]) -> "RunSpec":
        """Apply `key=value` overrides (strings, parsed by each field's type)."""
        if isinstance(overrides, list):
            pairs = {}
            for item in overrides:
                if "=" not in item:
                    raise SpecError(f"override {item!r} is not of the form key=value")
                key, value = item.split("=", 1)
                pairs[key.strip()] = value.strip()
            overrides = pairs
        arch = {k: v for k, v in overrides.items() if k in ("model.arch", "arch")}
        if arch:  # another family: its spec's defaults, then the other overrides on them
            name = str(arch.popitem()[1])
            if name not in MODEL_SPECS:
                raise SpecError(f"model.arch={name!r} is not one of {', '.join(MODEL_SPECS)}")
            data = {**self.to_dict(), "model": {"arch": name}}
            rest = {k: v for k, v in overrides.items() if k not in ("model.arch", "arch")}
            return RunSpec.from_dict(data).with_overrides(rest) if rest else RunSpec.from_dict(data)
        keys = self.settable_keys()
        data = self.to_dict()
        overridden = {keys[k] for k in overrides if k in keys}
        for key, raw in overrides.items():
            if keys.get(key) == ("task", "group") and isinstance(raw, str) and raw.endswith(".json"):
                data["task"].update(_group_file(raw))
                continue
            if key not in keys:
                ambiguous = [k for k in keys if k.endswith("." + key)]
                if ambiguous:
                    raise SpecError(f"ambiguous key {key!r}: use one of {', '.join(ambiguous)}")
                raise SpecError(f"unknown key {key!r}; valid keys: {', '.join(sorted([*keys, 'model.arch']))}")
            section, name = keys[key]
            current = data[section].get(name, getattr(getattr(self, section), name))
            data[section][name] = _parse_like(key, raw, current)
        if ("train", "steps") in overridden:
            # fewer steps keep about as many evaluations and checkpoints, unless those were set too
            train = data["train"]
            for name, points in (("eval_every", MIN_EVALS), ("checkpoint_every", MIN_CHECKPOINTS)):
                if ("train", name) not in overridden and train["steps"] // train[name] < points:
                    train[name] = max(1, train["steps"] // points)
        if ("task", "group") in overridden and ("task", "p") not in overridden:
            data["task"].pop("p")  # a group's p is its order, whatever the spec overridden had
        spec = RunSpec.from_dict(data)
        if ("task", "p") in overridden and spec.task.group and spec.task.p != data["task"]["p"]:
            raise SpecError(f"task.p={data['task']['p']} but {spec.task.group} has {spec.task.p} elements: with a "
                            "group, p is its order (leave p out)")
        return spec


def _group_file(path: str) -> dict[str, Any]:
    """The task fields of a user's group read from a JSON file (`groups.read_table`)."""
    try:
        group = read_table(path)
    except (OSError, GroupError) as err:
        raise SpecError(f"task.group={path}: {err}") from None
    return {"group": group.name, "table": [list(r) for r in group.table.tolist()], "elements": list(group.elements)}


def _parse_like(key: str, raw: str, current: Any) -> Any:
    """Parse a `--set` string as the type of the field's current value; a value given as a
    number or bool (the Python API, a grid file) must already be of that type, never truncated."""
    if not isinstance(raw, str):
        if isinstance(current, float) and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        if type(raw) is not type(current):
            raise SpecError(f"{key}={raw!r} is not a valid {type(current).__name__}")
        return raw
    try:
        if isinstance(current, bool):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return raw.lower() in ("true", "1", "yes")
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
    except ValueError:
        raise SpecError(f"{key}={raw!r} is not a valid {type(current).__name__}") from None
    return raw
