"""The job model: what a job type declares, and what the engine hands to handlers.

A job type is pure data plus small planning functions. It knows nothing of Dask or the ledger:

* ``params`` is a :class:`JobParams` model (defaults and bounds live in its ``Field`` declarations;
  a renamed parameter keeps working under its old name through ``deprecated_aliases``);
* ``stages`` is an ordered tuple of :class:`Stage`; each names a handler and a planning function;
* a stage with ``lineage=True`` is planned from the *keys* of the previous stage (task i consumes the
  result of task i), so the engine can pipeline it without a barrier;
* any other stage is planned from the previous stage's :class:`StageOutput` (its aggregate and its task
  results): a barrier, needed for dynamic fan-out such as "one task per listed blob".

Handlers are plain functions ``handler(params: dict, ctx: TaskContext) -> dict`` registered in
``geoproc.jobs.ALL_HANDLERS``.
"""

from __future__ import annotations

import re
import types
import typing
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from . import ids
from .errors import InvalidParams, TaskWarning

JSON = dict[str, Any]


class JobParams(BaseModel):
    """Base of every job's parameters: unknown names are refused, renamed ones still accepted.

    ``deprecated_aliases`` maps an old parameter name to its new one. The old name is renamed before
    validation (with a :class:`DeprecationWarning`), so the normalized params, and with them the job id,
    are the same whichever name the caller used.
    """

    model_config = ConfigDict(extra="forbid")

    deprecated_aliases: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _rename_deprecated(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            _refuse_booleans_as_numbers(cls, data)
        if not isinstance(data, Mapping) or not any(old in data for old in cls.deprecated_aliases):
            return data
        data = dict(data)
        for old, new in cls.deprecated_aliases.items():
            if old not in data:
                continue
            if new in data:
                raise ValueError(f"{old!r} is the old name of {new!r}; give only {new!r}")
            warnings.warn(f"parameter {old!r} is deprecated; use {new!r}", DeprecationWarning, stacklevel=2)
            data[new] = data.pop(old)
        return data


def _refuse_booleans_as_numbers(model: type[BaseModel], data: Mapping[str, Any]) -> None:
    """pydantic reads ``true`` as 1 for a number field; `--set n=true` is a mistake, not a count of one."""
    bad = []
    for name, f in model.model_fields.items():
        value = data.get(name)
        if isinstance(value, bool) and _numeric(f.annotation):
            bad.append(f"{name}={str(value).lower()}: a number is expected, not a boolean")
    if bad:
        raise ValueError("; ".join(bad))


def _numeric(annotation: Any) -> bool:
    """Whether a field takes numbers and not booleans (``int``, ``float``, ``int | None``, ByteSize...)."""
    origin = typing.get_origin(annotation)
    if origin is None:
        kinds = [annotation]
    elif origin in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
    else:
        return False
    return all(isinstance(k, type) and issubclass(k, int | float) and not issubclass(k, bool) for k in kinds)


def _as_warning(value: Any) -> Any:
    """A :class:`TaskWarning` from its ``"CODE: message"`` form (results read back from the ledger)."""
    if isinstance(value, str):
        code, sep, message = value.partition(": ")
        return TaskWarning(code, message) if sep else TaskWarning("WARNING", value)
    return value


# a warning in a typed task result: a TaskWarning in Python, its "CODE: message" string in the JSON
ResultWarning = Annotated[TaskWarning, BeforeValidator(_as_warning), PlainSerializer(str, return_type=str)]
# a nodata value as results hold it: a number, "nan" / "inf" / "-inf", or None
NodataJSON = int | float | str | None


class TaskResult(BaseModel):
    """Base of typed task results: the fields are the result's contract, the JSON what the ledger stores.

    ``model_dump(mode="json")`` is what a handler returns. Fields that were not given are left out of
    it, so a result whose keys depend on the case (an empty tile has no file) keeps exactly those keys;
    NaN and infinities stay numbers, as in the plain dicts results were before they were typed.
    """

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")

    @model_serializer(mode="wrap")
    def _given_fields_only(self, handler: SerializerFunctionWrapHandler) -> JSON:
        return {k: v for k, v in handler(self).items() if k in self.model_fields_set}

    @classmethod
    def fields_of(cls, facts: Mapping[str, Any]) -> JSON:
        """The entries of ``facts`` (e.g. a raster check's) that are fields of this result."""
        return {k: v for k, v in facts.items() if k in cls.model_fields}


@dataclass(frozen=True)
class TaskSpec:
    """One unit of work as planned: a stable logical key, JSON-able params, and (lineage) its parent."""

    key: str
    params: JSON = field(default_factory=dict)
    parent: str | None = None  # logical key of the task in the previous stage this one consumes
    # identity of what the task reads (e.g. a blob's etag): when it changes, the completed task and
    # the lineage tasks after it run again; params alone never make a completed task re-run
    fingerprint: str | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts and exponential backoff with full jitter for transient failures."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``rand`` in [0, 1) gives the jitter)."""
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * (0.5 + rand / 2)


@dataclass(frozen=True)
class FailurePolicy:
    """How many failed tasks a job tolerates before it counts as failed rather than partial.

    ``tolerate`` is the largest fraction of failed tasks (over all stages) for which the job ends
    ``completed_with_errors``; above it, or when nothing succeeded, the job ends ``failed``.
    """

    tolerate: float = 1.0

    def job_status(self, failed: int, total: int) -> str:
        if failed == 0:
            return "completed"
        if total == 0 or failed >= total or failed / total > self.tolerate:
            return "failed"
        return "completed_with_errors"


ALL_OR_NOTHING = FailurePolicy(tolerate=0.0)
PARTIAL_OK = FailurePolicy(tolerate=1.0)
# tasks that read remote rasters or headers: storage throttling and timeouts get a few patient retries
STORAGE_RETRY = RetryPolicy(attempts=6, base_delay=1.0, max_delay=10.0)


@dataclass
class StageOutput:
    """What a barrier stage's planner receives about the stage before it."""

    value: JSON | None
    _results: Callable[[], Iterator[JSON]] = field(default=lambda: iter(()), repr=False)

    def results(self) -> Iterator[JSON]:
        """Stream the results of the previous stage's completed tasks (in task-key order)."""
        return self._results()


#: task param set on a task that runs again because its output is gone or changed (its value: the result
#: the task recorded): a handler that keeps an existing output it recognises (the cog job's reuse) must
#: replace it instead, with the same output as before (the same revision)
REMAKE = "remake_outputs"
#: key of a stage value whose public step waits for a review: ``{"preview": URL, "digest": HEX, ...}``
STAGED = "staged"
Planner = Callable[[Any, Any], Iterable[TaskSpec]]
# (url, size in bytes, hex sha256) of a file a task wrote; a tuple of urls names alternatives, any one of
# which holds the task's work (a COG's part until the assembly removes it, then the COG)
WrittenFile = tuple[str | tuple[str, ...], int | None, str | None]
Aggregator = Callable[[Any, Iterator[JSON]], JSON]


def only_result(params: Any, results: Iterator[JSON]) -> JSON | None:
    """The aggregate of a one-task stage: that task's result (None when it did not complete)."""
    return next(iter(results), None)


@dataclass(frozen=True)
class Stage:
    """One step of a job.

    ``plan(params, previous)`` returns the task specs; ``previous`` is a list of the previous stage's
    task keys for a lineage stage, a :class:`StageOutput` otherwise (``None`` for the first stage).
    ``aggregate(params, results)`` reduces the stream of completed results to the stage's value.
    ``heavy`` tasks get one Dask task each; light ones are batched. A ``volatile`` stage observes the
    outside world (a container listing): it runs again on every submission, even of a completed job,
    so that new or changed inputs get tasks of their own while completed ones are still skipped.
    ``outputs(params, result)`` names the files a completed task's work lives on, as ``(url, size,
    sha256)`` (size and sha256 may be None): before such a task is skipped they are checked (present,
    same size; re-hashed with ``verify``), and a task whose file is gone or changed runs again with
    ``params[REMAKE]`` set. ``publish(params, results)`` is the stage's public step (loading pgstac,
    writing the public catalog) when a ``publish=review`` job holds it back: its aggregate then only
    stages a preview and returns a dict with a :data:`STAGED` entry, the job ends ``awaiting_review``,
    and ``geoproc approve`` runs ``publish`` with the stage's results from the ledger.
    """

    name: str
    handler: str
    plan: Planner
    aggregate: Aggregator | None = None
    lineage: bool = False
    heavy: bool = False
    volatile: bool = False
    retry: RetryPolicy = RetryPolicy()
    description: str = ""
    outputs: Callable[[Any, JSON], Iterable[WrittenFile]] | None = None
    publish: Aggregator | None = None


@dataclass(frozen=True)
class JobType:
    """A job declaration: its parameter schema, stages, hash rules and failure policy.

    ``description`` starts with the one-line :attr:`summary` `geoproc list` shows; ``finalize``
    reduces the stage values to the job result.
    """

    name: str
    description: str
    params: type[BaseModel]
    stages: tuple[Stage, ...]
    hash_exclude: frozenset[str] = frozenset()
    secret_params: frozenset[str] = frozenset()
    failure_policy: FailurePolicy = PARTIAL_OK
    finalize: Callable[[Any, list[JSON | None]], JSON] | None = None
    render: Callable[[JSON], Any] | None = None  # a rich renderable of the job result, for the CLI

    @property
    def summary(self) -> str:
        """The first line of the description."""
        return self.description.strip().split("\n", 1)[0]

    def validate(self, raw: Mapping[str, Any]) -> BaseModel:
        """Check raw params against the schema; errors name the field, the value and what is allowed."""
        try:
            return self.params.model_validate(dict(raw))
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"]) or "(params)"
                if err["type"] == "missing":
                    problems.append(f"{loc}: required parameter is missing{_bounds_hint(self.params, loc)}")
                    continue
                if err["type"] == "extra_forbidden":
                    allowed = ", ".join(self.params.model_fields)
                    problems.append(f"{loc}: unknown parameter; allowed: {allowed}")
                    continue
                if not err["loc"]:  # a check of the params as a whole names its fields itself
                    problems.append(err["msg"].removeprefix("Value error, "))
                    continue
                value = err.get("input")
                problems.append(f"{loc}={value!r}: {err['msg']}{_bounds_hint(self.params, loc)}")
            raise InvalidParams(self.name, problems) from None

    def normalized(self, model: BaseModel) -> JSON:
        """All params with defaults applied, JSON-able, secrets removed (what the ledger stores)."""
        data = model.model_dump(mode="json")
        return {k: v for k, v in sorted(data.items()) if k not in self.secret_params}

    def job_id(self, model: BaseModel) -> str:
        """The job id: hash of the type and the normalized params minus hash-excluded and secret ones."""
        data = self.normalized(model)
        return ids.job_id(self.name, {k: v for k, v in data.items() if k not in self.hash_exclude})

    def describe_params(self) -> list[JSON]:
        """Name, type, default, bounds and help of each parameter (for `geoproc list`)."""
        out = []
        for name, f in self.params.model_fields.items():
            out.append(
                {
                    "name": name,
                    "type": _type_name(f.annotation),
                    "required": f.is_required(),
                    "default": None if f.is_required() else f.get_default(call_default_factory=True),
                    "bounds": _bounds(f),
                    "help": f.description or "",
                    "hashed": name not in self.hash_exclude and name not in self.secret_params,
                    "deprecated_names": sorted(old for old, new in _aliases(self.params).items() if new == name),
                }
            )
        return out


@dataclass
class TaskContext:
    """What a handler may know besides its params. Built on the worker for each attempt."""

    job_id: str
    job_type: str
    stage: str
    task_id: str
    key: str
    attempt: int
    predecessor: JSON | None = None  # result of the parent task (lineage stages)
    # Credentials per protocol, e.g. {"az": {"connection_string": ...}}, resolved on the driver and
    # shipped with each batch. Never stored in the ledger, never logged, never in results.
    storage_options: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)


def _type_name(annotation: Any) -> str:
    """``ByteSize | None`` rather than ``pydantic.types.ByteSize | None``."""
    return getattr(annotation, "__name__", None) or re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", str(annotation))


def _aliases(model: type[BaseModel]) -> dict[str, str]:
    return getattr(model, "deprecated_aliases", {}) or {}


def _bounds(f: Any) -> str:
    parts = []
    for m in f.metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                parts.append(f"{sym} {v}")
    return ", ".join(parts)


def _bounds_hint(model: type[BaseModel], loc: str) -> str:
    f = model.model_fields.get(loc)
    b = _bounds(f) if f is not None else ""
    return f" (allowed: {b})" if b else ""
