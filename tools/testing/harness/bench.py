"""The benchmark: touched_sweep against PAGEMAP_SCAN and soft-dirty.

`harness bench` builds the plain kernel and tools/testing/bench/touched_sweep_bench.c,
boots the kernel once to run the benchmark, and turns the JSON lines it
writes into build/bench/results.json, PNG plots and a table on the terminal,
with the performance and memory targets evaluated.

The benchmark writes one JSON object a line:
  meta         the guest kernel, clocksource, CPUs, memory, page size, runs
               and how long each process times rounds at least (first line)
  measurement  one configuration of one scenario and mechanism, with the sweep
               times (us) and first-write costs (ns) of every repetition; the
               records of one configuration from several children are joined
               into one with all their samples
  memory       kernel memory tracking took, per repetition, and its budget
  skip         a mechanism the guest kernel does not offer
  error        something went wrong: the run fails, after reporting the rest
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import shlex
import shutil
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import kbuild
import vm
from common import BUILD, REPO, StepFailed, log_path, run_logged, show, stage

SOURCE = REPO / "tools" / "testing" / "bench" / "touched_sweep_bench.c"
BENCH_DIR = BUILD / "bench"
BINARY = BENCH_DIR / "touched_sweep_bench"
RAW_NAME = "bench.jsonl"
RAW_JSONL = BENCH_DIR / RAW_NAME
# How the guest run that produced RAW_JSONL was set up, for --report-only.
RUN_INFO = BENCH_DIR / "run.json"
RESULTS_JSON = BENCH_DIR / "results.json"
GUEST_LOG = BENCH_DIR / "guest-output.log"

# Guest settings for a benchmark boot: the sweep scenarios populate up to
# 2 GiB at a time, and the timeout leaves room for the full series under TCG.
MEMORY = "6G"
TIMEOUT = 3600.0

MIB = 1 << 20
SWEEP = "touched_sweep"
PAGEMAP_SCAN = "pagemap_scan"
SOFT_DIRTY = "soft_dirty"
# Tracker.sweep() in the binding scenario.
PYSWEEP = "pysweep"
UNTRACKED = "untracked"
# Plot and table order; other mechanisms follow in the order they appear.
MECHANISMS = (SWEEP, PAGEMAP_SCAN, SOFT_DIRTY, UNTRACKED)
MEMORY_KINDS = ("per_gib", "per_vma")


class BenchFormatError(StepFailed):
    """The benchmark's JSON lines are not what this module understands."""


# ---------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Meta:
    kernel: str
    clocksource: str
    cpus: int
    mem_total_kib: int
    page_size: int
    runs: int
    # Timed rounds of a process go on past runs until they span this long.
    min_span_ms: int = 0


@dataclass(frozen=True)
class Measurement:
    scenario: str
    mechanism: str
    tracked_mib: float
    touched_pages: int
    vmas: int
    thp: bool
    sweep_us: tuple[float, ...]
    first_write_ns: tuple[float, ...]
    # Random writes between sweeps; more than touched_pages when pages repeat.
    writes: int = 0
    # Child processes whose samples these are.
    children: int = 1

    @property
    def repeats(self) -> bool:
        """The writes fell on random pages, some twice (fewer pages written)."""
        return self.writes > self.touched_pages


@dataclass(frozen=True)
class MemoryRecord:
    mechanism: str
    what: str
    tracked_mib: float
    vmas: int
    bytes: tuple[int, ...]
    budget_bytes: int


@dataclass(frozen=True)
class Skip:
    scenario: str
    mechanism: str
    reason: str


@dataclass
class BenchData:
    meta: Meta
    measurements: list[Measurement] = field(default_factory=list)
    memory: list[MemoryRecord] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    # One line of text for each error record, and for a cut-off last line.
    errors: list[str] = field(default_factory=list)
    # Records of types this module does not know, which it leaves out.
    ignored: list[str] = field(default_factory=list)


class _Fields:
    """Typed access to the fields of one record, naming the line on errors."""

    def __init__(self, record: dict[str, Any], where: str) -> None:
        self.record = record
        self.where = where

    def _get(self, name: str) -> object:
        if name not in self.record:
            raise BenchFormatError(f"{self.where}: no field {name!r}")
        value: object = self.record[name]
        return value

    def _bad(self, name: str, what: str) -> BenchFormatError:
        return BenchFormatError(f"{self.where}: field {name!r} is not {what}: {self.record[name]!r}")

    def string(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str):
            raise self._bad(name, "a string")
        return value

    def integer(self, name: str) -> int:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(name, "an integer")
        return value

    def number(self, name: str) -> float:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self._bad(name, "a number")
        return float(value)

    def boolean(self, name: str, default: bool | None = None) -> bool:
        if default is not None and name not in self.record:
            return default
        value = self._get(name)
        if not isinstance(value, bool):
            raise self._bad(name, "true or false")
        return value

    def numbers(self, name: str) -> tuple[float, ...]:
        value = self._get(name)
        if not isinstance(value, list) or not all(
            not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v) for v in value
        ):
            raise self._bad(name, "a list of numbers")
        return tuple(float(v) for v in value)

    def integers(self, name: str) -> tuple[int, ...]:
        value = self._get(name)
        if not isinstance(value, list) or not all(not isinstance(v, bool) and isinstance(v, int) for v in value):
            raise self._bad(name, "a list of integers")
        return tuple(value)


