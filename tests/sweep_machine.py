"""A Hypothesis state machine: a real process and the reference model in lockstep.

Each example forks a fresh :class:`~target_process.TargetProcess` and an
empty :class:`pysweep.model.AddressSpace`.  Rules make both do the same
thing: map, unmap, protect, move, advise, store, fork, and track, untrack
and sweep through a :class:`pysweep.Tracker`.  Every call must succeed or
fail alike, every sweep must return what the model returns, and after
every step two invariants compare the process with the model: a test-only
sweep of the whole window, and the mapped pages in ``/proc/PID/maps``.
At the end of an example the ``tt`` flags in ``/proc/PID/smaps`` must
match the model's tracked pages (touched_sweep only).

All memory lives in a window of :data:`SLOTS` slots of :data:`SLOT_PAGES`
pages.  A mapping starts at the start of a slot and is at most one page
shorter than the slot, so mappings in different slots are never adjacent.

Backends other than touched_sweep see only what their
:class:`pysweep.Guarantees` promise, so the rules they cannot follow are
narrowed to what they can: no unmapping or moving of tracked memory
without ``reports_gone``, no zaps of tracked memory without
``reports_zaps``, and so on.  The machine then checks them exactly.

Example counts come from the ``HYPOTHESIS_PROFILE`` environment variable:
``ci`` (the default, sized for ``make test``) or ``long``, whose example
count ``PYSWEEP_EXAMPLES`` sets (default 1000).
"""

from __future__ import annotations

import errno as errno_codes
import mmap
import os
from collections import Counter
from typing import Any, Protocol

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import pysweep
from pysweep.model import AddressSpace, Advice, ModelError, Vma
from target_process import LocalTracker, TargetProcess

PAGE = mmap.PAGESIZE
SLOTS = 4
SLOT_PAGES = 12
#: Far from anything a Python process maps.
BASE = 0x2000_0000_0000
WINDOW_END = BASE + SLOTS * SLOT_PAGES * PAGE
RW = mmap.PROT_READ | mmap.PROT_WRITE
RO = mmap.PROT_READ

#: Steps run and calls made, per backend, over the life of the process.
STATS: Counter[str] = Counter()


class _Tracking(Protocol):
    def track(self, start: int, end: int) -> None: ...
    def untrack(self, start: int, end: int) -> None: ...
    def sweep(self, start: int, end: int, *, clear: bool = ..., max_ranges: int | None = ...) -> pysweep.SweepResult: ...
    def close(self) -> None: ...


def machine_settings(examples: int, steps: int) -> settings:
    """``examples`` x ``steps`` for ``ci``; many more for ``long``."""
    if os.environ.get("HYPOTHESIS_PROFILE") == "long":
        examples, steps = int(os.environ.get("PYSWEEP_EXAMPLES", "1000")), 60
    # A directory database lets a rerun replay the failures of a long run.
    database_path = os.environ.get("PYSWEEP_HYPOTHESIS_DB")
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=DirectoryBasedExampleDatabase(database_path) if database_path else None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def show(result: pysweep.SweepResult) -> str:
    """A sweep result on one line, addresses as page numbers in the window."""
    names = {pysweep.RangeFlag.TOUCHED: "T", pysweep.RangeFlag.GONE: "G", pysweep.RangeFlag.OVERREPORTED: "O"}
    ranges = " ".join(
        f"{(r.start - BASE) // PAGE}-{(r.end - BASE) // PAGE}:" + "".join(c for f, c in names.items() if r.flags & f)
        for r in result.ranges
    )
    return f"[{ranges}] walk_end={(result.walk_end - BASE) // PAGE}"


def slot_start(slot: int) -> int:
    return BASE + slot * SLOT_PAGES * PAGE


def _errno(call: Any, *args: Any, **kwargs: Any) -> int:
    """0, or the errno a call raised."""
    try:
        call(*args, **kwargs)
    except OSError as exc:
        return exc.errno or -1
    return 0


