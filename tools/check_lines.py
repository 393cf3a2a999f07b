#!/usr/bin/env python3
"""List every line over 120 characters in notebook code cells, the package, tests and benchmarks; exit 1 if any."""
# Stdlib only, so `make check` runs it without importing nepse_mlops (or anything the package needs).
import json, sys
from pathlib import Path

LIMIT = 120
ROOT = Path(__file__).resolve().parent.parent
# `_modidx.py` is nbdev's generated symbol index (one dict of doc URLs); no notebook line makes it, none can fix it.
SKIP = {'nepse_mlops/_modidx.py'}

def notebook_lines(path):
    "Yield (file line, source line) for each line of each code cell, numbered as in the .ipynb so editors jump there."
    raw = path.read_text(encoding='utf-8').splitlines()
    cells = json.loads('\n'.join(raw))['cells']
    code = [c for c in cells if c['cell_type'] == 'code']
    starts = [i for i, l in enumerate(raw) if l.strip().startswith('"source":')]
    if len(starts) != len(cells):  # not the one-element-per-line layout nbdev_clean writes: number lines per cell
        for n, c in enumerate(code):
            src = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
            for j, line in enumerate(src.splitlines(), 1): yield f'cell {n} line {j}', line
        return
    for c, start in zip(cells, starts):
        if c['cell_type'] != 'code': continue
        src = c['source'] if isinstance(c['source'], list) else c['source'].splitlines(True)
        for j, element in enumerate(src):
            for line in element.splitlines() or ['']: yield start + 2 + j, line

def text_lines(path):
    "Yield (line number, line) of a text file."
    for n, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1): yield n, line

def module_lines(path):
    "Yield (line number, line) of a generated module, less nbdev's `__all__` (wrapped at 120, then prefixed)."
    in_all = False
    for n, line in text_lines(path):
        in_all = line.startswith('__all__ = [') or in_all and line.startswith(' ' * 11)
        if not in_all: yield n, line

def sources(root):
    "The files checked, as (relative path, line reader)."
    for p in sorted((root/'nbs').glob('*.ipynb')): yield p, notebook_lines
    for d in ('nepse_mlops', 'tests', 'benchmarks', 'tools'):
        for p in sorted((root/d).rglob('*.py')):
            if p.relative_to(root).as_posix() not in SKIP: yield p, module_lines if d == 'nepse_mlops' else text_lines

def long_lines(root=ROOT, limit=LIMIT):
    "Every line over `limit` characters, as (path, line, length)."
    return [(p.relative_to(root).as_posix(), n, len(line))
            for p, read in sources(root) for n, line in read(p) if len(line) > limit]

if __name__ == '__main__':
    found = long_lines()
    for path, n, length in found: print(f'{path}:{n}: {length} chars')
    if found: print(f'{len(found)} lines over {LIMIT} characters', file=sys.stderr)
    sys.exit(1 if found else 0)
