#!/usr/bin/env bash
# The sequential figures of docs/benchmarks.md ("Sequential recommendation"), one command after another, from the
# project root, alone on the machine (each run one torch thread). amazon-scientific: ../shared/datasets/amazon-scientific.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-bench/out/sequential}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
M="ndcg@10,recall@10,ndcg@50,recall@50"
# steps 1-3 were measured with the encoder shipped first (pre-norm blocks, dropout .3); step 4 with today's (post, .5);
# steps 1-4 with fusionrec-seq's item-item history as a bag of items (BAG; BAGS for bench/seeds.py, which runs other
# models beside it), step 5 with the recency decays shipped
BAG="--set model.params.item_item_decays=[1.0]"
BAGS="--model-set fusionrec-seq:model.params.item_item_decays=[1.0]"
PRE="--set model.params.norm=pre --set model.params.dropout=0.3"

# 0. The SASRec search of "What was searched" (seed 2020, selection on valid NDCG@10): dropout / batch / lr with
#    the pre-norm blocks, then the post-norm blocks (norm: post) over dropout.
for run in "pre 0.3 256 0.001 15" "pre 0.3 256 0.003 15" "pre 0.5 2048 0.001 9" "pre 0.3 256 0.001 200" \
           "pre 0.5 256 0.001 200" "pre 0.2 128 0.001 200" "post 0.3 256 0.001 200" "post 0.5 256 0.001 200" \
           "post 0.7 256 0.001 200"; do
  set -- $run
  .venv/bin/fusionrec train --config configs/amazon-scientific/sasrec.yaml --set model.params.norm=$1 \
      --set model.params.dropout=$2 --set training.batch_size=$3 --set training.lr=$4 --set training.epochs=$5 \
      --quiet --out $OUT/sasrec-search/$1-d$2-b$3-lr$4-e$5
done

# 1. Warm accuracy under the published protocol, three seeds each.
$PY bench/seeds.py --configs configs/amazon-scientific --models sasrec,fusionrec-seq --seeds 2020,2021,2022 \
    --metrics $M --set training.progress=false $PRE $BAGS --out $OUT/seeds

# 2. Inductive: 20 % of the items held out of training (cold_items split), text only vs content-knn.
COLD="--set split.method=cold_items --set split.test_history=train --set split.cold_share=0.2 \
      --set evaluation.ks=[10,20] --set training.valid_metric=cold_items/recall@20 --set training.progress=false"
$PY bench/seeds.py --configs configs/amazon-scientific --models content-knn --seeds 2020,2021,2022 --vary-split \
    --metrics cold_items/recall@20,cold_items/ndcg@10,warm_items/ndcg@10 $COLD --out $OUT/cold-knn
for pool in all trained; do  # trained: items without training interactions are never negatives
  $PY bench/seeds.py --configs configs/amazon-scientific --models fusionrec-seq --seeds 2020 --vary-split \
      --metrics cold_items/recall@20,cold_items/ndcg@10,warm_items/ndcg@10 $COLD --set model.params.use_id=false \
      --set model.params.item_item=false --set training.epochs=30 --set training.neg_pool=$pool $PRE \
      --out $OUT/cold-fseq-text-$pool
done

# 3. Transfer: the text-only model pretrained on ml-100k (titles, year, genres), then on amazon-scientific as it is
#    (zero-shot), fine-tuned, and trained from scratch (text only).
.venv/bin/fusionrec pretrain --config configs/ml-100k/fusionrec-seq.yaml --set training.epochs=10 --quiet $PRE \
    --out $OUT/pre-ml100k
for how in zero-shot fine-tune scratch; do
  case $how in
    zero-shot) extra="--set model.init_from=$OUT/pre-ml100k/model --set training.epochs=0" ;;
    fine-tune) extra="--set model.init_from=$OUT/pre-ml100k/model --set training.epochs=15" ;;
    scratch) extra="--set training.epochs=15" ;;
  esac
  .venv/bin/fusionrec train --config configs/amazon-scientific/fusionrec-seq.yaml --set model.params.use_id=false \
      --set model.params.item_item=false --quiet $extra $PRE --out $OUT/transfer-$how
done

# 4. "Post-norm blocks, and the two ranking protocols": fusionrec-seq's encoder checked on validation (seed 2020; the
#    post / .5 run is seed 2020 of seeds-post), the ml-100k SASRec check behind configs/ml-100k/sasrec.yaml, then the
#    shipped encoder under fusionrec's ranking and with every item ranked.
.venv/bin/fusionrec train --config configs/amazon-scientific/fusionrec-seq.yaml --set model.params.dropout=0.3 \
    --set training.progress=false $BAG --quiet --out $OUT/fseq-post-d0.3
