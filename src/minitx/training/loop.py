"""Training: next-token prediction with AdamW (or Muon), a warmup-then-cosine learning rate, and checkpoints.

One optimisation step:

    for each of --grad-accum micro-batches:      x, y = random windows of the training stream
        loss = cross_entropy(model(x), y)        how surprised the model is by each next token
        (loss / grad_accum).backward()           accumulate d loss / d weights
    clip the gradient norm to --grad-clip        one bad batch cannot throw the weights far
    lr = schedule(step)                          linear warmup, then cosine decay to --min-lr
    optimizer step                               AdamW, or Muon + AdamW (optim.py)

Every --save-every steps the run directory gets a checkpoint (weights, optimizer moments, RNG states),
written as one unit beside the previous one (rundir/checkpoints.py), so a crash at any moment loses
at most the steps since the last save; every --eval-every steps the mean loss on held-out text is
measured and appended to metrics.jsonl. Saving comes before evaluating, so a crash during evaluation
loses nothing. The first Ctrl-C finishes the current step, saves, and stops; `--resume` continues
bit-for-bit where it left off (on a CPU, same seed and threads): the batch sampler's generator state
is the data position. A loss (or gradient norm) that becomes NaN or infinite stops the run before the
optimizer step can spread it into the weights, with `TrainingDiverged` naming the step and the last
good checkpoint, which is never overwritten by bad numbers.

How `minitx train` prepares the run this loop trains (corpus, tokenizer, run directory, what --resume
may change) is in setup.py. The loop reports its progress to a `TrainProgress` (the command layer
draws it); each step's MFU is measured against this machine's matmul peak (mfu.py).
"""

from __future__ import annotations

import math
import signal
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from minitx import rundir
from minitx.config import ModelConfig, TrainConfig
from minitx.dataset import TokenSplit, bits_per_byte
from minitx.device import apply_threads, resolve_device
from minitx.errors import TrainingDiverged, UserError
from minitx.fileio import crash_point
from minitx.model.registry import architecture
from minitx.training import allocator, distributed, mfu, optim, precision, scalars
from minitx.training.distributed import World


@dataclass
class TrainResult:
    """What a finished (or interrupted) run reports."""

    step: int
    steps: int
    train_loss: float
    val_loss: float | None
    val_bpb: float | None
    seconds: float
    tokens_per_second: float
    parameters: int
    mfu: float | None = None  # model FLOPs utilisation over the run (mfu.py)
    interrupted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


class TrainProgress:
    """What the loop reports while it trains; the command layer shows it (this one shows nothing).

    `started` once (steps to do, the step it starts from, the expected band of the validation loss),
    `stepped` after every step, `evaluated` with every record appended to metrics.jsonl, `finished` at the end.
    """

    def started(self, total: int, start: int, band: tuple[float, float] | None) -> None:
        pass

    def stepped(self, step: int, loss: float, lr: float, tokens_per_second: float, mfu: float | None) -> None:
        pass

    def evaluated(self, record: dict[str, Any]) -> None:
        pass

    def finished(self) -> None:
        pass


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warmup over `warmup` steps, then cosine decay from `lr` to `min_lr` at `steps`.

    >>> cfg = TrainConfig(steps=100, lr=1.0, min_lr=0.0, warmup=10)
    >>> [round(learning_rate(s, cfg), 3) for s in (0, 9, 10, 55, 100)]
    [0.091, 0.909, 1.0, 0.5, 0.0]
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / (cfg.warmup + 1)
    if step >= cfg.steps:
        return cfg.min_lr
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


