"""PyTorch's LSTM/GRU training step in a process of its own, with glibc's malloc defaults.

`import rnnlab` changes how this process's malloc keeps freed memory (rnnlab.hostmem), and PyTorch's step
gains from that too; this worker times PyTorch the way it runs by itself. ``bench_rnn.py`` starts it and
speaks a line protocol on stdin/stdout: ``build CELL B T D H`` -> ``ok``; ``step`` -> ``ok`` after one
training step.
"""

import os
import sys

import torch


def main() -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    step = None
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "build":
            cell, (b, t, d, h) = args[0], map(int, args[1:])
            torch.manual_seed(0)
            layer = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(d, h, batch_first=True)
            x = torch.randn(b, t, d, requires_grad=True)
            inputs = [x, *layer.parameters()]

            def step(layer=layer, x=x, inputs=inputs):
                y, _ = layer(x)
                return torch.autograd.grad(y.sum(), inputs)

        elif cmd == "step":
            step()
        print("ok", flush=True)


if __name__ == "__main__":
    main()
