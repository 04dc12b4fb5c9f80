"""The upstream series tooling (make patches): plan, stages, checkpatch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "testing" / "harness"))

import kbuild
import series
from common import StepFailed


def test_every_new_file_is_added_by_exactly_one_patch() -> None:
    patches = series.plan()
    added = [rel for p in patches for rel in p.new_files]
    assert sorted(added) == sorted(kbuild.overlay_content())
    assert len(added) == len(set(added))
    by_name = {p.name.split("-", 1)[0]: p for p in patches}
    # The tracking core comes first; the system call only after the hooks.
    assert "mm/touched_marks.c" in by_name["0001"].new_files
    assert "mm/touched_sweep.c" in by_name["0004"].new_files
    assert "include/uapi/linux/touched_sweep.h" in by_name["0004"].new_files


def test_the_syscall_is_wired_up_only_after_the_hooks() -> None:
    patches = series.plan()
    order = [set(kbuild.patch_files(p.path)) for p in patches]

    def first(path: str) -> int:
        return next(i for i, files in enumerate(order) if path in files)

    hooks = max(first("mm/vma.c"), first("mm/memory.c"))
    assert first("arch/x86/entry/syscalls/syscall_64.tbl") > hooks
    assert first("scripts/syscall.tbl") > hooks


def test_stages_give_the_files_before_fault_injection_and_the_check() -> None:
    patches = series.plan()
    after = series.staged_content(patches)
    fi = next(i for i, p in enumerate(patches) if "fault-injection" in p.name)
    check = next(i for i, p in enumerate(patches) if "DEBUG_TOUCHED_SWEEP" in p.name)
    assert fi < check
    for step, word in ((fi, b"touched_should_fail"), (check, b"touched_check_")):
        assert patches[step].stage is not None
        before, now = after[step - 1], after[step]
        for rel in ("mm/touched_marks.c", "mm/touched_sweep.c", "mm/touched_marks.h"):
            assert word in now[rel]
            assert word not in before[rel]
    final = after[-1]
    assert final == {rel: data for rel, data in kbuild.overlay_content().items() if rel in final}
    # Files appear with the patch that adds them, not before.
    assert "mm/touched_sweep.c" not in after[0]
    assert "mm/touched_check.c" not in after[fi]
    assert "tools/testing/selftests/touched_sweep/Makefile" not in after[check]


def test_a_stage_diff_that_no_longer_applies_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    patches = series.plan()
    fi = next(i for i, p in enumerate(patches) if p.stage is not None)
    broken = tmp_path / patches[fi].stage.name  # type: ignore[union-attr]
    text = patches[fi].stage.read_text()  # type: ignore[union-attr]
    broken.write_text(text.replace("+\tif (touched_should_fail(bytes))", "+\tif (touched_should_fail(nbytes))"))
    patches[fi] = series.SeriesPatch(patches[fi].path, patches[fi].new_files, broken)
    with pytest.raises(StepFailed, match="no longer applies"):
        series.staged_content(patches)


def _write_new_files(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "new-files"
    path.write_text(text)
    monkeypatch.setattr(series, "NEW_FILES", path)


def test_new_files_must_name_every_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = series.NEW_FILES.read_text()
    _write_new_files(tmp_path, good.replace("0004 include/uapi/linux/touched_sweep.h ", "0004 "), monkeypatch)
    with pytest.raises(
        StepFailed,
        match=r"which patch adds "
        r"include/uapi/linux/touched_sweep\.h",
    ):
        series.plan()
    _write_new_files(tmp_path, good + "0008 mm/touched_marks.c\n", monkeypatch)
    with pytest.raises(StepFailed, match="already added by 0001"):
        series.plan()
    _write_new_files(tmp_path, good + "0042 mm/touched_marks.c\n", monkeypatch)
    with pytest.raises(StepFailed, match="no patch numbered 0042"):
        series.plan()
    _write_new_files(tmp_path, good + "0008 mm/nonexistent.c\n", monkeypatch)
    with pytest.raises(StepFailed, match="not a file the repository adds"):
        series.plan()


CHECKPATCH_OUTPUT = """\
CHECK:PARENTHESIS_ALIGNMENT: Alignment should match open parenthesis
#120: FILE: mm/touched_sweep.c:45:
+	foo(a,
+		b);

WARNING:LONG_LINE: line length of 101 exceeds 100 columns
#130: FILE: mm/touched_marks.c:7:
+	int x = 1;

CHECK:CAMELCASE: Avoid CamelCase: <fooBar>
#140: FILE: tools/testing/selftests/touched_sweep/touched_sweep_test.c:9:
+	int fooBar;

ERROR:MISSING_SIGN_OFF: Missing Signed-off-by: line(s)

