"""Figures of what a trained run does, written into its run directory (``RUN/figures/*.png``), where
``rnnlab report`` picks them up: test images with their generated captions, and Luong attention weights of a
translation model over a few test sentences. Also the image reading behind ``rnnlab caption`` and
``rnnlab transcribe``.

    write_figures('runs/captions')     # ['runs/captions/figures/captions.png']
    caption_grid(run, 'grid.png')      # the first 16 test strips, each titled with its greedy caption
    attention_maps(run, ['Jesus wept.'], 'attention.png')

Shape legend: h x W an image, S source words, L generated words, T frames, D features.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from rnnlab.analysis.report import FIGURES
from rnnlab.apps import generate
from rnnlab.apps.runs import LoadedRun, load_run, read_config
from rnnlab.tasks.dataset_task import as_str
from rnnlab.training import builders
from rnnlab.training.loop import CHECKPOINTS
from rnnlab.training.seq2seq import BOS, EOS, max_target_length


def read_image(path: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A PNG (any mode, turned grey) or a ``.npy`` array ``[h, W]`` -> float32 pixels in [0, 1], light
    strokes on a dark ground as the digit tasks draw them (a mostly light image is inverted).

    With ``shape = (h, W)`` the image is scaled to height h (keeping its aspect ratio) and zero-padded on the
    right to width W.

    Raises:
      ValueError: not 2-D, or wider than W once scaled.
    """
    if path.endswith(".npy"):
        pixels = np.load(path).astype(np.float32)
        if pixels.size and pixels.max() > 1:
            pixels = pixels / 255.0
    else:
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("L"), np.float32) / 255.0
        if pixels.mean() > 0.5:
            pixels = 1.0 - pixels
    if pixels.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D image [h, W], got shape {pixels.shape}")
    if shape is None:
        return pixels
    h, width = shape
    if pixels.shape[0] != h:
        w = max(1, round(pixels.shape[1] * h / pixels.shape[0]))
        im = Image.fromarray(np.uint8(np.clip(pixels, 0, 1) * 255)).resize((w, h), Image.Resampling.BILINEAR)
        pixels = np.asarray(im, np.float32) / 255.0
    if pixels.shape[1] > width:
        raise ValueError(f"{path}: {pixels.shape[1]} columns at height {h}; the model reads at most {width}")
    return np.pad(pixels, ((0, 0), (0, width - pixels.shape[1])))


def read_frames(path: str, size: int) -> np.ndarray:
    """Frames ``[T, D]`` for a CTC run: a ``.npy`` array ``[T, D]`` as it is, or an image (PNG, or ``.npy``
    ``[D, W]`` with W != D) read column by column (frame t = column t, scaled to height D)."""
    if path.endswith(".npy"):
        frames = np.load(path).astype(np.float32)
        if frames.ndim == 2 and frames.shape[1] == size:
            return frames
    image = read_image(path)
    return read_image(path, (size, max(1, round(image.shape[1] * size / image.shape[0])))).T


def _grid(n: int, cols: int, cell: tuple[float, float]):
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(cols * cell[0], rows * cell[1]))
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(rows, cols, i + 1) for i in range(n)]


def caption_grid(run: LoadedRun, path: str, *, n: int = 16, split: str = "test", beam_size: int = 0) -> str:
    """A PNG of the first ``n`` images of ``split``, each titled with its generated caption (green when it
    equals the reference, red otherwise); returns ``path``."""
    batch = next(run.task.iterator(split, n, 0, num_epochs=1, shuffle=False))
    captions = generate.caption(run, batch["inputs"], beam_size=beam_size)
    refs = [run.task.target_text(t) for t in batch["targets"]]
    fig, axes = _grid(len(captions), 4, (2.6, 1.1))
    for ax, image, hyp, ref in zip(axes, batch["inputs"], captions, refs, strict=True):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(hyp or "(empty)", fontsize=8, color="green" if hyp == ref else "red")
        ax.axis("off")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _decode_step(model, variables, memory, carry, token):
    (carry, logits), state = model.apply(
        variables, memory, carry, token, method="decode_step", mutable=["intermediates"]
    )
    weights = jax.tree.leaves(state["intermediates"])[0]  # the one sown attention vector, [B, S]
    return carry, logits, weights


_jitted_decode_step = jax.jit(_decode_step, static_argnums=0)


def attention_weights(run: LoadedRun, text: str) -> tuple[list[str], list[str], np.ndarray]:
    """Greedy translation of ``text`` with its attention: ``(source words, generated words, weights [L, S])``
    (row l: where the decoder looked when it emitted word l; each row sums to 1)."""
    if run.task.info.kind != "seq2seq" or run.model.attention == "none":
        raise ValueError("attention_weights needs a seq2seq run with attention")
    inputs, lengths = generate.source_ids(run, [text])
    variables = {"params": run.params}
    memory = run.model.apply(variables, jnp.asarray(inputs), jnp.asarray(lengths), method="encode")
    carry = run.model.apply(variables, memory, method="init_decoder_carry")
    tv = run.task.target_vocab
    token, out, rows = jnp.array([tv.id(BOS)]), [], []
    for _ in range(max_target_length(run.task)):
        carry, logits, weights = _jitted_decode_step(run.model, variables, memory, carry, token)
        token = jnp.argmax(logits, -1)
        rows.append(np.asarray(weights[0]))
        if int(token[0]) == tv.id(EOS):
            out.append(EOS)
            break
        out.append(tv.tokens[int(token[0])])
    source = [run.task.vocab.tokens[i] for i in inputs[0]]
    return source, out, np.stack(rows)


def attention_maps(run: LoadedRun, texts: Sequence[str], path: str) -> str:
    """A PNG with one heat map of ``attention_weights`` per text; returns ``path``."""
    maps = [attention_weights(run, t) for t in texts]
    fig = Figure(figsize=(5.5 * len(maps), 5.0))
    FigureCanvasAgg(fig)
    for i, (src, out, w) in enumerate(maps):
        ax = fig.add_subplot(1, len(maps), i + 1)
        ax.imshow(w, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(src)), src, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(out)), out, fontsize=7)
        ax.set_xlabel("source")
        ax.set_ylabel("generated")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def write_figures(run_dir: str, *, num_sentences: int = 3) -> list[str]:
    """The figures of a trained run, written to ``run_dir/figures/``: ``captions.png`` (captioning runs),
    ``attention.png`` (seq2seq runs with attention: the first ``num_sentences`` test sources); none for
    other runs, and runs without checkpoints. Uses the best checkpoint when the run tracks one, else the
    latest. Returns the paths."""
    if not os.path.isdir(os.path.join(run_dir, CHECKPOINTS)):
        return []  # not trained (yet)
    config = read_config(run_dir)
    task = builders.load_task(config)
    kind = task.info.kind
    if kind not in ("captioning", "seq2seq") or (kind == "seq2seq" and config.model.attention == "none"):
        return []
    run = load_run(run_dir, "best" if config.train.best_metric else None, task=task)
    out_dir = os.path.join(run_dir, FIGURES)
    if kind == "captioning":
        return [caption_grid(run, os.path.join(out_dir, "captions.png"))]
    records = task.records("test")[:num_sentences]
    texts = [as_str(r[task.source_key]) for r in records]
    return [attention_maps(run, texts, os.path.join(out_dir, "attention.png"))]


__all__ = [
    "FIGURES",
    "attention_maps",
    "attention_weights",
    "caption_grid",
    "read_frames",
    "read_image",
    "write_figures",
]
