"""Epoch-aware jittor datasets: a sampler that carries the epoch in every index, and loader workers that
restart each pass, so item randomness can be seeded by (seed, epoch, index) and resumes exactly."""
import numpy as np
from jittor.dataset import Dataset


class EpochSampler:
    """A permutation of range(size) fixed by (seed, epoch); indices carry the epoch as epoch * size + i."""

    def __init__(self, size: int, seed: int, shuffle: bool = True):
        self.size, self.seed, self.shuffle, self.epoch = size, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.size)

    def __iter__(self):
        return iter((self.epoch * self.size + self.order()).tolist())

    def __len__(self) -> int:
        return self.size


class EpochDataset(Dataset):
    """A jittor Dataset driven by an EpochSampler: `__getitem__` receives epoch * len + index."""

    def use_epoch_sampler(self, size: int, seed: int, shuffle: bool = True) -> None:
        self.sampler = EpochSampler(size, seed, shuffle)
        self.set_attrs(total_len=size)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def split_index(self, index: int):
        """(epoch, item index) carried by a sampler index."""
        return divmod(int(index), self.sampler.size)

    def __iter__(self):
        # jittor's loader workers outlive a pass: once they finish it they prefetch the next one from the index
        # list of the *current* sampler state (before set_epoch) and keep batches left over by an early stop, so
        # the next pass would start with stale batches (epoch 0's crops forever). Restart them every pass.
        self.stop_workers()
        yield from super().__iter__()

    def stop_workers(self) -> None:
        """End the loader worker processes (the next pass starts fresh ones) and wait until they have exited.

        The workers are SIGTERMed rather than stopped through jittor's `reset()`: at the end of a pass they are
        already prefetching the next one, and a worker that has just taken a batch id when `reset()` stops the id
        queue fails its push and SIGINTs this process, which jittor turns into a silent exit(1) (seen with slow
        steps, e.g. UPerNet on ResNet-50). SIGTERM is the one child death jittor's SIGCHLD handler tolerates.
        Waiting matters: jittor catches SIGCHLD without SA_RESTART, so a worker exiting later, while this
        process waits for jittor's compile lock (another MPI rank compiling), fails that wait with EINTR.
        """
        workers = getattr(self, "workers", None)
        if not workers:
            return
        for worker in workers:
            worker.p.terminate()
        for worker in workers:
            worker.p.join()
        # What jittor's reset() drops: the next pass builds new shared state (a killed worker may have held a lock).
        for name in _WORKER_STATE:
            self.__dict__.pop(name, None)


_WORKER_STATE = ("index_list", "idqueue", "idqueue_lock", "gid", "gidc", "num_idle", "num_idle_c", "workers",
                 "index_list_numpy")
