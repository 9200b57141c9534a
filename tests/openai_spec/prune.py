"""Prune OpenAI's published OpenAPI spec down to the operations docker-model serves, for tests only.

Usage::

    python tests/openai_spec/prune.py FULL_SPEC.yaml --commit HASH --source URL_OR_PATH

It reads the full spec (YAML, or JSON, which is YAML too), keeps the operations in ``KEPT_OPERATIONS``
and every ``components`` entry reachable from them through ``$ref`` (transitively), plus the entries
in ``EXTRA_COMPONENTS`` and what they reach, and writes ``openai-openapi.pruned.json`` next to this
script. The output depends only on the input and the arguments: components keep the spec's own order.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "openai-openapi.pruned.json"
PRUNED_BY = "tests/openai_spec/prune.py"

# path -> the HTTP methods kept on it; every other path and method is dropped.
KEPT_OPERATIONS: dict[str, tuple[str, ...]] = {
    "/chat/completions": ("post",),
    "/completions": ("post",),
    "/embeddings": ("post",),
    "/models": ("get",),
    "/models/{model}": ("get",),
}

# Kept even when no kept operation refers to them (section, name); a missing one is skipped.
EXTRA_COMPONENTS: tuple[tuple[str, str], ...] = (
    ("schemas", "CreateChatCompletionStreamResponse"),  # the chunk of a streamed chat completion
    ("schemas", "ErrorResponse"),
    ("schemas", "Error"),
)

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
DROPPED_OPERATION_KEYS = frozenset({"x-oaiMeta"})  # documentation examples: large, and of no use to tests

Json = Any
ComponentKey = tuple[str, str]  # (section, name), e.g. ("schemas", "Error")


class _StringTimestampLoader(yaml.SafeLoader):
    """A SafeLoader that leaves timestamps (``2024-10-01``) as strings, as the spec's JSON twin has them."""


_StringTimestampLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_spec(path: Path) -> dict[str, Json]:
    with path.open(encoding="utf-8") as stream:
        spec = yaml.load(stream, Loader=_StringTimestampLoader)  # a SafeLoader subclass: safe
    if not isinstance(spec, dict) or "paths" not in spec:
        raise SystemExit(f"{path}: not an OpenAPI document")
    return spec


def _unescape(token: str) -> str:
    """Decode one JSON-pointer token (RFC 6901)."""
    return token.replace("~1", "/").replace("~0", "~")


def component_of(ref: str) -> ComponentKey:
    """The top-level components entry a local reference points into (or below)."""
    parts = ref.split("/")
    if len(parts) < 4 or parts[0] != "#" or parts[1] != "components":
        raise ValueError(f"unsupported reference {ref!r}: only local #/components/... references are handled")
    return _unescape(parts[2]), _unescape(parts[3])


def references(node: Json) -> Iterator[str]:
    """Every reference in a JSON tree: ``$ref`` values and discriminator mapping targets."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        discriminator = node.get("discriminator")
        if isinstance(discriminator, dict) and isinstance(discriminator.get("mapping"), dict):
            yield from (target for target in discriminator["mapping"].values() if target.startswith("#"))
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def security_schemes(node: Json) -> Iterator[str]:
    """The security scheme names a ``security`` requirement list names."""
    for requirement in node or ():
        yield from requirement


def prune_paths(paths: dict[str, Json]) -> dict[str, Json]:
    pruned: dict[str, Json] = {}
    for path, methods in KEPT_OPERATIONS.items():
        if path not in paths:
            raise SystemExit(f"the spec has no path {path}")
        item = paths[path]
        kept: dict[str, Json] = {}
        for key, value in item.items():
            if key in HTTP_METHODS:
                if key in methods:
                    kept[key] = {k: v for k, v in value.items() if k not in DROPPED_OPERATION_KEYS}
            else:  # path-level parameters, summary, servers...
                kept[key] = value
        missing = [method for method in methods if method not in kept]
        if missing:
            raise SystemExit(f"the spec has no {', '.join(missing)} operation on {path}")
        pruned[path] = kept
    return pruned


def reachable_components(
    components: dict[str, Json], roots: list[Json], extra: list[ComponentKey]
) -> set[ComponentKey]:
    """The components entries reachable through references from ``roots``, and from ``extra``."""
    seen: set[ComponentKey] = set()
    pending: list[ComponentKey] = list(extra)
    for root in roots:
        pending.extend(component_of(ref) for ref in references(root))
    while pending:
        key = pending.pop()
        if key in seen:
            continue
        section, name = key
        if name not in components.get(section, {}):
            raise SystemExit(f"dangling reference to #/components/{section}/{name}")
        seen.add(key)
        pending.extend(component_of(ref) for ref in references(components[section][name]))
    return seen


def prune(spec: dict[str, Json], *, source: str, commit: str) -> dict[str, Json]:
    components: dict[str, Json] = spec.get("components", {})
    paths = prune_paths(spec["paths"])
    operations = [op for item in paths.values() for method, op in item.items() if method in HTTP_METHODS]

    extra = [(section, name) for section, name in EXTRA_COMPONENTS if name in components.get(section, {})]
    kept = reachable_components(components, [paths], extra)

    # Security schemes are named, not referenced: keep those the document or a kept operation requires.
    schemes = set(security_schemes(spec.get("security")))
    for op in operations:
        schemes.update(security_schemes(op.get("security")))
    kept.update(("securitySchemes", name) for name in schemes if name in components.get("securitySchemes", {}))

    pruned_components = {
        section: {name: value for name, value in entries.items() if (section, name) in kept}
        for section, entries in components.items()
    }
    pruned_components = {section: entries for section, entries in pruned_components.items() if entries}

    used_tags = {tag for op in operations for tag in op.get("tags", ())}
    info = dict(spec["info"])
    info["x-vendored"] = {"source": source, "commit": commit, "license": "MIT", "pruned_by": PRUNED_BY}

    pruned: dict[str, Json] = {"openapi": spec["openapi"], "info": info}
    for key in ("jsonSchemaDialect", "servers", "security"):
        if key in spec:
            pruned[key] = spec[key]
    if "tags" in spec:
        pruned["tags"] = [tag for tag in spec["tags"] if tag.get("name") in used_tags]
    pruned["paths"] = paths
    pruned["components"] = pruned_components
    return pruned


def unresolved_references(document: dict[str, Json]) -> list[str]:
    """The references in ``document`` that do not resolve inside it."""
    missing = []
    for ref in sorted(set(references(document))):
        node: Json = document
        for token in ref.split("/")[1:]:
            token = _unescape(token)
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                missing.append(ref)
                break
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="the full spec, openapi.yaml of github.com/openai/openai-openapi")
    parser.add_argument("--commit", required=True, help="the commit the spec was taken from")
    parser.add_argument("--source", required=True, help="where the spec was taken from (URL or repository path)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"default: {DEFAULT_OUTPUT.name}")
    args = parser.parse_args(argv)

    pruned = prune(load_spec(args.spec), source=args.source, commit=args.commit)
    missing = unresolved_references(pruned)
    if missing:
        print("unresolved references:", *missing, sep="\n  ", file=sys.stderr)
        return 1
    text = json.dumps(pruned, indent=1, ensure_ascii=False) + "\n"
    args.output.write_text(text, encoding="utf-8")
    counts = ", ".join(f"{len(entries)} {section}" for section, entries in pruned["components"].items())
    print(f"wrote {args.output} ({len(text.encode())} bytes): {len(pruned['paths'])} paths, {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
