"""Log-mel features of a waveform in NumPy (spoken_digit's input), so no audio library is needed.

HTK mel scale, Hann-windowed frames, triangular filters: the usual front end of speech models (e.g. Graves,
Mohamed & Hinton 2013 feed log mel filterbank energies to RNNs).
"""

from __future__ import annotations

import numpy as np

SPOKEN_DIGIT_RATE = 8000


def hz_to_mel(f):
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    n_mels: int, n_fft: int, sample_rate: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular filters `[n_fft // 2 + 1, n_mels]`, equally spaced in mel between fmin and fmax."""
    fmax = sample_rate / 2 if fmax is None else fmax
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    up = (freqs[:, None] - lower[None]) / (center - lower)[None]
    down = (upper[None] - freqs[:, None]) / (upper - center)[None]
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


def log_mel_spectrogram(
    audio: np.ndarray,
    sample_rate: int,
    *,
    n_mels: int = 40,
    frame_ms: float = 25.0,
    hop_ms: float = 10.0,
    eps: float = 1e-6,
) -> np.ndarray:
    """Log mel energies of a mono waveform.

    Args:
      audio: `[N]` samples, int16 (scaled by 1/32768) or float.
      sample_rate: Hz.
      n_mels: number of mel bands (the feature size D).
      frame_ms, hop_ms: Hann-windowed frame length and step.

    Returns:
      float32 `[T, n_mels]` with T = 1 + (N - frame) // hop (at least 1; short clips are zero-padded).
    """
    x = np.asarray(audio)
    x = x.astype(np.float32) / 32768.0 if np.issubdtype(x.dtype, np.integer) else x.astype(np.float32)
    x = x.reshape(-1)
    frame = round(sample_rate * frame_ms / 1000)
    hop = round(sample_rate * hop_ms / 1000)
    if len(x) < frame:
        x = np.pad(x, (0, frame - len(x)))
    n_frames = 1 + (len(x) - frame) // hop
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop][:n_frames]
    n_fft = 1 << (frame - 1).bit_length()
    power = np.abs(np.fft.rfft(frames * np.hanning(frame).astype(np.float32), n=n_fft)) ** 2 / n_fft
    return np.log(power @ mel_filterbank(n_mels, n_fft, sample_rate) + eps).astype(np.float32)