class Trainer:
    """Owns the model, optimizer, batch samplers and run directory of one training run."""

    def __init__(
        self,
        run_dir: Path,
        model_config: ModelConfig,
        train_config: TrainConfig,
        split: TokenSplit,
        *,
        resume: bool = False,
        world: World | None = None,
    ) -> None:
        from minitx.model import build_model

        train_config.validate()
        self.world = world if world is not None else World.from_env()
        self.run_dir = Path(run_dir)
        self.model_config = model_config
        self.cfg = train_config
        self.split = split
        self.device = distributed.rank_device(resolve_device(train_config.device), self.world)
        self.threads, self.threads_why = apply_threads(train_config.threads)  # first: peaks are per thread count
        self.keeps_memory = allocator.keep_freed_memory()  # no page faults for each step's fresh tensors
        self.dtype = precision.train_dtype(train_config.dtype, self.device, resumed=resume)
        train_config.dtype = self.dtype  # config.json records what ran, so --resume repeats it

        torch.manual_seed(train_config.seed)
        self.model = build_model(model_config).to(self.device)  # the same initial weights on every rank
        if self.world.distributed:  # each rank its own dropout masks
            torch.manual_seed(train_config.seed + self.world.rank)
        self.optimizer = optim.build_optimizer(self.model, train_config, self.device)
        self.batches = split.sampler(
            "train", model_config.block_size, train_config.batch_size, train_config.seed, self.device,
            rank=self.world.rank, world_size=self.world.size,
        )
        self.step = 0
        self.saved_step: int | None = None  # the step of the newest checkpoint on disk
        self.history: list[dict[str, Any]] = []
        self._step_seconds: list[float] = []  # durations of the steps since the last evaluation
        self._train_seconds = 0.0  # time spent in optimisation steps (no evaluation, no saving)
        if resume:
            self._resume()
            if self.step >= train_config.steps:
                raise UserError(
                    f"{self.run_dir} has already done {self.step} of {train_config.steps} steps; "
                    "pass a larger --steps to train it further"
                )
        self.step_model = self._maybe_compile()
        if train_config.log == "tensorboard":
            scalars.require_tensorboard()
        self.tensorboard: scalars.TensorBoardLog | None = None

    # -- pieces of a step ------------------------------------------------------------------------

    def _maybe_compile(self) -> torch.nn.Module:
        """The module a step calls: the model, wrapped by DDP across ranks, compiled when it pays."""
        self.compiled = should_compile(self.cfg, self.model_config, self.model.num_parameters(), self.device)
        self.ddp_model = distributed.wrap(self.model, self.world, self.device)
        return torch.compile(self.ddp_model) if self.compiled else self.ddp_model

    def _autocast(self):
        if self.dtype == "bfloat16":
            return torch.autocast(device_type=self.device.split(":")[0], dtype=torch.bfloat16)
        return nullcontext()

    def train_step(self) -> float:
        """One optimisation step (all micro-batches); returns the mean training loss."""
        cfg = self.cfg
        optim.set_schedule(self.optimizer, learning_rate(self.step, cfg) / cfg.lr, cfg)
        total = 0.0
        for micro in range(cfg.grad_accum):
            batch = self.batches.next()  # the inputs, then the targets: (x, y) for a GPT
            # Across ranks, gradients are averaged once per step: skip the all-reduce until the last micro-batch.
            last = micro == cfg.grad_accum - 1
            sync = nullcontext() if last or not self.world.distributed else self.ddp_model.no_sync()
            with sync:
                with self._autocast():
                    _, loss = self.step_model(*batch)
                if cfg.grad_accum > 1:
                    loss = loss / cfg.grad_accum
                loss.backward()
            total += loss.item()
        total = distributed.mean_over_ranks(total, self.world, self.device)  # the loss of the global batch
        if not math.isfinite(total):  # the same on every rank, so all of them stop together
            self._diverged(f"the loss became {total}")
        if cfg.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip, foreach=True)
            if not torch.isfinite(norm):  # clipping cannot tame an infinite norm: every weight would turn NaN
                self._diverged(f"the gradient norm became {norm.item()}")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return total

    def _diverged(self, what: str) -> None:
        """Stop before the optimizer step: the weights and the last checkpoint stay finite."""
        if self.saved_step is not None:
            kept = f"the last good checkpoint is {rundir.latest_checkpoint(self.run_dir)} (step {self.saved_step})"
        else:
            kept = "no checkpoint was saved yet"
        remedy = ("lower --lr or raise --warmup" if self.cfg.grad_clip > 0
                  else "lower --lr, raise --warmup or set --grad-clip")
        raise TrainingDiverged(
            f"{what} at step {self.step + 1}; training stopped and {kept}; {remedy}, then start again "
            "(--detect-anomaly names the operation that made the first NaN)"
        )

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """Mean validation loss over --eval-batches fixed batches, and the same in bits per byte.

        The batches come from a generator seeded the same way at every evaluation, so successive
        values are measured on the same text and differ only because the model changed.
        """
        self.model.eval()
        sampler = self.split.sampler(
            "val", self.model_config.block_size, self.cfg.batch_size, self.cfg.seed + 1, self.device,
            rank=self.world.rank, world_size=self.world.size,
        )
        losses = []
        for _ in range(self.cfg.eval_batches):
            batch = sampler.next()
            with self._autocast():
                _, loss = self.model(*batch)
            losses.append(loss.item())
        self.model.train()
        # Each rank scored its share of every global batch; the mean over ranks is the loss on all of it.
        val = distributed.mean_over_ranks(sum(losses) / len(losses), self.world, self.device)
        return val, bits_per_byte(val, self.split.bytes_per_token)

    # -- checkpoints -----------------------------------------------------------------------------

    def save(self, last_train_loss: float | None = None) -> None:
        """Write a checkpoint of this step (weights, optimizer moments, RNG states) as one unit.

        With several ranks only rank 0 writes; every rank's torch RNG state is gathered into the checkpoint.
        """
        if self.saved_step == self.step:  # e.g. Ctrl-C right after a scheduled save: it is on disk already
            return
        torch_states = distributed.gather_to_all(torch.get_rng_state(), self.world)
        if self.world.is_main:
            rng = {"batches": self.batches.get_state(), "torch": torch_states[0]}
            if self.world.distributed:
                rng.update({f"torch_rank{r}": t.clone() for r, t in enumerate(torch_states) if r > 0})
            state = {"step": self.step, "last_train_loss": last_train_loss, "world_size": self.world.size}
            rundir.save_checkpoint(self.run_dir, self.model, self.optimizer, state, rng, keep=self.cfg.keep)
        self.saved_step = self.step

    def _resume(self) -> None:
        """Load the newest complete checkpoint: weights, optimizer moments, RNG states, step."""
        checkpoint = rundir.latest_checkpoint(self.run_dir)
        if checkpoint is None:  # stopped before its first save: start again from step 0, with the run's recipe
            self.history = []
            if self.world.is_main:
                rundir.write_metrics(self.run_dir, [])
            return
        weights = checkpoint / rundir.WEIGHTS
        tensors, meta = rundir.read_tensors(weights, "weights file")
        rundir.load_weights_into(self.model, tensors, weights)
        state, rng = rundir.load_trainer_state(checkpoint, self.optimizer)
        if meta.get("step") is not None and meta["step"] != str(state.get("step")):
            raise UserError(
                f"{checkpoint}: weights are from step {meta['step']} but the trainer state is from step "
                f"{state.get('step')}; the checkpoint is damaged -- cannot resume exactly"
            )
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.world.size:
            raise UserError(
                f"{self.run_dir} was trained by {saved_world} process{'es' if saved_world > 1 else ''} and this is "
                f"{self.world.size}; resume with the same number (its global batch depends on it)"
            )
        self.step = int(state["step"])
        self.saved_step = self.step
        if "batches" in rng:
            self.batches.set_state(rng["batches"])
        own = f"torch_rank{self.world.rank}" if self.world.rank > 0 else "torch"
        if own in rng:
            torch.set_rng_state(rng[own])
        # Evaluations logged after the checkpoint belong to the lost future: drop them.
        self.history = [m for m in rundir.read_metrics(self.run_dir) if m.get("step", 0) <= self.step]
        if self.world.is_main:
            rundir.write_metrics(self.run_dir, self.history)
        if self.history:
            self._train_seconds = self.history[-1].get("train_seconds") or 0.0

    # -- the loop --------------------------------------------------------------------------------

    def fit(self, progress: TrainProgress | None = None,
            expected_band: tuple[float, float] | None = None) -> TrainResult:
        """Train until --steps, reporting to `progress`; save and stop cleanly on the first Ctrl-C."""
        cfg = self.cfg
        tokens_per_step = self.batches.tokens_per_batch * cfg.grad_accum * self.world.size  # the global batch
        display = progress if progress is not None and self.world.is_main else TrainProgress()
        self.peak = mfu.matmul_peak(self.device, self.dtype) if self.world.is_main else None
        counted = architecture(self.model_config.arch).transformer_flops  # an RNN: no MFU rather than a wrong one
        self.flops_per_token = mfu.flops_per_token(self.model_config) if counted else None
        self.model.train()
        start_step, t0 = self.step, time.perf_counter()
        recent: list[float] = []
        val_loss = val_bpb = None
        if self.history:
            val_loss, val_bpb = self.history[-1].get("val_loss"), self.history[-1].get("val_bpb")
        needs_eval = self.step > 0 and self.step % cfg.eval_every == 0 and (
            not self.history or self.history[-1]["step"] != self.step
        )
        anomaly = _anomaly_mode() if cfg.detect_anomaly else nullcontext()
        leaving = signal.SIG_IGN if self.world.distributed else None  # SIGTERM after the loop (see _stop_on_interrupt)
        if cfg.log == "tensorboard" and self.world.is_main:
            self.tensorboard = scalars.TensorBoardLog(self.run_dir)
        display.started(cfg.steps, self.step, expected_band)
        with (_finished(display, self), _stop_on_interrupt(sigterm_after=leaving, trainer=self) as stop, anomaly,
              _anomaly_is_divergence(self), distributed.peers_or_lost(self.world)):  # DDP backward too
            if needs_eval:  # resumed from a checkpoint whose evaluation never got logged
                val_loss, val_bpb = self._log_eval(recent, t0, start_step, tokens_per_step, display)
            stopped = False
            while self.step < cfg.steps:
                # Ctrl-C reaches every rank, not always before the same step: all stop where the first one asked.
                stopped = distributed.any_rank(stop.requested, self.world, self.device)
                if stopped:
                    stop.honoured = True  # the step is over: the save below is no longer on a clock
                    break
                step_started = time.perf_counter()
                _maybe_long_step_for_test(self.step + 1)
                loss = self.train_step()
                distributed.maybe_fail_for_test(self.world, self.step)
                self._step_seconds.append(time.perf_counter() - step_started)
                recent.append(loss)
                elapsed = time.perf_counter() - t0
                rate = (self.step - start_step) * tokens_per_step / max(elapsed, 1e-9)
                display.stepped(self.step, loss, learning_rate(self.step - 1, cfg), rate, self._mfu(rate))
                crash_point("step")
                if self.step % cfg.save_every == 0 or self.step == cfg.steps:
                    self.save(loss)
                if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                    val_loss, val_bpb = self._log_eval(recent, t0, start_step, tokens_per_step, display)
                    recent = []
            if stopped and self.step < cfg.steps:
                self.save(recent[-1] if recent else None)
        seconds = time.perf_counter() - t0
        done = self.step - start_step
        return TrainResult(
            step=self.step,
            steps=cfg.steps,
            train_loss=(recent[-1] if recent else (self.history[-1]["train_loss"] if self.history else math.nan)),
            val_loss=val_loss,
            val_bpb=val_bpb,
            seconds=seconds,
            tokens_per_second=done * tokens_per_step / max(seconds, 1e-9),
            parameters=self.model.num_parameters(),
            mfu=self._mfu(done * tokens_per_step / max(seconds, 1e-9)) if done else None,
            interrupted=stopped and self.step < cfg.steps,
            history=self.history,
        )

    def _log_eval(self, recent, t0, start_step, tokens_per_step, display) -> tuple[float, float]:
        val_loss, val_bpb = self.evaluate()
        elapsed = time.perf_counter() - t0
        record = {
            "step": self.step,
            "train_loss": sum(recent) / len(recent) if recent else None,
            "val_loss": val_loss,
            "val_bpb": val_bpb,
            "lr": learning_rate(max(0, self.step - 1), self.cfg),
            "tokens_per_second": (self.step - start_step) * tokens_per_step / max(elapsed, 1e-9),
            "ms_per_step": 1000 * statistics.median(self._step_seconds) if self._step_seconds else None,
            "train_seconds": self._train_seconds + sum(self._step_seconds),
            "elapsed": elapsed,
        }
        if record["ms_per_step"] is not None:  # the steps' own rate: no evaluation or saving in it
            record["mfu"] = self._mfu(tokens_per_step / (record["ms_per_step"] / 1000))
        self._train_seconds += sum(self._step_seconds)
        self._step_seconds = []
        self.history.append(record)
        if self.world.is_main:
            rundir.append_metrics(self.run_dir, record)
        if self.tensorboard is not None:
            self.tensorboard.write(record)
        display.evaluated(record)
        return val_loss, val_bpb

    def _mfu(self, tokens_per_second: float) -> float | None:
        """MFU at this rate (global tokens/s over every rank's device), or None before a peak is known (or for a
        model whose FLOPs mfu.py does not count)."""
        if not self.peak or self.flops_per_token is None:
            return None
        return mfu.mfu(tokens_per_second, self.flops_per_token, self.peak.flops, self.world.size)


