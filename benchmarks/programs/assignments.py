"""Benchmark workload: a loop of mixed assignments.

Locals, augmented assignments, a tuple swap, attribute stores, list and dict item stores
and list appends -- the statements that make up most line events of ordinary code.  The
containers stay small (the appended-to batch is flushed every 32 items) so the cost of one
iteration does not grow with the number of iterations.

Standard library only, deterministic.  Usage: ``python assignments.py [ITERATIONS]``.
"""

import sys

DEFAULT_SIZE = 650_000


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y


def run(n):
    point = Point(0, 0)
    grid = [0] * 16
    table = {}
    batch = []
    flushed = 0
    a, b = 1, 2
    total = 0
    for i in range(n):
        x = i & 15
        total += x
        a, b = b, a
        point.x = x
        point.y += 1
        grid[x] = total
        table[x] = a
        batch.append(total)
        if len(batch) == 32:
            flushed += sum(batch) & 0xFFFF
            batch = []
        total -= a * b - x
    return total, point.x, point.y, sum(grid), len(table), flushed, len(batch)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SIZE
    print("assignments", n, run(n))


if __name__ == "__main__":
    main()
