"""The item-item regression source alone (a sequence model's share 1) on the validation targets, over its l2, text
weight and recency decay: how the regression behind ``item_item_decays`` behaves before any blend.

    .venv/bin/python bench/item_item_recency.py --config configs/amazon-scientific/fusionrec-seq.yaml \
        --l2 20,50,100,200 --text-weight 10,20,40 --decays 1,0.9,0.8,0.7

The validation history is the ordered training sequence (the newest item last); the user's training items are
excluded from the ranking unless ``--every-item``. Prints one row per (l2, text weight), one NDCG@10 per decay.
No training: each row is one closed-form fit.
"""

from __future__ import annotations

import argparse

from fusionrec.util.threads import configure_threads

configure_threads()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fusionrec.config import load_config  # noqa: E402
from fusionrec.data.user_sequences import UserSequences  # noqa: E402
from fusionrec.evaluation.evaluator import Evaluator  # noqa: E402
from fusionrec.jobs.experiment import model_inputs, prepare_data  # noqa: E402
from fusionrec.models.item_item_source import ItemItemSource  # noqa: E402


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="a config with a text: section (for the text weight)")
    p.add_argument("--l2", type=_floats, default=[50.0])
    p.add_argument("--text-weight", type=_floats, default=[20.0])
    p.add_argument("--decays", type=_floats, default=[1.0, 0.9, 0.8, 0.7])
    p.add_argument("--max-length", type=int, default=50, help="the most recent items read, as the model's")
    p.add_argument("--every-item", action="store_true", help="rank the user's own items too")
    args = p.parse_args(argv)
    cfg = load_config(args.config, ["training.progress=false"])
    prepared = prepare_data(cfg, lambda _: None)
    inputs = model_inputs(cfg, prepared, {"text", "sequences"}, log=lambda _: None)
    split = prepared.split
    windows = torch.from_numpy(UserSequences.from_interactions(split.train).last(
        np.arange(inputs.n_users), args.max_length))
    evaluator = Evaluator(ks=(10,), metrics=("ndcg",))
    exclude = None if args.every_item else split.train.to_csr()
    print("| l2 | text weight | " + " | ".join(f"decay {d:g}" for d in args.decays) + " |")
    print("|---:|---:|" + "---:|" * len(args.decays))
    for l2 in args.l2:
        for text_weight in args.text_weight:
            source = ItemItemSource(inputs.n_items)
            source.fit(inputs, l2, text_weight, "bench/item_item_recency.py")
            source.share.fill_(1.0)  # the regression alone
            cells = []
            for decay in args.decays:
                source.decay.fill_(decay)

                def score(users: torch.Tensor) -> torch.Tensor:
                    return source.mix(torch.zeros(len(users), inputs.n_items), windows[users])

                cells.append(evaluator.evaluate(score, split.valid, exclude)["ndcg@10"])
            print(f"| {l2:g} | {text_weight:g} | " + " | ".join(f"{float(c):.4f}" for c in cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