#: Test-only: "STEP:FILE" makes step STEP touch FILE, then compute without end (one long matmul after
#: another, as a step of an enormous block does), so that a test can signal a step that never ends.
LONG_STEP_ENV = "MINITX_TEST_LONG_STEP"


def _maybe_long_step_for_test(step: int) -> None:
    import os

    spec = os.environ.get(LONG_STEP_ENV, "").split(":", 1)
    if len(spec) == 2 and spec[0] == str(step):
        Path(spec[1]).touch()
        a = torch.ones(4096, 4096)
        while True:
            torch.mm(a, a)


def should_compile(cfg: TrainConfig, model_config: ModelConfig, parameters: int, device: str) -> bool:
    """--compile/--no-compile, or by default: compile only when it will pay for itself.

    Measured on a 2-core CPU (docs/decisions.md): torch.compile took ~32 s and made steps ~7% faster,
    so it pays after ~8 minutes of training. The run's length is estimated from its arithmetic
    (6 FLOPs per parameter per token) at a typical CPU rate of 100 GFLOP/s -- an estimate, not a
    timing, so the choice is the same every time the same command runs. On GPUs compile pays sooner.
    """
    if cfg.compile is not None:
        return cfg.compile
    tokens = cfg.steps * cfg.batch_size * cfg.grad_accum * model_config.block_size
    est_seconds = 6 * parameters * tokens / 100e9
    threshold = 120 if device.startswith("cuda") else 600
    return est_seconds > threshold