total: 1 errors, 1 warnings, 2 checks, 200 lines checked
"""


def test_checkpatch_findings_are_parsed_and_checks_need_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "checkpatch.pl"
    out = tmp_path / "out.txt"
    out.write_text(CHECKPATCH_OUTPUT)
    fake.write_text(f"#!/bin/sh\ncat {out}\nexit 1\n")
    fake.chmod(0o755)
    reasons = tmp_path / "checkpatch-checks"
    reasons.write_text("# comment\n\nCAMELCASE tools/testing/*: the test mirrors\na libc name.\n")
    monkeypatch.setattr(series, "CHECK_REASONS", reasons)
    patch = tmp_path / "0001-x.patch"
    patch.write_text("")
    report = series.run_checkpatch([patch], fake)
    assert len(report.errors) == 1 and "(commit message)" in report.errors[0]
    assert len(report.warnings) == 1 and "mm/touched_marks.c" in report.warnings[0]
    assert report.checks == {
        ("PARENTHESIS_ALIGNMENT", "mm/touched_sweep.c"): 1,
        ("CAMELCASE", "tools/testing/selftests/touched_sweep/touched_sweep_test.c"): 1,
    }
    assert len(report.unjustified) == 1
    assert "PARENTHESIS_ALIGNMENT" in report.unjustified[0]
    assert report.per_patch == {"0001-x.patch": (1, 1, 2)}
    assert not report.ok
    summary = series.checkpatch_summary(report)
    assert "1 errors, 1 warnings, 2 checks" in summary
    assert "the test mirrors a libc name." in summary
    assert "(no justification recorded)" in summary


def test_cover_letter_is_filled(tmp_path: Path) -> None:
    cover = tmp_path / "0000-cover-letter.patch"
    cover.write_text("Subject: [PATCH 0/9] *** SUBJECT HERE ***\n\n*** BLURB HERE ***\n\nA (1):\n  x\n")
    series.fill_cover_letter(cover, series.CheckpatchReport())
    text = cover.read_text()
    subject = series.COVER_LETTER.read_text().splitlines()[0]
    assert f"[PATCH 0/9] {subject}" in text
    assert "CHECKPATCH_SUMMARY" not in text and "ARM64_RESULT" not in text
    assert "0 errors, 0 warnings, 0 checks" in " ".join(text.split())
    with pytest.raises(StepFailed, match="not git format-patch"):
        series.fill_cover_letter(cover, series.CheckpatchReport())


def test_wrap_keeps_items_and_paragraphs() -> None:
    text = series._wrap("- " + "word " * 30 + "\n\nplain " * 1)
    lines = text.splitlines()
    assert lines[0].startswith("- ") and all(len(ln) <= 72 for ln in lines)
    assert all(ln.startswith("  ") for ln in lines[1 : lines.index("")])


def test_history_applies_in_order_and_matches_the_build() -> None:
    """The rebuilt history ends where the build's tree is."""
    if not kbuild.SOURCE_TARBALL.exists():
        pytest.skip("no kernel source tarball")
    patches = series.plan()
    repo = series.build_history(patches)
    log = subprocess.run(["git", "-C", str(repo), "log", "--format=%s"], capture_output=True, text=True, check=True)
    subjects = log.stdout.splitlines()
    assert len(subjects) == len(patches) + 1
    for rel, data in kbuild.overlay_content().items():
        assert (repo / rel).read_bytes() == data, rel


def test_check_summary_names_every_patch_and_problem(capsys: pytest.CaptureFixture[str]) -> None:
    results: dict[str, object] = {
        "patches": {"0001-a.patch": {"build_s": 98.5, "warnings": 0}, "0002-b.patch": {"build_s": 12.0, "warnings": 1}},
        "selftests": {"built": ["t1", "t2"], "warnings": 0},
        "docs": {"kernel_doc_files": 5, "kernel_doc_warnings": 0, "htmldocs_warnings": 0, "htmldocs_s": 37},
        "arm64": {"summary": "arm64: fine."},
        "checkpatch": {"errors": 0, "warnings": 0, "checks": 0},
        "seconds": 371,
    }
    series.print_check_summary(results, ["0002-b.patch: x.c:1: warning: y"])
    out = capsys.readouterr().out
    assert "2 patches applied and built one by one; 371 s" in out
    assert "0002-b.patch" in out and "1 warnings" in out
    assert "Sphinx: 0 warnings (37 s)" in out and "arm64: fine." in out
    assert "check-patches: 1 problem(s):" in out
    assert "check-patches: ok" not in out
    series.print_check_summary(results, [])
    assert capsys.readouterr().out.rstrip().endswith("check-patches: ok")