def _meta(f: _Fields) -> Meta:
    return Meta(
        kernel=f.string("kernel"),
        clocksource=f.string("clocksource"),
        cpus=f.integer("cpus"),
        mem_total_kib=f.integer("mem_total_kib"),
        page_size=f.integer("page_size"),
        runs=f.integer("runs"),
        min_span_ms=f.integer("min_span_ms") if "min_span_ms" in f.record else 0,
    )


def _measurement(f: _Fields) -> Measurement:
    return Measurement(
        scenario=f.string("scenario"),
        mechanism=f.string("mechanism"),
        tracked_mib=f.number("tracked_mib"),
        touched_pages=f.integer("touched_pages"),
        vmas=f.integer("vmas"),
        thp=f.boolean("thp", default=False),
        sweep_us=f.numbers("sweep_us"),
        first_write_ns=f.numbers("first_write_ns"),
        writes=f.integer("writes") if "writes" in f.record else f.integer("touched_pages"),
    )


def _memory(f: _Fields) -> MemoryRecord:
    what = f.string("what")
    if what not in MEMORY_KINDS:
        raise BenchFormatError(f"{f.where}: memory record 'what' is {what!r}, not one of {', '.join(MEMORY_KINDS)}")
    return MemoryRecord(
        mechanism=f.string("mechanism"),
        what=what,
        tracked_mib=f.number("tracked_mib"),
        vmas=f.integer("vmas"),
        bytes=f.integers("bytes"),
        budget_bytes=f.integer("budget_bytes"),
    )


def _error_text(record: dict[str, Any]) -> str:
    """ "scenario mechanism: message" and any other fields, for an error record."""
    rest = {k: v for k, v in record.items() if k != "type"}
    where = " ".join(str(rest.pop(k)) for k in ("scenario", "mechanism") if k in rest)
    message = next((str(rest.pop(k)) for k in ("error", "message", "reason") if isinstance(rest.get(k), str)), "")
    text = ": ".join(t for t in (where, message) if t)
    if rest:
        text += (" " if text else "") + json.dumps(rest)
    return text or "(an error record with nothing in it)"


def parse_jsonl(text: str, source: str = "bench.jsonl") -> BenchData:
    """Parse the benchmark's output; raise BenchFormatError if it is malformed.

    A last line without its newline that is not valid JSON is what a
    benchmark that was cut off leaves: it becomes an error of the run
    rather than a format error, so that everything before it is reported.
    """
    lines = text.split("\n")
    cut_off = lines[-1] != ""
    if not cut_off:
        lines.pop()
    meta: Meta | None = None
    data: BenchData | None = None
    pending_errors: list[str] = []
    for number, line in enumerate(lines, 1):
        where = f"{source}:{number}"
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if cut_off and number == len(lines):
                pending_errors.append(f"{where}: the last line is incomplete (the benchmark was cut off?)")
                continue
            raise BenchFormatError(f"{where}: not JSON ({e.msg}): {line[:80]!r}") from None
        if not isinstance(record, dict):
            raise BenchFormatError(f"{where}: not a JSON object: {line[:80]!r}")
        f = _Fields(record, where)
        kind = f.string("type")
        if kind == "meta":
            if meta is not None:
                raise BenchFormatError(f"{where}: a second meta record")
            meta = _meta(f)
            data = BenchData(meta=meta)
            continue
        if kind == "error":
            pending_errors.append(f"{where}: {_error_text(record)}")
            continue
        if data is None:
            raise BenchFormatError(f"{where}: a {kind} record before the meta record")
        if kind == "measurement":
            _add_measurement(data, _measurement(f))
        elif kind == "memory":
            data.memory.append(_memory(f))
        elif kind == "skip":
            data.skips.append(Skip(scenario=f.string("scenario"), mechanism=f.string("mechanism"), reason=f.string("reason")))
        else:
            data.ignored.append(f"{where}: record type {kind!r}")
    if data is None:
        why = "; ".join(pending_errors)
        raise BenchFormatError(f"{source}: no meta record" + (f" ({why})" if why else ""))
    data.errors.extend(pending_errors)
    return data


def _configuration(m: Measurement) -> tuple[object, ...]:
    return (m.scenario, m.mechanism, m.tracked_mib, m.touched_pages, m.writes, m.vmas, m.thp)


def _add_measurement(data: BenchData, m: Measurement) -> None:
    """Add @m, or join it to the earlier record of its configuration, from
    another child: one measurement with the samples of both."""
    for i, earlier in enumerate(data.measurements):
        if _configuration(earlier) == _configuration(m):
            data.measurements[i] = dataclasses.replace(
                earlier,
                sweep_us=earlier.sweep_us + m.sweep_us,
                first_write_ns=earlier.first_write_ns + m.first_write_ns,
                children=earlier.children + m.children,
            )
            return
    data.measurements.append(m)


