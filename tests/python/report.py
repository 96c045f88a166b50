"""report.py -- the pass/fail bookkeeping the Python tests share: each check
prints "ok   name: detail" or "FAIL name: detail"; exit_code() is 1 after any
failure, else 0."""


class Report:
    def __init__(self):
        self.failures = 0

    def check(self, name, good, detail=""):
        good = bool(good)
        self.failures += 0 if good else 1
        print(f"{'ok  ' if good else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
        return good

    def raises(self, name, exception, fn, must_contain=()):
        """Checks that fn() raises exception with every string of must_contain in its text."""
        try:
            fn()
        except exception as e:
            text = str(e)
            return self.check(name, all(s in text for s in must_contain), f"{type(e).__name__}: {text}")
        except Exception as e:  # noqa: BLE001  (a wrong exception type is a failure, not a crash)
            return self.check(name, False, f"raised {type(e).__name__} instead of {exception.__name__}: {e}")
        return self.check(name, False, f"no {exception.__name__} raised")

    def exit_code(self):
        print(f"{self.failures} failure(s)" if self.failures else "all checks passed")
        return 1 if self.failures else 0
