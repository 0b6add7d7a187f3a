#!/usr/bin/env bash
# The knowledge-that-pays figures of docs/benchmarks.md ("Knowledge that pays"): FusionRec with the item-item
# source (its share chosen on validation), with and without the knowledge sources, and fusionrec-seq's CF-only
# control on amazon-scientific; three seeds each, from the project root (each run one torch thread).
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-bench/out/k14}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
S="--seeds 2020,2021,2022 --set training.progress=false"
II="--set model.params.item_item=true"

# ml-100k (random 8:1:1): FusionRec + item-item with text in its Gram (ease.yaml's l2 400, text weight 20) ...
$PY bench/seeds.py --configs configs/ml-100k --models fusionrec $S $II --set model.params.item_item_text_weight=20 \
    --out $OUT/ml100k-fusionrec-ii-text
# ... its CF-only control (no text source, no text in the Gram: LightGCN + EASE, the share chosen the same way) ...
$PY bench/seeds.py --configs configs/ml-100k --models fusionrec $S $II --set model.params.use_text=false \
    --out $OUT/ml100k-fusionrec-ii-cf
# ... and with the users' own fields (ml-100k.user: age, gender, occupation, zip code) as a source.
$PY bench/seeds.py --configs configs/ml-100k --models fusionrec $S $II --set model.params.item_item_text_weight=20 \
    --set model.params.use_user_features=true --out $OUT/ml100k-fusionrec-ii-text-user

# amazon-scientific (leave-one-out, test history = train + valid): fusionrec-seq's CF-only control (no text source,
# no text in the item-item Gram: SASRec + EASE).
$PY bench/seeds.py --configs configs/amazon-scientific --models fusionrec-seq $S \
    --metrics ndcg@10,recall@10,ndcg@50,recall@50 --set model.params.use_text=false \
    --set model.params.item_item_text_weight=0 --out $OUT/fseq-cf-only
# ... and the graph FusionRec with the item-item source (text in its Gram: ease.yaml's l2 50, text weight 20).
$PY bench/seeds.py --configs configs/amazon-scientific --models fusionrec $S \
    --metrics ndcg@10,recall@10,ndcg@50,recall@50 --set model.params.item_item=true \
    --set model.params.item_item_l2=50 --set model.params.item_item_text_weight=20 \
    --out $OUT/amazon-fusionrec-ii-text
# ... and the same with text as the items' base representation (no id vector: use_id false).
$PY bench/seeds.py --configs configs/amazon-scientific --models fusionrec $S \
    --metrics ndcg@10,recall@10,ndcg@50,recall@50 --set model.params.use_id=false --set model.params.item_item=true \
    --set model.params.item_item_l2=50 --set model.params.item_item_text_weight=20 \
    --out $OUT/amazon-fusionrec-textbase-ii