for run in "pre 0.3" "post 0.3" "post 0.5"; do
  set -- $run
  .venv/bin/fusionrec train --config configs/ml-100k/sasrec.yaml --set model.params.norm=$1 \
      --set model.params.dropout=$2 --set training.progress=false --quiet --out $OUT/ml100k-sasrec-$1-d$2
done
$PY bench/seeds.py --configs configs/amazon-scientific --models sasrec,fusionrec-seq --seeds 2020,2021,2022 \
    --metrics $M --set training.progress=false $BAGS --out $OUT/seeds-post
for m in ease ease-cf; do  # deterministic: one run each
  .venv/bin/fusionrec train --config configs/amazon-scientific/$m.yaml --set evaluation.exclude_seen=false --quiet \
      --out $OUT/every-item-$m
done
$PY bench/seeds.py --configs configs/amazon-scientific --models sasrec,fusionrec-seq,fusionrec \
    --seeds 2020,2021,2022 --metrics $M --set training.progress=false --set evaluation.exclude_seen=false $BAGS \
    --out $OUT/seeds-post-every-item
$PY bench/compare_recbole_sasrec.py --epochs 200 --threads 1 --batch-size 256 --lr 0.001 --dropout 0.5 \
    --out bench/out/compare-recbole-sasrec-conv-d5

# 5. "The item-item history by recency" (and "Three seeds on each side"): the regression alone on validation over
#    l2 / text weight / decay under both rankings (no training); fusionrec-seq as shipped (the recency decays chosen
#    on validation with the share) under fusionrec's ranking, and under every-item ranking with the item-item l2 /
#    text weight that ranking's validation chose (EASE with text re-tuned the same way); SASRec with d 300
#    (UniSRec's width), seed 2020; RecBole's SASRec at two more seeds.
for extra in "" "--every-item"; do
  $PY bench/item_item_recency.py --config configs/amazon-scientific/fusionrec-seq.yaml --l2 20,50,100,200 \
      --text-weight 10,20,40 --decays 1,0.9,0.8,0.7,0.6,0.5 $extra
done
$PY bench/item_item_recency.py --config configs/amazon-scientific/fusionrec-seq.yaml --l2 200,400,800,1600 \
    --text-weight 5,10,20 --decays 1,0.8,0.7,0.6 --every-item
$PY bench/seeds.py --configs configs/amazon-scientific --models fusionrec-seq --seeds 2020,2021,2022 --metrics $M \
    --set training.progress=false --out $OUT/seeds-recency-seen-excluded
EVERY="--set evaluation.exclude_seen=false"
$PY bench/seeds.py --configs configs/amazon-scientific --models fusionrec-seq --seeds 2020,2021,2022 --metrics $M \
    --set training.progress=false $EVERY --out $OUT/seeds-recency-every-item-l2-50
$PY bench/seeds.py --configs configs/amazon-scientific --models fusionrec-seq --seeds 2020,2021,2022 --metrics $M \
    --set training.progress=false $EVERY --set model.params.item_item_l2=800 \
    --set model.params.item_item_text_weight=10 --out $OUT/seeds-recency-every-item-l2-800
.venv/bin/fusionrec train --config configs/amazon-scientific/ease.yaml --set model.params.l2=400 \
    --set model.params.text_weight=10 $EVERY --quiet --out $OUT/every-item-ease-l2-400
.venv/bin/fusionrec train --config configs/amazon-scientific/sasrec.yaml --set model.params.embedding_size=300 \
    $EVERY --set training.progress=false --quiet --out $OUT/sasrec-d300-every-item
for run in seeds-recency-seen-excluded seeds-recency-every-item-l2-50 seeds-recency-every-item-l2-800; do
  $PY bench/settings_on_test.py --config configs/amazon-scientific/fusionrec-seq.yaml \
      --runs $OUT/$run/fusionrec-seq/seed-2020
done
# RecBole's SASRec at two more seeds ("Three seeds on each side"; fusionrec's side: seeds-post-every-item above)
for seed in 2021 2022; do
  $PY bench/compare_recbole_sasrec.py --epochs 200 --threads 1 --batch-size 256 --lr 0.001 --dropout 0.5 \
      --seed $seed --sides recbole --out bench/out/compare-recbole-sasrec-conv-d5-seed$seed
done
