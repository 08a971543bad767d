"""An included module: a hot request handler (not a root) and a rarely run root."""


def handle_request(i):
    key = i % 13
    value = key * 2 + 1
    return value


def summarise(values):
    total = 0
    for value in values:
        total += value
    return total


def nightly_report(day):
    values = [handle_request(day + k) for k in range(20)]
    total = summarise(values)
    return total
