"""examples/train.py for a launched process that also records, in `<output_dir>/teardown-rank<N>.json`, how many
DistributedDataParallel wrappers were still alive when the process group was destroyed. One alive there holds
the group through its reducer, which then frees the group with the GIL held: the gloo group's threads can
deadlock on it (the comment at the end of train.train)."""

import gc
import json
import sys
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from tiny_datasets import EXAMPLES  # noqa: F401 (puts examples/ on sys.path)

import train


def main(argv: list[str]) -> int:
    output_dir = Path(argv[argv.index("--output_dir") + 1])
    destroy = torch.distributed.destroy_process_group
    records = []

    def destroy_and_record(*args, **kwargs):
        rank = torch.distributed.get_rank()
        gc.collect()
        alive = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
        records.append({"rank": rank, "ddp_alive": alive})
        return destroy(*args, **kwargs)

    torch.distributed.destroy_process_group = destroy_and_record
    code = train.main(argv)
    for record in records:
        (output_dir / f"teardown-rank{record['rank']}.json").write_text(json.dumps(record))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
