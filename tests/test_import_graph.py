"""The project's modules import each other without cycles (every import counts, also those inside
functions), so that every module can be read, tested and replaced from its dependencies up."""

import ast
import pathlib

from helpers import REPO_ROOT

ROOT = pathlib.Path(REPO_ROOT)
SKIPPED_DIRS = {'tests', 'benchmarks', '.git', '.ci', 'docs'}


def project_modules():
    """{dotted module name: path} of every Python file of the project (tests and benchmarks aside)."""
    modules = {}
    for path in ROOT.rglob('*.py'):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in SKIPPED_DIRS or any(part.startswith('.') for part in relative.parts):
            continue
        parts = list(relative.with_suffix('').parts)
        if parts[-1] == '__init__':
            parts = parts[:-1]
        modules['.'.join(parts)] = path
    return modules


def imports_of(name, path, modules):
    """The project modules that module `name` imports anywhere in its source."""
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')[:len(package.split('.')) - (node.level - 1)] if package else []
                base = '.'.join(anchor + ([base] if base else []))
            targets = [f'{base}.{alias.name}' if f'{base}.{alias.name}' in modules else base for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in modules and target != name)
    return found


def find_cycle(graph):
    """A list of modules forming a cycle, or None."""
    state = {}  # name -> 'open' while on the stack, 'done' after.
    stack = []

    def visit(node):
        state[node] = 'open'
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 'open':
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 'done'
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycles():
    modules = project_modules()
    assert 'torch_utils.ops.bias_act' in modules and 'train' in modules
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert 'torch_utils.ops.bias_act_cuda' in graph['torch_utils.ops.bias_act']
    cycle = find_cycle(graph)
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_cycle_finder_finds_cycles():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set(), 'c': {'a', 'b'}}) is None
