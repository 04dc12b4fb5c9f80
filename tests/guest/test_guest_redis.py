"""A pre-copy dump of a real server under load, exact on every backend ``dump`` takes.

Debian's ``redis-server`` holds a few tens of megabytes of keys (jemalloc,
which gives memory back with ``MADV_DONTNEED``) while ``redis-benchmark``
keeps overwriting them through a unix socket.  The dump runs against
that load and leaves the server stopped; :func:`~pysweep.dump.verify` then
compares the image with the server's memory byte for byte.
"""

from __future__ import annotations

import errno
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pysweep import PAGE_SIZE
from pysweep.dump import Dumper, verify
from pysweep.tracker import BackendUnavailableError

KEYS = 20_000
VALUE = 1024
# redis-benchmark's run: long enough to outlast any dump.
LOAD_REQUESTS = 100_000_000


def _need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"{program} is missing: tools/testing/harness/install-deps installs it (redis-server, redis-tools)")
    return path


def _wait_for(sock: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not sock.exists():
        if proc.poll() is not None:
            pytest.fail(f"redis-server exited with {proc.returncode} before it listened")
        if time.monotonic() > deadline:
            pytest.fail(f"redis-server did not listen on {sock} within {timeout} s")
        time.sleep(0.05)


def _benchmark(sock: Path, requests: int, *, keys: int) -> list[str]:
    return [
        _need("redis-benchmark"),
        "-s",
        str(sock),
        "-q",
        "-t",
        "set",
        "-n",
        str(requests),
        "-r",
        str(keys),
        "-d",
        str(VALUE),
        "-c",
        "2",
    ]


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A redis-server with KEYS keys of VALUE bytes, listening on a unix socket only."""
    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen(
        [
            _need("redis-server"),
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--logfile",
            str(tmp_path / "redis.log"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(sock, proc)
        # Fill every key once: -r picks keys at random, so ask for more
        # requests than keys.
        subprocess.run(_benchmark(sock, 4 * KEYS, keys=KEYS), check=True, stdout=subprocess.DEVNULL, timeout=600)
        yield proc, sock
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("backend", ["touched_sweep", "soft_dirty"])
def test_redis_under_load_is_dumped_exactly(redis: tuple[subprocess.Popen[bytes], Path], tmp_path: Path, backend: str) -> None:
    server, sock = redis
    load = subprocess.Popen(
        _benchmark(sock, LOAD_REQUESTS, keys=KEYS), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(1)
        assert load.poll() is None, "redis-benchmark stopped before the dump"
        image = tmp_path / "image"
        dumper = Dumper(server.pid, image, backend=backend, max_rounds=6, converge_bytes=256 * PAGE_SIZE)
        rounds = dumper.run(resume=False)
        # The load kept writing while the earlier rounds copied.
        assert len(rounds) >= 2 and sum(r.pages for r in rounds[1:]) > 0
        assert rounds[0].bytes >= KEYS * VALUE
        bad = verify(image, server.pid)
        assert bad == [], f"{len(bad)} page(s) of the image differ from the server's memory, first {bad[0]:#x}"
    finally:
        load.kill()
        load.wait()


def test_a_backend_that_cannot_watch_another_process_is_refused(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "600"])
    try:
        with pytest.raises(BackendUnavailableError) as refused:
            Dumper(other.pid, tmp_path / "image", backend="pagemap_scan")
        assert refused.value.errno == errno.EOPNOTSUPP
    finally:
        other.kill()
        other.wait()
