"""The three classic patch types, each exactly as specified, so a client's patch lands as it would in a cluster.

JSON merge patch (RFC 7386) works on every kind; JSON patch (RFC 6902) too; strategic merge patch only on
built-in kinds, where the schema's `x-kubernetes-patch-merge-key`/`-strategy` merge lists such as containers,
env and ports by key instead of replacing them, with the `$patch`, `$retainKeys`, `$setElementOrder` and
`$deleteFromPrimitiveList` directives. A custom resource has no strategy, so the server answers 415 there.
Server-side apply is `apply.py`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.apiserver.errors import ApiError, bad_request
from tests.apiserver.schema import child, resolve


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: a map patch merges into a map (null deletes), anything else replaces the target."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def pointer(path: str) -> list[str]:
    """An RFC 6901 JSON pointer's tokens (`~1` is `/`, `~0` is `~`)."""
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def locate(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(doc, list):
            if not token.isdigit() or int(token) >= len(doc):
                raise bad_request(f"index {token} out of range")
            doc = doc[int(token)]
        elif isinstance(doc, dict) and token in doc:
            doc = doc[token]
        else:
            raise bad_request(f"doc is missing path: /{'/'.join(tokens)}")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902: add, remove, replace, move, copy and test, in order, on a copy; a failed op fails all."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        kind, tokens = op.get("op"), pointer(op.get("path", ""))
        if kind == "test":
            if locate(doc, tokens) != op.get("value"):
                raise ApiError(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request: "
                    f"testing value {op.get('path')} failed",
                )
            continue
        if kind in ("move", "copy"):
            value = copy.deepcopy(locate(doc, pointer(op["from"])))
            if kind == "move":
                doc = remove(doc, pointer(op["from"]))
            doc = add(doc, tokens, value)
        elif kind == "add":
            doc = add(doc, tokens, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = remove(doc, tokens)
        elif kind == "replace":
            locate(doc, tokens)
            doc = add(remove(doc, tokens), tokens, copy.deepcopy(op.get("value")))
        else:
            raise bad_request(f"Unexpected kind: {kind}")
    return doc


def add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent, last = locate(doc, tokens[:-1]), tokens[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last) if last.isdigit() else -1
        if not 0 <= index <= len(parent):
            raise bad_request(f"add operation: index {last} out of range")
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise bad_request(f"add operation does not apply: doc is missing path: /{'/'.join(tokens)}")
    return doc


def remove(doc: Any, tokens: list[str]) -> Any:
    locate(doc, tokens)
    if not tokens:
        return None
    parent, last = locate(doc, tokens[:-1]), tokens[-1]
    if isinstance(parent, list):
        del parent[int(last)]
    else:
        del parent[last]
    return doc


def strategic_merge(target: Any, patch: Any, schema: dict[str, Any]) -> Any:
    """Strategic merge patch of `target` by `patch` under `schema` (the kind's OpenAPI node)."""
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return strip(copy.deepcopy(patch))
    directive = patch.get("$patch")
    if directive == "replace":
        return strip({k: v for k, v in patch.items() if k != "$patch"})
    if directive == "delete":
        return None
    result = copy.deepcopy(target)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.partition("/")[2]
            result[field] = [item for item in result.get(field) or [] if item not in value]
            continue
        node = child(schema, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = merge_list(result.get(key), value, node)
        else:
            merged = strategic_merge(result.get(key), value, node)
            if merged is None and isinstance(value, dict) and value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = merged
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    return result


def merge_list(live: Any, patch: list[Any], node: dict[str, Any]) -> list[Any]:
    """A list under its patch strategy: merged by its merge key (or as a set of primitives), else replaced."""
    node = resolve(node)
    strategy = node.get("x-kubernetes-patch-strategy", "")
    key = node.get("x-kubernetes-patch-merge-key")
    if "merge" not in strategy.split(",") or not isinstance(live, list):
        return [strip(copy.deepcopy(item)) for item in patch if not is_directive(item)]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [strip(copy.deepcopy(item)) for item in patch if not is_directive(item)]
    result = copy.deepcopy(live)
    items = child(node, "[]")
    for item in patch:
        if not isinstance(item, dict) or key is None:
            if item not in result:
                result.append(copy.deepcopy(item))
            continue
        if key not in item:
            raise bad_request(f"map: {json.dumps(item)} does not contain declared merge key: {key}")
        found = next((i for i, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if found is not None:
                del result[found]
        elif found is None:
            result.append(strip(copy.deepcopy(item)))
        else:
            result[found] = strategic_merge(result[found], item, items)
    return result


def is_directive(item: Any) -> bool:
    return isinstance(item, dict) and item.get("$patch") in ("replace", "delete") and len(item) <= 2


def strip(value: Any) -> Any:
    """Drop every `$` directive and null (a null in a new value means absent) from a value being stored."""
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [strip(item) for item in value]
    return value
