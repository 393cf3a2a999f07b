"""Wall time of the daily-loop replay (`nepse_mlops.replay.replay`) over the last N sessions of the full real source 1.
Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_replay.py [--sessions N] [--out DIR] [--mlflow] [--data DIR]

1. Builds the features table from the real files with the package's plain functions, the same calls as
   `bench_pipeline.py --stages-only` (ingest_paths -> validate_prices -> build_features; no Ploomber, no papermill),
   and prints how long each took.
2. Replays the loop (predict, settle, monitor, retrain when the policy says, gate, promote) as of each of the last
   N sessions with env.yaml's `replay_policy` (plus its `model_params`, as `nepse-mlops replay` does), writing the
   timeline, prediction log, ledger and models to --out (default: a fresh temporary folder). The registry is the
   in-memory LocalRegistry unless --mlflow: then an MLflow registry with a SQLite store in the out folder
   (`<out>/mlflow.db`, artifacts in `<out>/mlartifacts`), so each version is also logged and registered.
3. Prints the replay's wall time, retrains and promotions, the seconds of sessions without a retrain (median, p95,
   max) and of retrain sessions (mean), the champion changes, the retrain sessions, and the closing figures against
   the targets: 250 sessions in 600 s, a session without a retrain in 1 s.

Real data is read in place, never copied. The --out folder must not hold an earlier replay (a replay resumes, so the
figures would only cover the sessions left over). OMP_NUM_THREADS is left as it is.
"""
import os
os.environ.setdefault('MLFLOW_DISABLE_TELEMETRY', 'true')
os.environ.setdefault('DO_NOT_TRACK', '1')
import argparse, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import REAL   # the same source-1 folder as bench_pipeline.py

TARGET_S, TARGET_SESSIONS, TARGET_NO_RETRAIN_S = 600.0, 250, 1.0


def build_features_table(data: Path, env: dict):
    ("ingest -> validate -> features as plain functions (the calls "
     "of bench_pipeline.py's --stages-only); (features, seconds).")
    from nepse_mlops.ingest import ingest_paths
    from nepse_mlops.validate import validate_prices
    from nepse_mlops.features import build_features
    t = {}; s = time.time()
    res = ingest_paths([data], progress_every=10**6); t['ingest'] = time.time() - s; s = time.time()
    v = validate_prices(res.prices, res.quarantine); t['validate'] = time.time() - s; s = time.time()
    f = build_features(v.prices, env['horizon']); t['features'] = time.time() - s
    t['rows'], t['validated'] = len(res.prices) + len(res.quarantine), len(v.prices)
    return f, t


def trunc(x, n=80):
    x = '' if x is None or (isinstance(x, float) and x != x) else str(x)
    return x if len(x) <= n else x[:n - 1] + '…'


