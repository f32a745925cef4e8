"""The package's imports run one way (README, "What is where"): a module imports only from its own layer or
the layers below it, and no two modules import each other, lazily or not."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tvm_sparse"
# lowest first; a module of one layer may import any module of its own layer or of a lower one
LAYERS = [
    {"format", "target", "runtime", "pipeline"},
    {"kernels"},
    {"schedule"},
    {"kinds"},
    {"tune"},
    {"graph", "sparsify"},  # sparsify: a model-level tool like the graph (torch, lazily)
    {"bench"},
    {"cli", "__main__"},
]
EXEMPT = {"__init__", "schedules"}  # the package's front door (re-exports load()), the shipped records


def _module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(name: str, package: Path) -> bool:
    path = package.parent / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path, package: Path) -> set[str]:
    """Every tvm_sparse module ``path`` imports, at the top or inside a function."""
    name = _module_name(path, package)
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    # ``if TYPE_CHECKING:`` imports are annotations only: never run, they make no dependency
    typing_only = {id(n) for t in ast.walk(tree) if isinstance(t, ast.If) and getattr(t.test, "id", "") ==
                   "TYPE_CHECKING" for n in ast.walk(t)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "tvm_sparse"}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            if mod.split(".")[0] != "tvm_sparse":
                continue
            out.add(mod)
            # ``from . import calibrate``: the submodule, where it is one
            out |= {f"{mod}.{a.name}" for a in node.names if _exists(f"{mod}.{a.name}", package)}
    return out - {name}


def _layer(module: str) -> int | None:
    top = module.split(".")[1] if "." in module else "__init__"
    if top in EXEMPT:
        return None
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer: add its subpackage to LAYERS (and the README)")


def _graph(package: Path) -> dict[str, set[str]]:
    return {_module_name(p, package): _imports(p, package) for p in package.rglob("*.py")}


def upward_imports(package: Path = PACKAGE) -> list[str]:
    wrong = []
    for mod, deps in _graph(package).items():
        for dep in deps:
            here, there = _layer(mod), _layer(dep)
            if here is not None and there is not None and there > here:
                wrong.append(f"{mod} (layer {here}) imports {dep} (layer {there})")
    return sorted(wrong)


def import_cycle(package: Path = PACKAGE) -> list[str] | None:
    """One cycle of module imports, if there is any. A package's ``__init__`` importing its own
    submodules is not one (Python runs the package first either way)."""
    graph = _graph(package)
    edges = {m: {d for d in deps if d in graph and not m.startswith(d + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(mod: str) -> list[str] | None:
        state[mod] = 1
        stack.append(mod)
        for dep in sorted(edges[mod]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if state.get(dep) is None and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[mod] = 2
        return None

    for mod in sorted(graph):
        if state.get(mod) is None and (cycle := visit(mod)):
            return cycle
    return None


def test_imports_run_down_the_layers():
    wrong = upward_imports()
    assert not wrong, "imports back up the layers:\n" + "\n".join(wrong)


def test_no_import_cycles():
    cycle = import_cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_see_a_violation_and_a_cycle(tmp_path):
    pkg = tmp_path / "tvm_sparse"
    for sub in ("kernels", "tune"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "kernels" / "x.py").write_text("def f():\n    from ..tune import tuner\n")  # lazy, still counts
    (pkg / "tune" / "tuner.py").write_text("from ..kernels import x\n")
    assert upward_imports(pkg) == ["tvm_sparse.kernels.x (layer 1) imports tvm_sparse.tune (layer 4)",
                                   "tvm_sparse.kernels.x (layer 1) imports tvm_sparse.tune.tuner (layer 4)"]
    assert import_cycle(pkg) in (["tvm_sparse.kernels.x", "tvm_sparse.tune.tuner", "tvm_sparse.kernels.x"],
                                 ["tvm_sparse.tune.tuner", "tvm_sparse.kernels.x", "tvm_sparse.tune.tuner"])


# what TVM's runtime-only install has no use for: a deployed library must load where only it is installed
COMPILER_MODULES = ("tvm.relax", "tvm.tirx", "tvm.s_tir", "tvm.te", "tvm.topi", "tvm.script", "tvm.target")


def test_the_runtime_needs_only_tvms_runtime():
    wrong = []
    for path in (PACKAGE / "runtime").rglob("*.py"):
        tree = ast.parse(path.read_text())
        # inside a ``try``: optional (cpu.py asks LLVM for a fallback where the compiler happens to be there)
        optional = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) for b in t.body for n in ast.walk(b)}
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            wrong += [f"{path.name}: {n}" for n in names if n.startswith(COMPILER_MODULES)]
    assert not wrong, "the runtime imports TVM's compiler: " + ", ".join(wrong)
