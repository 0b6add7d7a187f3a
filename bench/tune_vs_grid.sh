#!/usr/bin/env bash
# fusionrec tune against the grid that chose configs/ml-100k/bpr.yaml, one after the other, alone on the machine
# (one torch thread each): the grid (temperature x lr, 6 runs, bench/sweep.py) and `fusionrec tune` with 20 trials
# over configs/ml-100k/spaces/bpr.yaml, killed with SIGKILL after KILL_AFTER seconds and run again to finish (the
# resume). PRUNER (default halving: the default of `fusionrec tune`; median was the first default) picks the pruner.
# Wall times from `date +%s.%N`; the best validation NDCG@10 of each from their own outputs.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-bench/out/tune-vs-grid}
KILL_AFTER=${KILL_AFTER:-150}
PRUNER=${PRUNER:-halving}
export OMP_NUM_THREADS=1
rm -rf "$OUT" && mkdir -p "$OUT"
t0=$(date +%s.%N)
$PY bench/sweep.py --config configs/ml-100k/bpr.yaml --grid training.temperature=0.15,0.2,0.3 \
    --grid training.lr=0.002,0.005 --out "$OUT/grid" > "$OUT/grid.log" 2>&1
t1=$(date +%s.%N)
set +e
timeout -s KILL "$KILL_AFTER" .venv/bin/fusionrec tune --config configs/ml-100k/bpr.yaml \
    --space configs/ml-100k/spaces/bpr.yaml --trials 20 --pruner "$PRUNER" --out "$OUT/tune" --quiet > "$OUT/tune-1.log" 2>&1
echo "first tune call exited $? (137: killed)" >> "$OUT/tune-1.log"
set -e
t2=$(date +%s.%N)
.venv/bin/fusionrec tune --config configs/ml-100k/bpr.yaml --space configs/ml-100k/spaces/bpr.yaml --trials 20 \
    --pruner "$PRUNER" --out "$OUT/tune" --quiet > "$OUT/tune-2.log" 2>&1
t3=$(date +%s.%N)
python3 - "$OUT" "$t0" "$t1" "$t2" "$t3" <<'PYEOF'
import json, sys
out, t0, t1, t2, t3 = sys.argv[1], *map(float, sys.argv[2:])
grid = json.load(open(f"{out}/grid/sweep.json"))
rows = grid["rows"] if isinstance(grid, dict) and "rows" in grid else grid
best_grid = max(r["valid"] for r in rows)
tune = json.load(open(f"{out}/tune/tune.json"))
summary = {"grid_wall_s": t1 - t0, "grid_runs": len(rows), "grid_best_valid": best_grid,
           "tune_wall_s_killed_call": t2 - t1, "tune_wall_s_resumed_call": t3 - t2, "tune_wall_s": t3 - t1,
           "tune_best_valid": tune["best"]["value"], "tune_counts": tune["counts"], "tune_best": tune["best"]}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(json.dumps(summary, indent=2))
PYEOF
