"""Server-side apply and managedFields, so ownership decides what a re-apply keeps, takes or removes.

Each write records who set which fields (`metadata.managedFields`, FieldsV1 paths: `f:` fields, `k:` items
of lists that are maps on their keys, `v:` members of sets). An apply (`application/apply-patch+yaml` with
`fieldManager`) merges the applied configuration into the live object (maps field by field, map lists item by
item on their keys, atomic lists whole: the CRD default), answers 409 naming each field another manager owns
with a different value unless `force` takes it, and removes the fields the manager applied before and no
longer applies when nobody else owns them. Updates (create, put, the other patches) take the fields they
change from whoever owned them, as the API server's field manager does.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from tests.apiserver.errors import ApiError
from tests.apiserver.schema import child, list_shape

Path = tuple[str, ...]
META_TRACKED = ("labels", "annotations", "finalizers", "ownerReferences")


def tracked(obj: dict[str, Any], subresource: str) -> dict[str, Any]:
    """The part of an object whose fields are owned: status for /status, else all but status and identity."""
    if subresource == "status":
        return {"status": obj["status"]} if "status" in obj else {}
    found = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k in META_TRACKED}
    return {**found, "metadata": meta} if meta else found


def item_key(item: dict[str, Any], keys: list[str]) -> str:
    return "k:" + json.dumps({k: item.get(k) for k in keys}, separators=(",", ":"), sort_keys=True)


def fieldset(value: Any, node: dict[str, Any], crd: bool, prefix: Path = ()) -> set[Path]:
    """The FieldsV1 paths an object sets, down to leaves, atomic lists and empty maps."""
    paths: set[Path] = set()
    for key, item in value.items():
        path = (*prefix, f"f:{key}")
        below = child(node, key)
        if isinstance(item, dict) and item:
            paths |= fieldset(item, below, crd, path)
        elif isinstance(item, list):
            shape, keys = list_shape(below, crd)
            if shape == "map" and all(isinstance(i, dict) for i in item):
                for entry in item:
                    marker = (*path, item_key(entry, keys))
                    paths |= {marker} | fieldset(entry, child(below, "[]"), crd, marker)
            elif shape == "set":
                paths |= {(*path, "v:" + json.dumps(i, separators=(",", ":"))) for i in item}
            else:
                paths.add(path)
        else:
            paths.add(path)
    return paths


def value_at(obj: Any, path: Path) -> Any:
    """The value at a FieldsV1 path (None when absent)."""
    for element in path:
        kind, _, name = element.partition(":")
        if kind == "f" and isinstance(obj, dict):
            obj = obj.get(name)
        elif kind == "k" and isinstance(obj, list):
            wanted = json.loads(name)
            obj = next((i for i in obj if all(i.get(k) == v for k, v in wanted.items())), None)
        elif kind == "v" and isinstance(obj, list):
            obj = json.loads(name) if json.loads(name) in obj else None
        else:
            return None
    return obj


def remove_at(obj: Any, path: Path) -> None:
    """Remove what a FieldsV1 path points to, if it is there."""
    parent, (kind, _, name) = value_at(obj, path[:-1]), path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(name, None)
    elif kind in ("k", "v") and isinstance(parent, list):
        found = value_at(obj, path)
        if found is not None:
            parent.remove(found)


def said(path: Path) -> str:
    """`.spec.template.spec.containers[name="serving"].image`, as an apply conflict names a field."""
    text = ""
    for element in path:
        kind, _, name = element.partition(":")
        if kind == "f":
            text += f".{name}"
        elif kind == "k":
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(name).items()) + "]"
        else:
            text += f"[={name}]"
    return text


def encode(paths: set[Path]) -> dict[str, Any]:
    """A set of paths as a FieldsV1 tree (`.` marks an owned item that also has owned children)."""
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    for path in paths:
        node = tree
        for element in path:
            node = node[element]
        if node:
            node["."] = {}
    return tree


def decode(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for element, below in tree.items():
        if element == ".":
            paths.add(prefix)
        elif below:
            paths |= decode(below, (*prefix, element))
        else:
            paths.add((*prefix, element))
    return paths


def entries(obj: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The live object's managedFields, each with its decoded `paths`."""
    found = ((obj or {}).get("metadata") or {}).get("managedFields") or []
    return [{**copy.deepcopy(e), "paths": decode(e.get("fieldsV1") or {})} for e in found]


def store(obj: dict[str, Any], found: list[dict[str, Any]]) -> None:
    """Write the entries back (empty ones dropped) as managedFields."""
    kept = [
        {**{k: v for k, v in e.items() if k != "paths"}, "fieldsV1": encode(e["paths"])} for e in found if e["paths"]
    ]
    obj.setdefault("metadata", {})["managedFields"] = kept


def entry(manager: str, operation: str, api_version: str, now: str, subresource: str) -> dict[str, Any]:
    found = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
    }
    return {**found, **({"subresource": subresource} if subresource else {}), "paths": set()}


