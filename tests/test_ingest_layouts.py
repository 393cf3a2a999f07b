"""Ingest on layouts real NEPSE scrapers write and on broken files, through `ingest_paths` and `nepse-mlops ingest`."""
import os, shutil, subprocess
from pathlib import Path
import numpy as np
import pandas as pd
from conftest import BIN, ROOT, QUIET

FIX = ROOT / 'tests' / 'fixtures' / 'ingest'


def cli_ingest(*paths, out):
    "Run `nepse-mlops ingest`; return (exit code, stdout, stderr)."
    r = subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'ingest', *map(str, paths), '--out', str(out),
                        '--today', '2024-01-13'], cwd=ROOT, env=os.environ | QUIET, capture_output=True, text=True,
                        timeout=300)
    return r.returncode, r.stdout, r.stderr


def test_symbol_per_folder_with_its_own_corporate_action_tables():
    from nepse_mlops.ingest import ingest_paths
    res = ingest_paths([FIX / 'company-wise'])
    assert res.prices.groupby('symbol').size().to_dict() == {'NABIL': 10, 'NICA': 10}     # not one symbol called PRICES
    assert res.errors == [] and len(res.quarantine) == 0
    m = res.manifest.assign(name=res.manifest.file.str.split('company-wise/').str[1]).set_index('name')
    assert m.loc['NABIL/prices.csv', ['status', 'symbol', 'symbol_rule']].tolist() == ['ingested', 'NABIL', 'folder']
    assert m.loc['NICA/right-share.csv', ['status', 'symbol']].tolist() == ['corporate_actions', 'NICA']
    a = res.actions.assign(date=res.actions.date.dt.strftime('%Y-%m-%d')).set_index(['symbol', 'date'])
    # cash-only row: no action
    assert sorted(a.index) == [('NABIL', '2024-01-08'), ('NABIL', '2024-01-11'), ('NICA', '2024-01-08')]
    # book closure 2024-01-07 (no session) -> ex-date 01-08
    assert a.loc[('NABIL', '2024-01-08'), 'bonus_pct'] == 33.5
    assert a.loc[('NICA', '2024-01-08'), ['right_ratio', 'right_price']].tolist() == [1.0, 100.0]
    # the 20% bonus on 01-11 shows no drop in prices
    assert a.sort_index().agrees.tolist() == [True, False, True]


def test_cli_adjusts_from_the_tables_and_detects_the_rest(tmp_path):
    rc, out, err = cli_ingest(FIX / 'company-wise', out=tmp_path / 'out')
    assert rc == 0, out + err
    assert 'symbol from folder: 4 files' in out and '2 ingested + 2 corporate_actions' in out
    assert 'disagree: NABIL 2024-01-11' in out and 'not applied' in out
    adj = pd.read_csv(tmp_path / 'out' / 'adjustments.csv').set_index(['symbol', 'date'])
    # from the bonus %, not the raw jump (0.75)
    assert np.isclose(adj.loc[('NABIL', '2024-01-08'), 'factor'], 1 / 1.335)
    assert np.isclose(adj.loc[('NICA', '2024-01-08'), 'factor'], 0.6)             # TERP of a 1:1 right at 100 on 500
    # no table covers it: detection remains
    assert adj.loc[('NICA', '2024-01-11'), 'source'] == 'detected'
    assert ('NABIL', '2024-01-11') not in adj.index                               # contradicted by prices: not applied


def test_incomplete_price_files_are_errors_naming_columns(tmp_path):
    rc, out, err = cli_ingest(FIX / 'incomplete', FIX / 'company-wise', out=tmp_path / 'out')
    assert rc == 2
    assert "no_date.csv: looks like a price table but has no date column. Columns found: ['foo', 'bar', 'close']" in err
    assert "no_close.csv: looks like a price table but has no close column. Columns found: ['date', 'volume']" in err
    assert 'Traceback' not in err
    kept = pd.read_parquet(tmp_path / 'out' / 'prices.parquet')
    assert sorted(kept.symbol.unique()) == ['NABIL', 'NICA'] and len(kept) == 20  # good files still checked and written