def load_jsonl(path: Path) -> BenchData:
    try:
        text = path.read_text()
    except OSError as e:
        raise StepFailed(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise BenchFormatError(f"{path}: not UTF-8 text") from None
    return parse_jsonl(text, str(path))


# ---------------------------------------------------------------- summaries


def median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def minimum(values: Sequence[float]) -> float | None:
    return min(values) if values else None


def maximum(values: Sequence[float]) -> float | None:
    return max(values) if values else None


def sweep_median(m: Measurement) -> float | None:
    return median(m.sweep_us)


def first_write_median(m: Measurement) -> float | None:
    return median(m.first_write_ns)


def ordered(measurements: Sequence[Measurement]) -> list[Measurement]:
    """Grouped by scenario (in order of appearance), then by configuration,
    with the mechanisms of one configuration side by side."""
    scenarios = list(dict.fromkeys(m.scenario for m in measurements))
    rank = {name: i for i, name in enumerate(_mechanism_order(m.mechanism for m in measurements))}
    return sorted(
        measurements,
        key=lambda m: (scenarios.index(m.scenario), m.vmas, m.repeats, m.touched_pages, m.tracked_mib, m.thp, rank[m.mechanism]),
    )


def _mechanism_order(names: Iterable[str]) -> list[str]:
    seen = list(dict.fromkeys(names))
    return [n for n in MECHANISMS if n in seen] + [n for n in seen if n not in MECHANISMS]


def measurement_summary(m: Measurement) -> dict[str, object]:
    """One entry of results.json's measurements."""
    runs = max(len(m.sweep_us), len(m.first_write_ns))
    return {
        "scenario": m.scenario,
        "mechanism": m.mechanism,
        "tracked_mib": m.tracked_mib,
        "touched_pages": m.touched_pages,
        "writes": m.writes,
        "vmas": m.vmas,
        "thp": m.thp,
        "sweep_us_median": median(m.sweep_us),
        "sweep_us_min": minimum(m.sweep_us),
        "sweep_us_max": maximum(m.sweep_us),
        "first_write_ns_median": median(m.first_write_ns),
        "runs": runs or None,
        "children": m.children,
    }


def memory_summary(r: MemoryRecord, page_size: int) -> dict[str, object]:
    """One entry of results.json's memory: the median and what it comes to.

    A per_gib record gives bits_per_page (the median over the pages
    tracked), a per_vma record bytes_per_vma (over the VMAs tracked); the
    other one, and either where there is nothing to divide by, is null.
    """
    med = median(r.bytes)
    pages = r.tracked_mib * MIB / page_size if page_size > 0 else 0.0
    bits_per_page = bytes_per_vma = None
    if med is not None and r.what == "per_gib" and pages > 0:
        bits_per_page = med * 8 / pages
    if med is not None and r.what == "per_vma" and r.vmas > 0:
        bytes_per_vma = med / r.vmas
    return {
        "mechanism": r.mechanism,
        "what": r.what,
        "tracked_mib": r.tracked_mib,
        "vmas": r.vmas,
        "bytes_median": med,
        "bytes_min": minimum(r.bytes),
        "bytes_max": maximum(r.bytes),
        "runs": len(r.bytes) or None,
        "bits_per_page": bits_per_page,
        "bytes_per_vma": bytes_per_vma,
        "budget_bytes": r.budget_bytes,
        "within_budget": None if med is None else med <= r.budget_bytes,
    }


# ---------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None
    limit: float
    comparison: str  # "<=" or ">="
    unit: str
    met: bool | None  # None: not measured
    detail: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "value": self.value,
            "limit": self.limit,
            "comparison": self.comparison,
            "unit": self.unit,
            "met": self.met,
            "detail": self.detail,
        }

    @property
    def status(self) -> str:
        if self.met is None:
            return "not measured"
        return "met" if self.met else "MISSED"


def _judge(name: str, value: float | None, comparison: str, limit: float, unit: str, detail: str) -> Target:
    if value is None:
        met = None
    elif comparison == "<=":
        met = value <= limit
    else:
        met = value >= limit
    return Target(name=name, value=value, limit=limit, comparison=comparison, unit=unit, met=met, detail=detail)


@dataclass(frozen=True)
class _Pick:
    """Which measurement a target needs, and what to say if it is missing."""

    scenario: str
    mechanism: str
    tracked_mib: float | None = None
    vmas: int | None = None
    # Distinct pages written, or with repeats, the number of random writes.
    written: int | None = None
    repeats: bool = False

    def describe(self) -> str:
        parts = [self.mechanism, self.scenario]
        if self.tracked_mib is not None:
            parts.append(f"{self.tracked_mib:g} MiB")
        if self.vmas is not None:
            parts.append(_vmas(self.vmas))
        if self.written is not None:
            parts.append(f"{self.written} random writes" if self.repeats else f"{self.written} pages written")
        return " ".join(parts)

    def matches(self, m: Measurement) -> bool:
        return (
            m.scenario == self.scenario
            and m.mechanism == self.mechanism
            and not m.thp
            and (self.tracked_mib is None or math.isclose(m.tracked_mib, self.tracked_mib))
            and (self.vmas is None or m.vmas == self.vmas)
            and (
                self.written is None
                or (m.repeats == self.repeats and (m.writes if self.repeats else m.touched_pages) == self.written)
            )
        )


