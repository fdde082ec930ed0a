"""Local model throughput: normlab's `local/...` provider through LiteLLM against raw llama-cpp-python.

Both generate from the same GGUF file with the same llama.cpp settings (normlab's), the same
prompt, the same max_tokens, temperature 0 and a fixed seed, interleaved call by call so
that machine noise hits both alike. normlab's figure includes everything a caller pays:
LiteLLM's request handling, the provider, the hop to the model's worker thread, and the
response objects. Prints tokens/s of each and their ratio (target: at least 0.9), and the
median of the per-repetition ratios, which a neighbour's burst of CPU use moves less, and
the fixed cost per call that normlab adds (measured on 1-token replies).

    python benchmarks/models_local.py                     # SmolLM2-135M, 128 tokens, 5 repetitions
    python benchmarks/models_local.py --model ~/m.gguf --reps 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from normlab.models.local import llama_settings, resolve_model_path
from normlab.models.providers import litellm

PROMPT = [{"role": "user", "content": "Write a short story about a robot who learns to share."}]


async def bench(model: str = "smollm2-135m", max_tokens: int = 128, reps: int = 5, seed: int = 1) -> dict[str, float]:
    """Measure, print, and return the figures (benchmarks/models.py reuses this)."""
    from llama_cpp import Llama

    path = resolve_model_path(model)
    settings = llama_settings()
    raw = Llama(model_path=str(path), **settings)
    lm = litellm()
    params = {"max_tokens": max_tokens, "temperature": 0.0, "seed": seed}

    async def through_normlab() -> tuple[int, float, str]:
        started = time.perf_counter()
        response = await lm.acompletion(model=f"local/{model}", messages=PROMPT, num_retries=0, **params)
        return response.usage.completion_tokens, time.perf_counter() - started, response.choices[0].message.content

    def through_raw() -> tuple[int, float, str]:
        started = time.perf_counter()
        response = raw.create_chat_completion(messages=PROMPT, **params)
        seconds = time.perf_counter() - started
        return response["usage"]["completion_tokens"], seconds, response["choices"][0]["message"]["content"]

    await through_normlab()  # loads the model and warms LiteLLM
    through_raw()
    totals = {"normlab": [0, 0.0], "raw": [0, 0.0]}
    pair_ratios = []
    same_text = True
    for rep in range(reps):
        order = ("normlab", "raw") if rep % 2 == 0 else ("raw", "normlab")
        texts, pair = {}, {}
        for which in order:
            tokens, seconds, texts[which] = await through_normlab() if which == "normlab" else through_raw()
            totals[which][0] += tokens
            totals[which][1] += seconds
            pair[which] = tokens / seconds
        pair_ratios.append(pair["normlab"] / pair["raw"])
        same_text = same_text and texts["normlab"] == texts["raw"]

    # the fixed cost of a call, which 128 tokens spread thin: 1-token replies, median of many
    overhead = {"normlab": [], "raw": []}
    short = {**params, "max_tokens": 1}
    for _ in range(30):
        started = time.perf_counter()
        await lm.acompletion(model=f"local/{model}", messages=PROMPT, num_retries=0, **short)
        overhead["normlab"].append(time.perf_counter() - started)
        started = time.perf_counter()
        raw.create_chat_completion(messages=PROMPT, **short)
        overhead["raw"].append(time.perf_counter() - started)
    extra_ms = (statistics.median(overhead["normlab"]) - statistics.median(overhead["raw"])) * 1e3

    rate = {which: tokens / seconds for which, (tokens, seconds) in totals.items()}
    print(f"model: local/{model} ({path.name}), threads {settings['n_threads']}, gpu layers {settings['n_gpu_layers']}")
    print(f"{reps} x {max_tokens} tokens each, temperature 0, seed {seed}, interleaved; same text: {same_text}")
    print(f"raw llama-cpp-python : {rate['raw']:8.1f} tokens/s")
    print(f"normlab (LiteLLM)    : {rate['normlab']:8.1f} tokens/s")
    print(f"ratio                : {rate['normlab'] / rate['raw']:8.3f}   (target >= 0.9)")
    print(f"median ratio of pairs: {statistics.median(pair_ratios):8.3f}   (less sensitive to a busy machine)")
    print(f"fixed cost per call  : {extra_ms:8.2f} ms more than raw (1-token replies, median of 30)")
    return {
        "raw_tokens_per_s": rate["raw"],
        "normlab_tokens_per_s": rate["normlab"],
        "ratio": rate["normlab"] / rate["raw"],
        "median_pair_ratio": statistics.median(pair_ratios),
        "overhead_ms": extra_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="local model name or .gguf path")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(bench(args.model, args.max_tokens, args.reps, args.seed))


if __name__ == "__main__":
    main()
