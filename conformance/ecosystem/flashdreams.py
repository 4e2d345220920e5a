"""Specs for the streaming decoders of NVIDIA's published ``flashdreams`` framework.

``pip install flashdreams`` installs the framework (its own ``flashdreams.infra.decoder``
interface and the decoders built on it); this module describes three of its streaming
video decoders to the kit, with seeded random weights (no download):

- ``wan2.1``: ``flashdreams.recipes.wan.autoencoder.vae.WanVAEDecoder`` with
  ``WanVAEDecoderConfig`` (16 latent channels, 8x spatial, 4x temporal);
- ``wan2.2``: the same class with ``Wan22TI2V5BVAEDecoderConfig`` (48 latent channels,
  16x spatial through a 2x2 output patch, residual up stages);
- ``taehv``: ``flashdreams.recipes.taehv.TeahvVAEDecoder`` with
  ``TeahvVAEDecoderConfig`` (the tiny TAEHV decoder, latent scaling of its ``lighttae``
  weights).

Each at the ``"small"`` width (a narrow network of the same structure, cheap enough for
a CPU) or the ``"published"`` width, on ``"cpu"`` (float32) or ``"cuda"`` (bfloat16,
the framework's default dtype, checked against a float32 twin), eager or, on CUDA, with
the framework's own CUDA graphs (``use_cuda_graph=True``). Proven on flashdreams
:data:`PROVEN_VERSION` (CPU, small widths): run
``python -m conformance certify conformance.ecosystem.flashdreams:wan21_small_cpu``.

Two kinds of spec per decoder:

- the truth (``wan21_small_cpu``, ...): no expectations; flashdreams 0.1.0's decoders
  are NOT CERTIFIED, and the report names each broken promise;
- the regression gate (``wan21_small_cpu_known_bugs``, ...): the bugs found in
  :data:`PROVEN_VERSION` declared as pinned expected failures (:data:`KNOWN_BUGS`), so it
  CERTIFIES while exactly those bugs remain. A fixed bug (stale expectation) or a new
  or wider failure fails it: a framework's CI can run it on every change.

What the framework's configs need on a machine without its checkpoints, and this module
does for the user:

- the configs always load ``checkpoint_path`` (``None`` raises, the default downloads):
  each build points it at an empty local safetensors file that exists only while the
  decoder is built (:func:`conformance.helpers.placeholder_checkpoint`), named as the framework's code
  expects (the Wan name must not contain ``lightvae``, which switches to the pruned
  LightVAE widths; the TAEHV name contains ``lighttae``, which keeps its latent scaling),
  so the network stays on the meta device and
  :func:`conformance.helpers.materialize_random` fills it (``only_meta=True`` keeps the
  latent statistics the framework computed, moved with the decoder);
- ``use_cuda_graph`` (default on) is off on the CPU, where a capture cannot run, and
  ``use_compile`` is off unless a spec asks for it;
- ``import flashdreams.recipes.wan...`` runs ``flashdreams/recipes/wan/__init__.py``,
  which imports the Wan transformer's Triton kernel (``flashdreams.core.attention.rope_kernel``)
  although the VAE needs none, and flashdreams 0.1.0 declares ``triton`` only on Windows.
  Where ``triton`` is missing (a Linux machine with torch's CPU wheel; torch's CUDA
  wheels bring it), :func:`wan_vae_module` loads the VAE module by itself, under its own
  name, without the package's ``__init__``; ``pip install triton`` makes the ordinary
  import work instead. The kit never needs Triton.

The framework is imported only when a spec's decoder is built (or :func:`framework` is
called), so this module imports without it; a missing framework is a
:class:`FrameworkUnavailable` error naming ``pip install flashdreams``, and a package
that shadows the framework (a source checkout's ``flashdreams/`` folder, such as this
kit's repository root, or another distribution's ``flashdreams``) is named as such.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from conformance.core.spec import DecoderSpec, ExpectedFailure
from conformance.helpers import materialize_random, placeholder_checkpoint

__all__ = [
    "DEVICES",
    "KNOWN_BUGS",
    "MODELS",
    "PROVEN_VERSION",
    "WEIGHT_SEED",
    "WIDTHS",
    "FrameworkUnavailable",
    "Variant",
    "all_cpu",
    "all_cuda",
    "all_cuda_graph",
    "build",
    "framework",
    "framework_version",
    "known_bugs_cpu",
    "known_bugs_cuda",
    "known_bugs_cuda_graph",
    "published_cpu",
    "small_cuda_graph",
    "spec",
    "taehv_module",
    "wan_vae_module",
]

#: The framework release every finding and every pinned fingerprint here was measured on.
PROVEN_VERSION = "0.1.0"
#: The framework's top-level package and distribution name.
PACKAGE = "flashdreams"
#: Seed of the random weights (any seed works; fixed so that runs are reproducible).
WEIGHT_SEED = 2026

MODELS = ("wan2.1", "wan2.2", "taehv")
WIDTHS = ("small", "published")
DEVICES = ("cpu", "cuda")

#: The Wan VAE module, and the TAEHV decoder package.
WAN_VAE_MODULE = "flashdreams.recipes.wan.autoencoder.vae"
TAEHV_MODULE = "flashdreams.recipes.taehv"

#: Placeholder checkpoint names (see the module docstring for why these names).
WAN_PLACEHOLDER = "flashdreams-wan-vae-random-weights.safetensors"
TAEHV_PLACEHOLDER = "flashdreams-lighttae-random-weights.safetensors"

#: Small widths: the Wan decoders' base width (the published Wan 2.1 decoder is 96 wide,
#: the Wan 2.2 decoder 256: stage widths 4x, 4x, 4x, 2x, 1x of it) and TAEHV's four
#: block widths (published ``(256, 128, 64, 64)``).
SMALL_WAN_BASE_DIM = 8
SMALL_TAEHV_CHANNELS = (32, 16, 8, 8)


class FrameworkUnavailable(ImportError):
    """The published framework cannot be imported (missing, shadowed, or a dependency
    of the module a spec needs is missing); the message says what to do."""


# ---------------------------------------------------------------------- the framework


def _distribution_owning(package: str) -> list[str]:
    try:
        return sorted(importlib.metadata.packages_distributions().get(package, []))
    except Exception:  # noqa: BLE001 - broken metadata of an unrelated distribution
        return []


def _installed_framework() -> tuple[str, Path] | None:
    """``(version, package folder)`` of an installed ``flashdreams`` distribution that
    ships ``flashdreams/recipes`` (the framework), else ``None``."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    files = dist.files or []
    if not any(str(f).replace("\\", "/").startswith(f"{PACKAGE}/recipes/") for f in files):
        return None
    return dist.version, Path(str(dist.locate_file(PACKAGE)))


