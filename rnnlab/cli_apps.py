"""The ``rnnlab`` subcommands that use a trained run directory: eval, predict (caption, transcribe), complete,
translate. Each is ``(add_arguments(parser), run(args, overrides) -> exit code)``, registered in
``rnnlab.cli.COMMANDS``; ``[--step N | --best]`` picks the checkpoint of each.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", required=True)
    add_checkpoint(p, "the one training tested: --best if the run has train.best_metric, else the latest")
    p.add_argument("--eval_batches", type=int, default=None, help="0 = the whole split")
    p.add_argument(
        "--split",
        default="test",
        help="test (default; metrics test/...), validation (eval/..., what model selection saw) or train",
    )


def add_checkpoint(p: argparse.ArgumentParser, default: str = "the latest") -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--step", type=int, default=None, help=f"checkpoint step (default: {default})")
    g.add_argument("--best", action="store_true", help="the best checkpoint by train.best_metric")


def checkpoint_step(args) -> int | str | None:
    """``--step N`` / ``--best`` -> the ``step`` of ``rnnlab.apps.runs.load_run``."""
    return "best" if getattr(args, "best", False) else args.step


def run_eval(args, overrides) -> int:
    from rnnlab.apps.runs import evaluate_run

    result = evaluate_run(
        args.workdir, step=checkpoint_step(args), eval_batches=args.eval_batches, split=args.split
    )
    print(json.dumps(result, indent=1, sort_keys=True))
    return 0


# --------------------------------------------------------------------------------------------------------
# predict (rnnlab.apps.predict)


def add_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "texts",
        nargs="*",
        metavar="INPUT",
        help="texts to classify (prints P(positive) for a binary classifier) or tag (whitespace tokens; "
        "prints token/TAG); files for runs on images or frames: PNG / .npy images to caption, .npy frames "
        "[T, D] or images to transcribe (CTC), .npy clips [T, H, W] to classify; none: one per stdin line",
    )
    p.add_argument("--workdir", required=True)
    add_checkpoint(p)
    p.add_argument("--beam", type=int, default=0, help="captioning / CTC: beam size (0 = greedy)")
    p.add_argument("--grid", default=None, help="captioning: write test images with their captions here")
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="print the application score on --split as JSON: entity P/R/F1 (taggers), MSE/MAE vs naive "
        "and seasonal-naive forecasts (forecasters), accuracy vs majority class (classifiers), label "
        "error rates (CTC), exact match / BLEU (captioning) next to trivial baselines",
    )
    p.add_argument("--split", default="test", help="split for --evaluate (default: test)")


def run_predict(args, overrides) -> int:
    from rnnlab.apps import figures, predict
    from rnnlab.apps.runs import load_run

    if args.evaluate or args.grid:
        if args.texts:
            raise ValueError("--evaluate and --grid take no INPUT")
        if args.grid:
            print(
                figures.caption_grid(
                    load_run(args.workdir, checkpoint_step(args)), args.grid, beam_size=args.beam
                )
            )
            return 0
        result = predict.evaluate_app(
            args.workdir, split=args.split, step=checkpoint_step(args), beam_size=args.beam
        )
        print(json.dumps(result, indent=1, sort_keys=True))
        return 0
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    run = load_run(args.workdir, checkpoint_step(args))
    for line in predict.predict_lines(run, texts, beam_size=args.beam):
        print(line)
    return 0


# --------------------------------------------------------------------------------------------------------
# complete / translate (rnnlab.apps.generate)


def add_complete(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", help="text to continue")
    p.add_argument("--workdir", required=True, help="a language-model run")
    p.add_argument("--length", type=int, default=200, help="tokens to generate")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    p.add_argument(
        "--top-k", "--top_k", dest="top_k", type=int, default=0, help="the k likeliest tokens; 0: all"
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    add_checkpoint(p)


def run_complete(args, overrides) -> int:
    from rnnlab.apps import generate
    from rnnlab.apps.runs import load_run

    run = load_run(args.workdir, checkpoint_step(args))
    kwargs = {"length": args.length, "temperature": args.temperature, "top_k": args.top_k, "seed": args.seed}
    continuation = generate.complete(run, args.prompt, **kwargs)
    print(args.prompt + ("" if run.task.vocab.level == "char" else " ") + continuation)
    return 0


def add_translate(p: argparse.ArgumentParser) -> None:
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to translate (none: one per stdin line)")
    p.add_argument("--workdir", required=True, help="a seq2seq run")
    p.add_argument("--beam", type=int, default=0, help="beam size (0 = greedy)")
    add_checkpoint(p)
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="print exact match / BLEU and sacreBLEU (greedy and --beam, default 4) on the test split next "
        "to the copy, most-frequent and nearest-neighbour baselines, as JSON",
    )


def run_translate(args, overrides) -> int:
    from rnnlab.apps import generate
    from rnnlab.apps.runs import load_run

    run = load_run(args.workdir, checkpoint_step(args))
    if args.evaluate:
        result = generate.evaluate_translation(run, beam_size=args.beam or 4)
        print(json.dumps(result, indent=1, sort_keys=True))
        return 0
    texts = args.texts or [line.strip() for line in sys.stdin if line.strip()]
    for out in generate.translate(run, texts, beam_size=args.beam):
        print(out)
    return 0
