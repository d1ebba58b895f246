"""Names in the schema that people and generated clients read.

FastAPI names an operation after its function and path
(`create_item_api_v1_items_post`, summary "Create Item") and a form body
after that id (`Body_issue_token_api_v1_auth_token_post`); a generated client
turns those into its function and class names. Here every operation gets a
summary from its endpoint's docstring, an id made of its tag and its
endpoint's name (`items-create`), and every request body a schema of its own
name (`AuthIssueTokenForm`), all derived from the routes, so a new router
needs nothing more than a docstring.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from app.core.errors import FORM_MEDIA_TYPES

_SCHEMAS = "#/components/schemas/"
# A sentence ends at ., ! or ? before a capital, a backtick or a quote; so
# "e.g. an item" does not end one.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(])")


@dataclass(frozen=True, slots=True)
class _Names:
    operation_id: str | None
    docstring: str


def name_operations(schema: dict[str, Any], routes: Iterable[BaseRoute]) -> None:
    names = dict(_names_by_operation(routes))
    taken: set[str] = set()
    for path, path_item in schema.get("paths", {}).items():
        for method, operation in path_item.items():
            found = names.get((path, method))
            if found is None:
                continue
            _summarise(operation, found.docstring)
            if found.operation_id is not None and found.operation_id not in taken:
                # A clash keeps FastAPI's id, which is unique.
                operation["operationId"] = found.operation_id
            taken.add(operation["operationId"])
            _name_request_body(schema, operation)
    components = schema.get("components", {})
    if "schemas" in components:
        components["schemas"] = dict(sorted(components["schemas"].items()))


def _names_by_operation(routes: Iterable[BaseRoute]) -> Iterator[tuple[tuple[str, str], _Names]]:
    # Route contexts carry what including routers added: the prefix and the tags.
    for context in iter_route_contexts(list(routes)):
        route = context.original_route
        if not isinstance(route, APIRoute) or context.path_format is None:
            continue
        operation_id = None
        if route.operation_id is None:
            operation_id = _operation_id(list(getattr(context, "tags", route.tags)), route.name)
        docstring = "" if route.summary else _docstring(route)
        for method in context.methods or ():
            yield (context.path_format, method.lower()), _Names(operation_id, docstring)


def _operation_id(tags: list[str | Enum], name: str) -> str:
    """`items` and `create_item` give `items-create`: the tag, then what the endpoint does."""
    words = _words(name)
    if not tags:
        return "-".join(words)
    tag = _words(str(tags[0].value if isinstance(tags[0], Enum) else tags[0]))
    # `list_audit_events` under `audit` is `audit-list-events`, not `audit-list-audit-events`.
    naming_the_tag = {*tag, *(word.removesuffix("s") for word in tag)}
    action = [word for word in words if word not in naming_the_tag] or words
    return "-".join([*tag, *action])


def _words(text: str) -> list[str]:
    return [word for word in re.split(r"[^a-z0-9]+", text.lower()) if word]


def _docstring(route: APIRoute) -> str:
    # FastAPI shows a docstring only up to a form feed; so does the summary.
    return inspect.cleandoc(route.endpoint.__doc__ or "").split("\f")[0].strip()


def _summarise(operation: dict[str, Any], docstring: str) -> None:
    """The docstring's first sentence is the summary; the rest stays the description."""
    if not docstring:
        return
    first, _, rest = docstring.partition("\n\n")
    sentences = _SENTENCE_END.split(" ".join(first.split()), maxsplit=1)
    operation["summary"] = sentences[0].removesuffix(".")
    if operation.get("description") != docstring:
        return  # written by the route itself, not taken from the docstring
    remainder = "\n\n".join(part for part in (" ".join(sentences[1:]), rest.strip()) if part)
    if remainder:
        operation["description"] = remainder
    else:
        operation.pop("description", None)


def _name_request_body(schema: dict[str, Any], operation: dict[str, Any]) -> None:
    """A body schema FastAPI made up, or left inline, is named after the operation."""
    components: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
    for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
        body = content.get("schema", {})
        ref = body.get("$ref", "")
        made_up = ref.startswith(_SCHEMAS + "Body_")
        if ref and not made_up:
            continue
        kind = "Form" if media_type in FORM_MEDIA_TYPES else "Body"
        name = "".join(word.capitalize() for word in _words(operation["operationId"])) + kind
        if name in components:
            continue  # never overwrite another schema
        if made_up:
            components[name] = components.pop(ref.removeprefix(_SCHEMAS))
            _replace_refs(schema, ref, _SCHEMAS + name)
        else:
            components[name] = body
            content["schema"] = {"$ref": _SCHEMAS + name}
        components[name]["title"] = name


def _replace_refs(node: Any, old: str, new: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and value == old:
                node[key] = new
            else:
                _replace_refs(value, old, new)
    elif isinstance(node, list):
        for value in node:
            _replace_refs(value, old, new)
