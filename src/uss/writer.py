"""The resumable per-image PNG writer of pseudo labels, inference and test.py.

One label PNG per image, ``<out>/<wnid>/<name>.png`` (ImageNet-S label PNG, written atomically). A rerun keeps
outputs that decode completely and have the image's size and (re)does the missing, truncated or mis-sized ones.
Images are decoded ahead by threads of this process: nothing is forked from a process that runs jittor (its
thread pools and its SIGCHLD handler make a forked loader the one part that could take a run down).

Failure policy: an image that cannot be read or processed is reported on one line and skipped without stopping
the split (any earlier output of it is removed, so a broken file never passes for a result). Each process lists
its failures in ``<out>_failures.<i>-of-<n>.json``; once every MPI rank is done, rank 0 merges them, with every
image of the split still lacking an output, into ``<out>_failures.txt`` and prints one line per file. The work is
split across MPI ranks, or with ``--shard i/n`` between independent processes; a shard only reports its own
failures (the final unsharded run retries what is missing and writes the merged report).
"""
import glob
import itertools
import json
import os
import sys
import time
import traceback
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from uss import distributed
from uss.atomic import atomic_write_json, atomic_write_text, remove_stale_temp_files
from uss.data import layout
from uss.data.image_io import ImageFileError, image_size, load_rgb, load_rgb_best_effort
from uss.data.label_png import is_complete_label_png, write_label_png
from uss.data.split import ImageNetSSplit
from uss.errors import InputError

Failure = Tuple[str, str]  # (image name, one-line message naming the file)


@dataclass(frozen=True)
class Part:
    """This process's share of a split: every `count`-th image from `index`; `independent` for --shard."""

    index: int = 0
    count: int = 1
    independent: bool = False


@dataclass
class WriteSummary:
    """What one process's pass over its part did."""

    images: int
    written: int = 0
    skipped: int = 0  # good outputs kept
    redone: int = 0  # broken outputs rewritten (counted in `written` once done)
    failed: List[Failure] = field(default_factory=list)
    truncated: List[Failure] = field(default_factory=list)  # decoded best-effort, with the warning
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """'N written (R of them redone), S kept, F failed, X images/s'."""
        return (f"{self.written} written ({self.redone} of them redone), {self.skipped} kept, {len(self.failed)} "
                f"failed, {self.images_per_s:.2f} images/s")


def parse_shard(text: Optional[str]) -> Optional[Tuple[int, int]]:
    """--shard 'i/n' -> (i, n) with 0 <= i < n; None or '' stays None."""
    if not text:
        return None
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise InputError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise InputError(f"--shard {text}: i must lie in [0, n)")
    return index, count


def this_part(shard: Optional[str] = None) -> Part:
    """--shard i/n (an independent process), else this MPI rank's part, else everything."""
    parsed = parse_shard(shard)
    if parsed is None:
        return Part(distributed.rank(), distributed.world_size())
    if distributed.world_size() > 1:
        raise InputError("--shard splits the work between independent processes; do not combine it with mpirun")
    return Part(*parsed, independent=True)


def output_path(out_dir: str, name: str) -> str:
    return os.path.join(out_dir, layout.label_name(name))


def _output_is_good(split: ImageNetSSplit, out_dir: str, name: str) -> bool:
    """True when the output of `name` exists, decodes completely and has the image's size."""
    try:
        return is_complete_label_png(output_path(out_dir, name), image_size(split.image_path(name)))
    except ImageFileError:
        return False


def pending_outputs(split: ImageNetSSplit, out_dir: str, names: Sequence[str], redo: bool = False
                    ) -> Tuple[List[str], int]:
    """(the names whose output is missing or broken, or all with `redo`; how many of those exist and are redone)."""
    existing = [n for n in names if os.path.exists(output_path(out_dir, n))]
    good = set()
    if existing and not redo:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            good = {n for n, ok in zip(existing, pool.map(partial(_output_is_good, split, out_dir), existing)) if ok}
    todo = [n for n in names if n not in good]
    return todo, len(set(existing) - good)


def _load(path: str, decode_truncated: bool,
          prepare: Optional[Callable[[np.ndarray], Any]]) -> Tuple[Any, Optional[str]]:
    image, warning = load_rgb_best_effort(path) if decode_truncated else (load_rgb(path), None)
    return (prepare(image) if prepare else image), warning


def prefetched(split: ImageNetSSplit, names: Sequence[str], workers: int, decode_truncated: bool = False,
               prepare: Optional[Callable[[np.ndarray], Any]] = None
               ) -> Iterator[Tuple[str, Callable[[], Tuple[Any, Optional[str]]]]]:
    """(name, get) in order; get() returns (prepare(image) or the image, truncation warning or None) and raises
    what decoding raised. Images are decoded (and prepared) `2 * workers` ahead by threads (0: on demand)."""
    load = partial(_load, decode_truncated=decode_truncated, prepare=prepare)
    if workers <= 0:
        for name in names:
            yield name, partial(load, split.image_path(name))
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: "deque[Tuple[str, Future]]" = deque()
        queue = iter(names)
        for name in itertools.islice(queue, 2 * workers):
            pending.append((name, pool.submit(load, split.image_path(name))))
        while pending:
            name, future = pending.popleft()
            following = next(queue, None)
            if following is not None:
                pending.append((following, pool.submit(load, split.image_path(following))))
            yield name, future.result


