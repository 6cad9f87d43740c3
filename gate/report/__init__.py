"""Reports: `gate check` decisions (text, JSON, summary table, SARIF) and `gate lint` findings (text, JSON,
SARIF, GitHub annotations), over the shared SARIF 2.1.0 and GitHub workflow-command writers."""