def _package_folders(package: ModuleType) -> list[Path]:
    return [Path(p) for p in getattr(package, "__path__", [])]


def framework() -> ModuleType:
    """The imported framework package; :class:`FrameworkUnavailable` when ``flashdreams``
    is missing or the ``flashdreams`` Python finds is not the framework."""
    try:
        package = importlib.import_module(PACKAGE)
    except ModuleNotFoundError as err:
        if err.name != PACKAGE:
            raise
        raise FrameworkUnavailable(
            f"NVIDIA's flashdreams framework is not installed: pip install {PACKAGE}=="
            f"{PROVEN_VERSION} (the version these specs are proven on; install it next to "
            "the kit, in either order: the kit installs no flashdreams files)"
        ) from None
    folders = _package_folders(package)
    if any((folder / "recipes").is_dir() for folder in folders):
        return package
    found = ", ".join(str(folder) for folder in folders) or repr(package)
    installed = _installed_framework()
    if installed is not None:
        version, location = installed
        raise FrameworkUnavailable(
            f"`import {PACKAGE}` finds {found}, which shadows the installed framework "
            f"({PACKAGE} {version} at {location}): that folder comes first on sys.path. "
            f"A source checkout with a {PACKAGE}/ folder at its root does this when you run "
            "from it (this kit's repository root has one, holding only the decoder "
            "interface): run from another directory, or take that folder off "
            "sys.path / PYTHONPATH"
        )
    owners = [name for name in _distribution_owning(PACKAGE) if name != PACKAGE]
    what = (
        f"installed by {', '.join(owners)}" if owners
        else "not an installed distribution: a source folder on sys.path, such as this kit's checkout"
    )
    raise FrameworkUnavailable(
        f"`import {PACKAGE}` finds {found} ({what}), which is not NVIDIA's flashdreams "
        f"framework (it has no {PACKAGE}/recipes). Install the framework: pip install "
        f"{PACKAGE}=={PROVEN_VERSION}, in an environment where no other distribution "
        f"installs a top-level {PACKAGE} package (two such distributions overwrite each "
        "other's files), and run from a directory without a flashdreams/ folder"
    )