def _value(data: BenchData, pick: _Pick, of: Callable[[Measurement], float | None]) -> tuple[float | None, str]:
    """The median @of the first measurement @pick names, or why there is none."""
    for m in data.measurements:
        if pick.matches(m):
            value = of(m)
            if value is not None:
                return value, ""
    for s in data.skips:
        if s.mechanism == pick.mechanism and s.scenario in (pick.scenario, "all", "*"):
            return None, f"{pick.mechanism} skipped: {s.reason}"
    return None, f"no {pick.describe()} measurement"


@dataclass(frozen=True)
class _Quantity:
    """What a ratio target compares: the median of which samples, in what unit."""

    median: Callable[[Measurement], float | None]
    unit: str


SWEEP_TIME = _Quantity(sweep_median, "us")
FIRST_WRITE = _Quantity(first_write_median, "ns")


def _ratio(data: BenchData, name: str, num: _Pick, den: _Pick, of: _Quantity, comparison: str, limit: float) -> Target:
    """The ratio of two medians, judged against @limit."""
    a, why_a = _value(data, num, of.median)
    b, why_b = _value(data, den, of.median)
    if a is None or b is None:
        detail = "; ".join(w for w in (why_a, why_b) if w)
        return _judge(name, None, comparison, limit, "ratio", detail)
    if b <= 0:
        return _judge(name, None, comparison, limit, "ratio", f"{den.describe()} median is {b:g}: no ratio")
    return _judge(
        name, a / b, comparison, limit, "ratio", f"{num.describe()} / {den.describe()} = {fmt(a)} {of.unit} / {fmt(b)} {of.unit}"
    )


def _first_write_target(data: BenchData) -> Target:
    """touched_sweep's first-write cost against soft-dirty's, same configuration."""
    name = "first write: touched_sweep / soft_dirty"
    ours = [m for m in data.measurements if m.scenario == "first_write" and m.mechanism == SWEEP and m.first_write_ns]
    theirs = [m for m in data.measurements if m.scenario == "first_write" and m.mechanism == SOFT_DIRTY and m.first_write_ns]
    # Prefer THP off, as the other targets do.
    for a in sorted(ours, key=lambda m: m.thp):
        for b in theirs:
            if (a.thp, a.vmas, a.touched_pages) == (b.thp, b.vmas, b.touched_pages) and math.isclose(a.tracked_mib, b.tracked_mib):
                return _ratio(
                    data,
                    name,
                    _Pick("first_write", SWEEP, a.tracked_mib, a.vmas),
                    _Pick("first_write", SOFT_DIRTY, b.tracked_mib, b.vmas),
                    FIRST_WRITE,
                    "<=",
                    1.1,
                )
    if ours and theirs:
        return _judge(
            name, None, "<=", 1.1, "ratio", "no soft_dirty first_write measurement of a configuration touched_sweep was measured in"
        )
    return _ratio(data, name, _Pick("first_write", SWEEP), _Pick("first_write", SOFT_DIRTY), FIRST_WRITE, "<=", 1.1)


def _memory_name(r: MemoryRecord) -> str:
    if r.what == "per_gib":
        return f"memory per GiB: {r.tracked_mib:g} MiB tracked, {_vmas(r.vmas)}"
    return f"memory per VMA: {_vmas(r.vmas)}, {r.tracked_mib:g} MiB tracked"


def _vmas(n: int) -> str:
    return f"{n} VMA" + ("" if n == 1 else "s")


def _memory_target(r: MemoryRecord, page_size: int) -> Target:
    s = memory_summary(r, page_size)
    value = _float(s["bytes_median"])
    bits, per_vma = _float(s["bits_per_page"]), _float(s["bytes_per_vma"])
    if value is None:
        detail = "no repetitions recorded"
    elif r.what == "per_gib" and bits is not None:
        detail = f"{bits:.2f} bits per tracked page"
    elif per_vma is not None:
        detail = f"{per_vma:.1f} bytes per VMA"
    else:
        detail = ""
    return _judge(_memory_name(r), value, "<=", float(r.budget_bytes), "bytes", detail)


# The densities of the touched scenario that touched_sweep must sweep no
# slower than PAGEMAP_SCAN, in 1 GiB: distinct pages written, then 262,144
# random writes (pages may repeat), then every page.
DENSITIES = [(16, False), (256, False), (4096, False), (16384, False), (65536, False), (262144, True), (262144, False)]


# The threads scenario's largest step: that many threads write at once, each
# to its own tracked VMA.  Throughput is the inverse of the per-page time.
THREADS = 4


def _written(n: int, repeats: bool) -> str:
    if repeats:
        return f"{n:,} random writes"
    return "every page written" if n == 262144 else f"{n:,} pages written"


