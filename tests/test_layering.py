"""The import rules of /work/shared/style.md, checked on the source with ``ast``.

Every import counts wherever it is written: at module level, inside a function, under
``if TYPE_CHECKING:`` or as ``importlib.import_module("literal")``. Relative imports are resolved.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ticker", "feeds")
STDLIB = frozenset(sys.stdlib_module_names)


@dataclass(frozen=True)
class Import:
    target: str  # absolute dotted module name
    line: int


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    imports: tuple[Import, ...]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(source: str, name: str, package: bool, known: frozenset[str]) -> list[Import]:
    """Every module ``source`` (module ``name``) imports, at any depth."""
    base = name if package else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                module = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                # ``from ticker import protocol`` imports the module ticker.protocol.
                submodule = f"{module}.{alias.name}" if module else alias.name
                found.append(Import(submodule if submodule in known else module, node.lineno))
        elif (isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append(Import(node.args[0].value, node.lineno))
    return found


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def parse_tree(root: Path) -> dict[str, Module]:
    paths = sorted(path for package in PACKAGES for path in (root / package).rglob("*.py"))
    known = frozenset(module_name(path, root) for path in paths)
    modules = {}
    for path in paths:
        name = module_name(path, root)
        found = imports_of(path.read_text(encoding="utf-8"), name, is_package(path), known)
        modules[name] = Module(name, path, tuple(found))
    return modules


MODULES = parse_tree(ROOT)


def within(name: str, *prefixes: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def is_stdlib(name: str) -> bool:
    return name.partition(".")[0] in STDLIB


# -- the rules -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    text: str
    applies: Callable[[str], bool]  # to the importing module's name
    allowed: Callable[[str, str], bool]  # (importer, imported) -> ok
    must_cover: tuple[str, ...]  # modules that must exist, so the rule is never vacuous


RULES = [
    Rule("ticker.model and ticker.errors import only the stdlib",
         lambda m: m in ("ticker.model", "ticker.errors"),
         lambda m, target: is_stdlib(target),
         ("ticker.model", "ticker.errors")),
    Rule("feeds.* imports only the stdlib, orjson, ticker.model, ticker.errors and feeds.*",
         lambda m: within(m, "feeds") and not within(m, "feeds.live"),
         lambda m, target: is_stdlib(target)
         or within(target, "orjson", "ticker.model", "ticker.errors", "feeds"),
         ("feeds", "feeds.base", "feeds.market", "feeds.simulated")),
    Rule("feeds.live.* (upstream adapters) may also import websockets and ticker.client, the "
         "Python client a relay is built on; still no server part",
         lambda m: within(m, "feeds.live"),
         lambda m, target: is_stdlib(target)
         or within(target, "orjson", "websockets", "ticker.model", "ticker.errors",
                   "ticker.client", "feeds"),
         ("feeds.live", "feeds.live.base")),
    Rule("ticker.client (for programs) imports only the stdlib, orjson, websockets, h11 and "
         "ticker.model, .errors, .protocol and .client: never a server part",
         lambda m: within(m, "ticker.client"),
         lambda m, target: is_stdlib(target)
         or within(target, "orjson", "websockets", "h11", "ticker.model", "ticker.errors",
                   "ticker.protocol", "ticker.client"),
         ("ticker.client", "ticker.client.backoff")),
    Rule("ticker.protocol imports only the stdlib, orjson, ticker.model and ticker.errors",
         lambda m: m == "ticker.protocol",
         lambda m, target: is_stdlib(target)
         or within(target, "orjson", "ticker.model", "ticker.errors"),
         ("ticker.protocol",)),
    Rule("ticker.hub, .subscriber, .feed_order, .history, .session and .bars never import "
         "starlette, uvicorn, feeds, ticker.app or ticker.transport",
         lambda m: m in ("ticker.hub", "ticker.subscriber", "ticker.feed_order", "ticker.history",
                        "ticker.session", "ticker.bars"),
         lambda m, target: not within(target, "starlette", "uvicorn", "feeds", "ticker.app",
                                      "ticker.transport"),
         ("ticker.hub", "ticker.subscriber", "ticker.feed_order", "ticker.history",
          "ticker.session", "ticker.bars")),
    Rule("ticker.alpaca.protocol and .session (sans I/O) never import starlette, uvicorn, feeds, "
         "the hub or a transport",
         lambda m: m in ("ticker.alpaca.protocol", "ticker.alpaca.session"),
         lambda m, target: not within(target, "starlette", "uvicorn", "feeds", "ticker.hub",
                                      "ticker.subscriber", "ticker.transport", "ticker.app"),
         ("ticker.alpaca.protocol", "ticker.alpaca.session")),
    Rule("ticker.alpaca.* never imports feeds",
         lambda m: within(m, "ticker.alpaca"),
         lambda m, target: not within(target, "feeds"),
         ("ticker.alpaca", "ticker.alpaca.endpoint", "ticker.alpaca.stream")),
    Rule("ticker.transport.* never imports feeds",
         lambda m: within(m, "ticker.transport"),
         lambda m, target: not within(target, "feeds"),
         ("ticker.transport", "ticker.transport.ws")),
    Rule("only ticker.__main__ and ticker.testing (a server for tests) import ticker.app, "
         "ticker.server or ticker.__main__ (and ticker.server may import ticker.app)",
         lambda m: m not in ("ticker.__main__", "ticker.testing"),
         lambda m, target: not within(target, "ticker.app", "ticker.server", "ticker.__main__")
         or (m == "ticker.server" and within(target, "ticker.app")),
         ("ticker.app", "ticker.server", "ticker.__main__")),
]


def violations(rule: Rule, modules: dict[str, Module]) -> Iterator[str]:
    for module in modules.values():
        if not rule.applies(module.name):
            continue
        for found in module.imports:
            if not rule.allowed(module.name, found.target):
                where = f"{module.path.relative_to(ROOT)}:{found.line}"
                yield f"{module.name} imports {found.target} ({where})"


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.text.split(" ")[0])
def test_import_rule(rule: Rule) -> None:
    missing = [name for name in rule.must_cover if name not in MODULES]
    assert not missing, f"rule {rule.text!r} covers modules that no longer exist: {missing}"
    bad = list(violations(rule, MODULES))
    assert not bad, f"import rule broken: {rule.text}\n  " + "\n  ".join(bad)


# -- the checker itself finds what it must ---------------------------------------------------------


def test_the_tree_was_parsed() -> None:
    assert len(MODULES) >= 10, sorted(MODULES)
    assert {"ticker", "ticker.config", "ticker.hub", "ticker.app", "ticker.transport.ws",
            "feeds", "feeds.simulated"} <= set(MODULES)
    assert sum(len(module.imports) for module in MODULES.values()) >= 50
    # Spot checks against imports that are known to be there, one of them inside a function.
    assert "ticker.app" in targets("ticker.__main__")
    assert "ticker.server" in targets("ticker.__main__")
    assert "ticker.protocol" in targets("ticker.hub")
    assert "starlette.applications" in targets("ticker.app")


def targets(name: str) -> set[str]:
    return {found.target for found in MODULES[name].imports}


FAKE_KNOWN = frozenset({"ticker", "ticker.hub", "ticker.protocol", "ticker.transport",
                        "ticker.transport.ws", "ticker.app", "feeds", "feeds.simulated"})


def test_checker_sees_nested_relative_and_dynamic_imports() -> None:
    source = """
