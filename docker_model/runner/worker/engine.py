"""The continuous-batching engine: one thread, one llama context, one sequence per active request.

Each step puts the next token of every generating sequence, plus prompt chunks of newly admitted
ones (up to n_batch tokens in all), into one llama_batch and calls llama_decode once; then every
sequence whose logits came out samples its next token with its own C sampler chain. Results reach
the event loop in one `call_soon_threadsafe` per step. When llama.cpp's threads take every core, the
engine waits (briefly) for the event loop to send them before the next decode: otherwise the event
loop's work preempts a llama.cpp thread mid-graph and its peers spin at the next barrier meanwhile.

A finished or cancelled sequence keeps its KV cells as a prompt cache: the next request placed in
that slot reuses the longest common prefix and `llama_memory_seq_rm` drops the rest. A prompt that
another sequence holds more of (agents resend one long system prompt from several clients) starts
from a copy of that sequence's cells instead (`llama_memory_seq_cp`); and a request whose prompt
shares a long prefix with one still being evaluated waits until that prefix is in the cache, so
a prefix sent by several clients at once is computed once.

Each sequence has a KV stream of its own (a non-unified cache), so an idle slot's prompt cache costs the
others nothing. llama.cpp then decodes in one micro-batch, and reuses the previous step's graph, only
sequences whose ids are consecutive and in increasing order: the batch is laid out by sequence id, and
a request goes to a slot that keeps the busy ones contiguous unless another holds much more of its prompt.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import os
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from docker_model.runner.shared.cpu import usable_cpus

from .bindings import lc
from .contention import ThreadAdvisor
from .jobs import FINISH_CANCELLED, FINISH_ERROR, CompletionJob, EmbeddingJob
from .llama import LlamaModel
from .logprobs import HeldLogprobs, TokenLogprob, token_logprob
from .metrics import WorkerMetrics
from .sampling import SequenceSampler, build_sampler
from .text import TokenText

Job = CompletionJob | EmbeddingJob


HANDOFF_TIMEOUT = 0.005  # seconds the engine waits for the event loop to send a step's results
# A slot that splits the busy sequences into one more run makes every step decode one more micro-batch
# while the reply lasts: about as much work as evaluating this many prompt tokens, per reply token
# (`max_tokens`, at most FRAGMENT_REPLY_TOKENS of them: most replies end sooner).
FRAGMENT_COST_PER_TOKEN = 2
FRAGMENT_REPLY_TOKENS = 128
# Prompt tokens that copying another sequence's KV cells costs about as much as evaluating: the copy
# moves a whole KV stream (a few MB to a few hundred), once.
COPY_COST = 64
ADMIT_WINDOW = 16  # waiting requests considered per step: one waiting for a shared prefix lets others by


class EngineOverloaded(Exception):
    """Every slot is busy and the waiting queue is full."""


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def count_runs(seqs: set[int]) -> int:
    """How many runs of consecutive ids `seqs` makes: llama.cpp decodes each in its own micro-batch."""
    return sum(1 for seq in seqs if seq - 1 not in seqs)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a request goes: sequence `seq`, starting from the cells of `copy_from` if not None."""

    seq: int
    copy_from: int | None = None


def fragment_cost(max_tokens: int | None) -> int:
    """Prompt tokens one more run of busy sequences costs over a reply of at most `max_tokens`."""
    return FRAGMENT_COST_PER_TOKEN * min(max_tokens or FRAGMENT_REPLY_TOKENS, FRAGMENT_REPLY_TOKENS)


