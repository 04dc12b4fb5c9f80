# touched_sweep: a tagged write-tracking sweep for Linux 6.12, and pysweep.
#
# `make demo` runs the main job and `make test` runs every test; both
# install what they need and build what is missing.  `make help` lists the
# other targets.

PYTHON ?= python3
HARNESS := $(PYTHON) tools/testing/harness
# Options for harness's guest runs, e.g. HARNESS_ARGS="--timeout 600".
HARNESS_ARGS ?=

PYSWEEP_EXT_SOURCES := include/uapi/linux/touched_sweep.h setup.py \
	$(wildcard pysweep/_build_ffi.py pysweep/_build_mainline.py pysweep/*.c)
PYSWEEP_EXT_STAMP := build/py/.built

.PHONY: all help deps pysweep kernel kernel-debug selftests test test-host \
	lint vm-run demo bench soak patches check-patches probe-kvm mm-baseline clean distclean

all: help

help:
	@echo "make test          install, build and run every test (host, then one guest boot)"
	@echo "make demo          the main job: dump a busy process pre-copy and full-stop in the"
	@echo "                   guest, compare the freeze times (DEMO_ARGS='--size 256 ...')"
	@echo "make bench         benchmark touched_sweep against PAGEMAP_SCAN and soft-dirty"
	@echo "                   in one guest boot: build/bench/results.json, plots, targets"
	@echo "                   (HARNESS_ARGS='--quick' or '--runs N'; see $(HARNESS) bench --help)"
	@echo "make patches       the upstream series with a cover letter in build/patches/,"
	@echo "                   checked with checkpatch --strict"
	@echo "make check-patches make patches, then build the kernel after each patch,"
	@echo "                   check the docs, cross-build and boot arm64 (~30 min cold)"
	@echo "make soak          the lost-write stress, fuzzer and fault injection at length"
	@echo "                   on the debug kernel (SOAK_SECONDS=600, SOAK_FUZZ_CALLS=1000000)"
	@echo "make kernel        build the plain guest kernel (build/obj-plain)"
	@echo "make kernel-debug  build the debug guest kernel (KASAN, lockdep; build/obj-debug)"
	@echo "make selftests     build the kselftests"
	@echo "make pysweep       build pysweep's cffi extension in place"
	@echo "make test-host     run only the host Python tests"
	@echo "make lint          ruff and mypy (strict) over the Python code"
	@echo "make vm-run CMD='pytest tests/guest -k foo' [FLAVOUR=plain]"
	@echo "                   boot the guest and run one command in it"
	@echo "make probe-kvm     say whether KVM works here (TCG is used otherwise)"
	@echo "make mm-baseline   re-record the upstream mm selftest results of the"
	@echo "                   unpatched kernel (tools/testing/harness/mm-baseline.json)"
	@echo "make clean         remove test results and the built extension"
	@echo "make distclean     remove build/ entirely"
	@echo "Logs: build/logs/.  Full options: $(HARNESS) --help"

deps:
	@PYTHON=$(PYTHON) tools/testing/harness/install-deps

$(PYSWEEP_EXT_STAMP): $(PYSWEEP_EXT_SOURCES) | deps
	@mkdir -p build/py
	@echo "building pysweep's cffi extension (log: build/logs/pysweep.log)"
	@mkdir -p build/logs
	@$(PYTHON) setup.py -q build_ext --inplace --build-temp build/py \
		> build/logs/pysweep.log 2>&1 || \
		{ tail -20 build/logs/pysweep.log; \
		  echo "pysweep build failed; full log: build/logs/pysweep.log"; \
		  exit 1; }
	@touch $@

pysweep: $(PYSWEEP_EXT_STAMP)

kernel: deps
	@$(HARNESS) kernel --flavour plain

kernel-debug: deps
	@$(HARNESS) kernel --flavour debug

selftests: deps
	@$(HARNESS) kernel --flavour debug --selftests

test-host: pysweep
	@$(PYTHON) -m pytest -p no:cacheprovider -q tests/host

lint: deps
	@$(HARNESS) lint

test: pysweep
	@$(HARNESS) test $(HARNESS_ARGS)

FLAVOUR ?= debug
vm-run: export HARNESS_CMD = $(CMD)
vm-run: pysweep
	@test -n "$$HARNESS_CMD" || { echo "usage: make vm-run CMD='command'"; exit 2; }
	@$(HARNESS) run --flavour $(FLAVOUR) $(HARNESS_ARGS) -- sh -c "$$HARNESS_CMD"

# The main job: boot the plain kernel and, in it, dump a busy workload the
# classic way and pre-copy (pysweep demo).  DEMO_ARGS go to pysweep demo,
# e.g. DEMO_ARGS='--size 256 --rate 5000'.  The images go to the guest's
# /tmp, which is RAM (half of it): fast enough not to slow the rounds down.
# 6 GiB leave room for a soft_dirty dump, which copies far more, and for
# the 1 GiB workload whose dump's memory is measured, with its 2 GiB image.
DEMO_ARGS ?=
demo: pysweep
	@$(HARNESS) run --flavour plain --memory 6G --timeout 1200 $(HARNESS_ARGS) -- \
		python3 -m pysweep demo $(DEMO_ARGS)

# One guest boot with 6 GiB of memory and an hour's timeout; the raw JSON
# lines, results.json and the plots go to build/bench/.
# The reliability tests at length; make test runs them at CI size.
SOAK_SECONDS ?= 600
SOAK_FUZZ_CALLS ?= 1000000
soak: deps
	@$(HARNESS) soak --duration $(SOAK_SECONDS) --fuzz-calls $(SOAK_FUZZ_CALLS) $(HARNESS_ARGS)

patches: deps
	@$(HARNESS) patches

check-patches:
	@PYTHON=$(PYTHON) tools/testing/harness/install-deps --patches
	@$(HARNESS) check-patches $(HARNESS_ARGS)

bench:
	@PYTHON=$(PYTHON) tools/testing/harness/install-deps --bench
	@$(HARNESS) bench $(HARNESS_ARGS)

probe-kvm: kernel
	@$(HARNESS) probe-kvm

mm-baseline: deps
	@$(HARNESS) mm-baseline $(HARNESS_ARGS)

clean:
	rm -rf build/results build/vm build/py pysweep/_native*.so

distclean:
	rm -rf build pysweep/_native*.so
