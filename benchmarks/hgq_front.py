"""HGQ2 front on a qapbo split: train, cost every checkpoint, check da4ml bit-exactness (measurement for issue 21).

Usage: python benchmarks/hgq_front.py SOURCE ROWS EPOCHS BETA0 BETA1 BATCH WORKDIR
e.g.   nice -n 19 python benchmarks/hgq_front.py pythia-jets 20000 800 5e-7 1e-3 1024 /tmp/hgq-pythia
"""
import sys, time, json, numpy as np
from qapbo.data import load_data, DataConfig
from qapbo import hgq
src, rows, epochs, beta0, beta1, bs, wd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
d = load_data(DataConfig(source=src, n_rows=rows, seed=0))
s = hgq.HgqSettings(epochs=epochs, beta0=beta0, beta1=beta1, batch_size=bs)
c0=time.process_time(); w0=time.perf_counter()
ck = hgq.train_hgq(d.x_train, d.y_train, d.x_val, d.y_val, s, wd, seed=0)
cpu=time.process_time()-c0; wall=time.perf_counter()-w0
print(f"{src} rows={rows} epochs={epochs} beta {beta0}->{beta1} bs={bs}: train cpu {cpu:.1f}s wall {wall:.1f}s, epoch-seconds {ck[-1].seconds:.1f} (cpu {ck[-1].cpu_seconds:.1f}), {len(ck)} checkpoints")
rows_out=[]
for c in ck:
    m = hgq.load_checkpoint(c.path)
    tr = hgq.trace_hgq(m, d.x_train)
    co = hgq.hgq_costs(m, d.x_train, tr)
    kl = hgq.keras_logits(m, d.x_test); ll = hgq.logic_logits(tr, d.x_test)
    auc = hgq.test_metrics(kl, d.y_test, d.class_names)['auc']
    rows_out.append(dict(epochs=c.epochs, val_auc=c.val_auc, test_auc=auc, exact=bool(np.array_equal(kl, ll)), **{k: co[k] for k in ('luts','latency','ebops_hgq','ebops','bops')}))
for r in rows_out: print(r)
ok=[r['luts'] for r in rows_out if r['test_auc']>=0.85]
print("min LUTs at test AUC>=0.85:", min(ok) if ok else None, " best test auc at <=2000 LUTs:", max([r['test_auc'] for r in rows_out if r['luts']<=2000], default=None), " all exact:", all(r['exact'] for r in rows_out))
json.dump(rows_out, open(wd+'/measure.json','w'))
