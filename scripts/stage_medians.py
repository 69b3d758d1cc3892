#!/usr/bin/env python3
# Medians per image of an interleaved before/after sitting written by scripts/performance.sh:
#     python3 scripts/stage_medians.py docs/results/performance/stage3
# online = the online phase; e2e = online plus the client's wait for the dealer, run by run.
import json,glob,statistics as st,sys
base=sys.argv[1]
for side in ['before','after']:
    for pat,b in [('bench-%s-*.json',1),('bench-%s-*.json',8),('bench64-%s-*.json',64)]:
        on=[];e2e=[]
        for f in sorted(glob.glob(base+'/'+pat%side)):
            d=json.load(open(f)); rows=d['rows'] if 'rows' in d else d
            for r in rows:
                if r['batch']!=b: continue
                on+= [x/b for x in r['online_s_runs']]
                e2e+=[(x+y)/b for x,y in zip(r['online_s_runs'],r['offline_s_runs'])]
        print(side,b,len(on),'online %.3f'%st.median(on),'e2e %.3f'%st.median(e2e))