def evaluate_targets(data: BenchData) -> list[Target]:
    """Every target, met, MISSED or not measured (met is None)."""
    sweep = SWEEP_TIME
    targets = [
        _ratio(
            data,
            "flat in tracked size: touched_sweep 2048 MiB / 64 MiB",
            _Pick("size", SWEEP, 2048),
            _Pick("size", SWEEP, 64),
            sweep,
            "<=",
            1.25,
        ),
        _ratio(
            data,
            "faster than PAGEMAP_SCAN at 2048 MiB: pagemap_scan / touched_sweep",
            _Pick("size", PAGEMAP_SCAN, 2048),
            _Pick("size", SWEEP, 2048),
            sweep,
            ">=",
            25,
        ),
        _ratio(
            data,
            "faster than soft-dirty at 2048 MiB: soft_dirty / touched_sweep",
            _Pick("size", SOFT_DIRTY, 2048),
            _Pick("size", SWEEP, 2048),
            sweep,
            ">=",
            200,
        ),
        *(
            _ratio(
                data,
                f"no slower than PAGEMAP_SCAN, {_written(n, repeats)}: pagemap_scan / touched_sweep",
                _Pick("touched", PAGEMAP_SCAN, written=n, repeats=repeats),
                _Pick("touched", SWEEP, written=n, repeats=repeats),
                sweep,
                ">=",
                1,
            )
            for n, repeats in DENSITIES
        ),
        _ratio(
            data,
            "flat in VMA count: touched_sweep 10000 VMAs / 10 VMAs",
            _Pick("vmas", SWEEP, vmas=10000),
            _Pick("vmas", SWEEP, vmas=10),
            sweep,
            "<=",
            2,
        ),
        _ratio(
            data,
            "10 VMAs: touched_sweep / pagemap_scan",
            _Pick("vmas", SWEEP, vmas=10),
            _Pick("vmas", PAGEMAP_SCAN, vmas=10),
            sweep,
            "<=",
            2,
        ),
        _ratio(
            data,
            "the binding, 65,536 ranges: Tracker.sweep() / the bare call",
            _Pick(BINDING_SCENARIO, PYSWEEP),
            _Pick(BINDING_SCENARIO, SWEEP),
            sweep,
            "<=",
            2,
        ),
        _first_write_target(data),
        _ratio(
            data,
            f"{THREADS} threads writing at once, throughput: touched_sweep / soft_dirty",
            _Pick("threads", SOFT_DIRTY, vmas=THREADS),
            _Pick("threads", SWEEP, vmas=THREADS),
            FIRST_WRITE,
            ">=",
            0.9,
        ),
    ]
    records = [r for r in data.memory if r.mechanism == SWEEP]
    if records:
        targets += [_memory_target(r, data.meta.page_size) for r in records]
    else:
        targets.append(
            _judge(
                "memory within budget (1 bit per page + 128 bytes per VMA)",
                None,
                "<=",
                0.0,
                "bytes",
                "no touched_sweep memory records",
            )
        )
    return targets


# ---------------------------------------------------------------- results.json


@dataclass(frozen=True)
class RunInfo:
    """How the guest was run: what the JSON lines themselves do not say."""

    accelerator: str  # "tcg", "kvm", or "unknown" for a report from a bare JSONL
    date: str  # ISO 8601, UTC
    memory: str | None = None  # QEMU's -m
    cpus: int | None = None  # QEMU's -smp
    seconds: float | None = None
    exit_code: int | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "accelerator": self.accelerator,
            "date": self.date,
            "memory": self.memory,
            "cpus": self.cpus,
            "seconds": self.seconds,
            "exit_code": self.exit_code,
        }

    @classmethod
    def load(cls, path: Path) -> RunInfo | None:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(raw, dict) or not isinstance(raw.get("accelerator"), str) or not isinstance(raw.get("date"), str):
            return None
        memory, cpus, seconds, code = (raw.get(k) for k in ("memory", "cpus", "seconds", "exit_code"))
        return cls(
            accelerator=raw["accelerator"],
            date=raw["date"],
            memory=memory if isinstance(memory, str) else None,
            cpus=cpus if isinstance(cpus, int) else None,
            seconds=float(seconds) if isinstance(seconds, int | float) else None,
            exit_code=code if isinstance(code, int) else None,
        )


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def results(data: BenchData, info: RunInfo, targets: list[Target]) -> dict[str, object]:
    """What results.json holds."""
    meta = data.meta
    return {
        "kernel": meta.kernel,
        "accelerator": info.accelerator,
        "date": info.date,
        "guest": {
            "cpus": meta.cpus,
            "memory": info.memory,
            "mem_total_kib": meta.mem_total_kib,
            "page_size": meta.page_size,
            "clocksource": meta.clocksource,
        },
        "runs": meta.runs,
        "min_span_ms": meta.min_span_ms,
        "measurements": [measurement_summary(m) for m in ordered(data.measurements)],
        "memory": [memory_summary(r, meta.page_size) for r in data.memory],
        "targets": [t.as_json() for t in targets],
        "skipped": [{"scenario": s.scenario, "mechanism": s.mechanism, "reason": s.reason} for s in data.skips],
        "errors": data.errors,
    }


# ---------------------------------------------------------------- plots

