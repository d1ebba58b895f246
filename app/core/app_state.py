"""Values kept on an app's `state`, read by key rather than as attributes.

Starlette's `State` answers an attribute from `__getattr__`, which Python
calls only once its ordinary lookup has failed and built an AttributeError
with its message: a microsecond or so on each read. The edge reads the
app's state on every request.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import State


def state_value(state: object, key: str) -> Any:
    """`state.<key>`, or None when it holds no such value."""
    if isinstance(state, State):
        try:
            return state[key]
        except KeyError:
            return None
    return getattr(state, key, None)