@contextmanager
def _anomaly_mode() -> Iterator[None]:
    """--detect-anomaly: autograd checks every backward output for NaN; on the first one, torch prints
    where in the forward pass that operation was made, and the run stops (see `_anomaly_is_divergence`)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Anomaly Detection has been enabled")  # the user asked for it
        with torch.autograd.detect_anomaly(check_nan=True):
            yield


@contextmanager
def _anomaly_is_divergence(trainer: Trainer) -> Iterator[None]:
    """Under --detect-anomaly, autograd's RuntimeError about a NaN becomes TrainingDiverged (one line, exit 3)."""
    try:
        yield
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else ""
        if not trainer.cfg.detect_anomaly or "nan" not in first.lower():
            raise
        trainer._diverged(f"autograd's anomaly mode found a NaN ({first})")


@contextmanager
def _finished(progress: TrainProgress, trainer: Trainer) -> Iterator[None]:
    try:
        yield
    finally:
        progress.finished()
        if trainer.tensorboard is not None:
            trainer.tensorboard.close()
            trainer.tensorboard = None


class _StopFlag:
    requested = False
    honoured = False  # the loop has seen the request and left the step: the watchdog waits no more


#: Seconds the first SIGTERM or Ctrl-C waits for the step in progress before the watchdog ends the process
#: (at least this long, or 3 times the longest step so far, at most STOP_GRACE_MAX; MINITX_STOP_GRACE sets it).
STOP_GRACE = 5.0
STOP_GRACE_MAX = 30.0
#: Seconds a second Ctrl-C (or SIGTERM) waits for the main thread to abort before the watchdog does it.
ABORT_GRACE = 1.0
EXIT_INTERRUPTED = 130


