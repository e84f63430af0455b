"""SIGKILL at any moment of ``library add`` / ``library import`` leaves a consistent library.

Two ways of choosing the moment:

* timed kills of the real CLI (``python -m seedprints library add|import``): the command is
  run once uncut to measure its runtime T, then killed after delays spread over (0, T);
* marked kills at exact points: a "zygote" interpreter imports seedprints once and forks one
  child per kill point; the child patches a hook (``atomic_write_bytes``, ``os.replace``,
  ``Library._insert``, the SQLite commit, ...) to print a marker and sleep, and the test
  SIGKILLs it on seeing the marker.  Forking keeps each point at a few milliseconds.

After every kill the library is reopened with a fresh ``Library(dir)`` and checked: SQLite
integrity, every index row's file exists and verifies, the reference count is the old one or
the old one plus everything (never a partial import), unreferenced files are never read
(they are clobbered before the library is used again), and the interrupted operation can be
redone.  ``atomic_write_bytes`` itself is killed mid-write as well: the target is always
absent/old or complete, never truncated.
"""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from seedprints.audit import fingerprint_model
from seedprints.errors import LibraryError
from seedprints.fingerprint import Fingerprint, load_fingerprint
from seedprints.library import Library

from helpers import tiny_llama, tiny_spec

ROOT = Path(__file__).resolve().parents[1]
PROBE_ARGS = ["--n-samples", "100", "--seq-len", "8", "--vocab-range", "512"]
BASE_NAMES = frozenset({"ref-a", "ref-b"})
IMPORT_NAMES = frozenset(f"imp-{i}" for i in range(6))
TARGET = "target"
#: delays as fractions of the measured uncut runtime; denser near the end, where the writes happen
TIMED_FRACTIONS = [0.08, 0.25, 0.4, 0.55, 0.65, 0.73, 0.8, 0.86, 0.9, 0.94, 0.97, 0.99]

