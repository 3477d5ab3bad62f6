"""Poisoned updates, for robustness experiments only (run-config keys ``attack.*``).

With ``attack.fraction = f`` the clients with id < round(f * num-clients) are attackers: they
train as usual, then send ``global + scale * (trained - global)`` instead of their trained
arrays (the model-replacement boost of Bagdasaryan et al., AISTATS 2020,
https://arxiv.org/abs/1807.00459; ``attack.scale = 100`` is the classic "scaled by 100"). The
defaults (fraction 0) leave every client honest. The client applies it as a Flower mod on its
training replies (``clients.mods``), outside the training loop.
"""
