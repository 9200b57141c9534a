"""Runtime bundles: a model's blobs under the file names an engine expects, as hard links (or copies).

A bundle counts as whole when its files are there at their sizes, so the files whose content that does
not prove (copies, `config.json`) reach the disk before the bundle is renamed into place.

`bundles/sha256/<id>/model/model.gguf` (shards `model-0000N-of-0000M.gguf`), `model/model.mmproj`,
`model/template.jinja`, and `config.json` (the model's `config` object) at the bundle root.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from docker_model.distribution import artifact
from docker_model.distribution.errors import StoreCorruptError, UnsupportedFormatError
from docker_model.distribution.model import Model
from docker_model.distribution.store.blobs import BlobStore
from docker_model.distribution.store.layout import Layout
from docker_model.files import PRIVATE_DIR, PRIVATE_FILE, atomic_write, fsync_path, make_dirs

MODEL_DIR = "model"


@dataclass(frozen=True)
class Bundle:
    root: Path
    gguf_path: Path
    mmproj_path: Path | None
    template_path: Path | None
    config_path: Path


def _plan(model: Model) -> list[tuple[str, str, int]]:
    """(path inside the bundle, blob digest, size) for every file the bundle holds."""
    ggufs = [layer for layer in model.layers if layer.media_type == artifact.GGUF]
    if not ggufs:
        raise UnsupportedFormatError(f"model {model.short_id} has no GGUF layer")
    if len(ggufs) == 1:
        plan = [(f"{MODEL_DIR}/model.gguf", ggufs[0].digest, ggufs[0].size)]
    else:
        count = len(ggufs)
        plan = [
            (f"{MODEL_DIR}/model-{i:05d}-of-{count:05d}.gguf", layer.digest, layer.size)
            for i, layer in enumerate(ggufs, start=1)
        ]
    for media_type, name in ((artifact.MMPROJ, "model.mmproj"), (artifact.CHAT_TEMPLATE, "template.jinja")):
        layer = next((la for la in model.layers if la.media_type == media_type), None)
        if layer is not None:
            plan.append((f"{MODEL_DIR}/{name}", layer.digest, layer.size))
    return plan


def _describe(root: Path, plan: list[tuple[str, str, int]]) -> Bundle:
    names = {Path(rel).name: root / rel for rel, _, _ in plan}
    return Bundle(
        root=root,
        gguf_path=root / plan[0][0],
        mmproj_path=names.get("model.mmproj"),
        template_path=names.get("template.jinja"),
        config_path=root / "config.json",
    )


def _is_complete(root: Path, plan: list[tuple[str, str, int]]) -> bool:
    try:
        return (root / "config.json").is_file() and all((root / rel).stat().st_size == size for rel, _, size in plan)
    except FileNotFoundError:
        return False


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: a copy works everywhere
        shutil.copyfile(source, target)
        os.chmod(target, PRIVATE_FILE)  # unseen meanwhile: the staging folder is private
        fsync_path(target)


def make_bundle(layout: Layout, blobs: BlobStore, model: Model) -> Bundle:
    """Return the model's bundle, building it (again) when missing or damaged. Call under the store lock."""
    plan = _plan(model)
    root = layout.bundle(model.id)
    if _is_complete(root, plan):
        return _describe(root, plan)
    make_dirs(root.parent)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.", suffix=".tmp"))
    try:
        (staging / MODEL_DIR).mkdir(PRIVATE_DIR)
        for rel, digest, _ in plan:
            if not blobs.has(digest):
                raise StoreCorruptError(blobs.path(digest), f"a blob of model {model.short_id} is missing")
            _link_or_copy(blobs.path(digest), staging / rel)
        atomic_write(staging / "config.json", json.dumps(model.config).encode() + b"\n", mode=PRIVATE_FILE)
        shutil.rmtree(root, ignore_errors=True)
        os.rename(staging, root)  # a rename a crash loses leaves no bundle: the next load makes it again
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _describe(root, plan)


def remove_bundle(layout: Layout, model_id: str) -> None:
    shutil.rmtree(layout.bundle(model_id), ignore_errors=True)


def bundle_is_intact(layout: Layout, model: Model) -> bool:
    return _is_complete(layout.bundle(model.id), _plan(model))
