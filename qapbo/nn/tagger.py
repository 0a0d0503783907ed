"""What every qapbo network offers its readers: class probabilities and hidden pre-activations.

:class:`qapbo.nn.models.JetTagger` (fixed bit widths) and :class:`qapbo.nn.learned.LearnedTagger`
(learned per-weight precision) both derive from :class:`Tagger`, so metrics, search and export read
either the same way; each defines ``forward(x, taps=None)``, appending to ``taps`` every hidden
layer's pre-activation (before the ReLU) and the logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Tagger(nn.Module):
    """Base of qapbo's networks: readers that run the subclass's ``forward`` in eval mode."""

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 65536) -> torch.Tensor:
        """Softmax class probabilities in eval mode (restores the previous mode)."""
        was = self.training
        self.eval()
        try:
            return torch.cat([F.softmax(self(x[i:i + batch_size]), dim=1) for i in range(0, len(x), batch_size)])
        finally:
            self.train(was)

    @torch.no_grad()
    def layer_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Hidden pre-activations (before the ReLU; after BatchNorm where there is one) and logits, in eval mode."""
        was = self.training
        self.eval()
        try:
            taps: list[torch.Tensor] = []
            self(x, taps)
            return taps
        finally:
            self.train(was)
