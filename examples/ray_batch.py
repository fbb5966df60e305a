"""ved on a Ray cluster: caption (or read) a folder of images as a Ray Data map over batches.

For users who already run Ray; without one, `torchrun ... -m vedcli caption` does the same job (README, Batch
runs). Each Ray worker loads the model once (`Captioner.__init__`) and reads batches of file paths; the results come
back in input order and are written as one jsonl file, rows as `ved caption --format jsonl` writes them (an unreadable
image is an error row, the rest goes on).

    pip install "ray[data]"
    python examples/ray_batch.py photos/ captions.jsonl --model nlpconnect/vit-gpt2-image-captioning --workers 2
    python examples/ray_batch.py photos/ captions.jsonl --model ./my-model --workers 4 --gpus-per-worker 1

On a cluster, start it where `ray.init()` finds the cluster (RAY_ADDRESS), with the images and the model on a file
system every node sees. Tested with ray 2.60 on one machine (tests/test_ray_example.py, which runs when ray is
installed).
"""

from __future__ import annotations

import argparse
import json

import numpy as np


class Captioner:
    """Ray Data calls it with a batch {"file": array of paths} and gets {"file", "text", "score", "error"} back."""

    def __init__(self, model: str, device: str = "auto", beams: int = 1, max_new_tokens: int | None = None):
        import vedcli

        self.pipeline = vedcli.Pipeline.load(model, device=device)
        self.options = vedcli.DecodingOptions(num_beams=beams, max_new_tokens=max_new_tokens)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import vedcli

        files = [str(f) for f in batch["file"]]
        images, errors = [], []
        for file in files:
            try:
                images.append(vedcli.open_image(file, processor=self.pipeline.processor))
                errors.append("")
            except vedcli.InputError as error:  # a bad image is a row of its own; the batch goes on
                images.append(None)
                errors.append(error.message)
        results = iter(self.pipeline.run([i for i in images if i is not None], self.options) if any(images) else [])
        texts, scores = [], []
        for image in images:
            best = next(results)[0] if image is not None else None
            texts.append(best.text if best else "")
            scores.append(best.score if best else float("nan"))
        return {"file": np.array(files), "text": np.array(texts), "score": np.array(scores), "error": np.array(errors)}


def main() -> None:
    import ray

    from vedcli.commands.inputs import iter_inputs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", help="a folder of images (searched recursively, in sorted order)")
    parser.add_argument("output", help="the jsonl file to write")
    parser.add_argument("--model", required=True)
    parser.add_argument("--workers", type=int, default=2, help="model replicas (Ray actors)")
    parser.add_argument("--gpus-per-worker", type=float, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--beams", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int)
    args = parser.parse_args()

    ray.init()
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # results in input order
    files = [item.path for item in iter_inputs([args.inputs], None)]
    dataset = ray.data.from_items([{"file": f} for f in files]).map_batches(
        Captioner,
        fn_constructor_kwargs={
            "model": args.model,
            "device": "cuda" if args.gpus_per_worker else "cpu",
            "beams": args.beams,
            "max_new_tokens": args.max_new_tokens,
        },
        batch_size=args.batch_size,
        concurrency=args.workers,
        num_gpus=args.gpus_per_worker,
    )
    with open(args.output, "w", encoding="utf-8") as out:
        for row in dataset.iter_rows():
            record = {"file": row["file"]}
            record.update({"error": row["error"]} if row["error"] else {"text": row["text"], "score": row["score"]})
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
