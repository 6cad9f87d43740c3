"""The proxy's release provenance (`gate.gather.releases`): assets fetched from the configured release host
only (`--github-releases`, https://github.com by default, and the hosts GitHub serves assets from), through
the one HTTP client, at most MAX_EVIDENCE_BYTES each, kept in the store like other evidence."""

from __future__ import annotations

from gate.gather.releases import ReleaseEvidence
from gate.proxy.evidence import StoreEvidence
from gate.proxy.state import Gate
from gate.sources.hosts import HostPolicy
from gate.sources.http import HttpClient
from gate.verify.bounded import MAX_EVIDENCE_BYTES


def release_evidence(state: Gate) -> ReleaseEvidence | None:
    """Release provenance for the projects the loaded policies name (None: they name none)."""
    sources = [source for compiled in state.policies for source in compiled.policy.releases]
    if not sources:
        return None
    base = state.settings.github_releases
    client = HttpClient(state.session, state.settings.timeout, hosts=HostPolicy.for_upstreams([base]),
                        max_bytes=MAX_EVIDENCE_BYTES)

    def fetch(url: str) -> bytes | None:
        return client.fetch_small(url, MAX_EVIDENCE_BYTES, absent={404})

    return ReleaseEvidence(base, sources, fetch, StoreEvidence(state))