def framework_version() -> str:
    """The imported framework's version (``flashdreams.__version__``, else its metadata)."""
    package = framework()
    version = getattr(package, "__version__", None)
    if isinstance(version, str) and version:
        return version
    installed = _installed_framework()
    return installed[0] if installed is not None else "unknown"


def _is_triton(err: BaseException) -> bool:
    name = getattr(err, "name", None) or ""
    return isinstance(err, ModuleNotFoundError) and (name == "triton" or name.startswith("triton."))


#: How :func:`wan_vae_module` imported the Wan VAE module in this process (for reports).
WAN_IMPORT_NOTE: list[str] = []


def wan_vae_module() -> ModuleType:
    """``flashdreams.recipes.wan.autoencoder.vae``, importable without Triton.

    The ordinary import runs the ``flashdreams.recipes.wan`` package's ``__init__``,
    which imports the Wan transformer and its Triton kernel. Where that fails only for
    lack of ``triton``, the VAE module (which needs no Triton) is taken as that import
    left it, fully executed, or else loaded by itself from the framework's folder under
    its own name; ``flashdreams.recipes.wan`` itself stays unimportable in this process,
    as it was. Any other failure propagates.
    """
    framework()
    try:
        return importlib.import_module(WAN_VAE_MODULE)
    except ModuleNotFoundError as err:
        if not _is_triton(err):
            raise
        missing = err
    module = sys.modules.get(WAN_VAE_MODULE)
    if module is None:
        module = _load_module_file(WAN_VAE_MODULE, missing)
    if not WAN_IMPORT_NOTE:
        WAN_IMPORT_NOTE.append(
            f"{WAN_VAE_MODULE} loaded without its package's __init__ (which needs triton: "
            f"{missing}); pip install triton makes the ordinary import work"
        )
    return module


def _load_module_file(name: str, missing: ModuleNotFoundError) -> ModuleType:
    """Load the framework module ``name`` from its file, without its parent packages'
    ``__init__`` modules (their absolute imports of other framework modules still run)."""
    relative = Path(*name.split(".")[1:]).with_suffix(".py")
    candidates = [folder / relative for folder in _package_folders(framework())]
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        raise FrameworkUnavailable(
            f"{name} cannot be imported ({missing}) and no file {relative} is in the "
            f"framework's folders ({', '.join(map(str, candidates))})"
        ) from missing
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except ModuleNotFoundError as err:
        sys.modules.pop(name, None)
        if _is_triton(err):
            raise FrameworkUnavailable(
                f"{name} of flashdreams {framework_version()} imports Triton itself ({err}); "
                "flashdreams declares triton only on Windows: pip install triton"
            ) from err
        raise
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def taehv_module() -> ModuleType:
    """``flashdreams.recipes.taehv`` (the TAEHV decoder and its config)."""
    framework()
    return importlib.import_module(TAEHV_MODULE)