#: kill points actually reached (the process was SIGKILLed), per test; summed by the last test
KILLS: dict[str, int] = {}
OUTCOMES: dict[str, list[str]] = {}


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A model folder, a pristine 2-reference library, a 6-reference export and the target fingerprint."""
    base = tmp_path_factory.mktemp("crash")
    spec = tiny_spec(n=100, seq_len=8)
    model = base / "model"
    tiny_llama(0).save_pretrained(model)

    lib = Library(base / "pristine")
    for name, seed in (("ref-a", 1), ("ref-b", 2)):
        lib.add(fingerprint_model(tiny_llama(seed), spec, name=name, device="cpu"), name=name, family="tiny", seed=seed)

    src = Library(base / "export-src")
    for i, name in enumerate(sorted(IMPORT_NAMES)):
        src.add(fingerprint_model(tiny_llama(10 + i), spec, name=name, device="cpu"), name=name, family="imp",
                seed=10 + i)
    archive = src.export_zip(base / "export.zip")

    # the fingerprint the CLI would add for the model folder (no cache involved)
    target = fingerprint_model(str(model), spec, device="cpu")
    target_file = target.save(base / "target.safetensors")
    env = {**os.environ, "SEEDPRINTS_HOME": str(base / "home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TRANSFORMERS_VERBOSITY": "error"}
    return {"base": base, "model": model, "pristine": base / "pristine", "archive": archive, "target": target,
            "target_file": target_file, "env": env, "counter": [0]}


def fresh_copy(world, label: str) -> Path:
    """A copy of the pristine library to be killed in."""
    world["counter"][0] += 1
    dest = world["base"] / "runs" / f"{world['counter'][0]:03d}-{label}"
    shutil.copytree(world["pristine"], dest)
    return dest


# ---------------------------------------------------------------------------- consistency
def check_library(root: Path, allowed: list[frozenset[str]]) -> tuple[frozenset[str], list[Path]]:
    """Everything a killed operation must leave true; returns (names, unreferenced files)."""
    lib = Library(root, create=False)
    conn = sqlite3.connect(root / "index.sqlite")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        n_rows = conn.execute("SELECT COUNT(*) FROM refs").fetchone()[0]
    finally:
        conn.close()
    refs = lib.list()
    names = frozenset(r.name for r in refs)
    assert len(refs) == n_rows == len(lib)
    assert names in allowed, f"library holds {sorted(names)}, expected one of {[sorted(a) for a in allowed]}"
    for r in refs:
        assert (root / r.file).is_file(), f"index row {r.name} points to missing {r.file}"
        assert lib.load(r).name == r.name  # load() verifies the file against the index's content hash
        assert load_fingerprint(root / r.file).verified_hash == r.content_sha256
    referenced = {(root / r.file).resolve() for r in refs}
    orphans = [p for p in (root / "fingerprints").iterdir() if p.resolve() not in referenced]
    # unreferenced files are allowed but must never be read: clobber them, then use the library
    for p in orphans:
        assert p.is_file()
        p.write_bytes(b"clobbered: an unreferenced file was read")
    assert [r.name for r, _ in Library(root, create=False).items()] == [r.name for r in refs]
    if refs:
        assert Library(root, create=False).default_probe() is not None
    return names, orphans


def outcome(names: frozenset[str], orphans: list[Path], old: frozenset[str]) -> str:
    state = "unchanged" if names == old else "committed"
    return f"{state}+{len(orphans)}orphan" if orphans else state


def redo_add(root: Path, target: Fingerprint, names: frozenset[str]) -> None:
    """The interrupted add can be redone (or, if it committed, is refused as a duplicate)."""
    lib = Library(root, create=False)
    if TARGET in names:
        with pytest.raises(LibraryError, match="already"):
            lib.add(target, name=TARGET)
    else:
        lib.add(target, name=TARGET, family="tiny", seed=0)
    names2, _ = check_library(root, [BASE_NAMES | {TARGET}])
    assert names2 == BASE_NAMES | {TARGET}


def redo_import(root: Path, archive: Path, names: frozenset[str]) -> None:
    lib = Library(root, create=False)
    if names == BASE_NAMES:
        assert {r.name for r in lib.import_zip(archive)} == IMPORT_NAMES
    else:
        with pytest.raises(LibraryError, match="already"):
            lib.import_zip(archive)
    check_library(root, [BASE_NAMES | IMPORT_NAMES])


# ---------------------------------------------------------------------------- CLI helpers
def cli(world, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "seedprints", *args], capture_output=True, text=True,
                          env=world["env"], cwd=ROOT, timeout=timeout)


def add_argv(world, lib: Path) -> list[str]:
    return ["library", "add", str(world["model"]), "--library", str(lib), "--name", TARGET, "--family", "tiny",
            "--seed", "0", *PROBE_ARGS, "--no-cache", "--device", "cpu", "-q"]


def import_argv(world, lib: Path) -> list[str]:
    return ["library", "import", str(world["archive"]), "--library", str(lib), "-q"]


def run_killed(world, argv: list[str], delay: float) -> tuple[bool, float]:
    """Start the CLI, SIGKILL it after ``delay`` seconds.

    Returns (killed, elapsed): killed is False when the command finished first (it must then have succeeded).
    """
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "seedprints", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=world["env"], cwd=ROOT)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        return proc.returncode == -signal.SIGKILL, time.monotonic() - t0
    finally:
        if proc.poll() is None:  # pragma: no cover - only if the wait above failed
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"uncut run failed with {proc.returncode}"
    return False, time.monotonic() - t0


def measure(world, argv: list[str]) -> float:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "seedprints", *argv], capture_output=True, text=True,
                          env=world["env"], cwd=ROOT, timeout=300)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    return elapsed


def timed_kills(world, label: str, argv_for, full: frozenset[str], redo) -> tuple[float, list[str]]:
    """Kill the command at TIMED_FRACTIONS of its measured runtime, checking the library after each kill.

    The machine's load varies: when a run finishes before its kill, the runtime estimate is lowered to
    that run's duration and the same fraction is tried again (at most 3 tries per fraction).
    """
    control = fresh_copy(world, f"{label}-uncut")
    runtime = measure(world, argv_for(control))
    assert check_library(control, [full])[0] == full
    seen = []
    for frac in TIMED_FRACTIONS:
        for _ in range(3):
            lib = fresh_copy(world, f"{label}-t{frac}")
            killed, elapsed = run_killed(world, argv_for(lib), frac * runtime)
            names, orphans = check_library(lib, [BASE_NAMES, full])
            redo(lib, names)
            if killed:
                seen.append(f"{frac * runtime:.2f}s:{outcome(names, orphans, BASE_NAMES)}")
                break
            assert names == full, "a command that ran to the end must have committed"
            runtime = min(runtime, elapsed)
    return runtime, seen


# ---------------------------------------------------------------------------- timed kills of the CLI
@pytest.mark.slow  # a CLI process per delay: 87 s on a busy 2-core machine
def test_cli_add_killed_at_spread_delays(world):
    runtime, seen = timed_kills(world, "add", lambda lib: add_argv(world, lib), BASE_NAMES | {TARGET},
                                lambda lib, names: redo_add(lib, world["target"], names))
    KILLS["cli-add"] = len(seen)
    OUTCOMES["cli-add"] = seen
    print(f"\ncli add: runtime ~{runtime:.2f}s, {len(seen)} kills: {seen}")
    assert len(seen) >= len(TIMED_FRACTIONS) - 2, "nearly every delay should fall before the command ends"


@pytest.mark.slow  # 25 s
def test_cli_import_killed_at_spread_delays(world):
    runtime, seen = timed_kills(world, "import", lambda lib: import_argv(world, lib), BASE_NAMES | IMPORT_NAMES,
                                lambda lib, names: redo_import(lib, world["archive"], names))
    KILLS["cli-import"] = len(seen)
    OUTCOMES["cli-import"] = seen
    print(f"\ncli import: runtime ~{runtime:.2f}s, {len(seen)} kills: {seen}")
    assert len(seen) >= len(TIMED_FRACTIONS) - 2, "nearly every delay should fall before the command ends"


# ---------------------------------------------------------------------------- marked kills (zygote + fork)
ZYGOTE = r'''
import json, os, sys, time

import seedprints.fingerprint as F
import seedprints.library as L


def say(msg):
    os.write(1, (msg.replace("\n", " ") + "\n").encode())


def hold(label):
    say("MARK " + label)
    time.sleep(600)  # the test SIGKILLs this process here
    os._exit(3)


def hook_call(owner, attr, when, nth, label):
    """Hold before/after the nth call of owner.attr."""
    real = getattr(owner, attr)
    calls = [0]

    def wrapper(*a, **kw):
        calls[0] += 1
        hit = calls[0] == nth
        if hit and when == "before":
            hold(label)
        out = real(*a, **kw)
        if hit and when == "after":
            hold(label)
        return out

    setattr(owner, attr, wrapper)


def hook_partial_write(nth, label):
    """The nth os.fdopen'ed file gets half its data written (and fsynced), then the process holds."""
    real = os.fdopen
    calls = [0]

    class Half:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            os.fsync(self.f.fileno())
            hold(label)

        def __getattr__(self, name):
            return getattr(self.f, name)

    def fdopen(*a, **kw):
        calls[0] += 1
        f = real(*a, **kw)
        return Half(f) if calls[0] == nth else f

    os.fdopen = fdopen