class _Watchdog:
    """Makes signals win even inside a step that never returns to Python.

    Python runs a signal handler only between two bytecodes of the main thread, so a Ctrl-C that
    arrives while the main thread is inside one long kernel (a step of `--block-size 100000` ran for
    over ten minutes) was not even seen until the kernel ended. The C-level handler that Python
    installs still runs at once, and writes the signal's number to `signal.set_wakeup_fd`'s socket;
    this daemon thread reads that socket, so it knows of every signal immediately, and:

    - after the first SIGTERM or Ctrl-C, gives the step `grace()` seconds to end (the loop then saves
      it and stops, as always); if it has not, it ends the process itself: one line on stderr naming
      the last complete checkpoint, then `os._exit(130)` -- nothing new is saved, nothing is torn down,
      and the newest complete checkpoint stays (a save in flight is a `.partial` that --resume removes);
    - after a second signal, waits ABORT_GRACE seconds for the main thread's own abort, then does the same.

    Torch's kernels release the GIL, so the thread runs while the main thread computes.
    """

    def __init__(self, flag: _StopFlag, trainer: Trainer | None) -> None:
        import os
        import socket
        import threading

        from minitx.console import printable
        from minitx.training.launch import kept_checkpoint  # now: nothing is imported once a signal came

        self.flag, self.trainer = flag, trainer
        self.kept = lambda: printable(kept_checkpoint(trainer.run_dir) if trainer is not None else "nothing was saved")
        self.reader, self.writer = socket.socketpair()
        self.reader.setblocking(True)
        self.writer.setblocking(False)
        self.previous_fd = signal.set_wakeup_fd(self.writer.fileno(), warn_on_full_buffer=False)
        self.grace_given = os.environ.get("MINITX_STOP_GRACE")
        self.thread = threading.Thread(target=self._watch, name="minitx-signal-watchdog", daemon=True)
        self.thread.start()

    def grace(self) -> float:
        """How long the first signal lets the step in progress go on: MINITX_STOP_GRACE, or from the steps so far."""
        if self.grace_given:
            return float(self.grace_given)
        longest = max(self.trainer._step_seconds, default=0.0) if self.trainer is not None else 0.0
        return min(max(STOP_GRACE, 3 * longest), STOP_GRACE_MAX)

    def _watch(self) -> None:
        import time

        deadline = None
        signals = 0
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            self.reader.settimeout(timeout)
            try:
                data = self.reader.recv(64)
            except TimeoutError:
                data = None
            except OSError:
                return  # closed: the loop is over
            if data == b"":
                return
            if data:
                signals += sum(1 for byte in data if byte in (signal.SIGINT, signal.SIGTERM))
                if signals >= 2:
                    deadline = time.monotonic() + ABORT_GRACE
                elif signals == 1 and deadline is None:
                    deadline = time.monotonic() + self.grace()
                continue
            if deadline is not None and (signals >= 2 or not self.flag.honoured):
                self._leave(signals)
            deadline = None  # the step ended in time: the loop saves it and stops

    def _leave(self, signals: int) -> None:
        import os

        kept = self.kept()
        why = ("a second signal" if signals >= 2
               else f"the step in progress did not end within {self.grace():g} s of the signal")
        line = f"minitx: stopped at once ({why}); nothing new was saved -- {kept}\n"
        try:
            os.write(2, line.encode("utf-8", "replace"))
        finally:
            os._exit(EXIT_INTERRUPTED)

    def close(self) -> None:
        try:
            signal.set_wakeup_fd(self.previous_fd)
        except ValueError:
            pass
        self.writer.close()  # the thread reads the end of the stream and returns
        self.thread.join(timeout=1.0)
        self.reader.close()


