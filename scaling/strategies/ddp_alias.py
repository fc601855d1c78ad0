"""`ddp_alias`: a throwaway example strategy (DDP under another name)."""

from scaling.strategies.ddp import DDPStrategy


class DDPAliasStrategy(DDPStrategy):
    name = "ddp_alias"
