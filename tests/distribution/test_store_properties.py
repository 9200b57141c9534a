"""Property tests of the store's tag and delete semantics against a plain model of them (hypothesis)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from docker_model.distribution import ConflictError, ModelNotFoundError, Store, package
from docker_model.distribution.artifact import Artifact
from tests.fixtures.gguf_files import write_gguf


def _artifacts() -> list[Artifact]:
    """Three models; the first two share their GGUF blob (one adds a license)."""
    directory = Path(tempfile.mkdtemp(prefix="store-props-"))
    shared = write_gguf(directory / "shared.gguf", seed=1)
    license_file = directory / "LICENSE"
    license_file.write_text("MIT")
    return [
        package(shared),
        package(shared, licenses=[license_file]),
        package(write_gguf(directory / "other.gguf", seed=2)),
    ]


ARTIFACTS = _artifacts()
TAGS = [f"docker.io/ai/m{i}:latest" for i in range(4)] + ["localhost:5000/team/m:v1"]
artifact_index = st.integers(0, len(ARTIFACTS) - 1)
tag = st.sampled_from(TAGS)


class StoreSemantics(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = Store(Path(tempfile.mkdtemp(prefix="store-")))
        self.present: set[str] = set()  # model IDs in the store
        self.owner: dict[str, str] = {}  # tag -> model ID

    def tags_of(self, model_id: str) -> list[str]:
        return [t for t, owner in self.owner.items() if owner == model_id]

    @rule(i=artifact_index, name=tag)
    def write(self, i: int, name: str) -> None:
        art = ARTIFACTS[i]
        self.store.write_artifact(art, [name])
        self.present.add(art.id)
        self.owner[name] = art.id

    @rule(name=tag, new=tag)
    def retag(self, name: str, new: str) -> None:
        if name not in self.owner:
            try:
                self.store.tag(name, new)
            except ModelNotFoundError:
                return
            raise AssertionError("tagging an unknown name must fail")
        self.store.tag(name, new)
        self.owner[new] = self.owner[name]

    @rule(name=tag)
    def remove_by_tag(self, name: str) -> None:
        if name not in self.owner:
            try:
                self.store.remove(name)
            except ModelNotFoundError:
                return
            raise AssertionError("removing an unknown tag must fail")
        model_id = self.owner.pop(name)
        result = self.store.remove(name)
        if self.tags_of(model_id):
            assert result == [("Untagged", name)]
        else:
            assert result == [("Untagged", name), ("Deleted", model_id)]
            self.present.discard(model_id)

    @rule(i=artifact_index, force=st.booleans())
    def remove_by_id(self, i: int, force: bool) -> None:
        model_id = ARTIFACTS[i].id
        if model_id not in self.present:
            return
        tags = self.tags_of(model_id)
        if len(tags) > 1 and not force:
            try:
                self.store.remove(model_id[7:19])
            except ConflictError:
                return
            raise AssertionError("deleting a multi-tag model by ID needs force")
        result = self.store.remove(model_id[7:19], force=force)
        assert result[-1] == ("Deleted", model_id)
        assert sorted(t for kind, t in result if kind == "Untagged") == sorted(tags)
        for t in tags:
            del self.owner[t]
        self.present.discard(model_id)

    @invariant()
    def store_matches_the_model(self) -> None:
        listed = {m.id: sorted(m.tags) for m in self.store.list()}
        assert listed == {mid: sorted(self.tags_of(mid)) for mid in self.present}
        needed = {
            d for a in ARTIFACTS if a.id in self.present for d in [*(la.digest for la in a.layers), a.config_digest]
        }
        assert set(self.store.blobs.digests()) == needed
        assert self.store.check() == []


TestStoreSemantics = StoreSemantics.TestCase
TestStoreSemantics.settings = settings(
    max_examples=40, stateful_step_count=12, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