def same(e: dict[str, Any], manager: str, operation: str, subresource: str) -> bool:
    return bool(e["manager"] == manager and e["operation"] == operation and e.get("subresource", "") == subresource)


def track_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    schema: dict[str, Any],
    crd: bool,
    now: str,
    api_version: str,
    subresource: str = "",
) -> None:
    """Record an update by `manager`: it takes every field it added or changed; removed fields leave everyone."""
    before = fieldset(tracked(old or {}, subresource), schema, crd)
    after = fieldset(tracked(new, subresource), schema, crd)
    changed = after - before
    changed |= {
        p for p in after & before if not isinstance(value_at(new, p), dict) and value_at(new, p) != value_at(old, p)
    }
    removed = before - after
    found = entries(old)
    mine = next((e for e in found if same(e, manager, "Update", subresource)), None)
    if mine is None and changed:
        mine = entry(manager, "Update", api_version, now, subresource)
        found.append(mine)
    for e in found:
        e["paths"] = (e["paths"] | changed) - removed if e is mine else e["paths"] - changed - removed
    if mine is not None:
        mine["time"] = now
    store(new, found)


def merge(live: Any, applied: Any, node: dict[str, Any], crd: bool) -> Any:
    """The applied configuration merged into the live value: maps by field, map lists by key, others whole."""
    if isinstance(applied, dict) and isinstance(live, dict):
        result = copy.deepcopy(live)
        for key, value in applied.items():
            result[key] = merge(live.get(key), value, child(node, key), crd)
        return result
    if isinstance(applied, list) and isinstance(live, list):
        shape, keys = list_shape(node, crd)
        if shape == "set":
            return copy.deepcopy(live) + [copy.deepcopy(i) for i in applied if i not in live]
        if shape == "map":
            items = copy.deepcopy(live)
            for item in applied:
                at = next((n for n, old in enumerate(items) if all(old.get(k) == item.get(k) for k in keys)), None)
                if at is None:
                    items.append(copy.deepcopy(item))
                else:
                    items[at] = merge(items[at], item, child(node, "[]"), crd)
            return items
    return copy.deepcopy(applied)


def server_side_apply(
    live: dict[str, Any],
    applied: dict[str, Any],
    manager: str,
    force: bool,
    schema: dict[str, Any],
    crd: bool,
    now: str,
    defaulted: Callable[[dict[str, Any]], dict[str, Any]] = copy.deepcopy,
) -> dict[str, Any]:
    """Return the object after `manager` applies `applied` over `live` (409 on conflicts unless `force`)."""
    mine = fieldset(tracked(applied, ""), schema, crd)
    compared = defaulted(applied)  # values as they would be stored: a default is no conflict
    found = entries(live)
    previous = next((e for e in found if same(e, manager, "Apply", "")), None)
    others = [e for e in found if e is not previous]
    conflicts = [
        (e["manager"], e["apiVersion"], p)
        for e in others
        if e.get("subresource", "") != "status"
        for p in sorted(mine & e["paths"])
        if not isinstance(value_at(compared, p), dict) and value_at(compared, p) != value_at(live, p)
    ]
    if conflicts and not force:
        raise apply_conflict(conflicts)
    result = copy.deepcopy(live)
    if previous is not None:
        for path in sorted(previous["paths"] - mine, key=len, reverse=True):
            if not any(p[: len(path)] == path for e in others for p in e["paths"]):
                remove_at(result, path)
    result = merge(result, {k: v for k, v in applied.items() if k != "metadata"}, schema, crd)
    meta = applied.get("metadata") or {}
    for key in META_TRACKED:
        if key in meta:
            result.setdefault("metadata", {})[key] = merge(result["metadata"].get(key), meta[key], {}, crd)
    taken = {p for _, _, p in conflicts}
    for e in others:
        e["paths"] -= taken
    own = previous or entry(manager, "Apply", applied.get("apiVersion", ""), now, "")
    own.update(paths=mine, time=now)
    store(result, [*others, own])
    return result


def apply_conflict(conflicts: list[tuple[str, str, Path]]) -> ApiError:
    """409 Conflict worded as the API server's: `Apply failed with N conflicts: conflict with "m" using v: .f`."""
    causes = [
        {"reason": "FieldManagerConflict", "message": f'conflict with "{m}" using {v}', "field": said(p)}
        for m, v, p in conflicts
    ]
    count = f"{len(causes)} conflict{'s' if len(causes) > 1 else ''}"
    lines = [f"{c['message']}: {c['field']}" for c in causes]
    message = (
        f"Apply failed with {count}: {lines[0]}"
        if len(lines) == 1
        else f"Apply failed with {count}:\n" + "\n".join(f"- {line}" for line in lines)
    )
    return ApiError(409, "Conflict", message, {"causes": causes})