# ---------------------------------------------------------------------- building


@dataclass(frozen=True)
class Variant:
    """One decoder configuration: model, width, device, CUDA graphs, ``torch.compile``."""

    model: str
    width: str = "small"
    device: str = "cpu"
    cuda_graph: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        for field_name, allowed in (("model", MODELS), ("width", WIDTHS), ("device", DEVICES)):
            value = getattr(self, field_name)
            if value not in allowed:
                raise ValueError(f"{field_name} must be one of {allowed}, got {value!r}")
        if (self.cuda_graph or self.compile) and self.device != "cuda":
            raise ValueError(
                "the framework's CUDA graphs and torch.compile run only on CUDA "
                f"(cuda_graph={self.cuda_graph}, compile={self.compile}, device={self.device!r})"
            )

    @property
    def dtype(self) -> torch.dtype:
        """float32 on the CPU; on CUDA the framework's default, bfloat16."""
        return torch.float32 if self.device == "cpu" else torch.bfloat16

    @property
    def latent_channels(self) -> int:
        return 48 if self.model == "wan2.2" else 16

    @property
    def latent_size(self) -> tuple[int, int]:
        """Small latents (seams, not resolution, break decoders): 32x32 pixels on the
        CPU; 64x64 for the published widths on CUDA."""
        side = 2 if self.model == "wan2.2" else 4
        if self.device == "cuda" and self.width == "published":
            side *= 2
        return (side, side)

    def name(self, version: str, *, known_bugs: bool = False) -> str:
        model = {"wan2.1": "wan2.1-vae", "wan2.2": "wan2.2-vae", "taehv": "taehv"}[self.model]
        parts = [f"flashdreams-{version}", model, self.width, self.device]
        if self.device == "cuda":
            parts.append("bf16")
        if self.cuda_graph:
            parts.append("cuda-graph")
        if self.compile:
            parts.append("compiled")
        if known_bugs:
            parts.append("known-bugs")
        return "-".join(parts)


def _build_wan(variant: Variant, dtype: torch.dtype) -> nn.Module:
    vae = wan_vae_module()
    fields: dict[str, Any] = dict(dtype=dtype, use_cuda_graph=variant.cuda_graph, use_compile=variant.compile)
    if variant.model == "wan2.1":
        config_class = vae.WanVAEDecoderConfig
        if variant.width == "small":
            fields["base_dim"] = SMALL_WAN_BASE_DIM
    else:
        config_class = vae.Wan22TI2V5BVAEDecoderConfig
        if variant.width == "small":
            fields["decoder_base_dim"] = SMALL_WAN_BASE_DIM
    # The checkpoint is read while the decoder is built, and never again.
    with placeholder_checkpoint(WAN_PLACEHOLDER) as path:
        return config_class(checkpoint_path=path, **fields).setup()


def _build_taehv(variant: Variant, dtype: torch.dtype) -> nn.Module:
    taehv = taehv_module()
    # The checkpoint is read while the decoder is built, and never again.
    with placeholder_checkpoint(TAEHV_PLACEHOLDER) as path:
        config = taehv.TeahvVAEDecoderConfig(
            checkpoint_path=path, dtype=dtype, use_cuda_graph=variant.cuda_graph, use_compile=variant.compile
        )
        decoder = config.setup()
        if variant.width == "small":
            # The config has no width field: the decoder's network is the framework's TAEHV
            # class, rebuilt with narrow block widths (its constructor's own argument) and
            # the generic checkpoint transform (the lighttae one assumes published widths).
            impl = importlib.import_module(f"{TAEHV_MODULE}.impl")
            decoder.taehv = impl.TAEHV(
                checkpoint_path=path,
                channels=SMALL_TAEHV_CHANNELS,
                use_cuda_graph=variant.cuda_graph,
                use_compile=variant.compile,
            ).to(dtype=dtype)
    return decoder


