"""The benchmark report: JSON lines in, results.json, targets, table and plots out.

The guest run itself needs the patched kernel; everything after it runs here
on synthetic JSON lines of the shape touched_sweep_bench writes.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "testing" / "harness"))

import bench
import vm

HARNESS_MAIN = Path(bench.__file__).resolve().parent / "__main__.py"

META: dict[str, Any] = {
    "type": "meta",
    "kernel": "6.12.117-ts",
    "clocksource": "tsc",
    "cpus": 2,
    "mem_total_kib": 6_000_000,
    "page_size": 4096,
    "runs": 3,
}


def measurement(
    scenario: str,
    mechanism: str,
    sweep_us: list[float],
    *,
    tracked_mib: float = 1024,
    touched_pages: int = 256,
    vmas: int = 1,
    thp: bool = False,
    first_write_ns: list[float] | None = None,
    writes: int | None = None,
) -> dict[str, Any]:
    record = {
        "type": "measurement",
        "scenario": scenario,
        "mechanism": mechanism,
        "tracked_mib": tracked_mib,
        "touched_pages": touched_pages,
        "vmas": vmas,
        "thp": thp,
        "sweep_us": sweep_us,
        "first_write_ns": first_write_ns or [],
    }
    if writes is not None:
        record["writes"] = writes
    return record


# The touched scenario's points: (distinct pages written, random writes).
DENSITY_POINTS = [(16, 16), (256, 256), (4096, 4096), (16384, 16384), (65536, 65536), (165_723, 262144), (262144, 262144)]


def memory(what: str, bytes_: list[int], budget: int, *, tracked_mib: float, vmas: int) -> dict[str, Any]:
    return {
        "type": "memory",
        "mechanism": "touched_sweep",
        "what": what,
        "tracked_mib": tracked_mib,
        "vmas": vmas,
        "bytes": bytes_,
        "budget_bytes": budget,
    }


def full_run() -> list[dict[str, Any]]:
    """A run in which every target is met."""
    records: list[dict[str, Any]] = [META]
    for mib in (64, 256, 1024, 2048):
        records.append(measurement("size", "touched_sweep", [30, 31, 29 + mib / 1024], tracked_mib=mib))
        records.append(measurement("size", "pagemap_scan", [6 * mib, 6.5 * mib, 7 * mib], tracked_mib=mib))
        records.append(measurement("size", "soft_dirty", [33 * mib, 34 * mib, 35 * mib], tracked_mib=mib))
        records.append(measurement("thp", "touched_sweep", [25, 26, 27], tracked_mib=mib, thp=True))
    for touched, writes in DENSITY_POINTS:
        records.append(measurement("touched", "touched_sweep", [20 + touched / 100] * 3, touched_pages=touched, writes=writes))
        records.append(measurement("touched", "pagemap_scan", [30 + touched / 50] * 3, touched_pages=touched, writes=writes))
    for vmas in (10, 100, 1000, 10000):
        records.append(
            measurement(
                "vmas",
                "touched_sweep",
                [20, 21 + vmas / 1000, 22],
                vmas=vmas,
                tracked_mib=vmas * 4 * 4096 / 2**20,
                touched_pages=10,
            )
        )
    records.append(measurement("vmas", "pagemap_scan", [15, 16, 17], vmas=10, tracked_mib=10 * 4 * 4096 / 2**20, touched_pages=10))
    for mech, ns in (("touched_sweep", 3100), ("soft_dirty", 3000), ("untracked", 900)):  # 1.033 <= 1.1
        records.append(
            measurement(
                "first_write",
                mech,
                [] if mech == "untracked" else [5, 6, 7],
                tracked_mib=256,
                touched_pages=4096,
                first_write_ns=[ns, ns + 100, ns - 50],
            )
        )
    for threads in (1, 2, 4):
        for mech, ns in (("touched_sweep", 1500), ("soft_dirty", 1450), ("untracked", 30)):  # 0.967 >= 0.9
            records.append(
                measurement(
                    "threads",
                    mech,
                    [] if mech == "untracked" else [5, 6, 7],
                    vmas=threads,
                    tracked_mib=32 * threads,
                    touched_pages=8192 * threads,
                    first_write_ns=[ns, ns + 10, ns - 10],
                )
            )
    records.append(measurement("binding", "touched_sweep", [12000, 12500, 13000], tracked_mib=512, touched_pages=65536))
    records.append(measurement("binding", "pysweep", [19000, 20000, 21000], tracked_mib=512, touched_pages=65536))  # 1.6 <= 2
    records.append(memory("per_gib", [1_048_700, 1_048_600, 1_048_800], 1_048_576 + 128, tracked_mib=8192, vmas=1))
    records.append(memory("per_vma", [1_300_000, 1_200_000, 1_250_000], 10000 // 8 + 10000 * 128, tracked_mib=39.0625, vmas=10000))
    return records


def jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def parse(records: list[dict[str, Any]]) -> bench.BenchData:
    return bench.parse_jsonl(jsonl(records))


def targets_by_name(data: bench.BenchData) -> dict[str, bench.Target]:
    return {t.name: t for t in bench.evaluate_targets(data)}


def target(data: bench.BenchData, prefix: str) -> bench.Target:
    (found,) = [t for name, t in targets_by_name(data).items() if name.startswith(prefix)]
    return found


INFO = bench.RunInfo(accelerator="tcg", date="2026-01-02T03:04:05Z", memory="6G", cpus=2)


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "_matplotlib", lambda: None)


# ---------------------------------------------------------------- parsing


def test_parses_every_record_type() -> None:
    records = [*full_run(), {"type": "skip", "scenario": "vmas", "mechanism": "soft_dirty", "reason": "no soft-dirty"}]
    data = parse(records)
    assert data.meta == bench.Meta(kernel="6.12.117-ts", clocksource="tsc", cpus=2, mem_total_kib=6_000_000, page_size=4096, runs=3)
    assert len(data.measurements) == sum(r["type"] == "measurement" for r in records)
    assert [r.what for r in data.memory] == ["per_gib", "per_vma"]
    assert data.skips == [bench.Skip("vmas", "soft_dirty", "no soft-dirty")]
    assert data.errors == [] and data.ignored == []
    first = data.measurements[0]
    assert (first.scenario, first.mechanism, first.tracked_mib, first.sweep_us) == (
        "size",
        "touched_sweep",
        64.0,
        (30.0, 31.0, 29 + 64 / 1024),
    )


def test_the_span_of_a_process_s_rounds_is_kept_and_shown() -> None:
    spanned = parse([{**META, "min_span_ms": 500}, *full_run()[1:]])
    assert spanned.meta.min_span_ms == 500
    assert bench.results(spanned, INFO, [])["min_span_ms"] == 500
    assert "at least 3 runs per process, spanning 500 ms" in bench.render(spanned, INFO, [])
    # Records from before the span was recorded: rounds were counted only.
    counted = parse(full_run())
    assert counted.meta.min_span_ms == 0
    assert "3 runs per process" in bench.render(counted, INFO, [])


def test_records_of_one_configuration_from_several_children_are_joined() -> None:
    """The size scenario measures each configuration in several children:
    the targets see one measurement with every sample, in which a child
    that ran slow throughout does not decide the median."""
    records = [r for r in full_run() if r.get("scenario") != "size"]
    for sweep_us in ([90, 95, 100], [30, 31, 29], [31, 32, 30]):
        records.append(measurement("size", "touched_sweep", sweep_us, tracked_mib=2048, first_write_ns=[sweep_us[0]] * 3))
    records.append(measurement("size", "touched_sweep", [40], tracked_mib=2048, touched_pages=128))
    data = parse(records)
    joined, other = [m for m in data.measurements if m.scenario == "size"]
    assert joined.sweep_us == (90, 95, 100, 30, 31, 29, 31, 32, 30)
    assert joined.first_write_ns == (90,) * 3 + (30,) * 3 + (31,) * 3
    assert joined.children == 3 and bench.sweep_median(joined) == 31
    assert (other.touched_pages, other.children) == (128, 1)
    assert bench.measurement_summary(joined)["runs"] == 9


def test_extra_fields_unknown_types_and_blank_lines() -> None:
    rec = measurement("thp", "touched_sweep", [1, 2], thp=True)
    rec["anon_huge_kib"] = 2048
    del rec["thp"]  # optional: false when absent
    text = jsonl([META, rec, {"type": "progress", "done": 3}]) + "\n"
    data = bench.parse_jsonl(text)
    assert data.measurements[0].thp is False
    assert data.ignored == ["bench.jsonl:3: record type 'progress'"]


def test_error_records_are_collected() -> None:
    text = jsonl(
        [
            META,
            measurement("size", "touched_sweep", [1]),
            {"type": "error", "scenario": "size", "mechanism": "pagemap_scan", "error": "sweep reported 3 pages, 256 were written"},
        ]
    )
    data = bench.parse_jsonl(text)
    assert data.errors == ["bench.jsonl:3: size pagemap_scan: sweep reported 3 pages, 256 were written"]
    assert len(data.measurements) == 1


def test_a_cut_off_last_line_is_an_error_of_the_run() -> None:
    text = jsonl([META, measurement("size", "touched_sweep", [1])]) + '{"type": "measurement", "scen'
    data = bench.parse_jsonl(text)
    assert len(data.measurements) == 1
    assert len(data.errors) == 1 and "incomplete" in data.errors[0]


MALFORMED = {
    "not json": jsonl([META]) + "{not json}\n",
    "not an object": jsonl([META]) + "[1, 2]\n",
    "no type": jsonl([META, {"scenario": "size"}]),
    "missing field": jsonl([META, {k: v for k, v in measurement("size", "x", [1]).items() if k != "vmas"}]),
    "string for integer": jsonl([META, {**measurement("size", "x", [1]), "touched_pages": "256"}]),
    "bool for integer": jsonl([META, {**measurement("size", "x", [1]), "vmas": True}]),
    "samples not numbers": jsonl([META, {**measurement("size", "x", [1]), "sweep_us": [1, "2"]}]),
    "samples not a list": jsonl([META, {**measurement("size", "x", [1]), "sweep_us": 5}]),
    "thp not a bool": jsonl([META, {**measurement("size", "x", [1]), "thp": 1}]),
    "memory kind": jsonl([META, memory("per_mm", [1], 2, tracked_mib=1, vmas=1)]),
    "memory bytes fractional": jsonl([META, memory("per_gib", [1.5], 2, tracked_mib=1, vmas=1)]),
    "no meta": jsonl([measurement("size", "x", [1])]),
    "empty": "",
    "second meta": jsonl([META, META]),
    "meta field type": jsonl([{**META, "cpus": "2"}]),
    "broken line in the middle": jsonl([META]) + '{"type": "meas\n' + jsonl([measurement("size", "x", [1])]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_is_an_error(case: str) -> None:
    with pytest.raises(bench.BenchFormatError, match=r"bench\.jsonl"):
        bench.parse_jsonl(MALFORMED[case])


def test_malformed_error_names_the_line_and_field() -> None:
    with pytest.raises(bench.BenchFormatError, match=r"bench\.jsonl:2: field 'touched_pages' is not an integer"):
        bench.parse_jsonl(MALFORMED["string for integer"])


# ---------------------------------------------------------------- summaries


def test_median_min_max_and_runs() -> None:
    odd = bench.measurement_summary(parse([META, measurement("size", "x", [5, 1, 3])]).measurements[0])
    assert (odd["sweep_us_median"], odd["sweep_us_min"], odd["sweep_us_max"], odd["runs"]) == (3, 1, 5, 3)
    even = bench.measurement_summary(parse([META, measurement("size", "x", [4, 1, 3, 10])]).measurements[0])
    assert even["sweep_us_median"] == 3.5
    fw = bench.measurement_summary(
        parse([META, measurement("first_write", "untracked", [], first_write_ns=[900, 1000])]).measurements[0]
    )
    assert fw["sweep_us_median"] is None and fw["sweep_us_min"] is None and fw["sweep_us_max"] is None
    assert (fw["first_write_ns_median"], fw["runs"]) == (950, 2)
    none = bench.measurement_summary(parse([META, measurement("size", "x", [])]).measurements[0])
    assert none["runs"] is None and none["first_write_ns_median"] is None


def test_memory_summary_derives_bits_per_page_and_bytes_per_vma() -> None:
    data = parse(
        [
            META,
            memory("per_gib", [131072, 131200, 131100], 131200, tracked_mib=1024, vmas=1),
            memory("per_vma", [2000, 1000, 1500], 1280, tracked_mib=0.0390625, vmas=10),
        ]
    )
    per_gib, per_vma = (bench.memory_summary(r, 4096) for r in data.memory)
    assert per_gib["bytes_median"] == 131100
    assert per_gib["bits_per_page"] == pytest.approx(131100 * 8 / 262144)
    assert per_gib["within_budget"] is True and per_gib["bytes_per_vma"] is None
    assert per_vma["bytes_median"] == 1500 and per_vma["bytes_per_vma"] == 150
    assert per_vma["bits_per_page"] is None
    assert per_vma["within_budget"] is False


def test_results_json_fields() -> None:
    data = parse(full_run())
    res = bench.results(data, INFO, bench.evaluate_targets(data))
    assert {"kernel", "accelerator", "date", "guest", "measurements", "memory", "targets"} <= set(res)
    assert (res["kernel"], res["accelerator"], res["date"]) == ("6.12.117-ts", "tcg", "2026-01-02T03:04:05Z")
    assert res["guest"] == {"cpus": 2, "memory": "6G", "mem_total_kib": 6_000_000, "page_size": 4096, "clocksource": "tsc"}
    measurements = res["measurements"]
    assert isinstance(measurements, list) and len(measurements) == len(data.measurements)
    for m in measurements:
        assert set(m) == {
            "scenario",
            "mechanism",
            "tracked_mib",
            "touched_pages",
            "writes",
            "vmas",
            "thp",
            "sweep_us_median",
            "sweep_us_min",
            "sweep_us_max",
            "first_write_ns_median",
            "runs",
            "children",
        }
    targets = res["targets"]
    assert isinstance(targets, list)
    for t in targets:
        assert set(t) == {"name", "value", "limit", "comparison", "unit", "met", "detail"}
    json.dumps(res)  # serialisable as it is


def test_measurements_are_grouped_by_scenario_and_configuration() -> None:
    data = parse(
        [
            META,
            measurement("size", "soft_dirty", [9], tracked_mib=64),
            measurement("touched", "touched_sweep", [1], touched_pages=16),
            measurement("size", "touched_sweep", [1], tracked_mib=2048),
            measurement("size", "touched_sweep", [1], tracked_mib=64),
        ]
    )
    order = [(m.scenario, m.mechanism, m.tracked_mib) for m in bench.ordered(data.measurements)]
    assert order == [
        ("size", "touched_sweep", 64),
        ("size", "soft_dirty", 64),
        ("size", "touched_sweep", 2048),
        ("touched", "touched_sweep", 1024),
    ]


# ---------------------------------------------------------------- targets


def test_every_target_met_on_a_good_run() -> None:
    targets = bench.evaluate_targets(parse(full_run()))
    assert len(targets) == 17  # fifteen ratios (seven of them densities) and two memory records
    assert all(t.met is True for t in targets), [(t.name, t.value, t.detail) for t in targets]
    size = target(parse(full_run()), "flat in tracked size")
    assert size.value == pytest.approx(31 / 30) and (size.comparison, size.limit) == ("<=", 1.25)


def test_ratio_values() -> None:
    data = parse(full_run())
    assert target(data, "faster than PAGEMAP_SCAN").value == pytest.approx(6.5 * 2048 / 31)
    assert target(data, "faster than soft-dirty").value == pytest.approx(34 * 2048 / 31)
    assert target(data, "flat in VMA count").value == pytest.approx(22 / 21.01)
    assert target(data, "first write").value == pytest.approx(3100 / 3000)


def test_threads_target_is_the_throughput_of_four_threads() -> None:
    t = target(parse(full_run()), "4 threads writing at once")
    assert t.met is True and t.value == pytest.approx(1450 / 1500) and (t.comparison, t.limit) == (">=", 0.9)
    records = full_run()
    for r in records:
        if r.get("scenario") == "threads" and r["mechanism"] == "touched_sweep" and r["vmas"] == 4:
            r["first_write_ns"] = [1700] * 3  # serialised: 0.85 of soft-dirty's throughput
    t = target(parse(records), "4 threads writing at once")
    assert t.met is False and t.value == pytest.approx(1450 / 1700)


def test_density_targets_pick_the_right_point() -> None:
    data = parse(full_run())
    prefix = "no slower than PAGEMAP_SCAN, "
    assert target(data, prefix + "16,384 pages written").value == pytest.approx((30 + 16384 / 50) / (20 + 16384 / 100))
    # 262,144 random writes wrote fewer pages: it is not the every-page point.
    rand = target(data, prefix + "262,144 random writes")
    assert rand.value == pytest.approx((30 + 165_723 / 50) / (20 + 165_723 / 100))
    assert "262144 random writes" in rand.detail
    assert target(data, prefix + "every page written").value == pytest.approx((30 + 262144 / 50) / (20 + 262144 / 100))
    ten = target(data, "10 VMAs: touched_sweep / pagemap_scan")
    assert ten.value == pytest.approx(21.01 / 16) and (ten.comparison, ten.limit) == ("<=", 2)


def test_slower_than_pagemap_scan_at_a_density_is_missed() -> None:
    records = full_run()
    for r in records:
        if r.get("scenario") == "touched" and r["mechanism"] == "touched_sweep" and r["touched_pages"] == 65536:
            r["sweep_us"] = [5000] * 3
    t = target(parse(records), "no slower than PAGEMAP_SCAN, 65,536 pages written")
    assert t.met is False and t.value == pytest.approx((30 + 65536 / 50) / 5000)


def test_old_results_without_writes_read_as_distinct_pages() -> None:
    record = measurement("touched", "touched_sweep", [1], touched_pages=4096)
    assert "writes" not in record
    m = parse([META, record]).measurements[0]
    assert m.writes == 4096 and not m.repeats


def test_missed_targets_are_reported_not_raised() -> None:
    records = full_run()
    for r in records:
        if r.get("scenario") == "size" and r["mechanism"] == "touched_sweep" and r["tracked_mib"] == 2048:
            r["sweep_us"] = [60, 61, 62]  # twice the 64 MiB time
        if r.get("what") == "per_vma":
            r["bytes"] = [2_000_000] * 3
    data = parse(records)
    size = target(data, "flat in tracked size")
    assert size.met is False and size.status == "MISSED" and size.value == pytest.approx(61 / 30)
    mem = target(data, "memory per VMA")
    assert mem.met is False and mem.value == 2_000_000 and mem.limit == 10000 // 8 + 10000 * 128
    assert "200.0 bytes per VMA" in mem.detail
    assert target(data, "memory per GiB").met is True


def test_missing_inputs_are_not_measured() -> None:
    records = [r for r in full_run() if r.get("mechanism") != "pagemap_scan" and r.get("scenario") != "vmas"]
    records.append(
        {"type": "skip", "scenario": "size", "mechanism": "pagemap_scan", "reason": "userfaultfd: Function not implemented"}
    )
    data = parse(records)
    scan = target(data, "faster than PAGEMAP_SCAN")
    assert (scan.met, scan.value, scan.status) == (None, None, "not measured")
    assert "userfaultfd: Function not implemented" in scan.detail
    vmas = target(data, "flat in VMA count")
    assert vmas.met is None and "no touched_sweep vmas 10000 VMAs measurement" in vmas.detail
    assert target(data, "flat in tracked size").met is True


def test_no_data_at_all_gives_every_target_not_measured() -> None:
    targets = bench.evaluate_targets(parse([META]))
    assert targets and all(t.met is None for t in targets)


def test_thp_runs_do_not_stand_in_for_the_plain_ones() -> None:
    records = [
        META,
        measurement("thp", "touched_sweep", [1], tracked_mib=2048, thp=True),
        measurement("thp", "touched_sweep", [1], tracked_mib=64, thp=True),
    ]
    assert target(parse(records), "flat in tracked size").met is None


def test_first_write_needs_the_same_configuration() -> None:
    records = [
        META,
        measurement("first_write", "touched_sweep", [], tracked_mib=256, first_write_ns=[3000]),
        measurement("first_write", "soft_dirty", [], tracked_mib=64, first_write_ns=[3000]),
    ]
    fw = target(parse(records), "first write")
    assert fw.met is None and "configuration" in fw.detail


def test_first_write_counts_only_its_scenario() -> None:
    # Every measurement times first writes; only the first_write scenario's count.
    records = [
        META,
        measurement("size", "touched_sweep", [1], first_write_ns=[9000]),
        measurement("size", "soft_dirty", [1], first_write_ns=[1000]),
    ]
    assert target(parse(records), "first write").met is None


def test_zero_denominator_is_not_measured() -> None:
    records = [
        META,
        measurement("size", "touched_sweep", [0, 0, 0], tracked_mib=64),
        measurement("size", "touched_sweep", [5], tracked_mib=2048),
    ]
    size = target(parse(records), "flat in tracked size")
    assert size.met is None and "no ratio" in size.detail


# ---------------------------------------------------------------- the report


def test_write_report(tmp_path: Path, no_matplotlib: None, capsys: pytest.CaptureFixture[str]) -> None:
    records = full_run()
    records.append({"type": "skip", "scenario": "vmas", "mechanism": "soft_dirty", "reason": "no soft-dirty"})
    records.append({"type": "skip", "scenario": "size", "mechanism": "soft_dirty", "reason": "no soft-dirty"})
    status = bench.write_report(parse(records), INFO, tmp_path)
    assert status == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["accelerator"] == "tcg" and len(res["targets"]) == 17
    out = capsys.readouterr().out
    assert "results: " in out and "results.json" in out
    assert "matplotlib is not installed" in out
    assert "skipped: soft_dirty (vmas, size): no soft-dirty" in out
    lines = out.splitlines()
    header = next(ln for ln in lines if ln.startswith("scenario"))
    rule = lines[lines.index(header) + 1]
    assert set(rule.replace(" ", "")) == {"-"}
    assert "first write: touched_sweep / soft_dirty" in out


def test_write_report_missed_target_still_exits_0(tmp_path: Path, no_matplotlib: None, capsys: pytest.CaptureFixture[str]) -> None:
    records = full_run()
    records[-1]["bytes"] = [9_999_999] * 3
    assert bench.write_report(parse(records), INFO, tmp_path) == 0
    assert "MISSED" in capsys.readouterr().out


def test_write_report_with_errors_writes_then_fails(
    tmp_path: Path, no_matplotlib: None, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [
        *full_run(),
        {"type": "error", "scenario": "vmas", "mechanism": "touched_sweep", "error": "opting in: Cannot allocate memory"},
    ]
    assert bench.write_report(parse(records), INFO, tmp_path) == 1
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["errors"] == ["bench.jsonl:" + str(len(records)) + ": vmas touched_sweep: opting in: Cannot allocate memory"]
    assert len(res["measurements"]) > 0
    assert "ERROR: " in capsys.readouterr().out


def test_fmt_and_table() -> None:
    assert [bench.fmt(v) for v in (None, 2048.0, 13252.4, 35.82, 1.004, 0.0123)] == ["-", "2048", "13252", "35.8", "1.00", "0.0123"]
    text = bench.table(["a", "num"], [["xyz", "1"], ["b", "100"]], [False, True])
    assert text.splitlines() == ["a    num", "---  ---", "xyz    1", "b    100"]


def test_run_info_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(INFO.as_json()))
    assert bench.RunInfo.load(path) == INFO
    path.write_text("{}")
    assert bench.RunInfo.load(path) is None
    assert bench.RunInfo.load(tmp_path / "absent.json") is None


# ---------------------------------------------------------------- the command


@pytest.fixture
def bench_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    out = tmp_path / "bench"
    monkeypatch.setattr(bench, "BENCH_DIR", out)
    monkeypatch.setattr(bench, "RAW_JSONL", out / bench.RAW_NAME)
    monkeypatch.setattr(bench, "RUN_INFO", out / "run.json")
    monkeypatch.setattr(bench, "RESULTS_JSON", out / "results.json")
    monkeypatch.setattr(bench, "GUEST_LOG", out / "guest-output.log")
    yield out


def harness_main() -> ModuleType:
    spec = importlib.util.spec_from_file_location("harness_main", HARNESS_MAIN)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_only(tmp_path: Path, bench_dir: Path, no_matplotlib: None, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "elsewhere.jsonl"
    src.write_text(jsonl(full_run()))
    assert harness_main().main(["bench", "--report-only", str(src), "--accel", "kvm"]) == 0
    assert (bench_dir / "bench.jsonl").read_text() == src.read_text()
    assert json.loads((bench_dir / "results.json").read_text())["accelerator"] == "kvm"
    # Again from the copy: the accelerator comes from the run.json beside it.
    assert harness_main().main(["bench", "--report-only", str(bench_dir / "bench.jsonl")]) == 0
    assert json.loads((bench_dir / "results.json").read_text())["accelerator"] == "kvm"
    capsys.readouterr()


def test_report_only_malformed_fails(tmp_path: Path, bench_dir: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text(MALFORMED["missing field"])
    with pytest.raises(SystemExit) as e:
        harness_main().main(["bench", "--report-only", str(src)])
    assert e.value.code == 1
    assert not (bench_dir / "results.json").exists()


@pytest.mark.parametrize(
    ("argv", "passed"),
    [
        ([], []),
        (["--quick"], ["-q"]),
        (["--runs", "5"], ["-r", "5"]),
        (["--quick", "--runs", "3", "--", "size", "vmas"], ["-q", "-r", "3", "size", "vmas"]),
    ],
)
def test_bench_arguments_reach_the_program(monkeypatch: pytest.MonkeyPatch, argv: list[str], passed: list[str]) -> None:
    calls: list[tuple[str, vm.RunOptions, list[str]]] = []

    def fake_run(flavour: str, opts: vm.RunOptions, extra: list[str]) -> int:
        calls.append((flavour, opts, list(extra)))
        return 0

    monkeypatch.setattr(bench, "run", fake_run)
    assert harness_main().main(["bench", *argv]) == 0
    ((flavour, opts, extra),) = calls
    assert (flavour, opts.memory, opts.cpus, opts.timeout, extra) == ("plain", "6G", 2, 3600, passed)


@pytest.mark.parametrize(
    ("args", "program", "binding"),
    [
        ([], ["-o", f"{vm.GUEST_OUT}/bench.jsonl"], ["guest", "--jsonl", f"{vm.GUEST_OUT}/bench.jsonl", "--runs", "21"]),
        (
            ["-q", "-r", "5", "size", "binding"],
            ["-o", f"{vm.GUEST_OUT}/bench.jsonl", "-q", "-r", "5", "size"],
            ["guest", "--jsonl", f"{vm.GUEST_OUT}/bench.jsonl", "--runs", "5"],
        ),
        (["-m", "touched_sweep", "vmas"], ["-o", f"{vm.GUEST_OUT}/bench.jsonl", "-m", "touched_sweep", "vmas"], None),
        (["binding"], None, ["guest", "--jsonl", f"{vm.GUEST_OUT}/bench.jsonl", "--runs", "21"]),
    ],
)
def test_the_guest_runs_the_program_and_the_binding_benchmark(
    args: list[str], program: list[str] | None, binding: list[str] | None
) -> None:
    """Scenarios go to the program that has them; both write one JSON lines
    file, and the binding's benchmark runs after a settle that writes the
    meta record, with the binding's repetitions, when nothing else does."""
    shell, flag, script = bench.guest_command(Path("/bench"), args)
    assert (shell, flag) == ("sh", "-c")
    steps = [shlex.split(line.split(" || ")[0]) for line in script.splitlines() if " || " in line]
    want = []
    if program is not None:
        want.append(["/bench", *program])
    if binding is not None:
        meta_to = "/dev/null" if program is not None else f"{vm.GUEST_OUT}/bench.jsonl"
        want.append(["/bench", "-s", "-o", meta_to, "-r", binding[-1]])
        want.append(["python3", str(bench.PYSWEEP_BENCH), *binding])
    assert steps == want