# (file name, scenario, x field, x label, title)
PLOTS = [
    ("sweep-vs-size.png", "size", "tracked_mib", "tracked memory (MiB)", "Sweep time against tracked size"),
    ("sweep-vs-touched.png", "touched", "touched_pages", "pages written between sweeps", "Sweep time against pages written"),
    ("sweep-vs-vmas.png", "vmas", "vmas", "tracked VMAs", "Sweep time against VMA count"),
]
# Scenarios drawn over another one's plot: (scenario, line style, label suffix).
# The size plot also draws the THP runs dashed, and the control that writes
# the same number of pages within the first 64 MiB at every size, dotted.
THP_SCENARIO = "thp"
CLUSTERED_SCENARIO = "clustered"
OVERLAYS = {
    "size": [(THP_SCENARIO, "--", "THP"), (CLUSTERED_SCENARIO, ":", "pages within 64 MiB")],
}


def _matplotlib() -> ModuleType | None:
    """pyplot with the Agg backend, or None if matplotlib is not installed.

    Imported by name at run time: harness's own code and its lint run do not
    need matplotlib, and the lint findings stay the same with it or without.
    """
    try:
        mpl = importlib.import_module("matplotlib")
    except ImportError:
        return None
    mpl.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def _x(m: Measurement, field_name: str) -> float:
    value: float = getattr(m, field_name)
    return value


Series = dict[str, list[tuple[float, float, float, float]]]


def _series(data: BenchData, x_field: str, keep: Callable[[Measurement], bool]) -> Series:
    """mechanism -> (x, median, min, max) of the sweep times, sorted by x."""
    out: Series = {}
    for m in data.measurements:
        if m.sweep_us and keep(m):
            out.setdefault(m.mechanism, []).append(
                (_x(m, x_field), statistics.median(m.sweep_us), min(m.sweep_us), max(m.sweep_us))
            )
    return {k: sorted(v) for k, v in out.items()}


def _in_plot(scenario: str) -> Callable[[Measurement], bool]:
    """The records of @scenario without THP: a plot's solid lines."""

    def keep(m: Measurement) -> bool:
        return m.scenario == scenario and not m.thp

    return keep


def _overlay(scenario: str) -> Callable[[Measurement], bool]:
    """The records of an overlay scenario, THP or not."""

    def keep(m: Measurement) -> bool:
        return m.scenario == scenario

    return keep


def _fixed(data: BenchData, scenario: str) -> str:
    """What stays the same across a plot's points, for its title."""
    ms = [m for m in data.measurements if m.scenario == scenario]
    said = []
    if ms and scenario != "size" and len({m.tracked_mib for m in ms}) == 1:
        said.append(f"{fmt(ms[0].tracked_mib)} MiB tracked")
    if ms and scenario != "touched" and len({m.touched_pages for m in ms}) == 1:
        said.append(f"{ms[0].touched_pages} pages written")
    return f" ({', '.join(said)})" if said else ""


def plot(data: BenchData, info: RunInfo, out_dir: Path) -> tuple[list[Path], str]:
    """Write the PNG plots; return their paths and a note if some are left out."""
    for name, *_ in PLOTS:
        (out_dir / name).unlink(missing_ok=True)
    plt = _matplotlib()
    if plt is None:
        return [], ("matplotlib is not installed, so no plots (tools/testing/harness/install-deps --bench installs it)")
    where = {"tcg": "guest under TCG", "kvm": "guest under KVM"}.get(info.accelerator, "guest")
    written = []
    for name, scenario, x_field, x_label, title in PLOTS:
        title += _fixed(data, scenario)
        lines = [(_series(data, x_field, _in_plot(scenario)), "-", "")]
        lines += [
            (_series(data, x_field, _overlay(extra)), style, f", {suffix}") for extra, style, suffix in OVERLAYS.get(scenario, [])
        ]
        if not any(series for series, _, _ in lines):
            continue
        fig, ax = plt.subplots(figsize=(8, 5.5))
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, mech in enumerate(_mechanism_order([m for series, _, _ in lines for m in series])):
            colour = colours[i % len(colours)]
            for series, style, suffix in lines:
                points = series.get(mech)
                if not points:
                    continue
                xs = [p[0] for p in points]
                ys = [p[1] for p in points]
                err = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
                ax.errorbar(xs, ys, yerr=err, fmt="o" + style, color=colour, label=mech + suffix, capsize=3, markersize=4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        # Ticks at the sizes measured, when they are few: 64, 256, ... MiB.
        ticks = sorted({p[0] for series, _, _ in lines for points in series.values() for p in points})
        if 1 < len(ticks) <= 8:
            ax.set_xticks(ticks, labels=[fmt(t) for t in ticks])
            ax.set_xticks([], minor=True)
        ax.set_xlabel(x_label)
        ax.set_ylabel("sweep time (µs), median; bars: min to max")
        ax.set_title(f"{title}\n{data.meta.kernel}, {where}, {data.meta.cpus} vCPUs")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written, ""


# ---------------------------------------------------------------- terminal


def fmt(value: float | None) -> str:
    """A number for the table: about four significant figures, no exponent."""
    if value is None:
        return "-"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None) -> str:
    """Plain-text columns; @right says which are right-aligned (numbers)."""
    right = right or [False] * len(headers)
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _runs_per_process(meta: Meta) -> str:
    if not meta.min_span_ms:
        return f"{meta.runs} runs per process"
    return f"at least {meta.runs} runs per process, spanning {meta.min_span_ms} ms"