def build(variant: Variant, *, dtype: torch.dtype | None = None, seed: int = WEIGHT_SEED) -> nn.Module:
    """The framework's decoder for ``variant``, in eval mode on its device, with seeded
    random weights (``dtype`` defaults to the variant's)."""
    dtype = variant.dtype if dtype is None else dtype
    builder = _build_taehv if variant.model == "taehv" else _build_wan
    decoder = builder(variant, dtype)
    materialize_random(decoder, seed=seed, device=variant.device, dtype=dtype, only_meta=True)
    return decoder.eval()


# ---------------------------------------------------------------------- known bugs

#: The bugs the kit found in flashdreams 0.1.0 (CPU, float32, small widths), each
#: reproduced without the kit (docs/ecosystem/flashdreams.md).
_MAPPER = (
    "get_output_temporal_size accepts latent counts below 1: 1 + (n - 1) * 4 at AR 0 "
    "gives -3 for n = 0 and -7 for n = -1, n * 4 at AR >= 1 gives -4 for n = -1 "
    "(flashdreams 0.1.0; raise ValueError for n < 1)"
)
_CONTEXT = (
    "initialize_autoregressive_cache(self) drops the interface's **context, so the base "
    "pipeline's initialize_cache(decoder_context={...}) raises TypeError for any context "
    "(flashdreams 0.1.0)"
)
_SEAM = (
    "after an AR >= 1 chunk of one latent frame, the first temporal upsampler "
    "(Resample._upsample3d_step) keeps one frame of history instead of two, so the next "
    "chunk's time conv sees zeros where the older frame belongs (flashdreams 0.1.0)"
)
_STATE = (
    "the upsampler history bug of chunked_decode_matches_full_decode, reached by the "
    "state machine's rollouts of one-frame AR steps (flashdreams 0.1.0)"
)
_LONG = (
    "the upsampler history bug of chunked_decode_matches_full_decode, reached by a long "
    "rollout of one-frame AR steps (flashdreams 0.1.0)"
)
_OWNERSHIP = (
    "forward returns an inference tensor (WanVAE.decode, TeahvVAEDecoder.forward and "
    "TAEHV.decode run under @torch.inference_mode()), while the pipelines call the decoder under "
    "torch.no_grad(), so a caller editing the frames in place gets RuntimeError "
    "(flashdreams 0.1.0)"
)

#: The mapper check's fingerprint on flashdreams 0.1.0 (all three decoders).
MAPPER_FINGERPRINT: tuple[str, ...] = (
    "n < 1 neither rejected nor 0 at AR 0, latent count n -1..0 #70a8226ec1",
    "n < 1 neither rejected nor 0 at AR 1..12, 15..17, 20, 24, 31..33, 38, ..., 1925929944, "
    "2147483647 (171 values), latent count n -1 #71751eef21",
)

#: The chunk plans of the fixed seam battery (every partition of 1..6 latent frames, 63
#: plans) whose chunked decode differs from the one-call decode on flashdreams 0.1.0's
#: Wan 2.1 and Wan 2.2 decoders: 24 of 63, exactly those with a one-frame chunk at AR
#: >= 1 that is not the last chunk and comes after at least two latent frames (so the
#: frame it forgets is a real one, not the zero before the causal first frame).
WAN_FAILING_PLANS: tuple[str, ...] = (
    "[2, 1, 1]", "[1, 1, 1, 1]", "[3, 1, 1]", "[2, 1, 2]", "[2, 1, 1, 1]", "[1, 2, 1, 1]",
    "[1, 1, 1, 2]", "[1, 1, 1, 1, 1]", "[4, 1, 1]", "[3, 1, 2]", "[3, 1, 1, 1]",
    "[2, 2, 1, 1]", "[2, 1, 3]", "[2, 1, 2, 1]", "[2, 1, 1, 2]", "[2, 1, 1, 1, 1]",
    "[1, 3, 1, 1]", "[1, 2, 1, 2]", "[1, 2, 1, 1, 1]", "[1, 1, 2, 1, 1]", "[1, 1, 1, 3]",
    "[1, 1, 1, 2, 1]", "[1, 1, 1, 1, 2]", "[1, 1, 1, 1, 1, 1]",
)

