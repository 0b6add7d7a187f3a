"""Other ways to speed up the ONNX text encoder, measured against the torch path in one run: ONNX Runtime's
transformer optimizer (BERT fusions) before int8, int8 at several batch sizes, and uint8 weights without per-channel
scales. The shipped backends are in bench/encode_speed.py; this script records what was tried beside them.

    .venv/bin/python bench/onnx_variants.py [--batch-sizes 8,16,32,64,256] [--out bench/out/onnx-variants]

ml-100k's distinct item texts (the shipped template), encoded by each variant twice (the faster run counts) with
both cores; cosine to the torch fp32 vectors, item by item. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from fusionrec.config import DatasetConfig, TextConfig
from fusionrec.data.loading import load_dataset
from fusionrec.knowledge.text import item_texts, make_encoder
from fusionrec.util.provenance import machine

TEMPLATE = "{movie_title} ({release_year}). Genres: {class}."


def best_of_two(fn):
    best, out = float("inf"), None
    for _ in range(2):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", default="8,16,32,64,256")
    p.add_argument("--out", default="bench/out/onnx-variants")
    args = p.parse_args(argv)
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    out = Path(args.out)
    texts, mask = item_texts(load_dataset(DatasetConfig(name="ml-100k")), TEMPLATE)
    texts = list(dict.fromkeys(texts[i] for i in np.flatnonzero(mask)))
    onnx = make_encoder(TextConfig(template=TEMPLATE, backend="onnx", onnx_dir=str(out / "export")))
    onnx.dim  # exports (or reuses) the fp32 model
    fp32 = onnx.folder / "model.onnx"
    torch_encoder = make_encoder(TextConfig(template=TEMPLATE))
    torch_s, ref = best_of_two(lambda: torch_encoder.encode(texts))
    ref = unit(ref)
    fused = optimize_model(str(fp32), model_type="bert", num_heads=12, hidden_size=384, opt_level=0)
    fused.save_model_to_file(str(out / "fused.onnx"))
    variants = {"int8": (fp32, QuantType.QInt8, True, ["MatMul", "Gemm"]),
                "fused-int8": (out / "fused.onnx", QuantType.QInt8, True, ["MatMul", "Gemm", "Attention"]),
                "uint8-per-tensor": (fp32, QuantType.QUInt8, False, ["MatMul", "Gemm"])}
    print(f"machine: {machine()}; {len(texts)} texts; torch: {torch_s:.2f} s, {len(texts) / torch_s:.0f} items/s")
    print(f"fused operators: {fused.get_fused_operator_statistics()}")
    print("\n| variant | batch | items/s | x torch | cosine mean | cosine min |\n|---|---:|---:|---:|---:|---:|")
    for name, (source, weight_type, per_channel, ops) in variants.items():
        path = out / f"{name}.onnx"
        quantize_dynamic(str(source), str(path), weight_type=weight_type, per_channel=per_channel,
                         op_types_to_quantize=ops, extra_options={"DefaultTensorType": 1})
        onnx._session = onnx._open_session(path)  # the exported encoder's tokenizer and pooling, another graph
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            onnx.batch_size = batch
            seconds, vectors = best_of_two(lambda: onnx._run(texts))
            cos = (unit(vectors) * ref).sum(axis=1)
            print(f"| {name} | {batch} | {len(texts) / seconds:.0f} | {torch_s / seconds:.2f} | {cos.mean():.4f} | "
                  f"{cos.min():.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