def choose_placement(
    caches: dict[int, list[int]], busy: set[int], prompt: list[int], max_tokens: int | None = None
) -> Placement:
    """The free sequence for `prompt` and the sequence to copy its cells from, given every sequence's
    cached tokens: most prompt reused, least of another prompt's cache destroyed, fewest runs of busy
    sequences, lowest id."""
    split = fragment_cost(max_tokens)
    reusable = {seq: _common_prefix(cached, prompt) for seq, cached in caches.items()}

    def best(seq: int) -> tuple[int, Placement]:
        cached = len(caches[seq])
        own = reusable[seq] - (cached - reusable[seq])
        choice = (own, Placement(seq))
        donors = [other for other in caches if other != seq]
        if donors:
            donor = max(donors, key=lambda other: (reusable[other], -other))
            copied = reusable[donor] - COPY_COST - cached
            if copied > own:
                choice = (copied, Placement(seq, donor))
        return choice[0] - split * count_runs(busy | {seq}), choice[1]

    free = sorted(seq for seq in caches if seq not in busy)
    return max((best(seq) for seq in free), key=lambda scored: (scored[0], -scored[1].seq))[1]


class _Slot:
    """One sequence of the context and the request currently using it."""

    __slots__ = (
        "cached", "generated", "job", "limit", "logprobs", "next_token", "prompt_at", "sampler", "seq", "text",
        "token_at",
    )  # fmt: skip

    def __init__(self, seq: int):
        self.seq = seq
        self.job: CompletionJob | None = None
        self.cached: list[int] = []  # exactly the tokens in this sequence's KV cells
        self.sampler: SequenceSampler | None = None
        self.prompt_at = 0
        self.next_token: int | None = None  # sampled, not yet decoded
        self.generated = 0
        self.limit = 0
        self.text: TokenText | None = None
        self.logprobs: HeldLogprobs | None = None  # when the request asked for logprobs
        self.token_at = 0.0  # when its last token was sampled (perf_counter)

    @property
    def prompt_left(self) -> int:
        """Prompt tokens not evaluated yet."""
        return len(self.job.prompt) - self.prompt_at if self.job is not None else 0