_WAN_BUGS: dict[str, ExpectedFailure] = {
    "temporal_mappers_monotone_and_steady": ExpectedFailure(_MAPPER, fingerprint=list(MAPPER_FINGERPRINT)),
    "chunked_decode_matches_full_decode": ExpectedFailure(_SEAM, fingerprint=list(WAN_FAILING_PLANS)),
    "rollout_state_machine": ExpectedFailure(_STATE),
    "long_rollouts_match_full_decode": ExpectedFailure(_LONG),
    "cache_init_accepts_context": ExpectedFailure(_CONTEXT),
    "caller_owns_returned_outputs": ExpectedFailure(_OWNERSHIP),
}

#: Model -> check id -> the pinned expected failure of flashdreams :data:`PROVEN_VERSION`.
#: Proven on the CPU (float32, small widths); the CUDA variants declare the same bugs,
#: and a CUDA run that finds more (the framework's CUDA graphs) fails their gate.
KNOWN_BUGS: dict[str, dict[str, ExpectedFailure]] = {
    "wan2.1": dict(_WAN_BUGS),
    "wan2.2": dict(_WAN_BUGS),
    "taehv": {
        "temporal_mappers_monotone_and_steady": ExpectedFailure(_MAPPER, fingerprint=list(MAPPER_FINGERPRINT)),
        "cache_init_accepts_context": ExpectedFailure(_CONTEXT),
        "caller_owns_returned_outputs": ExpectedFailure(_OWNERSHIP),
    },
}


_GRAPH_SHARED = (
    "with the framework's CUDA graphs on, a captured step replays against the state slots of "
    "the cache it was captured with (the wrapper re-captures only when a cache is created), "
    "so rollouts decoded in turn, or a copy.deepcopy fork, read and write each other's history "
    "(flashdreams 0.1.0; measured by the kit on an H100, not yet reproduced without it)"
)

#: Model -> check id -> the expected failures the CUDA-graph variants add: measured once by
#: the kit on an H100 (torch 2.11.0+cu130, published widths, bfloat16, default profile,
#: seed 1; docs/ecosystem/flashdreams.md), unpinned.
KNOWN_GRAPH_BUGS: dict[str, dict[str, ExpectedFailure]] = {
    "wan2.1": {
        "interleaved_rollouts_are_independent": ExpectedFailure(_GRAPH_SHARED),
        "forked_cache_continues_identically": ExpectedFailure(_GRAPH_SHARED),
    },
    "wan2.2": {
        "interleaved_rollouts_are_independent": ExpectedFailure(_GRAPH_SHARED),
        "forked_cache_continues_identically": ExpectedFailure(_GRAPH_SHARED),
    },
    "taehv": {"forked_cache_continues_identically": ExpectedFailure(_GRAPH_SHARED)},
}


def _known_bugs(model: str, *, cuda_graph: bool = False) -> Mapping[str, ExpectedFailure]:
    graph = KNOWN_GRAPH_BUGS.get(model, {}) if cuda_graph else {}
    return {**KNOWN_BUGS.get(model, {}), **graph}


# ---------------------------------------------------------------------- specs


