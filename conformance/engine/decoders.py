"""Where a check's decoders come from: built once, then an isolated copy for every check.

Before any check of a decoder runs, its executor builds one decoder with the spec's
factory: a factory that raises, returns something that is not a decoder, or leaves
torch's process-wide defaults changed is reported once for the decoder (its checks are
not run), never once per check. The config text (``str(decoder.config)``) of that build
goes into the report.

That first decoder becomes the *template*, never handed to a check. Each check asks for
decoders and gets ``copy.deepcopy(template)``: parameters, buffers and attributes copied
(on the decoder's device), so a check's decoder is as fresh as a rebuilt one, at a
fraction of the cost (a checkpoint read, a random initialisation of hundreds of millions
of parameters, a compilation). Isolation is proven, not assumed: the first copy is
walked -- through its attributes, containers, and the closures, defaults and partials of
its functions (hooks included) -- and if it still reaches the template (a module, a
tensor), a check could change the template and through it another check's decoder; then
every decoder is built by the factory instead, and the run's notes say why. A decoder
that cannot be deep-copied is built by the factory too.
"""

from __future__ import annotations

import copy
import functools
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch

from conformance.checks.harness.calls import callable_name, describe_exception, guarded_call
from conformance.checks.harness.control import RunControl
from conformance.checks.harness.validation import require_decoder
from conformance.core.outcomes import DecoderError
from conformance.core.spec import DecoderSpec
from conformance.core.values import decoder_config_text

__all__ = ["DecoderSource", "source_for", "template_references"]

#: Most objects :func:`template_references` visits in a copy: a decoder's own structure
#: is far smaller; beyond this the walk gives up and copying is not used.
WALK_LIMIT = 200_000


class DecoderSource:
    """A spec's decoders: the factory's first build as a template, isolated copies after."""

    def __init__(self, factory: Callable[[], torch.nn.Module], *, copies: bool = True) -> None:
        self.factory = factory
        self.config_text: str | None = None
        self.problem: str | None = None
        #: Why checks get decoders from the factory instead of copies (``None``: copies).
        self.rebuilds: str | None = None if copies else "copies were turned off"
        self._checked = False
        self._template: Any = None
        # Messages name the spec's factory, not this wrapper.
        self.__wrapped__ = factory
        for name in ("__name__", "__qualname__", "__module__", "__doc__"):
            try:
                setattr(self, name, getattr(factory, name))
            except (AttributeError, TypeError):
                pass

    def check_build(self) -> str | None:
        """Build the template (once): ``None``, or why the decoder cannot be built (one line).

        Only the factory's own failure counts here (it raised, returned something that is
        not a decoder, or changed torch's process-wide defaults); whether what it built
        honours the contract in use is for the checks.
        """
        if self._checked:
            return self.problem
        self._checked = True
        what = f"factory {callable_name(self.factory)}()"
        try:
            decoder = guarded_call(RunControl(), what, self.factory)
        except DecoderError as err:
            self.problem = f"the decoder could not be built: {err}"
            return self.problem
        try:
            require_decoder(decoder, what)
        except DecoderError as err:
            self.problem = f"the factory does not build a streaming video decoder, so no check can run: {err}"
            return self.problem
        self.config_text = _config_text(decoder)
        if self.rebuilds is None:
            self._template = decoder
            self.rebuilds = self._copy_problem()
            if self.rebuilds is not None:
                self._template = None
        return None

    def _copy_problem(self) -> str | None:
        """Why copies of the template would not be isolated (``None``: they are)."""
        try:
            trial = copy.deepcopy(self._template)
        except Exception as err:  # noqa: BLE001 - any decoder may refuse to be copied
            return f"the decoder cannot be deep-copied ({describe_exception(err)})"
        shared = template_references(trial, self._template)
        if shared is not None:
            return (
                f"a deep copy of the decoder still reaches the original ({shared}), so one "
                "check could change another check's decoder through it"
            )
        return None

    def __call__(self) -> Any:
        """A fresh decoder for one check: an isolated copy of the template, or a new build."""
        if self._template is None:
            return self.factory()
        return copy.deepcopy(self._template)


