"""The store's files reach the disk before the store names them, other users cannot read them, what an
interrupted write left is cleaned up, and a damaged manifest or config is never read whole."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from docker_model.distribution import RegistryClient, Store, StoreCorruptError, package
from docker_model.distribution.artifact import MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES
from docker_model.distribution.store.check import STALE_TEMP_SECONDS
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import RegistryServer

NOBODY = 65534
_FSYNC = re.compile(r"\d+\s+f(?:data)?sync\(\d+<(.+?)>")
_RENAME = re.compile(r'\d+\s+rename(?:at2?)?\((?:AT_FDCWD, )?"(.+?)", (?:AT_FDCWD, )?"(.+?)"')
PULL_SCRIPT = """
import sys
from pathlib import Path
from docker_model.distribution import RegistryClient, Store
RegistryClient(Store(Path(sys.argv[1])), docker_config=Path(sys.argv[1])).pull(sys.argv[2])
"""


def traced_calls(trace: Path) -> list[tuple[str, ...]]:
    """("fsync", path) and ("rename", source, target) in the order strace saw them start."""
    calls: list[tuple[str, ...]] = []
    for line in trace.read_text().splitlines():
        if match := _FSYNC.match(line):
            calls.append(("fsync", match[1]))
        elif match := _RENAME.match(line):
            calls.append(("rename", match[1], match[2]))
    return calls


@pytest.mark.integration
def test_a_pull_flushes_each_file_before_renaming_it_and_its_folder_after(
    tmp_path: Path, registry: RegistryServer
) -> None:
    if shutil.which("strace") is None:
        pytest.skip("strace watches the system calls: install Debian's strace")
    art = package(write_gguf(tmp_path / "m.gguf", padding_bytes=1 << 20))
    ref = f"{registry.host}/ai/durable"
    RegistryClient(Store(tmp_path / "src"), docker_config=tmp_path).push_artifact(art, ref)
    store, trace = Store(tmp_path / "store"), tmp_path / "trace"
    command = [sys.executable, "-c", PULL_SCRIPT, str(store.root), ref]
    syscalls = "trace=fsync,fdatasync,rename,renameat,renameat2"
    subprocess.run(["strace", "-f", "-qq", "-y", "-e", syscalls, "-o", str(trace), *command], check=True, timeout=60)
    calls = traced_calls(trace)

    def durably_renamed(final: Path) -> int:
        """Where `final` was renamed into place, checking that its file was flushed before, its folder after."""
        at = max(i for i, call in enumerate(calls) if call[0] == "rename" and call[2] == str(final))
        assert ("fsync", calls[at][1]) in calls[:at], f"{calls[at][1]} renamed before it was flushed"
        assert ("fsync", str(final.parent)) in calls[at + 1 :], f"{final.parent} not flushed after the rename"
        return at

    index = durably_renamed(store.layout.index_file)
    named = [store.blobs.path(art.config_digest), store.layout.manifest(art.id)]
    named += [store.blobs.path(layer.digest) for layer in art.layers]
    for final in named:
        at = durably_renamed(final)
        assert at < index and ("fsync", str(final.parent)) in calls[at + 1 : index], f"{final} named too early"
    durably_renamed(store.layout.layout_file)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def readable_by_nobody(path: Path) -> bool:
    """Whether another user can read `path` (a file's bytes, a folder's names)."""
    command = ["ls", str(path)] if path.is_dir() else ["cat", str(path)]
    return subprocess.run(command, user=NOBODY, capture_output=True).returncode == 0


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder every user may enter (pytest's own is private to root, which would hide what we check)."""
    folder = Path(tempfile.mkdtemp(prefix="store-modes-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def fill(store: Store, tmp_path: Path) -> list[Path]:
    """Store a model with a bundle; every path the store wrote."""
    model = store.write_artifact(package(write_gguf(tmp_path / "m.gguf")), ["private"])
    store.bundle(model)
    return sorted(store.root.rglob("*"))


def test_a_new_store_is_private_to_its_user(tmp_path: Path, open_folder: Path) -> None:
    store = Store(open_folder / "made" / "models")
    umask = os.umask(0)  # the modes are the store's, not the umask's
    try:
        written = fill(store, tmp_path)
    finally:
        os.umask(umask)
    assert mode_of(open_folder / "made") == 0o700  # a missing parent is made private too
    assert mode_of(store.root) == 0o700
    wrong = {str(p): oct(mode_of(p)) for p in written if mode_of(p) != (0o700 if p.is_dir() else 0o600)}
    assert wrong == {}
    if os.geteuid() == 0:
        assert not readable_by_nobody(store.root)


def test_an_existing_models_path_keeps_its_mode_and_its_files(tmp_path: Path, open_folder: Path) -> None:
    root = open_folder / "models"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    notes = root / "notes.txt"
    notes.write_text("mine")
    notes.chmod(0o644)
    store = Store(root)
    written = fill(store, tmp_path)
    assert mode_of(root) == 0o755 and mode_of(notes) == 0o644 and notes.read_text() == "mine"
    assert {mode_of(p) for p in written if p != notes and p.is_dir()} == {0o700}
    assert {mode_of(p) for p in written if p != notes and not p.is_dir()} == {0o600}
    if os.geteuid() != 0:
        pytest.skip("reading as another user needs root")
    assert readable_by_nobody(root) and readable_by_nobody(notes)  # the check itself works
    assert not readable_by_nobody(store.layout.index_file)
    assert not readable_by_nobody(store.layout.blobs_dir.parent)


def test_temp_files_an_interrupted_write_left_are_reported_once_stale_and_repaired(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    fill(store, tmp_path)
    stale = [
        store.layout.blobs_dir / f".{'a' * 64}.x1y2z3.tmp",
        store.layout.manifests_dir / f".{'b' * 64}.x1y2z3.tmp",
        store.root / ".models.json.x1y2z3.tmp",
    ]
    fresh = store.root / ".layout.json.q9w8e7.tmp"  # a writer may still be at work on it
    old = time.time() - STALE_TEMP_SECONDS - 60
    for path in [*stale, fresh]:
        path.write_bytes(b"half")
    for path in stale:
        os.utime(path, (old, old))
    problems = store.check()
    assert sorted(problems) == sorted(f"{p.name} was left by an interrupted write" for p in stale)
    store.check(repair=True)
    assert store.check() == []
    assert not any(p.exists() for p in stale) and fresh.exists()


@pytest.mark.parametrize("damaged", ["manifest", "config"])
def test_a_manifest_or_config_over_its_limit_is_not_read(tmp_path: Path, damaged: str) -> None:
    store = Store(tmp_path / "models")
    model = store.write_artifact(package(write_gguf(tmp_path / "m.gguf")), ["big"])
    path = store.layout.manifest(model.id) if damaged == "manifest" else store.blobs.path(model.config_digest)
    limit = MAX_MANIFEST_BYTES if damaged == "manifest" else MAX_CONFIG_BYTES
    with open(path, "ab") as f:
        f.write(b" " * limit)  # still JSON: only the size tells
    with pytest.raises(StoreCorruptError, match="over the 4 MiB limit"):
        store.get("big")
    assert store.list() == []
    assert any("corrupt" in problem for problem in store.check())
