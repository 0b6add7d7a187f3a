#!/usr/bin/env bash
# The cold path chosen on validation, five cold-item splits per dataset (docs/benchmarks.md, "Cold items: the scale
# chosen on validation"): FusionRec with cold_path neighbours and cold_warm_tolerance .02 (the cold scale chosen on
# each split's validation) against content-knn (its k chosen on the same validations), then bench/cold_warm_price.py
# for the warm lists' price. DATASET=ml-100k|amazon; one torch thread per run; from the project root.
set -euo pipefail
PY=${PY:-.venv/bin/python}
DATASET=${DATASET:-ml-100k}
OUT=${OUT:-bench/out/cold-choice-$DATASET}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
S="--seeds 2020,2021,2022,2023,2024 --vary-split --set training.progress=false"
M="--metrics cold_items/recall@20,cold_items/ndcg@10,warm_items/ndcg@10,warm_items/recall@20,recall@20"
CHOOSE="--set model.params.cold_warm_tolerance=0.02"

if [ "$DATASET" = ml-100k ]; then
  # the shipped cold configs (their search is in the configs); content-knn's k was chosen on this split's validation
  $PY bench/seeds.py --configs configs/ml-100k --models content-knn-cold $S $M --out "$OUT"
  $PY bench/seeds.py --configs configs/ml-100k --models fusionrec-cold-neighbours $S $M $CHOOSE --out "$OUT"
  FUSION=fusionrec-cold-neighbours KNN=content-knn-cold
else
  # amazon-scientific: the leave-one-out files re-split by item (20 % of the items and every row of theirs held out;
  # the test history is train, as the cold split requires)
  COLD="--set split.method=cold_items --set split.test_history=train --set split.cold_share=0.2 \
        --set evaluation.ks=[10,20] --set training.valid_metric=cold_items/recall@20"
  for k in 5 20 100; do  # content-knn's k, chosen on the five validations (mean cold Recall@20)
    $PY bench/seeds.py --configs configs/amazon-scientific --models content-knn $S $M $COLD \
        --set model.params.k=$k --out "$OUT/knn-k$k"
  done
  best=$($PY - "$OUT" <<'PYEOF'
import json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
def valid(k):
    runs = sorted((out / f"knn-k{k}" / "content-knn").glob("seed-*/results.json"))
    return statistics.fmean(json.loads(p.read_text())["metrics"]["valid"]["cold_items/recall@20"] for p in runs)
print(max((5, 20, 100), key=valid))
PYEOF
)
  echo "content-knn: k $best chosen on validation"
  mkdir -p "$OUT" && rm -rf "$OUT/content-knn" && cp -r "$OUT/knn-k$best/content-knn" "$OUT/content-knn"
  # FusionRec as shipped for amazon (id + text, cosine, full softmax), borrowing for cold items, the held-out items
  # never drawn as negatives, early-stopped on every valid target (the whole list), the scale chosen on validation
  $PY bench/seeds.py --configs configs/amazon-scientific --models fusionrec $S $M $COLD $CHOOSE \
      --set training.valid_metric=recall@20 --set training.neg_pool=trained \
      --set model.params.cold_path=neighbours --set model.params.cold_neighbours=50 \
      --set model.params.cold_temperature=0.1 --out "$OUT"
  FUSION=fusionrec KNN=content-knn
fi
$PY bench/cold_warm_price.py --runs "$OUT" --model $FUSION --knn-runs "$OUT" --knn-model $KNN --out "$OUT/price.json"
