"""One facts service per ecosystem, shared by every front end.

`gate.gather.pypi` turns an index row (or a wheel/sdist filename) into `FileFacts` plus its PEP 740
evidence; `gate.gather.conda` does the same for a repodata record (or a conda package's bytes) plus its
sidecars. `gate check` and `gate serve` both call them, so a row or a file gets the same facts, and the
same denial when it cannot be judged, whichever front end sees it. What differs per front end is passed in
as ports (`gate.gather.ports`): how evidence bytes are fetched, and how fetches and verifications are cached.
"""
