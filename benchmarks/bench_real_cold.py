"""A real cold run: `nepse-mlops run --data <source 1>` into a fresh products folder (a temporary folder), with the
evidence at `--set n_windows=10` (10 walk-forward windows x 20 sessions) and the pipeline's 150-session replay. Prints
the total wall time, the CPU seconds of every process of the run, each task's seconds (from the run's record in
products/runs.jsonl), a floor measured in the same run (a papermill run of a trivial notebook that imports the package,
times the number of tasks), and whether the 180 s target is met. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_real_cold.py [--data DIR] [--keep DIR] [--set KEY=VALUE ...]

Source 1 (../shared/data/nepse/Aabishkar2__nepse-data/data/company-wise) is read in place, never copied; without it the
benchmark says so and exits 0. On a machine other jobs load, wall time is noise: compare the CPU seconds.
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SOURCE_1 = 'shared/data/nepse/Aabishkar2__nepse-data/data/company-wise'
# ../shared (a worktree: further up)
REAL = next((d / SOURCE_1 for d in ROOT.parents if (d / SOURCE_1).exists()), ROOT.parent / SOURCE_1)
# as `make run`: .pyc files are written into .venv once, not compiled per kernel
QUIET = {'PLOOMBER_STATS_ENABLED': 'false', 'PLOOMBER_VERSION_CHECK_DISABLED': '1', 'MLFLOW_DISABLE_TELEMETRY': 'true',
         'PYTHONDONTWRITEBYTECODE': ''}
TARGET = 180.0
TRIVIAL = {'cells': [{'cell_type': 'code', 'execution_count': None, 'id': 'floor', 'metadata': {}, 'outputs': [],
                      'source': ['import nepse_mlops, numpy, pandas']}],
           'metadata': {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'}},
           'nbformat': 4, 'nbformat_minor': 5}


def children_cpu() -> float:
    "User + system CPU seconds of every finished child process (and theirs)."
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    "(wall seconds, CPU seconds of the process tree, the completed process) of `cmd`."
    c0, t0 = children_cpu(), time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | QUIET, cwd=ROOT)
    return time.perf_counter() - t0, children_cpu() - c0, p


def floor(work: Path, n_tasks: int) -> tuple[float, float]:
    "(seconds of one papermill run of a notebook that only imports the package, that times `n_tasks`)."
    nb = work / 'floor.ipynb'; nb.write_text(json.dumps(TRIVIAL))
    wall, _, p = timed([str(BIN / 'papermill'), '--no-progress-bar', str(nb), str(work / 'floor_out.ipynb')])
    if p.returncode: print(p.stderr[-2000:]); raise SystemExit('the floor notebook failed')
    return wall, wall * n_tasks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default=str(REAL), help='real price files (default: source 1)')
    ap.add_argument('--keep', help='build into this (new) folder and keep it, instead of a temporary folder')
    ap.add_argument('--set', action='append', default=['n_windows=10'],
                    help='an env.yaml override (default n_windows=10)')
    a = ap.parse_args()
    if not Path(a.data).exists():
        print(f'skipped: the real data is not at {a.data} (source 1 lives in ../shared/data/nepse; it is never copied '
              'into the repo)')
        return
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix='nepse-cold-'))
    if (work / 'products').exists(): raise SystemExit(f'{work}/products exists: a cold run needs a fresh folder')
    work.mkdir(parents=True, exist_ok=True)
    sets = [f'products={work}/products', f'reports={work}/reports', f'tracking_uri=sqlite:///{work}/products/mlflow.db',
            *a.set]
    cmd = [str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'run', '--data', str(Path(a.data).resolve())]
    for s in sets: cmd += ['--set', s]
    load0 = os.getloadavg()[0]
    wall, cpu, p = timed(cmd)
    load1 = os.getloadavg()[0]
    if p.returncode: print(p.stdout[-3000:], p.stderr[-3000:]); raise SystemExit('the cold run failed (exit '
                                                                                 f'{p.returncode})')
    runs = [json.loads(l) for l in (work / 'products/runs.jsonl').read_text().splitlines() if l.strip()]
    tasks = runs[-1].get('tasks', {})
    one, fl = floor(work, len(tasks))
    print(f'== real cold run: {a.data} ({", ".join(a.set)}) ==')
    print('per task (s): ' + ', '.join(f"{k} {v['seconds']:.1f}" for k, v in tasks.items()))
    print(f'total wall {wall:.1f} s; CPU of every process of the run {cpu:.1f} s (2 tasks run at a time on '
          f'{os.cpu_count()} cores)')
    print(f'floor: a papermill run of a notebook importing the package {one:.1f} s x {len(tasks)} tasks = {fl:.1f} s '
          f'(serial; two at a time ~{fl / 2:.1f} s)')
    print(f'load average before {load0:.1f}, after {load1:.1f} '
          f'({"loaded: other jobs ran" if max(load0, load1) > 2.5 else "quiet"})')
    print(f'target {TARGET:.0f} s: {"met" if wall <= TARGET else "NOT met"} ({wall / TARGET:.2f} of it)')
    print(f'products in {work}' + ('' if a.keep else ' (temporary)'))


if __name__ == '__main__':
    main()
