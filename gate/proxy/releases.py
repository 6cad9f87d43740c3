"""The proxy's release provenance (`gate.gather.releases`): assets fetched from the configured release host
only (`--github-releases`, https://github.com by default, and the hosts GitHub serves assets from), through
the one HTTP client, kept in the store like other evidence."""

from __future__ import annotations

from gate.gather.releases import ReleaseEvidence, release_evidence_for
from gate.proxy.evidence import StoreEvidence
from gate.proxy.state import Gate


def release_evidence(state: Gate) -> ReleaseEvidence | None:
    """Release provenance for the projects the loaded policies name (None: they name none)."""
    sources = [source for compiled in state.policies for source in compiled.policy.releases]
    settings = state.settings
    return release_evidence_for(sources, settings.github_releases, settings.timeout, StoreEvidence(state),
                                state.session)
