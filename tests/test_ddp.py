"""Two-process DistributedDataParallel training on CPU (gloo), as torchrun runs it."""
import json
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import save_file


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, port, cfg, photos, anime, out):
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                   "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"}
    torch.set_num_threads(1)
    from animeedge.generator.train import Trainer
    trainer = Trainer(cfg, photos, anime, out, progress=False)
    batch = trainer.photos.photo_batch(1)[0]  # each rank draws its own data
    trainer.run()
    save_file({"params": torch.cat([p.detach().flatten() for p in trainer.G.parameters()]), "batch": batch},
              f"{out}/rank{rank}.safetensors")
    dist.destroy_process_group()


def test_two_process_ddp_keeps_replicas_in_sync(tiny_config, photo_dir, anime_dir, tmp_path):
    from safetensors.torch import load_file
    tiny_config["train"] |= {"steps": 4, "init_steps": 2, "ckpt_every": 4}
    out = tmp_path / "run"
    mp.spawn(_worker, args=(_free_port(), tiny_config, str(photo_dir), str(anime_dir), str(out)), nprocs=2)
    r0, r1 = (load_file(out / f"rank{r}.safetensors") for r in (0, 1))
    assert not torch.equal(r0["batch"], r1["batch"])
    assert torch.equal(r0["params"], r1["params"])
    torch.manual_seed(tiny_config["train"]["seed"])
    from animeedge.generator.network import DoubleTailGenerator, GeneratorConfig
    init = DoubleTailGenerator(GeneratorConfig.from_dict(tiny_config["generator"] | {"support_tail": True}))
    assert not torch.equal(r0["params"], torch.cat([p.detach().flatten() for p in init.parameters()]))
    rngs = json.loads((out / "checkpoints" / "step_0000004" / "rng.json").read_text())
    assert len(rngs["photos"]) == 2 and rngs["photos"][0] != rngs["photos"][1]
