"""Progress display of the CLI: tqdm bars driven by the library's progress events (libraries return data, the CLI
shows it)."""

from __future__ import annotations

from tqdm import tqdm


class TrainingBars:
    """tqdm bars for epochs and batches, driven by the loop's progress events."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.epochs, self.batches = enabled, None, None

    def __call__(self, event) -> None:
        if not self.enabled:
            return

        if self.epochs is None:
            self.epochs = tqdm(total=event.epochs, initial=event.epoch, desc="epochs", unit="ep", dynamic_ncols=True)
        if event.kind == "epoch_start":
            self.batches = tqdm(total=event.steps, initial=event.step, desc=f"epoch {event.epoch + 1}",
                                unit="batch", leave=False, dynamic_ncols=True)
        elif event.kind == "batch" and self.batches is not None:
            self.batches.update(event.step - self.batches.n)
            self.batches.set_postfix(loss=f"{event.loss:.4f}")
        elif event.kind == "epoch_end":
            if self.batches is not None:
                self.batches.close()
            m = event.metrics or {}
            self.epochs.update(1)
            self.epochs.set_postfix(test_acc=f"{m.get('test_acc', float('nan')):.4f}",
                                    loss=f"{m.get('train_loss', float('nan')):.4f}")

    def close(self) -> None:
        for bar in (self.batches, self.epochs):
            if bar is not None:
                bar.close()