def source_for(spec: DecoderSpec) -> DecoderSource:
    """The decoder source of ``spec`` (copies unless ``spec.rebuild_per_check``)."""
    source = DecoderSource(spec.factory, copies=not spec.rebuild_per_check)
    if spec.rebuild_per_check:
        source.rebuilds = "the spec asks for it (DecoderSpec.rebuild_per_check)"
    return source


def template_references(copied: Any, original: torch.nn.Module) -> str | None:
    """Where ``copied`` still reaches a module or tensor of ``original`` (a path in words),
    or ``None`` when it reaches none. Walks attributes, containers, and the closures,
    defaults and partial arguments of functions, which ``copy.deepcopy`` shares."""
    owned: set[int] = {id(module) for module in original.modules()}
    owned.update(id(tensor) for tensor in _tensors_of(original))
    seen: set[int] = set()
    stack: list[tuple[Any, str]] = [(copied, "decoder")]
    visited = 0
    while stack:
        obj, path = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if id(obj) in owned:
            return path
        visited += 1
        if visited > WALK_LIMIT:
            return f"more than {WALK_LIMIT} objects to walk, so isolation could not be shown"
        stack.extend(_children(obj, path))
    return None


def _tensors_of(module: torch.nn.Module) -> Iterator[torch.Tensor]:
    for sub in module.modules():
        for value in vars(sub).values():
            if isinstance(value, torch.Tensor):
                yield value
        yield from sub._parameters.values()  # noqa: SLF001 - a module's own tensors
        yield from sub._buffers.values()  # noqa: SLF001


_LEAVES = (str, bytes, int, float, complex, bool, type(None), type, types.ModuleType, types.BuiltinFunctionType,
           torch.dtype, torch.device)


def _children(obj: Any, path: str) -> Iterator[tuple[Any, str]]:
    if isinstance(obj, _LEAVES) or obj is None:
        return
    if isinstance(obj, torch.Tensor):
        return
    if isinstance(obj, dict):
        for key, value in list(obj.items()):
            yield value, f"{path}[{key!r}]"
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        for position, value in enumerate(list(obj)):
            yield value, f"{path}[{position}]"
        return
    if isinstance(obj, types.FunctionType):
        for cell, name in zip(obj.__closure__ or (), obj.__code__.co_freevars):
            try:
                yield cell.cell_contents, f"{path} (closure variable {name!r} of {obj.__qualname__})"
            except ValueError:  # an empty cell
                continue
        yield obj.__defaults__ or (), f"{path} (defaults of {obj.__qualname__})"
        yield obj.__kwdefaults__ or {}, f"{path} (keyword defaults of {obj.__qualname__})"
        return
    if isinstance(obj, types.MethodType):
        yield obj.__self__, f"{path}.__self__"
        yield obj.__func__, path
        return
    if isinstance(obj, functools.partial):
        yield obj.func, f"{path}.func"
        yield obj.args, f"{path}.args"
        yield obj.keywords, f"{path}.keywords"
        return
    attributes = getattr(obj, "__dict__", None)
    if isinstance(attributes, dict):
        for name, value in list(attributes.items()):
            yield value, f"{path}.{name}"
    for name in _slots(type(obj)):
        if hasattr(obj, name):
            yield getattr(obj, name), f"{path}.{name}"


@functools.lru_cache(maxsize=None)
def _slots(cls: type) -> tuple[str, ...]:
    names: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else list(slots)
    return tuple(name for name in names if name not in ("__dict__", "__weakref__"))


def _config_text(decoder: Any) -> str | None:
    try:
        return decoder_config_text(decoder)
    except Exception:  # noqa: BLE001 - the config is for the report only
        return None