from __future__ import annotations
from typing import TYPE_CHECKING
from .. import protocol
from ..hub import Hub
from . import ws
if TYPE_CHECKING:
    import uvicorn
def later():
    import starlette.websockets
    from ticker import app
    class Inner:
        def deeper(self):
            from feeds.simulated import SimulatedFeed
    return importlib.import_module("ticker.transport")
"""
    found = {item.target
             for item in imports_of(source, "ticker.transport.ws", False, FAKE_KNOWN)}
    assert found == {"__future__", "typing", "ticker.protocol", "ticker.hub",
                     "ticker.transport.ws", "uvicorn", "starlette.websockets", "ticker.app",
                     "feeds.simulated", "ticker.transport"}


def test_checker_resolves_relative_imports_in_a_package() -> None:
    source = "from . import ws\nfrom .ws import x\nfrom ..hub import Hub\nfrom . import y\n"
    found = [item.target for item in imports_of(source, "ticker.transport", True, FAKE_KNOWN)]
    assert found == ["ticker.transport.ws", "ticker.transport.ws", "ticker.hub",
                     "ticker.transport"]


def test_rules_flag_a_forbidden_import_inside_a_function() -> None:
    source = "def f():\n    from starlette.websockets import WebSocket\n    import feeds\n"
    fake = {"ticker.hub": Module("ticker.hub", ROOT / "ticker" / "hub.py",
                                 tuple(imports_of(source, "ticker.hub", False, FAKE_KNOWN)))}
    hub_rule = next(rule for rule in RULES if rule.applies("ticker.hub"))
    assert list(violations(hub_rule, fake)) == [
        "ticker.hub imports starlette.websockets (ticker/hub.py:2)",
        "ticker.hub imports feeds (ticker/hub.py:3)",
    ]


@pytest.mark.parametrize(
    ("importer", "target", "ok"),
    [
        ("ticker.model", "dataclasses", True),
        ("ticker.model", "orjson", False),
        ("ticker.errors", "ticker.model", False),
        ("feeds.simulated", "ticker.model", True),
        ("feeds.simulated", "orjson", True),
        ("feeds.simulated", "ticker.hub", False),
        ("feeds.simulated", "ticker", False),
        ("feeds.base", "starlette", False),
        ("ticker.protocol", "orjson", True),
        ("ticker.protocol", "ticker.hub", False),
        ("ticker.subscriber", "ticker.protocol", True),
        ("ticker.session", "uvicorn.config", False),
        ("ticker.bars", "ticker.transport.ws", False),
        ("ticker.transport.ws", "starlette.websockets", True),
        ("ticker.transport.ws", "feeds.base", False),
        ("ticker.server", "ticker.app", True),
        ("ticker.server", "ticker.__main__", False),
        ("ticker.app", "ticker.server", False),
        ("ticker.api", "ticker.app", False),
        ("ticker.__main__", "ticker.server", True),
        ("ticker.testing", "ticker.app", True),
        ("ticker.pytest_plugin", "ticker.app", False),
        ("ticker.alpaca.protocol", "msgpack", True),
        ("ticker.alpaca.protocol", "starlette.websockets", False),
        ("ticker.alpaca.session", "ticker.hub", False),
        ("ticker.alpaca.stream", "ticker.hub", True),
        ("ticker.alpaca.stream", "feeds.base", False),
        ("ticker.alpaca.endpoint", "starlette.websockets", True),
    ],
)
def test_rules_decide_single_imports(importer: str, target: str, ok: bool) -> None:
    fake = {importer: Module(importer, ROOT / "x.py", (Import(target, 1),))}
    broken = [rule.text for rule in RULES
              if rule.applies(importer) and list(violations(rule, fake))]
    assert (not broken) is ok, broken