def failing(gate_reasons: str) -> str:
    ("The gate's failing reasons, compact: 'gate window loses to reversal "
     "-0.0429, logistic -0.0896; walk-forward not shown better than ...'.")
    import re
    parts = [x.strip() for x in str(gate_reasons).split(' | ')]
    gw = [f'{m[1]} {m[2]}' for x in parts if (m := re.match(r'gate window: does not beat (\S+) on \S+: (\S+)', x))]
    wf = [m[1] for x in parts if (m := re.match(r'walk-forward: not shown better than (\S+):', x))]
    other = [x for x in parts
             if not re.match(r'(gate window|walk-forward):|no champion yet|beats champion|champion v\S+ no longer', x)]
    out = ([f"gate window loses to {', '.join(gw)}"] if gw else []) + (["walk-forward not shown better than "
                                                                        f"{', '.join(wf)}"] if wf else [])
    return '; '.join(out + other)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sessions', type=int, default=250, help='replay the last N sessions of the data (default 250)')
    ap.add_argument('--out',
                    help='folder for the replay products (default: a fresh temporary folder); must not hold an earlier '
                         'replay')
    ap.add_argument('--mlflow', action='store_true',
                    help='register versions in MLflow (SQLite store in the out folder) instead of the in-memory '
                         'LocalRegistry')
    ap.add_argument('--data', default=str(REAL), help=f'folder of per-symbol CSVs (default: real source 1, {REAL})')
    a = ap.parse_args()
    data = Path(a.data)
    if not data.exists(): raise SystemExit(f'data not found: {data}')
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix='nepse-bench-replay-'))
    if (out / 'state.json').exists() or (out / 'timeline.csv').exists():
        raise SystemExit(f'{out} holds an earlier replay (it would resume): delete it or pass another --out')
    out.mkdir(parents=True, exist_ok=True)

    import numpy as np, pandas as pd
    from nepse_mlops.core import load_env
    env = load_env(ROOT)     # env.yaml read with yaml.safe_load ({{root}} rendered; replay_policy has no placeholders)
    policy = dict(env.get('replay_policy') or {})

    print(f'== features table from {data} ==', flush=True)
    t0 = time.time()
    features, t = build_features_table(data, env)
    build_s = time.time() - t0
    print(f"ingest {t['ingest']:.1f} s, validate {t['validate']:.1f} s, features {t['features']:.1f} s"
          f"; total build {build_s:.1f} s")
    print(f"{t['rows']:,} rows read, {t['validated']:,} validated, {len(features):,} feature rows, "
          f"{features.symbol.nunique()} symbols, {features.date.nunique():,} sessions "
          f"({features.date.min().date()} to {features.date.max().date()})", flush=True)

    from nepse_mlops.replay import replay, ReplaySettings, ReplayRegistry, LocalRegistry
    # as `nepse-mlops replay` (run_replay) builds them
    settings = ReplaySettings.from_env(dict(policy, model_params=env['model_params']))
    sessions = np.sort(features.date.unique())
    n = min(a.sessions, len(sessions))
    start = pd.Timestamp(sessions[-n])
    if a.mlflow:
        registry = ReplayRegistry(f'sqlite:///{out.resolve()}/mlflow.db', env['model_name'],
                                  out.resolve() / 'mlartifacts', fresh=True)
        reg_name = f'MLflow ({out}/mlflow.db)'
    else: registry, reg_name = LocalRegistry(), 'LocalRegistry (in memory)'
    print(f'\n== replay: last {n} sessions, {start.date()} to {pd.Timestamp(sessions[-1]).date()} ==')
    print(f'policy (env.yaml replay_policy): {policy}')
    print(f'registry: {reg_name}; out: {out}; OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS", "(unset)")}; cores: '
          f'{os.cpu_count()}', flush=True)
    t0 = time.time()
    tl = replay(features, start, end=None, settings=settings, out=out, registry=registry, progress=True)
    wall = time.time() - t0

    retr = tl.retrain.astype(bool)
    quiet, busy = tl[~retr].seconds, tl[retr].seconds
    gate = tl.get('gate', pd.Series(index=tl.index, dtype=object))
    promotions = int((gate == 'promoted').sum())
    print(f'\n== figures ==')
    print(f'replay wall time {wall:.1f} s ({wall / 60:.1f} min) for {len(tl)} sessions; '
          f'sum of per-session seconds {tl.seconds.sum():.1f} s (setup and the rest {wall - tl.seconds.sum():.1f} s)')
    print(f'retrains {int(retr.sum())} (gate: '
          + ', '.join(f'{k} {v}' for k, v in gate[retr].fillna('none').value_counts().items())
          + f'); promotions {promotions}')
    if len(quiet):
        print(f'sessions without a retrain ({len(quiet)}): median {quiet.median():.2f} s, p95 '
              f'{quiet.quantile(0.95):.2f} s, max {quiet.max():.2f} s, mean {quiet.mean():.2f} s')
    if len(busy):
        print(f'sessions with a retrain ({len(busy)}): mean {busy.mean():.1f} s, min {busy.min():.1f} s, max '
              f'{busy.max():.1f} s, total {busy.sum():.1f} s ({busy.sum() / max(tl.seconds.sum(), 1e-9):.0%} of the '
              'per-session seconds)')
    ra = tl.get('realised_auc')
    if ra is not None and ra.notna().any():
        rr = tl.realised_reversal_auc
        print(f'realised ROC AUC of the champion (last {settings.realised_window} sessions of settled predictions), '
              f'over the {int(ra.notna().sum())} sessions judged: median {ra.median():.4f}, last '
              f'{ra.dropna().iloc[-1]:.4f}; reversal rule on the same rows: median {rr.median():.4f}, last '
              f'{rr.dropna().iloc[-1]:.4f}')

    print('\nchampion timeline (session: old -> new):')
    ch = tl[tl.champion_after.notna() & (tl.champion_after.astype(str) != tl.champion.astype(str))]
    if not len(ch): print('  (no champion change)')
    for r in ch.itertuples():
        was = 'none' if pd.isna(r.champion) else 'v' + str(r.champion)
        print(f"  {r.session.date()}: {was} -> v{r.champion_after}")
    last = tl.champion_after.iloc[-1] if pd.notna(tl.champion_after.iloc[-1]) else tl.champion.iloc[-1]
    print(f"  champion at the end: {'none' if pd.isna(last) else 'v' + str(last)}")

    print('\nretrain sessions:')
    if not retr.any(): print('  (none)')
    else:
        print(f"  {'session':<10}  {'seconds':>7}  {'gate':<9} {'gate AUC':>8}  reasons")
        for r in tl[retr].itertuples():
            ga = '' if pd.isna(r.gate_auc) else f'{r.gate_auc:.4f}'
            print(f"  {str(r.session.date()):<10}  {r.seconds:7.1f}  {trunc(r.gate, 9):<9} {ga:>8}  {trunc(r.reasons)}")
            if r.gate != 'promoted' and pd.notna(r.gate_reasons): print(f"  {'':<10}  {'':>7}  why: "
                                                                        f"{trunc(failing(r.gate_reasons), 140)}")

    tgt = f'target {TARGET_S:.0f} s' if n == TARGET_SESSIONS else \
          f'target {TARGET_S:.0f} s for {TARGET_SESSIONS}, pro rata {TARGET_S * n / TARGET_SESSIONS:.0f} s'
    print(f'\nfeatures build (ingest + validate + features): {build_s:.1f} s')
    print(f'replay {len(tl)} sessions: {wall:.1f} s ({tgt})')
    if len(quiet):
        print(f'session without retrain: median {quiet.median():.2f} s, p95 {quiet.quantile(0.95):.2f} s (target '
              f'{TARGET_NO_RETRAIN_S:.0f} s)')
    print(f'products in {out}')


if __name__ == '__main__':
    main()