def spec(
    model: str,
    *,
    width: str = "small",
    device: str = "cpu",
    cuda_graph: bool = False,
    compile: bool = False,
    known_bugs: bool = False,
) -> DecoderSpec:
    """The spec of one framework decoder (see :class:`Variant`); ``known_bugs=True``
    declares :data:`KNOWN_BUGS` of ``model`` as expected failures (with ``cuda_graph=True``,
    :data:`KNOWN_GRAPH_BUGS` too)."""
    variant = Variant(model, width, device, cuda_graph, compile)
    version = framework_version()
    factory: Callable[[], nn.Module] = lambda: build(variant)  # noqa: E731 - a spec's factory
    expected: Mapping[str, ExpectedFailure] = _known_bugs(model, cuda_graph=cuda_graph) if known_bugs else {}
    return DecoderSpec(
        name=variant.name(version, known_bugs=known_bugs),
        factory=factory,
        latent_channels=variant.latent_channels,
        latent_size=variant.latent_size,
        layout="BTCHW",
        output_layout="BTCHW",
        output_channels=3,
        dtype=variant.dtype,
        device=variant.device,
        expected_failures=dict(expected),
        # bfloat16 on CUDA: the kit measures the decoder's own rounding against the same
        # decoder moved to float32 (the framework's decoders follow their weights' dtype).
        reference_dtype=torch.float32 if variant.dtype != torch.float32 else None,
    )


# One zero-argument target per configuration, for the command line:
#   python -m conformance certify conformance.ecosystem.flashdreams:wan21_small_cpu
# Small widths on the CPU (proven: NOT CERTIFIED on 0.1.0, the *_known_bugs gates CERTIFIED):


def wan21_small_cpu() -> DecoderSpec:
    return spec("wan2.1")


def wan22_small_cpu() -> DecoderSpec:
    return spec("wan2.2")


def taehv_small_cpu() -> DecoderSpec:
    return spec("taehv")


def wan21_small_cpu_known_bugs() -> DecoderSpec:
    return spec("wan2.1", known_bugs=True)


def wan22_small_cpu_known_bugs() -> DecoderSpec:
    return spec("wan2.2", known_bugs=True)


def taehv_small_cpu_known_bugs() -> DecoderSpec:
    return spec("taehv", known_bugs=True)


def all_cpu() -> list[DecoderSpec]:
    """The three decoders, small widths, on the CPU: the truth (not certified on 0.1.0)."""
    return [spec(model) for model in MODELS]


def known_bugs_cpu() -> list[DecoderSpec]:
    """The regression gate: the three small CPU decoders with their known bugs declared."""
    return [spec(model, known_bugs=True) for model in MODELS]


# Published widths on the CPU (73.3M, 555.1M and 9.8M parameters; a three-latent-frame
# decode at these latent sizes took 1.9 s, 5.9 s and 0.34 s on one core of the 2-core
# CI-class box, so a certification takes a long while):


def published_cpu() -> list[DecoderSpec]:
    return [spec(model, width="published") for model in MODELS]


# On CUDA, published widths in bfloat16 (checked against a float32 twin): eager, and
# with the framework's CUDA graphs. Not run by this kit's CPU-only CI; all_cuda_graph was
# run on an H100 (docs/ecosystem/flashdreams.md), the eager and gate targets were not.


def all_cuda() -> list[DecoderSpec]:
    return [spec(model, width="published", device="cuda") for model in MODELS]


def all_cuda_graph() -> list[DecoderSpec]:
    return [spec(model, width="published", device="cuda", cuda_graph=True) for model in MODELS]


def known_bugs_cuda() -> list[DecoderSpec]:
    return [spec(model, width="published", device="cuda", known_bugs=True) for model in MODELS]


def known_bugs_cuda_graph() -> list[DecoderSpec]:
    return [spec(model, width="published", device="cuda", cuda_graph=True, known_bugs=True) for model in MODELS]


def small_cuda_graph() -> list[DecoderSpec]:
    """Small widths with the framework's CUDA graphs: a fast first look on a GPU."""
    return [spec(model, device="cuda", cuda_graph=True) for model in MODELS]
