"""Structural acceptance: does an object honour the streaming decoder interface?

The kit judges implementations of the contract in
``flashdreams.infra.decoder.base`` (``StreamingVideoDecoder``), not descendants of one
particular copy of its classes. Decoder frameworks ship their own copy of that module
(the same qualified names, other class objects), so ``isinstance`` against the kit's
copy would reject every decoder they build. Instead:

A **decoder** honours the interface when it is a ``torch.nn.Module`` with

- ``spatial_compression_ratio`` and ``temporal_compression_ratio`` (attributes or
  properties; their values are judged by the ``ratios_are_positive_constant_ints`` check);
- ``get_output_temporal_size(autoregressive_index, input_temporal_size)`` and
  ``get_input_temporal_size(autoregressive_index, output_temporal_size)``, callable with
  two positional arguments;
- ``initialize_autoregressive_cache(**context)``, callable (whether it really accepts
  context keywords is the ``cache_init_accepts_context`` check's promise);
- ``forward(input, autoregressive_index=0, cache=None)``, accepting those three names
  as keywords: pipelines call ``decoder(input=x, autoregressive_index=i, cache=c)``.

A **cache** (what ``initialize_autoregressive_cache`` returns, one per rollout) honours
the interface when it is an instance, not ``None``, a class or a module, and either a
dataclass instance (the spec's ``StreamingDecoderCache`` is a ``kw_only`` dataclass that
decoders subclass to add fields, so every cache built the intended way is one) or an
instance of a class named ``StreamingDecoderCache`` (any copy of it).

A decoder that falls short gets one message naming everything that is missing, e.g.
``MyDecoder lacks get_input_temporal_size; forward does not accept keyword
'autoregressive_index'``.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = [
    "CACHE_CLASS_NAME",
    "DECODER_MEMBERS",
    "FORWARD_KEYWORDS",
    "StreamingVideoDecoderLike",
    "cache_problems",
    "decoder_problems",
    "describe_cache_problems",
    "describe_decoder_problems",
    "signature_text",
]

#: Name of the spec's cache base class; a cache deriving from any copy of it counts.
CACHE_CLASS_NAME = "StreamingDecoderCache"
#: The keywords pipelines pass to ``forward``.
FORWARD_KEYWORDS = ("input", "autoregressive_index", "cache")
#: Members every decoder has, with the positional arguments each must accept (``None``:
#: any attribute; ``()``: callable, arguments not judged here: a cache initializer may
#: require keywords that the spec's ``cache_context`` supplies).
DECODER_MEMBERS: dict[str, tuple[str, ...] | None] = {
    "spatial_compression_ratio": None,
    "temporal_compression_ratio": None,
    "get_output_temporal_size": ("autoregressive_index", "input_temporal_size"),
    "get_input_temporal_size": ("autoregressive_index", "output_temporal_size"),
    "initialize_autoregressive_cache": (),
}


@runtime_checkable
class StreamingVideoDecoderLike(Protocol):
    """The interface as a typing protocol (members only; see :func:`decoder_problems`)."""

    spatial_compression_ratio: int
    temporal_compression_ratio: int

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int: ...

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int: ...

    def initialize_autoregressive_cache(self, **context: Any) -> Any: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    """The call signature, or ``None`` when it cannot be read (builtins, C extensions, a
    broken ``__signature__`` or ``__wrapped__``): then the call itself is the judge."""
    try:
        return inspect.signature(fn)
    except Exception:  # noqa: BLE001 - any failure to read it means "unknown", not "wrong"
        return None


class _Written:
    """An annotation written as a string (``from __future__ import annotations``), shown as
    written: ``-> WanVAECache``, not ``-> 'WanVAECache'``."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def signature_text(signature: inspect.Signature) -> str:
    """``signature`` as source code shows it: string annotations without their quotes."""

    def shown(annotation: Any) -> Any:
        return _Written(annotation) if isinstance(annotation, str) else annotation

    try:
        parameters = [p.replace(annotation=shown(p.annotation)) for p in signature.parameters.values()]
        return str(signature.replace(parameters=parameters, return_annotation=shown(signature.return_annotation)))
    except (TypeError, ValueError):
        return str(signature)


def _positional_problem(name: str, fn: Callable[..., Any], params: tuple[str, ...]) -> str | None:
    signature = _signature(fn)
    if signature is None:
        return None
    try:
        signature.bind(*range(len(params)))
    except TypeError:
        shown = ", ".join(params)
        return f"{name} cannot be called as {name}({shown}) (its signature is {name}{signature_text(signature)})"
    return None