@contextmanager
def _stop_on_interrupt(sigterm_after: Any = None, trainer: Trainer | None = None) -> Iterator[_StopFlag]:
    """The first Ctrl-C (or SIGTERM) asks the loop to stop after the current step; a second Ctrl-C aborts at once.

    SIGTERM is how `kill`, `timeout`, schedulers and torchrun ask a process to stop: like the first
    Ctrl-C, the run finishes the step, saves, and stops (exit 130). Under torchrun, a Ctrl-C makes
    torchrun send SIGTERM to every rank (and SIGKILL 30 s later). After the loop SIGTERM gets
    `sigterm_after` (None: what it had before); a rank ignores it then: it is leaving anyway.
    A `_Watchdog` makes both hold inside a step that never returns: the process ends within a
    grace period whatever the main thread is doing.
    """
    flag = _StopFlag()

    def handler(signum, frame):
        if flag.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.requested = True

    signals = [signal.SIGINT, signal.SIGTERM]
    previous = {}
    watchdog = None
    try:
        for sig in signals:
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)
        watchdog = _Watchdog(flag, trainer)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield flag
    finally:
        if watchdog is not None:
            watchdog.close()
        for sig, old in previous.items():
            try:
                signal.signal(sig, sigterm_after if sig == signal.SIGTERM and sigterm_after is not None else old)
            except ValueError:
                pass
