#!/usr/bin/env bash
# Data-parallel training on ml-100k: configs/ml-100k/bpr.yaml (and lightgcn.yaml) as shipped, one process against
# two (torchrun, gloo, one torch thread per process), seeds 2020-2022, one run after another, alone on the machine.
# Prints each run's test NDCG@10 and median s/epoch (training alone).
set -euo pipefail
OUT=${OUT:-bench/out/ddp-ml100k}
MODELS=${MODELS:-bpr lightgcn}
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
for model in $MODELS; do
  for seed in 2020 2021 2022; do
    .venv/bin/fusionrec train --config configs/ml-100k/$model.yaml --set seed=$seed --quiet \
        --out "$OUT/$model-1p-$seed" > /dev/null 2>&1
    .venv/bin/python -m torch.distributed.run --nproc_per_node 2 --master_port 29577 -m fusionrec train \
        --config configs/ml-100k/$model.yaml --set seed=$seed --quiet --out "$OUT/$model-2p-$seed" > /dev/null 2>&1
  done
done
python3 - "$OUT" $MODELS <<'PYEOF'
import json, statistics, sys
out, models = sys.argv[1], sys.argv[2:]
summary = {}
for model in models:
    for procs in ("1p", "2p"):
        runs = [json.load(open(f"{out}/{model}-{procs}-{s}/results.json")) for s in (2020, 2021, 2022)]
        ndcg = [r["metrics"]["test"]["ndcg@10"] for r in runs]
        sec = [r["timings"]["epoch_s_median"] for r in runs]
        summary[f"{model} {procs}"] = {"ndcg@10": ndcg, "mean": statistics.mean(ndcg), "sd": statistics.stdev(ndcg),
                                       "s_per_epoch": sec, "epochs": [r["timings"]["epochs"] for r in runs]}
        print(f"{model} {procs}: test NDCG@10 {statistics.mean(ndcg):.4f} +- {statistics.stdev(ndcg):.4f} "
              f"{[round(x, 4) for x in ndcg]}; s/epoch {[round(x, 3) for x in sec]}")
    one, two = summary[f"{model} 1p"], summary[f"{model} 2p"]
    print(f"{model}: 2-process / 1-process s/epoch {statistics.median(two['s_per_epoch']) / statistics.median(one['s_per_epoch']):.2f}")
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
PYEOF
