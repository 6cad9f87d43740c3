"""Checks of what an installer is about to install (`gate check` of pip reports, pylock.toml and
requirements files): each planned file's facts from the index it comes from (`gather`, through
`gate.gather.pypi` as the proxy has them), its decision (`check`), and a lock's attestation identities
held against the policies' signers (`identities`)."""
