"""Benchmark workload: JSON-lines processing with a hand-written tokenizer and parser.

Generates deterministic order records one at a time, serialises each to one line with
``json.dumps``, parses the line back with a small character-level tokenizer and a
recursive-descent parser written here (checked against ``json.loads``), and aggregates the orders per
customer and per tag -- the shape of a streaming log/report script.  Each line is a small
document and no record is kept, so the cost per record does not grow with their number.

Standard library only, deterministic.  Usage: ``python realistic.py [RECORDS]``.
"""

import json
import sys

DEFAULT_SIZE = 3_000

CUSTOMERS = ["acme", "globex", "initech", "umbrella", "hooli", "stark"]
TAGS = ["rush", "gift", "bulk", "fragile", "repeat", "promo", "intl"]


class Random:
    """A tiny linear congruential generator, so the workload does not depend on ``random``."""

    def __init__(self, seed):
        self.state = seed

    def next(self, bound):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.state >> 16) % bound


def make_record(rng, index):
    items = []
    for _ in range(1 + rng.next(4)):
        items.append({"sku": "SKU-%04d" % rng.next(10000),
                      "qty": 1 + rng.next(5),
                      "price": rng.next(10000) / 100})
    return {
        "id": index,
        "customer": CUSTOMERS[rng.next(len(CUSTOMERS))],
        "paid": rng.next(3) != 0,
        "note": None if rng.next(2) else "leave at door \"B\"",
        "tags": [TAGS[rng.next(len(TAGS))] for _ in range(rng.next(3))],
        "items": items,
    }


class ParseError(Exception):
    pass


PUNCTUATION = "{}[]:,"
ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
           "t": "\t"}


def tokenize(text):
    tokens = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch in PUNCTUATION:
            tokens.append((ch, ch))
            i += 1
        elif ch == '"':
            i += 1
            parts = []
            while text[i] != '"':
                if text[i] == "\\":
                    parts.append(ESCAPES[text[i + 1]])
                    i += 2
                else:
                    start = i
                    while text[i] not in '"\\':
                        i += 1
                    parts.append(text[start:i])
            tokens.append(("str", "".join(parts)))
            i += 1
        elif ch == "-" or ch.isdigit():
            start = i
            i += 1
            while i < n and (text[i].isdigit() or text[i] in ".eE+-"):
                i += 1
            literal = text[start:i]
            if "." in literal or "e" in literal or "E" in literal:
                tokens.append(("num", float(literal)))
            else:
                tokens.append(("num", int(literal)))
        elif text.startswith("true", i):
            tokens.append(("lit", True))
            i += 4
        elif text.startswith("false", i):
            tokens.append(("lit", False))
            i += 5
        elif text.startswith("null", i):
            tokens.append(("lit", None))
            i += 4
        else:
            raise ParseError("unexpected %r at %d" % (ch, i))
    tokens.append(("end", None))
    return tokens


class Parser:
    def __init__(self, tokens):
        self.tokens = tokens
        self.pos = 0

    def expect(self, kind):
        token = self.tokens[self.pos]
        if token[0] != kind:
            raise ParseError("expected %s, got %s" % (kind, token[0]))
        self.pos += 1
        return token

    def value(self):
        kind, payload = self.tokens[self.pos]
        if kind == "{":
            return self.obj()
        if kind == "[":
            return self.array()
        if kind in ("str", "num", "lit"):
            self.pos += 1
            return payload
        raise ParseError("unexpected token %s" % kind)

    def obj(self):
        self.expect("{")
        result = {}
        if self.tokens[self.pos][0] == "}":
            self.pos += 1
            return result
        while True:
            key = self.expect("str")[1]
            self.expect(":")
            result[key] = self.value()
            if self.tokens[self.pos][0] == ",":
                self.pos += 1
                continue
            self.expect("}")
            return result

    def array(self):
        self.expect("[")
        result = []
        if self.tokens[self.pos][0] == "]":
            self.pos += 1
            return result
        while True:
            result.append(self.value())
            if self.tokens[self.pos][0] == ",":
                self.pos += 1
                continue
            self.expect("]")
            return result


def parse(text):
    parser = Parser(tokenize(text))
    result = parser.value()
    parser.expect("end")
    return result


def run(n):
    rng = Random(12345)
    per_customer = {}
    per_tag = {}
    unpaid = 0
    for index in range(n):
        line = json.dumps(make_record(rng, index))
        order = parse(line)
        if order != json.loads(line):
            raise ParseError("parser disagrees with json.loads on %r" % line)
        amount = 0.0
        for item in order["items"]:
            amount += item["qty"] * item["price"]
        amount = round(amount, 2)
        customer = order["customer"]
        per_customer[customer] = round(per_customer.get(customer, 0.0) + amount, 2)
        for tag in order["tags"]:
            per_tag[tag] = per_tag.get(tag, 0) + 1
        if not order["paid"]:
            unpaid += 1
    return sorted(per_customer.items()), sorted(per_tag.items()), unpaid


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SIZE
    customers, tags, unpaid = run(n)
    print("realistic", n, "unpaid", unpaid)
    print("customers", customers)
    print("tags", tags)


if __name__ == "__main__":
    main()