def hook_before_commit(label):
    """Hold inside the index transaction: rows inserted, COMMIT not yet issued."""
    real = L.Library._connect

    class Conn:
        def __init__(self, c):
            self._c, self._wrote = c, False

        def executemany(self, *a, **kw):
            self._wrote = True
            return self._c.executemany(*a, **kw)

        def __enter__(self):
            self._c.__enter__()
            return self

        def __exit__(self, et, ev, tb):
            if self._wrote and et is None:
                hold(label)
            return self._c.__exit__(et, ev, tb)

        def __getattr__(self, name):
            return getattr(self._c, name)

    L.Library._connect = lambda self: Conn(real(self))


def install(point):
    kind, _, arg = point.partition(":")
    nth = int(arg) if arg else 1
    if kind == "before-save":
        hook_call(F, "atomic_write_bytes", "before", 1, point)
    elif kind == "validate":
        hook_call(L, "fingerprint_from_bytes", "before", nth, point)
    elif kind == "write-before":
        hook_call(L, "atomic_write_bytes", "before", nth, point)
    elif kind == "write-after":
        hook_call(L, "atomic_write_bytes", "after", nth, point)
    elif kind == "partial-write":
        hook_partial_write(nth, point)
    elif kind == "before-fsync":
        hook_call(os, "fsync", "before", nth, point)
    elif kind == "before-rename":
        hook_call(os, "replace", "before", nth, point)
    elif kind == "after-rename":
        hook_call(os, "replace", "after", nth, point)
    elif kind == "before-insert":
        hook_call(L.Library, "_insert", "before", 1, point)
    elif kind == "before-commit":
        hook_before_commit(point)
    elif kind == "after-commit":
        hook_call(L.Library, "_insert", "after", 1, point)
    elif kind != "after-return":
        raise ValueError("unknown kill point " + point)


