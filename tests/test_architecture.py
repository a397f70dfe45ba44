"""The shape of the code, checked from its import statements (``ast``, no import needed): data flows one way,
no import circle anywhere in core/, the leaf modules stay leaves, and generic code never names a model."""

import ast
from pathlib import Path

from conftest import ROOT

from core.models import REGISTRY

CORE = ROOT / "core"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_imports(path: Path) -> set[str]:
    """The core modules ``path`` imports, at module level or inside functions (``if TYPE_CHECKING:`` aside)."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
               for node in ast.walk(block)}
    modules = {module_name(p) for p in CORE.rglob("*.py")}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "core"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "core":
            for alias in node.names:  # `from core import data` imports the module core.data
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in modules else node.module)
    return found & modules


def graph() -> dict[str, set[str]]:
    return {module_name(path): core_imports(path) for path in CORE.rglob("*.py")}


def test_no_import_circle_in_core() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if nxt == node:
                continue
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_lower_layers_never_import_the_models():
    edges = graph()
    assert edges["core.common"] == set()  # the leaf: Progress, UserError, ConfigError
    assert edges["core.config"] <= {"core.common"}
    assert edges["core.vectors"] == set()
    for lower in ("core.data", "core.embeddings", "core.train", "core.storage", "core.metrics", "core.reduce",
                  "core.index", "core.decay", "core.results"):
        assert not {m for m in edges[lower] if m.startswith("core.models")}, lower
    # The backends read what they are asked (prompts, tasks) and their interface (generator), never the model.
    backend_may_use = {"core.models.llmseqprompt.generator", "core.models.llmseqprompt.prompts",
                       "core.models.llmseqprompt.tasks"}
    for backend in ("core.models.llmseqprompt.local", "core.models.llmseqprompt.openai_backend",
                    "core.models.llmseqprompt.generator", "core.models.llmseqprompt.prompts",
                    "core.models.llmseqprompt.tasks"):
        assert {m for m in edges[backend] if m.startswith("core.models")} <= backend_may_use, backend


def test_core_never_imports_the_app():
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
        names |= {node.module.split(".")[0] for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.module}
        assert not names & {"streamlit", "ui", "pages", "tools"}, path


def test_generic_modules_ask_capabilities_never_model_names():
    """Evaluation, the store, picks, jobs, maps and explanations treat every model alike: no registry name in
    their code and no probing of a model's attributes (the capabilities are declared on Recommender)."""
    for name in ("evaluate", "store", "picks", "jobs", "projection", "explain", "trained", "results", "metrics"):
        nodes = list(ast.walk(ast.parse((CORE / f"{name}.py").read_text())))
        strings = {node.value for node in nodes if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        assert not strings & set(REGISTRY) - {"popularity"}, name  # "popularity" is also a metric input's name
        calls = {node.func.id for node in nodes if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
        assert "hasattr" not in calls, name
