"""A hot loop in a module the benchmark never selects."""


def step(i):
    x = i * 3
    if x % 7 == 0:
        return x // 7
    return x % 5


def work(n):
    total = 0
    for i in range(n):
        total += step(i)
    return total