def run(job):
    point = job["point"]
    if job["op"] == "add":
        fp = F.load_fingerprint(job["fingerprint"])
        lib = L.Library(job["library"], create=False)
        install(point)
        lib.add(fp, name=job["name"], family="tiny", seed=0, keep=0.2)
    elif job["op"] == "import":
        lib = L.Library(job["library"], create=False)
        install(point)
        lib.import_zip(job["archive"])
    elif job["op"] == "atomic":
        install(point)
        F.atomic_write_bytes(job["target"], bytes([job["fill"]]) * job["size"])
    elif job["op"] == "atomic-loop":  # rewrite the target forever, killed at a random moment
        i = 0
        say("MARK looping")
        while True:
            i += 1
            F.atomic_write_bytes(job["target"], bytes([i % 251]) * job["size"])
    if point == "after-return":
        hold(point)


say("READY")
for line in sys.stdin:
    job = json.loads(line)
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        try:
            run(job)
            say("DONE")
        except BaseException as exc:
            say("ERROR %s: %s" % (type(exc).__name__, exc))
        os._exit(0)
    say("PID %d" % pid)
    _, status = os.waitpid(pid, 0)
    say("EXIT %d %d" % (pid, status))
'''


class Zygote:
    """One interpreter with seedprints imported; each job runs in a forked child that the test kills."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, cwd=ROOT, text=True, bufsize=1)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        assert self._line(120) == "READY"

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _line(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"zygote silent for {timeout}s") from None
        if line is None:
            raise AssertionError(f"zygote died (rc={self.proc.poll()})")
        return line

    def kill_at(self, job: dict, delay: float | None = None) -> str:
        """Run a job, SIGKILL its child at the marker (plus ``delay`` seconds); returns the marker."""
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        pid, mark = None, None
        while pid is None or mark is None:
            line = self._line(60)
            kind, _, rest = line.partition(" ")
            if kind == "PID":
                pid = int(rest)
            elif kind == "MARK":
                mark = rest
            elif kind in ("DONE", "ERROR"):
                raise AssertionError(f"kill point {job['point']} was never reached: {line}")
            else:
                raise AssertionError(f"unexpected zygote output {line!r}")
        if delay:
            time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        line = self._line(60)
        kind, _, rest = line.partition(" ")
        assert kind == "EXIT" and int(rest.split()[0]) == pid, line
        status = int(rest.split()[1])
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"child not SIGKILLed: {status}"
        return mark

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def zygote(world):
    z = Zygote(world["env"])
    yield z
    z.close()


ADD_POINTS = ["before-save", "partial-write", "before-fsync", "before-rename", "after-rename", "before-insert",
              "before-commit", "after-commit", "after-return"]
ADD_COMMITTED = {"after-commit", "after-return"}
IMPORT_POINTS = (["validate:3", "write-before:1"]
                 + [f"write-after:{k}" for k in range(1, 7)]
                 + ["partial-write:4", "before-rename:6", "after-rename:6",
                    "before-insert", "before-commit", "after-commit", "after-return"])
IMPORT_COMMITTED = {"after-commit", "after-return"}


def test_add_killed_at_marked_points(world, zygote):
    seen = []
    for point in ADD_POINTS:
        lib = fresh_copy(world, f"add-{point}")
        zygote.kill_at({"op": "add", "point": point, "library": str(lib), "name": TARGET,
                        "fingerprint": str(world["target_file"])})
        names, orphans = check_library(lib, [BASE_NAMES, BASE_NAMES | {TARGET}])
        assert (TARGET in names) == (point in ADD_COMMITTED), f"{point}: {sorted(names)}"
        # at most the one fingerprint file (or its temporary) is left over
        assert len(orphans) <= 1, f"{point}: {orphans}"
        if point in ("after-rename", "before-insert", "before-commit"):
            assert [p.suffix for p in orphans] == [".safetensors"], f"{point}: the new file should be in place"
        seen.append(f"{point}:{outcome(names, orphans, BASE_NAMES)}")
        redo_add(lib, world["target"], names)
    KILLS["marked-add"] = len(seen)
    OUTCOMES["marked-add"] = seen
    print(f"\nmarked add: {seen}")


def test_import_killed_at_marked_points(world, zygote):
    seen = []
    for point in IMPORT_POINTS:
        lib = fresh_copy(world, f"import-{point.replace(':', '')}")
        zygote.kill_at({"op": "import", "point": point, "library": str(lib), "archive": str(world["archive"])})
        names, orphans = check_library(lib, [BASE_NAMES, BASE_NAMES | IMPORT_NAMES])  # never a partial import
        assert (names == BASE_NAMES | IMPORT_NAMES) == (point in IMPORT_COMMITTED), f"{point}: {sorted(names)}"
        assert len(orphans) <= len(IMPORT_NAMES), f"{point}: {orphans}"
        if point.startswith("write-after:"):
            assert len(orphans) == int(point.split(":")[1])
        seen.append(f"{point}:{outcome(names, orphans, BASE_NAMES)}")
        redo_import(lib, world["archive"], names)
    KILLS["marked-import"] = len(seen)
    OUTCOMES["marked-import"] = seen
    print(f"\nmarked import: {seen}")


def test_cli_works_on_killed_libraries(world, zygote):
    """After a kill with the rows inserted but not committed, the real CLI adds/imports and lists normally."""
    lib = fresh_copy(world, "cli-after-add-kill")
    zygote.kill_at({"op": "add", "point": "before-commit", "library": str(lib), "name": TARGET,
                    "fingerprint": str(world["target_file"])})
    proc = cli(world, *add_argv(world, lib))
    assert proc.returncode == 0, proc.stderr
    listed = cli(world, "library", "list", "--library", str(lib), "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(r["name"] for r in json.loads(listed.stdout)) == sorted(BASE_NAMES | {TARGET})
    check_library(lib, [BASE_NAMES | {TARGET}])

    lib = fresh_copy(world, "cli-after-import-kill")
    zygote.kill_at({"op": "import", "point": "before-commit", "library": str(lib), "archive": str(world["archive"])})
    proc = cli(world, *import_argv(world, lib))
    assert proc.returncode == 0, proc.stderr
    listed = cli(world, "library", "list", "--library", str(lib), "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(r["name"] for r in json.loads(listed.stdout)) == sorted(BASE_NAMES | IMPORT_NAMES)
    check_library(lib, [BASE_NAMES | IMPORT_NAMES])


# ---------------------------------------------------------------------------- atomic_write_bytes
SIZE = 4 << 20


def assert_whole(target: Path, allowed_fills: set[int] | None, may_be_absent: bool) -> str:
    """The target is absent (if allowed) or exactly one complete payload."""
    if not target.exists():
        assert may_be_absent, f"{target} vanished"
        return "absent"
    data = target.read_bytes()
    assert len(data) == SIZE, f"truncated target: {len(data)} of {SIZE} bytes"
    assert data.count(data[:1]) == SIZE, "target mixes two payloads"
    if allowed_fills is not None:
        assert data[0] in allowed_fills
    return f"fill{data[0]}"


@pytest.mark.parametrize("existing", [False, True], ids=["new-target", "replace-old"])
def test_atomic_write_killed_at_marked_points(world, zygote, existing):
    points = ["partial-write", "before-fsync", "before-rename", "after-rename", "after-return"]
    seen = []
    for point in points:
        target = world["base"] / "atomic" / f"{existing}-{point}.bin"
        target.parent.mkdir(exist_ok=True)
        if existing:
            target.write_bytes(bytes([7]) * SIZE)
        zygote.kill_at({"op": "atomic", "point": point, "target": str(target), "fill": 9, "size": SIZE})
        state = assert_whole(target, {7, 9} if existing else {9}, may_be_absent=not existing)
        expected_new = point in ("after-rename", "after-return")
        assert state == ("fill9" if expected_new else ("fill7" if existing else "absent")), (point, state)
        leftovers = [p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]
        assert len(leftovers) <= 1
        seen.append(f"{point}:{state}")
    KILLS[f"atomic-{existing}"] = len(seen)
    print(f"\natomic write ({'replace' if existing else 'new'}): {seen}")


def test_atomic_write_killed_at_random_moments(world, zygote):
    """A child rewrites the target in a loop; killed at random moments, the target is always one whole payload."""
    rng = random.Random(1234)
    target = world["base"] / "atomic" / "loop.bin"
    target.parent.mkdir(exist_ok=True)
    seen = []
    for i in range(8):
        zygote.kill_at({"op": "atomic-loop", "point": "loop", "target": str(target), "size": SIZE},
                       delay=rng.uniform(0.02, 0.4))
        seen.append(assert_whole(target, None, may_be_absent=(i == 0)))
    temps = [p for p in target.parent.iterdir() if p.name.startswith(".loop.bin.")]
    assert len(temps) <= 8  # at most one leftover temporary per kill
    KILLS["atomic-loop"] = len(seen)
    print(f"\natomic write loop: {seen}")


def test_kill_point_count():
    """Runs last: at least 20 kill points in total (only meaningful when the whole file ran)."""
    expected = {"cli-add", "cli-import", "marked-add", "marked-import"}
    if not expected <= KILLS.keys():
        pytest.skip("only counted when every kill test of this file ran")
    total = sum(KILLS.values())
    print(f"\nkill points: {total} {KILLS}")
    assert total >= 20