def test_the_binding_default_is_pysweep_benchs() -> None:
    """The meta record of a binding-only run gives the repetitions it ran."""
    parser_default = re.search(r'"--runs", type=int, default=(\d+)', bench.PYSWEEP_BENCH.read_text())
    assert parser_default is not None and int(parser_default.group(1)) == bench.PYSWEEP_RUNS


def test_the_binding_target() -> None:
    records = [r for r in full_run() if r.get("scenario") != "binding"]
    records += [
        measurement("binding", "touched_sweep", [10, 11, 12], touched_pages=65536),
        measurement("binding", "pysweep", [21, 23, 25], touched_pages=65536),
    ]
    (target,) = [t for t in bench.evaluate_targets(parse(records)) if "binding" in t.name]
    assert target.met is False and target.value == pytest.approx(23 / 11)


class FakeGuest:
    """Stands in for the build and the guest boot of bench.run()."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jsonl_text: str | None, exit_code: int = 0) -> None:
        self.out_dir = tmp_path / "vm-out"
        self.jsonl_text = jsonl_text
        self.exit_code = exit_code
        self.commands: list[list[str]] = []
        monkeypatch.setattr(bench.kbuild, "build_kernel", lambda flavour: tmp_path / "bzImage")
        monkeypatch.setattr(bench, "compile_bench", lambda flavour: tmp_path / "touched_sweep_bench")
        monkeypatch.setattr(bench.vm, "run", self.run)
        monkeypatch.setattr(bench.vm, "report", lambda result: None)

    def run(self, image: Path, cmd: list[str], opts: vm.RunOptions | None = None, *, stream: bool = False) -> vm.RunResult:
        self.commands.append(cmd)
        self.out_dir.mkdir()
        (self.out_dir / "output").write_text("size scaling\n")
        if self.jsonl_text is not None:
            (self.out_dir / "bench.jsonl").write_text(self.jsonl_text)
        return vm.RunResult(
            exit_code=self.exit_code,
            command_status=self.exit_code,
            output="",
            console_log=self.out_dir / "console.log",
            out_dir=self.out_dir,
            splats=[],
            timed_out=False,
            accel="tcg",
            seconds=12.3,
        )


def test_run_boots_once_and_reports(
    tmp_path: Path, bench_dir: Path, monkeypatch: pytest.MonkeyPatch, no_matplotlib: None, capsys: pytest.CaptureFixture[str]
) -> None:
    guest = FakeGuest(tmp_path, monkeypatch, jsonl(full_run()))
    assert bench.run("plain", vm.RunOptions(memory="6G"), ["-q"]) == 0
    assert guest.commands == [bench.guest_command(tmp_path / "touched_sweep_bench", ["-q"])]
    res = json.loads((bench_dir / "results.json").read_text())
    assert (res["accelerator"], res["guest"]["memory"]) == ("tcg", "6G")
    assert (bench_dir / "bench.jsonl").read_text() == jsonl(full_run())
    assert (bench_dir / "guest-output.log").read_text() == "size scaling\n"
    assert json.loads((bench_dir / "run.json").read_text())["seconds"] == 12.3
    capsys.readouterr()


def test_run_with_errors_reports_then_fails(
    tmp_path: Path, bench_dir: Path, monkeypatch: pytest.MonkeyPatch, no_matplotlib: None, capsys: pytest.CaptureFixture[str]
) -> None:
    text = jsonl(
        [
            *full_run(),
            {"type": "error", "scenario": "size", "mechanism": "soft_dirty", "error": "benchmark child died (status 0x9)"},
        ]
    )
    FakeGuest(tmp_path, monkeypatch, text, exit_code=1)
    assert bench.run("plain", vm.RunOptions(), []) == 1
    res = json.loads((bench_dir / "results.json").read_text())
    assert len(res["errors"]) == 1 and len(res["measurements"]) > 0
    assert "ERROR: " in capsys.readouterr().out


def test_run_without_results_fails(tmp_path: Path, bench_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeGuest(tmp_path, monkeypatch, None, exit_code=124)
    with pytest.raises(bench.StepFailed, match="wrote no results"):
        bench.run("plain", vm.RunOptions(), [])
    assert not (bench_dir / "results.json").exists()


# ---------------------------------------------------------------- plots


def test_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    records = [*full_run(), measurement("vmas", "pagemap_scan", [30, 40, 50], vmas=10, touched_pages=10)]
    data = parse(records)
    paths, note = bench.plot(data, INFO, tmp_path)
    assert note == ""
    assert sorted(p.name for p in paths) == ["sweep-vs-size.png", "sweep-vs-touched.png", "sweep-vs-vmas.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_only_what_was_measured(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    (tmp_path / "sweep-vs-vmas.png").write_bytes(b"stale")
    data = parse(
        [
            META,
            measurement("thp", "touched_sweep", [1, 2], tracked_mib=64, thp=True),
            measurement("thp", "touched_sweep", [1, 2], tracked_mib=2048, thp=True),
        ]
    )
    paths, _ = bench.plot(data, INFO, tmp_path)
    assert [p.name for p in paths] == ["sweep-vs-size.png"]
    assert not (tmp_path / "sweep-vs-vmas.png").exists()


def test_no_plots_without_matplotlib(tmp_path: Path, no_matplotlib: None) -> None:
    paths, note = bench.plot(parse(full_run()), INFO, tmp_path)
    assert paths == [] and "install-deps --bench" in note