class Engine:
    def __init__(
        self,
        model: LlamaModel,
        ctx_size: int,
        parallel: int,
        n_batch: int,
        threads: int,
        max_queue: int,
        adapt_threads: bool = False,
        cache_types: tuple[str, str] = ("f16", "f16"),
        metrics: WorkerMetrics | None = None,
    ):
        """`adapt_threads`: use fewer than `threads` while other programs keep cores busy. `cache_types`: of
        the KV cache's keys and values."""
        self.model = model
        self.ctx = model.new_context(ctx_size * parallel, parallel, max(n_batch, parallel), threads, cache_types)
        self._threads = threads
        self._advisor = ThreadAdvisor(threads, usable_cpus()) if adapt_threads else None
        self.n_ctx_seq: int = lc.llama_n_ctx_seq(self.ctx)
        self.n_batch: int = lc.llama_n_batch(self.ctx)
        self._mem = lc.llama_get_memory(self.ctx)
        self._batch = lc.llama_batch_init(self.n_batch, 0, 1)
        for i in range(self.n_batch):
            self._batch.n_seq_id[i] = 1
        self._slots = [_Slot(seq) for seq in range(parallel)]
        self._active: list[_Slot] = []
        self._waiting: deque[Job] = deque()
        self._inbox: deque[Job] = deque()
        self._wake = threading.Event()
        self._sent = threading.Event()
        self._wait_for_send = threads >= usable_cpus()
        self._events: list[tuple[Any, tuple, bool]] = []
        self._capacity = parallel + max_queue
        self._in_flight = 0  # touched on the event loop only
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running = False
        self.progress = 0  # decode steps and embedded inputs so far: the runner's watchdog reads it
        self.metrics = metrics or WorkerMetrics(model.path.stem)
        self.metrics.watch(lambda: len(self._waiting) + len(self._inbox), lambda: len(self._active))

    # -- event-loop side ---------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._running = True
        if self._advisor is not None:
            self._advisor.start()
        self._thread = threading.Thread(target=self._run, name="llama-engine", daemon=True)
        self._thread.start()

    @property
    def parallel(self) -> int:
        """Sequences generated at once."""
        return len(self._slots)

    def submit(self, *jobs: Job) -> None:
        """Queue jobs, all or none: raises EngineOverloaded when the slots and the waiting queue cannot
        take them all."""
        if self._in_flight + len(jobs) > self._capacity:
            raise EngineOverloaded
        self._in_flight += len(jobs)
        submitted = time.perf_counter()
        for job in jobs:
            if isinstance(job, CompletionJob):
                job.submitted_at = submitted
        self._inbox.extend(jobs)
        self._wake.set()

    def close(self) -> None:
        self._running = False
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        for slot in self._slots:
            if slot.sampler is not None:
                slot.sampler.free()
        lc.llama_batch_free(self._batch)
        lc.llama_free(self.ctx)

    def _deliver(self, events: list[tuple[Any, tuple, bool]]) -> None:
        for job, args, final in events:
            job.deliver(*args)
            if final:
                self._in_flight -= 1
        # Runs after the tasks that the deliveries woke have written their chunks.
        asyncio.get_running_loop().call_soon(self._sent.set)

    # -- engine thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop_steps()
        except BaseException:
            # A broken engine would leave every request hanging: die, so the runner sees a crashed worker.
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(70)

    def _loop_steps(self) -> None:
        while self._running:
            self._wake.clear()
            while self._inbox:
                self._waiting.append(self._inbox.popleft())
            self._drop_cancelled()
            self._admit()
            if self._active:
                self._adapt_threads()
                self._step()
                self.progress += 1
            self._flush()
            if not self._active and not self._inbox and not self._waiting:  # a job waiting: admit it now
                if self._advisor is not None:
                    self._advisor.working = False
                self._wake.wait()

    def _adapt_threads(self) -> None:
        if self._advisor is None:
            return
        self._advisor.working = True
        threads = self._advisor.threads()
        if threads != self._threads:
            lc.llama_set_n_threads(self.ctx, threads, threads)
            self._threads = threads
            self._wait_for_send = threads >= usable_cpus()

    def _flush(self) -> None:
        if self._events and self._loop is not None:
            self._sent.clear()
            self._loop.call_soon_threadsafe(self._deliver, self._events)
            self._events = []
            if self._wait_for_send and self._active:
                self._sent.wait(HANDOFF_TIMEOUT)

    def _drop_cancelled(self) -> None:
        """Free the sequences of cancelled jobs at once, and drop cancelled jobs still waiting."""
        for slot in [s for s in self._active if s.job is not None and s.job.cancelled]:
            self._finish(slot, "", FINISH_CANCELLED)
        if any(job.cancelled for job in self._waiting):
            for job in [j for j in self._waiting if j.cancelled]:
                self._waiting.remove(job)
                args = ("", FINISH_CANCELLED, 0, None) if isinstance(job, CompletionJob) else (None, "cancelled")
                self._events.append((job, args, True))

    def _admit(self) -> None:
        # The head of the queue only: each waiting prompt checked costs a prefix comparison per sequence.
        for job in list(itertools.islice(self._waiting, ADMIT_WINDOW)):
            free = [s for s in self._slots if s.job is None]
            if not free:
                return
            if isinstance(job, CompletionJob) and self._prefix_in_progress(job.prompt):
                continue
            self._waiting.remove(job)
            try:
                if isinstance(job, EmbeddingJob):
                    self._embed(job, min(free, key=lambda s: len(s.cached)))
                else:
                    caches = {s.seq: s.cached for s in self._slots}
                    busy = {s.seq for s in self._active}
                    self._place(job, choose_placement(caches, busy, job.prompt, job.max_tokens))
            except Exception as error:  # this request alone fails; the others carry on
                self._reject(job, f"the request could not be started: {error}")

    def _prefix_in_progress(self, prompt: list[int]) -> bool:
        """Whether a sequence still evaluating its prompt will soon hold much more of `prompt` than any
        cache holds now: then `prompt` waits for it rather than computing the same prefix again."""
        cached = max(_common_prefix(slot.cached, prompt) for slot in self._slots)
        for slot in self._active:
            if slot.next_token is None and slot.job is not None:
                shared = min(_common_prefix(slot.job.prompt, prompt), len(prompt) - 1)
                if slot.prompt_at < shared and shared - cached > COPY_COST:
                    return True
        return False

    def _reject(self, job: Job, message: str) -> None:
        traceback.print_exc()
        args = ("", FINISH_ERROR, 0, message) if isinstance(job, CompletionJob) else (None, message)
        self._events.append((job, args, True))

    def _place(self, job: CompletionJob, placement: Placement) -> None:
        # First: a failure here leaves the slot as it was.
        sampler = build_sampler(job.sampling, self.model, job.prompt, self.n_ctx_seq)
        slot = self._slots[placement.seq]
        if placement.copy_from is not None:
            lc.llama_memory_seq_cp(self._mem, placement.copy_from, slot.seq, -1, -1)
            slot.cached[:] = self._slots[placement.copy_from].cached
        keep = min(_common_prefix(slot.cached, job.prompt), len(job.prompt) - 1)
        if keep < len(slot.cached):
            self._truncate(slot, keep)
        job.cached_tokens = len(slot.cached)
        slot.job = job
        slot.prompt_at = len(slot.cached)
        slot.next_token = None
        slot.generated = 0
        room = self.n_ctx_seq - len(job.prompt)
        slot.limit = min(room, job.max_tokens) if job.max_tokens else room
        slot.sampler = sampler
        slot.text = TokenText(job.stop)
        slot.logprobs = HeldLogprobs(job.logprobs) if job.logprobs is not None else None
        bisect.insort(self._active, slot, key=attrgetter("seq"))

    def _truncate(self, slot: _Slot, keep: int) -> None:
        """Drop the slot's KV cells from position `keep` on (everything if that cannot be done)."""
        partial = keep > 0 and lc.llama_memory_seq_pos_min(self._mem, slot.seq) <= 0
        if not (partial and lc.llama_memory_seq_rm(self._mem, slot.seq, keep, -1)):
            lc.llama_memory_seq_rm(self._mem, slot.seq, -1, -1)
            keep = 0
        del slot.cached[keep:]

    def _step(self) -> None:
        """One decode: the next token of every generating sequence and the prompt chunks `_allot` gives,
        laid out in sequence order."""
        batch = self._batch
        tokens, positions, seq_ids, logits = batch.token, batch.pos, batch.seq_id, batch.logits
        n = 0
        allotted = self._allot(self.n_batch - sum(1 for slot in self._active if slot.next_token is not None))
        outputs: list[tuple[_Slot, int]] = []
        for slot in self._active:
            token = slot.next_token
            if token is not None:
                tokens[n] = token
                positions[n] = len(slot.cached)
                seq_ids[n][0] = slot.seq
                logits[n] = 1
                slot.cached.append(token)
                outputs.append((slot, n))
                n += 1
                continue
            if slot not in allotted:
                continue
            prompt = slot.job.prompt  # type: ignore[union-attr]
            start = slot.prompt_at
            end = start + allotted[slot]
            seq = slot.seq
            for pos in range(start, end):
                tokens[n] = prompt[pos]
                positions[n] = pos
                seq_ids[n][0] = seq
                logits[n] = 0
                n += 1
            slot.cached.extend(prompt[start:end])
            slot.prompt_at = end
            if end == len(prompt):
                logits[n - 1] = 1
                outputs.append((slot, n - 1))
        batch.n_tokens = n
        status = lc.llama_decode(self.ctx, batch)
        if status != 0:
            self._fail({slot for slot, _ in outputs} | set(allotted), status)
            return
        for slot, index in outputs:
            try:
                assert slot.sampler is not None  # every active slot has one
                token = slot.sampler.sample(self.ctx, index)
                entry = None
                if slot.logprobs is not None:
                    entry = token_logprob(self.ctx, index, self.model.n_vocab, token, slot.logprobs.top)
                self._accept(slot, token, entry)
            except Exception as error:  # this sequence alone fails; the others carry on
                traceback.print_exc()
                if slot.job is not None:
                    self._finish(slot, "", FINISH_ERROR, f"generation failed: {error}")

    def _allot(self, room: int) -> dict[_Slot, int]:
        """Prompt tokens each sequence still evaluating its prompt gets this step: shortest rest first.

        On the CPU a step completes at most one prompt: a step's time grows with its tokens, so four
        prompts evaluated together would all get their first token when the last does; one after
        another, the first gets it after a quarter of that time, and the others no later than before.
        """
        allotted: dict[_Slot, int] = {}
        pending = [slot for slot in self._active if slot.next_token is None]
        for slot in sorted(pending, key=attrgetter("prompt_left", "seq")):
            if room <= 0:
                break
            allotted[slot] = min(slot.prompt_left, room)
            room -= allotted[slot]
            if self.model.on_cpu and allotted[slot] == slot.prompt_left:
                break
        return allotted

    def _accept(self, slot: _Slot, token: int, entry: TokenLogprob | None = None) -> None:
        """Take a sampled token (and its logprob entry when the request asked for logprobs)."""
        text_stream = slot.text
        assert text_stream is not None
        if self.model.is_eog(token):
            self._finish(slot, text_stream.flush(), "stop")
            return
        slot.generated += 1
        self._time_token(slot)
        piece = self.model.piece(token)
        if entry is not None and slot.logprobs is not None:
            slot.logprobs.add(entry, len(piece))
        text, stopped = text_stream.feed(piece)
        if stopped:
            self._finish(slot, text, "stop")
        elif slot.generated >= slot.limit:
            self._finish(slot, text + text_stream.flush(), "length")
        else:
            slot.next_token = token
            if text:
                logprobs = slot.logprobs.release(text) if slot.logprobs is not None else None
                self._events.append((slot.job, (text, None, slot.generated, None, logprobs), False))

    def _time_token(self, slot: _Slot) -> None:
        now = time.perf_counter()
        if slot.generated == 1 and slot.job is not None:
            self.metrics.time_to_first_token.observe(now - slot.job.submitted_at)
        else:
            self.metrics.time_per_token.observe(now - slot.token_at)
        slot.token_at = now

    def _finish(self, slot: _Slot, text: str, reason: str, error: str | None = None) -> None:
        if slot.job is not None:
            self.metrics.prompt_tokens.inc(len(slot.job.prompt))
            self.metrics.generated_tokens.inc(slot.generated)
        logprobs = slot.logprobs.release(text, final=True) if slot.logprobs is not None else None
        self._events.append((slot.job, (text, reason, slot.generated, error, logprobs), True))
        if slot.sampler is not None:
            slot.sampler.free()
        slot.sampler = slot.job = slot.text = slot.next_token = slot.logprobs = None
        self._active.remove(slot)

    def _fail(self, slots: set[_Slot], status: int) -> None:
        for slot in slots:
            self._truncate(slot, 0)
            self._finish(slot, "", FINISH_ERROR, f"llama_decode failed with status {status}")

    def _embed(self, job: EmbeddingJob, slot: _Slot) -> None:
        """Pooled embeddings, decoded on their own between generation steps in a free sequence."""
        self._truncate(slot, 0)
        batch, seq, n_embd = self._batch, slot.seq, self.model.n_embd
        vectors: list[list[float]] = []
        error = None
        lc.llama_set_embeddings(self.ctx, True)
        try:
            for tokens in job.inputs:
                if job.cancelled:  # the client left: the rest would be computed for no one
                    break
                for i, token in enumerate(tokens):
                    batch.token[i], batch.pos[i], batch.logits[i] = token, i, 1
                    batch.seq_id[i][0] = seq
                batch.n_tokens = len(tokens)
                status = lc.llama_decode(self.ctx, batch)
                lc.llama_memory_seq_rm(self._mem, seq, -1, -1)
                pooled = lc.llama_get_embeddings_seq(self.ctx, seq) if status == 0 else None
                if not pooled:
                    error = f"llama_decode failed with status {status} while embedding"
                    break
                self.progress += 1
                vector = pooled[:n_embd]
                norm = math.sqrt(sum(x * x for x in vector)) or 1.0
                vectors.append([x / norm for x in vector])
        finally:
            lc.llama_set_embeddings(self.ctx, False)
        self._events.append((job, (None if error else vectors, error), True))
