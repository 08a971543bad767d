"""Which variable names hold secrets: their values are recorded as ``<redacted>``.

Names are normalised (lower case, ``_``/``-`` removed) and compared with a list of whole
identifiers and of endings, so ``db_password`` and ``API_KEY`` are secrets while ``tokens``
or ``tokenize`` are not.  The list follows the identifier-based redaction of production
debuggers (e.g. dd-trace's); users add names with ``--redact`` or turn it off.
"""

SECRET_NAMES = frozenset({
    "token", "accesstoken", "authtoken", "refreshtoken", "idtoken", "bearertoken",
    "csrftoken", "xsrftoken", "apitoken", "sessiontoken", "session", "sessionid",
    "sessionkey", "cookie", "cookies", "setcookie", "authorization", "auth", "xapikey",
    "jwt", "otp", "pin", "ssn", "creditcard", "cardnumber", "cvv",
})
SECRET_ENDINGS = ("password", "passwd", "passphrase", "secret", "apikey", "privatekey",
                  "credential", "credentials", "accesskey", "secretkey", "signingkey")


def normalise(name):
    return name.lower().replace("_", "").replace("-", "")


class Redaction:
    """Decides whether a variable, argument, attribute or key name names a secret.

    ``extra_names`` are added to the whole-identifier list (normalised the same way).
    """

    def __init__(self, extra_names=()):
        self.names = SECRET_NAMES | {normalise(n) for n in extra_names}
        self._verdicts = {}  # name -> bool: the encoder asks for every field it shows

    def is_secret(self, name):
        if type(name) is not str:
            return False
        verdict = self._verdicts.get(name)
        if verdict is None:
            key = normalise(name)
            verdict = key in self.names or key.endswith(SECRET_ENDINGS)
            if len(self._verdicts) < 100_000:  # names are few; keys of big dicts may not be
                self._verdicts[name] = verdict
        return verdict
