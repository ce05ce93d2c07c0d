"""Cast a loaded model's weights to another dtype without holding the checkpoint beside them.

transformers 5 maps a safetensors checkpoint and, when the weights keep the file's dtype,
uses the mapped bytes in place: no copy. When they are cast (a bf16 checkpoint run in
fp32 on a CPU without fast bf16), every cast weight is new memory, and the file pages
read to make it stay resident until the last weight is done, because the mapping lives
as long as any tensor still points into it. At its peak the process then holds the
checkpoint once more beside the cast weights (1.65× the fp32 weights of a 4-layer Phi-3
here, measured with ``benchmarks/memory.py --transformers``).

``cast_in_place`` casts one weight at a time and hands the pages of the one it replaced
back to the kernel (``madvise(MADV_DONTNEED)``), so the checkpoint never adds up. The
pages are clean file pages: were anything to read them again, the kernel would read the
file again, so releasing them can cost time but never change a value.
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import mmap
import sys
from pathlib import Path
from typing import Any

_MADV_DONTNEED = 4  # the same value on Linux and macOS


def _libc() -> Any:
    if sys.platform == "win32":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


class FileMappings:
    """The address ranges of this process that map files (Linux's /proc/self/maps).

    Only pages inside these may be released: there the kernel can always read them back
    from the file. Anonymous memory would come back as zeros.
    """

    def __init__(self, maps_text: str) -> None:
        ranges: list[tuple[int, int]] = []
        for line in maps_text.splitlines():
            fields = line.split(maxsplit=5)
            # address perms offset device inode path: inode 0 is anonymous memory
            if len(fields) == 6 and fields[4] != "0" and fields[5].startswith("/"):
                start, _, end = fields[0].partition("-")
                ranges.append((int(start, 16), int(end, 16)))
        ranges.sort()
        self._starts = [start for start, _ in ranges]
        self._ranges = ranges

    @classmethod
    def of_this_process(cls) -> FileMappings:
        try:
            return cls(Path("/proc/self/maps").read_text())
        except OSError:  # not Linux: nothing is known to be file-backed, nothing is released
            return cls("")

    def contains(self, address: int, nbytes: int) -> bool:
        index = bisect.bisect_right(self._starts, address) - 1
        if index < 0:
            return False
        start, end = self._ranges[index]
        return start <= address and address + nbytes <= end


def release_pages(address: int, nbytes: int) -> bool:
    """Drop this process's resident pages wholly inside [address, address + nbytes).

    Only for memory that maps a file (see ``FileMappings``). Only whole pages are
    released, so a neighbour sharing a page at either end keeps it. Returns whether the
    kernel accepted; where madvise is missing, nothing happens.
    """
    if _LIBC is None or nbytes <= 0:
        return False
    page = mmap.PAGESIZE
    start = -(-address // page) * page  # round up
    end = (address + nbytes) // page * page  # round down
    if end <= start:
        return False
    result = _LIBC.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED)
    return int(result) == 0


def cast_in_place(model: Any, dtype: Any) -> None:
    """Cast every floating-point parameter of ``model`` (a torch module) to ``dtype``.

    Parameters that came straight from a mapped checkpoint give their pages back as soon
    as their cast copy exists. Buffers are left as the model built them (rotary
    frequencies, for instance, are kept in fp32 by design).
    """
    import torch

    mapped = FileMappings.of_this_process()
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.is_floating_point() or parameter.dtype == dtype:
                continue
            old = parameter.data
            parameter.data = old.to(dtype)
            address, nbytes = old.data_ptr(), old.numel() * old.element_size()
            if (
                old.device.type == "cpu"
                and old.is_contiguous()
                and mapped.contains(address, nbytes)
            ):
                release_pages(address, nbytes)
            del old
    config = getattr(model, "config", None)
    if config is not None:
        config.dtype = dtype