def test_two_files_giving_one_symbol_different_histories(tmp_path):
    for d, close in [('a', 100.0), ('b', 300.0)]:
        (tmp_path / d).mkdir()
        (tmp_path / d / 'XYZ.csv').write_text('date,close\n'
                                              + ''.join(f'2024-01-0{i},{close + i}\n' for i in range(1, 6)))
    rc, out, err = cli_ingest(tmp_path / 'a', tmp_path / 'b', out=tmp_path / 'out')
    assert rc == 2 and 'Traceback' not in err
    assert f"{tmp_path / 'a' / 'XYZ.csv'} and {tmp_path / 'b' / 'XYZ.csv'} both give symbol XYZ" in err
    same = tmp_path / 'c'; shutil.copytree(tmp_path / 'a', same)          # an identical copy is not a conflict
    from nepse_mlops.ingest import ingest_paths
    assert ingest_paths([tmp_path / 'a', same]).errors == []


def test_huge_field_binary_junk_and_bad_encoding_never_crash(tmp_path):
    d = tmp_path / 'in'; d.mkdir()
    shutil.copy(FIX / 'company-wise' / 'NICA' / 'prices.csv', d / 'NICA.csv')
    big = 'date,close\n2024-01-01,10\n2024-01-02,"' + 'x' * 3_000_000 + '"\n2024-01-03,11\n'
    (d / 'BIG.csv').write_text(big)                                          # generated here: never committed
    (d / 'JUNK.csv').write_bytes(b'date,close\n\x00\x01\x02\xff\xfe\x00binary')
    (d / 'LATIN.csv').write_bytes('date,close\n2024-01-01,10\n2024-01-02,caf\xe9\n'.encode('latin-1'))
    from nepse_mlops.ingest import ingest_paths
    res = ingest_paths([d])
    assert res.prices.groupby('symbol').size().to_dict() == {'BIG': 2, 'NICA': 10}
    q = res.quarantine[res.quarantine.source_file.str.endswith('BIG.csv')]
    assert (q[['source_line', 'rule']].values.tolist() == [[3, 'malformed_row']]
            and 'field larger than field limit' in q.reason.iat[0])
    # the megabytes are not copied into the quarantine
    assert len(q.raw.iat[0]) < 200
    rc, out, err = cli_ingest(d, out=tmp_path / 'out')
    assert rc == 2 and 'Traceback' not in err + out
    assert (f"error: {d / 'JUNK.csv'}: line 2: undecodable bytes" in err
            or f"error: {d / 'JUNK.csv'}: line 2: binary data" in err)
    assert f"error: {d / 'LATIN.csv'}: line 3: undecodable bytes" in err
    assert len(pd.read_parquet(tmp_path / 'out' / 'prices.parquet')) == 12   # good rows in other files kept


def test_known_other_tables_and_unknown_files_are_accounted_for(tmp_path):
    d = tmp_path / 'in'; d.mkdir()
    shutil.copy(FIX / 'company-wise' / 'NICA' / 'prices.csv', d / 'NICA.csv')
    (d / 'trading_calendar.csv').write_text('Date,IsTradingDay,HolidayName\n2026-05-31,True,\n')
    (d / 'listed_company.csv').write_text('Commercial_Banks,Hydro_Power,Finance\nNABIL,AHPC,BFC\n')
    (d / 'notes.csv').write_text('name,address\nx,y\n')
    from nepse_mlops.ingest import ingest_paths, ingest_summary
    res = ingest_paths([d])
    st = dict(zip(res.manifest.file.str.rsplit('/', n=1).str[-1], res.manifest.status))
    assert st == {'NICA.csv': 'ingested', 'trading_calendar.csv': 'other_table', 'listed_company.csv': 'other_table',
                  'notes.csv': 'skipped'}
    s = ingest_summary(res)
    assert 'files: 4 = 1 ingested + 0 corporate_actions + 2 other_table + 1 skipped + 0 error' in s
    assert ('notes.csv: not a price table or a known table' in s
            and 'symbol from file name: 1 files (e.g. NICA.csv -> NICA)' in s)