def _forward_problems(forward: Callable[..., Any]) -> list[str]:
    signature = _signature(forward)
    if signature is None:
        return []
    parameters = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return []
    named = {
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    missing = [keyword for keyword in FORWARD_KEYWORDS if keyword not in named]
    if not missing:
        try:  # every other parameter must have a default: pipelines pass only these three
            signature.bind(**{keyword: None for keyword in FORWARD_KEYWORDS})
        except TypeError as err:
            return [f"forward cannot be called with only input=, autoregressive_index=, cache= ({err})"]
        return []
    words = ", ".join(repr(keyword) for keyword in missing)
    plural = "s" if len(missing) > 1 else ""
    return [f"forward does not accept keyword{plural} {words} (its signature is forward{signature_text(signature)})"]


def _has_member(obj: object, name: str) -> bool:
    """Whether ``obj`` has ``name``, without letting a raising property say "no".

    ``inspect.getattr_static`` finds plain attributes, methods and properties without
    running them; members served by ``__getattr__`` (nn.Module buffers and submodules,
    wrappers that delegate to a wrapped module) need a real lookup, where only an
    ``AttributeError`` means absent.
    """
    try:
        inspect.getattr_static(obj, name)
        return True
    except AttributeError:
        pass
    try:
        getattr(obj, name)
    except AttributeError:
        return False
    except Exception:  # noqa: BLE001 - present but failing: the checks judge its value
        return True
    return True


def decoder_problems(obj: object) -> list[str]:
    """What keeps ``obj`` from honouring the ``StreamingVideoDecoder`` interface (empty: nothing).

    Members are looked up without running properties (``inspect.getattr_static``), so a
    ratio property that raises is left to the checks that judge its value.
    """
    if isinstance(obj, type):
        return [f"it is the class {obj.__qualname__} itself, not an instance (did the factory forget to call it?)"]
    if not isinstance(obj, torch.nn.Module):
        return ["it is not a torch.nn.Module"]
    problems: list[str] = []
    missing: list[str] = []
    for name, params in DECODER_MEMBERS.items():
        if not _has_member(obj, name):
            missing.append(name)
            continue
        if params is None:
            continue
        try:
            member = getattr(obj, name)
        except Exception:  # noqa: BLE001 - present (see _has_member) but failing to load
            member = None
        if not callable(member):
            problems.append(f"{name} is not callable")
            continue
        problem = _positional_problem(name, member, params) if params else None
        if problem:
            problems.append(problem)
    if missing:
        problems.insert(0, "lacks " + ", ".join(missing))
    problems.extend(_call_problems(obj))
    return problems


def _call_problems(module: torch.nn.Module) -> list[str]:
    """Problems of the call ``module(input=..., autoregressive_index=..., cache=...)``:
    judged on ``forward``, or on ``__call__`` where the class overrides it."""
    call = type(module).__call__
    try:
        if call is not torch.nn.Module.__call__:
            return [p.replace("forward", "__call__", 1) for p in _forward_problems(module.__call__)]
        forward = module.forward
    except Exception:  # noqa: BLE001 - a forward that cannot even be looked up
        return ["forward cannot be looked up"]
    if not callable(forward):
        return ["forward is not callable"]
    return _forward_problems(forward)


def cache_problems(cache: object) -> list[str]:
    """What keeps ``cache`` from being a rollout cache by the spec (empty: nothing)."""
    if cache is None:
        return ["it is None; a rollout needs a cache object (None means a one-shot call)"]
    if isinstance(cache, (type, types.ModuleType, types.FunctionType)):
        return [f"it is a {type(cache).__name__}, not a cache instance"]
    if dataclasses.is_dataclass(cache):
        return []
    if any(cls.__name__ == CACHE_CLASS_NAME for cls in type(cache).__mro__):
        return []
    return [
        f"a {type(cache).__name__} is neither a {CACHE_CLASS_NAME} (any copy of "
        "flashdreams.infra.decoder.base) nor a dataclass instance; subclass "
        f"{CACHE_CLASS_NAME} to add the cache's fields"
    ]


def describe_decoder_problems(obj: object, problems: list[str]) -> str:
    """``"MyDecoder (a torch.nn.Module from my_pkg.models), which does not honour ...: lacks x;
    forward does not accept keyword 'y'"``, saying what the object is: its class, where the
    class comes from, and, for the framework's generic ``StreamingDecoder`` template, that
    it is outside the contract."""
    cls = obj if isinstance(obj, type) else type(obj)
    name = cls.__qualname__ if isinstance(obj, type) else type(obj).__name__
    what = "a class, not an instance" if isinstance(obj, type) else _kind_of(cls)
    text = (
        f"{name} ({what} from {cls.__module__}), which does not honour the StreamingVideoDecoder "
        f"interface: {'; '.join(problems)}"
    )
    bases = {base.__name__ for base in cls.__mro__}
    if "StreamingDecoder" in bases and "StreamingVideoDecoder" not in bases:
        text += (
            ". It derives from StreamingDecoder, the framework's generic streaming template, which "
            "is outside the contract this kit certifies: a StreamingVideoDecoder adds the compression "
            "ratios and the temporal size mappers pipelines rely on"
        )
    return text


def _kind_of(cls: type) -> str:
    """``"a torch.nn.Module"`` or ``"a <base>"``: the nearest well-known base of ``cls``."""
    for base in cls.__mro__:
        if base.__module__.startswith("torch.nn") and base.__name__ == "Module":
            return "a torch.nn.Module"
    return "an object" if cls.__mro__[1:] == (object,) or cls is object else f"a {cls.__mro__[1].__name__} subclass"


def describe_cache_problems(cache: object, problems: list[str]) -> str:
    """One line saying why ``cache`` is not a rollout cache."""
    return f"the cache {type(cache).__name__} is not a rollout cache: {'; '.join(problems)}"
