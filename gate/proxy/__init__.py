"""The index proxy (`gate serve`): a Flask app whose blueprints filter package indexes by policy.

Layout (each piece is ecosystem-neutral unless named after one):

- `state`: `Settings` (with the parsers of its options) and `Gate`, the state every blueprint shares
  (policies, the memoizing `Evaluator`, `Store`, `AuditLog`, `Metrics`, HTTP session, clock), reached
  inside a request with `gate_state()`. Blueprints and services import `state`, never `app`.
- `app`: `create_app(settings, blueprints=...)` (`server_app` for a serving process: then `gc.freeze()`),
  `default_blueprints`, the core routes `/-/health` and `/-/metrics`. Upstream fetches go through
  `gate.sources.http` (allowed hosts, one total deadline, decoded-size caps) and `UpstreamSlots` keeps
  threads free for the core routes; `gate.redact` keeps upstream credentials out of what is shown.
  Imports go one way: `app` -> blueprints -> services -> `decide`, `evidence`, `upstream` -> `state`.
- `cache`: `Store`, SQLite entries `(namespace, key) -> value, meta, expires`, and `Memo`, a per-process LRU.
- `upstream`: `CachedUpstream`, upstream documents (project pages, repodata) in one store namespace with
  their validators: `digest(key, fetch)` asks upstream only when stale, `parsed(key, digest)` parses on demand.
- `decide`: `judge` (fail closed: an exception is a denial; gate's own denials, `gate_denial`, `unjudgeable` and
  `gate.unmatched`, are gate.evaluate's, shared with `gate check`), `visible` (audit-only mode),
  `audit_decisions` (metrics + audit log), `refusal` (403 whose text names the file, each rule and message),
  `keep` (store a rendered body while its judgements hold), `etag` and `not_modified`.
- `files`: `deliver`, a download: recorded, refused with reasons, or streamed by `stream_verified`, which
  never completes a body whose sha256 or length differs from what the index promised.
- `evidence`: `verified`, Sigstore/PEP 740 verification cached by file sha256, evidence digest and trusted
  root digest; `Evidence`, attestation facts with the time they may change.
- `paths`: `refuse_bad_paths`, every blueprint's `before_request` hook: a name in the request path that
  cannot be one path segment once decoded (`?`, `#`, `/`, `%`, `..`...) is a 404 with an audit line.
- `audit`, `metrics`: the JSON-lines audit log and the Prometheus counters.
- `status`: the status page `/-/` (policies, recent denials, expiring waivers, upstream health, caches),
  for the clients `Settings.status_allow` and `status_token` admit; its template is `templates/status.html`.
- `pypi`, `pypi_index`, `pypi_render`, `pypi_warm`: the PyPI blueprint (`pypi_blueprint()`), its page
  service, its renderers, and the warm path (`WarmPages`: a fresh, rendered page answered in front of Flask
  and of the upstream slots, as the route would answer it).
- `conda_routes`, `conda`, `conda_paths`, `conda_repodata`: the conda blueprint (`conda_blueprint(channels)`),
  its repodata service (`CondaChannels.judge_all`: records -> judgements, the one way it judges records),
  what is served under a subdir (`classify`), and the per-record outcomes of an indexed upstream body
  (`judge_index`, with incremental rebuilds); `conda_body`: the filtered monolithic repodata written from
  those, sent as it is written (`Writing`); `conda_shared`: records of a build that share a judgement
  (`SharedJudgements`);
  `conda_examine`: what a build must know of each record before judging it (`examine`), worked out for the
  later batches of a large build by a forked helper (`Helper`).

How an ecosystem blueprint plugs in (as `pypi.py` and `conda_routes.py` do):

1. Write a factory that builds a `Blueprint` with its routes under its own prefix (`/simple/`,
   `/conda/<name>/`, `add_url_rule` to module-level views), with `before_request(refuse_bad_paths)`; build
   upstream URLs from names only with `gate.sources.segments.join`.
2. If it needs per-app state (an upstream client, a parsed-page memo), attach its service once at
   registration with `<blueprint>.record_once(...)` into `setup.app.extensions[...]`, as `pypi._attach`
   does; take the shared `Gate` from `setup.app.extensions[EXTENSION]`. A service gets what it needs from
   the request (the URL root, the client's address) as arguments: it never reads Flask's `request`.
3. In a route: build `Facts` with a `gate.sources` adapter, then `judge(gate_state(), facts, now)`;
   list a file only when `visible(state, decision)`; `audit_decisions(...)` every decision; answer a download
   with `files.deliver` (refusal with reasons, or a hash-checked stream); store what you render with
   `decide.keep` under the blueprint's own namespaces, keyed with `state.view_digest` (policies, trusted
   root, audit-only mode), until the judgements' earliest `valid_until` (time-dependent decisions must
   not outlive it), and answer `If-None-Match` with `decide.not_modified`. Evidence fetched for a
   judgement comes with the time it may change (`evidence.Evidence.recheck`: a failed fetch, a TTL);
   pass it to `judge` so that the judgement holds no longer.
4. On upstream trouble (an `UpstreamError`, its `failure` saying what went wrong) answer with
   `decide.upstream_failure`, the one place that maps it to 502/503/404 with a message, never an
   unfiltered page.
5. Register it: add it to `default_blueprints`, or `create_app(settings, blueprints=(pypi_blueprint(), ...))`.
"""
