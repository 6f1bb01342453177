"""Large uploads stream: memory stays flat as the file grows, whatever its size."""

import io
import tracemalloc

from softserve.datasets.validation import Limits, UploadSpec, normalise

LIMITS = Limits(dataset_max_bytes=2**31, dataset_max_rows=10**8)


class GeneratedCsv(io.RawIOBase):
    """A CSV of `rows` distinct rows produced on the fly, never held whole."""

    def __init__(self, rows: int):
        self.lines = (
            f"this is review number {i} with some padding text to make it longer,{'ab'[i % 2]}\n".encode()
            for i in range(rows)
        )
        self.buffer = b"text,label\n"
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while len(self.buffer) < len(target):
            line = next(self.lines, None)
            if line is None:
                break
            self.buffer += line
        count = min(len(target), len(self.buffer))
        target[:count], self.buffer = self.buffer[:count], self.buffer[count:]
        self.size += count
        return count


def _peak_mb(rows: int) -> tuple[float, int, int]:
    stream = GeneratedCsv(rows)
    tracemalloc.start()
    result = normalise(io.BufferedReader(stream, 1 << 16), UploadSpec(format="csv"), LIMITS)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    assert not result.problems, result.problems[:3]
    result.file.close()
    return peak, sum(result.split_counts.values()), stream.size


def test_memory_stays_flat_as_the_upload_grows():
    small_peak, small_rows, _ = _peak_mb(10_000)
    big_peak, big_rows, big_bytes = _peak_mb(100_000)
    assert (small_rows, big_rows) == (10_000, 100_000) and big_bytes > 6 * 2**20
    # Ten times the rows (7 MB of CSV), about the same memory: nothing grows with the file.
    assert big_peak < small_peak + 2, (small_peak, big_peak)
    assert big_peak < 8, big_peak
