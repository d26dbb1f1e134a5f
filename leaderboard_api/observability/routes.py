"""Route templates: map a raw request path to the route it belongs to, with bounded memory."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any, Final

from starlette.routing import BaseRoute, Mount

__all__ = ["UNMATCHED", "RouteTemplates", "app_path"]

UNMATCHED: Final = "<unmatched>"
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?\}")
_CONVERTORS: Final = {
    "str": "[^/]+",
    "path": ".+",
    "int": "[0-9]+",
    "float": r"[0-9]+(?:\.[0-9]+)?",
    "uuid": "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
}


def app_path(scope: MutableMapping[str, Any]) -> str:
    """The request path as the app routes it: ``scope["path"]`` without ``root_path``."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :]
    return path


class RouteTemplates:
    """Map raw request paths to route templates, e.g. ``/v1/benchmarks/{name}/scores``.

    Templates use ``{param}`` (one segment) and ``{param:path}`` (one or more segments,
    so ``/v1/models/BAAI/bge-m3/scores`` matches ``/v1/models/{name:path}/scores``);
    ``int``, ``float``, ``uuid`` and ``str`` convertors are understood too.  When several
    templates match, the most specific wins: more literal characters, then fewer ``path``
    parameters, then fewer parameters.  Results are memoized per raw path in a dict of at
    most ``cache_size`` entries (the oldest entry goes first when it is full).
    """

    __slots__ = ("_cache", "_cache_size", "_names", "_regex", "templates")

    def __init__(self, templates: Iterable[str], *, cache_size: int = 4096) -> None:
        ordered = sorted(set(templates), key=_specificity)
        self.templates: tuple[str, ...] = tuple(ordered)
        parts = [f"(?P<t{index}>{_compile(text)})" for index, text in enumerate(ordered)]
        self._regex = re.compile("|".join(parts)) if parts else None
        self._names = {f"t{index}": text for index, text in enumerate(ordered)}
        self._cache: dict[str, str] = {}
        self._cache_size = max(cache_size, 1)

    @classmethod
    def from_routes(cls, routes: Iterable[BaseRoute], *, cache_size: int = 4096) -> RouteTemplates:
        """Collect templates from Starlette/FastAPI routes (``app.routes``), mounts included."""
        return cls(_route_paths(routes, prefix=""), cache_size=cache_size)

    def match(self, path: str) -> str:
        """Return the template matching ``path``, or ``"<unmatched>"``."""
        found = self._cache.get(path)
        if found is not None:
            return found
        found = UNMATCHED
        if self._regex is not None:
            hit = self._regex.fullmatch(path)
            if hit is not None and hit.lastgroup is not None:
                found = self._names[hit.lastgroup]
        cache = self._cache
        if len(cache) >= self._cache_size:
            del cache[next(iter(cache))]
        cache[path] = found
        return found

    def __len__(self) -> int:
        return len(self.templates)

    @property
    def cached(self) -> int:
        """How many raw paths are memoized now (at most ``cache_size``)."""
        return len(self._cache)


def _specificity(template: str) -> tuple[int, int, int, str]:
    params = _PARAM.findall(template)
    literal = len(_PARAM.sub("", template))
    paths = sum(1 for _, kind in params if kind == "path")
    return (-literal, paths, len(params), template)


def _compile(template: str) -> str:
    pattern: list[str] = []
    position = 0
    for param in _PARAM.finditer(template):
        pattern.append(re.escape(template[position : param.start()]))
        kind = param.group(2) or "str"
        if kind not in _CONVERTORS:
            msg = f"route template {template!r}: unknown convertor {kind!r}; use one of "
            msg += ", ".join(sorted(_CONVERTORS))
            raise ValueError(msg)
        pattern.append(f"(?:{_CONVERTORS[kind]})")
        position = param.end()
    pattern.append(re.escape(template[position:]))
    return "".join(pattern)


def _route_paths(routes: Iterable[BaseRoute], *, prefix: str) -> Iterator[str]:
    for route in routes:
        if isinstance(route, Mount):
            if route.routes:
                yield from _route_paths(route.routes, prefix=prefix + route.path)
            else:  # a mounted plain ASGI app, e.g. StaticFiles
                yield f"{prefix}{route.path}/{{path:path}}"
            continue
        path = getattr(route, "path", None)
        if isinstance(path, str):
            yield prefix + path