def render(data: BenchData, info: RunInfo, targets: list[Target]) -> str:
    """The terminal report: measurements, memory, targets, skips and errors."""
    meta = data.meta
    out = [
        f"kernel {meta.kernel}, {info.accelerator}, {meta.cpus} vCPUs, "
        f"{meta.mem_total_kib // 1024} MiB, clocksource {meta.clocksource}, "
        f"{_runs_per_process(meta)}, {info.date}"
    ]
    if data.measurements:
        rows = []
        for m in ordered(data.measurements):
            s = measurement_summary(m)
            touched = f"{m.touched_pages} ({m.writes} writes)" if m.repeats else str(m.touched_pages)
            rows.append(
                [
                    m.scenario,
                    m.mechanism,
                    fmt(m.tracked_mib),
                    touched,
                    str(m.vmas),
                    "yes" if m.thp else "no",
                    *(fmt(_float(s[k])) for k in ("sweep_us_median", "sweep_us_min", "sweep_us_max", "first_write_ns_median")),
                    str(s["runs"] or "-"),
                ]
            )
        out += [
            "",
            table(
                ["scenario", "mechanism", "MiB", "touched", "VMAs", "THP", "sweep us", "min", "max", "1st write ns", "runs"],
                rows,
                [False, False, True, True, True, False, True, True, True, True, True],
            ),
        ]
    if data.memory:
        rows = []
        for r in data.memory:
            s = memory_summary(r, meta.page_size)
            rows.append(
                [
                    r.mechanism,
                    r.what,
                    fmt(r.tracked_mib),
                    str(r.vmas),
                    fmt(_float(s["bytes_median"])),
                    str(r.budget_bytes),
                    _fixed_point(_float(s["bits_per_page"]), 2),
                    _fixed_point(_float(s["bytes_per_vma"]), 1),
                ]
            )
        out += [
            "",
            table(
                ["memory", "what", "MiB", "VMAs", "bytes", "budget", "bits/page", "bytes/VMA"],
                rows,
                [False, False, True, True, True, True, True, True],
            ),
        ]
    rows = [[str(i), t.name, fmt(t.value), f"{t.comparison} {fmt(t.limit)}", t.status] for i, t in enumerate(targets, 1)]
    out += ["", table(["#", "target", "value", "limit", "result"], rows, [True, False, True, False, False])]
    out += [f"{i:>2}: {t.detail}" for i, t in enumerate(targets, 1) if t.detail]
    skipped: dict[tuple[str, str], list[str]] = {}
    for skip in data.skips:
        scenarios = skipped.setdefault((skip.mechanism, skip.reason), [])
        if skip.scenario not in scenarios:
            scenarios.append(skip.scenario)
    for (mechanism, reason), scenarios in skipped.items():
        out.append(f"skipped: {mechanism} ({', '.join(scenarios)}): {reason}")
    if meta.clocksource != "tsc":
        out.append(f"note: the guest's clocksource was {meta.clocksource}, not tsc: timings are coarse")
    for note in data.ignored:
        out.append(f"ignored: {note}")
    for err in data.errors:
        out.append(f"ERROR: {err}")
    return "\n".join(out)


def _fixed_point(value: float | None, decimals: int) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# ---------------------------------------------------------------- driving


def write_report(data: BenchData, info: RunInfo, out_dir: Path | None = None) -> int:
    """results.json, the plots and the terminal table; 1 if the run had errors.

    They go to @out_dir, by default build/bench.  Missed targets are
    reported, not errors.
    """
    out_dir = out_dir or BENCH_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = evaluate_targets(data)
    path = out_dir / RESULTS_JSON.name
    path.write_text(json.dumps(results(data, info, targets), indent=2) + "\n")
    plots, note = plot(data, info, out_dir)
    print(render(data, info, targets), flush=True)
    print(f"\nresults: {show(path)}")
    for p in plots:
        print(f"plot:    {show(p)}")
    if note:
        print(f"note:    {note}")
    missed = sum(t.met is False for t in targets)
    unmeasured = sum(t.met is None for t in targets)
    stage(
        f"targets: {sum(t.met is True for t in targets)} met, {missed} missed, "
        f"{unmeasured} not measured" + (f"; {len(data.errors)} error(s) in the run" if data.errors else "")
    )
    return 1 if data.errors else 0


def compile_bench(flavour: str) -> Path:
    """Compile the benchmark against @flavour's installed uapi headers.

    kbuild.build_kernel() installs them ('make headers') with every build.
    """
    if not SOURCE.exists():
        raise StepFailed(f"{show(SOURCE)} is missing")
    headers = kbuild.headers_dir(flavour)
    if not (headers / "linux" / "touched_sweep.h").exists():
        raise StepFailed(f"{headers} has no linux/touched_sweep.h: the {flavour} kernel is not built, or has no touched_sweep")
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    stage(f"compiling {show(SOURCE)}")
    run_logged(
        "benchmark build",
        ["gcc", "-O2", "-Wall", "-Wextra", "-I", headers, "-pthread", "-o", BINARY, SOURCE, "-lm"],
        log_path("bench-build"),
        excerpt=kbuild.BUILD_ERRORS,
    )
    return BINARY


