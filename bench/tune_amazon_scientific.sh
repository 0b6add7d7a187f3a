#!/usr/bin/env bash
# The searched space of configs/amazon-scientific/*.yaml, selected on VALIDATION NDCG@10 (bench/sweep.py marks the
# best), seed 2020. Each model got its knobs on a grid, and where the best sat on the grid's edge the grid went one
# step further (the extensions are the second line of each model below): the trainable models (bpr, lightgcn,
# fusionrec) lr x temperature of the full softmax on cosine scores (the knobs tuned on ml-100k), six settings each;
# EASE l2 (and text_weight); content-knn k (aggregate sum = mean: a per-user scale does not change a ranking); pop
# none. Run from the project root, nothing else running:
#   bash bench/tune_amazon_scientific.sh bench/out/tune-amazon
set -euo pipefail
out=${1:-bench/out/tune-amazon}
py=${PYTHON:-.venv/bin/python}
C=configs/amazon-scientific
export OMP_NUM_THREADS=1 FUSIONREC_THREADS=1
sweep() { $py bench/sweep.py "$@"; }
sweep --config $C/ease-cf.yaml --grid model.params.l2=25,50,100,200,400,800 --out $out/ease-cf
sweep --config $C/ease.yaml --grid model.params.l2=50,200,400 --grid model.params.text_weight=5,20 --out $out/ease
sweep --config $C/ease.yaml --grid model.params.l2=25,50 --grid model.params.text_weight=20,50 --out $out/ease-ext
sweep --config $C/content-knn.yaml --grid model.params.k=50,200,1000 --grid model.params.aggregate=sum,mean \
  --out $out/content-knn
sweep --config $C/content-knn.yaml --grid model.params.k=5,10,20 --out $out/content-knn-ext
for m in bpr lightgcn fusionrec; do
  sweep --config $C/$m.yaml --grid training.lr=0.002,0.005 --grid training.temperature=0.1,0.2,0.3 --out $out/$m
done
