#!/usr/bin/env bash
# `fusionrec ablate` on each dataset (docs/benchmarks.md, "Ablation on each dataset"): FusionRec's sources on and
# off (id, text, KG) and the knowledge group (+ item-item regression, its CF-only control, + the users' fields,
# + the social graph; rows the dataset cannot feed are skipped), three seeds each. DATASET=ml-100k|amazon; one torch
# thread; from the project root.
set -euo pipefail
DATASET=${DATASET:-ml-100k}
OUT=${OUT:-bench/out/ablate-$DATASET}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# the tables were measured before the shipped configs took the item-item source on: the base here is without it
A="--variants sources,knowledge --seeds 2020,2021,2022 --set training.progress=false --quiet --set model.params.item_item=false"
if [ "$DATASET" = ml-100k ]; then
  # the item-item source with ease.yaml's tuned l2 (400, FusionRec's default) and text weight 20
  .venv/bin/fusionrec ablate --config configs/ml-100k/fusionrec.yaml $A \
      --set model.params.item_item_text_weight=20 --out "$OUT"
else
  # amazon-scientific's ease.yaml: l2 50, text weight 20
  .venv/bin/fusionrec ablate --config configs/amazon-scientific/fusionrec.yaml $A \
      --set model.params.item_item_l2=50 --set model.params.item_item_text_weight=20 --out "$OUT"
fi