def report_only(jsonl: Path, accel: str) -> int:
    """Re-make results.json, the plots and the table from an existing JSONL.

    The accelerator, date and guest size come from the run.json a guest run
    left beside the JSONL, if there is one; @accel ("tcg" or "kvm")
    overrides the accelerator.
    """
    data = load_jsonl(jsonl)
    info = RunInfo.load(jsonl.parent / RUN_INFO.name) or RunInfo(accelerator="unknown", date=utc_now())
    if accel in ("tcg", "kvm"):
        info = dataclasses.replace(info, accelerator=accel)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    if not (RAW_JSONL.exists() and RAW_JSONL.samefile(jsonl)):
        shutil.copyfile(jsonl, RAW_JSONL)
    RUN_INFO.write_text(json.dumps(info.as_json(), indent=2) + "\n")
    return write_report(data, info)


# The scenario the benchmark program does not run: Tracker.sweep() against
# the bare call, timed by pysweep_bench.py in the same boot.
BINDING_SCENARIO = "binding"
PYSWEEP_BENCH = REPO / "tools" / "testing" / "bench" / "pysweep_bench.py"
# pysweep_bench.py's repetitions when -r does not say (its --runs default).
PYSWEEP_RUNS = 21
# Options of the benchmark program that take a value.
_VALUE_OPTIONS = ("-o", "-r", "-m")


def guest_command(binary: Path, bench_args: Sequence[str]) -> list[str]:
    """The guest's command: the benchmark program for its scenarios, then
    pysweep_bench.py for "binding" after the program settled the TLBs,
    both into one JSON lines file.

    With no scenario named both run; otherwise each runs for the scenarios
    it has, if any.  -r gives both their repetitions.
    """
    out = f"{vm.GUEST_OUT}/{RAW_NAME}"
    program, scenarios, runs = [], [], None
    args = iter(bench_args)
    for arg in args:
        if arg in _VALUE_OPTIONS:
            value = next(args, "")
            program += [arg, value]
            runs = value if arg == "-r" else runs
        elif arg.startswith("-"):
            program.append(arg)
        else:
            scenarios.append(arg)
    others = [name for name in scenarios if name != BINDING_SCENARIO]
    steps = []
    if not scenarios or others:
        steps.append(shlex.join([str(binary), "-o", out, *program, *others]))
    if not scenarios or BINDING_SCENARIO in scenarios:
        # The program's steps leave the emulator's TLBs sized for their
        # last one: settle them as it does before each of its own.  When
        # the program measures nothing, this writes the meta record.
        # Both sides of the binding run -r's repetitions, or pysweep_bench.py's
        # default, which the meta record then says.
        runs = runs or str(PYSWEEP_RUNS)
        steps.append(shlex.join([str(binary), "-s", "-o", "/dev/null" if steps else out, "-r", runs]))
        steps.append(shlex.join(["python3", str(PYSWEEP_BENCH), "guest", "--jsonl", out, "--runs", runs]))
    # Both run even if the first fails; the status is the first failure's.
    script = "status=0\n" + "".join(f"{step} || status=$((status ? status : $?))\n" for step in steps)
    return ["sh", "-c", script + "exit $status"]


def run(flavour: str, opts: vm.RunOptions, bench_args: Sequence[str]) -> int:
    """Build, boot once, run the benchmark, report; the exit status."""
    image = kbuild.build_kernel(flavour)
    binary = compile_bench(flavour)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    for stale in (RAW_JSONL, RUN_INFO, RESULTS_JSON, GUEST_LOG, *(BENCH_DIR / name for name, *_ in PLOTS)):
        stale.unlink(missing_ok=True)
    stage(f"benchmark on the {flavour} kernel: {' '.join(bench_args) or 'default settings'}")
    date = utc_now()
    # $HARNESS_OUT in the guest is vm.GUEST_OUT.
    result = vm.run(image, guest_command(binary, bench_args), opts, stream=True)
    vm.report(result)
    raw = result.out_dir / RAW_NAME
    output = result.out_dir / "output"
    if output.exists():
        shutil.copyfile(output, GUEST_LOG)
    info = RunInfo(
        accelerator=result.accel,
        date=date,
        memory=opts.memory,
        cpus=opts.cpus,
        seconds=round(result.seconds, 1),
        exit_code=result.exit_code,
    )
    RUN_INFO.write_text(json.dumps(info.as_json(), indent=2) + "\n")
    if not raw.exists() or raw.stat().st_size == 0:
        raise StepFailed(
            f"the benchmark wrote no results (guest exit {result.exit_code}); "
            f"its output: {show(GUEST_LOG)}; console: {result.console_log}"
        )
    shutil.copyfile(raw, RAW_JSONL)
    status = write_report(load_jsonl(RAW_JSONL), info)
    if result.exit_code != 0:
        stage(f"the guest run failed (exit {result.exit_code}); output: {show(GUEST_LOG)}")
        return result.exit_code
    return status
