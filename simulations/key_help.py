"""One line per run-config key, for ``fedlite keys``; a test keeps it in step with RunConfig."""

from __future__ import annotations

import json

KEY_HELP = {
    # federation
    "num-rounds": "federated rounds to run",
    "num-clients": "clients (SuperNodes); each trains on its own partition",
    "seed": "one seed for the split, the initial model, batch order and client sampling",
    "strategy": "any Flower Strategy as module:Class or /path/file.py:Class",
    "strategy-kwargs": "the strategy's keyword arguments, a JSON object",
    "fraction-train": "share of clients that train each round, in (0, 1]",
    "fraction-evaluate": "share of clients that evaluate on their own split each round",
    "node-wait-timeout": "seconds to wait for all clients to register before round 1",
    "round-timeout": "seconds a round waits for replies",
    "min-replies": "good replies a round needs, else it is skipped and the model kept",
    "central-eval": "evaluate the global model on the test set after every round",
    "central-eval-size": "first N test samples for central evaluation; 0 = all",
    # data
    "dataset": "auto (Fashion-MNIST, else digits), digits, fashion-mnist, mnist, cifar10, "
               "cifar100, shakespeare or hf:<name> (a Hugging Face dataset)",
    "data-dir": "a directory holding the dataset's files; '' = the usual search path",
    "hf-image-column": "hf:<name> datasets: the column holding the images",
    "hf-label-column": "hf:<name> datasets: the column holding the class labels",
    "hf-train-split": "hf:<name> datasets: the split the clients share",
    "hf-test-split": "hf:<name> datasets: the split of the central test set",
    "partitioner": "iid, dirichlet (label skew), pathological (k classes per client) or "
                   "natural (shakespeare: one client per play and role)",
    "dirichlet-alpha": "Dirichlet concentration; smaller is more skewed",
    "classes-per-client": "classes each client holds with the pathological partitioner",
    "client-test-fraction": "share of each client's data held out as its own test split",
    "client-train-size": "cap on each client's training split; 0 = all of it",
    # model and local training
    "model": "cnn, mlp, vgg-small, vgg16, resnet8/14/20/26, continual-cnn or lstm (shakespeare)",
    "local-epochs": "local epochs per round",
    "batch-size": "mini-batch size",
    "lr": "SGD learning rate in round 1",
    "lr-decay": "per-round factor on lr (1 = constant)",
    "momentum": "SGD momentum",
    "weight-decay": "SGD weight decay",
    "clip-grad-norm": "max global gradient norm per step; 0 = no clipping",
    "device": "auto (cuda when the worker sees a GPU), cpu or cuda",
    # backprop skipping (docs/SKIP.md)
    "skip.enabled": "confidence-based backprop skipping",
    "skip.error-bound": "share of estimated gradient mass skipping may drop; 0 skips nothing",
    "skip.bins": "confidence bins over [0, 1]; the threshold is one of their edges",
    "skip.period": "re-choose the threshold every epoch or every round",
    "skip.selection-every": "fresh selection forward every n-th epoch (1 = every mini-batch)",
    "skip.warmup-rounds": "the run's first n rounds skip nothing (the histogram still fills)",
    # FedPara (docs/FEDPARA.md)
    "fedpara.mode": "none, fedpara, pfedpara or lowrank",
    "fedpara.gamma": "rank rule's gamma in [0, 1]: 0 = minimal rank, 1 = dense-sized",
    "fedpara.conv-form": "convolution factors: prop3 (Tucker-2 cores) or prop1 (reshaped)",
    "fedpara.tanh": "W = tanh(W1) * tanh(W2) instead of W1 * W2",
    "fedpara.exclude": "module names kept dense; '' = a conv net's classifier head",
    "fedpara.include": "only these module names are factorized; '' = every Linear/Conv2d",
    "fedpara.local-lr-scale": "pFedPara: the local factors learn at lr times this",
    # robustness experiments
    "attack.scale": "how far an attacker pushes its update past its trained arrays",
    "attack.fraction": "share of clients that send poisoned updates; 0 = none",
    # class-incremental learning (docs/CONTINUAL.md)
    "continual.enabled": "classes arrive in tasks of federated rounds",
    "continual.tasks": "the task plan, e.g. 0-1,2-3; '' = num-tasks equal groups",
    "continual.num-tasks": "tasks when continual.tasks is empty",
    "continual.rounds-per-task": "rounds per task; num-rounds = tasks x this",
    "continual.method": "finetune, pass or adaptive (prototype augmentation + distillation)",
    "continual.freeze-extractor": "after task 0 only the embedding and classifier learn",
    "continual.radius-scale": "augmentation range, in units of the PASS radius",
    "continual.vectors-per-class": "learnable augmentation vectors per old prototype",
    "continual.augment-steps": "Adam steps on the vectors per round",
    "continual.augment-lr": "learning rate of the augmentation vectors",
    "continual.proto-weight": "weight of cross-entropy on augmented old-class points",
    "continual.contrast-weight": "weight of the supervised contrastive loss",
    "continual.contrast-temperature": "temperature of the contrastive loss",
    "continual.old-kd-weight": "adaptive: KL to the old head on old-class logits; 0 = off",
    "continual.student": "also distil a smaller student from two teachers",
    "continual.kd-temperature": "distillation temperature",
    "continual.student-lr": "the student's Adam learning rate",
    "continual.student-epochs-scale": "the student's local epochs = local-epochs x this",
    "continual.student-head-lr-scale": "adaptive: the student's head learns at this share",
    "continual.student-anchor-weight": "adaptive: student matches the teacher on prototypes",
    "continual.student-prox": "adaptive: pull of the student's extractor to its round start",
    "continual.max-samples-per-class": "cap on training samples per client and class; 0 = all",
    # FSP (docs/FSP.md)
    "fsp.teacher": "the teacher: a run directory or a .npz checkpoint; '' = FSP off",
    "fsp.teacher-model": "the teacher's architecture, e.g. resnet8",
    "fsp.stage1-rounds": "rounds of stage 1 (FSP loss only) before cross-entropy",
    "fsp.lr": "stage-1 learning rate",
    "fsp.optimizer": "stage-1 optimizer: sgd (the run's momentum) or adam (e.g. fsp.lr=0.001)",
    # personalization
    "local-modules": "module names kept on each client (FedPer: fc2)",
    "federated": "false = Local: every client trains alone, nothing on the wire",
    # records
    "results-dir": "where results/<run-id>/ goes",
    "run-name": "prefix of the run id",
    "tracking": "none or tensorboard (scalars to results/<run-id>/tb/)",
    "resume-from": "a killed run's <run-id>.partial directory to continue",
}


def toml_lines(flat: dict[str, object]) -> list[str]:
    """``key = value  # help`` lines that paste into a scenario's ``[config]`` table."""

    def key(name: str) -> str:
        return json.dumps(name) if "." in name else name

    def value(v: object) -> str:
        return str(v).lower() if isinstance(v, bool) else json.dumps(v)

    pairs = [f"{key(k)} = {value(v)}" for k, v in flat.items()]
    width = max(map(len, pairs), default=0) + 2
    return [f"{pair:<{width}}# {KEY_HELP[k]}" for pair, k in zip(pairs, flat)]
