"""The only module the non-selected benchmark includes: called once."""


def report(result):
    text = "result %d" % result
    print(text)