def remove_stale_temp(out_dir: str, part: Part) -> None:
    """Delete what killed atomic writes left, when no other process can be writing: rank 0 of an unsharded run,
    before any rank starts (independent shards may be writing beside each other; the final run cleans up)."""
    if not part.independent and distributed.rank() == 0:
        removed = remove_stale_temp_files(out_dir)
        if removed:
            print(f"removed {removed} temporary file(s) of interrupted writes in {out_dir}", flush=True)
    distributed.barrier()


def write_split(split: ImageNetSSplit, out_dir: str, label_fn: Callable[[Any, str], np.ndarray], part: Part = Part(),
                desc: str = "labels", workers: int = 2, prepare: Optional[Callable[[np.ndarray], Any]] = None,
                decode_truncated: bool = False, redo: bool = False, progress: bool = True) -> WriteSummary:
    """Write label_fn(image or prepare(image), name) -> HxW ids for every image of this process's part of `split`
    whose output is not already good; failures follow the module's policy."""
    os.makedirs(out_dir, exist_ok=True)
    remove_stale_temp(out_dir, part)
    names = split.names[part.index::part.count]
    todo, redone = pending_outputs(split, out_dir, names, redo)
    summary = WriteSummary(images=len(names), skipped=len(names) - len(todo), redone=redone)
    start = time.time()
    bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not (progress and distributed.is_main_process()),
               dynamic_ncols=True)
    for name, get in prefetched(split, todo, workers, decode_truncated, prepare):
        target = output_path(out_dir, name)
        try:
            item, warning = get()
            if warning:
                summary.truncated.append((name, warning))
                tqdm.write(f"warning: {desc}: {warning}", file=sys.stderr)
            write_label_png(target, label_fn(item, name))
            summary.written += 1
        except ImageFileError as error:
            summary.failed.append((name, str(error)))
            tqdm.write(f"warning: {desc}: skipping {error}", file=sys.stderr)
        except Exception as error:  # noqa: BLE001 - one bad image must not stop the split; reported at the end
            message = f"{split.image_path(name)}: processing failed ({type(error).__name__}: {error})"
            summary.failed.append((name, " ".join(message.split())))
            tqdm.write(f"warning: {desc}: skipping {message}\n{traceback.format_exc()}", file=sys.stderr)
        if summary.failed and summary.failed[-1][0] == name and os.path.exists(target):
            os.unlink(target)
        summary.seconds = time.time() - start
        bar.set_postfix(img_s=f"{summary.images_per_s:.1f}", refresh=False)
        bar.update(1)
    bar.close()
    summary.seconds = time.time() - start
    return summary


def _part_list(out_dir: str, part: Part) -> str:
    return f"{out_dir.rstrip('/' + os.sep)}_failures.{part.index}-of-{part.count}.json"


def failures_report(out_dir: str) -> str:
    """<out>_failures.txt: the merged list, one 'name<TAB>message' line per image without an output."""
    return out_dir.rstrip("/" + os.sep) + "_failures.txt"


def settle(split: ImageNetSSplit, out_dir: str, part: Part, summary: WriteSummary, tag: str
           ) -> Optional[List[Failure]]:
    """After write_split: list truncated decodes, then merge the failures of every rank (see the module docstring).

    Returns every failure of the split on rank 0 of an unsharded run, this shard's for --shard, None on the other
    ranks (they are done)."""
    base = out_dir.rstrip("/" + os.sep)
    if summary.truncated:
        listing = f"{base}_truncated.txt" if (part.index, part.count) == (0, 1) else \
            f"{base}_truncated.{part.index}-of-{part.count}.txt"
        atomic_write_text(listing, "".join(f"{name}\t{warning}\n" for name, warning in summary.truncated))
        print(f"{tag} {len(summary.truncated)} truncated image(s) decoded best-effort (listed in {listing})",
              file=sys.stderr, flush=True)
    if part.independent:
        for _, message in summary.failed:
            print(f"  failed: {message}", file=sys.stderr)
        return summary.failed
    atomic_write_json(_part_list(out_dir, part), [{"name": n, "error": e} for n, e in summary.failed])
    distributed.barrier()
    if distributed.rank() != 0:
        return None
    messages = {}
    lists = glob.glob(f"{glob.escape(base)}_failures.*-of-{part.count}.json")
    for path in sorted(lists):
        with open(path) as handle:
            messages.update({entry["name"]: entry["error"] for entry in json.load(handle)})
        os.unlink(path)
    failed = [(n, messages.get(n, f"{split.image_path(n)}: no output written"))
              for n in split.names if not os.path.isfile(output_path(out_dir, n))]
    report = failures_report(out_dir)
    if failed:
        atomic_write_text(report, "".join(f"{name}\t{message}\n" for name, message in failed))
        print(f"{tag} {len(failed)} image(s) failed (no output written; listed in {report}):", file=sys.stderr)
        for _, message in failed:
            print(f"  {message}", file=sys.stderr)
    elif os.path.exists(report):
        os.unlink(report)
    return failed
