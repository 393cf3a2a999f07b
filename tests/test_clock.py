"""One clock for the market: the live synthetic market's last session, the cached resolution `nepse-mlops run` uses and
data freshness come from NEPSE's calendar in Asia/Kathmandu, whatever the host's TZ. Each case runs in a fresh process
under a different TZ at a pinned instant around the 15:00 close (pinned by wrapping `market_calendar.market_now`)."""
import json, os, subprocess, sys
import pytest
from conftest import ROOT

CODE = """
import json, sys, tempfile
from datetime import datetime, timezone
import nepse_mlops.market_calendar as market_calendar
from nepse_mlops.synthetic import live_through
from nepse_mlops.ops import live_through_cached
real, out = market_calendar.market_now, []
for s in json.loads(sys.argv[1]):
    at = datetime.fromisoformat(s).replace(tzinfo=timezone.utc)
    market_calendar.market_now = lambda now=None: real(at if now is None else now)
    with tempfile.TemporaryDirectory() as d:
        out.append([live_through(), live_through_cached(d, None, '2019-01-01', '2027-12-31', 7),
                    str(market_calendar.market_today())])
print(json.dumps(out))
"""
# (UTC instant, expected last session, Kathmandu date): 09:14 UTC
# = 14:59 in Kathmandu, 09:15 = 15:00, 22:26 = 04:11 next day
CASES = [('2026-12-03T09:14:00', '2026-12-02', '2026-12-03'), ('2026-12-03T09:15:00', '2026-12-03', '2026-12-03'),
         ('2026-12-03T22:26:00', '2026-12-03', '2026-12-04'), ('2026-12-03T18:14:00', '2026-12-03', '2026-12-03'),
         ('2026-12-03T18:16:00', '2026-12-03', '2026-12-04')]
ZONES = ['UTC', 'Asia/Kathmandu', 'America/Los_Angeles', 'Pacific/Kiritimati']


def test_the_latest_session_is_the_same_on_every_host_time_zone():
    want = [[session, session, today] for _, session, today in CASES]
    for tz in ZONES:   # one process per host time zone, every instant in it
        r = subprocess.run([sys.executable, '-c', CODE, json.dumps([c[0] for c in CASES])], env=os.environ | {'TZ': tz},
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads(r.stdout.strip().splitlines()[-1]) == want, (tz, r.stdout)
