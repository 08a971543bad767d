"""Benchmark workload: call-heavy code.

Recursive calls (fib), small methods on small classes (including a dunder operator),
generators chained with ``yield from``, and a closure -- many short frames, so Call and
Return events dominate more than in the other workloads.

Standard library only, deterministic.  Usage: ``python calls.py [ROUNDS]``.
"""

import sys

DEFAULT_SIZE = 45_000


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


class Counter:
    def __init__(self):
        self.count = 0
        self.total = 0

    def add(self, value):
        self.count += 1
        self.total += value
        return self.total

    def mean(self):
        return self.total / self.count if self.count else 0.0


class Vec:
    def __init__(self, x, y):
        self.x = x
        self.y = y

    def __add__(self, other):
        return Vec(self.x + other.x, self.y + other.y)

    def scale(self, k):
        return Vec(self.x * k, self.y * k)

    def dot(self, other):
        return self.x * other.x + self.y * other.y


def squares(n):
    for i in range(n):
        yield i * i


def evens(values):
    for v in values:
        if v % 2 == 0:
            yield v


def chained(n):
    yield from evens(squares(n))


def make_scaler(k):
    def scaler(v):
        return v.scale(k)
    return scaler


def run(n):
    counter = Counter()
    double = make_scaler(2)
    acc = Vec(0, 0)
    for i in range(n):
        counter.add(fib(i % 10))
        acc = acc + double(Vec(i % 7, 1))
        for v in chained(6):
            counter.add(v)
    return counter.count, counter.total, round(counter.mean(), 6), acc.x, acc.y, acc.dot(acc)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SIZE
    print("calls", n, run(n))


if __name__ == "__main__":
    main()