class SweepMachine(RuleBasedStateMachine):
    """Subclassed per backend by :func:`machine_for`; ``BACKEND`` names it."""

    BACKEND = "touched_sweep"

    def __init__(self) -> None:
        super().__init__()
        self.model = AddressSpace()
        self.target = TargetProcess()
        probe = pysweep.Tracker(None, backend=self.BACKEND)
        self.guarantees = probe.guarantees
        probe.close()
        self.tracker: _Tracking
        if self.guarantees.remote:
            self.tracker = pysweep.Tracker(self.target.pid, backend=self.BACKEND)
        else:
            self.tracker = LocalTracker(self.target, self.BACKEND)
        STATS[f"{self.BACKEND} examples"] += 1

    def teardown(self) -> None:
        try:
            if self.BACKEND == "touched_sweep":
                assert self.target.tracked_pages(BASE, WINDOW_END) == self.model.tracked_pages(), (
                    "tt flags in smaps differ from the model's tracked pages"
                )
        finally:
            self.tracker.close()
            self.target.close()

    @initialize(pages=st.integers(1, SLOT_PAGES - 1), written=st.integers(0, SLOT_PAGES - 1))
    def start_tracked(self, pages: int, written: int) -> None:
        # Every example starts with one tracked mapping, partly written
        # before it was tracked: that is where most of the rules bite.
        start, length = slot_start(0), pages * PAGE
        assert self.target.mmap(start, length, RW) == 0
        self.model.mmap(start, length, RW)
        written = min(written, pages) * PAGE
        if written:
            assert self.target.store(start, written) == 0
            self.model.write(start, written)
        self.tracker.track(start, start + length)
        self.model.track(start, start + length)

    # -- drawing ranges from the model -------------------------------------

    @property
    def exact(self) -> bool:
        return self.BACKEND == "touched_sweep"

    def _tracked_in(self, start: int, end: int) -> bool:
        return any(start <= page < end for page in self.model.tracked_pages())

    def _may_disturb(self, start: int, end: int) -> bool:
        # Unmapping, moving or mapping over tracked memory is reported GONE,
        # which only touched_sweep does.
        return self.guarantees.reports_gone or not self._tracked_in(start, end)

    def _may_place(self, start: int, end: int) -> bool:
        # soft-dirty reports a new VMA in full, and the kernel may merge it
        # with a neighbour that runs on into tracked pages (its untrack
        # splits no VMA, unlike the model's): keep new mappings out of
        # slots with tracked pages there.
        if not self._may_disturb(start, end):
            return False
        if self.guarantees.reports_new_mappings:
            slot = slot_start((start - BASE) // (SLOT_PAGES * PAGE))
            return not self._tracked_in(slot, slot + SLOT_PAGES * PAGE)
        return True

    @staticmethod
    def _subrange(data: st.DataObject, vma: Vma) -> tuple[int, int]:
        pages = (vma.end - vma.start) // PAGE
        first = data.draw(st.integers(0, pages - 1), label="first page")
        count = data.draw(st.integers(1, pages - first), label="pages")
        return vma.start + first * PAGE, vma.start + (first + count) * PAGE

    @staticmethod
    def _window(data: st.DataObject) -> tuple[int, int]:
        total = SLOTS * SLOT_PAGES
        first = data.draw(st.integers(0, total - 1), label="window first page")
        count = data.draw(st.integers(0, total - first), label="window pages")
        return BASE + first * PAGE, BASE + (first + count) * PAGE

    def _step(self, name: str) -> None:
        STATS[f"{self.BACKEND} steps"] += 1
        STATS[f"{self.BACKEND} {name}"] += 1

    def _expect(self, name: str, got: int, model_call: Any, *args: Any, **kwargs: Any) -> None:
        """Run the model's side; the kernel's errno ``got`` must match its outcome."""
        self._step(name)
        try:
            model_call(*args, **kwargs)
        except ModelError as exc:
            assert got == exc.errno, f"{name}: kernel errno {got}, model says {errno_codes.errorcode[exc.errno]}"
        else:
            assert got == 0, f"{name}: kernel failed with {errno_codes.errorcode.get(got, got)}, model succeeded"

    # -- what the process does -----------------------------------------------

    @rule(slot=st.integers(0, SLOTS - 1), pages=st.integers(1, SLOT_PAGES - 1), writable=st.booleans(), shared=st.booleans())
    def mmap_fixed(self, slot: int, pages: int, writable: bool, shared: bool) -> None:
        start, length = slot_start(slot), pages * PAGE
        if not self._may_place(start, start + length):
            return
        prot = RW if writable else RO
        got = self.target.mmap(start, length, prot, shared=shared)
        self._expect("mmap", got, self.model.mmap, start, length, prot, shared=shared)

    def _vmas(self, *, writable: bool = False, private: bool = False, untouchable: bool = False) -> list[Vma]:
        return [
            vma
            for vma in self.model.vmas
            if (not writable or vma.writable)
            and (not private or not vma.shared)
            and (not untouchable or self._may_disturb(vma.start, vma.end))
        ]

    @precondition(lambda self: self.model.vmas)
    @rule(data=st.data())
    def munmap(self, data: st.DataObject) -> None:
        candidates = self._vmas(untouchable=True)
        if not candidates:
            return
        start, end = self._subrange(data, data.draw(st.sampled_from(candidates), label="vma"))
        got = self.target.munmap(start, end - start)
        self._expect("munmap", got, self.model.munmap, start, end - start)

    @precondition(lambda self: self.model.vmas)
    @rule(data=st.data(), writable=st.booleans())
    def mprotect(self, data: st.DataObject, writable: bool) -> None:
        start, end = self._subrange(data, data.draw(st.sampled_from(self.model.vmas), label="vma"))
        prot = RW if writable else RO
        got = self.target.mprotect(start, end - start, prot)
        self._expect("mprotect", got, self.model.mprotect, start, end - start, prot)

    @precondition(lambda self: any(vma.writable for vma in self.model.vmas))
    @rule(data=st.data())
    def store(self, data: st.DataObject) -> None:
        start, end = self._subrange(data, data.draw(st.sampled_from(self._vmas(writable=True)), label="vma"))
        got = self.target.store(start, end - start)
        self._expect("store", got, self.model.write, start, end - start)

    @precondition(lambda self: self.model.vmas)
    @rule(data=st.data(), advice=st.sampled_from(Advice))
    def madvise(self, data: st.DataObject, advice: Advice) -> None:
        candidates = [vma for vma in self._vmas(private=advice is Advice.FREE) if self.guarantees.reports_zaps or not vma.tracked]
        if not candidates:
            return
        start, end = self._subrange(data, data.draw(st.sampled_from(candidates), label="vma"))
        got = self.target.madvise(start, end - start, advice.value)
        self._expect(f"madvise {advice.value}", got, self.model.madvise, start, end - start, advice)

    @precondition(lambda self: self.model.vmas)
    @rule(data=st.data(), to_slot=st.integers(0, SLOTS - 1), dontunmap=st.booleans())
    def mremap(self, data: st.DataObject, to_slot: int, dontunmap: bool) -> None:
        follows = self.guarantees.follows_mremap
        candidates = [vma for vma in self._vmas(private=dontunmap) if follows or not vma.tracked]
        new = slot_start(to_slot)
        candidates = [vma for vma in candidates if not slot_start(to_slot) <= vma.start < new + SLOT_PAGES * PAGE]
        if not candidates:
            return
        vma = data.draw(st.sampled_from(candidates), label="vma")
        old, old_end = self._subrange(data, vma)
        old_length = old_end - old
        if dontunmap:
            new_length = old_length
        else:
            # Shared anonymous memory cannot grow: the pages past its
            # object's end would fault with SIGBUS.
            most = old_length // PAGE if vma.shared else SLOT_PAGES - 1
            new_length = data.draw(st.integers(1, most), label="new pages") * PAGE
        if not (self._may_place(new, new + new_length) and (follows or not self._tracked_in(new, new + new_length))):
            return
        got = self.target.mremap(old, old_length, new_length, new, dontunmap=dontunmap)
        self._expect("mremap", got, self.model.mremap, old, old_length, new_length, new, dontunmap=dontunmap)

    @rule(data=st.data())
    def fork(self, data: st.DataObject) -> None:
        # The child stores into its view of one range; none of it is
        # reported in the parent, even where the memory is shared.
        writable = self._vmas(writable=True)
        start = end = 0
        if writable and data.draw(st.booleans(), label="child stores"):
            start, end = self._subrange(data, data.draw(st.sampled_from(writable), label="vma"))
        got = self.target.fork(start, end - start)
        self._expect("fork", got, self.model.fork)

    # -- tracking --------------------------------------------------------------

    def _track_range(self, data: st.DataObject) -> tuple[int, int]:
        # Mostly a piece of a mapping, sometimes any window (holes give ENOMEM).
        if self.model.vmas and data.draw(st.integers(0, 3), label="inside a mapping"):
            return self._subrange(data, data.draw(st.sampled_from(self.model.vmas), label="vma"))
        return self._window(data)

    @rule(data=st.data())
    def track(self, data: st.DataObject) -> None:
        start, end = self._track_range(data)
        if not self.exact and not (start < end and self.model.mapped(start, end)):
            return  # other backends fail over holes with errors of their own
        got = _errno(self.tracker.track, start, end)
        self._expect("track", got, self.model.track, start, end)

    @rule(data=st.data())
    def untrack(self, data: st.DataObject) -> None:
        start, end = self._track_range(data)
        got = _errno(self.tracker.untrack, start, end)
        self._expect("untrack", got, self.model.untrack, start, end)

    @rule(data=st.data(), clear=st.booleans())
    def sweep(self, data: st.DataObject, clear: bool) -> None:
        start, end = self._window(data)
        limit = data.draw(st.one_of(st.none(), st.integers(1, 4)), label="max ranges")
        got = self.tracker.sweep(start, end, clear=clear, max_ranges=limit)
        expected = self._model_sweep(start, end, clear, limit)
        self._step("sweep")
        assert got == expected, (
            f"sweep {start:#x}-{end:#x} clear={clear} max_ranges={limit}: got {show(got)}, model says {show(expected)}"
        )

    def _model_sweep(self, start: int, end: int, clear: bool, limit: int | None) -> pysweep.SweepResult:
        # pysweep.Target.sweep() collects up to max_ranges entries over as
        # many calls as it takes; the model answers in one call of that size.
        return self.model.sweep(start, end, clear=clear, vec_len=limit)

    # -- after every step ----------------------------------------------------------

    @invariant()
    def sweep_matches_model(self) -> None:
        got = self.tracker.sweep(BASE, WINDOW_END, clear=False)
        expected = self.model.sweep(BASE, WINDOW_END, clear=False)
        assert got == expected, f"test-only sweep: got {show(got)}, model says {show(expected)}"

    @invariant()
    def layout_matches_model(self) -> None:
        assert self.target.maps(BASE, WINDOW_END) == self.model.mapped_pages(), "mappings differ from the model"


def run_machine(backend: str, examples: int, steps: int) -> None:
    """Run the machine for ``backend``, then print how much it did."""
    before = STATS.copy()
    machine_for(backend, examples, steps).TestCase().runTest()
    done = STATS - before
    print(f"{backend}: {done[backend + ' examples']} examples, {done[backend + ' steps']} steps", flush=True)


def machine_for(backend: str, examples: int, steps: int) -> type[SweepMachine]:
    """A :class:`SweepMachine` subclass driving ``backend``, with its settings."""
    machine = type(f"SweepMachine_{backend}", (SweepMachine,), {"BACKEND": backend})
    machine.TestCase.settings = machine_settings(examples, steps)
    return machine
